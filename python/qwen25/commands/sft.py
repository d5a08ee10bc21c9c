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
from contextlib import closing

from ._train_common import (add_run_arguments, print_recipes, print_summary, progress_of, require_out, resume_of,
                            run_summary)

HELP = "Supervised fine-tuning on chat data (assistant-only loss, BFD packing, the report's recipe)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="sft, sft-long or debug")
    p.add_argument("--data", action="append", default=[], metavar="FILE",
                   help="chat data (JSONL/Parquet/HF dataset folder) for every stage; repeatable")
    p.add_argument("--skip-bad", action="store_true",
                   help="count and list bad records in sft_report.json instead of stopping at the first")
    add_run_arguments(
        p, set_help="override a config field, e.g. lr=1e-5, stages.0.seq_len=4096, method.epochs=3, "
                     "method.truncation=truncate (repeatable)",
        out_help="output folder (report, metrics, checkpoints, loss curve)", resumable=True,
        list_recipes=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen25ValueError
    from ..train import apply_overrides
    from ..train import sft

    if args.list_recipes:
        return print_recipes(sft.RECIPES, 10)
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
    out = require_out(args, "sft_report.json, metrics.jsonl and checkpoints/")
    trainer, records, report = sft.run_sft(config, out, resume=resume_of(args),
                                           allow_changes=args.allow_changes, progress=progress_of(args),
                                           stop_at_step=args.stop_at_step)
    with closing(trainer):
        return print_summary(trainer, lambda: run_summary(
            trainer, records, out,
            data=[{k: s[k] for k in ("stage", "kept", "truncated", "skipped")} for s in report["stages"]]))
