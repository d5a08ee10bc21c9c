"""``qwen25 dpo``: DPO on preference pairs, on the pre-training loop (checkpoints, resume, FSDP2).

    qwen25 dpo --recipe debug --data pairs.jsonl --out runs/dpo-debug
    qwen25 dpo --recipe dpo --data pairs.jsonl --set init_from=SFT_DIR --set method.base_model=BASE_DIR --out runs/dpo

Writes OUT/metrics.jsonl (loss, implicit rewards, accuracy, margin), OUT/ref_logps/ (the cached
reference log-probs), OUT/checkpoints/step-N/ and OUT/final/ (the policy as an HF folder).
"""

from __future__ import annotations

import argparse
import json

HELP = "DPO on preference pairs (the report's recipe: 1 epoch, lr 7e-7, the Online Merging Optimizer)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="debug", help="debug (CPU, minutes) or dpo (the report's)")
    p.add_argument("--data", help="preference pairs, JSONL (prompt/chosen/rejected, text or token ids)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. lr=1e-6, method.beta=0.2, method.optimizer=adamw (repeatable)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    if not args.out:
        raise Qwen25ValueError("--out is required")
    trainer, records = dpo.train_dpo(config, data=args.data, out_dir=args.out,
                                     progress=False if args.no_progress else None)
    try:
        if trainer.dist.rank == 0:
            last = records[-1] if records else {}
            keys = ("loss", "rewards_accuracy", "rewards_margin", "eval_rewards_accuracy", "eval_loss")
            summary = {"steps_run": len(records), "step": trainer.step, "out": args.out,
                       "reference": trainer.ref_source, **{k: round(last[k], 6) for k in keys if k in last}}
            print(json.dumps(summary))
    finally:
        trainer.close()
    return 0
