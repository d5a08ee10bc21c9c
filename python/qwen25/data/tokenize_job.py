"""The job behind ``qwen25 tokenize``: JSONL files (plain, ``.gz``, ``.zst``; ``"-"`` is standard
input) to a flat uint32 token file plus an offsets index.

Output: ``OUT`` holds every record's ids back to back (little-endian uint32); ``OUT.idx`` holds
``n_records + 1`` little-endian uint64 offsets (in tokens), so record i is
``tokens[idx[i]:idx[i+1]]``; ``OUT.json`` describes both. Input is read and parsed by the native
record I/O (:func:`qwen25.data.records.read_batches`: the decontaminate job's rules, so a chat
``messages`` list is a text too, and a truncated ``.gz``/``.zst`` says how far it was read); files
are written under temporary names and renamed when complete (:func:`~qwen25.data.records.open_writer`).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from ..errors import Qwen25FileNotFoundError, Qwen25ValueError
from .records import open_writer, read_batches, write_json

__all__ = ["tokenize_files"]


def tokenize_files(
    inputs: list[str],
    output: str,
    *,
    field: str = "text",
    tokenizer: str | None = None,
    append_eos: bool = False,
    plain_specials: bool = False,
    batch_size: int = 2048,
    num_threads: int | None = None,
    skip_bad: bool = False,
    encoding_errors: str = "strict",
    progress: bool = True,
) -> dict[str, Any]:
    """Tokenize ``inputs`` into ``output`` (+ ``.idx``, ``.json``); returns the ``.json``
    description plus ``elapsed`` (seconds) and ``bytes`` (of JSONL read). A bad line raises
    :class:`~qwen25.errors.FormatError` naming ``file:line``, or with ``skip_bad`` is listed in
    ``bad`` (the first 1,000) and counted in ``bad_lines``. ``tokenizer``: an HF tokenizer folder
    (default: the embedded Qwen2.5 one)."""
    import numpy as np
    from tqdm import tqdm

    from ..tokenizer import Tokenizer
    from .stage_jobs import check_threads

    check_threads(num_threads, "--num-threads")
    tok = Tokenizer.from_pretrained(tokenizer) if tokenizer else Tokenizer.qwen25()
    if batch_size < 1:
        raise Qwen25ValueError(f"--batch-size must be positive, got {batch_size}")
    allowed: Any = set() if plain_specials else "all"
    eos_id = tok.eos_token_id if tok.eos_token_id is not None else tok.token_to_id("<|endoftext|>")
    if append_eos and eos_id is None:
        raise Qwen25ValueError("--append-eos: this tokenizer has no eos token")
    eos = int(eos_id or 0)
    out, idx_path, meta_path = output, output + ".idx", output + ".json"
    for p in inputs:
        if p != "-" and not os.path.isfile(p):
            raise Qwen25FileNotFoundError(2, "no such input file", p)
    written = {os.path.realpath(q): q for q in (out, idx_path, meta_path)}
    for p in inputs:
        if p != "-" and os.path.realpath(p) in written:
            raise Qwen25ValueError(f"--output {output}: {written[os.path.realpath(p)]} is the input {p}; "
                                   "tokenizing would replace it")  # fmt: skip
    # the bar advances by decompressed bytes: a total only when that is the files' size
    plain = all(p != "-" and not p.lower().endswith((".gz", ".zst")) for p in inputs)
    total_bytes = sum(os.path.getsize(p) for p in inputs) if plain else 0
    bad: list[str] = []
    n_records = n_tokens = n_bytes = 0
    t0 = time.perf_counter()
    bar = tqdm(total=total_bytes or None, unit="B", unit_scale=True, desc="tokenize", disable=not progress,
               file=sys.stderr)
    writers: list[Any] = []
    try:
        writers = [open_writer(out), open_writer(idx_path)]
        fo, fi = writers
        fi.write(np.zeros(1, dtype="<u8").tobytes())
        for path in inputs:
            reader = read_batches(path, field, skip_bad=skip_bad, encoding_errors=encoding_errors,
                                  batch_size=batch_size, num_threads=num_threads)  # fmt: skip
            for b in reader:
                bad.extend(f"{path}:{line}: {why}" for line, _, why, _ in b.bad)
                if b.damage is not None:
                    bad.append(f"{path}:{b.damage[0]}: {b.damage[2]}")
                if len(b):
                    ids, offsets = tok.encode_records(b, allowed_special=allowed, num_threads=num_threads)
                    if append_eos:
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
        "inputs": list(inputs),
        "field": field,
        "tokenizer": tokenizer or "qwen25 (embedded)",
        "append_eos": bool(append_eos),
    }
    write_json(meta_path, meta, newline=False, indent=2)
    return {**meta, "bad": bad, "elapsed": elapsed, "bytes": n_bytes, "meta_path": meta_path}
