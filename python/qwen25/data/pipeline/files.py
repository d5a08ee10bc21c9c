"""The pipeline's file handling, on the one record I/O of :mod:`qwen25.data.records`: JSONL,
token and JSON files through its atomic writer (bytes written off the GIL to ``.tmp-NAME`` beside
``NAME``, renamed on commit, removed on failure; a write error names ``NAME`` as a
:class:`~qwen25.errors.Qwen25IOError`), and the stage-1 texts: UTF-8, back to back, in
``stage1.text`` with each one's byte length in ``stage1.text.len`` (:class:`TextWriter`,
:class:`Texts`), so no text is serialised to JSON or parsed between phases; an output that
carries a text serialises it once, as it is written (:func:`text_line`)."""

from __future__ import annotations

import json
import os
import sys
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

from ...errors import Qwen25IOError

__all__ = ["JsonlWriter", "RowWriter", "TextWriter", "Texts", "TokenWriter", "bar", "blame_output", "concat",
           "dumps", "parse_line", "read_lines", "remove_temporaries", "text_line", "write_error", "write_json",
           "write_npy"]

_FLUSH = 1 << 20  # bytes buffered here before a write to the native writer

# ``json.dumps(obj, ensure_ascii=False)`` without building an encoder per call (what dumps does
# for any non-default argument): the same bytes, a third faster on the small per-document dicts
dumps = json.JSONEncoder(ensure_ascii=False).encode
_loads = json.JSONDecoder().decode


def parse_line(raw: bytes) -> Any:
    """One line of a JSONL file this package wrote, parsed (``json.loads(raw)``, without its
    encoding detection: the pipeline's files are UTF-8)."""
    return _loads(raw.decode("utf-8"))


def write_error(e: OSError, path: str) -> Qwen25IOError:
    """An OSError met while writing ``path`` (a full disk, say), blamed on that output."""
    return Qwen25IOError(e.errno, f"cannot be written ({e.strerror or e})", path)


def blame_output(e: OSError) -> OSError:
    """``e`` as the error of the output it was writing: a temporary name (``NAME.tmp``,
    ``.tmp-NAME``: gone once the run fails) becomes ``NAME``, as in :func:`write_error`; any other
    error is returned as it is."""
    name = e.filename if isinstance(e.filename, str) else None
    if name is None:
        return e
    d, b = os.path.split(name)
    if b.endswith(".tmp"):
        final = os.path.join(d, b[: -len(".tmp")])
    elif b.startswith(".tmp-"):
        final = os.path.join(d, b[len(".tmp-") :])
    else:
        return e
    why = e.strerror or str(e)
    return Qwen25IOError(e.errno, why if why.startswith("cannot be written") else f"cannot be written ({why})", final)


class _Out:
    """One output file through ``records.open_writer``: buffered bytes, commit by close()."""

    def __init__(self, path: str) -> None:
        from ..records import open_writer

        self.path = path
        try:
            self.w = open_writer(path, compress_level=6)
        except OSError as e:
            raise write_error(e, path) from None
        self.buf: list[bytes | memoryview] = []
        self.size = 0

    def put(self, b: bytes | memoryview) -> None:
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
        self.out.put((dumps(obj) + "\n").encode())
        self.n += 1

    def write_line(self, line: bytes) -> None:
        """One line, already JSON and ``\\n``-terminated."""
        self.out.put(line)
        self.n += 1

    def write_lines(self, lines: list[str]) -> None:
        """Lines, already JSON and ``\\n``-terminated, in one write."""
        if lines:
            self.out.put("".join(lines).encode())
            self.n += len(lines)

    def close(self) -> None:
        self.out.close()

    def abort(self) -> None:
        self.out.abort()


class RowWriter:
    """uint64 values (little-endian) through the atomic writer, renamed into place by close();
    gathered here and written 64 KiB at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.out = _Out(path)
        self.values = array("Q")

    def write(self, v: int) -> None:
        self.values.append(v)
        if len(self.values) >= 8192:
            self._flush()

    def extend(self, vs: Iterable[int]) -> None:
        self.values.extend(vs)
        if len(self.values) >= 8192:
            self._flush()

    def _flush(self) -> None:
        if sys.byteorder == "big":
            self.values.byteswap()
        self.out.put(self.values.tobytes())
        self.values = array("Q")

    def close(self) -> None:
        self._flush()
        self.out.close()


class _Blobs:
    """Byte strings back to back in one file and each one's length (uint64, little-endian, in
    ``unit``-byte items) in another, through the atomic writer, renamed into place by close()."""

    def __init__(self, path: str, len_path: str, unit: int = 1) -> None:
        self.data = _Out(path)
        self.len = RowWriter(len_path)
        self.unit = unit

    def put_many(self, parts: list[bytes] | list[bytes | memoryview]) -> None:
        """Several byte strings, in one write."""
        if parts:
            self.data.put(b"".join(parts))
            self.len.extend(len(b) // self.unit for b in parts)

    def close(self) -> None:
        self.data.close()
        self.len.close()


class TokenWriter(_Blobs):
    """Documents' token ids (``STEM.tok``, uint32) and per-document lengths (``STEM.len``, uint64)."""

    def __init__(self, stem: str) -> None:
        super().__init__(stem + ".tok", stem + ".len", unit=4)

    def write_many(self, ids: list[bytes | memoryview]) -> None:
        """Several documents' ids (little-endian uint32 bytes each), in one write."""
        self.put_many(ids)


class TextWriter(_Blobs):
    """Texts as UTF-8, back to back (``PATH``), and each one's byte length (``PATH.len``, uint64)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, path + ".len")

    def write_many(self, texts: list[str]) -> None:
        """Several texts in one write (each encoded alone: joining str first would widen every
        text to the widest one's characters)."""
        self.put_many([t.encode("utf-8") for t in texts])


class Texts:
    """The texts a :class:`TextWriter` wrote: ``get(row)`` one of them, ``blocks(first, n)`` a run
    of them as bytes (a context manager)."""

    def __init__(self, path: str) -> None:
        import numpy as np

        self.path = path
        lens = np.fromfile(path + ".len", dtype="<u8").astype(np.int64)
        self.starts = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=self.starts[1:])
        self.f = open(path, "rb")

    def __len__(self) -> int:
        return len(self.starts) - 1

    def raw(self, row: int) -> bytes:
        a, b = int(self.starts[row]), int(self.starts[row + 1])
        self.f.seek(a)
        return self.f.read(b - a)

    def get(self, row: int) -> str:
        return self.raw(row).decode("utf-8")

    def json(self, row: int) -> bytes:
        """The text as ``json.dumps(text, ensure_ascii=False)`` writes it (UTF-8)."""
        return dumps(self.get(row)).encode()

    def blocks(self, first: int, n: int) -> tuple[bytes, list[int]]:
        """The bytes of texts ``first .. first + n`` and the ``n + 1`` offsets of each in them."""
        a, b = int(self.starts[first]), int(self.starts[first + n])
        self.f.seek(a)
        blob = self.f.read(b - a)
        if len(blob) != b - a:
            raise Qwen25IOError(0, f"cut short: {len(blob)} of {b - a} bytes at offset {a}", self.path)
        return blob, (self.starts[first : first + n + 1] - a).tolist()

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> Texts:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def write_json(path: str, obj: Any, **kw: Any) -> None:
    """``path`` holding ``json.dumps(obj, **kw)`` (no trailing newline), written atomically by
    ``records.write_json``; a write error is blamed on ``path`` as every pipeline output's is."""
    from ..records import write_json as _write_json

    try:
        _write_json(path, obj, newline=False, **kw)
    except OSError as e:
        raise write_error(e, path) from None


def write_npy(path: str, arr: Any) -> None:
    """``path`` holding ``numpy.save(arr)``'s bytes, written atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, arr)
    out = _Out(path)
    out.put(buf.getvalue())
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


def text_line(fields: dict[str, Any], text_json: bytes, after: dict[str, Any] | None = None) -> bytes:
    """One JSONL line holding ``fields``, then ``"text"`` (``text_json``: the text as
    ``json.dumps(text, ensure_ascii=False)`` writes it), then ``after``: the bytes
    ``json.dumps({**fields, "text": text, **after}, ensure_ascii=False)`` gives."""
    head = dumps(fields).encode()
    line = (head[:-1] + b', "text": ' if fields else b'{"text": ') + text_json
    if after:
        return line + b", " + dumps(after).encode()[1:] + b"\n"
    return line + b"}\n"


def bar(total: int | None, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, dynamic_ncols=True)


class _NoBar:
    """What ``bar`` gives without progress (tqdm is not even imported)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
