"""Dual Chunk Attention prefill on CPU: tokens/s and peak memory at 1x, 2x and 4x a trained length.

    python benches/bench_dca.py [--trained 2048] [--heads 14] [--kv-heads 2] [--head-dim 64]
    python benches/bench_dca.py --model debug [--piece 2048]

``--model PRESET``: the whole model (random weights, fp32) with ``cfg.with_dca()`` (chunk_size =
the preset's trained length, local_size = 1/32 of it), prompts of 1x, 2x and 4x the trained
length run by ``qwen25.model.prefill`` in pieces of ``--piece`` tokens into a KV cache; peak RSS
growth is measured from a reset high-water mark (/proc/self/clear_refs), so it is the prefill's
own (KV cache included).

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

_MODEL_CHILD = """
import sys, time, torch
from qwen25.model import KVCache, Qwen2ForCausalLM, Qwen25Config, prefill
preset, t, piece, threads = sys.argv[1], *map(int, sys.argv[2:5])
torch.set_num_threads(threads)
cfg = Qwen25Config.from_preset(preset).with_dca()
m = Qwen2ForCausalLM.from_config(cfg, seed=0, dtype=torch.float32).eval()
ids = torch.randint(0, cfg.vocab_size, (1, t), generator=torch.Generator().manual_seed(0))
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
cache = None
open("/proc/self/clear_refs", "w").write("5")  # reset the peak RSS (VmHWM)
base = rss("VmRSS:")
t0 = time.perf_counter()
cache = KVCache(cfg, 1, t, dtype=torch.float32, device="cpu")
logits = prefill(m, ids, cache, chunk_size=piece)
dt = time.perf_counter() - t0
print(rss("VmHWM:") - base, dt, float(logits.abs().mean()))
"""


def model_main(a: argparse.Namespace) -> int:
    from qwen25.model import Qwen25Config

    cfg = Qwen25Config.from_preset(a.model).with_dca()
    dc = cfg.dual_chunk_attention_config
    assert dc is not None
    n = cfg.trained_length
    print(f"DCA prefill through the model, CPU, {a.threads} threads, preset {a.model} ({cfg.describe()}), fp32, "
          f"trained length {n}, chunk_size {dc.chunk_size}, local_size {dc.local_size}, pieces of {a.piece}; "
          f"median of {a.reps}")
    print("| tokens | x trained | time (s) | tokens/s | peak RSS growth (MiB) | KiB per token |")
    print("|---|---|---|---|---|---|")
    for mult in (1, 2, 4):
        t = n * mult
        runs = []
        for _ in range(a.reps):
            out = subprocess.run([sys.executable, "-c", _MODEL_CHILD, a.model, str(t), str(a.piece), str(a.threads)],
                                 capture_output=True, text=True, check=True)
            mem_s, dt_s, _ = out.stdout.split()
            runs.append((int(mem_s), float(dt_s)))
        mem = statistics.median(r[0] for r in runs)
        dt = statistics.median(r[1] for r in runs)
        print(f"| {t} | {mult} | {dt:.2f} | {t / dt:,.0f} | {mem / 2**20:.0f} | {mem / 1024 / t:.1f} |", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trained", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default=None, help="a preset: prefill through the whole model")
    ap.add_argument("--piece", type=int, default=2048, help="prefill piece (tokens) with --model")
    a = ap.parse_args()
    if a.model:
        return model_main(a)
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
