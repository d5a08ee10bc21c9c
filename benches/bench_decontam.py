"""Decontamination benchmarks, peers run side by side in this process; prints ratio tables.

    python benches/bench_decontam.py [--test-items 50000] [--corpus-mb 8] [--threads N]

1. qwen mode on text vs the tokenizer's own encode_batch throughput (same texts, same threads),
   against a synthetic test index of --test-items items (target >= 0.7x).
2. lcs mode on token ids vs an all-pairs Python loop over RapidFuzz's C++ bit-parallel
   ``LCSseq.similarity`` (target >= 20x; decisions compared on the records both ran).
3. ngram mode MB/s vs lm-evaluation-harness' own Janitor (``pip install --no-deps lm-eval``;
   its janitor.py needs nothing else) and two labelled pure-Python reimplementations.
4. Memory of the qwen-mode index for the test items (index_bytes and RSS growth).
Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import sys
import time

from qwen25 import Tokenizer
from qwen25.data import Decontaminator


CLOCK = {"fn": time.perf_counter}


def clock() -> float:
    """Wall time by default; with --clock cpu, CPU seconds of the process (all threads): under
    a loaded machine that is the per-core cost."""
    return CLOCK["fn"]()


def rss() -> int:
    """Resident set size in bytes (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def median_time(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    return statistics.median(ts)


def make_vocab(rnd: random.Random, n: int) -> list[str]:
    """n English-like words: alphabetic tokens of the Qwen2.5 vocabulary ('Ġword'), shuffled."""
    tok = Tokenizer.qwen25()
    words = sorted({t[1:] for t in tok._tok.get_vocab() if t.startswith("Ġ") and t[1:].isalpha() and t[1:].isascii()
                    and len(t) > 3})
    rnd.shuffle(words)
    return words[:n]


def make_text(rnd: random.Random, vocab: list[str], cum: list[float], nwords: int) -> str:
    words = rnd.choices(vocab, cum_weights=cum, k=nwords)
    out = []
    for i, w in enumerate(words):
        out.append(w)
        if i % 11 == 10:
            out.append(rnd.choice([",", ".", ";", " (x)", ":"]))
    return " ".join(out)


class JanitorReimpl:
    """Pure-Python re-implementation of lm_eval.decontamination.janitor.Janitor's matching
    (normalize_string = ASCII lowercase + delete string.punctuation via str.translate; word
    13-grams by str.split; set membership). Not lm_eval's code: a faithful stand-in."""

    def __init__(self, n: int = 13) -> None:
        self.n = n
        self.table = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)
        self.dirt: set[str] = set()

    def norm(self, s: str) -> str:
        return s.translate(self.table)

    def register(self, s: str) -> None:
        w = self.norm(s).split()
        self.dirt.update(" ".join(w[i : i + self.n]) for i in range(len(w) - self.n + 1))

    def dirty(self, s: str) -> bool:
        w = self.norm(s).split()
        return any(" ".join(w[i : i + self.n]) in self.dirt for i in range(len(w) - self.n + 1))


class JanitorCleanPythonReimpl(JanitorReimpl):
    """The algorithm of Janitor.clean_python / word_ngrams_indices (words from re.finditer(r"\\S+"),
    a sliding window of 13 (word, span) pairs, each n-gram joined with spaces, normalised with
    str.translate and looked up in the set), re-implemented: the per-n-gram work lm_eval does."""

    def dirty(self, s: str) -> bool:
        import re
        from collections import deque

        win: deque = deque(maxlen=self.n)
        for m in re.finditer(r"\S+", s):
            win.append((m.group(0), m.span()))
            if len(win) == self.n:
                words, spans = zip(*win)
                if self.norm(" ".join(words)) in self.dirt:
                    return True
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--test-items", type=int, default=50_000)
    ap.add_argument("--corpus-mb", type=float, default=8.0)
    ap.add_argument("--rf-train", type=int, default=20, help="training records for the RapidFuzz all-pairs loop")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=["memory", "qwen", "lcs", "ngram", "stream"], action="append", default=None)
    ap.add_argument("--stream-mb", type=float, default=0, help="stream section: corpus size for the RSS check (0: skip)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args()
    if args.clock == "cpu":
        CLOCK["fn"] = time.process_time
    rnd = random.Random(0)
    vocab = make_vocab(rnd, 20_000)
    cum, acc = [], 0.0
    for r in range(1, len(vocab) + 1):
        acc += 1.0 / r
        cum.append(acc)
    tok = Tokenizer.qwen25()
    threads = args.threads
    print(f"threads: {threads or os.cpu_count()} (QWEN25_NUM_THREADS / --threads), clock: {args.clock}, "
          f"python {sys.version.split()[0]}")

    # --- test set and corpus -------------------------------------------------------------------
    test = [make_text(rnd, vocab, cum, rnd.randrange(40, 160)) for _ in range(args.test_items)]
    corpus, size = [], 0
    while size < args.corpus_mb * 1e6:
        if rnd.random() < 0.01:  # 1% contaminated: a test item inside a longer document
            t = make_text(rnd, vocab, cum, 100) + " " + test[rnd.randrange(len(test))] + " " + make_text(rnd, vocab, cum, 50)
        else:
            t = make_text(rnd, vocab, cum, rnd.randrange(50, 600))
        corpus.append(t)
        size += len(t.encode())
    mb = size / 1e6
    print(f"test items: {len(test)} ({sum(map(len, test)) / 1e6:.1f} MB); corpus: {len(corpus)} records, {mb:.1f} MB")

    want = lambda k: args.only is None or k in args.only  # noqa: E731

    # --- 4. memory ---------------------------------------------------------------------------------
    if want("memory") or want("qwen"):
        qwen_part(args, tok, test, corpus, mb, threads)
    if want("lcs"):
        lcs_part(args, tok, rnd, vocab, cum, test, threads)
    if want("ngram"):
        ngram_part(args, test, corpus, mb, threads)
    if args.stream_mb and want("stream"):
        stream_part(args, rnd, vocab, cum, test)
    return 0


def stream_part(args, rnd, vocab, cum, test) -> None:  # type: ignore[no-untyped-def]
    """`qwen25 decontaminate` over --stream-mb of gzipped JSONL shards; RSS sampled every 0.2 s."""
    import gzip
    import json
    import tempfile
    import threading

    from qwen25.commands.decontaminate import run_job

    with tempfile.TemporaryDirectory() as tmp:
        shard_mb, size, k = 32.0, 0.0, 0
        while size < args.stream_mb * 1e6:
            with gzip.open(os.path.join(tmp, f"part-{k:04d}.jsonl.gz"), "wt", compresslevel=1) as f:
                n = 0.0
                while n < shard_mb * 1e6 and size + n < args.stream_mb * 1e6:
                    line = json.dumps({"text": make_text(rnd, vocab, cum, rnd.randrange(50, 600))}) + "\n"
                    f.write(line)
                    n += len(line)
            size += n
            k += 1
        test_path = os.path.join(tmp, "test.jsonl")
        with open(test_path, "w") as f:
            for t in test:
                f.write(json.dumps({"text": t}) + "\n")
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(rss())
                time.sleep(0.2)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        rep = run_job(train=[os.path.join(tmp, "part-*.jsonl.gz")], tests=[test_path], out=os.path.join(tmp, "out"),
                      progress=False, num_threads=args.threads)
        dt = time.perf_counter() - t0
        stop.set()
        th.join()
        q = len(samples) // 4
        print(f"\n[stream] {size / 1e6:.0f} MB in {k} shards, {rep['counts']['in']} records in {dt:.0f} s "
              f"({size / 1e6 / dt:.1f} MB/s wall incl. gzip + JSON); RSS MiB: after index+first quarter max "
              f"{max(samples[:max(q, 1)]) / 2**20:.0f}, last quarter max {max(samples[-max(q, 1):]) / 2**20:.0f}, "
              f"overall max {max(samples) / 2**20:.0f}")


def qwen_part(args, tok, test, corpus, mb, threads) -> None:  # type: ignore[no-untyped-def]
    rss0 = rss()
    t0 = clock()
    dq = Decontaminator(test, mode="qwen", tokenizer=tok)
    build = clock() - t0
    rss1 = rss()
    print(f"\n[memory] qwen index over {len(test)} items: index_bytes {dq.index_bytes() / 2**20:.0f} MiB, "
          f"RSS +{(rss1 - rss0) / 2**20:.0f} MiB, built in {build:.1f} s (target < 1 GB)")

    # --- 1. qwen mode vs encode -------------------------------------------------------------------
    # interleaved runs: the ratio of each pair, then medians (the machine is noisy)
    t_encs, t_qs = [], []
    res = None
    for _ in range(args.repeat):
        t0 = clock()
        tok.encode_batch(corpus, num_threads=threads)
        t_encs.append(clock() - t0)
        t0 = clock()
        res = dq.check(corpus, num_threads=threads)
        t_qs.append(clock() - t0)
    t_enc, t_q = statistics.median(t_encs), statistics.median(t_qs)
    ratio = statistics.median(e / q for e, q in zip(t_encs, t_qs))
    removed = sum(m is not None for m in res)  # type: ignore[union-attr]
    print("\n[qwen mode on text vs tokenizer encode_batch]")
    print(f"  encode_batch : {mb / t_enc:7.2f} MB/s")
    print(f"  qwen check   : {mb / t_q:7.2f} MB/s  ({removed} removed)")
    print(f"  ratio        : {ratio:.2f}x of encode throughput, median of {args.repeat} interleaved pairs (target >= 0.7x)")
    del dq


def lcs_part(args, tok, rnd, vocab, cum, test, threads) -> None:  # type: ignore[no-untyped-def]
    # --- 2. lcs mode vs RapidFuzz all-pairs ----------------------------------------------------------
    try:
        from rapidfuzz.distance import LCSseq
    except ImportError:
        LCSseq = None
    from qwen25.data.decontam import normalize

    test_ids = tok.encode_batch([normalize(t) for t in test], num_threads=threads)
    # SFT-sized training records (the use case of lcs mode), 2% of them edited test items
    short = []
    for _ in range(2000):
        if rnd.random() < 0.02:
            w = test[rnd.randrange(len(test))].split()
            short.append(" ".join(x for x in w if rnd.random() > 0.2))
        else:
            short.append(make_text(rnd, vocab, cum, rnd.randrange(30, 150)))
    train_ids = tok.encode_batch([normalize(t) for t in short], num_threads=threads)
    dl = Decontaminator(test_ids, mode="lcs")
    t_l = median_time(lambda: dl.check(train_ids, num_threads=threads), args.repeat)
    t_l1 = median_time(lambda: dl.check(train_ids, num_threads=1), args.repeat)
    pairs = len(train_ids) * len(test_ids)
    print(f"\n[lcs mode on ids: {len(train_ids)} train x {len(test_ids)} test = {pairs / 1e6:.0f}M pairs]")
    print(f"  qwen25 lcs   : {pairs / t_l / 1e6:8.1f} M pairs/s ({threads or os.cpu_count()} threads), "
          f"{pairs / t_l1 / 1e6:8.1f} M pairs/s (1 thread)")
    if LCSseq is not None:
        sub = train_ids[: args.rf_train] + [x for x in train_ids if dl.check([x])[0] is not None][:2]
        lo = lambda n, m: max(13, -(-(600_000 * min(n, m)) // 1_000_000))  # noqa: E731
        t0 = clock()
        rf_dec = []
        for t in sub:
            hit = None
            for j, e in enumerate(test_ids):
                s = LCSseq.similarity(t, e)
                if s >= 13 and s * 10**6 >= 600_000 * min(len(t), len(e)):
                    hit = j
                    break
            rf_dec.append(hit)
        t_rf = clock() - t0
        done = sum(len(test_ids) if h is None else h + 1 for h in rf_dec)
        ours = [m.test_index if m else None for m in dl.check(sub, num_threads=threads)]
        # the peer's best case: ids pre-encoded as str (one code point per id, surrogates skipped)
        enc = lambda s: "".join(chr(x if x < 0xD800 else x + 0x800) for x in s)  # noqa: E731
        test_s = [enc(e) for e in test_ids]
        t0 = clock()
        rf_dec_s = []
        for t in sub:
            ts, hit = enc(t), None
            for j, e in enumerate(test_s):
                s = LCSseq.similarity(ts, e)
                if s >= 13 and s * 10**6 >= 600_000 * min(len(ts), len(e)):
                    hit = j
                    break
            rf_dec_s.append(hit)
        t_rf_s = clock() - t0
        print(f"  rapidfuzz    : {done / t_rf / 1e6:8.2f} M pairs/s (Python loop over LCSseq.similarity, "
              f"{len(sub)} records, stops at the first witness)")
        print(f"  speed-up     : {(done / t_rf) and (pairs / t_l) / (done / t_rf):.0f}x "
              f"({(pairs / t_l1) / (done / t_rf):.0f}x single-thread) (target >= 20x); same decisions: {ours == rf_dec}")
        print(f"  rapidfuzz str: {done / t_rf_s / 1e6:8.2f} M pairs/s (ids pre-encoded as str, the peer's best case)")
        print(f"  speed-up     : {(pairs / t_l) / (done / t_rf_s):.0f}x "
              f"({(pairs / t_l1) / (done / t_rf_s):.0f}x single-thread); same decisions: {ours == rf_dec_s}")
        del lo
    else:
        print("  rapidfuzz not installed: pip install rapidfuzz")
    del dl


def ngram_part(args, test, corpus, mb, threads) -> None:  # type: ignore[no-untyped-def]
    # --- 3. ngram mode vs Janitor re-implementation ----------------------------------------------------
    t0 = clock()
    dn = Decontaminator(test, mode="ngram")
    t_build_n = clock() - t0
    t_n = median_time(lambda: dn.check(corpus, num_threads=threads), args.repeat)
    t_n1 = median_time(lambda: dn.check(corpus, num_threads=1), 1)
    jan = JanitorReimpl()
    t0 = clock()
    for t in test:
        jan.register(t)
    t_build_j = clock() - t0
    sub = corpus[: max(1, len(corpus) // 8)]
    sub_mb = sum(len(t.encode()) for t in sub) / 1e6
    t0 = clock()
    jd = [jan.dirty(t) for t in sub]
    t_j = clock() - t0
    ours = [m is not None for m in dn.check(sub)]
    jan2 = JanitorCleanPythonReimpl()
    jan2.dirt = jan.dirt
    sub2 = sub[: max(1, len(sub) // 4)]
    sub2_mb = sum(len(t.encode()) for t in sub2) / 1e6
    t0 = clock()
    jd2 = [jan2.dirty(t) for t in sub2]
    t_j2 = clock() - t0
    print("\n[ngram mode (word 13-grams)]")
    print(f"  qwen25 ngram : {mb / t_n:7.1f} MB/s ({threads or os.cpu_count()} threads), {mb / t_n1:7.1f} MB/s (1 thread);"
          f" index built in {t_build_n:.1f} s")
    print(f"  Janitor (pure-Python REIMPLEMENTATION, not lm_eval): {sub_mb / t_j:7.2f} MB/s; set built in {t_build_j:.1f} s")
    print(f"  speed-up     : {(mb / t_n1) / (sub_mb / t_j):.0f}x single-thread (target >= 30x, >= 50 MB/s/core); "
          f"same decisions: {ours == jd}")
    print(f"  Janitor clean_python algorithm (per-n-gram join + translate, REIMPLEMENTATION): {sub2_mb / t_j2:7.2f} MB/s")
    print(f"  speed-up     : {(mb / t_n1) / (sub2_mb / t_j2):.0f}x single-thread; same decisions: {ours[:len(sub2)] == jd2}")
    real_janitor(test, sub2, ours[: len(sub2)], mb / t_n1)


def real_janitor(test, sub, ours, ours_mbps_1t) -> None:  # type: ignore[no-untyped-def]
    """lm-evaluation-harness' own Janitor (``pip install --no-deps lm-eval``: janitor.py needs
    nothing else; without its optional C++ ``janitor_util`` it runs ``clean_python``)."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from lm_eval.decontamination.janitor import Janitor
    except ImportError:
        print("  lm_eval not installed (pip install --no-deps lm-eval): real Janitor not run")
        return
    jan = Janitor(ngram_n=13)
    t0 = clock()
    for t in test:
        jan.register_contaminant_python(t)
    t_build = clock() - t0
    sub_mb = sum(len(t.encode()) for t in sub) / 1e6
    t0 = clock()
    dirty = [jan.clean_python(t) != [t] for t in sub]
    t_j = clock() - t0
    same = sum(a == b for a, b in zip(dirty, ours))
    print(f"  lm_eval Janitor.clean_python (the real one): {sub_mb / t_j:7.2f} MB/s; set built in {t_build:.1f} s")
    print(f"  speed-up     : {ours_mbps_1t / (sub_mb / t_j):.0f}x single-thread (target >= 30x); "
          f"decisions agree on {same}/{len(sub)} records (Janitor also cuts windows and drops short slices)")


if __name__ == "__main__":
    sys.exit(main())
