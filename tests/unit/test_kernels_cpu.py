"""CPU-side tests of qwen25.kernels: source discovery and compilation (NVRTC, no GPU), dispatch,
the eager fallbacks against independent references (transformers' Qwen2 code, F.cross_entropy on
materialised logits, a plain MoE loop), and the autograd Functions driven by a torch
transliteration of the kernels (tests/unit/_kernel_contracts.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import qwen25  # noqa: E402
import qwen25.kernels as K  # noqa: E402
from qwen25.kernels import _autograd, _fallback, _loader, _nvrtc  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _kernel_contracts import ContractOps  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BF16 = torch.bfloat16
F32 = torch.float32
# bf16 comparisons: a few units in the last place of bf16 (2^-8 relative)
TOL = {F32: dict(rtol=1e-5, atol=1e-6), BF16: dict(rtol=2e-2, atol=2e-2)}


# ---- sources, loader, compilation ------------------------------------------------------------


def test_every_cu_file_is_a_known_family_and_vice_versa() -> None:
    found = {p.stem for p in _loader.cuda_dir().glob("*.cu")}
    assert found == set(_loader.FAMILIES)
    assert (_loader.cuda_dir() / _loader.PRELUDE).is_file()


def test_sources_live_inside_the_package() -> None:
    pkg = Path(K.__file__).resolve().parent
    assert _loader.cuda_dir() == pkg / "cuda"
    for fam in _loader.FAMILIES:
        assert _loader.source_path(fam).is_file()


def test_root_cuda_folder_is_the_package_folder() -> None:
    root = REPO / "cuda"
    if not (REPO / "pyproject.toml").exists() or not root.exists():
        pytest.skip("not a source checkout")
    assert root.resolve() == _loader.cuda_dir()


def test_assembled_source_has_line_directives() -> None:
    src = _loader.assemble_source("rmsnorm")
    lines = src.splitlines()
    assert lines[0].startswith("#line 1 ") and lines[0].endswith('common.cuh"')
    idx = next(i for i, ln in enumerate(lines) if ln.startswith("#line 1 ") and ln.endswith('rmsnorm.cu"'))
    body = _loader.source_path("rmsnorm").read_text().splitlines()
    assert lines[idx + 1 : idx + 1 + len(body)] == body


def test_unknown_family_raises() -> None:
    with pytest.raises(KeyError, match="unknown kernel family"):
        _loader.source_path("flash_attention")


needs_nvrtc = pytest.mark.skipif(_nvrtc.find_nvrtc() is None, reason="libnvrtc not found")


@needs_nvrtc
@pytest.mark.parametrize("family", sorted(_loader.FAMILIES))
def test_every_family_compiles_with_nvrtc_and_defines_its_entry_points(family: str) -> None:
    res = _nvrtc.check_family(family, "compute_80")  # raises KernelCompileError otherwise
    for name in _loader.entry_points(family):
        assert f".entry {name}(" in res.ptx
    assert "warning" not in res.log.lower(), res.log


@needs_nvrtc
def test_compile_error_names_the_cu_file_and_line(monkeypatch: pytest.MonkeyPatch) -> None:
    path = _loader.source_path("rope")
    text = path.read_text().splitlines()
    lineno = next(i for i, ln in enumerate(text, 1) if "const int half = D / 2;" in ln)
    broken = _loader.assemble_source("rope").replace("const int half = D / 2;", "const int half = D / 2 +;")
    res = _nvrtc.compile_source(broken, "rope.cu")
    assert not res.ok
    err = _loader.compile_error("rope", res.log)
    assert isinstance(err, K.KernelCompileError) and isinstance(err, RuntimeError)
    assert err.path == str(path)
    assert f"{path}({lineno}): error" in str(err)


def _fake_cupy(compile_log: str | None) -> types.ModuleType:
    cupy = types.ModuleType("cupy")

    class CompileException(Exception):
        pass

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        def __enter__(self) -> "Device":
            return self

        def __exit__(self, *a: object) -> None:
            return None

    class RawModule:
        def __init__(self, code: str, options: tuple[str, ...]) -> None:
            self.code = code

        def get_function(self, name: str) -> str:
            if compile_log is not None:
                raise CompileException(compile_log)
            assert name in self.code or name.rsplit("_", 1)[0] in self.code
            return f"fn:{name}"

    cupy.RawModule = RawModule  # type: ignore[attr-defined]
    cupy.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        Device=Device, compiler=types.SimpleNamespace(CompileException=CompileException)
    )
    return cupy


def test_loader_compiles_per_family_and_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(None))
    _loader.get_functions.cache_clear()
    try:
        fns = _loader.get_functions("swiglu", 0)
        assert set(fns) == set(_loader.entry_points("swiglu"))
        assert {"swiglu_fwd_f32", "swiglu_fwd_bf16", "swiglu_bwd_vec_f32", "swiglu_bwd_vec_bf16"} <= set(fns)
        assert _loader.get_functions("swiglu", 0) is fns  # cached per (family, device)
        assert _loader.get_functions("swiglu", 1) is not fns
    finally:
        _loader.get_functions.cache_clear()


def test_loader_turns_cupy_compile_errors_into_errors_naming_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    path = _loader.source_path("moe")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(f"{path}(12): error: expected a ';'"))
    _loader.get_functions.cache_clear()
    try:
        with pytest.raises(K.KernelCompileError) as ei:
            _loader.get_functions("moe", 0)
        assert str(path) in str(ei.value) and "(12): error" in str(ei.value)
        assert isinstance(ei.value, qwen25.Qwen25Error)
    finally:
        _loader.get_functions.cache_clear()


def test_wheel_ships_every_cuda_source_and_the_vocabulary_inside_the_package(tmp_path: Path) -> None:
    maturin = shutil.which("maturin") or str(Path(sys.executable).parent / "maturin")
    if not (REPO / "pyproject.toml").exists() or not Path(maturin).exists():
        pytest.skip("needs a source checkout and maturin")
    out = subprocess.run([maturin, "build", "--release", "-q", "-o", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for fam in _loader.FAMILIES:
        assert f"qwen25/kernels/cuda/{fam}.cu" in names
    assert "qwen25/kernels/cuda/common.cuh" in names
    assert not any(n.startswith("cuda/") for n in names)  # would collide with NVIDIA's cuda namespace
    # installed (a wheel installs by unpacking): the loader finds and assembles every source there
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import qwen25, qwen25.kernels._loader as L; from pathlib import Path; "
        "assert Path(qwen25.__file__).resolve().is_relative_to(Path(__import__('sys').argv[1]).resolve()), qwen25.__file__; "
        "assert L.cuda_dir().is_relative_to(Path(qwen25.__file__).resolve().parent); "
        "assert qwen25.Tokenizer.qwen25().encode('Hello world') == [9707, 1879]; "
        "print(sorted(p.name for p in L.cuda_dir().iterdir())); "
        "[L.assemble_source(f) for f in L.FAMILIES]"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == str(sorted([f"{f}.cu" for f in _loader.FAMILIES] + ["common.cuh"]))


def test_vectorised_path_only_for_whole_aligned_packs() -> None:
    from qwen25.kernels._cupy_ops import _packs

    a = torch.zeros(64, dtype=BF16)
    assert _packs((a, torch.zeros(64, dtype=BF16))) == 8  # 8 bf16 per 16-byte pack
    assert _packs((torch.zeros(64),)) == 16  # 4 fp32 per pack
    assert _packs((torch.zeros(60, dtype=BF16),)) == 0  # not a whole number of packs
    assert _packs((a, torch.zeros(72, dtype=BF16)[8:])) == 8  # offset 16 bytes: aligned
    assert _packs((a, torch.zeros(65, dtype=BF16)[1:])) == 0  # offset 2 bytes: misaligned


def test_vectorised_rmsnorm_needs_rows_of_whole_packs() -> None:
    from qwen25.kernels._cupy_ops import _row_packs

    x = torch.zeros(3, 1536, dtype=BF16)
    assert _row_packs(1536, (x, torch.zeros(1536, dtype=BF16))) == 192
    assert _row_packs(1004, (torch.zeros(3, 1004),)) == 251  # fp32: 4 per pack
    assert _row_packs(1004, (torch.zeros(3, 1004, dtype=BF16),)) == 0  # bf16: 1004 % 8 != 0
    assert _row_packs(8, (torch.zeros(9, dtype=BF16)[1:],)) == 0  # misaligned


# ---- dispatch --------------------------------------------------------------------------------


@pytest.fixture
def clean_state(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("QWEN25_KERNELS", raising=False)
    K._reset()
    yield monkeypatch
    K._reset()


def _cuda_like(dtype: torch.dtype = F32) -> types.SimpleNamespace:
    return types.SimpleNamespace(is_cuda=True, dtype=dtype, is_floating_point=lambda: dtype.is_floating_point)


def test_available_reports_no_cuda_honestly(clean_state: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert K.available() is False
    assert K.unavailable_reason() == "no CUDA device is visible to torch"


def test_env_switch_disables(clean_state: pytest.MonkeyPatch) -> None:
    clean_state.setattr(torch.cuda, "is_available", lambda: True)
    clean_state.setitem(sys.modules, "cupy", _fake_cupy(None))
    assert K.available() is True and K.unavailable_reason() is None
    assert K._use_kernels(_cuda_like()) is True
    clean_state.setenv("QWEN25_KERNELS", "0")
    assert K.available() is False
    assert "QWEN25_KERNELS=0" in (K.unavailable_reason() or "")
    assert K._use_kernels(_cuda_like()) is False


def test_missing_cupy_is_reported(clean_state: pytest.MonkeyPatch) -> None:
    clean_state.setattr(torch.cuda, "is_available", lambda: True)
    clean_state.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    assert K.available() is False
    assert "CuPy is not importable" in (K.unavailable_reason() or "")
    assert K._use_kernels(_cuda_like()) is False


def test_cpu_tensors_and_other_dtypes_take_the_fallback(clean_state: pytest.MonkeyPatch) -> None:
    clean_state.setattr(torch.cuda, "is_available", lambda: True)
    clean_state.setitem(sys.modules, "cupy", _fake_cupy(None))

    def boom() -> None:
        raise AssertionError("the kernel path was taken")

    clean_state.setattr(K, "_ops", boom)
    assert K._use_kernels(_cuda_like(torch.float16)) is False
    x = torch.randn(3, 8)
    w = torch.randn(8)
    torch.testing.assert_close(K.rms_norm(x, w, 1e-6), _fallback.rms_norm(x, w, 1e-6))
    torch.testing.assert_close(K.swiglu(x, x), _fallback.swiglu(x, x))
    q = torch.randn(1, 2, 3, 8)
    cos, sin = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    K.apply_rope(q, q.clone(), cos, sin)
    K.moe_permute(x, torch.tensor([[0], [1], [0]]), 2)
    K.fused_cross_entropy(x, torch.randn(5, 8), torch.tensor([1, 2, 3]))


# ---- fallbacks against independent references ------------------------------------------------

qwen2 = pytest.importorskip("transformers.models.qwen2.modeling_qwen2")
from transformers import Qwen2Config  # noqa: E402


def _config(**kw: object) -> Qwen2Config:
    base = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=256, rms_norm_eps=1e-6)
    base.update(kw)
    return Qwen2Config(**base)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape", [(1, 1, 64), (2, 7, 64), (5, 64)])
def test_rms_norm_fallback_equals_qwen2_rmsnorm(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    ref = qwen2.Qwen2RMSNorm(64, eps=1e-6).to(dtype)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(64, generator=g))
    x = torch.randn(*shape, generator=g).to(dtype).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    w = ref.weight.detach().clone().requires_grad_()
    out, expect = _fallback.rms_norm(x, w, 1e-6), ref(x2)
    assert torch.equal(out, expect)
    dy = torch.randn(*shape, generator=g).to(dtype)
    out.backward(dy)
    expect.backward(dy)
    assert torch.equal(x.grad, x2.grad) and torch.equal(w.grad, ref.weight.grad)


def _rope_tables(b: int, t: int, yarn: bool, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    params = {"rope_type": "default", "rope_theta": 10000.0}
    if yarn:
        params = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "rope_theta": 10000.0}
    rot = qwen2.Qwen2RotaryEmbedding(_config(rope_parameters=params))
    x = torch.zeros(b, t, 64, dtype=dtype)
    pos = torch.arange(t)[None].expand(b, t) + torch.arange(b)[:, None] * 3  # per-row offsets
    return rot(x, pos)  # [B, T, D] each, in dtype


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("yarn", [False, True])
def test_apply_rope_fallback_equals_transformers(dtype: torch.dtype, yarn: bool) -> None:
    g = torch.Generator().manual_seed(1)
    b, t, d = 2, 5, 16
    cos, sin = _rope_tables(b, t, yarn, dtype)
    q = torch.randn(b, 4, t, d, generator=g).to(dtype).requires_grad_()
    k = torch.randn(b, 2, t, d, generator=g).to(dtype).requires_grad_()
    q2, k2 = (z.detach().clone().requires_grad_() for z in (q, k))
    oq, ok = _fallback.apply_rope(q, k, cos, sin)
    eq, ek = qwen2.apply_rotary_pos_emb(q2, k2, cos, sin)
    assert torch.equal(oq, eq) and torch.equal(ok, ek)
    gq, gk = torch.randn_like(oq), torch.randn_like(ok)
    (oq * gq).sum().add((ok * gk).sum()).backward()
    (eq * gq).sum().add((ek * gk).sum()).backward()
    assert torch.equal(q.grad, q2.grad) and torch.equal(k.grad, k2.grad)
    # the public function broadcasts a single table over the batch
    oq1, _ = K.apply_rope(q.detach()[:1], k.detach()[:1], cos[:1], sin[:1])
    torch.testing.assert_close(oq1, oq.detach()[:1], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_swiglu_fallback_in_qwen2_mlp(dtype: torch.dtype) -> None:
    torch.manual_seed(2)
    mlp = qwen2.Qwen2MLP(_config()).to(dtype)
    x = torch.randn(3, 64).to(dtype)
    ours = mlp.down_proj(_fallback.swiglu(mlp.gate_proj(x), mlp.up_proj(x)))
    assert torch.equal(ours, mlp(x))


def _moe_reference(hidden: torch.Tensor, ids: torch.Tensor, w: torch.Tensor, e: int, expert):  # type: ignore[no-untyped-def]
    """A plain loop: per expert, its (token, slot) pairs in token order; then the weighted sum."""
    n, k = ids.shape
    groups, offsets = [], [0]
    for ex in range(e):
        pairs = [(t, s) for t in range(n) for s in range(k) if int(ids[t, s]) == ex]
        groups.append(pairs)
        offsets.append(offsets[-1] + len(pairs))
    rows = [hidden[t] for grp in groups for (t, _) in grp]
    permuted = torch.stack(rows) if rows else hidden.new_zeros(0, hidden.shape[1])
    out = torch.zeros(n, hidden.shape[1], dtype=torch.float32)
    for grp in groups:
        for t, s in grp:
            out[t] += w[t, s].float() * expert(hidden[t]).float()
    return permuted, torch.tensor(offsets), out.to(hidden.dtype)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 9), k=st.integers(1, 3), e=st.integers(1, 6), h=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_moe_permute_unpermute_equal_a_plain_loop(n: int, k: int, e: int, h: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g)
    ids = torch.randint(0, e, (n, k), generator=g)
    w = torch.rand(n, k, generator=g)
    scale = torch.arange(1, h + 1, dtype=torch.float32)  # a per-row "expert": x * scale
    permuted, offsets, order = K.moe_permute(hidden, ids, e)
    exp_perm, exp_off, exp_out = _moe_reference(hidden, ids, w, e, lambda x: x * scale)
    assert torch.equal(offsets, exp_off)
    assert torch.equal(permuted, exp_perm)
    out = K.moe_unpermute(permuted * scale, order, w)
    torch.testing.assert_close(out, exp_out, rtol=1e-5, atol=1e-6)


def test_moe_bad_inputs() -> None:
    x = torch.randn(3, 4)
    with pytest.raises(qwen25.Qwen25ValueError, match="expert id 5 outside"):
        K.moe_permute(x, torch.tensor([[0], [5], [1]]), 5)
    with pytest.raises(qwen25.Qwen25ValueError, match="expert id -1 outside"):
        K.moe_permute(x, torch.tensor([0, -1, 1]), 5)
    with pytest.raises(qwen25.Qwen25ValueError, match="integers"):
        K.moe_permute(x, torch.zeros(3, 1), 5)
    with pytest.raises(qwen25.Qwen25ValueError, match="num_experts"):
        K.moe_permute(x, torch.zeros(3, 1, dtype=torch.long), 0)
    p, _, order = K.moe_permute(x, torch.zeros(3, 2, dtype=torch.long), 1)
    with pytest.raises(qwen25.Qwen25ValueError, match="do not match"):
        K.moe_unpermute(p, order, torch.ones(3, 1))


def _ce_reference(hidden, weight, labels, ignore_index=-100):  # type: ignore[no-untyped-def]
    h = hidden.detach().clone().requires_grad_()
    w = weight.detach().clone().requires_grad_()
    loss = F.cross_entropy((h @ w.t()).float(), labels, ignore_index=ignore_index)
    loss.backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("chunk", [1, 3, 64, 1000])
def test_fused_cross_entropy_equals_materialised_logits(dtype: torch.dtype, chunk: int) -> None:
    g = torch.Generator().manual_seed(3)
    n, h, v = 37, 24, 301
    hidden = (torch.randn(n, h, generator=g) * 0.5).to(dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=g) * 0.5).to(dtype).requires_grad_()
    labels = torch.randint(0, v, (n,), generator=g)
    labels[::5] = -100
    loss = K.fused_cross_entropy(hidden, weight, labels, chunk_size=chunk)
    loss.backward()
    ref_loss, ref_h, ref_w = _ce_reference(hidden, weight, labels)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == F32 else dict(rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(loss, ref_loss, **tol)
    assert hidden.grad.dtype == dtype and weight.grad.dtype == dtype
    torch.testing.assert_close(hidden.grad, ref_h, **tol)
    torch.testing.assert_close(weight.grad, ref_w, **tol)


def test_fused_cross_entropy_batched_shape_ignore_index_and_no_grad() -> None:
    g = torch.Generator().manual_seed(4)
    hidden = torch.randn(2, 6, 8, generator=g)
    weight = torch.randn(11, 8, generator=g)
    labels = torch.randint(0, 11, (2, 6), generator=g)
    labels[0, :3] = 7
    with torch.no_grad():
        out = K.fused_cross_entropy(hidden, weight, labels, ignore_index=7, chunk_size=4)
    ref = F.cross_entropy((hidden @ weight.t()).reshape(-1, 11), labels.reshape(-1), ignore_index=7)
    torch.testing.assert_close(out, ref)
    all_ignored = torch.full((2, 6), -100)
    assert torch.isnan(K.fused_cross_entropy(hidden, weight, all_ignored))
    assert torch.isnan(F.cross_entropy((hidden @ weight.t()).reshape(-1, 11), all_ignored.reshape(-1)))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 20), c1=st.integers(1, 25), c2=st.integers(1, 25), seed=st.integers(0, 2**16))
def test_fused_cross_entropy_does_not_depend_on_chunk_size(n: int, c1: int, c2: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, 8, generator=g, dtype=torch.float64).float()
    weight = torch.randn(13, 8, generator=g)
    labels = torch.randint(0, 13, (n,), generator=g)

    def run(c: int) -> tuple[torch.Tensor, ...]:
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        loss = K.fused_cross_entropy(h, w, labels, chunk_size=c)
        loss.backward()
        return loss.detach(), h.grad, w.grad

    for a, b in zip(run(c1), run(c2)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_cross_entropy_computes_no_gradient_without_grad_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = _fallback.ce_chunk

    def spy(logits, labels, ignore_index, write_grad):  # type: ignore[no-untyped-def]
        seen.append(write_grad)
        return real(logits, labels, ignore_index, write_grad)

    monkeypatch.setattr(_fallback, "ce_chunk", spy)
    h = torch.randn(5, 8, requires_grad=True)
    w = torch.randn(10, 8, requires_grad=True)
    labels = torch.tensor([1, 2, 3, 4, 5])
    with torch.no_grad():
        a = K.fused_cross_entropy(h, w, labels, chunk_size=2)
    with torch.inference_mode():
        b = K.fused_cross_entropy(h, w, labels, chunk_size=2)
    assert seen == [False] * 6
    c = K.fused_cross_entropy(h, w, labels, chunk_size=2)
    assert seen[6:] == [True] * 3 and c.requires_grad
    torch.testing.assert_close(a, c.detach())
    torch.testing.assert_close(b, c.detach())


def test_fused_cross_entropy_bad_inputs() -> None:
    h, w = torch.randn(4, 8), torch.randn(10, 8)
    with pytest.raises(qwen25.Qwen25ValueError, match="label 10 at flat position 2"):
        K.fused_cross_entropy(h, w, torch.tensor([1, 2, 10, 3]))
    with pytest.raises(qwen25.Qwen25ValueError, match="label -5"):
        K.fused_cross_entropy(h, w, torch.tensor([1, -5, 0, 3]))
    with pytest.raises(qwen25.Qwen25ValueError, match="do not match"):
        K.fused_cross_entropy(h, w, torch.tensor([1, 2, 3]))
    with pytest.raises(qwen25.Qwen25ValueError, match="bfloat16"):
        K.fused_cross_entropy(h.bfloat16(), w, torch.tensor([1, 2, 3, 4]))
    with pytest.raises(qwen25.Qwen25ValueError, match="chunk_size"):
        K.fused_cross_entropy(h, w, torch.tensor([1, 2, 3, 4]), chunk_size=0)


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(qwen25.Qwen25ValueError, match=r"\(7,\)"):
        K.rms_norm(torch.randn(2, 8), torch.randn(7), 1e-6)
    with pytest.raises(qwen25.Qwen25ValueError, match="even"):
        K.apply_rope(torch.randn(1, 1, 2, 5), torch.randn(1, 1, 2, 5), torch.randn(1, 2, 5), torch.randn(1, 2, 5))
    with pytest.raises(qwen25.Qwen25ValueError, match=r"cos/sin must be"):
        K.apply_rope(torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4), torch.randn(3, 3, 4), torch.randn(3, 3, 4))
    with pytest.raises(qwen25.Qwen25ValueError, match="differ"):
        K.swiglu(torch.randn(2, 3), torch.randn(3, 2))


# ---- the kernel path (autograd Functions + glue), driven by the kernels' contract in torch ----


@pytest.fixture
def kernel_path(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Route the public functions through the kernel branch with ContractOps on CPU tensors."""
    monkeypatch.setattr(K, "_use_kernels", lambda *ts: True)
    monkeypatch.setattr(K, "_ops", lambda: ContractOps)
    ContractOps.calls = []
    yield ContractOps


def _grads(fn, inputs, dout):  # type: ignore[no-untyped-def]
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*leaves)
    outs = out if isinstance(out, tuple) else (out,)
    torch.autograd.backward(outs, dout)
    return [o.detach() for o in outs], [x.grad for x in leaves]


def _compare(kernel_fn, eager_fn, inputs, douts, dtype):  # type: ignore[no-untyped-def]
    ko, kg = _grads(kernel_fn, inputs, douts)
    eo, eg = _grads(eager_fn, inputs, douts)
    for a, b in zip(ko + kg, eo + eg):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 97), (4, 1000)])
def test_rms_norm_kernel_path(kernel_path, dtype: torch.dtype, shape: tuple[int, ...]) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(5)
    x = torch.randn(*shape, generator=g).to(dtype)
    w = torch.randn(shape[-1], generator=g).to(dtype)
    dy = torch.randn(*shape, generator=g).to(dtype)
    _compare(lambda a, b: K.rms_norm(a, b, 1e-6), lambda a, b: _fallback.rms_norm(a, b, 1e-6), [x, w], [dy], dtype)
    assert kernel_path.calls == ["rmsnorm_fwd", "rmsnorm_bwd"]


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("bc", [1, 2])
@pytest.mark.parametrize("tables", ["yarn", "random"])
def test_rope_kernel_path(kernel_path, dtype: torch.dtype, bc: int, tables: str) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(6)
    if tables == "yarn":
        cos, sin = _rope_tables(2, 5, True, dtype)
    else:  # halves that differ: catches a formula that confuses cos[i] with cos[i + D/2]
        cos, sin = (torch.randn(2, 5, 16, generator=g).to(dtype) for _ in range(2))
    cos, sin = cos[:bc], sin[:bc]
    q = torch.randn(2, 4, 5, 16, generator=g).to(dtype)
    k = torch.randn(2, 2, 5, 16, generator=g).to(dtype)
    dq, dk = torch.randn_like(q), torch.randn_like(k)
    _compare(lambda a, b: K.apply_rope(a, b, cos, sin), lambda a, b: _fallback.apply_rope(a, b, cos, sin),
             [q, k], [dq, dk], dtype)
    assert sorted(kernel_path.calls) == ["rope_bwd", "rope_bwd", "rope_fwd", "rope_fwd"]


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_rope_kernel_path_in_place_on_projection_views(kernel_path, dtype: torch.dtype) -> None:  # type: ignore[no-untyped-def]
    """q and k as the model makes them: transposed views of one fused projection output."""
    b, t, hq, hk, d = 2, 5, 4, 2, 16
    cos, sin = _rope_tables(b, t, False, dtype)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(b, t, 32, generator=g).to(dtype)
    wproj = torch.randn((hq + hk) * d, 32, generator=g).to(dtype)

    def run(rope):  # type: ignore[no-untyped-def]
        xx, ww = x.clone().requires_grad_(), wproj.clone().requires_grad_()
        qkv = xx @ ww.t()  # [B, T, (Hq+Hk)*D]
        q = qkv[..., : hq * d].view(b, t, hq, d).transpose(1, 2)  # [B, Hq, T, D], a strided view
        k = qkv[..., hq * d :].view(b, t, hk, d).transpose(1, 2)
        oq, ok = rope(q, k, cos, sin)
        ((oq.float() ** 2).sum() + (ok.float() ** 3).sum()).backward()
        return oq.detach(), ok.detach(), xx.grad, ww.grad, q, oq

    *kern, q_in, q_out = run(K.apply_rope)
    assert q_out.data_ptr() == q_in.data_ptr()  # rotated in place
    *eager, _, _ = run(_fallback.apply_rope)
    for a, e in zip(kern, eager):
        torch.testing.assert_close(a, e, **TOL[dtype])


def test_rope_kernel_path_does_not_touch_leaves(kernel_path) -> None:  # type: ignore[no-untyped-def]
    cos, sin = _rope_tables(1, 3, False, F32)
    q = torch.randn(1, 2, 3, 16, requires_grad=True)
    k = torch.randn(1, 2, 3, 16, requires_grad=True)
    before = q.detach().clone()
    oq, ok = K.apply_rope(q, k, cos, sin)
    assert torch.equal(q.detach(), before)
    (oq.sum() + ok.sum()).backward()
    eq, _ = _fallback.apply_rope(before, k.detach(), cos, sin)
    torch.testing.assert_close(oq.detach(), eq)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("shape", [(1,), (3, 7, 129), (2, 4096)])
def test_swiglu_kernel_path(kernel_path, dtype: torch.dtype, shape: tuple[int, ...]) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(8)
    gate, up, dout = (torch.randn(*shape, generator=g).mul(3).to(dtype) for _ in range(3))
    _compare(K.swiglu, _fallback.swiglu, [gate, up], [dout], dtype)
    assert kernel_path.calls == ["swiglu_fwd", "swiglu_bwd"]


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("n,k,e,h", [(1, 1, 4, 8), (9, 2, 6, 33), (16, 4, 64, 5)])
def test_moe_kernel_path(kernel_path, dtype: torch.dtype, n: int, k: int, e: int, h: int) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(9)
    hidden = torch.randn(n, h, generator=g).to(dtype)
    ids = torch.randint(0, e, (n, k), generator=g)
    ids[ids == 1] = 0  # expert 1 gets no token: an empty group
    w = torch.rand(n, k, generator=g).to(dtype)
    scale = torch.linspace(0.5, 2, h).to(dtype)

    def block(mod):  # type: ignore[no-untyped-def]
        def run(x, ww):  # type: ignore[no-untyped-def]
            permuted, offsets, order = mod.moe_permute(x, ids, e)
            assert int(offsets[2] - offsets[1]) == 0
            return mod.moe_unpermute(permuted * scale, order, ww)
        return run

    class Eager:
        @staticmethod
        def moe_permute(x, i, ne):  # type: ignore[no-untyped-def]
            order = torch.argsort(i.reshape(-1), stable=True)
            counts = torch.bincount(i.reshape(-1), minlength=ne)
            return _fallback.moe_rows(x, order, i.shape[1]), torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]), order

        @staticmethod
        def moe_unpermute(p, order, ww):  # type: ignore[no-untyped-def]
            return _fallback.moe_combine(p, order, ww)

    dout = torch.randn(n, h, generator=g).to(dtype)
    _compare(block(K), block(Eager), [hidden, w], [dout], dtype)
    assert sorted(set(kernel_path.calls)) == ["moe_combine", "moe_gather", "moe_scale_grad"]


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_fused_cross_entropy_kernel_path(kernel_path, dtype: torch.dtype) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(10)
    n, h, v = 29, 16, 257
    hidden = (torch.randn(n, h, generator=g) * 0.5).to(dtype)
    weight = (torch.randn(v, h, generator=g) * 0.5).to(dtype)
    labels = torch.randint(0, v, (n,), generator=g)
    labels[3] = labels[17] = -100
    _compare(lambda a, b: K.fused_cross_entropy(a, b, labels, chunk_size=8),
             lambda a, b: K._autograd.FusedCrossEntropyFn.apply(a, b, labels, -100, 8, True, _fallback.ce_chunk,
                                                                dtype),
             [hidden, weight], [torch.tensor(1.0)], dtype)
    assert kernel_path.calls == ["ce_rows"] * 4
    assert _autograd is K._autograd


# ---- the online log-sum-exp of cross_entropy.cu, step by step --------------------------------


def _ce_rows_lse_transliterated(row: list[float], block: int) -> float:
    """ce_rows' reduction as the CUDA code runs it: each thread's online (max, sum) over a strided
    slice (lse_push), then warp_lse (xor shuffles), then block_lse over the warps' results
    (lse_merge, common.cuh). The CUDA code itself runs in tests/unit/test_kernels_host.py."""
    import math as m

    neg_inf = float("-inf")

    def merge(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:  # lse_merge
        mx = max(a[0], b[0])
        if mx == neg_inf:
            return a
        return mx, (a[1] if a[0] == mx else a[1] * m.exp(a[0] - mx)) + (b[1] if b[0] == mx else b[1] * m.exp(b[0] - mx))

    def warp(states: list[tuple[float, float]]) -> list[tuple[float, float]]:
        o = 16
        while o > 0:
            states = [merge(states[i], states[i ^ o]) for i in range(32)]
            o >>= 1
        return states

    threads = []
    for t in range(block):
        mm, s = neg_inf, 0.0
        for j in range(t, len(row), block):  # lse_push
            v = row[j]
            if v > mm:
                s = s * m.exp(mm - v) + 1.0
                mm = v
            elif v == mm:
                s += 1.0 if mm != neg_inf else 0.0
            else:
                s += m.exp(v - mm)
        threads.append((mm, s))
    nwarps = block // 32
    per_warp = [warp(threads[w * 32 : (w + 1) * 32])[0] for w in range(nwarps)]
    lanes = [per_warp[i] if i < nwarps else (neg_inf, 0.0) for i in range(32)]
    mm, s = warp(lanes)[0]
    return mm + m.log(s) if s > 0 else neg_inf


@settings(max_examples=12, deadline=None)
@given(v=st.integers(1, 300), block=st.sampled_from([32, 64, 128]), seed=st.integers(0, 2**16),
       n_inf=st.integers(0, 5), n_posinf=st.integers(0, 2))
def test_ce_kernel_online_logsumexp_equals_logsumexp(v: int, block: int, seed: int, n_inf: int, n_posinf: int) -> None:
    g = torch.Generator().manual_seed(seed)
    row = torch.randn(v, generator=g, dtype=torch.float64) * 20
    perm = torch.randperm(v, generator=g)
    row[perm[: min(n_inf, v - 1)]] = float("-inf")  # masked vocabulary entries
    row[perm[v - min(n_posinf, v) :]] = float("inf")  # +inf logits: logsumexp is +inf, never NaN
    got = _ce_rows_lse_transliterated(row.tolist(), block)
    expect = float(torch.logsumexp(row, 0))
    assert got == expect if expect == float("inf") else got == pytest.approx(expect, rel=1e-12, abs=1e-12)
