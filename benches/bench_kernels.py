"""Benchmarks of qwen25.kernels against their eager PyTorch fallbacks.

    python benches/bench_kernels.py            # CPU part, then the GPU part if a GPU + CuPy are present
    python benches/bench_kernels.py --cpu      # only the CPU part
    python benches/bench_kernels.py --gpu      # only the GPU part

GPU part (same process, same inputs, kernel path vs QWEN25_KERNELS=0): median time of forward and
forward+backward for each kernel at Qwen2.5-1.5B-like shapes, the ratio, and for the memory-bound
kernels the achieved HBM bandwidth (bytes that must be read and written / forward time) and its
share of --peak-gbps; then the fused cross-entropy's peak memory against the eager
``F.cross_entropy(logits.float())`` at 32k tokens x 152,064 vocabulary.

CPU part: the fused cross-entropy fallback's peak memory (RSS, measured in a fresh subprocess per
variant) against eager at 1,024 tokens x 152,064 vocabulary, and its time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from typing import Callable

import torch
import torch.nn.functional as F

import qwen25.kernels as K

VOCAB = 152_064


# ---- GPU -------------------------------------------------------------------------------------


def _cuda_ms(fn: Callable[[], object], reps: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def _both(fn: Callable[[], object], reps: int = 20) -> tuple[float, float]:
    """Median ms with the kernels, then with the eager fallback (QWEN25_KERNELS=0)."""
    os.environ.pop("QWEN25_KERNELS", None)
    fast = _cuda_ms(fn, reps)
    os.environ["QWEN25_KERNELS"] = "0"
    try:
        slow = _cuda_ms(fn, reps)
    finally:
        os.environ.pop("QWEN25_KERNELS", None)
    return fast, slow


def _fwd_bwd(fn: Callable[..., object], inputs: list[torch.Tensor], douts: list[torch.Tensor]) -> Callable[[], None]:
    leaves = [x.detach().clone().requires_grad_() for x in inputs]

    def run() -> None:
        for x in leaves:
            x.grad = None
        out = fn(*leaves)
        outs = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward(outs, douts)

    return run


def _row(name: str, fast: float, slow: float, nbytes: int | None, peak_gbps: float) -> None:
    bw = ""
    if nbytes is not None:
        gbps = nbytes / (fast * 1e-3) / 1e9
        bw = f"{gbps:8.0f} GB/s {100 * gbps / peak_gbps:5.1f}%"
    print(f"| {name:<34} | {fast:9.3f} | {slow:9.3f} | {slow / fast:6.2f}x | {bw:>22} |")


def gpu_part(peak_gbps: float) -> None:
    reason = K.unavailable_reason()
    if reason is not None:
        print(f"GPU part skipped: {reason}")
        return
    dev = "cuda"
    bf = torch.bfloat16
    torch.manual_seed(0)
    print(f"\nGPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, peak HBM taken as {peak_gbps:.0f} GB/s")
    print("| kernel (bf16)                      | kernel ms | eager ms  | speedup | kernel fwd bandwidth   |")
    print("|---|---|---|---|---|")
    n, h, inter = 16384, 1536, 8960  # 4 x 4096 tokens of Qwen2.5-1.5B

    x = torch.randn(n, h, device=dev, dtype=bf)
    w = torch.randn(h, device=dev, dtype=bf)
    with torch.no_grad():
        f, s = _both(lambda: K.rms_norm(x, w, 1e-6))
    _row(f"rms_norm fwd [{n}, {h}]", f, s, 2 * x.numel() * 2, peak_gbps)
    f, s = _both(_fwd_bwd(lambda a, b: K.rms_norm(a, b, 1e-6), [x, w], [torch.randn_like(x)]))
    _row("rms_norm fwd+bwd", f, s, None, peak_gbps)

    g, u = torch.randn(n, inter, device=dev, dtype=bf), torch.randn(n, inter, device=dev, dtype=bf)
    with torch.no_grad():
        f, s = _both(lambda: K.swiglu(g, u))
    _row(f"swiglu fwd [{n}, {inter}]", f, s, 3 * g.numel() * 2, peak_gbps)
    f, s = _both(_fwd_bwd(K.swiglu, [g, u], [torch.randn_like(g)]))
    _row("swiglu fwd+bwd", f, s, None, peak_gbps)
    del g, u

    b, t, hq, hk, d = 4, 4096, 12, 2, 128
    q = torch.randn(b, hq, t, d, device=dev, dtype=bf)
    k = torch.randn(b, hk, t, d, device=dev, dtype=bf)
    theta = torch.rand(1, t, d // 2, device=dev) * 6.28
    cos = torch.cat([theta.cos(), theta.cos()], -1).to(bf)  # true rotations: repeated in-place use stays bounded
    sin = torch.cat([theta.sin(), theta.sin()], -1).to(bf)
    with torch.no_grad():
        f, s = _both(lambda: K.apply_rope(q, k, cos, sin))
    _row(f"apply_rope fwd q{list(q.shape)}", f, s, 2 * (q.numel() + k.numel()) * 2 + 2 * cos.numel() * 2, peak_gbps)
    f, s = _both(_fwd_bwd(lambda a, c: K.apply_rope(a * 1, c * 1, cos, sin), [q, k], [torch.randn_like(q), torch.randn_like(k)]))
    _row("apply_rope fwd+bwd (+2 copies)", f, s, None, peak_gbps)
    del q, k

    tokens, top_k, experts, hm = 16384, 8, 64, 2048
    hid = torch.randn(tokens, hm, device=dev, dtype=bf)
    ids = torch.randint(0, experts, (tokens, top_k), device=dev)
    rw = torch.rand(tokens, top_k, device=dev, dtype=bf)
    with torch.no_grad():
        f, s = _both(lambda: K.moe_permute(hid, ids, experts))
        _row(f"moe_permute [{tokens}x{top_k}, {hm}]", f, s, 2 * tokens * top_k * hm * 2, peak_gbps)
        perm, _, order = K.moe_permute(hid, ids, experts)
        f, s = _both(lambda: K.moe_unpermute(perm, order, rw))
        _row("moe_unpermute", f, s, (tokens * top_k * hm + tokens * hm) * 2, peak_gbps)
    f, s = _both(_fwd_bwd(lambda a, r: K.moe_unpermute(K.moe_permute(a, ids, experts)[0], order, r), [hid, rw],
                          [torch.randn_like(hid)]))
    _row("moe permute+unpermute fwd+bwd", f, s, None, peak_gbps)
    del hid, perm

    nt = 8192
    hs = torch.randn(nt, h, device=dev, dtype=bf) * 0.5
    lm = torch.randn(VOCAB, h, device=dev, dtype=bf) * 0.05
    labels = torch.randint(0, VOCAB, (nt,), device=dev)

    def eager_ce(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy((a @ b.t()).float(), labels)

    os.environ.pop("QWEN25_KERNELS", None)
    fk = _cuda_ms(_fwd_bwd(lambda a, b: K.fused_cross_entropy(a, b, labels), [hs, lm], [torch.tensor(1.0, device=dev)]), 10)
    os.environ["QWEN25_KERNELS"] = "0"
    ff = _cuda_ms(_fwd_bwd(lambda a, b: K.fused_cross_entropy(a, b, labels), [hs, lm], [torch.tensor(1.0, device=dev)]), 10)
    os.environ.pop("QWEN25_KERNELS", None)
    fe = _cuda_ms(_fwd_bwd(eager_ce, [hs, lm], [torch.tensor(1.0, device=dev)]), 10)
    _row(f"fused CE fwd+bwd [{nt}, {h}]x{VOCAB} vs materialised", fk, fe, None, peak_gbps)
    _row("fused CE: kernel vs chunked-torch fallback", fk, ff, None, peak_gbps)
    del hs, lm
    torch.cuda.empty_cache()
    ce_memory_gpu(h)


def _peak_gpu_bytes(fn: Callable[[], None]) -> int:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def ce_memory_gpu(h: int, n: int = 32768) -> None:
    dev, bf = "cuda", torch.bfloat16
    hs = (torch.randn(n, h, device=dev, dtype=bf) * 0.5).requires_grad_()
    lm = (torch.randn(VOCAB, h, device=dev, dtype=bf) * 0.05).requires_grad_()
    labels = torch.randint(0, VOCAB, (n,), device=dev)

    def fused() -> None:
        hs.grad = lm.grad = None
        K.fused_cross_entropy(hs, lm, labels).backward()

    def eager() -> None:
        hs.grad = lm.grad = None
        F.cross_entropy((hs @ lm.t()).float(), labels).backward()

    fused()  # compile + warm the allocator
    pf = _peak_gpu_bytes(fused)
    pe = _peak_gpu_bytes(eager)
    print(f"\nfused cross-entropy peak memory above inputs, fwd+bwd, {n} tokens x {VOCAB} vocab, hidden {h}, bf16:")
    print(f"  fused {pf / 2**30:.2f} GiB, eager {pe / 2**30:.2f} GiB, ratio {pf / pe:.3f} (target < 0.25)")


# ---- CPU -------------------------------------------------------------------------------------

_CPU_CHILD = """
import resource, sys, time, torch, torch.nn.functional as F
import qwen25.kernels as K
mode, n, v, h, chunk = sys.argv[1], *map(int, sys.argv[2:6])
torch.manual_seed(0)
hs = (torch.randn(n, h) * 0.5).requires_grad_()
lm = (torch.randn(v, h) * 0.05).requires_grad_()
labels = torch.randint(0, v, (n,))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if mode == "fused":
    loss = K.fused_cross_entropy(hs, lm, labels, chunk_size=chunk)
else:
    loss = F.cross_entropy((hs @ lm.t()).float(), labels)
loss.backward()
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(peak - base) * 1024} {dt} {loss.item()}")
"""


def cpu_part(n: int = 1024, v: int = VOCAB, h: int = 64, chunk: int = 128) -> None:
    print(f"\nCPU: fused cross-entropy fallback vs eager, fwd+bwd, {n} tokens x {v} vocab, hidden {h}, fp32,"
          f" chunk {chunk} (peak RSS growth in a fresh process; median of 3)")
    res = {}
    for mode in ("fused", "eager"):
        runs = []
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", _CPU_CHILD, mode, str(n), str(v), str(h), str(chunk)],
                                 capture_output=True, text=True, check=True)
            mem, dt, loss = out.stdout.split()
            runs.append((int(mem), float(dt), float(loss)))
        res[mode] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[0][2])
    (mf, tf, lf), (me, te, le) = res["fused"], res["eager"]
    print("| path  | peak RSS growth | time (s) | loss |")
    print("|---|---|---|---|")
    print(f"| fused | {mf / 2**20:10.0f} MiB | {tf:8.3f} | {lf:.6f} |")
    print(f"| eager | {me / 2**20:10.0f} MiB | {te:8.3f} | {le:.6f} |")
    print(f"memory ratio fused/eager {mf / me:.3f}, time ratio {tf / te:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="only the CPU part")
    ap.add_argument("--gpu", action="store_true", help="only the GPU part")
    ap.add_argument("--peak-gbps", type=float, default=4800.0, help="HBM peak for the %% column (H200: 4800)")
    args = ap.parse_args()
    both = not (args.cpu or args.gpu)
    if args.cpu or both:
        cpu_part()
    if args.gpu or both:
        gpu_part(args.peak_gbps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
