"""Data-pipeline benchmarks, each side by side with its peer in the same process; prints medians
and ratios. Targets (issue 4): MinHash >= 30x datasketch and >= 20,000 docs/s per core on
1,000-shingle documents; exact dedup >= 200 MB/s per core; filters >= 50 MB/s per core; packing
>= 0.8x the tokenizer's own throughput.

    python benches/bench_data.py [--quick] [--only filters] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time


CLOCK = time.process_time  # CPU seconds of this process: single-thread figures are per core even
# on a shared, loaded machine; --wall switches to wall-clock time


def timeit(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return statistics.median(ts)


def corpus_1000_shingles(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    # letters only: datatrove's shingling (the default) turns every number into "0", so "w123"
    # and "w456" would be one word ("qz": no word spaCy splits as a special case, as "whys")
    def word(i: int) -> str:
        s = "qz"
        while True:
            s += "abcdefghijklmnopqrstuvwxyz"[i % 26]
            i //= 26
            if i == 0:
                return s

    vocab = [word(i) for i in range(50_000)]
    return [" ".join(rng.choice(vocab) for _ in range(1004)) for _ in range(n)]


def prose(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    words = ("the of and to in a is that for it as was with be by on not he this are or his from at which "
             "but have an they you were her she there one all we their can has more when will would been "
             "river market garden bread winter children story history science music").split()
    docs = []
    for _ in range(n):
        lines = []
        for _ in range(rng.randint(5, 25)):
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(6, 25))).capitalize() + ".")
        docs.append("\n".join(lines))
    return docs


def lsh_bench(n: int, budget: int) -> tuple[str, str, str, str, str]:
    """Cluster n synthetic signatures (1% planted duplicates) in chunks; peak RSS of the process."""
    import resource
    import tempfile

    import numpy as np

    from qwen25.data import MinHashDeduplicator

    d = MinHashDeduplicator()
    rng = np.random.default_rng(0)
    t0 = CLOCK()
    with tempfile.TemporaryDirectory() as tmp:
        s = d.stream(mem_budget=budget, spill_dir=tmp)
        chunk = 100_000
        for k in range(0, n, chunk):
            m = min(chunk, n - k)
            sig = rng.integers(0, 2**32, size=(m, 112), dtype=np.uint32)
            sig[1::100] = sig[0::100][: len(sig[1::100])]  # planted duplicates
            s.add_signatures(sig)
        ids = s.finish()
        spills = s.n_spills
    dt = CLOCK() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    n_clusters = len(np.unique(ids))
    return (f"LSH clustering {n:,} signatures ({spills} spills)", f"{dt:,.0f} s", f"{n_clusters:,} clusters", f"{rss:,.0f} MiB", "< 4 GB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller inputs")
    ap.add_argument("--lsh", type=int, default=0, metavar="N", help="also cluster N synthetic signatures (spilling)")
    ap.add_argument("--lsh-budget", type=int, default=1 << 30, help="band-record memory budget in bytes")
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of process CPU time")
    ap.add_argument("--only", choices=("minhash", "exact", "filters", "packing"), help="run one section only")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per figure (the median is shown)")
    args = ap.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    q = args.quick
    rep = args.repeat

    def want(section: str) -> bool:
        return args.only is None or args.only == section

    from qwen25 import Tokenizer
    from qwen25.data import ExactDeduplicator, MinHashDeduplicator, QualityFilter, TokenPacker

    rows = []
    # ---- MinHash vs datasketch ----
    if want("minhash"):
        docs = corpus_1000_shingles(300 if q else 2000)
        d1 = MinHashDeduplicator(num_threads=1)
        assert all(len(set(d1.shingles(t))) == 1000 for t in docs[:20])
        t_ours = timeit(lambda: d1.signatures(docs), rep) / len(docs)
        try:
            import datasketch

            sub = docs[: 30 if q else 100]
            sh = [[s.encode() for s in d1.shingles(t)] for t in sub]

            def ds() -> None:
                for s in sh:
                    m = datasketch.MinHash(num_perm=112, seed=1)
                    m.update_batch(s)

            t_ds = timeit(ds, rep) / len(sub)
            rows.append(("MinHash signatures (1 thread) vs datasketch", f"{1 / t_ours:,.0f} docs/s", f"{1 / t_ds:,.0f} docs/s", f"{t_ds / t_ours:.1f}x", ">= 30x"))
        except ImportError:
            print("datasketch not installed: skipping the peer")
        rows.append(("MinHash docs/s per core (1,000 shingles)", f"{1 / t_ours:,.0f}", "", "", ">= 20,000"))
        d0 = MinHashDeduplicator(num_threads=1, datatrove_words=False)
        t_plain = timeit(lambda: d0.signatures(docs), rep) / len(docs)
        rows.append(("  the same, earlier shingling (datatrove_words=False)", f"{1 / t_plain:,.0f}", "", "", ""))
        web = prose(300 if q else 2000)
        t_web = timeit(lambda: d1.signatures(web), rep) / len(web)
        t_web0 = timeit(lambda: d0.signatures(web), rep) / len(web)
        rows.append(("MinHash docs/s per core, prose (datatrove / earlier shingling)", f"{1 / t_web:,.0f} / {1 / t_web0:,.0f}", "", "", ""))

    # ---- exact dedup ----
    texts = prose(2000 if q else 10000)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    if want("exact"):
        t_ex = timeit(lambda: ExactDeduplicator(num_threads=1).add(texts), 3)
        t_exn = timeit(lambda: ExactDeduplicator(lowercase=True, strip_punct=True, collapse_ws=True, num_threads=1).add(texts), 3)
        rows.append(("exact dedup MB/s per core (raw text)", f"{mb / t_ex:,.0f}", "", "", ">= 200"))
        rows.append(("exact dedup MB/s per core (FineWeb normalisation)", f"{mb / t_exn:,.0f}", "", "", ""))

    # ---- filters ----
    if want("filters"):
        from qwen25.data import FilterConfig

        t_f = timeit(lambda: QualityFilter(num_threads=1).apply(texts), rep)
        rows.append(("heuristic filters MB/s per core (all four)", f"{mb / t_f:,.1f}", "", "", ">= 50"))
        off = {"gopher_repetition": None, "gopher_quality": None, "c4": None, "fineweb": None}
        for name in off:
            cfg = FilterConfig(**{**off, name: getattr(FilterConfig(), name)})
            qf = QualityFilter(cfg, num_threads=1)
            t1 = timeit(lambda: qf.apply(texts), rep)
            rows.append((f"  {name} alone MB/s per core", f"{mb / t1:,.1f}", "", "", ""))

    # ---- packing vs tokenizer ----
    if want("packing"):
        tok = Tokenizer.qwen25()
        sub = texts[: 1000 if q else 4000]
        mbs = sum(len(t.encode()) for t in sub) / 1e6
        # the packer stores what encode_ordinary gives, so the peer encodes without specials
        def enc() -> None:
            tok.encode_batch(sub, num_threads=1, flat=True, allowed_special=set())

        def pk() -> None:
            with tempfile.TemporaryDirectory() as d:
                with TokenPacker(d, tokenizer=tok, seq_len=4096, num_threads=1) as p:
                    for k in range(0, len(sub), 500):
                        p.add(sub[k : k + 500])

        enc(), pk()  # warm up both: the first flat call imports numpy (and starts its threads)
        t_tok, t_pk = timeit(enc, max(3, args.repeat)), timeit(pk, max(3, args.repeat))
        rows.append(("packing vs tokenizer encode_batch(flat=True) (1 thread)", f"{mbs / t_pk:,.1f} MB/s", f"{mbs / t_tok:,.1f} MB/s", f"{t_tok / t_pk:.2f}x", ">= 0.8x"))

    if args.lsh:
        rows.append(lsh_bench(args.lsh, args.lsh_budget))

    w = max(len(r[0]) for r in rows)
    print(f"{'what':<{w}} | {'qwen25':>16} | {'peer':>16} | {'ratio':>7} | target")
    for r in rows:
        print(f"{r[0]:<{w}} | {r[1]:>16} | {r[2]:>16} | {r[3]:>7} | {r[4]}")


if __name__ == "__main__":
    main()
