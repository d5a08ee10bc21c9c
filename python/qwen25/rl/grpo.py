"""Online RL with GRPO (Shao et al., 2024), as the Qwen2.5 report runs it after DPO.

    >>> from qwen25.rl import grpo
    >>> grpo.group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)          # doctest: +SKIP
    tensor([ 0.8659, -0.8659, -0.8659,  0.8659])
    >>> grpo.k3_kl(torch.tensor([-1.0]), torch.tensor([-1.2]))                 # doctest: +SKIP
    tensor([0.0187])

The pieces, each usable alone:

* :func:`group_advantages`: (r − mean of the group) / (std + 1e-4), std unbiased; scaled by the
  group's std (``"group"``), the whole batch's (``"batch"``) or not at all (``"none"``).
* :func:`k3_kl`: the k3 estimator exp(ref − logp) − (ref − logp) − 1, per token.
* :func:`grpo_loss`: the token-level clipped ratio objective with the k3 KL (weighted by the
  importance ratio) added to each token's loss, as TRL adds it, aggregated as TRL's ``grpo``, ``bnpo``, ``dr_grpo`` or ``dapo``; given
  the global counts, the normalisation is over the whole optimizer step (every micro-batch and
  rank), not per micro-batch.
* :func:`order_by_variance`: the queries of an episode, highest reward variance first.
* :func:`token_logps`: completion-token log-probs ``log_softmax(logits / T)`` computed in chunks
  of rows (:func:`linear_logps`) with the fused cross-entropy's chunk operation, so that fp32
  logits never exist for more than one chunk, in the forward or the backward.

The trainer (:class:`GRPOTrainer`, ``qwen25 grpo``) is further down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from ..train.config import Stage, TrainConfig, override
from ..train.recipes import pick
from ..train.export import save_final
from ..train.trainer import Trainer
from .rewards import CompositeReward, RewardFunction, build_rewards
from .rollouts import (Completion, LocalRollouts, RolloutBatch, RolloutEngine, SamplingParams, collate_completions,
                       shard_seed)

__all__ = ["group_advantages", "k3_kl", "grpo_loss", "order_by_variance", "token_logps", "linear_logps",
           "LOSS_TYPES", "SCALES", "GRPOSettings", "GRPOTrainer", "PromptSet", "read_prompts", "RECIPES", "recipe",
           "prepare_config", "train_grpo"]

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")


# ------------------------------------------------------------------------------ advantages
def _nanmean(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    return torch.nanmean(x, dim=dim, keepdim=keepdim) if dim is not None else torch.nanmean(x)


def _nanstd(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """Unbiased standard deviation ignoring NaNs (NaN with fewer than two values)."""
    mean = torch.nanmean(x, dim=dim, keepdim=True) if dim is not None else torch.nanmean(x)
    sq = (x - mean) ** 2
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=keepdim) if dim is not None else (~torch.isnan(x)).sum()
    total = torch.nansum(sq, dim=dim, keepdim=keepdim) if dim is not None else torch.nansum(sq)
    return torch.sqrt(total / (count - 1))


def group_advantages(rewards: torch.Tensor, group_size: int, *, scale: str = "group") -> torch.Tensor:
    """Advantages [N] of rewards [N] whose groups (the samples of one query) are contiguous runs of
    ``group_size``: r − (its group's mean), divided by (std + 1e-4) where std is the unbiased
    standard deviation of the group (``scale="group"``) or of the whole batch (``"batch"``); not
    divided with ``"none"``. A NaN reward (no reward function applied) is left out of the means
    and deviations and gets advantage 0. A group whose rewards are all equal gets all zeros."""
    if not isinstance(rewards, torch.Tensor):
        rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.dim() != 1:
        raise Qwen25ValueError(f"group_advantages: rewards must be [N], got shape {tuple(rewards.shape)}")
    if not (isinstance(group_size, int) and not isinstance(group_size, bool) and group_size >= 1):
        raise Qwen25ValueError(f"group_advantages: group_size must be a positive int, got {group_size!r}")
    if rewards.numel() % group_size:
        raise Qwen25ValueError(f"group_advantages: {rewards.numel()} rewards do not split into groups of {group_size}")
    if scale not in SCALES:
        raise Qwen25ValueError(f"group_advantages: scale must be one of {list(SCALES)}, got {scale!r}")
    r = rewards.float()
    grouped = r.view(-1, group_size)
    mean = _nanmean(grouped, dim=1, keepdim=True)
    adv = grouped - mean
    if scale == "group":
        std = _nanstd(grouped, dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
        adv = adv / (std + 1e-4)
    elif scale == "batch":
        std = _nanstd(r) if r.numel() > 1 else torch.zeros(())
        adv = adv / (std + 1e-4)
    return torch.nan_to_num(adv.reshape(-1), nan=0.0)


def zero_std_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[Q] bool: the groups whose rewards are all equal (they teach nothing: every advantage is 0)."""
    grouped = rewards.float().view(-1, group_size)
    std = _nanstd(grouped, dim=1) if group_size > 1 else torch.zeros(grouped.shape[0])
    return torch.nan_to_num(std, nan=0.0).abs() < 1e-8


def order_by_variance(rewards: torch.Tensor) -> torch.Tensor:
    """Query indices [Q] (int64) sorted by the variance of each query's rewards over its samples,
    highest first; ties keep the queries' order. rewards: [Q, G]. NaN rewards are left out of a
    query's variance; a query with fewer than two rewards counts as variance 0."""
    if not isinstance(rewards, torch.Tensor):
        rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.dim() != 2:
        raise Qwen25ValueError(f"order_by_variance: rewards must be [queries, samples], got shape {tuple(rewards.shape)}")
    if rewards.shape[1] < 2:
        return torch.arange(rewards.shape[0], dtype=torch.long)
    var = torch.nan_to_num(_nanstd(rewards.double(), dim=1) ** 2, nan=0.0)
    return torch.sort(var, descending=True, stable=True).indices.long()


# ------------------------------------------------------------------------------------ loss
def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of KL(π || π_ref) per token (Schulman, 2020):
    exp(ref − logp) − (ref − logp) − 1, always >= 0, 0 where the two agree."""
    if logps.shape != ref_logps.shape:
        raise Qwen25ValueError(f"k3_kl: logps {tuple(logps.shape)} and ref_logps {tuple(ref_logps.shape)} differ")
    d = ref_logps - logps
    return torch.exp(d) - d - 1


def _check_loss_inputs(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
                       advantages: torch.Tensor, completion_mask: torch.Tensor, epsilon: float,
                       epsilon_high: float | None, beta: float, loss_type: str) -> None:
    if loss_type not in LOSS_TYPES:
        raise Qwen25ValueError(f"grpo_loss: loss_type must be one of {list(LOSS_TYPES)}, got {loss_type!r}")
    if logps.dim() != 2:
        raise Qwen25ValueError(f"grpo_loss: logps must be [B, T], got shape {tuple(logps.shape)}")
    for name, t in (("old_logps", old_logps), ("completion_mask", completion_mask)):
        if tuple(t.shape) != tuple(logps.shape):
            raise Qwen25ValueError(f"grpo_loss: {name} has shape {tuple(t.shape)}, logps {tuple(logps.shape)}")
    if advantages.shape != (logps.shape[0],):
        raise Qwen25ValueError(f"grpo_loss: advantages must be [{logps.shape[0]}], got shape {tuple(advantages.shape)}")
    for name, v in (("epsilon", epsilon), ("epsilon_high", epsilon_high)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise Qwen25ValueError(f"grpo_loss: {name} must be a number >= 0, got {v!r}")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
        raise Qwen25ValueError(f"grpo_loss: beta must be a number >= 0, got {beta!r}")
    if beta != 0:
        if ref_logps is None:
            raise Qwen25ValueError("grpo_loss: beta != 0 needs ref_logps (the reference model's log-probs)")
        if tuple(ref_logps.shape) != tuple(logps.shape):
            raise Qwen25ValueError(f"grpo_loss: ref_logps has shape {tuple(ref_logps.shape)}, logps {tuple(logps.shape)}")


def per_token_terms(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
                    advantages: torch.Tensor, *, epsilon: float = 0.2, epsilon_high: float | None = None,
                    beta: float = 0.04, kl_bias_correction: bool = True) -> dict[str, torch.Tensor | None]:
    """The per-token pieces of the GRPO loss [B, T]: ``loss`` (−min(ρA, clip(ρ)A) + β ρ k3, or
    + β k3 without ``kl_bias_correction``), ``ratio`` ρ = exp(logp − old), ``kl`` (k3, or None
    with β = 0) and the clipped-token masks ``low_clipped`` / ``high_clipped`` (for logging)."""
    coef_1 = torch.exp(logps - old_logps)
    high = epsilon if epsilon_high is None else epsilon_high
    coef_2 = torch.clamp(coef_1, 1 - epsilon, 1 + high)
    adv = advantages[:, None].to(coef_1.dtype)
    loss = -torch.min(coef_1 * adv, coef_2 * adv)
    kl = None
    if beta != 0:
        assert ref_logps is not None
        kl = k3_kl(logps, ref_logps)
        loss = loss + beta * (kl * coef_1 if kl_bias_correction else kl)
    return {"loss": loss, "ratio": coef_1, "kl": kl,
            "low_clipped": (coef_1 < 1 - epsilon) & (adv < 0), "high_clipped": (coef_1 > 1 + high) & (adv > 0)}


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None, advantages: torch.Tensor,
              completion_mask: torch.Tensor, *, epsilon: float = 0.2, epsilon_high: float | None = None,
              beta: float = 0.04, loss_type: str = "grpo", max_completion_length: int | None = None,
              kl_bias_correction: bool = True, num_sequences: float | None = None,
              num_tokens: float | None = None) -> torch.Tensor:
    """The GRPO loss of a batch: logps, old_logps, ref_logps and completion_mask are [B, T],
    advantages [B]; ``ref_logps`` may be None when ``beta`` is 0.

    Per token: −min(ρ A, clip(ρ, 1 − ε, 1 + ε_high) A) + β ρ k3(logp, ref), ρ = exp(logp − old)
    (ε_high defaults to ε). The KL term is weighted by the (differentiable) ratio ρ as TRL does by
    default (``use_bias_correction_kl``, after DeepSeek-V3.2): with it, its gradient is the
    unbiased gradient of the reverse KL for samples drawn from the old policy; even on-policy,
    where ρ = 1, the ratio changes the gradient. ``kl_bias_correction=False`` gives plain β k3.
    Aggregations, as TRL defines them on one batch (l the per-token loss, m the mask):

    * ``grpo``: the mean over sequences of each sequence's mean over its tokens;
    * ``bnpo`` and ``dapo``: Σ l m / Σ m, every token of the batch weighted alike;
    * ``dr_grpo``: Σ l m / (B × max_completion_length), a constant normaliser.

    For an optimizer step split into micro-batches (and ranks), pass the step's totals:
    ``num_sequences`` (grpo, dr_grpo) and ``num_tokens`` (bnpo, dapo). Each micro-batch's loss is
    then its share of the step's loss, and the sum over micro-batches is the loss of the whole
    step, however it was split. Without them the counts are this batch's (TRL's values)."""
    _check_loss_inputs(logps, old_logps, ref_logps, advantages, completion_mask, epsilon, epsilon_high, beta,
                       loss_type)
    if loss_type == "dr_grpo" and not (isinstance(max_completion_length, int) and max_completion_length > 0):
        raise Qwen25ValueError(f"grpo_loss: loss_type 'dr_grpo' needs max_completion_length > 0, got "
                               f"{max_completion_length!r}")
    keep = completion_mask.bool()
    mask = keep.to(logps.dtype)
    # whatever sits under the padding (NaN, inf, stale values) must not reach the loss or its gradient
    logps, old_logps = logps.masked_fill(~keep, 0.0), old_logps.masked_fill(~keep, 0.0)
    if ref_logps is not None:
        ref_logps = ref_logps.masked_fill(~keep, 0.0)
    per_token = per_token_terms(logps, old_logps, ref_logps, advantages, epsilon=epsilon, epsilon_high=epsilon_high,
                                beta=beta, kl_bias_correction=kl_bias_correction)["loss"]
    assert per_token is not None
    masked = per_token * mask
    if loss_type == "grpo":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1.0)
        n = float(num_sequences) if num_sequences is not None else float(logps.shape[0])
        return per_seq.sum() / n
    if loss_type in ("bnpo", "dapo"):
        if num_tokens is not None:
            return masked.sum() / max(float(num_tokens), 1.0)
        return masked.sum() / mask.sum().clamp(min=1.0)
    assert max_completion_length is not None
    n = float(num_sequences) if num_sequences is not None else float(logps.shape[0])
    return masked.sum() / (n * max_completion_length)


# ------------------------------------------------------------------------ chunked log-probs
def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype ``hidden @ weight.T`` runs in: autocast's when it is on, else the inputs'."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        dtype: torch.dtype = torch.get_autocast_dtype(device)
        return dtype
    if hidden.dtype != weight.dtype:
        raise Qwen25ValueError(f"linear_logps: hidden is {hidden.dtype} but weight is {weight.dtype}")
    return hidden.dtype


def _chunk_op(hidden: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype) -> Any:
    """The fused cross-entropy's per-chunk operation: the CUDA kernel's ``ce_rows_`` where
    ``qwen25.kernels`` would use it, else its eager twin. Both return each row's
    −log_softmax(logits)[label] and, asked to, overwrite the chunk with softmax − onehot."""
    from .. import kernels
    from ..kernels import _fallback

    if hidden.is_cuda and weight.is_cuda and dtype in (torch.float32, torch.bfloat16) and kernels.available():
        return kernels._ops().ce_rows_
    return _fallback.ce_chunk


class _LinearLogps(torch.autograd.Function):
    """logps[i] = log_softmax(hidden[i] @ weight.T)[targets[i]], ``chunk_size`` rows at a time.

    Forward: one [chunk, V] logits tensor at a time, reduced to each row's −CE by the chunk op.
    Backward (with any per-row upstream gradient g): the chunk's logits are recomputed and the
    chunk op turns them, in place, into softmax − onehot = −d logp / d logits; scaled by −g they
    give d loss / d logits, from which d hidden and d weight are accumulated. Nothing of size
    [rows, V] outlives a chunk."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int,
                dtype: torch.dtype) -> torch.Tensor:
        n = hidden.shape[0]
        op = _chunk_op(hidden, weight, dtype)
        out = torch.empty(n, dtype=torch.float32, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            hid, wt = hidden.to(dtype), weight.to(dtype)
            for a in range(0, n, chunk_size):
                e = min(n, a + chunk_size)
                logits = torch.mm(hid[a:e], wt.t())  # [c, V]
                out[a:e] = -op(logits, targets[a:e], -100, False)
                del logits
        ctx.save_for_backward(hidden, weight, targets)
        ctx.chunk_size, ctx.dtype = chunk_size, dtype
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        hidden, weight, targets = ctx.saved_tensors
        need_h, need_w = bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])
        n, h = hidden.shape
        dtype, chunk = ctx.dtype, ctx.chunk_size
        op = _chunk_op(hidden, weight, dtype)
        dh = torch.empty(n, h, dtype=dtype, device=hidden.device) if need_h else None
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        g = grad_out.float()
        with torch.autocast(hidden.device.type, enabled=False):
            hid, wt = hidden.to(dtype), weight.to(dtype)
            for a in range(0, n, chunk):
                e = min(n, a + chunk)
                hc = hid[a:e]
                logits = torch.mm(hc, wt.t())
                op(logits, targets[a:e], -100, True)  # logits := softmax - onehot (0 rows where ignored)
                logits.mul_((-g[a:e]).to(dtype)[:, None])  # d loss / d logits
                if dh is not None:
                    torch.mm(logits, wt, out=dh[a:e])
                if dw is not None:
                    dw.add_(torch.mm(logits.t(), hc))
                del logits
        return (dh.to(hidden.dtype) if dh is not None else None, dw.to(weight.dtype) if dw is not None else None,
                None, None, None)


def linear_logps(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                 chunk_size: int = 1024) -> torch.Tensor:
    """log_softmax(hidden @ weight.T)[targets] per row, in fp32: hidden [N, H], weight [V, H],
    targets [N] (−100: ignored, log-prob 0). Differentiable in hidden and weight; at most
    ``chunk_size`` rows of logits exist at any time. Under autocast the matmuls run in autocast's
    dtype (the chunk op reads them in fp32)."""
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise Qwen25ValueError(f"linear_logps: hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)} do not "
                               "match ([N, H] and [V, H])")
    if targets.shape != (hidden.shape[0],) or targets.is_floating_point():
        raise Qwen25ValueError(f"linear_logps: targets must be integer [{hidden.shape[0]}], got "
                               f"{targets.dtype} {tuple(targets.shape)}")
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise Qwen25ValueError(f"linear_logps: chunk_size must be a positive int, got {chunk_size!r}")
    t = targets.long()
    v = weight.shape[0]
    bad = (t != -100) & ((t < 0) | (t >= v))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise Qwen25ValueError(f"linear_logps: target {int(t[i])} at row {i} is outside [0, {v})")
    out: torch.Tensor = _LinearLogps.apply(hidden, weight, t, chunk_size, _compute_dtype(hidden, weight))
    return out


def _final_hidden(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The model's last hidden states [B, T, H] (after the final norm), taken with a forward hook;
    the forward itself projects only one position through the lm_head."""
    captured: list[torch.Tensor] = []
    inner = getattr(model, "model", None)
    norm = getattr(inner, "norm", None)
    if norm is None:
        raise Qwen25ValueError(f"token_logps: {type(model).__name__} has no .model.norm (a Qwen2ForCausalLM is needed)")
    handle = norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(input_ids, attention_mask=attention_mask, logits_to_keep=1)
    finally:
        handle.remove()
    return captured[-1]


def token_logps(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                logits_to_keep: int, *, completion_mask: torch.Tensor | None = None, temperature: float = 1.0,
                chunk_size: int = 1024) -> torch.Tensor:
    """Log-probs [B, C] of the last ``C = logits_to_keep`` tokens of each row (the completions) under
    ``log_softmax(logits / temperature)``, exactly the distribution the rollouts sample from.
    Positions where ``completion_mask`` [B, C] is 0 are not computed (their value is 0).
    Differentiable; fp32 logits exist for at most ``chunk_size`` tokens at a time."""
    if input_ids.dim() != 2:
        raise Qwen25ValueError(f"token_logps: input_ids must be [B, T], got shape {tuple(input_ids.shape)}")
    b, t = input_ids.shape
    c = int(logits_to_keep)
    if not 1 <= c < t:
        raise Qwen25ValueError(f"token_logps: logits_to_keep must be in [1, {t - 1}] for rows of {t} tokens, got {c}")
    if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
        raise Qwen25ValueError(f"token_logps: temperature must be > 0, got {temperature!r}")
    if completion_mask is None:
        sel = torch.ones(b, c, dtype=torch.bool, device=input_ids.device)
    else:
        if tuple(completion_mask.shape) != (b, c):
            raise Qwen25ValueError(f"token_logps: completion_mask has shape {tuple(completion_mask.shape)}, "
                                   f"expected {(b, c)}")
        sel = completion_mask.to(input_ids.device).bool()
    hidden = _final_hidden(model, input_ids, attention_mask)[:, t - c - 1:t - 1]  # position i predicts token i+1
    targets = input_ids[:, t - c:]
    hs = hidden[sel]  # [n, H]: only the completion tokens
    if temperature != 1.0:
        hs = hs / temperature  # (h / T) @ W.T = logits / T
    weight: Any = model.lm_head.weight  # type: ignore[union-attr]
    if hasattr(weight, "full_tensor"):  # an FSDP2-sharded head: gather it (its gradient flows back to the shards)
        weight = weight.full_tensor()
    lp = linear_logps(hs, weight, targets[sel], chunk_size=chunk_size)
    return lp.new_zeros(b, c).masked_scatter(sel, lp)


# =================================================================================== trainer
# Everything below runs GRPO on the pre-training loop (qwen25.train.Trainer): an optimizer step is
# one mini-batch of an episode; the loop's schedule, clipping, checkpoints, resume and logs are
# shared. An episode: sample G completions for each of Q queries, score them, compute advantages,
# order the queries by reward variance (highest first) and train on them in that order, in
# steps of ``rows_per_step`` samples (whole queries), ``num_iterations`` passes over the episode.
# On several ranks (torchrun, FSDP2), each rank samples and scores its share of the queries, the
# episode is gathered whole on every rank, and each step's samples are split over the ranks; the
# loss normalisers are the whole step's, so the gradients are the one-process run's.


@dataclass(frozen=True, kw_only=True)
class GRPOSettings:
    """``TrainConfig.method`` of a GRPO run (``--set method.KEY=VALUE``).

    * episodes: ``num_generations`` samples for each of ``queries_per_episode`` queries per
      episode, ``episodes`` of them (the stage's steps are sized from it), ``num_iterations``
      passes over each episode's samples (> 1 reuses a rollout, against its old log-probs);
    * sampling: ``temperature``, ``top_p``, ``top_k`` (1 and 0: the trainer's distribution),
      ``max_prompt_length``, ``max_completion_length``, ``rollout_batch_size`` (rows per
      generation batch; None: all at once), ``stop_token_ids`` (None: ``<|im_end|>`` and
      ``<|endoftext|>``);
    * loss: ``loss_type`` (grpo, bnpo, dr_grpo, dapo), ``epsilon``, ``epsilon_high``, ``beta``,
      ``kl_bias_correction``, ``scale_rewards`` (group, batch, none), ``mask_truncated_completions``,
      ``logps_chunk_size`` (rows of logits at a time);
    * ``rewards``: name -> weight or {"weight": w, options} (``qwen25.rl.rewards.build_rewards``);
    * ``ref_model``: the KL reference's HF folder (None: ``init_from``, else the run's seeded init);
      ``tokenizer``: an HF tokenizer folder (None: Qwen2.5's); ``chat_template``: render text
      prompts with it (else plain encoding); ``log_completions``: write OUT/rollouts/episode-N.jsonl."""

    num_generations: int = 8
    queries_per_episode: int = 256
    episodes: int = 1
    num_iterations: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_prompt_length: int = 512
    max_completion_length: int = 256
    rollout_batch_size: int | None = None
    stop_token_ids: list[int] | None = None
    loss_type: str = "grpo"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    beta: float = 0.04
    kl_bias_correction: bool = True
    scale_rewards: str = "group"
    mask_truncated_completions: bool = False
    logps_chunk_size: int = 1024
    rewards: dict[str, Any] = field(default_factory=lambda: {"math": 1.0})
    ref_model: str | None = None
    tokenizer: str | None = None
    chat_template: bool = True
    log_completions: bool = True

    @classmethod
    def from_method(cls, method: Mapping[str, Any]) -> GRPOSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(method) - known)
        if unknown:
            raise Qwen25ValueError(f"method: unknown GRPO settings {unknown}; known: {sorted(known)}")
        s = cls(**dict(method))
        for name in ("num_generations", "queries_per_episode", "episodes", "num_iterations", "max_prompt_length",
                     "max_completion_length", "logps_chunk_size"):
            v = getattr(s, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise Qwen25ValueError(f"method.{name} must be a positive int, got {v!r}")
        if s.rollout_batch_size is not None and not (isinstance(s.rollout_batch_size, int) and s.rollout_batch_size >= 1):
            raise Qwen25ValueError(f"method.rollout_batch_size must be a positive int or null, got {s.rollout_batch_size!r}")
        if s.loss_type not in LOSS_TYPES:
            raise Qwen25ValueError(f"method.loss_type must be one of {list(LOSS_TYPES)}, got {s.loss_type!r}")
        if s.scale_rewards not in SCALES:
            raise Qwen25ValueError(f"method.scale_rewards must be one of {list(SCALES)}, got {s.scale_rewards!r}")
        for name in ("epsilon", "beta"):
            v = getattr(s, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
                raise Qwen25ValueError(f"method.{name} must be a number >= 0, got {v!r}")
        if s.epsilon_high is not None and not (isinstance(s.epsilon_high, (int, float)) and s.epsilon_high >= 0):
            raise Qwen25ValueError(f"method.epsilon_high must be a number >= 0 or null, got {s.epsilon_high!r}")
        if not isinstance(s.rewards, Mapping):
            raise Qwen25ValueError(f"method.rewards must be a mapping of reward name -> weight, got {s.rewards!r}")
        s.sampling(0)  # checks the sampling settings
        return s

    def sampling(self, seed: int) -> SamplingParams:
        stops = tuple(self.stop_token_ids) if self.stop_token_ids is not None else None
        return SamplingParams(max_new_tokens=self.max_completion_length, temperature=self.temperature,
                              top_p=self.top_p, top_k=self.top_k, seed=seed, stop_token_ids=stops)


# ------------------------------------------------------------------------------- prompts
@dataclass
class PromptSet:
    """The prompts of a run: ``ids[i]`` the tokens of prompt i, ``records[i]`` its JSON object
    (with ``_where`` = "file:line" added), ``digest`` a sha256 of the ids."""

    path: str
    ids: list[tuple[int, ...]]
    records: list[dict[str, Any]]
    digest: str


def _messages(prompt: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt and all(isinstance(m, Mapping) and isinstance(m.get("role"), str)
                                                   and isinstance(m.get("content"), str) for m in prompt):
        return [dict(m) for m in prompt]
    raise FormatError(f"{where}: 'prompt' must be a string or a list of {{'role', 'content'}} messages")


def read_prompts(path: str | os.PathLike[str], tokenizer: Any = None, *, max_prompt_length: int,
                 vocab_size: int | None = None, chat_template: bool = True) -> PromptSet:
    """Read a prompts JSONL file: one object a line with ``prompt`` (a string: one user turn; or
    a list of chat messages), rendered with the chat template and the generation prompt (or, with
    ``chat_template=False``, encoded as plain text), or ``prompt_ids`` (token ids, used as given).
    Other keys (``answer``, ``tests``, ``id``, ...) are kept for the rewards. Blank lines are
    skipped; every malformed line is an error naming ``file:line``, as is a prompt longer than
    ``max_prompt_length`` tokens (nothing is cut or dropped silently)."""
    from ..data.records import iter_objects

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise Qwen25FileNotFoundError(f"prompts file {p} does not exist")
    ids: list[tuple[int, ...]] = []
    records: list[dict[str, Any]] = []
    h = hashlib.sha256()
    for n, rec, _ in iter_objects(p):
        where = f"{p}:{n}"
        if "prompt_ids" in rec:
            v = rec["prompt_ids"]
            if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                raise FormatError(f"{where}: 'prompt_ids' must be a list of token ids", p, n)
            toks = tuple(v)
        elif "prompt" in rec:
            try:
                if tokenizer is None:
                    raise Qwen25ValueError("text prompts need a tokenizer")
                if chat_template:
                    toks = tuple(tokenizer.apply_chat_template(_messages(rec["prompt"], where),
                                                               add_generation_prompt=True))
                else:
                    if not isinstance(rec["prompt"], str):
                        raise FormatError(f"{where}: without the chat template 'prompt' must be a string", p, n)
                    toks = tuple(tokenizer.encode(rec["prompt"]))
            except FormatError as e:
                raise FormatError(str(e), p, n) from None
        else:
            raise FormatError(f"{where}: needs 'prompt' (text or messages) or 'prompt_ids'", p, n)
        if not toks:
            raise FormatError(f"{where}: the prompt is empty", p, n)
        bad = [x for x in toks if x < 0 or (vocab_size is not None and x >= vocab_size)]
        if bad:
            raise FormatError(f"{where}: token id {bad[0]} is outside the model's vocabulary of {vocab_size}", p, n)
        if len(toks) > max_prompt_length:
            raise FormatError(f"{where}: the prompt has {len(toks)} tokens, more than max_prompt_length "
                              f"{max_prompt_length} (raise method.max_prompt_length or shorten it)", p, n)
        rec["_where"] = where
        ids.append(toks)
        records.append(rec)
        h.update(json.dumps(list(toks)).encode())
        h.update(b"\n")
    if not ids:
        raise FormatError(f"{p}: no prompts", p, 0)
    return PromptSet(p, ids, records, h.hexdigest())


# ------------------------------------------------------------------------------- episodes
def episode_seed(seed: int, episode: int) -> int:
    """The rollout seed of episode ``episode`` (0-based) of a run seeded ``seed``."""
    return shard_seed(seed, episode + 1)


@dataclass
class Episode:
    """One episode's samples and everything the trainer needs from them (kept in
    OUT/rollouts/episode-N.pt so a run resumes mid-episode exactly)."""

    index: int
    queries: list[int]  # prompt indices, in sampling order; samples q*G .. q*G+G-1 belong to queries[q]
    batch: RolloutBatch  # every sample, prompt-major
    rewards: torch.Tensor  # [N] float64 (NaN: unscored)
    components: dict[str, torch.Tensor]  # name -> [N]
    advantages: torch.Tensor  # [N] float32
    order: list[int]  # query positions (into queries), highest reward variance first
    old_logps: torch.Tensor | None = None  # [N, C]: the sampling policy's, as the trainer computes them
    ref_logps: torch.Tensor | None = None  # [N, C]
    metrics: dict[str, float] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # each completion's token count

    def to_dict(self) -> dict[str, Any]:
        b = self.batch
        return {"index": self.index, "queries": self.queries, "rewards": self.rewards, "components": self.components,
                "advantages": self.advantages, "order": self.order, "old_logps": self.old_logps,
                "ref_logps": self.ref_logps, "metrics": self.metrics, "texts": self.texts, "lengths": self.lengths,
                "batch": {"prompt_ids": b.prompt_ids, "prompt_mask": b.prompt_mask, "completion_ids": b.completion_ids,
                          "completion_mask": b.completion_mask, "sampler_logps": b.sampler_logps,
                          "truncated": b.truncated}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Episode:
        return cls(index=int(d["index"]), queries=list(d["queries"]), batch=RolloutBatch(**d["batch"]),
                   rewards=d["rewards"], components=dict(d["components"]), advantages=d["advantages"],
                   order=list(d["order"]), old_logps=d["old_logps"], ref_logps=d["ref_logps"],
                   metrics=dict(d["metrics"]), texts=list(d["texts"]), lengths=list(d["lengths"]))


@dataclass
class MicroRows:
    """A micro-batch: sample indices of the current episode (``rows``) and their tensors."""

    rows: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor  # [b, C]
    width: int  # C: completion columns kept

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


class EpisodeSource:
    """The stage's data object for the training loop: which prompts each episode samples (a seeded
    shuffle per pass over the prompts), the current episode, and the checkpointed position."""

    def __init__(self, prompts: PromptSet, *, seed: int, shuffle: bool, queries_per_episode: int) -> None:
        self.prompts = prompts
        self.seed, self.shuffle, self.q = seed, shuffle, queries_per_episode
        self.epoch, self.offset = 0, 0
        self.repeated = [False]
        self.episode: Episode | None = None
        self.buffer: dict[str, Any] | None = None  # {"file": ..., "sha256": ...} of the current episode
        self.pending: dict[str, Any] | None = None  # the buffer a resume must load

    def _order(self, epoch: int) -> list[int]:
        idx = list(range(len(self.prompts.ids)))
        if self.shuffle:
            random.Random(f"{self.seed}|grpo|{epoch}").shuffle(idx)
        return idx

    def take_queries(self) -> list[int]:
        """The next ``queries_per_episode`` prompt indices (a new seeded order each pass; a prompt
        comes back only in a later pass, which marks the data as ``repeated``)."""
        out: list[int] = []
        while len(out) < self.q:
            order = self._order(self.epoch)
            take = order[self.offset:self.offset + self.q - len(out)]
            if take and self.epoch > 0:
                self.repeated = [True]
            out += take
            self.offset += len(take)
            if self.offset >= len(order):
                self.epoch, self.offset = self.epoch + 1, 0
        return out

    def describe(self, rows: Sequence[int]) -> str:
        ep = self.episode
        if ep is None or not rows:
            return "no samples"
        g = len(ep.batch.prompt_ids) // max(len(ep.queries), 1)
        wheres = sorted({self.prompts.records[ep.queries[r // g]]["_where"] for r in rows})
        shown = ", ".join(wheres[:4]) + (f" and {len(wheres) - 4} more" if len(wheres) > 4 else "")
        return f"episode {ep.index}, samples {min(rows)}..{max(rows)} of prompts {shown}"

    def state(self) -> dict[str, Any]:
        e = self.episode.index if self.episode is not None else None
        return {"epoch": self.epoch, "offset": self.offset, "repeated": self.repeated[0], "episode": e,
                "rollout_seed": episode_seed(self.seed, e) if e is not None else None, "buffer": self.buffer}

    def load_state(self, st: Mapping[str, Any]) -> None:
        self.epoch, self.offset = int(st["epoch"]), int(st["offset"])
        self.repeated = [bool(st.get("repeated", False))]
        self.pending = dict(st["buffer"]) if st.get("buffer") else None


class GRPOTrainer(Trainer):
    """:class:`qwen25.train.Trainer` running GRPO on a prompts file (stage 0's data).

    ``tokenizer``: an object with ``encode``/``apply_chat_template``/``decode``/``token_to_id``
    (None: ``method.tokenizer``, else Qwen2.5's); ``rollout_engine``: a
    :class:`~qwen25.rl.rollouts.RolloutEngine` (None: :class:`LocalRollouts` on the policy
    itself); ``reward_functions``: extra :class:`~qwen25.rl.rewards.RewardFunction` objects added
    to ``method.rewards`` (a config with ``method.rewards = {}`` may then use them alone)."""

    def __init__(self, config: TrainConfig, *, tokenizer: Any = None, rollout_engine: RolloutEngine | None = None,
                 reward_functions: Sequence[RewardFunction] = (), **kwargs: Any) -> None:
        self.settings = GRPOSettings.from_method(config.method)
        if not self.settings.rewards and not reward_functions:
            raise Qwen25ValueError("GRPO needs rewards: set method.rewards (e.g. {\"math\": 1.0}) or pass "
                                   "reward_functions")
        super().__init__(config, **kwargs)
        if len(config.stages) != 1:
            raise Qwen25ValueError(f"a GRPO run has one stage, this config has {len(config.stages)}")
        self._tokenizer = tokenizer
        self._engine = rollout_engine
        self._extra_rewards = list(reward_functions)
        self.prompts: PromptSet | None = None
        self.rewards: CompositeReward | None = None
        self.ref_model: torch.nn.Module | None = None
        layout = _layout(config, self.settings)
        self.rows_per_step, self.steps_per_episode, self.queries_per_step = layout

    # --- pieces
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from ..tokenizer import Tokenizer

            t = self.settings.tokenizer
            self._tokenizer = Tokenizer.from_pretrained(t) if t else Tokenizer.qwen25()
        return self._tokenizer

    def _read_prompts(self) -> PromptSet:
        stage = self.config.stages[0]
        path = stage.data[0]
        from .prefdata import holds_text

        return read_prompts(path, self.tokenizer() if holds_text(path) else self._tokenizer,
                            max_prompt_length=self.settings.max_prompt_length,
                            vocab_size=self.stage_configs[0][0].vocab_size, chat_template=self.settings.chat_template)

    def check_data(self) -> None:
        if self.prompts is None:
            self.prompts = self._read_prompts()

    def stage_data(self, stage: Stage, index: int) -> EpisodeSource:
        if self.prompts is None:
            self.prompts = self._read_prompts()
        return EpisodeSource(self.prompts, seed=self.config.seed, shuffle=self.config.shuffle,
                             queries_per_episode=self.settings.queries_per_episode)

    def setup(self) -> None:
        first = self.model is None
        super().setup()
        if not first:
            return
        s = self.settings
        world = self.dist.world_size
        if s.queries_per_episode % world:
            raise Qwen25ValueError(f"GRPO: an episode's {s.queries_per_episode} queries (method.queries_per_episode) "
                                   f"do not split over {world} ranks")
        if s.beta != 0:
            self.ref_model = self._reference_model().to(self.device).eval()
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
            if self.fsdp:  # sharded like the policy (its forwards run in the same micro-batches on every rank)
                from ..train.parallel import apply_fsdp

                apply_fsdp(self.ref_model, self.dist.mesh, param_dtype=torch.bfloat16 if self.bf16 else torch.float32)
        fns: list[RewardFunction] = []
        if s.rewards:
            fns = list(build_rewards(s.rewards, max_completion_length=s.max_completion_length, device=self.device,
                                     pad_token_id=self._pad_id()).functions)
        self.rewards = CompositeReward(fns + self._extra_rewards)
        if self._engine is None:
            assert self.model is not None
            sampler: torch.nn.Module = self.model
            if world > 1:
                # a sharded model cannot sample (ranks stop generating at different steps, and every
                # forward of a sharded model is collective): each rank samples with a whole replica,
                # loaded with the gathered weights before each episode
                from ..model import Qwen2ForCausalLM

                sampler = Qwen2ForCausalLM.from_config(self.stage_configs[0][0], dtype=torch.float32,
                                                       seed=self.config.seed).to(self.device)
            self._engine = LocalRollouts(sampler, self._tokenizer_or_none(), batch_size=s.rollout_batch_size,
                                         pad_token_id=self._pad_id(), autocast=torch.bfloat16 if self.bf16 else None)

    def _tokenizer_or_none(self) -> Any:
        try:
            return self.tokenizer()
        except Exception:  # pragma: no cover - Qwen2.5's tokenizer is embedded
            return None

    def _pad_id(self) -> int:
        tok = self._tokenizer if self._tokenizer is not None else self._tokenizer_or_none()
        pad = getattr(tok, "pad_token_id", None) if tok is not None else None
        vocab = self.stage_configs[0][0].vocab_size
        if pad is None or pad >= vocab:
            mc = self.stage_configs[0][0]
            pad = mc.pad_token_id if mc.pad_token_id is not None and mc.pad_token_id < vocab else 0
        return int(pad)

    def _reference_model(self) -> torch.nn.Module:
        from ..model import Qwen2ForCausalLM

        path = self.settings.ref_model or self.config.init_from
        if path is not None:
            return Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32)
        return Qwen2ForCausalLM.from_config(self.stage_configs[0][0], dtype=torch.float32, seed=self.config.seed)

    # --- layout
    def position(self, step: int) -> tuple[int, int, int]:
        """(episode, iteration, mini-batch) of optimizer step ``step`` (1-based), all 0-based."""
        per_episode = self.settings.num_iterations * self.steps_per_episode
        e, within = divmod(step - 1, per_episode)
        it, j = divmod(within, self.steps_per_episode)
        return e, it, j

    def step_rows(self, ep: Episode, j: int) -> list[int]:
        """The samples of mini-batch ``j`` of ``ep`` (all ranks'): its queries' groups, in variance order."""
        g = self.settings.num_generations
        qs = ep.order[j * self.queries_per_step:(j + 1) * self.queries_per_step]
        return [q * g + k for q in qs for k in range(g)]

    def rank_rows(self, rows: Sequence[int]) -> list[int]:
        """This rank's share of a step's samples (a contiguous slice, as the training loop splits rows)."""
        per = len(rows) // self.dist.world_size
        return list(rows[self.dist.rank * per:(self.dist.rank + 1) * per])

    def micro_rows(self, ep: Episode, rows: Sequence[int]) -> list[MicroRows]:
        m = self.config.micro_batch(self.config.stages[0])
        b = ep.batch
        out = []
        for a in range(0, len(rows), m):
            sel = list(rows[a:a + m])
            idx = torch.tensor(sel, dtype=torch.long)
            pm, cm = b.prompt_mask[idx], b.completion_mask[idx]
            p = int(pm.sum(1).max())  # trim the columns that are padding in every row
            c = max(int(cm.sum(1).max()), 1)
            ids = torch.cat([b.prompt_ids[idx][:, -p:], b.completion_ids[idx][:, :c]], 1)
            am = torch.cat([pm[:, -p:], cm[:, :c]], 1)  # as TRL: a masked (truncated) completion is not attended
            out.append(MicroRows(sel, ids, am, cm[:, :c], c))
        return out

    # --- an episode
    @torch.no_grad()
    def _logps(self, model: torch.nn.Module, mb: MicroRows) -> torch.Tensor:
        dev = self.device
        with self._autocast():
            return token_logps(model, mb.input_ids.to(dev), mb.attention_mask.to(dev), mb.width,
                               completion_mask=mb.completion_mask.to(dev), temperature=self.settings.temperature,
                               chunk_size=self.settings.logps_chunk_size).float().cpu()

    def _gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (``[obj]`` in one process)."""
        if self.dist.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def _policy_weights(self) -> Mapping[str, Any]:
        """The policy's state dict for the rollout engine; gathered whole when it is sharded (every
        rank takes part)."""
        assert self.model is not None
        sd = self.model.state_dict()
        if self.dist.world_size == 1:
            return sd
        return {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in sd.items()}

    def run_episode(self, e: int) -> Episode:
        """Sample, score and prepare episode ``e`` (0-based).

        On several ranks, each samples and scores its share of the episode's queries (a contiguous
        slice, sampled with ``shard_seed(episode seed, rank)``); the samples, texts and rewards are
        then gathered, so every rank holds the whole episode: advantages over whole groups, the
        variance order over all the episode's queries, and the same optimizer steps."""
        assert self.model is not None and self.data is not None and self.prompts is not None
        assert self.rewards is not None and self._engine is not None
        s, g = self.settings, self.settings.num_generations
        src = self.data
        assert isinstance(src, EpisodeSource)
        queries = src.take_queries()
        world, rank = self.dist.world_size, self.dist.rank
        share = len(queries) // world
        mine = queries[rank * share:(rank + 1) * share]
        t0 = time.perf_counter()
        self._engine.update_weights(self._policy_weights())
        seed = shard_seed(episode_seed(self.config.seed, e), rank)
        local = self._engine.generate([self.prompts.ids[q] for q in mine], g, s.sampling(seed))
        t_roll = time.perf_counter() - t0
        where = f" (rank {rank})" if world > 1 else ""
        if len(local) != len(mine) * g:
            raise Qwen25ValueError(f"episode {e}{where}: the rollout engine returned {len(local)} completions for "
                                   f"{len(mine)} prompts x {g}")
        for r, c in enumerate(local):
            if c.prompt_index != r // g:
                raise Qwen25ValueError(f"episode {e}{where}: completion {r} is for prompt {c.prompt_index}, expected "
                                       f"{r // g} (the engine must return each prompt's samples together, in order)")
            if len(c.token_ids) > s.max_completion_length:
                raise Qwen25ValueError(f"episode {e}{where}: completion {r} has {len(c.token_ids)} tokens, more "
                                       f"than max_completion_length {s.max_completion_length}")
        tok = self._tokenizer_or_none()
        local_texts = [_decode(tok, c) for c in local]
        records = [self.prompts.records[mine[r // g]] for r in range(len(local))]
        t1 = time.perf_counter()
        local_total, local_parts = self.rewards(records, local_texts, local)
        t_rew = time.perf_counter() - t1
        if world == 1:
            completions, texts, total, parts = local, local_texts, local_total, local_parts
        else:
            got = self._gather((local, local_texts, local_total, local_parts, t_roll, t_rew))
            completions = [dataclasses.replace(c, prompt_index=c.prompt_index + k * share)
                           for k, x in enumerate(got) for c in x[0]]
            texts = [t for x in got for t in x[1]]
            total = torch.cat([x[2] for x in got])
            parts = {name: torch.cat([x[3][name] for x in got]) for name in local_parts}
            t_roll, t_rew = max(x[4] for x in got), max(x[5] for x in got)
        adv = group_advantages(total, g, scale=s.scale_rewards)
        order = order_by_variance(total.view(-1, g)).tolist()
        batch = collate_completions(completions, self._pad_id(), mask_truncated=s.mask_truncated_completions)
        zero = zero_std_groups(total, g)
        lengths = torch.tensor([len(c.token_ids) for c in completions], dtype=torch.float64)
        gen_tokens = float(lengths.sum())
        metrics = CompositeReward.metrics(total, parts)
        metrics.update({
            "episode": e, "frac_reward_zero_std": float(zero.double().mean()), "zero_std_groups": int(zero.sum()),
            "completion_length": float(lengths.mean()), "completion_length_max": float(lengths.max()),
            "completion_length_min": float(lengths.min()), "clipped_ratio": float(batch.truncated.double().mean()),
            "rollout_seconds": t_roll, "reward_seconds": t_rew,
            "rollout_tokens_per_s": gen_tokens / t_roll if t_roll > 0 else float("nan"),
        })
        ep = Episode(index=e, queries=queries, batch=batch, rewards=total, components=parts, advantages=adv.float(),
                     order=order, metrics=metrics, texts=texts, lengths=[len(c.token_ids) for c in completions])
        # old log-probs: needed when the policy moves before a sample is trained on (several steps
        # or iterations per episode); computed before any update, in the very micro-batches training
        # uses, so the first pass sees a ratio of exactly 1. Reference log-probs the same way.
        need_old = s.num_iterations > 1 or self.steps_per_episode > 1
        if need_old or self.ref_model is not None:
            n, cw = batch.completion_ids.shape
            old = torch.zeros(n, cw) if need_old else None
            ref = torch.zeros(n, cw) if self.ref_model is not None else None
            diffs: list[torch.Tensor] = []
            for j in range(self.steps_per_episode):  # each rank its share of each step, as it trains
                for mb in self.micro_rows(ep, self.rank_rows(self.step_rows(ep, j))):
                    idx = torch.tensor(mb.rows)
                    if old is not None:
                        lp = self._logps(self.model, mb)
                        old[idx, :mb.width] = lp
                        m = mb.completion_mask.bool()
                        diffs.append((lp - batch.sampler_logps[idx, :mb.width]).abs()[m])
                    if ref is not None:
                        assert self.ref_model is not None
                        ref[idx, :mb.width] = self._logps(self.ref_model, mb)
            if world > 1:  # each row was filled by one rank: the sums are the whole tensors
                for t in (old, ref):
                    if t is not None:
                        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
            ep.old_logps, ep.ref_logps = old, ref
            self._diff_metrics(diffs, metrics)
        return ep

    def _diff_metrics(self, diffs: list[torch.Tensor], metrics: dict[str, Any]) -> None:
        """sampler_logp_diff_mean/max over every rank's |trainer − sampler| log-prob differences."""
        d = torch.cat(diffs) if diffs else torch.zeros(0)
        stats = self._gather((float(d.double().sum()), int(d.numel()), float(d.max()) if d.numel() else 0.0))
        n = sum(x[1] for x in stats)
        if n:
            metrics["sampler_logp_diff_mean"] = sum(x[0] for x in stats) / n
            metrics["sampler_logp_diff_max"] = max(x[2] for x in stats if x[1])

    def _start_episode(self, e: int) -> Episode:
        src = self.data
        assert isinstance(src, EpisodeSource)
        ep = self.run_episode(e)
        src.episode = ep
        src.buffer = None
        if self.out_dir is not None and self.dist.rank == 0:
            folder = self.out_dir / "rollouts"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"episode-{e}.pt"
            buf = io.BytesIO()
            torch.save(ep.to_dict(), buf)
            from ..data.records import write_bytes

            write_bytes(folder / name, buf.getvalue())
            digest = hashlib.sha256(buf.getbuffer()).hexdigest()
            src.buffer = {"file": f"rollouts/{name}", "sha256": digest}
            if self.settings.log_completions:
                self._log_completions(ep, folder / f"episode-{e}.jsonl")
        return ep

    def _log_completions(self, ep: Episode, path: Path) -> None:
        assert self.prompts is not None
        g = self.settings.num_generations
        minibatch = {}
        for j in range(self.steps_per_episode):
            for r in self.step_rows(ep, j):
                minibatch[r] = j
        from ..data.records import write_jsonl

        records = self.prompts.records
        write_jsonl(path, ({
            "episode": ep.index, "sample": r, "prompt": records[ep.queries[r // g]]["_where"],
            "id": records[ep.queries[r // g]].get("id"), "completion": text, "tokens": ep.lengths[r],
            "finish_reason": "length" if bool(ep.batch.truncated[r]) else "stop",
            "reward": _num(ep.rewards[r]), "rewards": {k: _num(v[r]) for k, v in ep.components.items()},
            "advantage": float(ep.advantages[r]), "minibatch": minibatch.get(r),
        } for r, text in enumerate(ep.texts)))

    def _load_buffer(self, pending: Mapping[str, Any]) -> Episode:
        base = self.last_checkpoint.parent.parent if self.last_checkpoint is not None else self.out_dir
        if base is None:  # pragma: no cover - a resume always has a checkpoint
            raise Qwen25ValueError("resuming mid-episode needs the run folder")
        path = Path(base) / str(pending["file"])
        if not path.is_file():
            raise Qwen25FileNotFoundError(f"resuming mid-episode: the episode's rollouts {path} are missing "
                                          "(they are written when the episode starts)")
        if _sha256(path) != pending.get("sha256"):
            raise FormatError(f"resuming mid-episode: {path} is not the file the checkpoint recorded (sha256 differs)",
                              str(path))
        return Episode.from_dict(torch.load(path, weights_only=True))

    # --- the step
    def forward_backward(self, step: int) -> dict[str, Any]:
        cfg, s = self.config, self.settings
        model = self.model
        assert model is not None
        i = cfg.stage_index(step)
        if i != self._stage:
            self._enter_stage(i)
        src = self.data
        assert isinstance(src, EpisodeSource)
        e, it, j = self.position(step)
        ep_metrics: dict[str, Any] = {}
        if src.episode is None or src.episode.index != e:
            if src.pending is not None and (it, j) != (0, 0):
                src.episode = self._load_buffer(src.pending)
                src.buffer = dict(src.pending)
                if src.episode.index != e:
                    raise Qwen25ValueError(f"resuming at step {step}: the checkpoint's rollouts are of episode "
                                           f"{src.episode.index}, the step belongs to episode {e}")
            elif (it, j) != (0, 0):
                raise Qwen25ValueError(f"step {step} is inside episode {e}, whose rollouts were not recorded (resume "
                                       "from a checkpoint written by this trainer, or at an episode boundary)")
            else:
                self._start_episode(e)
            src.pending = None
        ep = src.episode
        assert ep is not None
        ep_metrics = dict(ep.metrics)  # every step logs the episode its samples come from
        rows = self.step_rows(ep, j)  # every rank's
        mine = self.rank_rows(rows)
        micro = self.micro_rows(ep, mine)
        # the normalisers of the whole step, every micro-batch and rank (each rank holds the whole
        # episode, so these are the global counts without a collective)
        cm_all = ep.batch.completion_mask[torch.tensor(rows)]
        n_seq, n_tok = float(len(rows)), float(cm_all.sum())
        dev = self.device
        parts, tokens = [], 0
        sums = {"kl": 0.0, "low": 0.0, "high": 0.0, "ratio": 0.0}
        diffs: list[torch.Tensor] = []
        for mb in self.accumulating(micro):
            idx = torch.tensor(mb.rows)
            cmask = mb.completion_mask.to(dev)
            with self._autocast():
                logps = token_logps(model, mb.input_ids.to(dev), mb.attention_mask.to(dev), mb.width,
                                    completion_mask=cmask, temperature=s.temperature, chunk_size=s.logps_chunk_size)
            logps = logps.float()
            old = ep.old_logps[idx, :mb.width].to(dev) if ep.old_logps is not None else logps.detach()
            ref = ep.ref_logps[idx, :mb.width].to(dev) if ep.ref_logps is not None else None
            adv = ep.advantages[idx].to(dev)
            loss = grpo_loss(logps, old, ref, adv, cmask, epsilon=s.epsilon, epsilon_high=s.epsilon_high, beta=s.beta,
                             loss_type=s.loss_type, max_completion_length=s.max_completion_length,
                             kl_bias_correction=s.kl_bias_correction, num_sequences=n_seq, num_tokens=n_tok)
            loss.backward()
            parts.append(loss.detach().float())
            tokens += mb.n_tokens
            with torch.no_grad():
                terms = per_token_terms(logps.detach(), old, ref, adv, epsilon=s.epsilon, epsilon_high=s.epsilon_high,
                                        beta=s.beta)
                m = cmask.bool()
                if terms["kl"] is not None:
                    sums["kl"] += float(terms["kl"][m].sum())
                sums["low"] += float(terms["low_clipped"][m].sum())
                sums["high"] += float(terms["high_clipped"][m].sum())
                sums["ratio"] += float(terms["ratio"][m].sum())
                if ep.old_logps is None and it == 0:  # these are the sampling policy's log-probs
                    diffs.append((logps.detach().cpu() - ep.batch.sampler_logps[idx, :mb.width]).abs()[m.cpu()])
        local = torch.stack(parts)
        world = self.dist.world_size
        ce_total = float(local.double().sum())
        if world > 1:  # the loss, the token count and the logged sums of every rank
            from ..train.parallel import all_reduce_sum

            t = all_reduce_sum(torch.tensor([ce_total, float(tokens), sums["kl"], sums["low"], sums["high"],
                                             sums["ratio"]], dtype=torch.float64, device=dev), self.dist).tolist()
            ce_total, tokens = t[0], int(t[1])
            sums = {"kl": t[2], "low": t[3], "high": t[4], "ratio": t[5]}
        denom = max(n_tok, 1.0)
        g = s.num_generations
        step_queries = [ep.order[q] for q in range(j * self.queries_per_step, (j + 1) * self.queries_per_step)]
        grouped = ep.rewards.view(-1, g)
        var = torch.nan_to_num(_nanstd(grouped[torch.tensor(step_queries)].double(), dim=1) ** 2, nan=0.0)
        metrics: dict[str, Any] = {
            **ep_metrics, "episode": e, "iteration": it, "minibatch": j, "samples": len(rows),
            "completion_tokens": int(n_tok), "clip_ratio/low_mean": sums["low"] / denom,
            "clip_ratio/high_mean": sums["high"] / denom, "clip_ratio/region_mean": (sums["low"] + sums["high"]) / denom,
            "ratio_mean": sums["ratio"] / denom, "minibatch_reward_variance": float(var.mean()),
        }
        if s.beta != 0:
            metrics["kl"] = sums["kl"] / denom
        if ep.old_logps is None and it == 0:
            self._diff_metrics(diffs, metrics)
        return {"stage": cfg.stages[0], "rows": rows, "mine": mine, "micro": micro, "n_global": 1.0, "local": local,
                "ce_total": ce_total, "aux_mean": None, "tokens": tokens, "metrics": metrics}

    # --- checkpoints
    def _save(self, step: int, rec: dict[str, Any]) -> None:
        src = self.data if isinstance(self.data, EpisodeSource) else None
        if src is not None:
            _, it, j = self.position(step)
            if (it, j) == (self.settings.num_iterations - 1, self.steps_per_episode - 1):
                src.buffer = None  # the episode is done: a resume starts the next one, nothing to reload
        super()._save(step, rec)
        self._prune_buffers()

    def _prune_buffers(self) -> None:
        """Keep the episode files that a kept checkpoint (or the running episode) refers to."""
        if self.out_dir is None or self.dist.rank != 0 or self.checkpoint_root is None:
            return
        folder = self.out_dir / "rollouts"
        if not folder.is_dir():
            return
        from ..train import checkpoint as ckpt

        wanted = set()
        for c in ckpt.list_checkpoints(self.checkpoint_root):
            try:
                _, st = ckpt.read_checkpoint_meta(c)
            except Exception:  # noqa: BLE001 - an unreadable checkpoint keeps nothing alive
                continue
            buf = (st.get("data") or {}).get("buffer")
            if buf:
                wanted.add(Path(buf["file"]).name)
        src = self.data
        if isinstance(src, EpisodeSource) and src.buffer:
            wanted.add(Path(src.buffer["file"]).name)
        for p in folder.glob("episode-*.pt"):
            if p.name not in wanted:
                p.unlink(missing_ok=True)


def _decode(tok: Any, c: Completion) -> str:
    if tok is None:
        return ""
    return str(tok.decode(list(c.token_ids), skip_special_tokens=True))


def _num(x: Any) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _layout(config: TrainConfig, s: GRPOSettings) -> tuple[int, int, int]:
    """(samples per optimizer step, steps per episode, queries per step), checked."""
    stage = config.stages[0]
    rows = config.rows_per_step(stage)
    g = s.num_generations
    if rows % g:
        raise Qwen25ValueError(f"GRPO: a step's {rows} samples (global_batch_tokens {config.global_batch_tokens} / "
                               f"seq_len {stage.seq_len}) must hold whole queries of {g} samples")
    per_episode = s.queries_per_episode * g
    if per_episode % rows:
        raise Qwen25ValueError(f"GRPO: an episode's {per_episode} samples ({s.queries_per_episode} queries x {g}) "
                               f"do not split into steps of {rows} samples")
    if s.max_prompt_length + s.max_completion_length > stage.seq_len:
        raise Qwen25ValueError(f"GRPO: max_prompt_length {s.max_prompt_length} + max_completion_length "
                               f"{s.max_completion_length} exceed the stage's seq_len {stage.seq_len}")
    return rows, per_episode // rows, rows // g


# ------------------------------------------------------------------------------------ recipes
def _debug() -> TrainConfig:
    """CPU, a minute: the debug model shape with Qwen2.5's vocabulary (a seeded random policy, its
    own reference), 4 queries x 8 samples per episode in 2 steps of 16 samples (micro-batches of
    8), 32 new tokens, 2 episodes."""
    return TrainConfig(
        name="grpo-debug", model="debug",
        stages=(Stage(name="grpo", data=("prompts.jsonl",), seq_len=128, steps=1),),
        global_batch_tokens=16 * 128, micro_batch_size=8, lr=1e-3, schedule="constant", warmup_steps=0,
        weight_decay=0.0, clip_grad_norm=1.0, device="cpu", precision="fp32", checkpoint_every=0, keep_last=2,
        method={"num_generations": 8, "queries_per_episode": 4, "episodes": 2, "max_prompt_length": 96,
                "max_completion_length": 32, "beta": 0.04, "rewards": {"math": 1.0, "format": 0.1}},
    )


def _grpo() -> TrainConfig:
    """The Qwen2.5 report's online RL: 8 samples per query, 2,048 samples per episode (256 queries),
    queries trained on in descending order of reward variance (here: 4 optimizer steps of 512
    samples per episode). Start from the DPO model (``--set init_from=DIR``; also the KL
    reference) and add the reward model (``--set method.rewards=...``, see the README). The learning
    rate, β, lengths and the number of episodes are ours: the report gives none."""
    return TrainConfig(
        name="grpo", model="0.5B",
        stages=(Stage(name="grpo", data=("prompts.jsonl",), seq_len=3072, steps=1),),
        global_batch_tokens=512 * 3072, micro_batch_size=4, lr=1e-6, schedule="constant", warmup_steps=0,
        weight_decay=0.0, clip_grad_norm=1.0, checkpoint_every=20, keep_last=2, log_every=1,
        method={"num_generations": 8, "queries_per_episode": 256, "episodes": 100, "max_prompt_length": 1024,
                "max_completion_length": 2048, "beta": 0.04, "temperature": 1.0,
                "rewards": {"math": 1.0, "code": 1.0}},
    )


RECIPES: dict[str, Callable[[], TrainConfig]] = {"debug": _debug, "grpo": _grpo}


def recipe(name: str) -> TrainConfig:
    return pick(RECIPES, name, "GRPO")


def prepare_config(config: TrainConfig, prompts: str | os.PathLike[str] | None = None) -> TrainConfig:
    """Point the (single) stage at ``prompts`` and size it: episodes x num_iterations x steps per
    episode optimizer steps (so the config a checkpoint records is complete)."""
    s = GRPOSettings.from_method(config.method)
    if len(config.stages) != 1:
        raise Qwen25ValueError(f"a GRPO run has one stage, this config has {len(config.stages)}")
    cfg = override(config, {"stages.0.data": (os.fspath(prompts),)}) if prompts is not None else config
    _, steps_per_episode, _ = _layout(cfg, s)
    return override(cfg, {"stages.0.steps": s.episodes * s.num_iterations * steps_per_episode})


def train_grpo(config: TrainConfig, *, prompts: str | os.PathLike[str] | None = None, out_dir: str | None = None,
               **trainer_kwargs: Any) -> tuple[GRPOTrainer, list[dict[str, Any]]]:
    """Run a GRPO config (sized by :func:`prepare_config`) and write the policy to ``OUT/final``
    at the end (on several ranks: gathered, written by rank 0)."""
    cfg = prepare_config(config, prompts)
    trainer = GRPOTrainer(cfg, out_dir=out_dir, **trainer_kwargs)
    records = trainer.fit()
    if out_dir is not None:  # on several ranks: gathered, written by rank 0 (every rank takes part)
        assert trainer.model is not None
        save_final(trainer.model, Path(out_dir) / "final")
    return trainer, records
