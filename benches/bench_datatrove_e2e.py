"""Filters + MinHash end to end vs datatrove 0.10.1 (issue 16): the Gopher repetition, Gopher
quality, C4 and FineWeb filters in FineWeb's order, then near-dedup of the survivors (5-grams, 14
bands x 8 rows), on the same corpus: the real documents of tests/parity/filter_corpus.py with
``--copies`` near-copies planted of each one datatrove's filters keep (other numbers, accents,
punctuation and case, or one word in a hundred changed; ``_near_copy`` of
tests/parity/test_minhash_datatrove.py), shuffled.

- datatrove: its four filter steps (``BaseFilter.run``, C4 rewriting the text the later steps
  see), then its four MinHash stages in process on a temporary folder
  (``_datatrove_kept`` of the MinHash parity test: MinhashDedupSignature -> MinhashDedupBuckets
  (one run per bucket) -> MinhashDedupCluster -> MinhashDedupFilter; one process, as one worker).
- qwen25: ``QualityFilter`` with the same four filters, then ``MinHashDeduplicator()`` (its
  defaults are FineWeb's shape) on the survivors' final text, on 1 thread and on 2 threads.

The surviving document ids are compared; every disagreement is printed with the shingle Jaccard
of the document to its nearest other survivor and LSH's probability of catching that pair (the
hash functions differ, so only pairs near the threshold can be decided differently). Then the
wall-clock medians of ``--runs`` interleaved runs of each side.

    python benches/bench_datatrove_e2e.py --copies 8 --runs 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benches"))

from bench_filters_datatrove import datatrove_chain, ours  # noqa: E402
from datatrove.data import Document  # noqa: E402
from loguru import logger  # noqa: E402
from datatrove.pipeline.filters import (  # noqa: E402
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

from qwen25.data import MinHashDeduplicator, QualityFilter  # noqa: E402
from tests.parity.filter_corpus import code, prose  # noqa: E402
from tests.parity.test_minhash_datatrove import _datatrove_kept, _near_copy  # noqa: E402


def corpus(copies: int) -> list[str]:
    """Every document of the filter corpus, plus ``copies`` near-copies of each one datatrove's
    filters keep (so that MinHash has duplicates to find among the survivors), shuffled."""
    base = [t for t in prose() + code() if t.strip()]
    rng = random.Random(0)
    kept = [t for t, (k, _, _) in zip(base, datatrove_chain(base)) if k]
    docs = base + [_near_copy(t, (i + c) % 4, rng) for c in range(copies) for i, t in enumerate(kept)]
    rng.shuffle(docs)
    return docs


def datatrove_e2e(texts: list[str]) -> tuple[list[int], list[float]]:
    """Ids of the documents datatrove keeps, and the seconds of its filter and MinHash parts."""
    t0 = time.perf_counter()
    docs = iter([Document(text=t, id=str(i)) for i, t in enumerate(texts)])
    for f in (GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()):
        docs = f.run(docs, rank=0, world_size=1)
    survivors = list(docs)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        kept = _datatrove_kept([d.text for d in survivors], Path(tmp))
    return sorted(int(survivors[k].id) for k in kept), [t1 - t0, time.perf_counter() - t1]


def qwen25_e2e(texts: list[str], threads: int, keep: str = "first") -> tuple[list[int], list[float]]:
    """Ids of the documents qwen25 keeps, and the seconds of its filter and MinHash parts."""
    t0 = time.perf_counter()
    res = QualityFilter(num_threads=threads).apply(texts)
    idx = [i for i, r in enumerate(res) if r.keep]
    t1 = time.perf_counter()
    d = MinHashDeduplicator(num_threads=threads, keep=keep)
    kept = d.deduplicate([res[i].final_text(texts[i]) for i in idx])
    return [i for i, k in zip(idx, kept) if k], [t1 - t0, time.perf_counter() - t1]


def explain(texts: list[str], ref: list[int], got: list[int]) -> list[str]:
    """One line per document kept by one side only: its group of filter survivors with the same
    shingle set (copies that differ only in numbers, accents, punctuation or case), how many of
    the group each side keeps, and the nearest survivor outside the group by shingle Jaccard with
    the chance LSH (14 x 8) catches a pair that similar."""
    res = QualityFilter().apply(texts)
    surv = [i for i, r in enumerate(res) if r.keep]
    d = MinHashDeduplicator()
    sh = {i: frozenset(d.shingles(res[i].final_text(texts[i]))) for i in surv}
    lines = []
    for i in sorted(set(ref) ^ set(got)):
        group = [j for j in surv if sh[j] == sh[i]]
        best, j_best = 0.0, -1
        for j in surv:
            if sh[j] != sh[i] and sh[i] and sh[j]:
                s = len(sh[i] & sh[j]) / len(sh[i] | sh[j])
                if s > best:
                    best, j_best = s, j
        side = "datatrove only" if i in ref else "qwen25 only"
        kept = f"datatrove keeps {[j for j in group if j in ref]}, qwen25 {[j for j in group if j in got]}"
        near = f"nearest other {j_best}, Jaccard {best:.3f}, P(LSH pair) {d.detection_probability(best):.3f}"
        lines.append(f"  doc {i}: kept by {side}; same shingles as {group}, of which {kept}; {near}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=8, help="near-copies planted of each filter survivor")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    logger.remove()  # datatrove's per-stage log lines, on both the checks and the timed runs
    texts = corpus(a.copies)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    # the filter decisions alone first (bench_filters_datatrove asserts them equal too)
    fref = datatrove_chain(texts)
    assert ours(texts, 1) == fref, "filter decisions differ"
    ref = datatrove_e2e(texts)[0]
    got = {th: qwen25_e2e(texts, th)[0] for th in (1, 2)}
    assert got[1] == got[2], "1 and 2 threads keep different documents"
    n_filt = sum(not k for k, _, _ in fref)
    print(f"{len(texts)} documents, {mb:.2f} MB; filters drop {n_filt} (same decisions); "
          f"datatrove keeps {len(ref)}, qwen25 keeps {len(got[1])}")  # fmt: skip
    diff = explain(texts, ref, got[1])
    print(f"{len(diff)} surviving-set disagreements (default keep='first')" + (":" if diff else ""))
    for line in diff:
        print(line)
    # a cluster of three or more keeps its lowest index here, the root of a union by size there
    rep = qwen25_e2e(texts, 1, keep="representative")[0]
    diff = explain(texts, ref, rep)
    print(f"{len(diff)} with keep='representative' (datatrove's rule)" + (":" if diff else ""))
    for line in diff:
        print(line)
    times: dict[str, list[list[float]]] = {"datatrove": [], "qwen25 1 thread": [], "qwen25 2 threads": []}
    for _ in range(a.runs):
        for name, fn in (
            ("datatrove", lambda: datatrove_e2e(texts)),
            ("qwen25 1 thread", lambda: qwen25_e2e(texts, 1)),
            ("qwen25 2 threads", lambda: qwen25_e2e(texts, 2)),
        ):
            t0 = time.perf_counter()
            parts = fn()[1]
            times[name].append([time.perf_counter() - t0, *parts])
    med = {k: [statistics.median(r[c] for r in v) for c in range(3)] for k, v in times.items()}
    dt = med["datatrove"]
    head = f"{'total s':>8} {'min-max s':>13} {'MB/s':>6} {'vs dt':>6} {'filters s':>10} {'vs dt':>6}"
    print(f"{'':18} {head} {'MinHash s':>10} {'vs dt':>6}")
    for k, (tot, tf, tm) in med.items():
        rng = f"{min(r[0] for r in times[k]):.2f}-{max(r[0] for r in times[k]):.2f}"
        row = f"{tot:8.3f} {rng:>13} {mb / tot:6.2f} {dt[0] / tot:5.1f}x {tf:10.3f} {dt[1] / tf:5.1f}x"
        print(f"{k:18} {row} {tm:10.4f} {dt[2] / tm:5.0f}x")
    print(f"2 threads / 1 thread: {med['qwen25 1 thread'][0] / med['qwen25 2 threads'][0]:.2f}x")


if __name__ == "__main__":
    main()
