"""Finding, assembling and compiling the CUDA sources (``kernels/cuda/*.cu``).

The sources ship inside the package (``qwen25/kernels/cuda/``) so that an editable checkout and an
installed wheel find them the same way. Each ``.cu`` file is compiled on its own with
``common.cuh`` prepended; ``#line`` directives keep compiler messages pointing at the file and
line the user can open. Compiled modules are cached per (family, device).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..errors import Qwen25Error

#: Every kernel family and the ``extern "C"`` entry points (without the dtype suffix) its file
#: defines. Each entry point exists once per suffix in ``DTYPE_SUFFIXES``.
FAMILIES: dict[str, tuple[str, ...]] = {
    "rmsnorm": ("rmsnorm_fwd", "rmsnorm_bwd", "rmsnorm_fwd_vec", "rmsnorm_bwd_vec"),
    "rope": ("rope_fwd", "rope_bwd"),
    "swiglu": ("swiglu_fwd", "swiglu_bwd", "swiglu_fwd_vec", "swiglu_bwd_vec"),
    "moe": ("moe_gather", "moe_combine", "moe_scale_grad"),
    "cross_entropy": ("ce_rows",),
}
DTYPE_SUFFIXES: tuple[str, ...] = ("f32", "bf16")
PRELUDE = "common.cuh"

#: The most threads per block of a launch: one block per row (rmsnorm, moe, cross_entropy; the
#: block grows with the row, see ``_cupy_ops._block_for``) or a fixed block for the elementwise
#: families (rope, swiglu). Passed to the compiler as ``QWEN25_ROW_THREADS`` and
#: ``QWEN25_ELEMENTWISE_THREADS``, which every entry point's ``__launch_bounds__`` names.
ROW_THREADS = 1024
ELEMENTWISE_THREADS = 256
_ELEMENTWISE_FAMILIES = ("rope", "swiglu")


def max_threads(family: str) -> int:
    """The most threads per block that any launch of this family's entry points uses."""
    if family not in FAMILIES:
        raise KeyError(f"unknown kernel family {family!r}; known: {sorted(FAMILIES)}")
    return ELEMENTWISE_THREADS if family in _ELEMENTWISE_FAMILIES else ROW_THREADS


def compile_options() -> tuple[str, ...]:
    """The options every compilation of the sources uses (CuPy on the GPU, NVRTC in the checks)."""
    return ("-std=c++17", f"-DQWEN25_ROW_THREADS={ROW_THREADS}",
            f"-DQWEN25_ELEMENTWISE_THREADS={ELEMENTWISE_THREADS}")


class KernelCompileError(Qwen25Error, RuntimeError):
    """A CUDA source failed to compile. ``path`` is the ``.cu`` file; the message has the log."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def cuda_dir() -> Path:
    """The folder holding the ``.cu`` sources, inside the installed package."""
    return Path(__file__).resolve().parent / "cuda"


def source_path(family: str) -> Path:
    if family not in FAMILIES:
        raise KeyError(f"unknown kernel family {family!r}; known: {sorted(FAMILIES)}")
    return cuda_dir() / f"{family}.cu"


def entry_points(family: str) -> list[str]:
    """The ``extern "C"`` names one family's module must define."""
    return [f"{name}_{sfx}" for name in FAMILIES[family] for sfx in DTYPE_SUFFIXES]


def _line_directive(path: Path) -> str:
    # Backslashes (Windows paths) and quotes would end the string literal early.
    text = str(path).replace("\\", "/").replace('"', "'")
    return f'#line 1 "{text}"\n'


def assemble_source(family: str) -> str:
    """The exact text handed to the compiler for one family: prelude, then the ``.cu`` file."""
    path = source_path(family)
    prelude = cuda_dir() / PRELUDE
    try:
        body = path.read_text(encoding="utf-8")
        head = prelude.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"CUDA source missing from the qwen25 package: {e.filename}") from e
    return _line_directive(prelude) + head + "\n" + _line_directive(path) + body


def compile_error(family: str, log: str) -> KernelCompileError:
    path = source_path(family)
    return KernelCompileError(f"CUDA kernel source {path} failed to compile:\n{log.strip()}", str(path))


@functools.lru_cache(maxsize=None)
def get_functions(family: str, device_index: int) -> dict[str, Any]:
    """Compile one family with CuPy for one device and return ``{entry point: cupy.RawKernel}``.

    Cached per (family, device). Compile errors raise :class:`KernelCompileError` naming the
    ``.cu`` file; the compiler log inside it cites ``file(line)``.
    """
    import cupy

    source = assemble_source(family)
    with cupy.cuda.Device(device_index):
        module = cupy.RawModule(code=source, options=compile_options())
        try:
            return {name: module.get_function(name) for name in entry_points(family)}
        except cupy.cuda.compiler.CompileException as e:
            raise compile_error(family, str(e)) from None
