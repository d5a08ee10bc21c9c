"""Dual Chunk Attention against independent references: transformers' RoPE + PyTorch SDPA when the
sequence fits in one chunk, and a naive reference built directly from the position-index
definitions with explicit per-(query, key) masks and one softmax over a materialised [Tq, Tk]
score matrix, on inputs spanning several chunks (prefill and incremental decoding)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import qwen25  # noqa: E402
from qwen25.model.dca import dca_scaling_factor, dual_chunk_attention  # noqa: E402

qwen2 = pytest.importorskip("transformers.models.qwen2.modeling_qwen2")

F32, BF16 = torch.float32, torch.bfloat16


def _tables(n: int, d: int, theta: float = 10000.0, mscale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.outer(torch.arange(n, dtype=torch.float64), inv)
    emb = torch.cat([ang, ang], -1)
    return (emb.cos() * mscale).float(), (emb.sin() * mscale).float()


def _inputs(b: int, h: int, hk: int, t: int, d: int, dtype: torch.dtype, seed: int):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, n, t, d, generator=g).to(dtype) for n in (h, hk, hk))


def naive_dca(q, k, v, chunk_size, local_size, orig, positions, cos, sin, factor_enabled=True, seq_len=None):  # type: ignore[no-untyped-def]
    """Straight from the definitions: one score per (query p, key j) chosen by the key's chunk."""
    b, h, tq, d = q.shape
    tk = k.shape[2]
    s = chunk_size - local_size
    p = positions.to(torch.int64)
    j = torch.arange(tk)

    def rope(x, pos):  # type: ignore[no-untyped-def]
        c, sn = cos[pos][None], sin[pos][None]  # [1, T, D]
        out, _ = qwen2.apply_rotary_pos_emb(x.float(), x.float(), c, sn)
        return out

    kr = rope(k, j % s).repeat_interleave(h // k.shape[1], dim=1)
    vr = v.float().repeat_interleave(h // k.shape[1], dim=1)
    s_intra = rope(q, p % s) @ kr.transpose(-1, -2)
    s_succ = rope(q, torch.clamp(p % s + s, max=chunk_size)) @ kr.transpose(-1, -2)
    s_inter = rope(q, torch.full_like(p, min(2 * s - 1, chunk_size))) @ kr.transpose(-1, -2)
    qc, kc = (p // s)[:, None], (j // s)[None, :]
    same, prev = kc == qc, kc == qc - 1
    scores = torch.where(same, s_intra, torch.where(prev, s_succ, s_inter))
    factor = 1.0
    if factor_enabled and orig > 0:
        factor = max(1.0, 0.1 * math.log((seq_len or tk) / orig) + 1.0)
    scores = scores * (d ** -0.5) * factor
    scores = scores.masked_fill(~(j[None, :] <= p[:, None]), float("-inf"))
    return (torch.softmax(scores, -1) @ vr).to(v.dtype)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("t", [1, 9, 24])
def test_one_chunk_equals_standard_attention(dtype: torch.dtype, t: int) -> None:
    q, k, v = _inputs(2, 4, 2, t, 16, dtype, seed=t)
    cos, sin = _tables(64, 16)
    out = dual_chunk_attention(q, k, v, chunk_size=32, local_size=8, original_max_position_embeddings=0,
                               positions=torch.arange(t), cos=cos, sin=sin, block_size=5)
    c, s = cos[:t][None].to(dtype), sin[:t][None].to(dtype)
    qr, kr = qwen2.apply_rotary_pos_emb(q.float(), k.float(), c.float(), s.float())
    ref = F.scaled_dot_product_attention(qr, kr, v.float(), is_causal=True, enable_gqa=True).to(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == F32 else dict(rtol=1.6e-2, atol=1.6e-2)
    torch.testing.assert_close(out, ref, **tol)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("chunk_size,local_size,t,block", [(16, 4, 50, 5), (16, 4, 50, 512), (10, 0, 37, 3),
                                                           (12, 7, 41, 4), (8, 2, 7, 2)])
def test_prefill_equals_naive_reference(dtype, chunk_size, local_size, t, block) -> None:  # type: ignore[no-untyped-def]
    q, k, v = _inputs(2, 6, 2, t, 8, dtype, seed=chunk_size + t)
    cos, sin = _tables(chunk_size + 1, 8, mscale=1.1)
    kw = dict(chunk_size=chunk_size, local_size=local_size, original_max_position_embeddings=12)
    out = dual_chunk_attention(q, k, v, positions=torch.arange(t), cos=cos, sin=sin, block_size=block, **kw)
    ref = naive_dca(q, k, v, chunk_size, local_size, 12, torch.arange(t), cos, sin)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == F32 else dict(rtol=1.6e-2, atol=1.6e-2)
    torch.testing.assert_close(out, ref, **tol)


def test_decoding_step_by_step_equals_naive_reference() -> None:
    t, cs, ls = 45, 16, 4
    q, k, v = _inputs(1, 4, 4, t, 8, F32, seed=3)
    cos, sin = _tables(cs + 1, 8)
    full = naive_dca(q, k, v, cs, ls, 0, torch.arange(t), cos, sin)
    for p in range(t):  # one query at a time, keys 0..p (a KV cache)
        out = dual_chunk_attention(q[:, :, p : p + 1], k[:, :, : p + 1], v[:, :, : p + 1], chunk_size=cs, local_size=ls,
                                   original_max_position_embeddings=0, positions=torch.tensor([p]), cos=cos, sin=sin)
        torch.testing.assert_close(out, full[:, :, p : p + 1], rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 52), max_size=4, unique=True), block=st.integers(1, 20))
def test_any_prefill_chunking_gives_the_same_result(cuts: list[int], block: int) -> None:
    t, cs, ls = 53, 14, 3
    q, k, v = _inputs(1, 2, 1, t, 8, F32, seed=4)
    cos, sin = _tables(cs + 1, 8)
    kw = dict(chunk_size=cs, local_size=ls, original_max_position_embeddings=16, cos=cos, sin=sin, seq_len=t)
    one_shot = dual_chunk_attention(q, k, v, positions=torch.arange(t), **kw)
    bounds = [0, *sorted(cuts), t]
    pieces = [dual_chunk_attention(q[:, :, a:e], k[:, :, :e], v[:, :, :e], positions=torch.arange(a, e),
                                   block_size=block, **kw) for a, e in zip(bounds, bounds[1:]) if e > a]
    torch.testing.assert_close(torch.cat(pieces, dim=2), one_shot, rtol=1e-5, atol=1e-5)


def test_scaling_factor_formula_and_switch() -> None:
    assert dca_scaling_factor(100, 0) == 1.0
    assert dca_scaling_factor(100, 400) == 1.0  # never below 1
    assert dca_scaling_factor(4 * 32768, 32768) == pytest.approx(0.1 * math.log(4) + 1)
    t, cs, ls = 30, 12, 2
    q, k, v = _inputs(1, 2, 2, t, 8, F32, seed=5)
    cos, sin = _tables(cs + 1, 8)
    kw = dict(chunk_size=cs, local_size=ls, original_max_position_embeddings=10, positions=torch.arange(t), cos=cos, sin=sin)
    on = dual_chunk_attention(q, k, v, **kw)
    off = dual_chunk_attention(q, k, v, scaling_factor_enabled=False, **kw)
    f = 0.1 * math.log(3) + 1
    manual = dual_chunk_attention(q, k, v, scaling_factor_enabled=False, softmax_scale=8 ** -0.5 * f, **kw)
    torch.testing.assert_close(on, manual)
    assert not torch.allclose(on, off)
    torch.testing.assert_close(on, naive_dca(q, k, v, cs, ls, 10, torch.arange(t), cos, sin), rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_named() -> None:
    q, k, v = _inputs(1, 2, 1, 6, 8, F32, seed=6)
    cos, sin = _tables(20, 8)
    kw = dict(original_max_position_embeddings=0, cos=cos, sin=sin)
    with pytest.raises(qwen25.Qwen25ValueError, match="local_size"):
        dual_chunk_attention(q, k, v, chunk_size=4, local_size=4, positions=torch.arange(6), **kw)
    with pytest.raises(qwen25.Qwen25ValueError, match="contiguous"):
        dual_chunk_attention(q, k, v, chunk_size=8, local_size=2, positions=torch.tensor([0, 1, 2, 4, 5, 6]), **kw)
    with pytest.raises(qwen25.Qwen25ValueError, match="keys up to 6"):
        dual_chunk_attention(q, k, v, chunk_size=8, local_size=2, positions=torch.arange(1, 7), **kw)
    with pytest.raises(qwen25.Qwen25ValueError, match=r"cos/sin must be \[>= 6, 8\]"):
        dual_chunk_attention(q, k, v, chunk_size=8, local_size=2, positions=torch.arange(6), original_max_position_embeddings=0,
                             cos=cos[:3], sin=sin[:3])
    with pytest.raises(qwen25.Qwen25ValueError, match="do not fit"):
        dual_chunk_attention(q, k[:, :, :, :4], v, chunk_size=8, local_size=2, positions=torch.arange(6), **kw)
