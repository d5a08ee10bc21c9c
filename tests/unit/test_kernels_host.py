"""The CUDA kernels' own source, compiled for the CPU (tests/unit/_kernel_contracts.py: HostRunner)
and driven through the real launchers of ``qwen25.kernels._cupy_ops`` and the public functions,
against independent references: transformers' Qwen2RMSNorm, apply_rotary_pos_emb and Qwen2MLP's
activation, F.cross_entropy on materialised logits, torch.logsumexp, a plain MoE loop. A typo in a
``.cu`` file fails here, without a GPU.

The grid is capped at a few blocks (``_MAX_GRID``), so every kernel's grid-stride loop runs.
Tolerances are relative to the reference's scale (``_close``): an output of zeros fails."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import qwen25.kernels as K  # noqa: E402
from qwen25.kernels import _cupy_ops, _fallback, _loader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _kernel_contracts import HostRunner, build_host_kernels, host_compiler  # noqa: E402

qwen2 = pytest.importorskip("transformers.models.qwen2.modeling_qwen2")

if host_compiler() is None:
    pytest.skip("no C++ compiler to build the CUDA sources for the CPU", allow_module_level=True)

BF16, F32 = torch.bfloat16, torch.float32
MAX_GRID = 3


@pytest.fixture(scope="module")
def host_libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_host_kernels(tmp_path_factory.mktemp("cuda_host"))


@pytest.fixture
def host(host_libs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> HostRunner:
    """The public functions take the kernel path on CPU tensors; launches run the host build."""
    runner = HostRunner(host_libs)
    monkeypatch.setattr(_cupy_ops, "_run", runner.run)
    monkeypatch.setattr(_cupy_ops, "_MAX_GRID", MAX_GRID)
    monkeypatch.setattr(K, "_use_kernels", lambda *ts: all(not t.is_floating_point() or t.dtype in (F32, BF16)
                                                            for t in ts))
    monkeypatch.setattr(K, "_ops", lambda: _cupy_ops)
    return runner


def _close(got: torch.Tensor, ref: torch.Tensor, rel: float) -> None:
    """|got - ref| <= rel * (|ref| + max|ref|): relative to each value and to the tensor's scale."""
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.shape, got.dtype, ref.shape, ref.dtype)
    scale = float(ref.float().abs().max())
    assert scale > 0, "the reference is all zeros: the comparison would prove nothing"
    torch.testing.assert_close(got.float(), ref.float(), rtol=rel, atol=rel * scale)


REL = {F32: 2e-5, BF16: 1e-2}  # bf16: the kernels round where eager rounds; about one bf16 ulp apart


def _fwd_bwd(fn: Any, inputs: list[torch.Tensor], douts: list[torch.Tensor]) -> list[torch.Tensor]:
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*leaves)
    outs = out if isinstance(out, tuple) else (out,)
    torch.autograd.backward(outs, douts)
    return [o.detach() for o in outs] + [x.grad for x in leaves]


def _randn(*shape: int, dtype: torch.dtype, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).to(dtype)


def _entries(runner: HostRunner) -> list[str]:
    return [e for e, _, _ in runner.launches]


# ---- RMSNorm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape", [(1, 64), (7, 97), (2, 5, 1000)])
def test_rms_norm_kernel_equals_qwen2_rmsnorm(host: HostRunner, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    n = shape[-1]
    x, w, dy = _randn(*shape, dtype=dtype, seed=1), _randn(n, dtype=dtype, seed=2), _randn(*shape, dtype=dtype, seed=3)
    got = _fwd_bwd(lambda a, b: K.rms_norm(a, b, 1e-6), [x, w], [dy])

    ref_mod = qwen2.Qwen2RMSNorm(n, eps=1e-6).to(dtype)
    with torch.no_grad():
        ref_mod.weight.copy_(w)
    xr = x.clone().requires_grad_()
    out = ref_mod(xr)
    out.backward(dy)
    for a, b in zip(got, [out.detach(), xr.grad, ref_mod.weight.grad]):
        _close(a, b, REL[dtype])
    vec = n % (16 // x.element_size()) == 0
    names = ["rmsnorm_fwd_vec", "rmsnorm_bwd_vec"] if vec else ["rmsnorm_fwd", "rmsnorm_bwd"]
    sfx = "bf16" if dtype == BF16 else "f32"
    assert _entries(host) == [f"{m}_{sfx}" for m in names]
    rows = x.numel() // n
    assert all(g == min(rows, MAX_GRID) for _, g, _ in host.launches)  # rows beyond the grid: grid-stride


# ---- RoPE ------------------------------------------------------------------------------------


def _rope_tables(b: int, t: int, d: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = qwen2.Qwen2Config(hidden_size=4 * d, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                            rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
                                             "rope_theta": 10000.0})
    rot = qwen2.Qwen2RotaryEmbedding(cfg)
    pos = torch.arange(t)[None].expand(b, t) + torch.arange(b)[:, None] * 5
    cos, sin = rot(torch.zeros(b, t, d, dtype=dtype), pos)
    return cos, sin


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("bc", [1, 2])
def test_rope_kernel_equals_apply_rotary_pos_emb(host: HostRunner, dtype: torch.dtype, bc: int) -> None:
    b, hq, hk, t, d = 2, 4, 2, 9, 32
    cos, sin = _rope_tables(2, t, d, dtype)
    cos, sin = cos[:bc], sin[:bc]
    q, k = _randn(b, hq, t, d, dtype=dtype, seed=4), _randn(b, hk, t, d, dtype=dtype, seed=5)
    dq, dk = _randn(b, hq, t, d, dtype=dtype, seed=6), _randn(b, hk, t, d, dtype=dtype, seed=7)
    got = _fwd_bwd(lambda a, c: K.apply_rope(a, c, cos, sin), [q, k], [dq, dk])
    ref = _fwd_bwd(lambda a, c: qwen2.apply_rotary_pos_emb(a, c, cos, sin), [q, k], [dq, dk])
    for a, r in zip(got, ref):
        _close(a, r, REL[dtype])
    assert sorted(set(_entries(host))) == [f"rope_bwd_{'bf16' if dtype == BF16 else 'f32'}",
                                           f"rope_fwd_{'bf16' if dtype == BF16 else 'f32'}"]
    assert all(blk == _loader.ELEMENTWISE_THREADS and g == MAX_GRID for _, g, blk in host.launches)


def test_rope_kernel_rotates_strided_projection_views_in_place(host: HostRunner) -> None:
    b, t, hq, hk, d = 2, 5, 4, 2, 16
    cos, sin = _rope_tables(b, t, d, F32)
    qkv = _randn(b, t, (hq + hk) * d, dtype=F32, seed=8)
    q = qkv[..., : hq * d].view(b, t, hq, d).transpose(1, 2)  # [B, Hq, T, D], strides not contiguous
    k = qkv[..., hq * d :].view(b, t, hk, d).transpose(1, 2)
    eq, ek = qwen2.apply_rotary_pos_emb(q.clone(), k.clone(), cos, sin)
    oq, ok = K.apply_rope(q, k, cos, sin)
    assert oq.data_ptr() == q.data_ptr() and ok.data_ptr() == k.data_ptr()
    _close(oq, eq, REL[F32])
    _close(ok, ek, REL[F32])


def test_rope_kernel_with_aliased_and_expanded_inputs_equals_eager(host: HostRunner) -> None:
    """apply_rope(q, q) rotates each output once; stride-0 (expanded) keys are copied, not rotated
    in place by racing threads (here: real OS threads on the same elements)."""
    b, h, t, d = 2, 4, 6, 32
    cos, sin = _rope_tables(1, t, d, F32)
    q = _randn(b, h, t, d, dtype=F32, seed=30)
    k_small = _randn(b, 1, t, d, dtype=F32, seed=31)
    k = k_small.expand(b, h, t, d)
    before = k_small.clone()
    eq, ek = qwen2.apply_rotary_pos_emb(q, k, cos, sin)
    oq, ok = K.apply_rope(q.clone(), k, cos, sin)
    _close(oq, eq, REL[F32])
    _close(ok, ek, REL[F32])
    assert torch.equal(k_small, before)
    x = q.clone()
    oq, ok = K.apply_rope(x, x, cos, sin)
    eq, _ = qwen2.apply_rotary_pos_emb(q, q, cos, sin)
    _close(oq, eq, REL[F32])
    _close(ok, eq, REL[F32])


# ---- SwiGLU ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape,offset", [((3, 7, 33), 0), ((4, 256), 0), ((4, 256), 1), ((2, 1000), 0)])
def test_swiglu_kernel_equals_silu_times_up(host: HostRunner, dtype: torch.dtype, shape: tuple[int, ...],
                                           offset: int) -> None:
    numel = 1
    for s in shape:
        numel *= s
    # offset 1: views one element into a buffer, misaligned for 16-byte packs -> the scalar kernels
    base_g, base_u = _randn(numel + offset, dtype=dtype, seed=9, scale=3), _randn(numel + offset, dtype=dtype, seed=10)
    gate, up = base_g[offset:].view(shape), base_u[offset:].view(shape)
    dout = _randn(*shape, dtype=dtype, seed=11)

    def run(fn: Any) -> list[torch.Tensor]:
        bg, bu = base_g.clone().requires_grad_(), base_u.clone().requires_grad_()
        out = fn(bg[offset:].view(shape), bu[offset:].view(shape))
        out.backward(dout)
        return [out.detach(), bg.grad[offset:], bu.grad[offset:]]

    got = run(K.swiglu)
    ref = run(lambda g, u: F.silu(g) * u)  # Qwen2MLP's act_fn(gate) * up
    for a, r in zip(got, ref):
        _close(a, r, REL[dtype])
    del gate, up
    vec = offset == 0 and numel % (16 // base_g.element_size()) == 0
    sfx = "bf16" if dtype == BF16 else "f32"
    expect = ["swiglu_fwd_vec", "swiglu_bwd_vec"] if vec else ["swiglu_fwd", "swiglu_bwd"]
    assert _entries(host) == [f"{m}_{sfx}" for m in expect]


# ---- MoE -------------------------------------------------------------------------------------


def _moe_loop(hidden: torch.Tensor, ids: torch.Tensor, w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(hidden.shape, dtype=torch.float32)
    for t in range(hidden.shape[0]):
        for k in range(ids.shape[1]):
            row = (hidden[t] * scale).float()  # the "expert": a per-channel scale, in the input dtype
            out[t] += w[t, k].float() * row.to(hidden.dtype).float()
    return out.to(hidden.dtype)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("n,k,e,h", [(1, 1, 4, 8), (16, 4, 64, 33)])
def test_moe_kernels_equal_a_plain_loop(host: HostRunner, dtype: torch.dtype, n: int, k: int, e: int, h: int) -> None:
    g = torch.Generator().manual_seed(12)
    hidden = _randn(n, h, dtype=dtype, seed=13)
    ids = torch.randint(0, e, (n, k), generator=g)
    ids[ids == 1] = 0  # an empty expert group
    w = torch.rand(n, k, generator=g).to(dtype)
    scale = torch.linspace(0.5, 2, h).to(dtype)
    dout = _randn(n, h, dtype=dtype, seed=14)

    def block(x: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
        permuted, offsets, order = K.moe_permute(x, ids, e)
        assert int(offsets[2] - offsets[1]) == 0 and int(offsets[-1]) == n * k
        return K.moe_unpermute(permuted * scale, order, ww)

    got = _fwd_bwd(block, [hidden, w], [dout])
    ref = _fwd_bwd(lambda x, ww: _moe_loop(x, ids, ww, scale), [hidden, w], [dout])
    for a, r in zip(got, ref):
        _close(a, r, 2e-5 if dtype == F32 else 2e-2)
    assert {e_.rsplit("_", 1)[0] for e_ in _entries(host)} == {"moe_gather", "moe_combine", "moe_scale_grad"}


# ---- cross-entropy ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("chunk", [5, 64])
def test_fused_cross_entropy_kernel_equals_f_cross_entropy(host: HostRunner, dtype: torch.dtype, chunk: int) -> None:
    n, h, v = 23, 16, 300
    hidden, weight = _randn(n, h, dtype=dtype, seed=15, scale=0.5), _randn(v, h, dtype=dtype, seed=16, scale=0.5)
    labels = torch.randint(0, v, (n,), generator=torch.Generator().manual_seed(17))
    labels[::4] = -100
    got = _fwd_bwd(lambda a, b: K.fused_cross_entropy(a, b, labels, chunk_size=chunk), [hidden, weight],
                   [torch.tensor(1.0)])
    ref = _fwd_bwd(lambda a, b: F.cross_entropy((a @ b.t()).float(), labels), [hidden, weight], [torch.tensor(1.0)])
    rel = 2e-5 if dtype == F32 else 2e-2
    for a, r in zip(got, ref):
        _close(a, r, rel)
    assert set(_entries(host)) == {f"ce_rows_{'bf16' if dtype == BF16 else 'f32'}"}


def test_fused_cross_entropy_kernel_under_autocast_equals_eager_autocast(host: HostRunner) -> None:
    hidden, weight = _randn(21, 16, dtype=F32, seed=32, scale=0.5), _randn(260, 16, dtype=F32, seed=33, scale=0.5)
    labels = torch.randint(0, 260, (21,), generator=torch.Generator().manual_seed(34))

    def run(fn: Any) -> list[torch.Tensor]:
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        with torch.autocast("cpu", dtype=BF16):
            loss = fn(h, w)
        loss.backward()
        return [loss.detach(), h.grad, w.grad]

    got = run(lambda h, w: K.fused_cross_entropy(h, w, labels, chunk_size=8))
    ref = run(lambda h, w: F.cross_entropy((h @ w.t()).float(), labels))
    for a, r in zip(got, ref):
        _close(a, r, 2e-2)
    assert set(_entries(host)) == {"ce_rows_bf16"}  # the bf16 kernel read autocast's bf16 logits


def _ce_rows_direct(logits: torch.Tensor, labels: torch.Tensor, write_grad: bool) -> torch.Tensor:
    return _cupy_ops.ce_rows_(logits, labels, -100, write_grad)


def test_ce_rows_infinite_and_nan_logits_match_torch_logsumexp(host: HostRunner) -> None:
    """loss = logsumexp(row) - row[label], with torch.logsumexp's handling of +-inf and NaN.
    (F.cross_entropy differs on one point: a +inf logit elsewhere than the label gives NaN there,
    from inf - inf inside its log_softmax; logsumexp, the eager fallback and the kernel give +inf.)"""
    inf, nan = float("inf"), float("nan")
    v = 200
    rows = torch.randn(7, v, generator=torch.Generator().manual_seed(18))
    labels = torch.tensor([3, 3, 3, 3, 5, 3, -100])
    rows[0, 7] = inf  # one +inf logit: lse = +inf, loss = +inf (was NaN: exp(inf - inf))
    rows[1, 7] = rows[1, 135] = rows[1, 150] = inf  # +inf twice in one thread (7, 7 + 128), once in another
    rows[2, 3] = inf  # +inf at the label: inf - inf = NaN
    rows[3, :100] = -inf  # masked vocabulary entries add nothing
    rows[4, :] = -inf  # all masked...
    rows[4, 5] = 0.0  # ...except the label: a certain prediction, loss 0
    rows[5, 9] = nan  # NaN propagates
    rows[6, 11] = inf  # ignored row: loss 0 whatever the logits
    logits = rows.clone()
    loss = _ce_rows_direct(logits, labels, write_grad=False)
    valid = labels != -100
    target = rows.gather(1, labels.clamp(min=0)[:, None]).squeeze(1)
    ref = torch.where(valid, torch.logsumexp(rows, -1) - target, torch.zeros(()))
    torch.testing.assert_close(loss, ref, equal_nan=True, rtol=1e-5, atol=1e-5)
    assert loss[0] == inf and loss[1] == inf and torch.isnan(loss[2]) and loss[4] == 0 and torch.isnan(loss[5])
    assert loss[6] == 0
    torch.testing.assert_close(_fallback.ce_chunk(rows.clone(), labels, -100, False), loss, equal_nan=True)
    finite = [3]  # where F.cross_entropy has no inf - inf, it agrees too
    torch.testing.assert_close(loss[finite], F.cross_entropy(rows, labels, reduction="none")[finite])
    torch.testing.assert_close(logits, rows, equal_nan=True, rtol=0, atol=0)  # write_grad=False: untouched


@pytest.mark.parametrize("block_v", [31, 1000, 4097])
def test_ce_rows_logsumexp_and_gradient_rows(host: HostRunner, block_v: int) -> None:
    """loss and the in-place gradient (softmax - onehot) against torch, for vocabularies smaller
    than, about and larger than one block's stride."""
    g = torch.Generator().manual_seed(19)
    rows = torch.randn(5, block_v, generator=g) * 4
    labels = torch.randint(0, block_v, (5,), generator=g)
    labels[2] = -100
    logits = rows.clone()
    loss = _ce_rows_direct(logits, labels, write_grad=True)
    x = rows.clone().requires_grad_()
    ref = F.cross_entropy(x, labels, reduction="none")
    ref.sum().backward()
    _close(loss, ref.detach(), 2e-5)
    _close(logits, x.grad, 2e-5)
    assert torch.count_nonzero(logits[2]) == 0  # an ignored row's gradient is zero


def test_fused_cross_entropy_all_ignored_is_nan_with_zero_gradients_like_f_cross_entropy(host: HostRunner) -> None:
    """No valid label: the mean over no token is NaN (0/0), and the gradients are zero, as
    F.cross_entropy's."""
    hidden, weight = _randn(6, 8, dtype=F32, seed=20), _randn(50, 8, dtype=F32, seed=21)
    labels = torch.full((6,), -100)
    got = _fwd_bwd(lambda a, b: K.fused_cross_entropy(a, b, labels, chunk_size=4), [hidden, weight], [torch.tensor(1.0)])
    ref = _fwd_bwd(lambda a, b: F.cross_entropy(a @ b.t(), labels), [hidden, weight], [torch.tensor(1.0)])
    assert torch.isnan(got[0]) and torch.isnan(ref[0])
    for a, r in zip(got[1:], ref[1:]):
        assert torch.equal(r, torch.zeros_like(r)) and torch.equal(a, r)
    assert host.launches  # the kernel ran (every row ignored)


# ---- signatures ------------------------------------------------------------------------------


def test_every_entry_point_has_the_parameter_types_its_launcher_passes(host: HostRunner) -> None:
    # What each launcher passes, in order (p pointer, q int64, i int32, f float32); HostRunner checks
    # every call against these, and this pins the kernels' C++ signatures themselves.
    expect = {
        "rmsnorm_fwd": "ppppqif", "rmsnorm_bwd": "ppppppqi", "rmsnorm_fwd_vec": "ppppqiif",
        "rmsnorm_bwd_vec": "ppppppqii", "rope_fwd": "pppqqqiqqqqq", "rope_bwd": "pppqqqiqqqqq",
        "swiglu_fwd": "pppq", "swiglu_bwd": "pppppq", "swiglu_fwd_vec": "pppq", "swiglu_bwd_vec": "pppppq",
        "moe_gather": "pppipqi", "moe_combine": "pppipqii", "moe_scale_grad": "ppppqii",
        "ce_rows": "ppppqqqi",
    }
    for fam, names in _loader.FAMILIES.items():
        for name in names:
            for sfx in _loader.DTYPE_SUFFIXES:
                assert host.signature(fam, f"{name}_{sfx}") == expect[name], name
