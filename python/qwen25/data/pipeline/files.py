"""The pipeline's file handling, on the one record I/O of :mod:`qwen25.data.records`: JSONL,
token and JSON files through its atomic writer (bytes written off the GIL to ``.tmp-NAME`` beside
``NAME``, renamed on commit, removed on failure; a write error names ``NAME`` as a
:class:`~qwen25.errors.Qwen25IOError`), and the lines of ``stage1.jsonl``: the fields first, the
text (already JSON) last, so a phase reads a line's fields without parsing its text
(:func:`split_line`), and an output that carries the text copies its JSON as it is
(:func:`text_line`, :class:`LineAt`) instead of serialising it again."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from ...errors import Qwen25IOError

__all__ = ["JsonlWriter", "LineAt", "RowWriter", "TokenWriter", "bar", "concat", "read_lines", "remove_temporaries", "split_line",
           "text_line", "write_error", "write_json"]

_FLUSH = 1 << 20  # bytes buffered here before a write to the native writer


def write_error(e: OSError, path: str) -> Qwen25IOError:
    """An OSError met while writing ``path`` (a full disk, say), blamed on that output."""
    return Qwen25IOError(e.errno, f"cannot be written ({e.strerror or e})", path)


class _Out:
    """One output file through ``records.open_writer``: buffered bytes, commit by close()."""

    def __init__(self, path: str) -> None:
        from ..records import open_writer

        self.path = path
        try:
            self.w = open_writer(path, compress_level=6)
        except OSError as e:
            raise write_error(e, path) from None
        self.buf: list[bytes] = []
        self.size = 0

    def put(self, b: bytes) -> None:
        self.buf.append(b)
        self.size += len(b)
        if self.size >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            data = b"".join(self.buf)
            self.buf.clear()
            self.size = 0
            try:
                self.w.write(data)
            except OSError as e:
                raise write_error(e, self.path) from None

    def close(self) -> None:
        self.flush()
        try:
            self.w.commit()
        except OSError as e:
            raise write_error(e, self.path) from None

    def abort(self) -> None:
        self.buf.clear()
        self.w.abort()


class JsonlWriter:
    """JSONL through the atomic writer, renamed into place by close(); ``n`` counts the lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.out = _Out(path)
        self.n = 0

    def write(self, obj: dict[str, Any]) -> None:
        self.out.put(json.dumps(obj, ensure_ascii=False).encode() + b"\n")
        self.n += 1

    def write_line(self, line: bytes) -> None:
        """One line, already JSON and ``\\n``-terminated."""
        self.out.put(line)
        self.n += 1

    def close(self) -> None:
        self.out.close()

    def abort(self) -> None:
        self.out.abort()


class TokenWriter:
    """A domain's token ids (``.tok``, uint32) and per-document lengths (``.len``, uint64),
    through the atomic writer, renamed into place by close()."""

    def __init__(self, stem: str) -> None:
        self.stem = stem
        self.tok = _Out(stem + ".tok")
        self.len = _Out(stem + ".len")
        self.tokens = 0

    def write(self, ids: bytes) -> None:
        n = len(ids) // 4
        self.tok.put(ids)
        self.len.put(n.to_bytes(8, "little"))
        self.tokens += n

    def close(self) -> None:
        self.tok.close()
        self.len.close()


class RowWriter:
    """uint64 values (little-endian) through the atomic writer, renamed into place by close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.out = _Out(path)
        self.n = 0

    def write(self, v: int) -> None:
        self.out.put(v.to_bytes(8, "little"))
        self.n += 1

    def close(self) -> None:
        self.out.close()


class LineAt:
    """The text JSON of the line of a stage file that starts at a byte offset (a context manager)."""

    def __init__(self, path: str) -> None:
        self.f = open(path, "rb")

    def text_json(self, at: int) -> bytes:
        self.f.seek(at)
        return split_line(self.f.readline())[1]

    def __enter__(self) -> LineAt:
        return self

    def __exit__(self, *_: Any) -> None:
        self.f.close()


def write_json(path: str, obj: Any, **kw: Any) -> None:
    """``path`` holding ``json.dumps(obj, **kw)``, written atomically."""
    out = _Out(path)
    out.put(json.dumps(obj, **kw).encode())
    out.close()


def concat(parts: list[str], dst: str) -> None:
    """``dst`` (written atomically): the bytes of ``parts``, in order."""
    out = _Out(dst)
    for p in parts:
        with open(p, "rb") as f:
            while block := f.read(1 << 22):
                out.put(block)
    out.close()


def remove_temporaries(out: str) -> None:
    """Remove the temporary files (``.tmp-*``, ``*.tmp``, ``*.tmp.*``) a failed run left under ``out``."""
    for root, _, names in os.walk(out):
        for n in names:
            if n.startswith(".tmp-") or n.endswith(".tmp") or ".tmp." in n:
                try:
                    os.remove(os.path.join(root, n))
                except OSError:
                    pass


def read_lines(path: str) -> Iterator[bytes]:
    """The raw lines of a file this package wrote (so a line is parsed only when needed)."""
    with open(path, "rb") as f:
        yield from f


# ---- stage lines: {"key": value, ..., "text": "..."} with the text last ----------------------
_DEC = json.JSONDecoder()


def text_line(fields: dict[str, Any], text_json: bytes, after: dict[str, Any] | None = None) -> bytes:
    """One JSONL line holding ``fields``, then ``"text"`` (``text_json``: the text as
    ``json.dumps(text, ensure_ascii=False)`` writes it), then ``after``: the bytes
    ``json.dumps({**fields, "text": text, **after}, ensure_ascii=False)`` gives, without
    serialising the text again."""
    head = json.dumps(fields, ensure_ascii=False).encode()
    line = (head[:-1] + b', "text": ' if fields else b'{"text": ') + text_json
    if after:
        return line + b", " + json.dumps(after, ensure_ascii=False).encode()[1:] + b"\n"
    return line + b"}\n"


def split_line(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """``(fields, text_json)`` of a line :func:`text_line` wrote: the fields before ``"text"``
    parsed, the text's JSON as bytes (not parsed)."""
    s = raw.decode("utf-8")
    fields: dict[str, Any] = {}
    i = 1
    while True:
        key, i = _DEC.raw_decode(s, i)
        i += 2  # ": "
        if key == "text":
            break
        fields[key], i = _DEC.raw_decode(s, i)
        i += 2  # ", "
    start = i if s.isascii() else len(s[:i].encode())
    end = raw.rstrip(b"\r\n").rfind(b"}")
    return fields, raw[start:end]


def bar(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not enabled, file=sys.stderr, dynamic_ncols=True)
