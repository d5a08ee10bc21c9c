"""``qwen25 tokenize``: JSONL (plain, .gz, .zst) -> a flat uint32 token file plus an offsets index.

Argument parsing and printing only: the job is :func:`qwen25.data.tokenize_job.tokenize_files`
(its module docstring describes the files).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..data.tokenize_job import tokenize_files

HELP = "Tokenize a JSONL corpus into a flat uint32 token file plus an offsets index."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", "-i", required=True, nargs="+", help="JSONL files (.jsonl, .jsonl.gz, .jsonl.zst) or globs (** spans folders); '-' for stdin")
    p.add_argument("--output", "-o", required=True, help="token file to write (OUT, OUT.idx, OUT.json)")
    p.add_argument("--field", default="text", help="JSON field holding the text (default: text)")
    p.add_argument("--tokenizer", default=None, help="HF tokenizer folder (default: the embedded Qwen2.5 tokenizer)")
    p.add_argument("--append-eos", action="store_true", help="append <|endoftext|> to every record")
    p.add_argument("--plain-specials", action="store_true", help="encode control-token strings as plain text")
    p.add_argument("--batch-size", type=int, default=2048, help="records per parallel batch (default: 2048)")
    p.add_argument("--num-threads", type=int, default=None, help="threads (1-4096; default: QWEN25_NUM_THREADS or all cores)")
    p.add_argument("--skip-bad", action="store_true", help="count and report malformed lines instead of failing")
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict",
                   help="non-UTF-8 input: strict = a bad line (an error unless --skip-bad); replace = U+FFFD")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..data.stage_io import expand_globs

    # globbed as the data stages' inputs are (a quoted glob, ** across folders; a file named twice
    # is read once); "-" is stdin, in its place among them
    inputs: list[str] = []
    seen: set[str] = set()
    for p in args.input:
        if p == "-":
            inputs.append(p)
            continue
        for f in expand_globs([p], "--input"):
            if os.path.realpath(f) not in seen:
                seen.add(os.path.realpath(f))
                inputs.append(f)
    r = tokenize_files(
        inputs, args.output, field=args.field, tokenizer=args.tokenizer, append_eos=args.append_eos,
        plain_specials=args.plain_specials, batch_size=args.batch_size, num_threads=args.num_threads,
        skip_bad=args.skip_bad, encoding_errors=args.encoding_errors, progress=not args.no_progress,
    )
    elapsed, bad = r["elapsed"], r["bad"]
    rate = r["bytes"] / elapsed / 1e6 if elapsed > 0 else 0.0
    print(f"{r['records']} records, {r['tokens']} tokens -> {args.output} (+ .idx, .json) in {elapsed:.2f}s "
          f"({rate:.1f} MB/s)")
    if bad:
        print(f"{len(bad)} malformed lines skipped (listed in {r['meta_path']}); first: {bad[0]}", file=sys.stderr)
    return 0
