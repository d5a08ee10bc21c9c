"""A torch transliteration of what each CUDA kernel computes (the formulas in the comments of
``kernels/cuda/*.cu``, with the same fp32 math and the same points of rounding to the input
dtype), exposing the ``ops`` contract of ``qwen25.kernels._autograd``.

It lets the CPU tests drive the autograd Functions and the kernel branch of the public functions
without a GPU, and checks that the kernels' formulas (notably the backward formulas) agree with
the eager fallbacks. Whether the CUDA code implements these formulas is checked on the CPU by
``HostRunner`` below (the .cu sources compiled for the host, tests/unit/test_kernels_host.py) and
on a GPU by tests/gpu/.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qwen25.kernels import _loader


def _r(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round an fp32 tensor to dtype and back (round_to<T> in common.cuh)."""
    return x.to(dtype).float()


class ContractOps:
    calls: list[str] = []

    @classmethod
    def _log(cls, name: str) -> None:
        cls.calls.append(name)

    # rmsnorm.cu
    @classmethod
    def rmsnorm_fwd(cls, x, w, eps):
        cls._log("rmsnorm_fwd")
        assert x.is_contiguous() and x.dim() == 2
        xf = x.float()
        r = torch.rsqrt((xf * xf).sum(-1) / x.shape[1] + eps)
        h = _r(xf * r[:, None], x.dtype)
        return (w.float() * h).to(x.dtype), r

    @classmethod
    def rmsnorm_bwd(cls, dy, x, w, rstd):
        cls._log("rmsnorm_bwd")
        xh = x.float() * rstd[:, None]
        d = dy.float()
        g = _r(d * w.float(), x.dtype)
        dot = (g * xh).sum(-1, keepdim=True) / x.shape[1]
        dx = (rstd[:, None] * (g - xh * dot)).to(x.dtype)
        dw = _r(d * _r(xh, x.dtype), x.dtype).sum(0)
        return dx, dw

    # rope.cu (in place)
    @classmethod
    def rope_(cls, x, cos, sin, backward):
        cls._log("rope_bwd" if backward else "rope_fwd")
        assert x.stride(-1) == 1 and cos.is_contiguous() and sin.is_contiguous()
        dt = x.dtype
        half = x.shape[-1] // 2
        c = cos.float()[:, None]  # [Bc, 1, S, D]
        s = sin.float()[:, None]
        a, b = x[..., :half].float(), x[..., half:].float()
        if backward:
            lo = _r(a * c[..., :half], dt) + _r(b * s[..., half:], dt)
            hi = _r(b * c[..., half:], dt) - _r(a * s[..., :half], dt)
        else:
            lo = _r(a * c[..., :half], dt) - _r(b * s[..., :half], dt)
            hi = _r(b * c[..., half:], dt) + _r(a * s[..., half:], dt)
        x[..., :half] = lo.to(dt)
        x[..., half:] = hi.to(dt)

    # swiglu.cu
    @classmethod
    def swiglu_fwd(cls, gate, up):
        cls._log("swiglu_fwd")
        g = gate.float()
        s = _r(g * torch.sigmoid(g), gate.dtype)
        return (s * up.float()).to(gate.dtype)

    @classmethod
    def swiglu_bwd(cls, dout, gate, up):
        cls._log("swiglu_bwd")
        dt = gate.dtype
        d, g = dout.float(), gate.float()
        sg = torch.sigmoid(g)
        s = _r(g * sg, dt)
        ds = _r(d * up.float(), dt)
        return (ds * sg * (1 + g * (1 - sg))).to(dt), (d * s).to(dt)

    # moe.cu
    @classmethod
    def moe_gather(cls, src, src_row, scale):
        cls._log("moe_gather")
        rows = src.index_select(0, src_row)
        if scale is None:
            return rows.clone()
        return (rows.float() * scale.float()[:, None]).to(src.dtype)

    @classmethod
    def moe_combine(cls, src, pos, scale, top_k):
        cls._log("moe_combine")
        tokens = pos.numel() // top_k
        acc = torch.zeros(tokens, src.shape[1], dtype=torch.float32)
        for k in range(top_k):  # fp32 sum in k order, as the kernel
            p = pos.view(tokens, top_k)[:, k]
            v = src.index_select(0, p).float()
            acc += v if scale is None else v * scale.view(tokens, top_k)[:, k, None]
        return acc.to(src.dtype)

    @classmethod
    def moe_scale_grad(cls, dout, src, pos, top_k):
        cls._log("moe_scale_grad")
        tokens = dout.shape[0]
        a = dout.float().repeat_interleave(top_k, dim=0)
        return (a * src.index_select(0, pos).float()).sum(-1)

    # cross_entropy.cu (in place)
    @classmethod
    def ce_rows_(cls, logits, labels, ignore_index, write_grad):
        cls._log("ce_rows")
        lf = logits.float()
        m = lf.max(-1, keepdim=True).values
        lse = (m + (lf - m).exp().sum(-1, keepdim=True).log()).squeeze(-1)
        ignored = labels == ignore_index
        safe = torch.where(ignored, 0, labels)
        loss = torch.where(ignored, 0.0, lse - lf.gather(1, safe[:, None]).squeeze(1))
        if write_grad:
            g = (lf - lse[:, None]).exp()
            onehot = torch.zeros_like(g).scatter_(1, safe[:, None], 1.0)
            g = torch.where(ignored[:, None], 0.0, g - onehot)
            logits.copy_(g.to(logits.dtype))
        return loss


# ---- the real .cu sources, built for the CPU ---------------------------------------------------
# Run the real ``kernels/cuda/*.cu`` sources on the CPU, so that the CPU tests check the CUDA code
# itself rather than a transcription of its formulas.
#
# Each family's source, exactly as the loader assembles it, is compiled with the host C++ compiler
# behind a small shim that supplies what CUDA C++ provides: ``threadIdx``/``blockIdx``/``blockDim``/
# ``gridDim``, ``__syncthreads`` (a barrier across the block's threads), ``__shfl_xor_sync`` (a
# barrier-synchronised exchange within each warp of 32), ``__shared__`` (one copy per block: blocks
# run one after another), ``uint4``/``uint2`` and the bit casts. A launch runs every block with one
# OS thread per CUDA thread, all of a block's threads at once, so the kernels' barriers and warp
# shuffles really synchronise.
#
# ``HostRunner.run`` has the signature of ``qwen25.kernels._cupy_ops._run`` and replaces it in the
# tests: the real launchers (grid and block sizes, packing decisions, strides, argument lists) drive
# the real kernels on CPU tensors. Each call checks the launcher's arguments against the kernel's C++
# parameter types (pointer, int64, int32, float32), which CuPy does not do on the GPU.
#
# What this cannot show: GPU-specific behaviour (memory coalescing, alignment faults, the GPU's
# expf/rsqrtf approximations, FMA contraction); that is for tests/gpu/.

SHIM = r"""
#include <cmath>
#include <cstddef>
#include <cstring>
#include <pthread.h>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct q25_dim3 { unsigned x, y, z; };
static thread_local q25_dim3 threadIdx, blockIdx;
static q25_dim3 blockDim, gridDim;
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };

static pthread_barrier_t q25_block_barrier;
static pthread_barrier_t q25_warp_barrier[32];
static float q25_lanes[1024];

static inline void __syncthreads() { pthread_barrier_wait(&q25_block_barrier); }
static inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
    const unsigned t = threadIdx.x;
    q25_lanes[t] = v;
    pthread_barrier_wait(&q25_warp_barrier[t >> 5]);
    const float r = q25_lanes[t ^ (unsigned)lane_mask];
    pthread_barrier_wait(&q25_warp_barrier[t >> 5]);
    return r;
}
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
"""

LAUNCHER = r"""
template <typename T> constexpr char q25_code() {
    using U = std::remove_cv_t<T>;
    return std::is_pointer<U>::value ? 'p'
         : std::is_same<U, long long>::value ? 'q'
         : std::is_same<U, int>::value ? 'i'
         : std::is_same<U, float>::value ? 'f' : '?';
}
template <typename... A> static const char* q25_signature(void (*)(A...)) {
    static const char sig[] = {q25_code<A>()..., 0};
    return sig;
}
template <typename... A, std::size_t... I>
static void q25_call(void (*fn)(A...), void** argv, std::index_sequence<I...>) {
    fn(*static_cast<std::remove_cv_t<A>*>(argv[I])...);
}
template <typename... A>
static int q25_launch(void (*fn)(A...), unsigned grid, unsigned block, void** argv) {
    if (block == 0 || block > 1024 || grid == 0) return 1;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    pthread_barrier_init(&q25_block_barrier, nullptr, block);
    const unsigned warps = (block + 31) / 32;
    for (unsigned w = 0; w < warps; ++w)
        pthread_barrier_init(&q25_warp_barrier[w], nullptr, w + 1 < warps || block % 32 == 0 ? 32 : block % 32);
    for (unsigned b = 0; b < grid; ++b) {
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([=] {
                blockIdx = {b, 0, 0};
                threadIdx = {t, 0, 0};
                q25_call(fn, argv, std::index_sequence_for<A...>{});
            });
        for (auto& th : threads) th.join();
    }
    for (unsigned w = 0; w < warps; ++w) pthread_barrier_destroy(&q25_warp_barrier[w]);
    pthread_barrier_destroy(&q25_block_barrier);
    return 0;
}
#define Q25_HOST(name)                                                                   \
    extern "C" int host_##name(unsigned g, unsigned b, void** argv) {                     \
        return q25_launch(name, g, b, argv);                                              \
    }                                                                                     \
    extern "C" const char* sig_##name() { return q25_signature(name); }
"""


def host_compiler() -> str | None:
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def host_source(family: str) -> str:
    entries = "\n".join(f"Q25_HOST({e})" for e in _loader.entry_points(family))
    return SHIM + _loader.assemble_source(family) + "\n" + LAUNCHER + entries + "\n"


def build_host_kernels(out_dir: Path) -> dict[str, Path]:
    """Compile every family (in parallel) into ``out_dir``; raise RuntimeError with the compiler's
    message naming the .cu file and line on failure."""
    cxx = host_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++, c++ or clang++) on PATH")
    defines = [o for o in _loader.compile_options() if o.startswith("-D")]
    procs = {}
    for fam in _loader.FAMILIES:
        src = out_dir / f"{fam}_host.cpp"
        src.write_text(host_source(fam))
        lib = out_dir / f"{fam}_host.so"
        cmd = [cxx, "-std=c++17", "-O0", "-fPIC", "-shared", "-pthread", "-w", *defines, str(src), "-o", str(lib)]
        procs[fam] = (lib, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    libs = {}
    for fam, (lib, proc) in procs.items():
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"host build of {fam}.cu failed:\n{out[-4000:]}")
        libs[fam] = lib
    return libs


_CTYPES = {"q": (np.int64, ctypes.c_longlong), "i": (np.int32, ctypes.c_int), "f": (np.float32, ctypes.c_float)}


class HostRunner:
    """Stands in for ``_cupy_ops._run``; records every launch as (entry, grid, block)."""

    def __init__(self, libs: dict[str, Path]) -> None:
        self.libs = {fam: ctypes.CDLL(str(path)) for fam, path in libs.items()}
        self.launches: list[tuple[str, int, int]] = []

    def signature(self, family: str, entry: str) -> str:
        fn = getattr(self.libs[family], f"sig_{entry}")
        fn.restype = ctypes.c_char_p
        sig: bytes = fn()
        return sig.decode()

    def run(self, family: str, entry: str, device: Any, grid: int, block: int, args: tuple[Any, ...]) -> None:
        sig = self.signature(family, entry)
        assert len(args) == len(sig), f"{entry}: {len(args)} arguments for {len(sig)} parameters ({sig})"
        keep: list[Any] = []
        for i, (a, code) in enumerate(zip(args, sig)):
            if isinstance(a, torch.Tensor):
                assert code == "p", f"{entry}: argument {i} is a tensor, the kernel takes {code!r}"
                assert a.device.type == "cpu", f"{entry}: argument {i} is on {a.device}"
                keep.append(ctypes.c_void_p(a.data_ptr()))
            else:
                np_type, c_type = _CTYPES[code]
                assert type(a) is np_type, f"{entry}: argument {i} is {type(a).__name__}, the kernel takes {np_type.__name__}"
                keep.append(c_type(a.item()))
        argv = (ctypes.c_void_p * max(1, len(keep)))(*[ctypes.cast(ctypes.pointer(k), ctypes.c_void_p) for k in keep])
        fn = getattr(self.libs[family], f"host_{entry}")
        fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
        assert 0 < block <= _loader.max_threads(family), f"{entry}: block of {block} threads"
        rc = fn(grid, block, argv)
        assert rc == 0, f"{entry}: bad launch configuration grid={grid} block={block}"
        self.launches.append((entry, grid, block))
