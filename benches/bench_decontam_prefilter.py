"""`Decontaminator.check` (mode qwen, HumanEval) with its exact prefilter on and off, in one
process, on the same texts and threads.

    python benches/bench_decontam_prefilter.py --mb 150 --threads 2 --repeat 5

The corpus is `bench_decontam_cli.corpus(mb, seed)`: real .py/.pyi/.md/.rst/.txt files of this
interpreter's site-packages, one file per record; every --plant-every-th file gets a HumanEval
item (prompt + solution) appended, so that both sides have records to remove. Rounds alternate
the two sides (--repeat of each); each checks every text in batches of 2,048. Printed: medians of
wall-clock MB/s (of the texts' UTF-8 bytes) and of process CPU seconds, the speed-up, and the
share of documents and bytes the prefilter lets through to the tokenizer. Checked every round: the
two sides give equal matches (test index, LCS, n-gram hits, windows) for every record.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_decontam_cli import corpus  # noqa: E402

from qwen25.data import Decontaminator, benchmarks  # noqa: E402


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run(d: Decontaminator, texts: list[str], threads: int) -> tuple[list, float, float]:
    c0, t0 = cpu_s(), time.perf_counter()
    out = []
    for i in range(0, len(texts), 2048):
        out.extend(d.check_all(texts[i : i + 2048], num_threads=threads))
    return out, time.perf_counter() - t0, cpu_s() - c0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--plant-every", type=int, default=200)
    ap.add_argument("--test", default="humaneval")
    a = ap.parse_args()

    he = [r["text"] for r in benchmarks.load("humaneval")]
    texts = [r["text"] for r in corpus(a.mb, a.seed)]
    for i in range(0, len(texts), a.plant_every):
        texts[i] = texts[i] + "\n\n" + he[(i // a.plant_every) % len(he)]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    t0 = time.perf_counter()
    on = Decontaminator(a.test)
    build_on = time.perf_counter() - t0
    t0 = time.perf_counter()
    off = Decontaminator(a.test, prefilter=False)
    build_off = time.perf_counter() - t0
    passes = on._d.prefilter_passes(texts, a.threads)
    assert passes is not None, "the prefilter is not used on this test set"
    hit_docs = sum(passes) / len(texts)
    hit_bytes = sum(len(t.encode("utf-8")) for t, p in zip(texts, passes) if p) / nbytes
    print(f"corpus: {len(texts)} files, {nbytes / 1e6:.1f} MB; test set {a.test!r} ({len(on)} items); "
          f"threads {a.threads}; {a.repeat} interleaved rounds")
    print(f"index: {on.index_bytes() / 1e6:.1f} MB with the prefilter, {off.index_bytes() / 1e6:.1f} MB "
          f"without; built in {build_on:.2f} s / {build_off:.2f} s")
    print(f"prefilter lets through {hit_docs:.1%} of the files, {hit_bytes:.1%} of the bytes")

    wall: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    removed = None
    for r in range(a.repeat):
        sides = (("on", on), ("off", off)) if r % 2 == 0 else (("off", off), ("on", on))
        got = {}
        for name, d in sides:
            got[name], w, c = run(d, texts, a.threads)
            wall[name].append(w)
            cpu[name].append(c)
        assert got["on"] == got["off"], "the prefilter changed a match"
        removed = sum(map(bool, got["on"]))
        print(f"  round {r + 1}: on {wall['on'][-1]:.2f} s, off {wall['off'][-1]:.2f} s")
    mw = {k: statistics.median(v) for k, v in wall.items()}
    mc = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"records removed: {removed} (the same on both sides, every round)")
    print(f"{'':14}{'wall s':>8}{'MB/s':>8}{'CPU s':>8}")
    for k in ("off", "on"):
        print(f"prefilter {k:4}{mw[k]:8.2f}{nbytes / 1e6 / mw[k]:8.1f}{mc[k]:8.2f}")
    print(f"speed-up: {mw['off'] / mw['on']:.2f}x wall, {mc['off'] / mc['on']:.2f}x CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
