"""``qwen25 decontaminate``: remove benchmark contamination from a sharded corpus.

Argument parsing and printing only: the job is :func:`qwen25.data.decontam_job.run_job` (its
module docstring describes the output folder, the formats, resume, bad input and the report).
"""

from __future__ import annotations

import argparse

from ..data.decontam_job import DEFAULT_WINDOW, parse_window, run_job, summary
from ..errors import Qwen25ValueError

__all__ = ["HELP", "add_arguments", "run", "run_job", "summary"]

HELP = "Remove training records contaminated by benchmarks (Qwen n-gram + LCS rule)."


def _window(v: str) -> str | int | None:
    try:
        return parse_window(v)
    except Qwen25ValueError:
        raise argparse.ArgumentTypeError(f"must be auto, none or a positive int, not {v!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", action="append", required=True, metavar="GLOB",
                   help="training shards: JSONL (.jsonl, .jsonl.gz, .jsonl.zst) or Parquet; globs allowed; repeatable")
    p.add_argument("--test", action="append", required=True, metavar="NAME|PATH",
                   help="test set: a benchmark name (e.g. humaneval) or a JSONL/Parquet file; repeatable")
    p.add_argument("--field", default="text", help="record field holding the text (a chat 'messages' list also works)")
    p.add_argument("--test-field", default="text", help="field of the test files' records")
    p.add_argument("--mode", default="qwen", choices=["qwen", "lcs", "ngram"])
    p.add_argument("--ngram", type=int, default=13)
    p.add_argument("--lcs-min", type=int, default=13)
    p.add_argument("--lcs-ratio", type=float, default=0.6)
    p.add_argument("--window", type=_window, default=DEFAULT_WINDOW, metavar="auto|none|K",
                   help="qwen mode: the part of a record the LCS rule is judged on: auto (default: the part "
                        "aligned to the test item), none (the whole record: the report's literal rule) or K "
                        "(the K tokens around each n-gram hit)")
    p.add_argument("--out", required=True, help="output folder (clean/, removed/, bad/ and the report go there)")
    p.add_argument("--report", default=None, help="JSON report path (default OUT/report.json)")
    p.add_argument("--skip-bad", action="store_true",
                   help="count, report and keep in OUT/bad/ the lines that cannot become a text instead of failing")
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict",
                   help="non-UTF-8 input: strict = a bad line (an error unless --skip-bad); replace = U+FFFD")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--compress-level", type=int, default=6, choices=range(0, 10), metavar="0-9",
                   help="gzip level of .gz outputs (default 6; 1 is several times faster); for clean/ of a .gz "
                        "shard, the level of the blocks compressed again around dropped lines")
    p.add_argument("--recompress", action="store_true",
                   help="compress clean/ of a .gz shard whole at --compress-level, instead of copying the input's "
                        "deflate blocks that no dropped line touches (same decompressed bytes)")
    p.add_argument("--num-threads", type=int, default=None, help="threads (1-4096; default QWEN25_NUM_THREADS or all)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    report = run_job(
        train=args.train, tests=args.test, out=args.out, report_path=args.report, field=args.field,
        test_field=args.test_field, mode=args.mode, ngram=args.ngram, lcs_min=args.lcs_min,
        lcs_ratio=args.lcs_ratio, window=args.window, skip_bad=args.skip_bad,
        encoding_errors=args.encoding_errors, batch_size=args.batch_size, num_threads=args.num_threads,
        progress=not args.no_progress, compress_level=args.compress_level, recompress=args.recompress,
    )
    print(summary(report))
    return 0
