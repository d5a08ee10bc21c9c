"""``qwen25 tokenize``: JSONL (optionally .gz) -> a flat uint32 token file plus an offsets index.

Output: ``OUT`` holds every record's ids back to back (little-endian uint32); ``OUT.idx`` holds
``n_records + 1`` little-endian uint64 offsets (in tokens), so record i is
``tokens[idx[i]:idx[i+1]]``; ``OUT.json`` describes both. Input is read and parsed by the native
record I/O (:func:`qwen25.data.records.read_batches`: the decontaminate job's rules, so a chat
``messages`` list is a text too, and a truncated ``.gz``/``.zst`` says how far it was read); files
are written under temporary names and renamed when complete (:func:`~qwen25.data.records.open_writer`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ..data.records import open_writer, read_batches
from ..errors import Qwen25FileNotFoundError, Qwen25ValueError

HELP = "Tokenize a JSONL corpus into a flat uint32 token file plus an offsets index."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", "-i", required=True, nargs="+", help="JSONL files (.jsonl, .jsonl.gz); '-' for stdin")
    p.add_argument("--output", "-o", required=True, help="token file to write (OUT, OUT.idx, OUT.json)")
    p.add_argument("--field", default="text", help="JSON field holding the text (default: text)")
    p.add_argument("--tokenizer", default=None, help="HF tokenizer folder (default: the embedded Qwen2.5 tokenizer)")
    p.add_argument("--append-eos", action="store_true", help="append <|endoftext|> to every record")
    p.add_argument("--plain-specials", action="store_true", help="encode control-token strings as plain text")
    p.add_argument("--batch-size", type=int, default=2048, help="records per parallel batch (default: 2048)")
    p.add_argument("--num-threads", type=int, default=None, help="threads (default: QWEN25_NUM_THREADS or all cores)")
    p.add_argument("--skip-bad", action="store_true", help="count and report malformed lines instead of failing")
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict",
                   help="non-UTF-8 input: strict = a bad line (an error unless --skip-bad); replace = U+FFFD")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(args.tokenizer) if args.tokenizer else Tokenizer.qwen25()
    if args.batch_size < 1:
        raise Qwen25ValueError(f"--batch-size must be positive, got {args.batch_size}")
    allowed: Any = set() if args.plain_specials else "all"
    eos_id = tok.eos_token_id if tok.eos_token_id is not None else tok.token_to_id("<|endoftext|>")
    if args.append_eos and eos_id is None:
        raise Qwen25ValueError("--append-eos: this tokenizer has no eos token")
    eos = int(eos_id or 0)
    total_bytes = sum(os.path.getsize(p) for p in args.input if p != "-" and os.path.exists(p))
    out, idx_path, meta_path = args.output, args.output + ".idx", args.output + ".json"
    for p in args.input:
        if p != "-" and not os.path.isfile(p):
            raise Qwen25FileNotFoundError(2, "no such input file", p)
    bad: list[str] = []
    n_records = n_tokens = n_bytes = 0
    t0 = time.perf_counter()
    bar = tqdm(total=total_bytes or None, unit="B", unit_scale=True, desc="tokenize", disable=args.no_progress,
               file=sys.stderr)
    writers: list[Any] = []
    try:
        writers = [open_writer(out), open_writer(idx_path)]
        fo, fi = writers
        fi.write(np.zeros(1, dtype="<u8").tobytes())
        for path in args.input:
            reader = read_batches(path, args.field, skip_bad=args.skip_bad, encoding_errors=args.encoding_errors,
                                  batch_size=args.batch_size, num_threads=args.num_threads)  # fmt: skip
            for b in reader:
                bad.extend(f"{path}:{line}: {why}" for line, _, why, _ in b.bad)
                if b.damage is not None:
                    bad.append(f"{path}:{b.damage[0]}: {b.damage[2]}")
                if len(b):
                    ids, offsets = tok.encode_batch(b.items(), allowed_special=allowed, num_threads=args.num_threads,
                                                    flat=True)  # fmt: skip
                    if args.append_eos:
                        lens = np.diff(offsets)
                        ids = np.insert(ids, offsets[1:].astype(np.int64), np.uint32(eos))
                        offsets = np.concatenate([[0], np.cumsum(lens + 1)]).astype("<u8")
                    fo.write(ids.astype("<u4", copy=False).tobytes())
                    fi.write((offsets[1:] + np.uint64(n_tokens)).astype("<u8").tobytes())
                    n_records += len(b)
                    n_tokens += int(offsets[-1])
                n_bytes += b.nbytes
                bar.update(b.nbytes)
                bar.set_postfix(records=n_records, tokens=n_tokens, bad=len(bad))
        for w in writers:
            w.commit()
    except BaseException:
        bar.close()
        for w in writers:
            w.abort()
        raise
    bar.close()
    elapsed = time.perf_counter() - t0
    meta = {
        "format": "qwen25-tokens-v1",
        "dtype": "uint32",
        "index_dtype": "uint64",
        "records": n_records,
        "tokens": n_tokens,
        "bad_lines": len(bad),
        "bad": bad[:1000],
        "inputs": args.input,
        "field": args.field,
        "tokenizer": args.tokenizer or "qwen25 (embedded)",
        "append_eos": bool(args.append_eos),
    }
    with open_writer(meta_path) as f:
        f.write(json.dumps(meta, indent=2).encode())
    rate = n_bytes / elapsed / 1e6 if elapsed > 0 else 0.0
    print(f"{n_records} records, {n_tokens} tokens -> {out} (+ .idx, .json) in {elapsed:.2f}s ({rate:.1f} MB/s)")
    if bad:
        print(f"{len(bad)} malformed lines skipped (listed in {meta_path}); first: {bad[0]}", file=sys.stderr)
    return 0
