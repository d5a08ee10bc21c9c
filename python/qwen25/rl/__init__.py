"""Alignment: the reward model, DPO, the Online Merging Optimizers and preference pairs.

    >>> from qwen25 import rl                                             # doctest: +SKIP
    >>> losses, chosen, rejected = rl.dpo_loss(pc, pr, rc, rr, beta=0.1)  # doctest: +SKIP
    >>> opt = rl.OnDAREAdamW(model.parameters(), sft_params=sft, base_params=base, lr=7e-7)  # doctest: +SKIP

Importing ``qwen25.rl`` imports no torch; each name loads its module (and torch) when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    # offline alignment (issue 13)
    "OnDAREAdamW": "omo",
    "OnTIESAdamW": "omo",
    "dpo_loss": "dpo",
    "sequence_logps": "dpo",
    "DPOTrainer": "dpo",
    "reward_loss": "reward",
    "RewardModel": "reward",
    "RewardTrainer": "reward",
    "make_pairs": "pairs",
    "sample_responses": "pairs",
    "score_responses": "pairs",
    # online RL (issue 14): GRPO's loss pieces and trainer, the rollout engines, composable rewards
    "group_advantages": "grpo",
    "k3_kl": "grpo",
    "grpo_loss": "grpo",
    "order_by_variance": "grpo",
    "GRPOTrainer": "grpo",
    "RolloutEngine": "rollouts",
    "LocalRollouts": "rollouts",
    "RayRollouts": "rollouts",
    "SamplingParams": "rollouts",
    "Completion": "rollouts",
    "RewardFunction": "rewards",
    "CompositeReward": "rewards",
    # answer checking for rejection sampling and rewards (issue 12; torch-free)
    "extract_answer": "verify",
    "math_equal": "verify",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'qwen25.rl' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qwen25.rl.{mod}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(_LAZY)
