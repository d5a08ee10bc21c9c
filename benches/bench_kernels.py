"""Benchmarks of qwen25.kernels against their eager PyTorch fallbacks and against liger-kernel.

    python benches/bench_kernels.py            # CPU part, then the GPU part if a GPU + CuPy are present
    python benches/bench_kernels.py --cpu      # only the CPU part
    python benches/bench_kernels.py --gpu      # only the GPU part

GPU part, one GPU, everything in one process on the same inputs: for RMSNorm, RoPE, SwiGLU (and
the MoE permutation, which liger has no peer for) at Qwen2.5-1.5B-like shapes, the forward and
forward+backward time of the kernels, of the eager fallback and of liger-kernel (PyPI
``liger-kernel``, Triton; at its defaults, i.e. its best: in-place RMSNorm backward, its own
chunking for the fused linear cross-entropy), as medians over 7 rounds in which the sides run in
turn (interleaved, the order rotated each round), each round the mean of 5 calls after 2 warm-up
calls (Triton and CuPy compile then). Before timing, each side's outputs are asserted equal to the
kernels' (relative to their scale). For the memory-bound kernels the achieved HBM bandwidth (bytes
that must be read and written / forward time) and its share of the GPU's peak (``--peak-gbps``,
else a table by GPU name). Then the fused linear cross-entropy, forward+backward, at 8k tokens x
152,064 vocabulary, and its peak memory against liger and eager ``F.cross_entropy(logits.float())``
at 32k tokens x 152,064. Without liger-kernel its columns say so and the rest runs; without a GPU
(or CuPy) the GPU part prints why and returns.

CPU part: the fused cross-entropy fallback's peak memory (RSS, measured in a fresh subprocess per
run) against eager at 1,024 tokens x 152,064 vocabulary, and its time: medians of 5 interleaved
runs of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from typing import Any, Callable

import torch
import torch.nn.functional as F

import qwen25.kernels as K
from qwen25.kernels import _fallback

VOCAB = 152_064
ROUNDS, REPS, WARMUP = 7, 5, 2
#: HBM peak (GB/s) by GPU name, from the vendors' data sheets
PEAK_GBPS = {"H200": 4800.0, "H100 80GB HBM3": 3350.0, "H100 NVL": 3900.0, "H100 PCIe": 2000.0,
             "A100-SXM4-80GB": 2039.0, "A100-SXM4-40GB": 1555.0, "A100 80GB PCIe": 1935.0, "A100-PCIE-40GB": 1555.0}


# ---- GPU -------------------------------------------------------------------------------------


def _liger() -> tuple[Any, str]:
    """liger-kernel's functional API, or None and why not."""
    try:
        import liger_kernel
        from liger_kernel.transformers import functional as lf
    except Exception as e:  # noqa: BLE001 - ImportError, or Triton failing to initialise
        return None, f"liger-kernel not importable ({type(e).__name__}: {e})"
    return lf, f"liger-kernel {getattr(liger_kernel, '__version__', '?')}"


def _interleaved(fns: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median over ROUNDS of the mean ms per call (REPS calls per round); the sides run in turn."""
    for f in fns.values():
        for _ in range(WARMUP):
            f()
    torch.cuda.synchronize()
    names = list(fns)
    per: dict[str, list[float]] = {k: [] for k in names}
    for r in range(ROUNDS):
        for k in names[r % len(names):] + names[: r % len(names)]:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(REPS):
                fns[k]()
            b.record()
            b.synchronize()
            per[k].append(a.elapsed_time(b) / REPS)
    return {k: statistics.median(v) for k, v in per.items()}


def _fwd_bwd(fn: Callable[..., object], inputs: list[torch.Tensor], douts: list[torch.Tensor]) -> Callable[[], None]:
    """One forward+backward of fn on leaves of its own (and gradients of its own: liger's in-place
    RMSNorm backward overwrites its incoming gradient)."""
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    grads = [d.clone() for d in douts]

    def run() -> None:
        for x in leaves:
            x.grad = None
        out = fn(*leaves)
        outs = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward(outs, grads)

    return run


def _kernels_off(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*a: Any) -> Any:
        os.environ["QWEN25_KERNELS"] = "0"
        try:
            return fn(*a)
        finally:
            os.environ.pop("QWEN25_KERNELS", None)

    return run


def _assert_same(what: str, ref: Any, others: dict[str, Any], rel: float = 2e-2) -> None:
    """Every side's outputs equal the kernels' (bf16: within two bf16 ulps of the tensor's scale)."""
    refs = ref if isinstance(ref, tuple) else (ref,)
    for side, out in others.items():
        outs = out if isinstance(out, tuple) else (out,)
        for i, (a, b) in enumerate(zip(outs, refs)):
            scale = float(b.float().abs().max())
            torch.testing.assert_close(a.float(), b.float(), rtol=rel, atol=rel * scale,
                                       msg=lambda m, side=side, i=i: f"{what}: {side} output {i} differs: {m}")


def _row(name: str, t: dict[str, float], nbytes: int | None, peak_gbps: float) -> None:
    ours, eager = t["kernels"], t["eager"]
    liger = t.get("liger")
    lg = f"{liger:9.3f} | {liger / ours:6.2f}x" if liger is not None else "        - |      -"
    bw = ""
    if nbytes is not None:
        gbps = nbytes / (ours * 1e-3) / 1e9
        bw = f"{gbps:6.0f} GB/s {100 * gbps / peak_gbps:5.1f}%"
    print(f"| {name:<44} | {ours:9.3f} | {eager:9.3f} | {lg} | {eager / ours:6.2f}x | {bw:>20} |")


def _bench(name: str, sides: dict[str, Callable[[], object]], nbytes: int | None, peak_gbps: float) -> None:
    _row(name, _interleaved(sides), nbytes, peak_gbps)


def gpu_part(peak_gbps: float | None) -> None:
    reason = K.unavailable_reason()
    if reason is not None:
        print(f"GPU part skipped: {reason}")
        return
    lf, liger_note = _liger()
    dev, bf = "cuda", torch.bfloat16
    name = torch.cuda.get_device_name()
    peak = peak_gbps or next((v for k, v in PEAK_GBPS.items() if k in name), 0.0)
    if not peak:
        print(f"no HBM peak known for {name!r}: pass --peak-gbps; bandwidth shares use 1 TB/s")
        peak = 1000.0
    torch.manual_seed(0)
    print(f"\nGPU: {name}, torch {torch.__version__}, {liger_note}; peak HBM taken as {peak:.0f} GB/s; "
          f"median of {ROUNDS} interleaved rounds x {REPS} calls")
    print("| kernel (bf16)                                | kernel ms | eager ms  | liger ms  | vs liger | vs eager "
          "| kernel fwd bandwidth |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    n, h, inter = 16384, 1536, 8960  # 4 x 4096 tokens of Qwen2.5-1.5B

    # RMSNorm (Qwen2's: normalise in fp32, cast, then scale: liger's "llama" casting mode)
    x = torch.randn(n, h, device=dev, dtype=bf)
    w = torch.randn(h, device=dev, dtype=bf)
    dy = torch.randn_like(x)
    ours_f = lambda a, b: K.rms_norm(a, b, 1e-6)  # noqa: E731
    eager_f = lambda a, b: _fallback.rms_norm(a, b, 1e-6)  # noqa: E731
    liger_f = (lambda a, b: lf.liger_rms_norm(a, b, 1e-6, casting_mode="llama")) if lf else None  # noqa: E731
    with torch.no_grad():
        _assert_same("rms_norm", ours_f(x, w), {"eager": eager_f(x, w), **({"liger": liger_f(x, w)} if lf else {})})
        sides = {"kernels": lambda: ours_f(x, w), "eager": lambda: eager_f(x, w)}
        if lf:
            sides["liger"] = lambda: liger_f(x, w)
        _bench(f"rms_norm fwd [{n}, {h}]", sides, 2 * x.numel() * 2, peak)
    sides = {"kernels": _fwd_bwd(ours_f, [x, w], [dy]), "eager": _fwd_bwd(eager_f, [x, w], [dy])}
    if lf:
        sides["liger"] = _fwd_bwd(liger_f, [x, w], [dy])
    _bench("rms_norm fwd+bwd", sides, None, peak)
    del x, dy

    # SwiGLU
    g, u = torch.randn(n, inter, device=dev, dtype=bf), torch.randn(n, inter, device=dev, dtype=bf)
    dg = torch.randn_like(g)
    with torch.no_grad():
        _assert_same("swiglu", K.swiglu(g, u), {"eager": _fallback.swiglu(g, u),
                                               **({"liger": lf.liger_swiglu(g, u)} if lf else {})})
        sides = {"kernels": lambda: K.swiglu(g, u), "eager": lambda: _fallback.swiglu(g, u)}
        if lf:
            sides["liger"] = lambda: lf.liger_swiglu(g, u)
        _bench(f"swiglu fwd [{n}, {inter}]", sides, 3 * g.numel() * 2, peak)
    sides = {"kernels": _fwd_bwd(K.swiglu, [g, u], [dg]), "eager": _fwd_bwd(_fallback.swiglu, [g, u], [dg])}
    if lf:
        sides["liger"] = _fwd_bwd(lf.liger_swiglu, [g, u], [dg])
    _bench("swiglu fwd+bwd", sides, None, peak)
    del g, u, dg

    # RoPE on q/k in the model's layout: [B, T, H, D] projections seen as [B, H, T, D]
    b, t, hq, hk, d = 4, 4096, 12, 2, 128
    qp = torch.randn(b, t, hq, d, device=dev, dtype=bf)
    kp = torch.randn(b, t, hk, d, device=dev, dtype=bf)
    theta = torch.rand(1, t, d // 2, device=dev) * 6.28
    cos = torch.cat([theta.cos(), theta.cos()], -1).to(bf)  # true rotations: repeated in-place use stays bounded
    sin = torch.cat([theta.sin(), theta.sin()], -1).to(bf)

    def views() -> tuple[torch.Tensor, torch.Tensor]:
        return qp.clone().transpose(1, 2), kp.clone().transpose(1, 2)

    with torch.no_grad():
        ref = K.apply_rope(*views(), cos, sin)
        _assert_same("apply_rope", ref, {"eager": _fallback.apply_rope(*views(), cos, sin),
                                        **({"liger": lf.liger_rope(*views(), cos, sin)} if lf else {})})
        q, k = views()
        sides = {"kernels": lambda: K.apply_rope(q, k, cos, sin), "eager": lambda: _fallback.apply_rope(q, k, cos, sin)}
        if lf:
            sides["liger"] = lambda: lf.liger_rope(q, k, cos, sin)
        _bench(f"apply_rope fwd q[{b}, {hq}, {t}, {d}] (in place)", sides,
               2 * (q.numel() + k.numel()) * 2 + 2 * cos.numel() * 2, peak)
    dq, dk = torch.randn(b, hq, t, d, device=dev, dtype=bf), torch.randn(b, hk, t, d, device=dev, dtype=bf)
    q, k = views()
    sides = {
        "kernels": _fwd_bwd(lambda a, c: K.apply_rope(a * 1, c * 1, cos, sin), [q, k], [dq, dk]),
        "eager": _fwd_bwd(lambda a, c: _fallback.apply_rope(a * 1, c * 1, cos, sin), [q, k], [dq, dk]),
    }
    if lf:
        sides["liger"] = _fwd_bwd(lambda a, c: lf.liger_rope(a * 1, c * 1, cos, sin), [q, k], [dq, dk])
    _bench("apply_rope fwd+bwd (+2 copies, all sides)", sides, None, peak)
    del qp, kp, q, k, dq, dk

    # MoE permutation (Qwen2-57B-A14B-like routing; no liger peer)
    tokens, top_k, experts, hm = 16384, 8, 64, 2048
    hid = torch.randn(tokens, hm, device=dev, dtype=bf)
    ids = torch.randint(0, experts, (tokens, top_k), device=dev)
    rw = torch.rand(tokens, top_k, device=dev, dtype=bf)
    with torch.no_grad():
        perm, _, order = K.moe_permute(hid, ids, experts)
        _assert_same("moe_permute", perm, {"eager": _kernels_off(K.moe_permute)(hid, ids, experts)[0]})
        _bench(f"moe_permute [{tokens}x{top_k}, {hm}]", {"kernels": lambda: K.moe_permute(hid, ids, experts),
                                                         "eager": lambda: _kernels_off(K.moe_permute)(hid, ids, experts)},
               2 * tokens * top_k * hm * 2, peak)
        _bench("moe_unpermute", {"kernels": lambda: K.moe_unpermute(perm, order, rw),
                                 "eager": lambda: _kernels_off(K.moe_unpermute)(perm, order, rw)},
               (tokens * top_k * hm + tokens * hm) * 2, peak)

    def moe(a: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return K.moe_unpermute(K.moe_permute(a, ids, experts)[0], order, r)

    _bench("moe permute+unpermute fwd+bwd", {"kernels": _fwd_bwd(moe, [hid, rw], [torch.randn_like(hid)]),
                                             "eager": _fwd_bwd(_kernels_off(moe), [hid, rw], [torch.randn_like(hid)])},
           None, peak)
    del hid, perm

    # fused linear cross-entropy, fwd+bwd
    nt = 8192
    hs = torch.randn(nt, h, device=dev, dtype=bf) * 0.5
    lm = torch.randn(VOCAB, h, device=dev, dtype=bf) * 0.05
    labels = torch.randint(0, VOCAB, (nt,), device=dev)
    one = torch.tensor(1.0, device=dev)

    def eager_ce(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy((a @ c.t()).float(), labels)

    ours_ce = lambda a, c: K.fused_cross_entropy(a, c, labels)  # noqa: E731
    liger_ce = (lambda a, c: lf.liger_fused_linear_cross_entropy(a, c, labels)) if lf else None  # noqa: E731
    with torch.no_grad():
        _assert_same("fused CE loss", ours_ce(hs, lm), {"eager": eager_ce(hs, lm),
                                                       **({"liger": liger_ce(hs, lm)} if lf else {})}, rel=1e-3)
    sides = {"kernels": _fwd_bwd(ours_ce, [hs, lm], [one]), "eager": _fwd_bwd(eager_ce, [hs, lm], [one])}
    if lf:
        sides["liger"] = _fwd_bwd(liger_ce, [hs, lm], [one])
    _bench(f"fused CE fwd+bwd [{nt}, {h}]x{VOCAB}", sides, None, peak)
    _bench("fused CE: kernels vs chunked-torch fallback", {"kernels": sides["kernels"],
                                                           "eager": _fwd_bwd(_kernels_off(ours_ce), [hs, lm], [one])},
           None, peak)
    del hs, lm, sides
    torch.cuda.empty_cache()
    ce_memory_gpu(h, lf)


def _peak_gpu_bytes(fn: Callable[[], None]) -> int:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def ce_memory_gpu(h: int, lf: Any, n: int = 32768) -> None:
    dev, bf = "cuda", torch.bfloat16
    hs = (torch.randn(n, h, device=dev, dtype=bf) * 0.5).requires_grad_()
    lm = (torch.randn(VOCAB, h, device=dev, dtype=bf) * 0.05).requires_grad_()
    labels = torch.randint(0, VOCAB, (n,), device=dev)
    losses: dict[str, float] = {}

    def run(side: str, fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def go() -> None:
            hs.grad = lm.grad = None
            loss = fn()
            loss.backward()
            losses[side] = float(loss.detach())

        return go

    sides = {"kernels": run("kernels", lambda: K.fused_cross_entropy(hs, lm, labels))}
    if lf:
        sides["liger"] = run("liger", lambda: lf.liger_fused_linear_cross_entropy(hs, lm, labels))
    sides["eager"] = run("eager", lambda: F.cross_entropy((hs @ lm.t()).float(), labels))
    for f in sides.values():
        f()  # compile + warm the allocator
    peaks = {k: _peak_gpu_bytes(f) for k, f in sides.items()}
    for k in losses:
        assert abs(losses[k] - losses["kernels"]) <= 1e-3 * abs(losses["kernels"]), losses
    print(f"\nfused linear cross-entropy peak memory above inputs, fwd+bwd, {n} tokens x {VOCAB} vocab, hidden {h}, "
          f"bf16 (losses {', '.join(f'{k} {v:.5f}' for k, v in losses.items())}):")
    line = ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in peaks.items())
    print(f"  {line}; kernels/eager {peaks['kernels'] / peaks['eager']:.3f} (target < 0.25)"
          + (f", kernels/liger {peaks['kernels'] / peaks['liger']:.3f} (target <= 1)" if "liger" in peaks else
             ", liger: not installed"))


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


def cpu_part(n: int = 1024, v: int = VOCAB, h: int = 64, chunk: int = 128, rounds: int = 5) -> None:
    print(f"\nCPU: fused cross-entropy fallback vs eager, fwd+bwd, {n} tokens x {v} vocab, hidden {h}, fp32,"
          f" chunk {chunk}, torch threads {torch.get_num_threads()} in each (peak RSS growth in a fresh process;"
          f" median of {rounds} interleaved runs)")
    runs: dict[str, list[tuple[int, float, float]]] = {"fused": [], "eager": []}
    for r in range(rounds):
        for mode in (("fused", "eager") if r % 2 == 0 else ("eager", "fused")):
            out = subprocess.run([sys.executable, "-c", _CPU_CHILD, mode, str(n), str(v), str(h), str(chunk)],
                                 capture_output=True, text=True, check=True)
            mem, dt, loss = out.stdout.split()
            runs[mode].append((int(mem), float(dt), float(loss)))
    res = {m: (statistics.median(x[0] for x in rs), statistics.median(x[1] for x in rs), rs[0][2]) for m, rs in runs.items()}
    (mf, tf, lf_), (me, te, le) = res["fused"], res["eager"]
    assert abs(lf_ - le) <= 1e-4 * abs(le), (lf_, le)  # the same loss
    print("| path  | peak RSS growth | time (s) | loss |")
    print("|---|---|---|---|")
    print(f"| fused | {mf / 2**20:10.0f} MiB | {tf:8.3f} | {lf_:.6f} |")
    print(f"| eager | {me / 2**20:10.0f} MiB | {te:8.3f} | {le:.6f} |")
    print(f"memory ratio fused/eager {mf / me:.3f}, time ratio {tf / te:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="only the CPU part")
    ap.add_argument("--gpu", action="store_true", help="only the GPU part")
    ap.add_argument("--peak-gbps", type=float, default=None,
                    help="HBM peak (GB/s) for the %% column; default: by GPU name (H100 SXM 3350, H200 4800)")
    args = ap.parse_args()
    both = not (args.cpu or args.gpu)
    if args.cpu or both:
        cpu_part()
    if args.gpu or both:
        gpu_part(args.peak_gbps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
