"""``qwen25 pretrain``: run a training recipe.

    qwen25 pretrain --recipe debug --out runs/debug
    qwen25 pretrain --recipe 0.5b --set stages.0.data=data/packed/main --set lr=6e-4 --out runs/0.5b
    torchrun --nproc-per-node 8 -m qwen25.train --recipe 1.5b --out runs/1.5b

Writes OUT/metrics.jsonl, OUT/checkpoints/step-N/ and OUT/loss.png. A rerun with the same OUT
resumes from its latest checkpoint (a changed config is an error unless --allow-changes).
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "Pre-train a model with a named recipe (checkpoints, exact resume, FSDP2 under torchrun)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="debug, 0.5b, 1.5b, long-context or turbo")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. lr=1e-3, stages.0.steps=50, model.hidden_size=128 "
                        "(repeatable; unknown keys and wrong types are errors)")  # fmt: skip
    p.add_argument("--out", help="output folder (metrics, checkpoints, loss curve)")
    p.add_argument("--resume", metavar="CHECKPOINT", default=None,
                   help="resume from this checkpoint folder (default: the latest in OUT/checkpoints, if any)")
    p.add_argument("--no-resume", action="store_true", help="start afresh (refused if OUT holds checkpoints)")
    p.add_argument("--allow-changes", action="store_true",
                   help="resume even though the config differs from the checkpoint's")
    p.add_argument("--stop-at-step", type=int, default=None, metavar="N",
                   help="stop after step N (a checkpoint is written there; rerun to continue)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--list-recipes", action="store_true", help="list the recipes and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen25ValueError
    from ..train import apply_overrides, recipes

    if args.list_recipes:
        for name in recipes.names():
            doc = (recipes.RECIPES[name].__doc__ or "").strip().split("\n")[0]
            print(f"{name:14s} {doc}")
        return 0
    if not args.recipe:
        raise Qwen25ValueError("--recipe is required (see --list-recipes)")
    config = apply_overrides(recipes.get(args.recipe), args.overrides)
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    if not args.out:
        raise Qwen25ValueError("--out is required: the folder for metrics.jsonl, checkpoints/ and loss.png")
    if args.resume and args.no_resume:
        raise Qwen25ValueError("--resume and --no-resume contradict each other")
    from ..train import Trainer

    resume: bool | str = args.resume if args.resume else not args.no_resume
    trainer = Trainer(config, out_dir=args.out, resume=resume, allow_changes=args.allow_changes,
                      progress=False if args.no_progress else None)
    try:
        records = trainer.fit(stop_at_step=args.stop_at_step)
        if trainer.dist.rank == 0:
            last = records[-1] if records else None
            summary = {"steps_run": len(records), "step": trainer.step, "of": config.total_steps(), "out": args.out}
            if last is not None:
                summary.update(loss=round(last["loss"], 6), tokens_seen=last["tokens_seen"])
            if trainer._last_ckpt is not None:
                summary["checkpoint"] = str(trainer._last_ckpt)
            print(json.dumps(summary), file=sys.stdout)
    finally:
        trainer.close()
    return 0
