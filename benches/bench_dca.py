"""Dual Chunk Attention prefill on CPU: tokens/s and peak memory at 1x, 2x and 4x a trained length.

    python benches/bench_dca.py [--trained 2048] [--heads 14] [--kv-heads 2] [--head-dim 64]

One attention call with Qwen2.5-0.5B's head layout (14 query heads, 2 KV heads, head dim 64),
chunk_size = the trained length, local_size = 1/8 of it; each length runs in a fresh process and
reports the peak RSS growth during the call, so that memory per token can be compared across
lengths (linear memory: the per-token figure stays flat). Medians of --reps runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

_CHILD = """
import resource, sys, time, torch
from qwen25.model.dca import dual_chunk_attention
t, h, hk, d, cs, ls, threads = map(int, sys.argv[1:8])
torch.set_num_threads(threads)
torch.manual_seed(0)
q, k, v = torch.randn(1, h, t, d), torch.randn(1, hk, t, d), torch.randn(1, hk, t, d)
ang = torch.outer(torch.arange(cs + 1, dtype=torch.float32), 1e6 ** (-torch.arange(0, d, 2) / d))
cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
out = dual_chunk_attention(q, k, v, chunk_size=cs, local_size=ls, original_max_position_embeddings=cs,
                           positions=torch.arange(t), cos=cos, sin=sin)
dt = time.perf_counter() - t0
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024, dt, float(out.float().abs().mean()))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trained", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    cs, ls = a.trained, a.trained // 8
    print(f"DCA prefill, CPU, {a.threads} threads, heads {a.heads}/{a.kv_heads}, head dim {a.head_dim}, "
          f"chunk_size {cs}, local_size {ls}, fp32; median of {a.reps}")
    print("| tokens | x trained | time (s) | tokens/s | peak RSS growth (MiB) | KiB per token |")
    print("|---|---|---|---|---|---|")
    for mult in (1, 2, 4):
        t = cs * mult
        runs = []
        for _ in range(a.reps):
            out = subprocess.run([sys.executable, "-c", _CHILD, str(t), str(a.heads), str(a.kv_heads), str(a.head_dim),
                                  str(cs), str(ls), str(a.threads)], capture_output=True, text=True, check=True)
            mem_s, dt_s, _ = out.stdout.split()
            runs.append((int(mem_s), float(dt_s)))
        mem = statistics.median(r[0] for r in runs)
        dt = statistics.median(r[1] for r in runs)
        print(f"| {t} | {mult} | {dt:.2f} | {t / dt:,.0f} | {mem / 2**20:.0f} | {mem / 1024 / t:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
