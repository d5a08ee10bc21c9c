"""What ``data run``'s reading of a JSONL shard with an ``id_field`` costs: the ids taken from the
native reader's extra field (``read_batches(extra_field=...)``, ``batch.extras()``: the id's raw
JSON text, no line parsed in Python) against the former way (each record's raw line
``json.loads``-ed in Python for its id, then ``json.dumps``-ed). Both read the same ``.jsonl.gz``
shard with the same threads and batch size; the ids' values are asserted equal.

    python benches/bench_read_ids.py --mb 60 --threads 2 --repeat 5

The corpus is real text (``bench_decontam_cli.corpus``: site-packages sources, one file a record
``{"id", "path", "text"}``). Wall seconds, medians of ``--repeat`` interleaved runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))


def old(path: str, threads: int, bs: int) -> list[str | None]:
    from qwen25.data.records import read_batches

    ids: list[str | None] = []
    for b in read_batches(path, "text", skip_bad=True, batch_size=bs, num_threads=threads):
        b.items()
        for i in range(len(b)):
            rec = json.loads(b.raw(i))
            ids.append(json.dumps(rec["id"], ensure_ascii=False) if "id" in rec else None)
    return ids


def new(path: str, threads: int, bs: int) -> list[str | None]:
    from qwen25.data.records import read_batches

    ids: list[str | None] = []
    for b in read_batches(path, "text", skip_bad=True, batch_size=bs, num_threads=threads, extra_field="id"):
        b.items()
        ids.extend(b.extras())
    return ids


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from bench_decontam_cli import corpus

    recs = corpus(a.mb, 0)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.jsonl.gz")
        data = "".join(json.dumps(r) + "\n" for r in recs).encode()
        with open(path, "wb") as f:
            f.write(gzip.compress(data, 6))
        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(a.repeat):
            got = {}
            for name, fn in (("old", old), ("new", new)):
                t = time.perf_counter()
                got[name] = fn(path, a.threads, a.batch)
                times[name].append(time.perf_counter() - t)
            assert [json.loads(x) for x in got["old"]] == [json.loads(x) for x in got["new"]]
        mb = len(data) / 1e6
        print(f"{len(recs)} records, {mb:.1f} MB JSONL (.gz), threads {a.threads}, load {os.getloadavg()[0]:.1f}")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"{name:4s} median {m:.3f} s ({mb / m:.0f} MB/s)  runs {' '.join(f'{x:.3f}' for x in ts)}")
        print(f"ratio old/new: {statistics.median(times['old']) / statistics.median(times['new']):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
