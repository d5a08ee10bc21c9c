"""Published hyperparameter scaling laws, as built-in references.

- DeepSeek LLM (DeepSeek-AI, 2024, arXiv:2401.02954, section 3.1): the optimal peak learning rate
  and batch size (in tokens) as power laws of the compute budget C = M * D, where M is the
  *non-embedding FLOPs per token* (their eq. 2: ``72 n_layer d_model^2 + 12 n_layer d_model
  l_seq``, attention included, the vocabulary excluded) and D the training tokens:
  ``eta_opt = 0.3118 * C^-0.1250`` and ``B_opt = 0.2920 * C^0.3271``.
- Step Law (StepFun, Li et al. 2025, arXiv:2503.04715): ``eta_opt = 1.79 * N^-0.713 * D^0.307``
  and ``B_opt = 0.58 * D^0.571`` (tokens), N the non-embedding parameters, D the tokens.
"""

from __future__ import annotations

import math
from numbers import Real

from ..errors import Qwen25ValueError

__all__ = ["deepseek", "deepseek_compute", "deepseek_flops_per_token", "steplaw"]

# DeepSeek LLM, section 3.1 (their eq. 1)
DEEPSEEK_LR = (0.3118, -0.1250)
DEEPSEEK_BATCH = (0.2920, 0.3271)
# Step Law, eq. (1) and (2) of arXiv:2503.04715
STEPLAW_LR = (1.79, -0.713, 0.307)
STEPLAW_BATCH = (0.58, 0.571)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise Qwen25ValueError(f"{name} must be a positive number, not {type(value).__name__} {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise Qwen25ValueError(f"{name} must be a positive finite number, not {value!r}")
    return v


def deepseek(compute_flops: float) -> dict[str, float]:
    """DeepSeek LLM's optimal peak learning rate and batch size (tokens) for a compute budget
    ``C = M * D`` in FLOPs (see :func:`deepseek_compute` for how the paper counts it)."""
    c = _positive("compute_flops", compute_flops)
    return {
        "lr": DEEPSEEK_LR[0] * c ** DEEPSEEK_LR[1],
        "batch_tokens": DEEPSEEK_BATCH[0] * c ** DEEPSEEK_BATCH[1],
    }


def steplaw(n_params: float, n_tokens: float) -> dict[str, float]:
    """Step Law's optimal peak learning rate and batch size (tokens) for ``n_params``
    non-embedding parameters trained on ``n_tokens`` tokens."""
    n = _positive("n_params", n_params)
    d = _positive("n_tokens", n_tokens)
    return {
        "lr": STEPLAW_LR[0] * n ** STEPLAW_LR[1] * d ** STEPLAW_LR[2],
        "batch_tokens": STEPLAW_BATCH[0] * d ** STEPLAW_BATCH[1],
    }


def deepseek_flops_per_token(n_layers: int, d_model: int, seq_len: int) -> float:
    """DeepSeek LLM's model scale M: non-embedding training FLOPs per token (forward and backward),
    ``72 * n_layers * d_model^2 + 12 * n_layers * d_model * seq_len`` (their eq. 2: a standard
    block with 4 d^2 of attention and 8 d^2 of MLP weights, 6 FLOPs per weight per token, plus the
    attention scores and weighted sum over the whole sequence)."""
    nl = _positive("n_layers", n_layers)
    d = _positive("d_model", d_model)
    s = _positive("seq_len", seq_len)
    return 72.0 * nl * d * d + 12.0 * nl * d * s


def deepseek_compute(n_layers: int, d_model: int, seq_len: int, n_tokens: float) -> float:
    """The compute budget ``C = M * D`` of DeepSeek LLM's hyperparameter law."""
    return deepseek_flops_per_token(n_layers, d_model, seq_len) * _positive("n_tokens", n_tokens)
