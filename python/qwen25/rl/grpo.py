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

import math
from typing import Any

import torch

from ..errors import Qwen25ValueError

__all__ = ["group_advantages", "k3_kl", "grpo_loss", "order_by_variance", "token_logps", "linear_logps",
           "LOSS_TYPES", "SCALES"]

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
