"""``qwen25 dpo``: DPO on preference pairs, on the pre-training loop (checkpoints, resume, FSDP2).

    qwen25 dpo --recipe debug --data pairs.jsonl --out runs/dpo-debug
    qwen25 dpo --recipe dpo --data pairs.jsonl --set init_from=SFT_DIR --set method.base_model=BASE_DIR --out runs/dpo

Writes OUT/metrics.jsonl (loss, implicit rewards, accuracy, margin), OUT/ref_logps/ (the cached
reference log-probs), OUT/checkpoints/step-N/ and OUT/final/ (the policy as an HF folder).
"""

from __future__ import annotations

import argparse
from contextlib import closing

from ._train_common import add_run_arguments, last_values, print_summary, progress_of, require_out

HELP = "DPO on preference pairs (the report's recipe: 1 epoch, lr 7e-7, the Online Merging Optimizer)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="debug", help="debug (CPU, minutes) or dpo (the report's)")
    p.add_argument("--data", help="preference pairs, JSONL (prompt/chosen/rejected, text or token ids)")
    add_run_arguments(p, set_help="override a config field, e.g. lr=1e-6, method.beta=0.2, method.optimizer=adamw "
                                  "(repeatable)")


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen25ValueError
    from ..train import apply_overrides

    from ..rl import dpo

    config = apply_overrides(dpo.recipe(args.recipe), args.overrides)
    if not args.data:
        raise Qwen25ValueError("--data is required: a JSONL file of preference pairs")
    if args.print_config:
        print(dpo.prepare_config(config, args.data).to_json(), end="")
        return 0
    out = require_out(args)
    trainer, records = dpo.train_dpo(config, data=args.data, out_dir=out, progress=progress_of(args))
    with closing(trainer):
        return print_summary(trainer, lambda: {
            "steps_run": len(records), "step": trainer.step, "out": out, "reference": trainer.ref_source,
            **last_values(records, ("loss", "rewards_accuracy", "rewards_margin", "eval_rewards_accuracy",
                                    "eval_loss"))})
