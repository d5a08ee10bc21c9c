"""Eager PyTorch versions of every kernel: the CPU path, and the oracle the GPU tests compare
the kernels against. They follow transformers' Qwen2 code (Qwen2RMSNorm, apply_rotary_pos_emb,
Qwen2MLP) operation by operation, including where values are rounded to the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    # q, k: [B, H, T, D]; cos, sin: [B or 1, T, D] -> [B or 1, 1, T, D] broadcast over heads
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def moe_rows(
    hidden: torch.Tensor, order: torch.Tensor, top_k: int
) -> torch.Tensor:
    # permuted[j] = hidden[order[j] // top_k]
    return hidden.index_select(0, torch.div(order, top_k, rounding_mode="floor"))


def moe_combine(permuted: torch.Tensor, order: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    # weights: [N, K]; out[t] = sum_k weights[t, k] * permuted[pos[t*K + k]], summed in fp32
    n, k = weights.shape
    pos = inverse_permutation(order)
    gathered = permuted.index_select(0, pos).view(n, k, permuted.shape[-1])  # [N, K, H]
    out = (gathered.float() * weights.float().unsqueeze(-1)).sum(1)
    return out.to(permuted.dtype)


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    pos = torch.empty_like(order)
    pos[order] = torch.arange(order.numel(), device=order.device, dtype=order.dtype)
    return pos


def ce_chunk(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, write_grad: bool) -> torch.Tensor:
    """Per-row cross-entropy of one logits chunk [rows, V] (fp32 math). When ``write_grad``, the
    chunk is overwritten with d loss_row / d logits = softmax - onehot (zero rows where ignored).
    This is the eager twin of ``ce_rows`` in cross_entropy.cu."""
    lf = logits.float()  # a copy for bf16; the chunk itself for fp32 (overwritten below anyway)
    lse = torch.logsumexp(lf, dim=-1)
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    target = lf.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = torch.where(valid, lse - target, torch.zeros_like(lse))
    if write_grad:
        g = lf.sub_(lse.unsqueeze(1)).exp_()  # softmax, in place
        g.scatter_add_(1, safe.unsqueeze(1), -valid.to(g.dtype).unsqueeze(1))
        g.mul_(valid.to(g.dtype).unsqueeze(1))
        if g.data_ptr() != logits.data_ptr():
            logits.copy_(g)
    return loss
