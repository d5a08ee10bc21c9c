"""``qwen25 grpo``: online RL with GRPO on a prompts file, on the pre-training loop (checkpoints,
exact resume, metrics).

    qwen25 grpo --recipe debug --prompts prompts.jsonl --out runs/grpo-debug
    qwen25 grpo --recipe grpo --prompts prompts.jsonl --set init_from=DPO_DIR \\
        --set 'method.rewards={"math": 1.0, "reward_model": {"path": "runs/rm/final"}}' --out runs/grpo

Writes OUT/metrics.jsonl (loss, rewards and each component, KL, clip ratios, zero-variance groups,
completion lengths, rollout speed), OUT/rollouts/episode-N.jsonl (every sample: prompt line,
completion, rewards, advantage, the step that trained it), OUT/checkpoints/step-N/ and OUT/final/
(the policy as an HF folder).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._train_common import add_run_arguments, run_on_file

HELP = "Online RL with GRPO on prompts (8 samples per query, variance-ordered queries, verifiable rewards)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="debug", help="debug (CPU, a minute) or grpo (the report's)")
    p.add_argument("--prompts", help="prompts, JSONL: prompt (text or chat messages) or prompt_ids, plus what the "
                                     "rewards need (answer, tests, ...)")
    add_run_arguments(p, set_help="override a config field, e.g. lr=1e-6, method.beta=0.0, method.episodes=10 "
                                  "(repeatable)")


def run(args: argparse.Namespace) -> int:
    from ..rl import grpo

    def extra(trainer: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
        first = records[0] if records else {}
        return {"episodes": trainer.settings.episodes,
                "first_reward": round(first["reward"], 6) if "reward" in first else None}

    return run_on_file(args, grpo, grpo.train_grpo, source="prompts", what="a JSONL file of prompts",
                       keys=("loss", "reward", "kl", "frac_reward_zero_std", "completion_length"), extra=extra)
