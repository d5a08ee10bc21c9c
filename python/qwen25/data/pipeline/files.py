"""The pipeline's own file handling: JSONL and token files written as ``NAME.tmp`` and renamed
when complete, and line-aligned byte ranges of a JSONL file (the batches workers read)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from ...errors import Qwen25IOError

__all__ = ["JsonlWriter", "TokenWriter", "bar", "chunk_lines", "concat", "line_chunks", "read_jsonl", "read_lines",
           "remove_temporaries", "write_error"]


def write_error(e: OSError, path: str) -> Qwen25IOError:
    """An OSError met while writing ``path`` (a full disk, say), blamed on that output."""
    return Qwen25IOError(e.errno, f"cannot be written ({e.strerror or e})", path)


class JsonlWriter:
    """JSONL written to NAME.tmp and renamed by close(); a failed write raises Qwen25IOError
    naming the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.f = open(path + ".tmp", "w", encoding="utf-8")
        except OSError as e:
            raise write_error(e, path + ".tmp") from None
        self.n = 0

    def write(self, obj: dict[str, Any]) -> None:
        try:
            self.f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        except OSError as e:
            raise write_error(e, self.path + ".tmp") from None
        self.n += 1

    def close(self) -> None:
        try:
            self.f.close()
        except OSError as e:
            raise write_error(e, self.path + ".tmp") from None
        os.replace(self.path + ".tmp", self.path)


class TokenWriter:
    """A domain's token ids (``.tok``, uint32) and per-document lengths (``.len``, uint64),
    written as .tmp and renamed by close()."""

    def __init__(self, stem: str) -> None:
        self.stem = stem
        try:
            self.tok = open(stem + ".tok.tmp", "wb")
            self.len = open(stem + ".len.tmp", "wb")
        except OSError as e:
            raise write_error(e, stem + ".tok.tmp") from None
        self.tokens = 0

    def write(self, ids: bytes) -> None:
        n = len(ids) // 4
        try:
            self.tok.write(ids)
            self.len.write(n.to_bytes(8, "little"))
        except OSError as e:
            raise write_error(e, self.stem + ".tok.tmp") from None
        self.tokens += n

    def close(self) -> None:
        for f, ext in ((self.tok, ".tok"), (self.len, ".len")):
            try:
                f.close()
            except OSError as e:
                raise write_error(e, self.stem + ext + ".tmp") from None
            os.replace(self.stem + ext + ".tmp", self.stem + ext)


def remove_temporaries(out: str) -> None:
    """Remove the ``*.tmp`` files (and ``*.tmp.*``) a failed run left under ``out``."""
    for root, _, names in os.walk(out):
        for n in names:
            if n.endswith(".tmp") or ".tmp." in n:
                try:
                    os.remove(os.path.join(root, n))
                except OSError:
                    pass


def read_lines(path: str) -> Iterator[bytes]:
    """The raw lines of a file this package wrote (so a line is parsed only when needed)."""
    with open(path, "rb") as f:
        yield from f


def concat(parts: list[str], dst: str) -> None:
    """``dst`` (written as .tmp, then renamed): the bytes of ``parts``, in order."""
    import shutil

    try:
        with open(dst + ".tmp", "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
    except OSError as e:
        raise write_error(e, dst + ".tmp") from None
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

