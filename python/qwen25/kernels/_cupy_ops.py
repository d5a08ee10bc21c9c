"""Launchers: run the CUDA kernels on torch tensors through CuPy.

Tensors cross into CuPy only through DLPack, inside a CuPy stream that wraps torch's current
stream, so the kernels are ordered with torch's own work and no synchronisation is added. bf16
tensors cross as int16 views (CuPy has no bf16 dtype; the kernels read the raw bits).
All tensors are allocated by torch; CuPy's memory pool is never used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._loader import ELEMENTWISE_THREADS, ROW_THREADS, get_functions

_SUFFIX = {torch.float32: "f32", torch.bfloat16: "bf16"}
_MAX_GRID = 65535 * 4  # the kernels loop over rows/elements beyond the grid (grid-stride)


def _block_for(n: int) -> int:
    """Threads per block for a row of n elements: a multiple of 32, 128..ROW_THREADS (the kernels'
    __launch_bounds__)."""
    if n <= 1024:
        return 128
    if n <= 4096:
        return 256
    if n <= 16384:
        return 512
    return ROW_THREADS


def _to_cupy(t: torch.Tensor) -> Any:
    import cupy

    t = t.detach()  # DLPack refuses tensors that require grad; the storage is the same
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return cupy.from_dlpack(t)


def _arg(a: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return _to_cupy(a)
    return a  # already a numpy scalar of the kernel's parameter type


def _launch(family: str, name: str, dtype: torch.dtype, device: torch.device, grid: int, block: int,
            args: tuple[Any, ...]) -> None:
    """Launch ``name`` for ``dtype`` with ``grid`` blocks (at most _MAX_GRID: the kernels loop
    past the grid) of ``block`` threads. Scalars in ``args`` are numpy scalars of the kernel's
    parameter types; tensors are passed as device pointers."""
    if grid <= 0:
        return
    _run(family, f"{name}_{_SUFFIX[dtype]}", device, min(grid, _MAX_GRID), block, args)


def _run(family: str, entry: str, device: torch.device, grid: int, block: int, args: tuple[Any, ...]) -> None:
    """The CuPy launch, on torch's current stream of ``device``."""
    import cupy

    index = device.index if device.index is not None else torch.cuda.current_device()
    fn = get_functions(family, index)[entry]
    with cupy.cuda.Device(index):
        ptr = torch.cuda.current_stream(device).cuda_stream
        stream = cupy.cuda.ExternalStream(ptr, index) if ptr else cupy.cuda.Stream.null
        with stream:
            fn((grid,), (block,), tuple(_arg(a) for a in args))


def _i64(x: int) -> np.int64:
    return np.int64(x)


def _i32(x: int) -> np.int32:
    if not -(2**31) <= x < 2**31:
        raise ValueError(f"size {x} does not fit the kernel's 32-bit parameter")
    return np.int32(x)


# ---- rmsnorm ---------------------------------------------------------------------------------


def _row_packs(n: int, tensors: tuple[torch.Tensor, ...]) -> int:
    """Packs per row of n elements when rows can be read as 16-byte packs, else 0."""
    per = 16 // tensors[0].element_size()
    if n % per or any(t.data_ptr() % 16 for t in tensors):
        return 0
    return n // per


def rmsnorm_fwd(x: torch.Tensor, w: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    rows, n = x.shape
    y = torch.empty_like(x)
    rstd = torch.empty(rows, dtype=torch.float32, device=x.device)
    npk = _row_packs(n, (x, w, y))
    if npk:
        _launch("rmsnorm", "rmsnorm_fwd_vec", x.dtype, x.device, rows, _block_for(npk),
                (x, w, y, rstd, _i64(rows), _i32(npk), _i32(n), np.float32(eps)))
    else:
        _launch("rmsnorm", "rmsnorm_fwd", x.dtype, x.device, rows, _block_for(n),
                (x, w, y, rstd, _i64(rows), _i32(n), np.float32(eps)))
    return y, rstd


def rmsnorm_bwd(dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, rstd: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    rows, n = x.shape
    dx = torch.empty_like(x)
    # the kernels loop over the rows; each block keeps one dw_partial row, so the grid is exactly
    # the number of dw_partial rows (never clamped further by _launch)
    grid = min(rows, 1024, _MAX_GRID)
    if grid == 0:
        return dx, torch.zeros(n, dtype=torch.float32, device=x.device)
    dw_partial = torch.empty(grid, n, dtype=torch.float32, device=x.device)
    npk = _row_packs(n, (dy, x, w, dx))
    if npk:
        _launch("rmsnorm", "rmsnorm_bwd_vec", x.dtype, x.device, grid, _block_for(npk),
                (dy, x, w, rstd, dx, dw_partial, _i64(rows), _i32(npk), _i32(n)))
    else:
        _launch("rmsnorm", "rmsnorm_bwd", x.dtype, x.device, grid, _block_for(n),
                (dy, x, w, rstd, dx, dw_partial, _i64(rows), _i32(n)))
    return dx, dw_partial.sum(0)


# ---- rope ------------------------------------------------------------------------------------


def rope_(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backward: bool) -> None:
    b, h, s, d = x.shape
    bc = cos.shape[0]
    cb = cos.stride(0) if bc == b and b > 1 else 0
    total = b * h * s * (d // 2)
    threads = ELEMENTWISE_THREADS
    _launch("rope", "rope_bwd" if backward else "rope_fwd", x.dtype, x.device,
            (total + threads - 1) // threads, threads,
            (x, cos, sin, _i64(b), _i64(h), _i64(s), _i32(d), _i64(x.stride(0)), _i64(x.stride(1)),
             _i64(x.stride(2)), _i64(cb), _i64(cos.stride(1))))


# ---- swiglu ----------------------------------------------------------------------------------


def _elementwise_grid(n: int) -> int:
    return (n + ELEMENTWISE_THREADS - 1) // ELEMENTWISE_THREADS


def _packs(tensors: tuple[torch.Tensor, ...]) -> int:
    """Number of 16-byte packs when every tensor can be read as packs (element count a multiple
    of the pack, 16-byte aligned), else 0 (use the scalar kernels)."""
    t0 = tensors[0]
    per = 16 // t0.element_size()
    if t0.numel() % per or any(t.data_ptr() % 16 for t in tensors):
        return 0
    return t0.numel() // per


def swiglu_fwd(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(gate)
    n = gate.numel()
    packs = _packs((gate, up, out))
    if packs:
        _launch("swiglu", "swiglu_fwd_vec", gate.dtype, gate.device, _elementwise_grid(packs),
                ELEMENTWISE_THREADS, (gate, up, out, _i64(packs)))
    else:
        _launch("swiglu", "swiglu_fwd", gate.dtype, gate.device, _elementwise_grid(n), ELEMENTWISE_THREADS,
                (gate, up, out, _i64(n)))
    return out


def swiglu_bwd(dout: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dgate = torch.empty_like(gate)
    dup = torch.empty_like(up)
    n = gate.numel()
    packs = _packs((dout, gate, up, dgate, dup))
    if packs:
        _launch("swiglu", "swiglu_bwd_vec", gate.dtype, gate.device, _elementwise_grid(packs),
                ELEMENTWISE_THREADS, (dout, gate, up, dgate, dup, _i64(packs)))
    else:
        _launch("swiglu", "swiglu_bwd", gate.dtype, gate.device, _elementwise_grid(n), ELEMENTWISE_THREADS,
                (dout, gate, up, dgate, dup, _i64(n)))
    return dgate, dup


# ---- moe -------------------------------------------------------------------------------------


def _scale_args(scale: torch.Tensor | None, device: torch.device) -> tuple[torch.Tensor, np.int32]:
    if scale is None:
        return torch.zeros(1, dtype=torch.float32, device=device), np.int32(0)
    return scale.contiguous().float(), np.int32(1)


def moe_gather(src: torch.Tensor, src_row: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    rows = src_row.numel()
    n = src.shape[1]
    dst = torch.empty(rows, n, dtype=src.dtype, device=src.device)
    sc, has = _scale_args(scale, src.device)
    _launch("moe", "moe_gather", src.dtype, src.device, rows, _block_for(n),
            (src, src_row.contiguous(), sc, has, dst, _i64(rows), _i32(n)))
    return dst


def moe_combine(src: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor | None, top_k: int) -> torch.Tensor:
    tokens = pos.numel() // top_k
    n = src.shape[1]
    dst = torch.empty(tokens, n, dtype=src.dtype, device=src.device)
    sc, has = _scale_args(scale, src.device)
    _launch("moe", "moe_combine", src.dtype, src.device, tokens, _block_for(n),
            (src, pos.contiguous(), sc, has, dst, _i64(tokens), _i32(top_k), _i32(n)))
    return dst


def moe_scale_grad(dout: torch.Tensor, src: torch.Tensor, pos: torch.Tensor, top_k: int) -> torch.Tensor:
    tokens = dout.shape[0]
    n = dout.shape[1]
    dscale = torch.empty(tokens * top_k, dtype=torch.float32, device=dout.device)
    _launch("moe", "moe_scale_grad", dout.dtype, dout.device, tokens * top_k, _block_for(n),
            (dout, src, pos.contiguous(), dscale, _i64(tokens), _i32(top_k), _i32(n)))
    return dscale


# ---- cross-entropy ---------------------------------------------------------------------------


def ce_rows_(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, write_grad: bool) -> torch.Tensor:
    rows, v = logits.shape
    loss = torch.empty(rows, dtype=torch.float32, device=logits.device)
    lse = torch.empty(rows, dtype=torch.float32, device=logits.device)
    _launch("cross_entropy", "ce_rows", logits.dtype, logits.device, rows, _block_for(v),
            (logits, labels.contiguous().to(torch.int64), loss, lse, _i64(rows), _i64(v),
             _i64(ignore_index), np.int32(1 if write_grad else 0)))
    return loss
