"""Dual Chunk Attention (DCA), as used by Qwen2.5-1M and Qwen2.5's long-context inference (the
scheme of ChunkLlama and vLLM's ``dual_chunk_flash_attn``), as a standalone attention function.

The sequence is cut into chunks of ``s = chunk_size - local_size`` positions. Keys are rotated at
position ``j mod s``. A query at absolute position ``p`` (chunk ``c = p // s``) attends causally to
the keys ``j <= p`` and is rotated differently for three groups of keys:

* same chunk (``j // s == c``):        query position ``p mod s``
* previous chunk (``j // s == c - 1``): query position ``min(p mod s + s, chunk_size)``
* older chunks (``j // s < c - 1``):    query position ``min(2s - 1, chunk_size)``

so no relative distance exceeds ``chunk_size``. The three partial attentions are merged exactly by
log-sum-exp (one softmax over all visible keys). Where enabled (``original_max_position_embeddings
> 0``), the logits are scaled by ``max(1, 0.1 * ln(L / original_max_position_embeddings) + 1)``
with ``L`` the sequence length (vLLM scales the keys by the same factor).

Memory: queries are processed in blocks inside one chunk and keys in blocks, with an online
log-sum-exp merge, so the largest temporary is [B, H, block, block]; no [T, T] score matrix or mask
is ever built and memory grows linearly with the length.

Shapes: B batch, H query heads, Hk key/value heads (H % Hk == 0, grouped-query attention),
Tq queries, Tk keys (the whole sequence so far: cache + new), D head dim.
"""

from __future__ import annotations

import math

import torch

from ..errors import Qwen25ValueError

__all__ = ["dual_chunk_attention", "dca_scaling_factor", "dca_query_positions"]


def dca_scaling_factor(seq_len: int, original_max_position_embeddings: int) -> float:
    """``max(1, 0.1 * ln(seq_len / original_max) + 1)``; 1 when original_max <= 0."""
    if original_max_position_embeddings <= 0 or seq_len <= 0:
        return 1.0
    return max(1.0, 0.1 * math.log(seq_len / original_max_position_embeddings) + 1.0)


def dca_query_positions(positions: torch.Tensor, chunk_size: int, local_size: int
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (intra, successor, inter) rotary positions of queries at absolute ``positions``."""
    s = chunk_size - local_size
    intra = positions % s
    succ = torch.clamp(intra + s, max=chunk_size)
    inter = torch.full_like(positions, min(2 * s - 1, chunk_size))
    return intra, succ, inter


def _rotate(x: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, h, T, D]; pos: [T]; cos/sin: [P, D] rotate-half tables -> [1, 1, T, D]
    c = cos.index_select(0, pos).to(x.dtype)[None, None]
    s = sin.index_select(0, pos).to(x.dtype)[None, None]
    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * c + rot * s


def _partial(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q [B, Hk, G, tq, D] on k/v [B, Hk, tk, D] (fp32): (lse [B,Hk,G,tq], out)."""
    scores = torch.matmul(q, k.unsqueeze(2).transpose(-1, -2)) * scale  # [B, Hk, G, tq, tk]
    if mask is not None:  # [tq, tk], True = visible
        scores = scores.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))  # rows with no visible key
    p = torch.exp(scores - safe.unsqueeze(-1))
    return lse, torch.matmul(p, v.unsqueeze(2))


def _merge(lse: torch.Tensor, out: torch.Tensor, lse2: torch.Tensor, out2: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor]:
    new = torch.logaddexp(lse, lse2)
    safe = torch.where(torch.isfinite(new), new, torch.zeros_like(new))
    w1 = torch.exp(lse - safe).unsqueeze(-1)
    w2 = torch.exp(lse2 - safe).unsqueeze(-1)
    return new, out * w1 + out2 * w2


def dual_chunk_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    chunk_size: int,
    local_size: int,
    original_max_position_embeddings: int,
    positions: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    scaling_factor_enabled: bool = True,
    seq_len: int | None = None,
    softmax_scale: float | None = None,
    block_size: int = 512,
) -> torch.Tensor:
    """Causal Dual Chunk Attention of un-rotated q [B, H, Tq, D] on un-rotated k, v [B, Hk, Tk, D].

    positions: the absolute positions of the queries, a contiguous ascending range ending at or
        before Tk - 1 ([Tk - Tq, Tk) in prefill and decoding). Keys sit at positions 0 .. Tk - 1.
    cos, sin: rotate-half RoPE tables [P, D] indexed by position (YaRN scaling folded in), with
        P > min(chunk_size, the largest position used).
    scaling_factor_enabled: scale the logits by :func:`dca_scaling_factor` of ``seq_len`` (default
        Tk; pass the final prompt length to make chunked prefill match a one-shot prefill).
    softmax_scale: default 1/sqrt(D). block_size: query/key block (memory ~ B*H*block^2 floats).
    Returns [B, H, Tq, D] in v's dtype; the math is fp32.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise Qwen25ValueError(f"dual_chunk_attention: q, k, v must be [B, H, T, D], got {tuple(q.shape)}, "
                               f"{tuple(k.shape)}, {tuple(v.shape)}")
    b, h, tq, d = q.shape
    _, hk, tk, _ = k.shape
    if k.shape != v.shape or k.shape[0] != b or k.shape[3] != d or h % max(hk, 1) != 0 or hk == 0:
        raise Qwen25ValueError(f"dual_chunk_attention: k {tuple(k.shape)} / v {tuple(v.shape)} do not fit q {tuple(q.shape)}")
    if d % 2:
        raise Qwen25ValueError(f"dual_chunk_attention: head dim {d} must be even")
    s = chunk_size - local_size
    if local_size < 0 or s <= 0:
        raise Qwen25ValueError(f"dual_chunk_attention: need 0 <= local_size < chunk_size, got local_size {local_size}, "
                               f"chunk_size {chunk_size}")
    if block_size < 1:
        raise Qwen25ValueError(f"dual_chunk_attention: block_size must be >= 1, got {block_size}")
    positions = positions.reshape(-1).to(torch.int64)
    if positions.numel() != tq:
        raise Qwen25ValueError(f"dual_chunk_attention: {positions.numel()} positions for {tq} queries")
    start = int(positions[0]) if tq else 0
    if tq and not torch.equal(positions.cpu(), torch.arange(start, start + tq)):
        raise Qwen25ValueError("dual_chunk_attention: positions must be a contiguous ascending range")
    if tq and (start < 0 or start + tq > tk):
        raise Qwen25ValueError(f"dual_chunk_attention: query positions [{start}, {start + tq}) need keys up to "
                               f"{start + tq - 1}, but there are {tk}")
    need = max(min(tk, s), 1)  # keys are rotated at j mod s
    if tq:
        p_intra, p_succ, p_inter = dca_query_positions(positions, chunk_size, local_size)
        need = max(need, int(p_intra.max()) + 1)
        if start + tq - 1 >= s:  # some query has a previous chunk
            need = max(need, int(p_succ[positions >= s].max()) + 1)
        if start + tq - 1 >= 2 * s:  # some query has older chunks
            need = max(need, int(p_inter[0]) + 1)
    if cos.dim() != 2 or cos.shape != sin.shape or cos.shape[1] != d or cos.shape[0] < need:
        raise Qwen25ValueError(f"dual_chunk_attention: cos/sin must be [>= {need}, {d}], got {tuple(cos.shape)} "
                               f"and {tuple(sin.shape)}")

    factor = dca_scaling_factor(seq_len if seq_len is not None else tk, original_max_position_embeddings) \
        if scaling_factor_enabled else 1.0
    scale = (softmax_scale if softmax_scale is not None else d ** -0.5) * factor
    g = h // hk
    dev = q.device
    cos = cos.to(dev, torch.float32)
    sin = sin.to(dev, torch.float32)
    kf = _rotate(k.float(), torch.arange(tk, device=dev) % s, cos, sin)  # [B, Hk, Tk, D]
    vf = v.float()
    qf = q.float().view(b, hk, g, tq, d)  # query head j*g + i uses KV head j
    out = torch.empty(b, hk, g, tq, d, dtype=torch.float32, device=dev)

    def rot_q(lo: int, hi: int, pos: torch.Tensor) -> torch.Tensor:
        blk = qf[:, :, :, lo:hi].reshape(b, hk * g, hi - lo, d)
        return _rotate(blk, pos, cos, sin).view(b, hk, g, hi - lo, d)

    a = start
    while a < start + tq:  # query blocks never straddle a chunk boundary
        chunk = a // s
        c0 = chunk * s  # first position of the query's chunk
        e = min(start + tq, c0 + s, a + block_size)
        qpos = torch.arange(a, e, device=dev)
        p_intra, p_succ, p_inter = dca_query_positions(qpos, chunk_size, local_size)
        lse = torch.full((b, hk, g, e - a), float("-inf"), device=dev)
        acc = torch.zeros(b, hk, g, e - a, d, device=dev)
        groups = [(rot_q(a - start, e - start, p_intra), c0, e, True)]
        if chunk >= 1:
            groups.append((rot_q(a - start, e - start, p_succ), c0 - s, c0, False))
        if chunk >= 2:
            groups.append((rot_q(a - start, e - start, p_inter), 0, c0 - s, False))
        for qrot, k_lo, k_hi, causal in groups:
            for kb in range(k_lo, k_hi, block_size):
                kb_end = min(k_hi, kb + block_size)
                mask = None
                if causal and kb_end - 1 > a:  # some key in the block is after some query
                    mask = torch.arange(kb, kb_end, device=dev)[None, :] <= qpos[:, None]
                part = _partial(qrot, kf[:, :, kb:kb_end], vf[:, :, kb:kb_end], scale, mask)
                lse, acc = _merge(lse, acc, *part)
        out[:, :, :, a - start : e - start] = acc
        a = e
    return out.view(b, h, tq, d).to(v.dtype)
