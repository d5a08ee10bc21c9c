"""The native JSONL record reader's parse alone (read + split + parse + text extraction, no
hashing) against Python's ``json.loads`` per line (and ``orjson.loads`` where installed) on the
same lines of a real corpus (site-packages sources and docs, one file per record, built by
``corpus()`` of benches/bench_decontam_cli.py, as the decontaminate bench uses).

    python benches/bench_record_reader.py --mb 250 --shards 8 --threads 2 --repeat 5

Cases, each over every shard, interleaved for --repeat rounds:

- ``read_batches``: ``records.read_batches(path, "text", allow_ids=True, num_threads=T)``
  iterated to the end (what a job that hands batches to a native engine pays);
- ``read_batches + items()``: the same, plus each batch's texts as Python strings;
- ``json.loads``: the file's bytes split into lines, ``json.loads(line)["text"]`` per line
  (one thread: Python's json holds the GIL);
- ``orjson.loads``: the same with orjson, if it is installed.

MB/s of JSONL (wall clock) and CPU seconds (user + system, all threads), medians. Checked every
round: every case gives the same texts in the same order.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_decontam_cli import corpus, cpu_s
from bench_record_io import print_table

from qwen25.data.records import read_batches

try:
    import orjson
except ImportError:  # optional peer
    orjson = None


def native(paths: list[Path], threads: int, items: bool) -> list[str] | int:
    if not items:
        n = 0
        for p in paths:
            for b in read_batches(p, "text", allow_ids=True, num_threads=threads):
                n += len(b)
        return n
    out: list[str] = []
    for p in paths:
        for b in read_batches(p, "text", allow_ids=True, num_threads=threads):
            out.extend(b.items())
    return out


def peer(paths: list[Path], loads: Callable[[bytes], object]) -> list[str]:
    out: list[str] = []
    for p in paths:
        for line in p.read_bytes().splitlines():
            if line.strip():
                out.append(loads(line)["text"])  # type: ignore[index]
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=250.0)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--paths", nargs="*", help="read these JSONL files instead of building a corpus")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qwen25-bench-") as d:
        if args.paths:
            paths = [Path(p) for p in args.paths]
        else:
            # the shards of bench_decontam_cli.py: the same records, lines and split
            lines = [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in corpus(args.mb, 0)]
            per = -(-len(lines) // args.shards)
            paths = []
            for s in range(args.shards):
                p = Path(d) / f"shard{s:02d}.jsonl"
                p.write_bytes(b"".join(lines[s * per : (s + 1) * per]))
                paths.append(p)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"corpus: {len(paths)} shards, {mb:.1f} MB of JSONL; threads {args.threads}", flush=True)
        cases: dict[str, Callable[[], object]] = {
            "read_batches": lambda: native(paths, args.threads, False),
            "read_batches + items()": lambda: native(paths, args.threads, True),
            "json.loads": lambda: peer(paths, json.loads),
        }
        if orjson is not None:
            cases["orjson.loads"] = lambda: peer(paths, orjson.loads)
        wall: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.repeat):
            want: list[str] | None = None
            for k, f in cases.items():
                c0, t0 = cpu_s(), time.perf_counter()
                got = f()
                wall[k].append(mb / (time.perf_counter() - t0))
                cpu[k].append(cpu_s() - c0)
                if isinstance(got, int):
                    continue
                assert isinstance(got, list)
                want = got if want is None else want
                assert got == want, k
            assert want is not None and cases["read_batches"]() == len(want)
        print_table(wall, cpu)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
