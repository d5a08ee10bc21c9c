"""Decontamination benchmarks, peers run side by side in this process; prints ratio tables.

    python benches/bench_decontam.py [--test-items 50000] [--corpus-mb 8] [--threads N] [--only lcs]

1. qwen mode on text vs the tokenizer's own encode_batch throughput (same texts, same threads),
   against a synthetic test index of --test-items items (target >= 0.7x).
2. lcs mode on token ids vs RapidFuzz ``process.cdist(scorer=LCSseq.similarity, workers=N)``
   on (a) near-threshold data (16 symbols: the count filter prunes nothing; target >= 3x) and
   (b) realistic SFT-vs-benchmark data (target >= 20x), decisions asserted equal, N and 1 threads.
3. ngram mode MB/s vs lm-evaluation-harness' own Janitor (``pip install --no-deps lm-eval``;
   its janitor.py needs nothing else) and two labelled pure-Python reimplementations.
4. Memory of the qwen-mode index for the test items (index_bytes and RSS growth).
Wall-clock medians of --repeat (default 5) interleaved runs; every side on the same full input.
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
    ap.add_argument("--lcs-near", type=int, nargs=2, default=[4000, 4000], metavar=("TRAIN", "TEST"),
                    help="lcs section (a), near-threshold data: training and test items")
    ap.add_argument("--lcs-real", type=int, nargs=2, default=[500, 2000], metavar=("TRAIN", "TEST"),
                    help="lcs section (b), realistic data: SFT records and benchmark items")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=5)
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
        lcs_part(args, tok, rnd, vocab, cum, threads)
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


def lcs_near_threshold(rnd: random.Random, n_train: int, n_test: int) -> tuple[list[list[int]], list[list[int]]]:
    """(a) Near-threshold data: 16 symbols, so every pair shares nearly every token and the count
    bound (sum of min counts) reaches the threshold for every pair: nothing is pruned, every pair
    goes to the exact LCS. Test items of 40-64 tokens (RapidFuzz's multi-string SIMD path takes
    up to 64), training items of 40-100; random pairs have LCS ratios of about 0.34-0.56
    (10th-99th percentile), and 10% of the training items are test items with 30-50% of their
    tokens replaced, whose ratios straddle 0.6."""
    sym = 16
    test = [[rnd.randrange(sym) for _ in range(rnd.randint(40, 64))] for _ in range(n_test)]
    train = []
    for _ in range(n_train):
        if rnd.random() < 0.1:
            e = test[rnd.randrange(n_test)]
            p = rnd.uniform(0.3, 0.5)
            train.append([rnd.randrange(sym) if rnd.random() < p else x for x in e])
        else:
            train.append([rnd.randrange(sym) for _ in range(rnd.randint(40, 100))])
    return train, test


def lcs_realistic(rnd, tok, vocab, cum, n_train: int, n_test: int) -> tuple[list[list[int]], list[list[int]]]:  # type: ignore[no-untyped-def]
    """(b) SFT-vs-benchmark data: English-like text (Zipf over 20,000 words of the Qwen2.5
    vocabulary, with punctuation), normalised and tokenized as lcs mode does. Benchmark items of
    40-300 tokens; SFT records of 80-600 words (~100-800 tokens), 2% of them carrying a test
    item with a fifth of its words dropped after a short preamble."""
    from qwen25.data.decontam import normalize

    test_txt = [make_text(rnd, vocab, cum, rnd.randrange(30, 240)) for _ in range(n_test)]
    test = [x[:300] for x in tok.encode_batch([normalize(t) for t in test_txt])]
    test = [x for x in test if len(x) >= 40]
    train_txt = []
    for _ in range(n_train):
        if rnd.random() < 0.02:
            w = test_txt[rnd.randrange(len(test_txt))].split()
            kept = " ".join(x for x in w if rnd.random() > 0.2)
            train_txt.append(make_text(rnd, vocab, cum, rnd.randrange(20, 200)) + " " + kept)
        else:
            train_txt.append(make_text(rnd, vocab, cum, rnd.randrange(80, 600)))
    train = tok.encode_batch([normalize(t) for t in train_txt])
    return train, test


def lcs_part(args, tok, rnd, vocab, cum, threads) -> None:  # type: ignore[no-untyped-def]
    """lcs mode vs RapidFuzz ``process.cdist(scorer=LCSseq.similarity, workers=N)`` on the
    same full input, both with N threads and with 1. The peer runs in the form that was fastest
    on a probe (test items or training items as the queries; lists of ints or ids pre-encoded as
    str, encoding not timed; ``score_cutoff`` None or lcs_min, which cannot change a decision).
    Its decisions are the matrix with the rule applied by numpy; ours must equal them (every
    pair: ``check_all``; the lowest witness: ``check``)."""
    import numpy as np
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    n_thr = threads or os.cpu_count() or 1
    lcs_min, ppm = 13, 600_000
    sets = [
        ("(a) near-threshold, 16 symbols", *lcs_near_threshold(rnd, args.lcs_near[0], args.lcs_near[1])),
        ("(b) realistic SFT vs benchmark", *lcs_realistic(rnd, tok, vocab, cum, args.lcs_real[0], args.lcs_real[1])),
    ]
    enc = lambda s: "".join(chr(x if x < 0xD800 else x + 0x800) for x in s)  # noqa: E731
    rows = []
    for name, train, test in sets:
        pairs = len(train) * len(test)
        lt = np.array([len(x) for x in train], dtype=np.int64)
        le = np.array([len(x) for x in test], dtype=np.int64)
        t0 = time.perf_counter()
        d = Decontaminator(test, mode="lcs", lcs_min=lcs_min, lcs_ratio=ppm / 1e6)
        build = time.perf_counter() - t0
        print(f"\n[lcs mode, {name}: {len(train)} train ({lt.mean():.0f} tokens avg) x {len(test)} test "
              f"({le.mean():.0f} avg, {le.min()}-{le.max()}) = {pairs / 1e6:.1f}M pairs; index built in {build:.2f} s]")

        def decide(m):  # type: ignore[no-untyped-def]
            m = m.astype(np.int64)
            return (m >= lcs_min) & (m * 1_000_000 >= ppm * np.minimum(lt[:, None], le[None, :]))

        # the peer's best form, probed on a slice of the training items with N workers
        probe = max(1, len(train) // 8)
        forms = {}
        for form in ("lists", "str"):
            q_tr = train[:probe] if form == "lists" else [enc(x) for x in train[:probe]]
            q_te = test if form == "lists" else [enc(x) for x in test]
            for orient in ("test-queries", "train-queries"):
                for cut in (None, lcs_min):
                    a, b = (q_te, q_tr) if orient == "test-queries" else (q_tr, q_te)
                    t0 = time.perf_counter()
                    cdist(a, b, scorer=LCSseq.similarity, workers=n_thr, score_cutoff=cut, dtype=np.int32)
                    forms[(form, orient, cut)] = time.perf_counter() - t0
        best = min(forms, key=forms.get)  # type: ignore[arg-type]
        form, orient, cut = best
        peer_tr = train if form == "lists" else [enc(x) for x in train]
        peer_te = test if form == "lists" else [enc(x) for x in test]
        print("  peer probe (s on 1/8): " + ", ".join(f"{f}/{o}/cutoff={c}: {t:.3f}" for (f, o, c), t in forms.items()))
        print(f"  peer form: {form}, {orient}, score_cutoff={cut}")

        def peer(workers: int):  # type: ignore[no-untyped-def]
            if orient == "test-queries":
                return cdist(peer_te, peer_tr, scorer=LCSseq.similarity, workers=workers, score_cutoff=cut,
                             dtype=np.int32).T
            return cdist(peer_tr, peer_te, scorer=LCSseq.similarity, workers=workers, score_cutoff=cut, dtype=np.int32)

        times: dict[str, list[float]] = {}
        want = None
        for _ in range(args.repeat):
            for nt in (n_thr, 1):
                t0 = time.perf_counter()
                m = peer(nt)
                times.setdefault(f"peer{nt}", []).append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                got_all = d.check_all(train, num_threads=nt)
                times.setdefault(f"all{nt}", []).append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                got_first = d.check(train, num_threads=nt)
                times.setdefault(f"first{nt}", []).append(time.perf_counter() - t0)
                if want is None:
                    want = decide(m)
                    assert want.shape == (len(train), len(test))
                # the decisions must be the peer's, on every run
                mine = np.zeros_like(want)
                for i, ms in enumerate(got_all):
                    for x in ms:
                        mine[i, x.test_index] = True
                assert (mine == want).all(), f"{name}: check_all differs from cdist + rule"
                firsts = [int(np.argmax(r)) if r.any() else None for r in want]
                assert [x.test_index if x else None for x in got_first] == firsts, f"{name}: check differs"
        assert want is not None
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"  decisions equal (asserted): {int(want.sum())} contaminated pairs, {int(want.any(1).sum())} of "
              f"{len(train)} training items removed; wall medians of {args.repeat} interleaved runs:")
        for nt in (n_thr, 1):
            p, a_, f = med[f"peer{nt}"], med[f"all{nt}"], med[f"first{nt}"]
            print(f"  {nt} thread(s): cdist {p:.3f} s ({pairs / p / 1e6:.1f} M pairs/s) | check_all {a_:.3f} s "
                  f"({pairs / a_ / 1e6:.1f} M pairs/s) = {p / a_:.1f}x | check {f:.3f} s = {p / f:.1f}x")
            rows.append((name, nt, p, a_, f))
    print("\n[lcs mode vs RapidFuzz cdist: ratio table (cdist wall / ours wall, medians); targets: (a) >= 3x, (b) >= 20x]")
    print(f"  {'data':34s} {'threads':>7s} {'cdist s':>9s} {'check_all s':>12s} {'ratio':>7s} {'check s':>9s} {'ratio':>7s}")
    for name, nt, p, a_, f in rows:
        print(f"  {name:34s} {nt:7d} {p:9.3f} {a_:12.3f} {p / a_:6.1f}x {f:9.3f} {p / f:6.1f}x")


def ngram_part(args, test, corpus, mb, threads) -> None:  # type: ignore[no-untyped-def]
    """ngram mode vs Janitor: every side on the full corpus, --repeat interleaved runs, medians.
    The two labelled re-implementations must decide as we do (asserted); lm_eval's own Janitor
    (when installed) also cuts windows and drops short slices, so its agreement is counted."""
    n_thr = threads or os.cpu_count() or 1
    t0 = clock()
    dn = Decontaminator(test, mode="ngram")
    t_build_n = clock() - t0
    jan = JanitorReimpl()
    t0 = clock()
    for t in test:
        jan.register(t)
    t_build_j = clock() - t0
    jan2 = JanitorCleanPythonReimpl()
    jan2.dirt = jan.dirt
    real = real_janitor(test)
    sides = {
        f"ours{n_thr}": lambda: [m is not None for m in dn.check(corpus, num_threads=n_thr)],
        "ours1": lambda: [m is not None for m in dn.check(corpus, num_threads=1)],
        "janitor_reimpl": lambda: [jan.dirty(t) for t in corpus],
        "clean_python_reimpl": lambda: [jan2.dirty(t) for t in corpus],
    }
    if real is not None:
        sides["lm_eval_janitor"] = lambda: [real.clean_python(t) != [t] for t in corpus]
    times: dict[str, list[float]] = {k: [] for k in sides}
    got: dict[str, list[bool]] = {}
    for _ in range(args.repeat):
        for k, fn in sides.items():
            t0 = clock()
            got[k] = fn()
            times[k].append(clock() - t0)
    ours = got["ours1"]
    assert got[f"ours{n_thr}"] == ours, "ngram mode: decisions depend on the thread count"
    assert got["janitor_reimpl"] == ours, "ngram mode differs from the Janitor re-implementation"
    assert got["clean_python_reimpl"] == ours, "ngram mode differs from the clean_python re-implementation"
    med = {k: statistics.median(v) for k, v in times.items()}
    mbps = {k: mb / v for k, v in med.items()}
    print(f"\n[ngram mode (word 13-grams), {mb:.1f} MB, medians of {args.repeat} interleaved runs, every side on "
          f"the full corpus]")
    print(f"  qwen25 ngram : {mbps[f'ours{n_thr}']:7.1f} MB/s ({n_thr} threads), {mbps['ours1']:7.1f} MB/s (1 thread);"
          f" index built in {t_build_n:.1f} s")
    print(f"  Janitor (pure-Python REIMPLEMENTATION, not lm_eval): {mbps['janitor_reimpl']:7.2f} MB/s; set built in "
          f"{t_build_j:.1f} s")
    print(f"  speed-up     : {mbps['ours1'] / mbps['janitor_reimpl']:.0f}x single-thread (target >= 30x, >= 50 MB/s/core); "
          f"same decisions (asserted)")
    print(f"  Janitor clean_python algorithm (per-n-gram join + translate, REIMPLEMENTATION): "
          f"{mbps['clean_python_reimpl']:7.2f} MB/s")
    print(f"  speed-up     : {mbps['ours1'] / mbps['clean_python_reimpl']:.0f}x single-thread; same decisions (asserted)")
    if real is not None:
        same = sum(a == b for a, b in zip(got["lm_eval_janitor"], ours))
        print(f"  lm_eval Janitor.clean_python (the real one): {mbps['lm_eval_janitor']:7.2f} MB/s")
        print(f"  speed-up     : {mbps['ours1'] / mbps['lm_eval_janitor']:.0f}x single-thread (target >= 30x); "
              f"decisions agree on {same}/{len(ours)} records (Janitor also cuts windows and drops short slices)")
    else:
        print("  lm_eval not installed (pip install --no-deps lm-eval): real Janitor not run")


def real_janitor(test):  # type: ignore[no-untyped-def]
    """lm-evaluation-harness' own Janitor with the test items registered, or None when lm_eval
    is missing (``pip install --no-deps lm-eval``: janitor.py needs nothing else; without its
    optional C++ ``janitor_util`` it runs ``clean_python``)."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from lm_eval.decontamination.janitor import Janitor
    except ImportError:
        return None
    jan = Janitor(ngram_n=13)
    for t in test:
        jan.register_contaminant_python(t)
    return jan


if __name__ == "__main__":
    sys.exit(main())
