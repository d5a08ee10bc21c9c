"""``qwen25 sft``: supervised fine-tuning on chat data with a named recipe.

    qwen25 sft --recipe debug --out runs/sft-debug
    qwen25 sft --recipe sft --data chat.jsonl --set init_from=runs/base/hf --out runs/sft
    qwen25 sft --recipe sft-long --data chat.jsonl --set method.epochs=[1,2] --out runs/sft-long

Chat data: JSONL or Parquet files (or HF ``save_to_disk`` folders) of records with ``messages``
(and optionally ``tools``). Writes OUT/sft_report.json (kept / truncated / skipped records, with
the skipped ones listed), then, as ``qwen25 pretrain``, OUT/metrics.jsonl, OUT/checkpoints/step-N/
and OUT/loss.png. A rerun with the same OUT resumes from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "Supervised fine-tuning on chat data (assistant-only loss, BFD packing, the report's recipe)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="sft, sft-long or debug")
    p.add_argument("--data", action="append", default=[], metavar="FILE",
                   help="chat data (JSONL/Parquet/HF dataset folder) for every stage; repeatable")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. lr=1e-5, stages.0.seq_len=4096, method.epochs=3, "
                        "method.truncation=truncate (repeatable)")  # fmt: skip
    p.add_argument("--skip-bad", action="store_true",
                   help="count and list bad records in sft_report.json instead of stopping at the first")
    p.add_argument("--out", help="output folder (report, metrics, checkpoints, loss curve)")
    p.add_argument("--resume", metavar="CHECKPOINT", default=None, help="resume from this checkpoint folder")
    p.add_argument("--no-resume", action="store_true", help="start afresh (refused if OUT holds checkpoints)")
    p.add_argument("--allow-changes", action="store_true", help="resume even though the config changed")
    p.add_argument("--stop-at-step", type=int, default=None, metavar="N", help="stop after step N")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--list-recipes", action="store_true", help="list the recipes and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen25ValueError
    from ..train import apply_overrides
    from ..train import sft

    if args.list_recipes:
        for name, fn in sft.RECIPES.items():
            print(f"{name:10s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if not args.recipe:
        raise Qwen25ValueError("--recipe is required (see --list-recipes)")
    config = sft.recipe(args.recipe)
    sets = list(args.overrides)
    if args.data:
        sets = [f"stages.{i}.data={','.join(args.data)}" for i in range(len(config.stages))] + sets
    if args.skip_bad:
        sets.append("method.skip_bad=true")
    config = apply_overrides(config, sets)
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    if not args.out:
        raise Qwen25ValueError("--out is required: the folder for sft_report.json, metrics.jsonl and checkpoints/")
    if args.resume and args.no_resume:
        raise Qwen25ValueError("--resume and --no-resume contradict each other")
    resume: bool | str = args.resume if args.resume else not args.no_resume
    trainer, records, report = sft.run_sft(config, args.out, resume=resume, allow_changes=args.allow_changes,
                                           progress=False if args.no_progress else None,
                                           stop_at_step=args.stop_at_step)
    try:
        if trainer.dist.rank == 0:
            summary = {"steps_run": len(records), "step": trainer.step, "of": trainer.config.total_steps(),
                       "out": args.out, "data": [{k: s[k] for k in ("stage", "kept", "truncated", "skipped")}
                                                 for s in report["stages"]]}
            if records:
                summary.update(loss=round(records[-1]["loss"], 6), tokens_seen=records[-1]["tokens_seen"])
            if trainer._last_ckpt is not None:
                summary["checkpoint"] = str(trainer._last_ckpt)
            print(json.dumps(summary), file=sys.stdout)
    finally:
        trainer.close()
    return 0
