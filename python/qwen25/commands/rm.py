"""``qwen25 rm``: train a reward model on preference pairs (Bradley–Terry), on the pre-training loop.

    qwen25 rm --recipe debug --data pairs.jsonl --out runs/rm-debug
    qwen25 rm --recipe rm --data pairs.jsonl --set init_from=SFT_DIR --set method.eval_data=heldout.jsonl --out runs/rm

Writes OUT/metrics.jsonl (loss, accuracy, margin), OUT/checkpoints/step-N/ and OUT/final/, a
``Qwen2ForSequenceClassification`` folder that transformers and ``RewardModel.from_pretrained`` load.
"""

from __future__ import annotations

import argparse
import json

HELP = "Train a reward model on preference pairs (saved as transformers' Qwen2ForSequenceClassification)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="debug", help="debug (CPU, minutes) or rm")
    p.add_argument("--data", help="preference pairs, JSONL (prompt/chosen/rejected, text or token ids; optional margin)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. lr=1e-5, method.center_rewards_coefficient=0.01, "
                        "method.eval_data=FILE (repeatable)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen25ValueError
    from ..train import apply_overrides

    from ..rl import reward

    config = apply_overrides(reward.recipe(args.recipe), args.overrides)
    if not args.data:
        raise Qwen25ValueError("--data is required: a JSONL file of preference pairs")
    if args.print_config:
        print(reward.prepare_config(config, args.data).to_json(), end="")
        return 0
    if not args.out:
        raise Qwen25ValueError("--out is required")
    trainer, records = reward.train_reward_model(config, data=args.data, out_dir=args.out,
                                                 progress=False if args.no_progress else None)
    try:
        if trainer.dist.rank == 0:  # one summary for the run, not one per rank under torchrun
            last = records[-1] if records else {}
            keys = ("loss", "accuracy", "margin", "eval_accuracy", "eval_loss")
            print(json.dumps({"steps_run": len(records), "step": trainer.step, "out": args.out,
                              **{k: round(last[k], 6) for k in keys if k in last}}))
    finally:
        trainer.close()
    return 0
