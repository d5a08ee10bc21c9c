"""End-to-end `qwen25 decontaminate` (gzip JSONL in and out) against the engine alone on the same
records, in the same process: how much of the engine's speed the job keeps after reading,
parsing, writing and compressing.

    python benches/bench_decontam_cli.py --mb 60 --shards 3 --test-items 5000 --repeat 3

Prints wall-clock MB/s (of uncompressed JSONL) for the job at gzip levels 6 and 1, and for
`Decontaminator.check` over the already-parsed records, with the ratios; medians of --repeat.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decontam import make_text, make_vocab  # noqa: E402

from qwen25.commands.decontaminate import run_job  # noqa: E402
from qwen25.data import Decontaminator, benchmarks  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=60.0, help="uncompressed corpus size")
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--test-items", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--num-threads", type=int, default=None)
    args = ap.parse_args()
    rnd = random.Random(0)
    vocab = make_vocab(rnd, 20_000)
    cum, acc = [], 0.0
    for i in range(len(vocab)):
        acc += 1.0 / (i + 1)
        cum.append(acc)
    pool = [make_text(rnd, vocab, cum, rnd.randrange(50, 600)) for _ in range(3000)]
    test = [make_text(rnd, vocab, cum, rnd.randrange(30, 200)) for _ in range(args.test_items)]
    test_file = None
    tmp = Path(tempfile.mkdtemp(prefix="qwen25-bench-"))
    try:
        test_file = tmp / "test.jsonl"
        test_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in test))
        per = int(args.mb * 1e6 / args.shards)
        texts: list[str] = []
        total = 0
        for s in range(args.shards):
            lines, n = [], 0
            while n < per:
                t = pool[rnd.randrange(len(pool))]
                line = json.dumps({"id": len(texts), "text": t})
                lines.append(line)
                texts.append(t)
                n += len(line) + 1
            data = ("\n".join(lines) + "\n").encode()
            total += len(data)
            (tmp / f"shard{s}.jsonl.gz").write_bytes(gzip.compress(data, 6))
        items = list(test) + [x["text"] for x in benchmarks.load("humaneval")]
        mb = total / 1e6
        print(f"corpus: {mb:.1f} MB JSONL in {args.shards} gzip shards, {len(texts)} records; "
              f"test index: {len(items)} items", flush=True)  # fmt: skip
        d = Decontaminator(items, mode="qwen")
        res: dict[str, list[float]] = {"engine": [], "job level 6": [], "job level 1": []}
        for r in range(args.repeat):
            t0 = time.perf_counter()
            for k in range(0, len(texts), 2048):  # the job's default batch size
                d._d.check(texts[k : k + 2048], True, args.num_threads)
            res["engine"].append(mb / (time.perf_counter() - t0))
            for level in (6, 1):
                out = tmp / f"out{r}-{level}"
                t0 = time.perf_counter()
                run_job(train=[str(tmp / "shard*.jsonl.gz")], tests=["humaneval", str(test_file)], out=str(out),
                        progress=False, compress_level=level, num_threads=args.num_threads)  # fmt: skip
                res[f"job level {level}"].append(mb / (time.perf_counter() - t0))
                shutil.rmtree(out)
        eng = statistics.median(res["engine"])
        print(f"{'what':<14} {'MB/s (median)':>14} {'runs':>30} {'vs engine':>10}")
        for k, v in res.items():
            m = statistics.median(v)
            print(f"{k:<14} {m:>14.1f} {', '.join(f'{x:.1f}' for x in v):>30} {m / eng:>9.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
