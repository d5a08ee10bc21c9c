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
from contextlib import closing

from ._train_common import add_run_arguments, last_values, print_summary, progress_of, require_out

HELP = "Online RL with GRPO on prompts (8 samples per query, variance-ordered queries, verifiable rewards)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="debug", help="debug (CPU, a minute) or grpo (the report's)")
    p.add_argument("--prompts", help="prompts, JSONL: prompt (text or chat messages) or prompt_ids, plus what the "
                                     "rewards need (answer, tests, ...)")
    add_run_arguments(p, set_help="override a config field, e.g. lr=1e-6, method.beta=0.0, method.episodes=10 "
                                  "(repeatable)")


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen25ValueError
    from ..rl import grpo
    from ..train import apply_overrides

    config = apply_overrides(grpo.recipe(args.recipe), args.overrides)
    if not args.prompts:
        raise Qwen25ValueError("--prompts is required: a JSONL file of prompts")
    if args.print_config:
        print(grpo.prepare_config(config, args.prompts).to_json(), end="")
        return 0
    out = require_out(args)
    trainer, records = grpo.train_grpo(config, prompts=args.prompts, out_dir=out, progress=progress_of(args))
    with closing(trainer):
        first = records[0] if records else {}
        return print_summary(trainer, lambda: {
            "steps_run": len(records), "step": trainer.step, "episodes": trainer.settings.episodes,
            "out": out,
            "first_reward": round(first["reward"], 6) if "reward" in first else None,
            **last_values(records, ("loss", "reward", "kl", "frac_reward_zero_std", "completion_length"))})
