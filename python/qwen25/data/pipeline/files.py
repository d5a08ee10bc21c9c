"""The pipeline's own file handling: JSONL and token files written as ``NAME.tmp`` and renamed
when complete, and line-aligned byte ranges of a JSONL file (the batches workers read)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["JsonlWriter", "TokenWriter", "bar", "chunk_lines", "concat", "line_chunks", "read_jsonl", "read_lines"]


class JsonlWriter:
    """JSONL written to NAME.tmp and renamed by close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.f = open(path + ".tmp", "w", encoding="utf-8")
        self.n = 0

    def write(self, obj: dict[str, Any]) -> None:
        self.f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.n += 1

    def close(self) -> None:
        self.f.close()
        os.replace(self.path + ".tmp", self.path)


class TokenWriter:
    """A domain's token ids (``.tok``, uint32) and per-document lengths (``.len``, uint64),
    written as .tmp and renamed by close()."""

    def __init__(self, stem: str) -> None:
        self.stem = stem
        self.tok = open(stem + ".tok.tmp", "wb")
        self.len = open(stem + ".len.tmp", "wb")
        self.tokens = 0

    def write(self, ids: bytes) -> None:
        self.tok.write(ids)
        n = len(ids) // 4
        self.len.write(n.to_bytes(8, "little"))
        self.tokens += n

    def close(self) -> None:
        for f, ext in ((self.tok, ".tok"), (self.len, ".len")):
            f.close()
            os.replace(self.stem + ext + ".tmp", self.stem + ext)


STAGES = ("read", "filter", "exact_dedup", "minhash_dedup", "decontaminate", "score", "classify", "mix")
_FLOW_KEYS = ("in_docs", "in_tokens", "out_docs", "out_tokens", "removed_docs", "removed_tokens", "repeat_docs", "repeat_tokens")
def read_lines(path: str) -> Iterator[bytes]:
    """The raw lines of a file this package wrote (so a line is parsed only when needed)."""
    with open(path, "rb") as f:
        yield from f


def concat(parts: list[str], dst: str) -> None:
    """``dst`` (written as .tmp, then renamed): the bytes of ``parts``, in order."""
    import shutil

    with open(dst + ".tmp", "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    os.replace(dst + ".tmp", dst)


def read_jsonl(path: str) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def bar(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def line_chunks(path: str, lines_per_chunk: int) -> Iterator[tuple[int, int, int]]:
    """``(byte start, byte end, first line number)`` of consecutive runs of ``lines_per_chunk``
    ``\\n``-terminated lines of ``path`` (the last run may be shorter or unterminated)."""
    import numpy as np

    size = os.path.getsize(path)
    start, line, pos, count = 0, 1, 0, 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 24)
            if not block:
                break
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            k = lines_per_chunk - count - 1  # the line end that completes the current run
            while k < len(ends):
                end = pos + int(ends[k]) + 1
                yield start, end, line
                line += lines_per_chunk
                start = end
                k += lines_per_chunk
            count = (count + len(ends)) % lines_per_chunk
            pos += len(block)
    if start < size:
        yield start, size, line


def chunk_lines(path: str, start: int, end: int) -> list[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines

