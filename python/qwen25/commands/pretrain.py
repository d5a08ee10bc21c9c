"""``qwen25 pretrain``: run a training recipe.

    qwen25 pretrain --recipe debug --out runs/debug
    qwen25 pretrain --recipe 0.5b --set stages.0.data=data/packed/main --set lr=6e-4 --out runs/0.5b
    torchrun --nproc-per-node 8 -m qwen25.train --recipe 1.5b --out runs/1.5b

Writes OUT/metrics.jsonl, OUT/checkpoints/step-N/ and OUT/loss.png. A rerun with the same OUT
resumes from its latest checkpoint (a changed config is an error unless --allow-changes).
"""

from __future__ import annotations

import argparse
from contextlib import closing

from ._train_common import (add_run_arguments, print_recipes, print_summary, progress_of, require_out, resume_of,
                            run_summary)

HELP = "Pre-train a model with a named recipe (checkpoints, exact resume, FSDP2 under torchrun)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="debug, 0.5b, 1.5b, long-context or turbo")
    add_run_arguments(
        p, set_help="override a config field, e.g. lr=1e-3, stages.0.steps=50, model.hidden_size=128 "
                     "(repeatable; unknown keys and wrong types are errors)",
        out_help="output folder (metrics, checkpoints, loss curve)", resumable=True,
        resume_help="resume from this checkpoint folder (default: the latest in OUT/checkpoints, if any)",
        allow_changes_help="resume even though the config differs from the checkpoint's",
        stop_help="stop after step N (a checkpoint is written there; rerun to continue)", list_recipes=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen25ValueError
    from ..train import apply_overrides, recipes

    if args.list_recipes:
        return print_recipes(recipes.RECIPES, 14)
    if not args.recipe:
        raise Qwen25ValueError("--recipe is required (see --list-recipes)")
    config = apply_overrides(recipes.get(args.recipe), args.overrides)
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    out = require_out(args, "metrics.jsonl, checkpoints/ and loss.png")
    resume = resume_of(args)
    from ..train import Trainer

    trainer = Trainer(config, out_dir=out, resume=resume, allow_changes=args.allow_changes,
                      progress=progress_of(args))
    with closing(trainer):
        records = trainer.fit(stop_at_step=args.stop_at_step)
        return print_summary(trainer, lambda: run_summary(trainer, records, out))
