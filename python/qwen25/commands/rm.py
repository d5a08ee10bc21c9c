"""``qwen25 rm``: train a reward model on preference pairs (Bradley–Terry), on the pre-training loop.

    qwen25 rm --recipe debug --data pairs.jsonl --out runs/rm-debug
    qwen25 rm --recipe rm --data pairs.jsonl --set init_from=SFT_DIR --set method.eval_data=heldout.jsonl --out runs/rm

Writes OUT/metrics.jsonl (loss, accuracy, margin), OUT/checkpoints/step-N/ and OUT/final/, a
``Qwen2ForSequenceClassification`` folder that transformers and ``RewardModel.from_pretrained`` load.
"""

from __future__ import annotations

import argparse

from ._train_common import add_run_arguments, run_on_file

HELP = "Train a reward model on preference pairs (saved as transformers' Qwen2ForSequenceClassification)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="debug", help="debug (CPU, minutes) or rm")
    p.add_argument("--data", help="preference pairs, JSONL (prompt/chosen/rejected, text or token ids; optional margin)")
    add_run_arguments(p, set_help="override a config field, e.g. lr=1e-5, method.center_rewards_coefficient=0.01, "
                                  "method.eval_data=FILE (repeatable)")


def run(args: argparse.Namespace) -> int:
    from ..rl import reward

    return run_on_file(args, reward, reward.train_reward_model, source="data",
                       what="a JSONL file of preference pairs",
                       keys=("loss", "accuracy", "margin", "eval_accuracy", "eval_loss"))
