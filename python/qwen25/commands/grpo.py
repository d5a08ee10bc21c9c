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
import json

HELP = "Online RL with GRPO on prompts (8 samples per query, variance-ordered queries, verifiable rewards)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="debug", help="debug (CPU, a minute) or grpo (the report's)")
    p.add_argument("--prompts", help="prompts, JSONL: prompt (text or chat messages) or prompt_ids, plus what the "
                                     "rewards need (answer, tests, ...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. lr=1e-6, method.beta=0.0, method.episodes=10 (repeatable)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    if not args.out:
        raise Qwen25ValueError("--out is required")
    trainer, records = grpo.train_grpo(config, prompts=args.prompts, out_dir=args.out,
                                       progress=False if args.no_progress else None)
    try:
        if trainer.dist.rank == 0:  # one summary for the run, not one per rank under torchrun
            last = records[-1] if records else {}
            first = records[0] if records else {}
            keys = ("loss", "reward", "kl", "frac_reward_zero_std", "completion_length")
            summary = {"steps_run": len(records), "step": trainer.step, "episodes": trainer.settings.episodes,
                       "out": args.out, "first_reward": round(first["reward"], 6) if "reward" in first else None,
                       **{k: round(last[k], 6) for k in keys if isinstance(last.get(k), (int, float))}}
            print(json.dumps(summary))
    finally:
        trainer.close()
    return 0
