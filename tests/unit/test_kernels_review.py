"""The review findings of issue 17, each pinned on the CPU:

* the fused cross-entropy under ``torch.autocast`` (it raised: a bf16 logits chunk and an fp32
  weight in an ``out=`` matmul), against the same computation done eagerly under the same
  autocast, directly and through the model;
* the in-place RoPE's layout rules: stride-0 (expanded) inputs and q/k sharing memory are never
  rotated in place, checked against a brute-force enumeration of the element offsets;
* ``apply_rope(q, q)`` rotates each output once, as the eager fallback.

The kernel path runs with the torch transliteration of the kernels (ContractOps); the real .cu code
runs the same paths in tests/unit/test_kernels_host.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import qwen25  # noqa: E402
import qwen25.kernels as K  # noqa: E402
from qwen25.kernels import _fallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _kernel_contracts import ContractOps  # noqa: E402

BF16, F32 = torch.bfloat16, torch.float32


def _close(got: torch.Tensor, ref: torch.Tensor, rel: float) -> None:
    """|got - ref| <= rel * (|ref| + max|ref|): relative to the values and to the tensor's scale."""
    assert got.shape == ref.shape and got.dtype == ref.dtype
    scale = float(ref.float().abs().max())
    assert scale > 0
    torch.testing.assert_close(got.float(), ref.float(), rtol=rel, atol=rel * scale)


@pytest.fixture
def kernel_path(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(K, "_use_kernels", lambda *ts: True)
    monkeypatch.setattr(K, "_ops", lambda: ContractOps)
    ContractOps.calls = []
    yield ContractOps


# ---- autocast --------------------------------------------------------------------------------


def _ce_case(seed: int = 0, n: int = 19, h: int = 24, v: int = 211) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g) * 0.5
    weight = torch.randn(v, h, generator=g) * 0.5
    labels = torch.randint(0, v, (n,), generator=g)
    labels[::5] = -100
    return hidden, weight, labels


def _loss_and_grads(fn: Any, hidden: torch.Tensor, weight: torch.Tensor) -> list[torch.Tensor]:
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    with torch.autocast("cpu", dtype=BF16):
        loss = fn(h, w)
    loss.backward()
    return [loss.detach(), h.grad, w.grad]


@pytest.mark.parametrize("chunk", [4, 64])
def test_fused_cross_entropy_under_autocast_equals_eager_autocast(chunk: int) -> None:
    hidden, weight, labels = _ce_case()
    got = _loss_and_grads(lambda h, w: K.fused_cross_entropy(h, w, labels, chunk_size=chunk), hidden, weight)
    # eager under the same autocast: the matmul in bf16, the loss in fp32
    ref = _loss_and_grads(lambda h, w: F.cross_entropy((h @ w.t()).float(), labels), hidden, weight)
    assert [t.dtype for t in got] == [F32, F32, F32]  # gradients in the parameters' dtype
    for a, r in zip(got, ref):
        _close(a, r, 2e-2)  # bf16 logits and bf16 gradient matmuls on both sides


def test_fused_cross_entropy_under_autocast_accepts_mixed_input_dtypes() -> None:
    hidden, weight, labels = _ce_case(1)
    got = _loss_and_grads(lambda h, w: K.fused_cross_entropy(h.to(BF16), w, labels), hidden, weight)
    ref = _loss_and_grads(lambda h, w: F.cross_entropy((h.to(BF16) @ w.t()).float(), labels), hidden, weight)
    for a, r in zip(got, ref):
        _close(a, r, 2e-2)
    with pytest.raises(qwen25.Qwen25ValueError, match="bfloat16"):  # outside autocast it stays an error
        K.fused_cross_entropy(hidden.to(BF16), weight, labels)


def test_fused_cross_entropy_kernel_path_under_autocast_gets_bf16_logits(kernel_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[torch.dtype] = []
    real = ContractOps.ce_rows_

    def spy(logits, labels, ignore_index, write_grad):  # type: ignore[no-untyped-def]
        seen.append(logits.dtype)
        return real(logits, labels, ignore_index, write_grad)

    monkeypatch.setattr(ContractOps, "ce_rows_", spy)
    hidden, weight, labels = _ce_case(2)
    got = _loss_and_grads(lambda h, w: K.fused_cross_entropy(h, w, labels, chunk_size=8), hidden, weight)
    ref = _loss_and_grads(lambda h, w: F.cross_entropy((h @ w.t()).float(), labels), hidden, weight)
    assert seen == [BF16] * 3
    for a, r in zip(got, ref):
        _close(a, r, 2e-2)


def test_fused_cross_entropy_under_fp16_autocast_takes_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels have fp32 and bf16 entry points only: fp16 logits go to the eager chunk op."""
    monkeypatch.setattr(K, "_use_kernels", lambda *ts: True)

    def no_kernels() -> None:
        raise AssertionError("the kernel path was chosen for fp16 logits")

    monkeypatch.setattr(K, "_ops", no_kernels)
    hidden, weight, labels = _ce_case(3)
    h = hidden.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = K.fused_cross_entropy(h, weight, labels)
        ref = F.cross_entropy((hidden @ weight.t()).float(), labels)
    loss.backward()
    _close(loss.detach(), ref, 1e-2)
    assert h.grad is not None and h.grad.dtype == F32


def test_model_fused_loss_under_autocast_equals_unfused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model turns the fused loss on by default for CUDA tensors; with fp32 weights under bf16
    autocast it raised. Its loss and gradients equal the unfused loss's under the same autocast."""
    from qwen25.model import Qwen2ForCausalLM, Qwen25Config

    cfg = Qwen25Config(num_hidden_layers=2, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=300, max_position_embeddings=64, torch_dtype="float32")
    m = Qwen2ForCausalLM.from_config(cfg, seed=0)
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    params = [m.model.layers[0].mlp.up_proj.weight, m.lm_head.weight]
    results = []
    for fused in (True, False):
        with torch.autocast("cpu", dtype=BF16):
            out = m(ids, labels=ids, fused_loss=fused)
        results.append([out.loss.detach(), *torch.autograd.grad(out.loss, params)])
    for a, r in zip(*results):
        _close(a, r, 3e-2)


# ---- RoPE layouts ----------------------------------------------------------------------------


def _offsets(t: torch.Tensor) -> list[int]:
    """Every element's storage offset, by enumeration (the brute-force oracle)."""
    idx = torch.arange(t.numel()).reshape(t.shape) if t.numel() else torch.zeros(t.shape, dtype=torch.long)
    out = torch.full(t.shape, t.storage_offset(), dtype=torch.long)
    for d, (n, s) in enumerate(zip(t.shape, t.stride())):
        shape = [1] * t.dim()
        shape[d] = n
        out = out + torch.arange(n).reshape(shape) * s
    del idx
    return out.reshape(-1).tolist()


_dims = st.lists(st.tuples(st.integers(1, 4), st.integers(0, 40)), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(dims=_dims, offset=st.integers(0, 30))
def test_in_place_layout_check_never_accepts_overlapping_elements(dims: list[tuple[int, int]], offset: int) -> None:
    shape = [n for n, _ in dims] + [2]
    stride = [s for _, s in dims] + [1]
    t = torch.empty(4096).as_strided(shape, stride, offset)
    offs = _offsets(t)
    if K._non_overlapping_last_contiguous(t):
        assert len(set(offs)) == len(offs), (shape, stride)


def test_in_place_layout_check_accepts_the_models_layouts_and_rejects_expanded_ones() -> None:
    qkv = torch.empty(2, 7, 6 * 16)
    q = qkv[..., : 4 * 16].view(2, 7, 4, 16).transpose(1, 2)  # a transposed projection slice
    assert K._non_overlapping_last_contiguous(q)
    assert K._non_overlapping_last_contiguous(torch.empty(2, 4, 7, 16))
    assert K._non_overlapping_last_contiguous(torch.empty(2, 7, 4, 16).transpose(1, 2))
    k_small = torch.empty(2, 2, 7, 16)
    k_gqa = k_small[:, :, None].expand(2, 2, 3, 7, 16).reshape(2, 6, 7, 16)  # a copy: reshape of expand
    k_exp = k_small[:, :1].expand(2, 4, 7, 16)  # stride 0 over heads: every head aliases
    assert K._non_overlapping_last_contiguous(k_gqa)
    assert k_exp.stride(1) == 0 and not K._non_overlapping_last_contiguous(k_exp)
    assert not K._non_overlapping_last_contiguous(torch.empty(7, 1).expand(7, 16))  # last dim stride 0


@settings(max_examples=300, deadline=None)
@given(dims_a=_dims, dims_b=_dims, off_a=st.integers(0, 60), off_b=st.integers(0, 60))
def test_may_overlap_is_false_only_for_disjoint_elements(dims_a, dims_b, off_a: int, off_b: int) -> None:  # type: ignore[no-untyped-def]
    buf = torch.empty(8192)
    a = buf.as_strided([n for n, _ in dims_a], [s for _, s in dims_a], off_a)
    b = buf.as_strided([n for n, _ in dims_b], [s for _, s in dims_b], off_b)
    if not K._may_overlap(a, b):
        assert not set(_offsets(a)) & set(_offsets(b)), (a.shape, a.stride(), off_a, b.shape, b.stride(), off_b)


def test_may_overlap_on_the_layouts_that_matter() -> None:
    b, t, hq, hk, d = 2, 7, 4, 2, 16
    qkv = torch.empty(b, t, (hq + 2 * hk) * d)
    q = qkv[..., : hq * d].view(b, t, hq, d).transpose(1, 2)
    k = qkv[..., hq * d : (hq + hk) * d].view(b, t, hk, d).transpose(1, 2)
    v = qkv[..., (hq + hk) * d :].view(b, t, hk, d).transpose(1, 2)
    assert not set(_offsets(q)) & set(_offsets(k))
    assert not K._may_overlap(q, k) and not K._may_overlap(k, v)  # exact here: rotated in place
    assert not K._may_overlap(torch.empty(2, 3), torch.empty(2, 3))  # different storages
    assert K._may_overlap(q, q) and K._may_overlap(q, q[:, :1])
    assert K._may_overlap(q, qkv[..., hq * d - 1 : hq * d + 7].view(b, t, 1, 8).transpose(1, 2))


def _rope_inputs(seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 4, 5, 16, generator=g)
    k_small = torch.randn(2, 2, 5, 16, generator=g)
    cos, sin = torch.randn(1, 5, 16, generator=g), torch.randn(1, 5, 16, generator=g)
    return q, k_small, cos, sin


def test_apply_rope_of_q_with_itself_rotates_each_output_once(kernel_path) -> None:  # type: ignore[no-untyped-def]
    q, _, cos, sin = _rope_inputs(4)
    eq, ek = _fallback.apply_rope(q, q, cos, sin)
    x = q.clone()
    oq, ok = K.apply_rope(x, x, cos, sin)
    torch.testing.assert_close(oq, eq)
    torch.testing.assert_close(ok, ek)  # was rotated twice: once through q, once more as k
    assert oq.data_ptr() == x.data_ptr() and ok.data_ptr() != x.data_ptr()


def test_apply_rope_on_expanded_keys_copies_instead_of_racing(kernel_path) -> None:  # type: ignore[no-untyped-def]
    q, k_small, cos, sin = _rope_inputs(5)
    k = k_small[:, :1].expand(2, 4, 5, 16)  # stride 0 over heads
    before = k_small.clone()
    eq, ek = _fallback.apply_rope(q, k, cos, sin)
    oq, ok = K.apply_rope(q.clone(), k, cos, sin)
    torch.testing.assert_close(oq, eq)
    torch.testing.assert_close(ok, ek)
    assert torch.equal(k_small, before)  # the aliased storage was not rotated (4 times) in place


def test_apply_rope_on_a_view_of_a_leaf_that_requires_grad(kernel_path) -> None:  # type: ignore[no-untyped-def]
    q, _, cos, sin = _rope_inputs(6)
    leaf = q.reshape(2, 4, 80).clone().requires_grad_()
    view = leaf.view(2, 4, 5, 16)
    oq, ok = K.apply_rope(view, view.detach().clone(), cos, sin)  # in place on the view would raise
    (oq.sum() * 2).backward()
    eq, _ = _fallback.apply_rope(q, q, cos, sin)
    torch.testing.assert_close(oq.detach(), eq)
    assert torch.equal(leaf.detach(), q.reshape(2, 4, 80)) and leaf.grad is not None
