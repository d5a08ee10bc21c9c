"""The native record I/O alone against what the jobs did before in Python, on the same real corpus
as benches/bench_decontam_cli.py (site-packages sources and docs, one file per record):

- reading: ``records.read_batches`` (parse, text extraction, the XXH3-128 digest of the input) vs
  Python's ``gzip`` + line iteration + ``json.loads`` + the ``xxhash`` package's XXH3-128 (the same
  digest; before the switch to XXH3 both sides used BLAKE2b), plain and gzip input;
- writing: ``records.open_writer`` (.gz at level 6 and 1, 8 MiB writes) vs ``gzip.compress``.

    python benches/bench_record_io.py --mb 100 --threads 2 --repeat 5

MB/s of uncompressed JSONL, wall clock and CPU seconds (user + system, all threads), medians of
--repeat interleaved runs. Checked: both readers give the same texts in the same order; the
writer's output decompresses (by Python's gzip) to its input.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import xxhash
from bench_decontam_cli import corpus, cpu_s

from qwen25.data.records import open_writer, read_batches


def py_read(path: Path) -> tuple[list[str], str]:
    h = xxhash.xxh3_128()
    h.update(path.read_bytes())
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return [json.loads(line)["text"] for line in f if line.strip()], h.hexdigest()


def native_read(path: Path, threads: int) -> tuple[list[str], str]:
    r = read_batches(path, hash=True, num_threads=threads)
    out: list[str] = []
    for b in r:
        out.extend(b.items())  # type: ignore[arg-type]
    return out, str(r.digest)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    recs = corpus(args.mb, 0)
    data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in recs)
    mb = len(data) / 1e6
    with tempfile.TemporaryDirectory(prefix="qwen25-bench-") as d:
        plain, gz = Path(d) / "x.jsonl", Path(d) / "x.jsonl.gz"
        plain.write_bytes(data)
        gz.write_bytes(gzip.compress(data, 6))
        print(f"corpus: {len(recs)} real files, {mb:.1f} MB of JSONL ({gz.stat().st_size / 1e6:.1f} MB gzipped); "
              f"threads {args.threads}", flush=True)  # fmt: skip
        cases = {
            "read plain: Python json.loads + xxhash": lambda: py_read(plain),
            "read plain: read_batches": lambda: native_read(plain, args.threads),
            "read .gz: Python gzip + json.loads + xxhash": lambda: py_read(gz),
            "read .gz: read_batches": lambda: native_read(gz, args.threads),
        }
        out = Path(d) / "o.jsonl.gz"

        def py_write(level: int) -> None:
            out.write_bytes(gzip.compress(data, level))

        def native_write(level: int) -> None:
            with open_writer(out, compress_level=level, num_threads=args.threads) as w:
                for k in range(0, len(data), 8 << 20):
                    w.write(data[k : k + (8 << 20)])

        for level in (6, 1):
            cases[f"write .gz level {level}: gzip.compress"] = lambda level=level: py_write(level)
            cases[f"write .gz level {level}: open_writer"] = lambda level=level: native_write(level)
        wall: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        want: dict[str, object] = {}
        for _ in range(args.repeat):
            for k, f in cases.items():
                c0, t0 = cpu_s(), time.perf_counter()
                got = f()
                wall[k].append(mb / (time.perf_counter() - t0))
                cpu[k].append(cpu_s() - c0)
                if got is not None:  # the same texts from every reader, the same hash per file
                    texts, digest = got
                    assert texts == want.setdefault("texts", texts), k
                    assert digest == want.setdefault(k.split(":")[0], digest), k
                elif "write" in k:
                    assert gzip.decompress(out.read_bytes()) == data
                    os.remove(out)
        print_table(wall, cpu)
    return 0


def print_table(wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """The results as a Markdown table: per case, the median MB/s with every run, the median CPU s."""
    print("\n| what | MB/s (median; runs) | CPU s (median) |\n|---|---|---|")
    for k in wall:
        runs = ", ".join(f"{x:.0f}" for x in wall[k])
        print(f"| {k} | {statistics.median(wall[k]):.0f} ({runs}) | {statistics.median(cpu[k]):.2f} |")


if __name__ == "__main__":
    raise SystemExit(main())
