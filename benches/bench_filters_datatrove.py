"""The quality filters (Gopher repetition, Gopher quality, C4, FineWeb in FineWeb's order) vs
datatrove 0.10.1's, on the same real documents (tests/parity/filter_corpus.py: package
descriptions, licences, READMEs and standard-library docstrings and modules, repeated to
``--copies``): decisions asserted equal, then wall-clock medians of ``--runs`` interleaved runs
of datatrove (one process, as one of its workers runs), qwen25 on 1 thread and on 2 threads.

    python benches/bench_filters_datatrove.py --copies 3 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "parity"))

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (  # noqa: E402
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from filter_corpus import code, prose  # noqa: E402

from qwen25.data import QualityFilter  # noqa: E402

NAMES = ["gopher_repetition", "gopher_quality", "c4", "fineweb"]


def datatrove_chain(texts: list[str]) -> list[tuple[bool, str | None, str | None]]:
    """(keep, filter, reason) per text; C4 rewrites the text the later filter sees."""
    filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]
    out = []
    for i, t in enumerate(texts):
        doc = Document(text=t, id=str(i))
        res: tuple[bool, str | None, str | None] = (True, None, None)
        for name, f in zip(NAMES, filters):
            v = f.filter(doc)
            if v is not True:
                res = (False, name, v[1])
                break
        out.append(res)
    return out


def ours(texts: list[str], threads: int) -> list[tuple[bool, str | None, str | None]]:
    return [(r.keep, r.filter, r.reason) for r in QualityFilter(num_threads=threads).apply(texts)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    texts = [t for t in prose() + code() if t.strip()] * a.copies
    mb = sum(len(t.encode()) for t in texts) / 1e6
    ref = datatrove_chain(texts)
    for th in (1, 2):
        got = ours(texts, th)
        bad = [i for i, (x, y) in enumerate(zip(got, ref)) if x != y]
        assert not bad, f"{len(bad)} decisions differ, first: {bad[0]} {got[bad[0]]} vs {ref[bad[0]]}"
    print(f"{len(texts)} documents, {mb:.1f} MB, {sum(not k for k, _, _ in ref)} dropped; decisions equal")
    times: dict[str, list[float]] = {"datatrove": [], "qwen25 1 thread": [], "qwen25 2 threads": []}
    for _ in range(a.runs):
        for name, fn in (
            ("datatrove", lambda: datatrove_chain(texts)),
            ("qwen25 1 thread", lambda: ours(texts, 1)),
            ("qwen25 2 threads", lambda: ours(texts, 2)),
        ):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'':18} {'median s':>9} {'MB/s':>8} {'vs datatrove':>13}")
    for k, v in med.items():
        print(f"{k:18} {v:9.3f} {mb / v:8.2f} {med['datatrove'] / v:12.1f}x")
    print(f"2 threads / 1 thread: {med['qwen25 1 thread'] / med['qwen25 2 threads']:.2f}x")


if __name__ == "__main__":
    main()
