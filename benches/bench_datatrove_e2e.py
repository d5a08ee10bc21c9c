"""Filters + MinHash end to end vs datatrove 0.10.1 (issue 16): the Gopher repetition, Gopher
quality, C4 and FineWeb filters in FineWeb's order, then near-dedup of the survivors (5-grams, 14
bands x 8 rows), on the same corpus: the real documents of tests/parity/filter_corpus.py with a
near-copy of every other one planted (other numbers, accents, punctuation and case, or one word in
a hundred changed; ``_near_copy`` of tests/parity/test_minhash_datatrove.py), shuffled.

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

    python benches/bench_datatrove_e2e.py --copies 2 --runs 5
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


def datatrove_e2e(texts: list[str]) -> list[int]:
    """Ids of the documents datatrove keeps."""
    docs = iter([Document(text=t, id=str(i)) for i, t in enumerate(texts)])
    for f in (GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()):
        docs = f.run(docs, rank=0, world_size=1)
    survivors = list(docs)
    with tempfile.TemporaryDirectory() as tmp:
        kept = _datatrove_kept([d.text for d in survivors], Path(tmp))
    return sorted(int(survivors[k].id) for k in kept)


def qwen25_e2e(texts: list[str], threads: int) -> list[int]:
    """Ids of the documents qwen25 keeps."""
    res = QualityFilter(num_threads=threads).apply(texts)
    idx = [i for i, r in enumerate(res) if r.keep]
    keep = MinHashDeduplicator(num_threads=threads).deduplicate([res[i].final_text(texts[i]) for i in idx])
    return [i for i, k in zip(idx, keep) if k]


def explain(texts: list[str], ref: list[int], got: list[int]) -> list[str]:
    """One line per document kept by one side only: the nearest other filter survivor by shingle
    Jaccard, and the chance LSH (14 x 8) catches a pair that similar."""
    res = QualityFilter().apply(texts)
    surv = [i for i, r in enumerate(res) if r.keep]
    d = MinHashDeduplicator()
    sh = {i: set(d.shingles(res[i].final_text(texts[i]))) for i in surv}
    lines = []
    for i in sorted(set(ref) ^ set(got)):
        best, j_best = 0.0, -1
        for j in surv:
            if j != i and sh[i] and sh[j]:
                s = len(sh[i] & sh[j]) / len(sh[i] | sh[j])
                if s > best:
                    best, j_best = s, j
        side = "datatrove only" if i in ref else "qwen25 only"
        lines.append(f"  doc {i}: kept by {side}; nearest survivor {j_best}, Jaccard {best:.3f}, "
                     f"P(LSH pair) {d.detection_probability(best):.3f}")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=2, help="near-copies planted of each filter survivor")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    logger.remove()  # datatrove's per-stage log lines, on both the checks and the timed runs
    texts = corpus(a.copies)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    # the filter decisions alone first (bench_filters_datatrove asserts them equal too)
    fref = datatrove_chain(texts)
    assert ours(texts, 1) == fref, "filter decisions differ"
    ref = datatrove_e2e(texts)
    got = {th: qwen25_e2e(texts, th) for th in (1, 2)}
    assert got[1] == got[2], "1 and 2 threads keep different documents"
    n_filt = sum(not k for k, _, _ in fref)
    print(f"{len(texts)} documents, {mb:.2f} MB; filters drop {n_filt} (same decisions); "
          f"datatrove keeps {len(ref)}, qwen25 keeps {len(got[1])}")  # fmt: skip
    diff = explain(texts, ref, got[1])
    print(f"{len(diff)} surviving-set disagreements" + (":" if diff else " (the same documents kept)"))
    for line in diff:
        print(line)
    times: dict[str, list[float]] = {"datatrove": [], "qwen25 1 thread": [], "qwen25 2 threads": []}
    for _ in range(a.runs):
        for name, fn in (
            ("datatrove", lambda: datatrove_e2e(texts)),
            ("qwen25 1 thread", lambda: qwen25_e2e(texts, 1)),
            ("qwen25 2 threads", lambda: qwen25_e2e(texts, 2)),
        ):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'':18} {'median s':>9} {'min-max s':>15} {'MB/s':>8} {'vs datatrove':>13}")
    for k, v in med.items():
        rng = f"{min(times[k]):.3f}-{max(times[k]):.3f}"
        print(f"{k:18} {v:9.3f} {rng:>15} {mb / v:8.2f} {med['datatrove'] / v:12.1f}x")
    print(f"2 threads / 1 thread: {med['qwen25 1 thread'] / med['qwen25 2 threads']:.2f}x")


if __name__ == "__main__":
    main()
