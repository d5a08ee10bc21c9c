"""GPU tests: every CUDA kernel against its eager fallback (the oracle), forward and backward, in
fp32 and bf16, on odd shapes. Skipped cleanly without a CUDA GPU and CuPy.

Tolerances (torch.testing.assert_close), kernel vs fallback:
  fp32: rtol 1e-5, atol 1e-5 (reductions over a 152k vocabulary: rtol 1e-4, atol 1e-5)
  bf16: rtol 1.6e-2, atol 1e-2 -- the kernels round to bf16 at the same points as the eager code,
        so differences come only from fp32 summation order and exp/rsqrt implementations: about
        one bf16 unit in the last place (2^-8 relative) at most.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
pytest.importorskip("cupy", reason="CuPy not installed (pip install qwen25[cuda12] or [cuda13])")

import torch.nn.functional as F  # noqa: E402

import qwen25.kernels as K  # noqa: E402
from qwen25.kernels import _cupy_ops, _fallback  # noqa: E402

pytestmark = pytest.mark.gpu
DEV = "cuda"
BF16, F32 = torch.bfloat16, torch.float32
TOL = {F32: dict(rtol=1e-5, atol=1e-5), BF16: dict(rtol=1.6e-2, atol=1e-2)}


@pytest.fixture(autouse=True)
def kernels_on(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("QWEN25_KERNELS", raising=False)
    K._reset()
    assert K.available(), K.unavailable_reason()
    yield monkeypatch


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the kernel launches, to prove the kernel path ran."""
    seen: list[str] = []
    real = _cupy_ops._launch

    def spy(family, name, *a, **kw):  # type: ignore[no-untyped-def]
        seen.append(name)
        return real(family, name, *a, **kw)

    monkeypatch.setattr(_cupy_ops, "_launch", spy)
    return seen


def _run(fn, inputs, douts, kernels: bool, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QWEN25_KERNELS", "1" if kernels else "0")
    leaves = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    out = fn(*leaves)
    outs = out if isinstance(out, tuple) else (out,)
    torch.autograd.backward(outs, douts)
    monkeypatch.delenv("QWEN25_KERNELS")
    return [o.detach() for o in outs] + [x.grad for x in leaves if x.requires_grad]


def _check(fn, inputs, douts, dtype, monkeypatch, tol=None):  # type: ignore[no-untyped-def]
    got = _run(fn, inputs, douts, True, monkeypatch)
    ref = _run(fn, inputs, douts, False, monkeypatch)
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, **(tol or TOL[dtype]))


def _randn(*shape: int, dtype: torch.dtype, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=DEV).manual_seed(seed)
    return (torch.randn(*shape, generator=g, device=DEV) * scale).to(dtype)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape", [(1, 1), (1, 896), (3, 7, 97), (4, 1004), (257, 1536), (5, 3584), (2, 8192),
                                   (3, 20000), (2000, 64)])
def test_rms_norm(dtype, shape, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    x = _randn(*shape, dtype=dtype, seed=1)
    w = _randn(shape[-1], dtype=dtype, seed=2)
    dy = _randn(*shape, dtype=dtype, seed=3)
    _check(lambda a, b: K.rms_norm(a, b, 1e-6), [x, w], [dy], dtype, kernels_on)
    vec = shape[-1] % (16 // x.element_size()) == 0  # rows of whole 16-byte packs, else scalar
    assert launches == (["rmsnorm_fwd_vec", "rmsnorm_bwd_vec"] if vec else ["rmsnorm_fwd", "rmsnorm_bwd"])


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("b,hq,hk,t,d,bc", [(1, 1, 1, 1, 2, 1), (2, 14, 2, 37, 64, 1), (3, 12, 2, 129, 128, 3),
                                             (1, 28, 4, 1, 128, 1)])
def test_apply_rope(dtype, b, hq, hk, t, d, bc, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    q = _randn(b, hq, t, d, dtype=dtype, seed=1)
    k = _randn(b, hk, t, d, dtype=dtype, seed=2)
    cos = _randn(bc, t, d, dtype=dtype, seed=3)  # general tables: halves differ
    sin = _randn(bc, t, d, dtype=dtype, seed=4)
    _check(lambda x, y: K.apply_rope(x, y, cos, sin), [q, k],
           [_randn(b, hq, t, d, dtype=dtype, seed=5), _randn(b, hk, t, d, dtype=dtype, seed=6)], dtype, kernels_on)
    assert sorted(launches) == ["rope_bwd"] * 2 + ["rope_fwd"] * 2


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_apply_rope_in_place_on_projection_views(dtype, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    b, t, hq, hk, d = 2, 19, 4, 2, 64
    qkv = _randn(b, t, (hq + hk) * d, dtype=dtype, seed=7)
    cos, sin = _randn(1, t, d, dtype=dtype, seed=8), _randn(1, t, d, dtype=dtype, seed=9)
    q = qkv[..., : hq * d].view(b, t, hq, d).transpose(1, 2)
    k = qkv[..., hq * d :].view(b, t, hk, d).transpose(1, 2)
    eq, ek = _fallback.apply_rope(q.clone(), k.clone(), cos, sin)
    oq, ok = K.apply_rope(q, k, cos, sin)
    assert oq.data_ptr() == q.data_ptr() and ok.data_ptr() == k.data_ptr()
    torch.testing.assert_close(oq, eq, **TOL[dtype])
    torch.testing.assert_close(ok, ek, **TOL[dtype])


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape", [(1,), (1, 4864), (3, 5, 1001), (6,), (4096, 8960)])
def test_swiglu(dtype, shape, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    gate, up = _randn(*shape, dtype=dtype, scale=3, seed=1), _randn(*shape, dtype=dtype, seed=2)
    _check(K.swiglu, [gate, up], [_randn(*shape, dtype=dtype, seed=3)], dtype, kernels_on)
    vec = gate.numel() % (16 // gate.element_size()) == 0  # 16-byte packs, else the scalar kernels
    assert launches == (["swiglu_fwd_vec", "swiglu_bwd_vec"] if vec else ["swiglu_fwd", "swiglu_bwd"])


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("n,k,e,h", [(1, 1, 4, 8), (37, 2, 60, 2048), (513, 8, 64, 1000), (5, 4, 128, 3584)])
def test_moe_permute_unpermute(dtype, n, k, e, h, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator(device=DEV).manual_seed(11)
    ids = torch.randint(0, e, (n, k), generator=g, device=DEV)
    ids[ids == 1] = 0  # expert 1 is an empty group
    hidden = _randn(n, h, dtype=dtype, seed=1)
    w = torch.rand(n, k, generator=g, device=DEV).to(dtype)
    scale = torch.linspace(0.5, 2.0, h, device=DEV).to(dtype)

    def block(x, ww):  # type: ignore[no-untyped-def]
        permuted, offsets, order = K.moe_permute(x, ids, e)
        assert int(offsets[2] - offsets[1]) == 0 and int(offsets[-1]) == n * k
        return K.moe_unpermute(permuted * scale, order, ww)

    _check(block, [hidden, w], [_randn(n, h, dtype=dtype, seed=3)], dtype, kernels_on)
    assert sorted(set(launches)) == ["moe_combine", "moe_gather", "moe_scale_grad"]


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("n,h,v,chunk", [(1, 64, 1000, 7), (300, 896, 151936, 128), (77, 128, 152064, 1000)])
def test_fused_cross_entropy(dtype, n, h, v, chunk, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    hidden = _randn(n, h, dtype=dtype, scale=0.3, seed=1)
    weight = _randn(v, h, dtype=dtype, scale=0.3, seed=2)
    g = torch.Generator(device=DEV).manual_seed(3)
    labels = torch.randint(0, v, (n,), generator=g, device=DEV)
    labels[::3] = -100
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == F32 else TOL[BF16]
    _check(lambda a, b: K.fused_cross_entropy(a, b, labels, chunk_size=chunk), [hidden, weight],
           [torch.tensor(1.0, device=DEV)], dtype, kernels_on, tol)
    assert set(launches) == {"ce_rows"}
    # and against the materialised-logits loss
    loss = K.fused_cross_entropy(hidden, weight, labels, chunk_size=chunk)
    ref = F.cross_entropy((hidden @ weight.t()).float(), labels)
    torch.testing.assert_close(loss, ref, **tol)


def test_kernels_follow_torch_current_stream(kernels_on) -> None:  # type: ignore[no-untyped-def]
    x = _randn(4096, 1536, dtype=BF16, seed=1)
    w = _randn(1536, dtype=BF16, seed=2)
    ref = _fallback.rms_norm(x, w, 1e-6)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = K.rms_norm(x, w, 1e-6)
        out2 = K.swiglu(out, out)  # consumes out on the same stream
    torch.cuda.current_stream().wait_stream(side)
    torch.testing.assert_close(out, ref, **TOL[BF16])
    torch.testing.assert_close(out2, _fallback.swiglu(ref, ref), **TOL[BF16])


def test_second_device_if_present(kernels_on) -> None:  # type: ignore[no-untyped-def]
    if torch.cuda.device_count() < 2:
        pytest.skip("one GPU")
    x = torch.randn(3, 100, device="cuda:1")
    w = torch.randn(100, device="cuda:1")
    torch.testing.assert_close(K.rms_norm(x, w, 1e-6), _fallback.rms_norm(x, w, 1e-6), **TOL[F32])
