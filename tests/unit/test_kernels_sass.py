"""Every CUDA entry point compiled to SASS (cubin) for sm_80 and sm_90 with NVRTC, no GPU needed:
ptxas runs, its resource report (registers, shared memory, stack, spills) is read back and checked
against the cubin's own ELF attributes, and a build that spills, uses a stack frame, or needs more
registers than a block of the launchers' largest size can hold fails.

NVRTC comes from the nvidia-cuda-nvrtc wheel (requirements-dev.txt; torch's CUDA build pulls it in
too). Where it truly cannot be loaded these tests skip and say why, except under CI (the CI
variable set), where that is a failure: the check must run in CI."""

from __future__ import annotations

import functools
import os

import pytest

from qwen25.kernels import _cupy_ops, _loader, _nvrtc

try:
    _nvrtc.load_nvrtc()
    _NVRTC_MISSING = None
except OSError as e:
    _NVRTC_MISSING = str(e)
if _NVRTC_MISSING is not None:
    if os.environ.get("CI"):
        raise RuntimeError(f"CI must compile the kernels to SASS, but NVRTC does not load: {_NVRTC_MISSING}")
    pytest.skip(f"NVRTC cannot be loaded: {_NVRTC_MISSING}", allow_module_level=True)

ARCHS = _nvrtc.SASS_ARCHS


@functools.lru_cache(maxsize=None)
def _resources(family: str, arch: str) -> tuple[_nvrtc.Resources, ...]:
    return tuple(_nvrtc.sass_resources(family, arch))


def test_targets_are_ampere_and_hopper() -> None:
    assert ARCHS == ("sm_80", "sm_90")
    assert _nvrtc.nvrtc_version() >= (12, 0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", sorted(_loader.FAMILIES))
def test_every_entry_point_compiles_to_sass_without_spills_or_register_overflow(family: str, arch: str) -> None:
    res = _resources(family, arch)
    assert sorted(r.entry for r in res) == sorted(_loader.entry_points(family))
    problems = [p for r in res for p in _nvrtc.resource_problems(r)]
    assert problems == [], "\n".join(problems)
    for r in res:
        assert r.arch == arch
        assert 0 < r.registers <= 255
        assert r.registers == r.cubin_registers  # ptxas's report and the cubin agree
        assert r.launch_bound == _loader.max_threads(family)  # __launch_bounds__ is in the SASS
        assert r.registers_per_block <= _nvrtc.REGISTERS_PER_BLOCK


def test_the_launchers_never_exceed_the_launch_bounds() -> None:
    # the row kernels' block grows with the row length; it tops out at ROW_THREADS
    sizes = [1, 31, 1024, 1025, 4096, 4097, 16384, 16385, 152_064, 2**31 - 1]
    blocks = [_cupy_ops._block_for(n) for n in sizes]
    assert max(blocks) == _loader.ROW_THREADS and all(b % 32 == 0 for b in blocks)
    assert {_loader.max_threads(f) for f in ("rmsnorm", "moe", "cross_entropy")} == {_loader.ROW_THREADS}
    assert {_loader.max_threads(f) for f in ("rope", "swiglu")} == {_loader.ELEMENTWISE_THREADS}
    with pytest.raises(KeyError, match="unknown kernel family"):
        _loader.max_threads("flash")


def test_resource_table_lists_every_entry_point_for_both_targets() -> None:
    res = [r for arch in ARCHS for fam in sorted(_loader.FAMILIES) for r in _resources(fam, arch)]
    table = _nvrtc.resource_table(res)
    lines = table.splitlines()
    every = [n for fam in _loader.FAMILIES for n in _loader.entry_points(fam)]
    assert len(lines) == 2 + len(every)
    for name in every:
        (row,) = [ln for ln in lines if ln.startswith(f"| `{name}` |")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 2 + 4 * len(ARCHS)
        by_arch = {r.arch: r for r in res if r.entry == name}
        for i, arch in enumerate(ARCHS):
            assert cells[2 + 4 * i] == str(by_arch[arch].registers)
            assert cells[3 + 4 * i] == f"{by_arch[arch].registers_per_block:,}"


# ---- the check itself can fail ---------------------------------------------------------------

_PROBE = r"""
extern "C" __global__ void __launch_bounds__(384) bounded(float* out, int n) {
    out[threadIdx.x] = (float)n;
}
extern "C" __global__ void unbounded(float* out) { out[threadIdx.x] = 1.0f; }
// A private array indexed at run time cannot live in registers: a stack frame (local memory).
extern "C" __global__ void __launch_bounds__(1024) local_array(float* out, int k) {
    float buf[64];
    for (int i = 0; i < 64; ++i) buf[(i * k) & 63] = out[i * blockDim.x + threadIdx.x];
    out[threadIdx.x] = buf[k & 63] + buf[(k >> 6) & 63];
}
"""


def _probe(arch: str = "sm_90") -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    res = _nvrtc.compile_source(_PROBE, "probe.cu", arch, options=("-std=c++17",), ptxas_verbose=True)
    assert res.ok, res.log
    return _nvrtc.parse_ptxas_report(res.log), _nvrtc.read_cubin(res.cubin)


@pytest.mark.parametrize("arch", ARCHS)
def test_cubin_reader_finds_launch_bounds_and_registers(arch: str) -> None:
    report, cubin = _probe(arch)
    assert set(report) == set(cubin) == {"bounded", "unbounded", "local_array"}
    assert cubin["bounded"]["max_threads"] == 384
    assert cubin["unbounded"]["max_threads"] == 0
    assert cubin["local_array"]["max_threads"] == 1024
    for name in report:
        assert cubin[name]["registers"] == report[name]["registers"] > 0
    assert report["local_array"]["stack"] >= 64 * 4


def test_problems_are_reported_for_local_memory_missing_bounds_and_register_overflow() -> None:
    report, cubin = _probe()

    def res(name: str, max_threads: int, **over: int) -> _nvrtc.Resources:
        base = dict(report[name], cubin_registers=cubin[name]["registers"])
        base.update(over)
        return _nvrtc.Resources(entry=name, arch="sm_90", launch_bound=cubin[name]["max_threads"],
                                max_threads=max_threads, **base)

    assert _nvrtc.resource_problems(res("bounded", 384)) == []
    (p,) = _nvrtc.resource_problems(res("bounded", 512))
    assert "__launch_bounds__ is 384" in p and "512" in p
    (p,) = _nvrtc.resource_problems(res("unbounded", 256))
    assert "absent" in p
    assert any("stack frame" in p for p in _nvrtc.resource_problems(res("local_array", 1024)))
    spilled = _nvrtc.resource_problems(res("bounded", 384, spill_stores=8, spill_loads=8))
    assert any("spills 8 bytes" in p for p in spilled)
    # 65 registers: rounded up to 72 per thread, x 1024 threads = 73,728 > 65,536
    over = res("bounded", 384, registers=65, cubin_registers=65)
    over = _nvrtc.Resources(**{**over.__dict__, "max_threads": 1024, "launch_bound": 1024})
    assert over.registers_per_block == 72 * 1024
    assert any("registers per block" in p for p in _nvrtc.resource_problems(over))
    at_limit = _nvrtc.Resources(**{**over.__dict__, "registers": 64, "cubin_registers": 64})
    assert at_limit.registers_per_block == 65536 and _nvrtc.resource_problems(at_limit) == []
    mismatch = _nvrtc.Resources(**{**at_limit.__dict__, "cubin_registers": 40})
    assert any("the cubin 40" in p for p in _nvrtc.resource_problems(mismatch))


def test_incomplete_ptxas_report_is_an_error_naming_the_entry() -> None:
    log = "ptxas info    : Compiling entry function 'k' for 'sm_90'\nptxas info    : Used 12 registers\n"
    with pytest.raises(ValueError, match="ptxas report for k lacks"):
        _nvrtc.parse_ptxas_report(log)
    with pytest.raises(ValueError, match="not a 64-bit"):
        _nvrtc.read_cubin(b"not an elf at all")


def test_main_prints_the_table_and_succeeds(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cached = [r for arch in ARCHS for fam in _loader.FAMILIES for r in _resources(fam, arch)]
    monkeypatch.setattr(_nvrtc, "all_resources", lambda: cached)  # the same builds, compiled once above
    assert _nvrtc.main() == 0
    out = capsys.readouterr().out
    assert "0 problems" in out and "| `ce_rows_bf16` | 1024 |" in out
