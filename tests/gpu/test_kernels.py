"""GPU tests: every CUDA kernel, forward and backward, in fp32 and bf16, against its eager fallback
(``QWEN25_KERNELS=0``, the oracle the kernels round like) *and* an independent torch reference:
transformers' Qwen2RMSNorm, apply_rotary_pos_emb and Qwen2MLP, F.cross_entropy on materialised
logits, a plain loop for the MoE permutation.

Skipped only where torch sees no CUDA GPU. On a machine with one, missing CuPy (or kernels that
are otherwise unavailable) is a failure: ``test_kernels_are_available_where_a_gpu_is``.

Tolerances are relative to the reference's scale (``_close``): |got - ref| <= rel * (|ref| +
max|ref|), so an output of zeros, or one off by a constant factor, fails.
  fp32: rel 2e-5 (the GPU's expf/rsqrtf are within 2 ulp; sums run in another order);
        1e-4 for reductions over a 152k vocabulary or thousands of tokens.
  bf16: rel 1.6e-2 (the kernels round to bf16 where eager rounds; a different fp32 value just
        below a rounding boundary moves a result by one bf16 ulp, 2^-8 relative, twice at most).
The independent references round elsewhere than the kernels in bf16 (transformers' ops are the
fallback's, so they do not), hence the same rel for both comparisons.

Grid-stride loops run past the grid: ``small_grid`` caps the grid at a few blocks for every kernel,
and two tests run past the real cap (_cupy_ops._MAX_GRID blocks). Misaligned bf16 views (the
scalar kernels) and non-contiguous inputs are covered.

QWEN25_GPU_TESTS_ON_CPU=1 runs this file on the CPU with the .cu sources built for the host
(tests/gpu/conftest.py): a check of the tests themselves where no GPU is lent; it proves nothing
about the GPU.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

torch = pytest.importorskip("torch")
ON_CPU = os.environ.get("QWEN25_GPU_TESTS_ON_CPU") == "1"  # see tests/gpu/conftest.py
if not ON_CPU and not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
DEV = "cpu" if ON_CPU else "cuda"

import torch.nn.functional as F  # noqa: E402

import qwen25.kernels as K  # noqa: E402
from qwen25.kernels import _cupy_ops, _fallback, _loader  # noqa: E402

qwen2 = pytest.importorskip("transformers.models.qwen2.modeling_qwen2")

pytestmark = pytest.mark.gpu
BF16, F32 = torch.bfloat16, torch.float32
REL = {F32: 2e-5, BF16: 1.6e-2}
REL_REDUCE = {F32: 1e-4, BF16: 1.6e-2}


def test_kernels_are_available_where_a_gpu_is() -> None:
    """A GPU machine without CuPy would otherwise run every test below on the eager path."""
    if not ON_CPU:
        try:
            import cupy  # noqa: F401
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"a CUDA GPU is present but CuPy does not import ({type(e).__name__}: {e}): "
                        "pip install cupy-cuda12x or cupy-cuda13x to match torch.version.cuda")
    assert K.available(), K.unavailable_reason()


@pytest.fixture(autouse=True)
def kernels_on(monkeypatch: pytest.MonkeyPatch, kernel_backend: Any):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("QWEN25_KERNELS", raising=False)
    K._reset()
    if not K.available():
        pytest.fail(f"kernels unavailable on a GPU machine: {K.unavailable_reason()}")
    yield monkeypatch


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(entry point, grid) of every kernel launch, to prove the kernel path (and which) ran."""
    seen: list[tuple[str, int]] = []
    real = _cupy_ops._run

    def spy(family, entry, device, grid, block, args):  # type: ignore[no-untyped-def]
        assert block <= _loader.max_threads(family)
        seen.append((entry, grid))
        return real(family, entry, device, grid, block, args)

    monkeypatch.setattr(_cupy_ops, "_run", spy)
    return seen


@pytest.fixture
def small_grid(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(_cupy_ops, "_MAX_GRID", 5)
    return 5


def _names(launches: list[tuple[str, int]]) -> list[str]:
    return [e for e, _ in launches]


def _close(got: torch.Tensor, ref: torch.Tensor, rel: float, what: str = "", scale: float | None = None) -> None:
    """``scale``: where the result is a cancellation of larger terms (RMSNorm's dx), their size."""
    assert got.shape == ref.shape and got.dtype == ref.dtype, (what, got.shape, got.dtype, ref.shape, ref.dtype)
    scale = max(float(ref.float().abs().max()), scale or 0.0)
    assert scale > 0, f"{what}: the reference is all zeros, the comparison would prove nothing"
    torch.testing.assert_close(got.float(), ref.float(), rtol=rel, atol=rel * scale, msg=lambda m: f"{what}: {m}")


def _randn(*shape: int, dtype: torch.dtype, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator(device=DEV).manual_seed(seed)
    return (torch.randn(*shape, generator=g, device=DEV) * scale).to(dtype)


def _grads(fn: Any, inputs: list[torch.Tensor], douts: list[torch.Tensor], kernels: bool,
           monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Outputs then input gradients of fn, with the kernels on or off."""
    monkeypatch.setenv("QWEN25_KERNELS", "1" if kernels else "0")
    try:
        leaves = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
        out = fn(*leaves)
        outs = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward(outs, douts)
        return [o.detach() for o in outs] + [x.grad for x in leaves if x.requires_grad]
    finally:
        monkeypatch.delenv("QWEN25_KERNELS")


def _vs_fallback(fn: Any, inputs: list[torch.Tensor], douts: list[torch.Tensor], rel: float,
                 monkeypatch: pytest.MonkeyPatch, scales: dict[int, float] | None = None) -> list[torch.Tensor]:
    got = _grads(fn, inputs, douts, True, monkeypatch)
    ref = _grads(fn, inputs, douts, False, monkeypatch)
    for i, (a, b) in enumerate(zip(got, ref)):
        _close(a, b, rel, f"kernel vs fallback, output {i}", (scales or {}).get(i))
    return got


def _rms_dx_scale(x: torch.Tensor, w: torch.Tensor, dy: torch.Tensor) -> float:
    """The size of the terms RMSNorm's dx = r * (dy*w - xh * mean(dy*w*xh)) cancels: max|r*dy*w|
    (dx itself is all rounding for a row of one element, where it is exactly 0 in real numbers)."""
    xf = x.float()
    r = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
    return float((r * dy.float() * w.float()).abs().max())


def _qwen2_config(d: int, **kw: Any) -> Any:
    return qwen2.Qwen2Config(hidden_size=4 * d, intermediate_size=6 * d, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=4096, rms_norm_eps=1e-6, **kw)


# ---- RMSNorm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape", [(1, 1), (1, 896), (3, 7, 97), (4, 1004), (257, 1536), (5, 3584), (2, 8192),
                                   (3, 20000), (2000, 64)])
def test_rms_norm(dtype, shape, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    n = shape[-1]
    x, w, dy = _randn(*shape, dtype=dtype, seed=1), _randn(n, dtype=dtype, seed=2), _randn(*shape, dtype=dtype, seed=3)
    rel = REL_REDUCE[dtype] if x.numel() // n > 100 else REL[dtype]  # dw sums over the rows
    scales = {1: _rms_dx_scale(x, w, dy)}
    got = _vs_fallback(lambda a, b: K.rms_norm(a, b, 1e-6), [x, w], [dy], rel, kernels_on, scales)
    ref_mod = qwen2.Qwen2RMSNorm(n, eps=1e-6).to(device=DEV, dtype=dtype)
    with torch.no_grad():
        ref_mod.weight.copy_(w)
    xr = x.clone().requires_grad_()
    out = ref_mod(xr)
    out.backward(dy)
    for i, (a, b) in enumerate(zip(got, [out.detach(), xr.grad, ref_mod.weight.grad])):
        _close(a, b, rel, f"kernel vs Qwen2RMSNorm, output {i}", scales.get(i))
    vec = n % (16 // x.element_size()) == 0  # rows of whole 16-byte packs, else scalar
    sfx = "bf16" if dtype == BF16 else "f32"
    assert _names(launches) == ([f"rmsnorm_fwd_vec_{sfx}", f"rmsnorm_bwd_vec_{sfx}"] if vec
                                else [f"rmsnorm_fwd_{sfx}", f"rmsnorm_bwd_{sfx}"])


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_rms_norm_misaligned_and_non_contiguous(dtype, kernels_on, launches, small_grid) -> None:  # type: ignore[no-untyped-def]
    rows, n = 37, 1536
    base = _randn(rows * n + 1, dtype=dtype, seed=4)
    w, dy = _randn(n, dtype=dtype, seed=6), _randn(rows, n, dtype=dtype, seed=7)
    cases = {
        # a view 2 (bf16) or 4 (fp32) bytes past a 16-byte boundary: the scalar kernels
        "misaligned": (lambda bb, ww: K.rms_norm(bb[1:].view(rows, n), ww, 1e-6), base),
        # a transposed (non-contiguous) input: the Function makes a contiguous, aligned copy
        "non-contiguous": (lambda xt, ww: K.rms_norm(xt.t(), ww, 1e-6), _randn(n, rows, dtype=dtype, seed=5)),
    }
    for what, (fn, x) in cases.items():
        got = _vs_fallback(fn, [x, w], [dy], REL_REDUCE[dtype], kernels_on)
        xr = (x[1:].view(rows, n) if what == "misaligned" else x.t()).detach()
        ref_mod = qwen2.Qwen2RMSNorm(n, eps=1e-6).to(device=DEV, dtype=dtype)
        with torch.no_grad():
            ref_mod.weight.copy_(w)
        _close(got[0], ref_mod(xr).detach(), REL[dtype], f"{what}: kernel vs Qwen2RMSNorm")
    sfx = "bf16" if dtype == BF16 else "f32"
    names = _names(launches)
    assert names[:2] == [f"rmsnorm_fwd_{sfx}", f"rmsnorm_bwd_{sfx}"]  # misaligned: scalar
    assert names[2:] == [f"rmsnorm_fwd_vec_{sfx}", f"rmsnorm_bwd_vec_{sfx}"]  # the contiguous copy: vectorised
    assert all(g == small_grid for _, g in launches)  # 37 rows on 5 blocks: the grid-stride loop


@pytest.mark.skipif(ON_CPU, reason="262,140 blocks of host threads")
def test_rms_norm_rows_beyond_the_real_grid_cap(kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    rows = _cupy_ops._MAX_GRID + 1001
    x, w = _randn(rows, 64, dtype=BF16, seed=8), _randn(64, dtype=BF16, seed=9)
    with torch.no_grad():
        out = K.rms_norm(x, w, 1e-6)
    _close(out, _fallback.rms_norm(x, w, 1e-6), REL[BF16])
    _close(out[-1000:], _fallback.rms_norm(x[-1000:], w, 1e-6), REL[BF16], "the rows past the grid")
    assert launches == [("rmsnorm_fwd_vec_bf16", _cupy_ops._MAX_GRID)]


# ---- RoPE ------------------------------------------------------------------------------------


def _rope_tables(b: int, t: int, d: int, dtype: torch.dtype, yarn: bool) -> tuple[torch.Tensor, torch.Tensor]:
    params = {"rope_type": "default", "rope_theta": 10000.0}
    if yarn:
        params = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "rope_theta": 10000.0}
    rot = qwen2.Qwen2RotaryEmbedding(_qwen2_config(d, rope_parameters=params)).to(DEV)
    pos = torch.arange(t, device=DEV)[None].expand(b, t) + torch.arange(b, device=DEV)[:, None] * 7
    cos, sin = rot(torch.zeros(b, t, d, device=DEV, dtype=dtype), pos)
    return cos, sin


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("b,hq,hk,t,d,bc,yarn", [(1, 1, 1, 1, 2, 1, False), (2, 14, 2, 37, 64, 1, True),
                                                  (3, 12, 2, 129, 128, 3, True), (1, 28, 4, 1, 128, 1, False)])
def test_apply_rope(dtype, b, hq, hk, t, d, bc, yarn, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    cos, sin = _rope_tables(bc, t, d, dtype, yarn)
    q, k = _randn(b, hq, t, d, dtype=dtype, seed=1), _randn(b, hk, t, d, dtype=dtype, seed=2)
    dq, dk = _randn(b, hq, t, d, dtype=dtype, seed=5), _randn(b, hk, t, d, dtype=dtype, seed=6)
    got = _vs_fallback(lambda x, y: K.apply_rope(x, y, cos, sin), [q, k], [dq, dk], REL[dtype], kernels_on)
    ref = _grads(lambda x, y: qwen2.apply_rotary_pos_emb(x, y, cos, sin), [q, k], [dq, dk], False, kernels_on)
    for i, (a, r) in enumerate(zip(got, ref)):
        _close(a, r, REL[dtype], f"kernel vs apply_rotary_pos_emb, output {i}")
    assert sorted(_names(launches)) == sorted([f"rope_bwd_{'bf16' if dtype == BF16 else 'f32'}"] * 2
                                              + [f"rope_fwd_{'bf16' if dtype == BF16 else 'f32'}"] * 2)


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_apply_rope_in_place_on_projection_views(dtype, kernels_on, launches, small_grid) -> None:  # type: ignore[no-untyped-def]
    """q and k as strided, non-contiguous views of one projection output, rotated in place; the
    grid capped at 5 blocks so each thread loops over many (b, h, s, i)."""
    b, t, hq, hk, d = 2, 19, 4, 2, 64
    qkv = _randn(b, t, (hq + hk) * d, dtype=dtype, seed=7)
    cos, sin = _rope_tables(1, t, d, dtype, True)
    q = qkv[..., : hq * d].view(b, t, hq, d).transpose(1, 2)
    k = qkv[..., hq * d :].view(b, t, hk, d).transpose(1, 2)
    eq, ek = qwen2.apply_rotary_pos_emb(q.clone(), k.clone(), cos, sin)
    oq, ok = K.apply_rope(q, k, cos, sin)
    assert oq.data_ptr() == q.data_ptr() and ok.data_ptr() == k.data_ptr()
    _close(oq, eq, REL[dtype])
    _close(ok, ek, REL[dtype])
    assert all(g == small_grid for _, g in launches)


def test_apply_rope_aliased_and_expanded_inputs(kernels_on) -> None:  # type: ignore[no-untyped-def]
    b, h, t, d = 2, 4, 33, 64
    cos, sin = _rope_tables(1, t, d, BF16, False)
    q = _randn(b, h, t, d, dtype=BF16, seed=10)
    k_small = _randn(b, 1, t, d, dtype=BF16, seed=11)
    before = k_small.clone()
    eq, ek = qwen2.apply_rotary_pos_emb(q, k_small.expand(b, h, t, d), cos, sin)
    oq, ok = K.apply_rope(q.clone(), k_small.expand(b, h, t, d), cos, sin)
    _close(oq, eq, REL[BF16])
    _close(ok, ek, REL[BF16])
    assert torch.equal(k_small, before)  # stride-0 heads were copied, not rotated in place 4 times
    x = q.clone()
    oq, ok = K.apply_rope(x, x, cos, sin)
    eq, _ = qwen2.apply_rotary_pos_emb(q, q, cos, sin)
    _close(oq, eq, REL[BF16])
    _close(ok, eq, REL[BF16], "apply_rope(q, q): k rotated once")


# ---- SwiGLU ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape", [(1,), (1, 4864), (3, 5, 1001), (6,), (4096, 8960)])
def test_swiglu(dtype, shape, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    gate, up = _randn(*shape, dtype=dtype, scale=3, seed=1), _randn(*shape, dtype=dtype, seed=2)
    dout = _randn(*shape, dtype=dtype, seed=3)
    got = _vs_fallback(K.swiglu, [gate, up], [dout], REL[dtype], kernels_on)
    ref = _grads(lambda g, u: F.silu(g) * u, [gate, up], [dout], False, kernels_on)  # Qwen2MLP: act_fn(gate) * up
    for i, (a, r) in enumerate(zip(got, ref)):
        _close(a, r, REL[dtype], f"kernel vs silu(gate) * up, output {i}")
    vec = gate.numel() % (16 // gate.element_size()) == 0  # 16-byte packs, else the scalar kernels
    sfx = "bf16" if dtype == BF16 else "f32"
    assert _names(launches) == ([f"swiglu_fwd_vec_{sfx}", f"swiglu_bwd_vec_{sfx}"] if vec
                                else [f"swiglu_fwd_{sfx}", f"swiglu_bwd_{sfx}"])


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_swiglu_in_qwen2_mlp(dtype, kernels_on) -> None:  # type: ignore[no-untyped-def]
    """transformers' Qwen2MLP forward and backward (input and all three weights), with the kernel
    as its activation vs the module itself."""
    torch.manual_seed(0)
    mlp = qwen2.Qwen2MLP(_qwen2_config(64)).to(device=DEV, dtype=dtype)
    x = _randn(3, 40, 256, dtype=dtype, seed=12)
    dy = _randn(3, 40, 256, dtype=dtype, seed=13)

    def run(kernel: bool) -> list[torch.Tensor]:
        mlp.zero_grad()
        xx = x.clone().requires_grad_()
        y = mlp.down_proj(K.swiglu(mlp.gate_proj(xx), mlp.up_proj(xx))) if kernel else mlp(xx)
        y.backward(dy)
        return [y.detach(), xx.grad] + [p.grad.clone() for p in (mlp.gate_proj.weight, mlp.up_proj.weight,
                                                                  mlp.down_proj.weight)]

    for i, (a, r) in enumerate(zip(run(True), run(False))):
        _close(a, r, REL_REDUCE[dtype], f"Qwen2MLP output {i}")


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_swiglu_misaligned_non_contiguous_and_past_the_grid(dtype, kernels_on, launches, small_grid) -> None:  # type: ignore[no-untyped-def]
    n = 4096 * 3 + 8
    base_g, base_u = _randn(n + 1, dtype=dtype, seed=14, scale=3), _randn(n + 1, dtype=dtype, seed=15)
    dout = _randn(n, dtype=dtype, seed=16)
    # views one element into their buffers: misaligned for 16-byte packs -> the scalar kernels
    got = _vs_fallback(lambda g, u: K.swiglu(g[1:], u[1:]), [base_g, base_u], [dout], REL[dtype], kernels_on)
    ref = _grads(lambda g, u: F.silu(g[1:]) * u[1:], [base_g, base_u], [dout], False, kernels_on)
    for i, (a, r) in enumerate(zip(got, ref)):
        _close(a, r, REL[dtype], f"misaligned, output {i}")
    gnc, unc = _randn(64, 97, dtype=dtype, seed=17).t(), _randn(64, 97, dtype=dtype, seed=18).t()  # non-contiguous
    dnc = _randn(97, 64, dtype=dtype, seed=24)
    got = _vs_fallback(K.swiglu, [gnc, unc], [dnc], REL[dtype], kernels_on)
    ref = _grads(lambda g, u: F.silu(g) * u, [gnc, unc], [dnc], False, kernels_on)
    for i, (a, r) in enumerate(zip(got, ref)):
        _close(a, r, REL[dtype], f"non-contiguous, output {i}")
    sfx = "bf16" if dtype == BF16 else "f32"
    assert launches[:2] == [(f"swiglu_fwd_{sfx}", small_grid), (f"swiglu_bwd_{sfx}", small_grid)]  # misaligned: scalar
    assert all(g <= small_grid for _, g in launches)


@pytest.mark.skipif(ON_CPU, reason="262,140 blocks of host threads")
def test_swiglu_elements_beyond_the_real_grid_cap(kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    blocks = _cupy_ops._MAX_GRID + 500
    n = blocks * _loader.ELEMENTWISE_THREADS + 3  # not a whole number of packs: the scalar kernel, 1 thread each
    gate, up = _randn(n, dtype=F32, seed=19, scale=3), _randn(n, dtype=F32, seed=20)
    with torch.no_grad():
        out = K.swiglu(gate, up)
    tail = slice(n - 300_000, n)
    _close(out[tail], F.silu(gate[tail]) * up[tail], REL[F32], "the elements past the grid")
    _close(out[:1000], F.silu(gate[:1000]) * up[:1000], REL[F32])
    assert launches == [("swiglu_fwd_f32", _cupy_ops._MAX_GRID)]


# ---- MoE -------------------------------------------------------------------------------------


def _moe_loop(hidden: torch.Tensor, ids: torch.Tensor, w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """out[t] = sum_k w[t, k] * expert(hidden[t]) with the "expert" a per-channel scale (in the
    input dtype), summed in fp32: the definition, token by token."""
    rows = (hidden * scale).float()  # [N, H]
    out = torch.zeros_like(rows)
    for k in range(ids.shape[1]):
        out += w[:, k : k + 1].float() * rows
    return out.to(hidden.dtype)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("n,k,e,h", [(1, 1, 4, 8), (37, 2, 60, 2048), (513, 8, 64, 1000), (5, 4, 128, 3584)])
def test_moe_permute_unpermute(dtype, n, k, e, h, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator(device=DEV).manual_seed(11)
    ids = torch.randint(0, e, (n, k), generator=g, device=DEV)
    ids[ids == 1] = 0  # expert 1 is an empty group
    hidden = _randn(n, h, dtype=dtype, seed=1)
    w = torch.rand(n, k, generator=g, device=DEV).to(dtype)
    scale = torch.linspace(0.5, 2.0, h, device=DEV).to(dtype)
    dout = _randn(n, h, dtype=dtype, seed=3)

    def block(x, ww):  # type: ignore[no-untyped-def]
        permuted, offsets, order = K.moe_permute(x, ids, e)
        assert int(offsets[2] - offsets[1]) == 0 and int(offsets[-1]) == n * k
        # rows grouped by expert, in token order within an expert
        flat = ids.reshape(-1)
        assert torch.equal(flat[order], torch.sort(flat, stable=True).values)
        return K.moe_unpermute(permuted * scale, order, ww)

    rel = REL_REDUCE[dtype] if dtype == F32 else 2 * REL[BF16]  # bf16: K weighted bf16 rows summed
    got = _vs_fallback(block, [hidden, w], [dout], rel, kernels_on)
    ref = _grads(lambda x, ww: _moe_loop(x, ids, ww, scale), [hidden, w], [dout], False, kernels_on)
    for i, (a, r) in enumerate(zip(got, ref)):
        _close(a, r, rel, f"kernel vs plain loop, output {i}")
    assert sorted({e_.rsplit("_", 1)[0] for e_ in _names(launches)}) == ["moe_combine", "moe_gather", "moe_scale_grad"]


def test_moe_past_the_grid(kernels_on, launches, small_grid) -> None:  # type: ignore[no-untyped-def]
    n, k, e, h = 50, 4, 16, 96
    ids = torch.randint(0, e, (n, k), generator=torch.Generator(device=DEV).manual_seed(2), device=DEV)
    hidden, w = _randn(n, h, dtype=BF16, seed=21), torch.rand(n, k, device=DEV).to(BF16)
    permuted, _, order = K.moe_permute(hidden, ids, e)
    assert torch.equal(permuted, hidden[order // k])
    _close(K.moe_unpermute(permuted, order, w), _moe_loop(hidden, ids, w, torch.ones(h, device=DEV, dtype=BF16)),
           2 * REL[BF16])
    assert all(g == small_grid for _, g in launches)


# ---- fused cross-entropy ---------------------------------------------------------------------


def _ce_inputs(n: int, h: int, v: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    hidden = _randn(n, h, dtype=dtype, scale=0.3, seed=1)
    weight = _randn(v, h, dtype=dtype, scale=0.3, seed=2)
    labels = torch.randint(0, v, (n,), generator=torch.Generator(device=DEV).manual_seed(3), device=DEV)
    labels[::3] = -100
    labels[1] = 0  # at least one valid label whatever n
    return hidden, weight, labels


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("n,h,v,chunk", [(2, 64, 1000, 7), (300, 896, 151936, 128), (77, 128, 152064, 1000)])
def test_fused_cross_entropy(dtype, n, h, v, chunk, kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    hidden, weight, labels = _ce_inputs(n, h, v, dtype)
    one = torch.tensor(1.0, device=DEV)
    rel = REL_REDUCE[dtype]
    got = _vs_fallback(lambda a, b: K.fused_cross_entropy(a, b, labels, chunk_size=chunk), [hidden, weight], [one],
                       rel, kernels_on)
    assert set(_names(launches)) == {f"ce_rows_{'bf16' if dtype == BF16 else 'f32'}"}
    # and F.cross_entropy on the materialised logits: loss and both gradients
    ref = _grads(lambda a, b: F.cross_entropy((a @ b.t()).float(), labels), [hidden, weight], [one], False, kernels_on)
    for i, (a, r) in enumerate(zip(got, ref)):
        _close(a, r, rel, f"kernel vs F.cross_entropy, output {i}")
    assert [t.dtype for t in got] == [F32, dtype, dtype]


def test_fused_cross_entropy_all_ignored(kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    """The defined behaviour: with no valid label the loss is NaN (a mean over no token, as
    F.cross_entropy) and the gradients are exactly zero (as F.cross_entropy's)."""
    hidden, weight, _ = _ce_inputs(9, 64, 1000, BF16)
    labels = torch.full((9,), -100, device=DEV)
    one = torch.tensor(1.0, device=DEV)
    for kernels in (True, False):
        got = _grads(lambda a, b: K.fused_cross_entropy(a, b, labels, chunk_size=4), [hidden, weight], [one], kernels,
                     kernels_on)
        ref = _grads(lambda a, b: F.cross_entropy((a @ b.t()).float(), labels), [hidden, weight], [one], False,
                     kernels_on)
        assert torch.isnan(got[0]) and torch.isnan(ref[0])
        for a, r in zip(got[1:], ref[1:]):
            assert torch.count_nonzero(r) == 0 and torch.equal(a, r)
    assert set(_names(launches)) == {"ce_rows_bf16"}


def test_fused_cross_entropy_infinite_logits(kernels_on) -> None:  # type: ignore[no-untyped-def]
    """ce_rows on hand-made logits: +inf gives loss +inf (logsumexp's answer, not NaN), -inf
    entries add nothing, NaN propagates; an ignored row is 0."""
    inf, nan = float("inf"), float("nan")
    v = 5000
    rows = torch.randn(6, v, device=DEV)
    labels = torch.tensor([3, 3, 3, 5, 3, -100], device=DEV)
    rows[0, 7] = rows[0, 7 + 1024] = rows[0, 4000] = inf
    rows[1, 3] = inf
    rows[2, :2500] = -inf
    rows[2, 3] = 1.0
    rows[3, 9] = nan
    rows[4, :] = -inf
    rows[4, 3] = 0.0
    rows[5, 11] = inf
    for dtype in (F32, BF16):
        x = rows.to(dtype)
        loss = _cupy_ops.ce_rows_(x.clone(), labels, -100, False)
        xf = x.float()
        target = xf.gather(1, labels.clamp(min=0)[:, None]).squeeze(1)
        ref = torch.where(labels != -100, torch.logsumexp(xf, -1) - target, torch.zeros((), device=DEV))
        torch.testing.assert_close(loss, ref, equal_nan=True, rtol=1e-5, atol=1e-5)
        assert loss[0] == inf and torch.isnan(loss[1]) and torch.isnan(loss[3]) and loss[4] == 0 and loss[5] == 0


def test_fused_cross_entropy_non_contiguous_hidden_and_past_the_grid(kernels_on, launches, small_grid) -> None:  # type: ignore[no-untyped-def]
    n, h, v = 40, 128, 3000
    hidden = _randn(h, n, dtype=BF16, seed=22, scale=0.3).t()  # non-contiguous [n, h]
    weight = _randn(v, h, dtype=BF16, seed=23, scale=0.3)
    labels = torch.randint(0, v, (n,), device=DEV)
    one = torch.tensor(1.0, device=DEV)
    got = _vs_fallback(lambda a, b: K.fused_cross_entropy(a, b, labels, chunk_size=16), [hidden, weight], [one],
                       REL_REDUCE[BF16], kernels_on)
    ref = _grads(lambda a, b: F.cross_entropy((a @ b.t()).float(), labels), [hidden, weight], [one], False, kernels_on)
    for a, r in zip(got, ref):
        _close(a, r, REL_REDUCE[BF16])
    assert all(g == small_grid for _, g in launches)  # 16 rows per chunk on 5 blocks


def test_fused_cross_entropy_under_autocast(kernels_on, launches) -> None:  # type: ignore[no-untyped-def]
    """fp32 parameters under bf16 autocast (how the model trains): the bf16 kernel reads autocast's
    logits; equal to eager autocast's F.cross_entropy. This raised before (an out= matmul mixing
    bf16 and fp32)."""
    hidden, weight, labels = _ce_inputs(64, 256, 5000, F32)

    def run(fn: Any) -> list[torch.Tensor]:
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        with torch.autocast(DEV, dtype=BF16):
            loss = fn(h, w)
        loss.backward()
        return [loss.detach(), h.grad, w.grad]

    got = run(lambda h, w: K.fused_cross_entropy(h, w, labels, chunk_size=16))
    ref = run(lambda h, w: F.cross_entropy((h @ w.t()).float(), labels))
    assert [t.dtype for t in got] == [F32, F32, F32]
    for a, r in zip(got, ref):
        _close(a, r, 2 * REL[BF16])
    assert set(_names(launches)) == {"ce_rows_bf16"}


# ---- streams and devices ---------------------------------------------------------------------


@pytest.mark.skipif(ON_CPU, reason="CUDA streams")
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
    _close(out, ref, REL[BF16])
    _close(out2, _fallback.swiglu(ref, ref), REL[BF16])


@pytest.mark.skipif(ON_CPU, reason="CUDA devices")
def test_second_device_if_present(kernels_on) -> None:  # type: ignore[no-untyped-def]
    if torch.cuda.device_count() < 2:
        pytest.skip("one GPU")
    x = torch.randn(3, 100, device="cuda:1")
    w = torch.randn(100, device="cuda:1")
    _close(K.rms_norm(x, w, 1e-6), _fallback.rms_norm(x, w, 1e-6), REL[F32])
