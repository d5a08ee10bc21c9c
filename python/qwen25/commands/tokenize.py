"""``qwen25 tokenize``: JSONL (optionally .gz) -> a flat uint32 token file plus an offsets index.

Output: ``OUT`` holds every record's ids back to back (little-endian uint32); ``OUT.idx`` holds
``n_records + 1`` little-endian uint64 offsets (in tokens), so record i is
``tokens[idx[i]:idx[i+1]]``; ``OUT.json`` describes both. Files are written under temporary
names and renamed when complete.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from ..errors import FormatError, Qwen25ValueError

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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _open(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file", path)
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.endswith(".zst"):
        try:
            import zstandard
        except ImportError as e:
            raise Qwen25ValueError(f"{path}: reading .zst needs the 'zstandard' package") from e
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))  # noqa: SIM115
    return open(path, "rb")  # noqa: SIM115


def read_records(paths: list[str], field: str, skip_bad: bool, bad: list[str]) -> Iterator[tuple[str, int]]:
    """Yield (text, n_bytes) per JSONL record. Malformed lines raise FormatError naming file:line,
    or with ``skip_bad`` are appended to ``bad`` (as "file:line: why") and skipped."""
    for path in paths:
        with _open(path) as raw:
            for lineno, line in enumerate(raw, start=1):
                if not line.strip():
                    continue
                try:
                    rec: Any = json.loads(line)
                    if not isinstance(rec, dict):
                        raise ValueError("a JSON object was expected")
                    if field not in rec:
                        raise KeyError(field)
                    text = rec[field]
                    if not isinstance(text, str):
                        raise ValueError(f"field {field!r} is {type(text).__name__}, not a string")
                except (ValueError, KeyError) as e:
                    why = f"no field {field!r}" if isinstance(e, KeyError) else str(e)
                    if skip_bad:
                        bad.append(f"{path}:{lineno}: {why}")
                        continue
                    raise FormatError(f"{path}:{lineno}: {why}", path, lineno) from None
                yield text, len(line)


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
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp_out, tmp_idx = out + ".tmp", idx_path + ".tmp"
    bad: list[str] = []
    n_records = n_tokens = n_bytes = 0
    t0 = time.perf_counter()
    bar = tqdm(total=total_bytes or None, unit="B", unit_scale=True, desc="tokenize", disable=args.no_progress,
               file=sys.stderr)
    try:
        with open(tmp_out, "wb") as fo, open(tmp_idx, "wb") as fi:
            fi.write(np.zeros(1, dtype="<u8").tobytes())
            batch: list[str] = []
            batch_bytes = 0

            def flush() -> None:
                nonlocal n_records, n_tokens, n_bytes, batch_bytes
                if not batch:
                    return
                ids, offsets = tok.encode_batch(batch, allowed_special=allowed, num_threads=args.num_threads, flat=True)
                if args.append_eos:
                    lens = np.diff(offsets)
                    ids = np.insert(ids, offsets[1:].astype(np.int64), np.uint32(eos))
                    offsets = np.concatenate([[0], np.cumsum(lens + 1)]).astype("<u8")
                fo.write(ids.astype("<u4", copy=False).tobytes())
                fi.write((offsets[1:] + np.uint64(n_tokens)).astype("<u8").tobytes())
                n_records += len(batch)
                n_tokens += int(offsets[-1])
                n_bytes += batch_bytes
                bar.update(batch_bytes)
                bar.set_postfix(records=n_records, tokens=n_tokens, bad=len(bad))
                batch.clear()
                batch_bytes = 0

            for text, nb in read_records(args.input, args.field, args.skip_bad, bad):
                batch.append(text)
                batch_bytes += nb
                if len(batch) >= args.batch_size:
                    flush()
            flush()
    except BaseException:
        bar.close()
        for p in (tmp_out, tmp_idx):
            if os.path.exists(p):
                os.remove(p)
        raise
    bar.close()
    os.replace(tmp_out, out)
    os.replace(tmp_idx, idx_path)
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
    with open(meta_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    os.replace(meta_path + ".tmp", meta_path)
    rate = n_bytes / elapsed / 1e6 if elapsed > 0 else 0.0
    print(f"{n_records} records, {n_tokens} tokens -> {out} (+ .idx, .json) in {elapsed:.2f}s ({rate:.1f} MB/s)")
    if bad:
        print(f"{len(bad)} malformed lines skipped (listed in {meta_path}); first: {bad[0]}", file=sys.stderr)
    return 0
