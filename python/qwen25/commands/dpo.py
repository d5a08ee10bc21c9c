"""``qwen25 dpo``: DPO on preference pairs, on the pre-training loop (checkpoints, resume, FSDP2).

    qwen25 dpo --recipe debug --data pairs.jsonl --out runs/dpo-debug
    qwen25 dpo --recipe dpo --data pairs.jsonl --set init_from=SFT_DIR --set method.base_model=BASE_DIR --out runs/dpo

Writes OUT/metrics.jsonl (loss, implicit rewards, accuracy, margin), OUT/ref_logps/ (the cached
reference log-probs), OUT/checkpoints/step-N/ and OUT/final/ (the policy as an HF folder).
"""

from __future__ import annotations

import argparse

from ._train_common import add_run_arguments, run_on_file

HELP = "DPO on preference pairs (the report's recipe: 1 epoch, lr 7e-7, the Online Merging Optimizer)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="debug", help="debug (CPU, minutes) or dpo (the report's)")
    p.add_argument("--data", help="preference pairs, JSONL (prompt/chosen/rejected, text or token ids)")
    add_run_arguments(p, set_help="override a config field, e.g. lr=1e-6, method.beta=0.2, method.optimizer=adamw "
                                  "(repeatable)")


def run(args: argparse.Namespace) -> int:
    from ..rl import dpo

    return run_on_file(args, dpo, dpo.train_dpo, source="data", what="a JSONL file of preference pairs",
                       keys=("loss", "rewards_accuracy", "rewards_margin", "eval_rewards_accuracy", "eval_loss"),
                       extra=lambda trainer, records: {"reference": trainer.ref_source})
