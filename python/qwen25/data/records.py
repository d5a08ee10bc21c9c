"""Reading and writing records, for the data jobs and every other reader of JSONL (SFT and RL
data, eval items, benchmarks, run logs): Python iterables of str or dict, HF ``datasets``
objects, and files (JSONL, ``.jsonl.gz``, ``.jsonl.zst`` with ``zstandard``, Parquet with
``pyarrow``). A record's text is a field (``"text"`` by default) or a chat ``messages`` list.

Bad input is an error that says where: a malformed JSON line raises :class:`FormatError` with
the file and 1-based line; a missing field raises :class:`Qwen25ValueError` naming it.

Every JSONL file is read through the native record I/O of ``qwen25-core``: :func:`read_batches`
for the jobs that take a text (parsed in Rust on a background thread, the raw lines kept in Rust
for pass-through output), :func:`iter_objects` for callers that need each record as a dict (the
same reader and rules, each good line parsed once by ``json.loads``). One set of UTF-8, surrogate
and malformed-line rules, ``file:line`` errors and skip-bad policy for all; files are written by
the one atomic, compressing writer, :func:`open_writer`, whose errors name the output.

Digests. The reader (with ``hash=True``) and the writer digest a file's bytes as stored while they
pass; :func:`file_digest` streams an existing file. They are fingerprints for resume (an accidental
change), not a security feature: the algorithm is :data:`DIGEST_ALGORITHM` (XXH3-128, 32 hex digits
as ``xxhash.xxh3_128(data).hexdigest()`` prints them); whoever stores a digest stores the algorithm's
name beside it, so that it can change again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

DIGEST_ALGORITHM = "xxh3-128"  # the algorithm of every digest below (also _native.digest_algorithm)

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
PARQUET_SUFFIXES = (".parquet",)


def file_kind(path: str) -> str:
    p = path.lower()
    if p.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if p.endswith(JSONL_SUFFIXES):
        return "jsonl"
    raise Qwen25ValueError(f"{path}: unknown file type (expected {', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)})")


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
    return (obj for _, obj, _ in iter_objects(p, encoding_errors=encoding_errors))


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


class BadRecord(Qwen25ValueError):
    """A record that cannot become a text; the message is the reason."""


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _is_ids(v: list[Any]) -> bool:
    """A non-empty list of token ids as the native reader takes them: ints in 0..2**32, no bools."""
    return bool(v) and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 32 for x in v)


def _messages_text(v: Any, name: str) -> str:
    if not isinstance(v, list):
        raise BadRecord(f"{name!r} is {_json_type(v)}, not a list of {{role, content}} objects")
    parts = []
    for i, m in enumerate(v):
        ok = (isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m
              and (m["content"] is None or isinstance(m["content"], str)))  # fmt: skip
        if not ok:
            raise BadRecord(f"{name}[{i}] is {_json_type(m)}, not a {{role, content}} object with string values")
        parts.append(m["content"] or "")
    return "\n".join(parts)


def record_item(obj: Any, field: str, *, allow_ids: bool = True) -> str | list[int]:
    """What the engine judges for one record, by the rule of the native reader
    (:func:`read_batches`, ``qwen25-core`` ``io::record``): ``obj[field]`` when a string (or, with
    ``allow_ids``, a non-empty list of int token ids), else the contents of a chat messages list
    (``obj[field]`` or ``obj["messages"]``, each message a ``{role, content}`` object; null content
    is empty) joined by newlines. Anything else raises :class:`BadRecord` saying why, in the
    reader's words."""
    if not isinstance(obj, dict):
        raise BadRecord(f"a record must be a JSON object, not {_json_type(obj)}")
    if field in obj:
        v = obj[field]
        if isinstance(v, str):
            return v
        if isinstance(v, list):
            return list(v) if allow_ids and _is_ids(v) else _messages_text(v, field)
        raise BadRecord(f"field {field!r} is {_json_type(v)}, not a string (nor a messages list)")
    if "messages" in obj:
        return _messages_text(obj["messages"], "messages")
    keys = ", ".join(map(repr, list(obj)[:10])) or "none"
    raise BadRecord(f"no field {field!r} (nor a 'messages' list); its fields: {keys}")


def text_of(record: Any, field: str = "text", where: str = "") -> str:
    """The text of one in-memory record: a str itself, else :func:`record_item` without token ids,
    so that a record in memory is judged exactly as the same record read from a file (a null
    field, a messages list that is not ``{role, content}`` objects, or a list of ids in ``field``
    is a :class:`BadRecord`, a ``Qwen25ValueError``, prefixed with ``where``). A record that is
    neither str nor dict is a ``TypeError``. An empty text is fine (it is never contaminated)."""
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        raise TypeError(f"{where}record is {type(record).__name__}, not str or dict")
    try:
        return record_item(record, field, allow_ids=False)  # type: ignore[return-value]
    except BadRecord as e:
        raise BadRecord(f"{where}{e}") from None


def texts_of(records: Iterable[Any], field: str = "text") -> list[str]:
    return [text_of(r, field, f"record {i}: ") for i, r in enumerate(records)]


def surrogate_error(text: str, name: str) -> Qwen25ValueError | None:
    """The error for a ``text`` (called ``name`` in it) that holds a lone surrogate (U+D800-U+DFFF,
    e.g. from ``json.loads('"\\ud800"')`` or a ``surrogateescape``-decoded file name), which no
    UTF-8 text can carry, naming it and its index; None when ``text`` encodes. The binding's
    batches of texts say the same (``convert::surrogate_error``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return Qwen25ValueError(
            f"{name} has a lone surrogate U+{ord(text[e.start]):04X} at index {e.start}, which is not valid "
            "Unicode and cannot be encoded as UTF-8 (decode its source with errors='replace' or drop it)"
        )
    return None


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
    blake2b: bool = False,
    extra_field: str | None = None,
    num_threads: int | None = None,
    gz_blocks: bool = False,
) -> Any:
    """Batches of the records of one JSONL file (``.gz``/``.zst`` too; ``"-"`` is standard input),
    read and parsed in Rust on a background thread: a ``qwen25._native.RecordReader``.

    A record's text is ``obj[field]`` when a string, else the contents of a chat messages list
    (``obj[field]`` or ``obj["messages"]``: ``{role, content}`` objects, null content empty) joined
    by newlines; with ``allow_ids`` a non-empty list of ints in ``field`` is token ids. A UTF-8 byte
    order mark at the very start of the file (after decompression), as Windows tools write it, is
    skipped, as Python's ``encoding="utf-8-sig"`` does: it is not part of line 1's text nor of its
    ``raw`` bytes (the digests still cover every byte of the file); anywhere else it is a bad line,
    as ``json.loads`` finds it. A line that
    is not UTF-8 (unless ``encoding_errors="replace"``), not one JSON object, holds a lone surrogate
    escape anywhere, or has no such text raises :class:`FormatError` naming ``file:line``, or with
    ``skip_bad`` is listed in the batch's ``bad`` with its bytes. A compressed file cut short is
    ``file: truncated/corrupt compressed data after N records (line L)``, or with ``skip_bad`` the
    last batch's ``damage``. Each batch: ``items()``, ``lines``, ``records`` (index among the
    non-blank lines), ``raw(i)``, ``bad``, ``damage``, ``nbytes``, ``blank``; with ``hash`` the
    reader's ``digest`` is the digest of the file's bytes once read to the end, and with ``blake2b``
    its ``blake2b`` their BLAKE2b-128 (hex, as ``hashlib.blake2b(data, digest_size=16)``), both
    computed on the reading thread. With ``extra_field``, each batch's ``extras()`` is, per record,
    the raw JSON text of ``obj[extra_field]`` as in the line (``json.loads`` of it is
    ``json.loads(line)[extra_field]``: the last of duplicate keys), None when absent; a bad line
    has none (it is in ``bad`` as without the option). A batch holds up to
    ``batch_size`` non-blank lines (or 8 MiB; a file's first batches 1, 2 and 4 MiB, so that work on
    them starts early), parsed on ``num_threads`` threads. With ``gz_blocks``, a gzip file is
    inflated by a decoder that records where its deflate blocks are, for a writer opened with
    ``open_writer(..., source=path)`` to copy the blocks its dropped lines leave unchanged."""
    from .. import _native

    p = os.fspath(path)
    if encoding_errors not in ("strict", "replace"):
        raise Qwen25ValueError(f"encoding_errors must be 'strict' or 'replace', not {encoding_errors!r}")
    if p != "-" and not os.path.exists(p):
        raise Qwen25FileNotFoundError(2, "no such file", p)
    return _native.RecordReader(p, field, skip_bad=skip_bad, encoding_errors=encoding_errors,
                                batch_size=batch_size, allow_ids=allow_ids, hash=hash,
                                blake2b=blake2b, extra_field=extra_field, num_threads=num_threads,
                                gz_blocks=gz_blocks)  # fmt: skip


def iter_objects(
    path: str | os.PathLike[str], *, skip_bad: bool = False, encoding_errors: str = "strict"
) -> Iterator[tuple[int, Any, str | None]]:
    """``(line, obj, None)`` for each record of a JSONL file (``.gz``/``.zst`` too) whose caller
    needs Python dicts: the lines are read and checked by the native reader (:func:`read_batches`
    with no text field: the same UTF-8, lone-surrogate and malformed-line rules), and each good
    line is parsed once, by ``json.loads``. A record is any JSON object; blank lines are not
    records. A bad line raises :class:`FormatError` naming ``file:line`` (a compressed file cut
    short names the line where it broke); with ``skip_bad`` it comes in its place as
    ``(line, None, why)`` instead, and damage ends the file the same way."""
    p = os.fspath(path)
    replace = encoding_errors == "replace"

    def bad_line(line: int, why: str) -> tuple[int, None, str]:
        if not skip_bad:
            raise FormatError(f"{p}:{line}: {why}", p, line)
        return line, None, why

    for batch in read_batches(p, "", skip_bad=True, encoding_errors=encoding_errors, batch_size=1024):
        good = [(n, i) for i, n in enumerate(batch.lines)]
        bad = batch.bad
        for line, i in sorted(good + [(b[0], -1 - k) for k, b in enumerate(bad)]) if bad else good:
            if i < 0:
                yield bad_line(line, bad[-1 - i][2])
                continue
            raw = batch.raw(i)
            yield line, json.loads(raw.decode("utf-8", "replace") if replace else raw), None
        if batch.damage is not None:
            line, _before, why = batch.damage
            yield bad_line(line, why)


def open_writer(
    path: str | os.PathLike[str],
    *,
    compress_level: int = 6,
    num_threads: int | None = None,
    source: str | os.PathLike[str] | None = None,
) -> Any:
    """An atomic writer (a ``qwen25._native.RecordWriter``): bytes go to ``.tmp-<name>`` beside
    ``path``, compressed by its suffix (``.gz``: gzip members of up to 1 MiB compressed in
    parallel at ``compress_level``; ``.zst``: one zstd frame) on a background thread, and ``path``
    appears only on ``commit()``. ``abort()``, an exception inside ``with``, or any write error
    removes the temporary file; a write error (a full disk) names ``path``. A ``path`` that exists
    and is neither a regular file nor a folder (``/dev/null``, ``/dev/stdout``, a FIFO) is written
    straight through, never replaced by a renamed temporary file. After ``commit()`` the
    writer's ``digest`` and ``size`` are those of the file's bytes as stored (compressed), computed
    on the writer thread as they were written: no need to read the file back.

    ``source``: a ``.gz`` output that holds some records of the gzip file ``source``, in order,
    written only with ``write_selected`` of batches from ``read_batches(source, gz_blocks=True)``
    (every batch, even one with nothing picked): the input's deflate blocks that no dropped line
    touches (nor the 32 KiB before them) are copied bit for bit, and only the blocks around dropped
    lines are compressed again, at ``compress_level``. One output member per input member; the
    output decompresses to exactly the picked lines. Other suffixes ignore ``source``."""
    from .. import _native

    if type(compress_level) is not int or not 0 <= compress_level <= 9:
        raise Qwen25ValueError(f"compress_level must be 0-9, not {compress_level!r}")
    src = None if source is None else os.fspath(source)
    return _native.RecordWriter(os.fspath(path), compress_level, num_threads, source=src)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """``path`` holding ``data``, written atomically through :func:`open_writer`: the file appears
    whole or not at all, and a write error names ``path`` (a ``.gz``/``.zst`` name is
    compressed)."""
    with open_writer(path) as w:
        w.write(data)


def write_json(path: str | os.PathLike[str], obj: Any, *, newline: bool = True, **dumps_kwargs: Any) -> None:
    """``path`` holding ``json.dumps(obj, **dumps_kwargs)`` as UTF-8, then a newline unless
    ``newline=False``, written atomically through :func:`write_bytes` (a ``.gz``/``.zst`` name is
    compressed)."""
    data = json.dumps(obj, **dumps_kwargs) + ("\n" if newline else "")
    write_bytes(path, data.encode())


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Any]) -> int:
    """Write records as JSONL, one ``json.dumps(record, ensure_ascii=False)`` a line, atomically
    through :func:`open_writer`; returns how many."""
    n = 0
    with open_writer(path) as w:
        for r in records:
            w.write((json.dumps(r, ensure_ascii=False) + "\n").encode())
            n += 1
    return n


# -- digests (see the module docstring) ----------------------------------------------------------
def file_digest(path: str | os.PathLike[str]) -> str:
    """The digest (:data:`DIGEST_ALGORITHM`, hex) of the bytes of the file at ``path``, streamed in
    Rust with the GIL released. A missing file raises :class:`Qwen25FileNotFoundError`."""
    from .. import _native

    return _native.file_digest(os.fspath(path))  # a missing file: Qwen25FileNotFoundError naming it


def output_digest(path: str | os.PathLike[str]) -> str:
    """As :func:`file_digest`, for a file this process may have written: when :func:`open_writer`
    committed it and it is unchanged since (device, inode, size, modification and change times:
    a write, even one that restores the size and modification time, changes the change time), the
    writer's digest, without reading the file; otherwise the file is read."""
    from .. import _native

    return _native.output_digest(os.fspath(path))  # a missing file: Qwen25FileNotFoundError naming it


def new_digest() -> Any:
    """A running digest (:data:`DIGEST_ALGORITHM`) of bytes given to its ``update(data)``;
    ``hexdigest()`` is the digest so far (as hashlib's objects)."""
    from .. import _native

    return _native.Digest()
