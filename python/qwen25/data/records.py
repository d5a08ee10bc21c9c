"""Reading records for the data pipeline: Python iterables of str or dict, HF ``datasets``
objects, and files (JSONL, ``.jsonl.gz``, ``.jsonl.zst`` with ``zstandard``, Parquet with
``pyarrow``). A record's text is a field (``"text"`` by default) or a chat ``messages`` list.

Bad input is an error that says where: a malformed JSON line raises :class:`FormatError` with
the file and 1-based line; a missing field raises :class:`Qwen25ValueError` naming it.

The jobs (``qwen25 decontaminate``, ``qwen25 tokenize``) read and write through the native record
I/O of ``qwen25-core`` (:func:`read_batches`, :func:`open_writer`): JSONL parsed in Rust on a
background thread with one set of UTF-8, surrogate and malformed-line rules, the raw lines kept
in Rust for pass-through output, and atomic compressing writers whose errors name the output.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
PARQUET_SUFFIXES = (".parquet",)


def file_kind(path: str) -> str:
    p = path.lower()
    if p.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if p.endswith(JSONL_SUFFIXES):
        return "jsonl"
    raise Qwen25ValueError(f"{path}: unknown file type (expected {', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)})")


def open_binary(path: str, mode: str = "rb") -> IO[bytes]:
    """Open a possibly compressed file by its suffix (``.gz``, ``.zst``)."""
    p = path.lower()
    if p.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, mode, compresslevel=6) if "w" in mode else gzip.open(path, mode))
    if p.endswith(".zst"):
        try:
            import zstandard
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise Qwen25ValueError(f"{path}: reading .zst needs the 'zstandard' package") from e
        if "r" in mode:
            return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
        return cast(IO[bytes], zstandard.ZstdCompressor().stream_writer(open(path, "wb")))
    return cast(IO[bytes], open(path, mode))


@dataclass
class Line:
    """One JSONL line: ``raw`` bytes as read (without the newline), its 1-based ``line`` number,
    and the parsed ``obj`` (None when the line is bad: ``error`` says why)."""

    raw: bytes
    line: int
    obj: Any = None
    error: str | None = None


def read_jsonl_lines(path: str, *, encoding_errors: str = "strict") -> Iterator[Line]:
    """Every non-blank line of a JSONL file, parsed; bad lines carry ``error`` instead."""
    if not os.path.exists(path):
        raise Qwen25FileNotFoundError(2, "no such file", path)
    with open_binary(path) as raw_f:
        f: Any = raw_f if isinstance(raw_f, io.BufferedReader) else io.BufferedReader(cast(Any, raw_f))
        for n, raw in enumerate(f, 1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8", errors=encoding_errors)
            except UnicodeDecodeError as e:
                yield Line(raw, n, None, f"invalid UTF-8 at byte {e.start} (use replace to substitute U+FFFD)")
                continue
            try:
                yield Line(raw, n, json.loads(text))
            except json.JSONDecodeError as e:
                yield Line(raw, n, None, f"malformed JSON: {e.msg} at column {e.colno}")


def iter_jsonl(path: str, *, encoding_errors: str = "strict") -> Iterator[Any]:
    """Parsed JSON values of a JSONL file; a bad line raises FormatError(path, line)."""
    for ln in read_jsonl_lines(path, encoding_errors=encoding_errors):
        if ln.error is not None:
            raise FormatError(f"{path}:{ln.line}: {ln.error}", path, ln.line)
        yield ln.obj


def iter_parquet(path: str, batch_size: int = 4096) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise Qwen25ValueError(f"{path}: reading Parquet needs the 'pyarrow' package") from e
    if not os.path.exists(path):
        raise Qwen25FileNotFoundError(2, "no such file", path)
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_size):
        yield from batch.to_pylist()


def iter_path(path: str | os.PathLike[str], *, encoding_errors: str = "strict") -> Iterator[Any]:
    p = os.fspath(path)
    if file_kind(p) == "parquet":
        return iter_parquet(p)
    return iter_jsonl(p, encoding_errors=encoding_errors)


def iter_records(source: Any) -> Iterator[Any]:
    """Records of ``source``: a path (str or PathLike) of a JSONL/Parquet file, or any iterable
    (list, generator, HF ``datasets.Dataset`` / ``IterableDataset``) of str or dict."""
    if isinstance(source, (str, os.PathLike)):
        return iter_path(source)
    if isinstance(source, (bytes, dict)):
        raise TypeError(f"records must be a path or an iterable of records, not {type(source).__name__}")
    try:
        return iter(source)
    except TypeError:
        raise TypeError(f"records must be a path or an iterable of records, not {type(source).__name__}") from None


def text_of(record: Any, field: str = "text", where: str = "") -> str:
    """The text of one record: a str itself, ``record[field]``, or the contents of a chat
    ``messages`` list joined by newlines. An empty text is fine (it is never contaminated)."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        if field in record:
            v = record[field]
            if isinstance(v, str):
                return v
            if v is None:
                return ""
            if isinstance(v, list):
                return _messages_text(v, where, field)
            raise Qwen25ValueError(f"{where}field {field!r} is {type(v).__name__}, not str")
        if "messages" in record and isinstance(record["messages"], list):
            return _messages_text(record["messages"], where, "messages")
        keys = ", ".join(map(repr, list(record)[:10]))
        raise Qwen25ValueError(f"{where}record has no field {field!r} (nor a 'messages' list); its fields: {keys}")
    raise TypeError(f"{where}record is {type(record).__name__}, not str or dict")


def _messages_text(msgs: list[Any], where: str, field: str) -> str:
    parts = []
    for i, m in enumerate(msgs):
        if isinstance(m, dict) and isinstance(m.get("content", ""), str):
            parts.append(m.get("content", ""))
        elif isinstance(m, str):
            parts.append(m)
        else:
            raise Qwen25ValueError(f"{where}{field}[{i}] is not a chat message with a str 'content'")
    return "\n".join(parts)


def texts_of(records: Iterable[Any], field: str = "text") -> list[str]:
    return [text_of(r, field, f"record {i}: ") for i, r in enumerate(records)]


# A JSON escape of a UTF-16 surrogate (U+D800..U+DFFF): the only way a strictly decoded line
# can hold a lone surrogate, so lines without one skip the full check.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def lone_surrogate(obj: Any, where: str = "") -> str | None:
    """Where ``obj`` (a parsed JSON value) holds a string that cannot be encoded as UTF-8 (a lone
    surrogate such as ``"\\ud800"``, valid JSON but not text), or None when it holds none."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"lone surrogate U+{ord(obj[e.start]):04X} at character {e.start} of {where or 'the value'}"
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad = lone_surrogate(k, f"a key of {where or 'the record'}")
            bad = bad or lone_surrogate(v, f"{where}[{k!r}]" if where else f"field {k!r}")
            if bad:
                return bad
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            bad = lone_surrogate(v, f"{where}[{i}]")
            if bad:
                return bad
    return None


class JsonlReader:
    """Records of JSONL files (``.gz``/``.zst`` too) in order, as ``(path, line, record)``, with a
    progress bar by bytes.

    A line that is not UTF-8 JSON, not an object, holds a string that cannot be encoded as UTF-8
    (a lone surrogate escape such as ``\\ud800``: the stages write records back as UTF-8), or lacks
    a string ``field`` (or ``label_field``) raises :class:`FormatError` naming ``file:line``; with ``skip_bad=True`` it is counted in
    ``bad`` and passed to ``on_bad(path, line, why)`` instead (to list it as removed), so no record
    is ever silently lost. Blank lines are not records."""

    def __init__(
        self,
        paths: Iterable[str],
        field: str = "text",
        *,
        label_field: str | None = None,
        skip_bad: bool = False,
        on_bad: Any = None,
        progress: bool = False,
        desc: str = "read",
    ) -> None:
        self.paths = [os.fspath(p) for p in paths]
        for p in self.paths:
            if not os.path.isfile(p):
                raise Qwen25FileNotFoundError(2, "no such input file", p)
        self.field, self.label_field = field, label_field
        self.skip_bad, self.on_bad, self.progress, self.desc = skip_bad, on_bad, progress, desc
        self.bad = 0

    def __iter__(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        import sys

        from tqdm import tqdm

        plain = all(not p.lower().endswith((".gz", ".zst")) for p in self.paths)
        total = sum(os.path.getsize(p) for p in self.paths) if plain else None
        bar = tqdm(
            total=total, desc=self.desc, unit="B", unit_scale=True, disable=not self.progress, file=sys.stderr,
            dynamic_ncols=True,
        )  # fmt: skip
        try:
            for path in self.paths:
                for ln in read_jsonl_lines(path):
                    bar.update(len(ln.raw) + 1)
                    why = ln.error
                    rec = ln.obj
                    if why is None:
                        if not isinstance(rec, dict):
                            why = f"a record must be a JSON object, not {type(rec).__name__}"
                        elif not isinstance(rec.get(self.field), str):
                            why = f"no string field {self.field!r}"
                        elif self.label_field is not None and not isinstance(rec.get(self.label_field), str):
                            why = f"no string label field {self.label_field!r}"
                        elif _SURROGATE_ESCAPE.search(ln.raw):
                            why = lone_surrogate(rec)
                    if why is not None:
                        self._bad(path, ln.line, why)
                        continue
                    yield path, ln.line, rec
        finally:
            bar.close()

    def _bad(self, path: str, line: int, why: str) -> None:
        if not self.skip_bad:
            raise FormatError(f"{path}:{line}: {why}", path, line)
        self.bad += 1
        if self.on_bad is not None:
            self.on_bad(path, line, why)


# -- the native record I/O -----------------------------------------------------------------------
def read_batches(
    path: str | os.PathLike[str],
    field: str = "text",
    *,
    skip_bad: bool = False,
    encoding_errors: str = "strict",
    batch_size: int = 2048,
    allow_ids: bool = False,
    hash: bool = False,
    num_threads: int | None = None,
) -> Any:
    """Batches of the records of one JSONL file (``.gz``/``.zst`` too; ``"-"`` is standard input),
    read and parsed in Rust on a background thread: a ``qwen25._native.RecordReader``.

    A record's text is ``obj[field]`` when a string, else the contents of a chat messages list
    (``obj[field]`` or ``obj["messages"]``: ``{role, content}`` objects, null content empty) joined
    by newlines; with ``allow_ids`` a non-empty list of ints in ``field`` is token ids. A line that
    is not UTF-8 (unless ``encoding_errors="replace"``), not one JSON object, holds a lone surrogate
    escape anywhere, or has no such text raises :class:`FormatError` naming ``file:line``, or with
    ``skip_bad`` is listed in the batch's ``bad`` with its bytes. A compressed file cut short is
    ``file: truncated/corrupt compressed data after N records (line L)``, or with ``skip_bad`` the
    last batch's ``damage``. Each batch: ``items()``, ``lines``, ``records`` (index among the
    non-blank lines), ``raw(i)``, ``bad``, ``damage``, ``nbytes``, ``blank``; with ``hash`` the
    reader's ``blake2b`` is the file's BLAKE2b-128 once read to the end. A batch holds up to
    ``batch_size`` non-blank lines (or 8 MiB), parsed on ``num_threads`` threads."""
    from .. import _native

    p = os.fspath(path)
    if encoding_errors not in ("strict", "replace"):
        raise Qwen25ValueError(f"encoding_errors must be 'strict' or 'replace', not {encoding_errors!r}")
    if p != "-" and not os.path.exists(p):
        raise Qwen25FileNotFoundError(2, "no such file", p)
    return _native.RecordReader(p, field, skip_bad=skip_bad, encoding_errors=encoding_errors,
                                batch_size=batch_size, allow_ids=allow_ids, hash=hash,
                                num_threads=num_threads)  # fmt: skip


def open_writer(
    path: str | os.PathLike[str], *, compress_level: int = 6, num_threads: int | None = None
) -> Any:
    """An atomic writer (a ``qwen25._native.RecordWriter``): bytes go to ``.tmp-<name>`` beside
    ``path``, compressed by its suffix (``.gz``: gzip members of up to 1 MiB compressed in
    parallel at ``compress_level``; ``.zst``: one zstd frame) on a background thread, and ``path``
    appears only on ``commit()``. ``abort()``, an exception inside ``with``, or any write error
    removes the temporary file; a write error (a full disk) names ``path``."""
    from .. import _native

    if type(compress_level) is not int or not 0 <= compress_level <= 9:
        raise Qwen25ValueError(f"compress_level must be 0-9, not {compress_level!r}")
    return _native.RecordWriter(os.fspath(path), compress_level, num_threads)
