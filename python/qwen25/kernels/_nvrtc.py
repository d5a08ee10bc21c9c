"""Compile the CUDA sources with NVRTC through ctypes, without a GPU or CuPy.

This is a development and CI check: it proves that every ``.cu`` file compiles for the target
architectures and defines its entry points, on machines that have no GPU (NVRTC ships in the
``nvidia-cuda-nvrtc`` wheel that a CUDA build of torch pulls in). It does not run anything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

_CANDIDATE_DIRS = ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib", "nvidia/cu12/lib")
_CANDIDATE_NAMES = ("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")


def find_nvrtc() -> str | None:
    """Path (or loadable name) of libnvrtc, or None when it cannot be found."""
    roots = [Path(p) for p in sys.path if p]
    for root in roots:
        for sub in _CANDIDATE_DIRS:
            for name in _CANDIDATE_NAMES:
                cand = root / sub / name
                if cand.is_file():
                    return str(cand)
    for env in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(env)
        if home:
            for name in _CANDIDATE_NAMES:
                cand = Path(home) / "lib64" / name
                if cand.is_file():
                    return str(cand)
    return ctypes.util.find_library("nvrtc")


class NvrtcResult:
    def __init__(self, ok: bool, log: str, ptx: str) -> None:
        self.ok = ok
        self.log = log
        self.ptx = ptx


def compile_source(source: str, name: str, arch: str = "compute_90", lib: str | None = None) -> NvrtcResult:
    """Compile ``source`` to PTX for ``arch``; returns success, the log and the PTX text."""
    path = lib or find_nvrtc()
    if path is None:
        raise OSError("libnvrtc not found (install a CUDA build of torch or nvidia-cuda-nvrtc)")
    nv = ctypes.CDLL(path)
    prog = ctypes.c_void_p()
    rc = nv.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if rc != 0:
        raise RuntimeError(f"nvrtcCreateProgram failed with code {rc}")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"-std=c++17"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = nv.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        nv.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        ptx = ""
        if rc == 0:
            nv.nvrtcGetPTXSize(prog, ctypes.byref(size))
            pbuf = ctypes.create_string_buffer(size.value)
            nv.nvrtcGetPTX(prog, pbuf)
            ptx = pbuf.value.decode(errors="replace")
        return NvrtcResult(rc == 0, log, ptx)
    finally:
        nv.nvrtcDestroyProgram(ctypes.byref(prog))


def check_family(family: str, arch: str = "compute_90") -> NvrtcResult:
    """Compile one kernel family as the loader assembles it; raise KernelCompileError on failure."""
    from ._loader import assemble_source, compile_error, entry_points

    res = compile_source(assemble_source(family), f"{family}.cu", arch)
    if not res.ok:
        raise compile_error(family, res.log)
    missing = [n for n in entry_points(family) if f".entry {n}(" not in res.ptx]
    if missing:
        raise compile_error(family, f"entry points missing from the PTX: {missing}")
    return res


def main() -> int:
    from ._loader import FAMILIES

    for family in FAMILIES:
        for arch in ("compute_80", "compute_90"):
            check_family(family, arch)
            print(f"{family}.cu: ok ({arch})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
