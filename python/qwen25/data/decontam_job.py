"""The decontamination job behind ``qwen25 decontaminate``: a sharded corpus in, every record in
exactly one of ``OUT/clean/`` or ``OUT/removed/``, a report a user can audit, and a rerun that
resumes only what is still true.

The output folder holds exactly one run's truth::

    OUT/clean/<shard>        records kept, same format, order and layout as the input shard
    OUT/removed/<shard>      records removed
    OUT/bad/<shard>.jsonl    lines that could not become a text (only with skip_bad, only when any)
    OUT/.state/<shard>.json  written last for a shard: marks it done, with its fingerprints
    OUT/.lock                held while a run works on the folder
    OUT/report.json          written last (or ``report_path``), naming the run

Formats. JSONL lines are copied byte for byte, line ending included (``\\n`` or ``\\r\\n``); the one
change is that a last line without a line ending gets ``\\n``, so that no output line can run into
the next. Blank lines are not records: they are counted per shard (``blank``) and not copied.
``.gz`` outputs are gzip members, one per MiB of a batch's lines (a valid gzip file, an empty one
included), except ``clean/`` of a ``.gz`` shard: unless ``recompress``, it reuses the input's
compression, one output member per input member, each deflate block copied bit for bit unless a
dropped line (removed, bad, blank) lies in it or in the 32 KiB before it; only those blocks are
compressed again, at ``compress_level`` (decontamination drops few lines, and compressing every
kept line again would cost about as much CPU as judging them). ``.zst`` outputs are one zstd
frame (an empty one included); Parquet outputs keep the input's schema. JSONL shards are read, parsed and hashed, and outputs compressed and written, by the native
record I/O (:func:`qwen25.data.records.read_batches` and ``open_writer``), off the GIL (the next
shard to do is opened, and its first batches read, while the one before it is judged); an output is
written under ``.tmp-<name>`` and renamed when complete, and a write error (a full disk) names the
output file and leaves no temporary file. ``OUT/bad/<shard>.jsonl`` holds one JSON object per bad
line, ``{"line": n, "record": i, "reason": ..., "raw": ...}`` (Parquet: ``"row"`` instead of
``"line"``), where ``raw`` is the line without its ending, decoded with ``surrogateescape`` and
written with ASCII escapes: ``raw.encode("utf-8", "surrogateescape")`` gives back its exact bytes.
For a Parquet row, ``raw`` is the row as JSON. A damaged compressed shard adds one last entry there,
``{"line": L, "record": null, "reason": ..., "raw": ""}``.

Bad input. A line that cannot become a text (malformed JSON (as Python's ``json`` reads it: ``NaN``
and the infinities are numbers), invalid UTF-8 under ``encoding_errors="strict"``, a lone surrogate
anywhere in the record, not a JSON object, no text field, a text field that is not a string, a
messages list that is not a list of ``{role, content}`` objects) is an error naming ``file:line``
(Parquet: ``file: row N``, rows counted from 0); with ``skip_bad`` it is counted, listed in the
report and kept in ``OUT/bad/``. A compressed shard cut short or corrupt is the error ``file:
truncated/corrupt compressed data after N records (line L)``; with ``skip_bad`` the records before
the damage are processed and the damage is listed in the report (``damaged``) and its warnings.
``record`` indices count every non-blank line (or row) of the shard from 0, bad ones included.

Resume. A shard is resumed only when its state file says it was done with the same options
(``field``, ``test_field``, ``skip_bad``, ``encoding_errors``, the test items' text and ids,
``mode``, ``ngram``, ``lcs_min``, ``lcs_ratio``, ``window``) from the same input (size,
modification time and digest of the file's bytes: ``digest``, of the algorithm named in
``digest_algorithm``, XXH3-128, a fingerprint against accidental change, not a security feature),
and its outputs are still there as it wrote them (size and digest, the digest computed by the
writer as it wrote them and checked by reading them on a rerun). Any difference (a state file of another
``STATE_VERSION`` included) redoes the shard, with a note saying why. Batch size, thread count, gzip
level and ``recompress`` change no decision and are not compared. Files under ``clean/``, ``removed/``,
``bad/`` and ``.state/`` that belong to no current input shard are removed at the start and
listed in the report (``stale_removed``).

Report. Per removed record, every witness: the test set, test id and index, the LCS and the
character offsets ``[start, end)`` of the part of the record the rule was met on (``window``).
Per test set: items, items hit and the fraction hit, and the records each item hit; the most-hit
items overall; and a warning for any item that removed more than
``max(GENERIC_MIN_HITS, GENERIC_FACTOR x median)`` records, where the median is taken over the
items that removed anything (not used when fewer than ``GENERIC_MIN_ITEMS`` items did): such an
item is more likely generic text (a boilerplate prompt) than a benchmark copied into the corpus.
``run.inputs`` names each input shard with its ``size``, ``mtime_ns``, ``digest`` and
``digest_algorithm`` (the resume fingerprint above), ``blake2b`` (BLAKE2b-128 of its bytes as
stored, hex, as ``hashlib.blake2b(data, digest_size=16)``; computed while the shard is read) and
whether it was ``resumed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25IOError, Qwen25ValueError
from .folder_lock import LOCK_NAME, FolderLock
from .records import BadRecord, record_item, write_json  # record_item: the one record rule (the native reader's)

__all__ = [
    "DEFAULT_WINDOW",
    "run_job",
    "build_report",
    "summary",
    "load_tests",
    "expand_train",
    "shard_names",
    "record_item",
    "parse_window",
    "fingerprint",
    "generic_items",
]

DEFAULT_WINDOW: str | int | None = "auto"  # the Decontaminator's default: the CLI and run_job use this
STATE_DIR = ".state"
STATE_VERSION = 4  # 3: digests are XXH3-128 (records.DIGEST_ALGORITHM), were BLAKE2b; 4: outputs [size, digest]
MAX_THREADS = 4096
GENERIC_MIN_HITS = 10
GENERIC_FACTOR = 5
GENERIC_MIN_ITEMS = 5
_OUT_DIRS = ("clean", "removed", "bad", STATE_DIR)
_JSON: dict[str, Any] = {"newline": False, "ensure_ascii": False, "indent": 1}  # state files and report.json


# -- options -------------------------------------------------------------------------------------
def parse_window(v: Any) -> str | int | None:
    """``"auto"``, ``None`` (also ``"none"``) or a positive int (also as a string)."""
    if v is None or v == "auto":
        return v
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("auto", "none"):
            return None if s == "none" else "auto"
        if s.isdigit() and int(s) >= 1:
            return int(s)
    elif isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        return v
    raise Qwen25ValueError(f"window must be 'auto', 'none' or a positive int, not {v!r}")


def _check_options(batch_size: Any, num_threads: Any, compress_level: Any, encoding_errors: str) -> None:
    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if not is_int(batch_size) or batch_size < 1:
        raise Qwen25ValueError(f"--batch-size must be an int >= 1, not {batch_size!r}")
    if num_threads is not None and (not is_int(num_threads) or not 1 <= num_threads <= MAX_THREADS):
        raise Qwen25ValueError(f"--num-threads must be an int from 1 to {MAX_THREADS}, not {num_threads!r}")
    if not is_int(compress_level) or not 0 <= compress_level <= 9:
        raise Qwen25ValueError(f"--compress-level must be 0-9, not {compress_level!r}")
    if encoding_errors not in ("strict", "replace"):
        raise Qwen25ValueError(f"--encoding-errors must be 'strict' or 'replace', not {encoding_errors!r}")


# -- records -------------------------------------------------------------------------------------
def _surrogate(obj: Any) -> str | None:
    from .records import lone_surrogate

    return lone_surrogate(obj)


# -- inputs --------------------------------------------------------------------------------------
def expand_train(patterns: list[str], out: str | None = None) -> list[str]:
    """The training files, in order: each pattern's matches sorted, duplicates once. A pattern
    matching nothing, or a file inside ``out``, is an error."""
    import glob

    files: list[str] = []
    for pat in patterns:
        pat = os.path.expanduser(pat)  # a quoted "~/data/*.jsonl", as a shell reads it
        hits = sorted(glob.glob(pat, recursive=True)) if glob.has_magic(pat) else ([pat] if os.path.exists(pat) else [])
        hits = [h for h in hits if os.path.isfile(h)]
        if not hits:
            raise Qwen25FileNotFoundError(2, "no training file matches", pat)
        files.extend(h for h in hits if h not in files)
    if out is not None:
        root = os.path.realpath(out)
        for f in files:
            if os.path.commonpath([os.path.realpath(f), root]) == root:
                raise Qwen25ValueError(f"{f}: a training file inside the output folder {out}; give --out elsewhere")
    return files


def _check_report_path(report_path: str | None, out: str, files: list[str], tests: list[str]) -> None:
    """``report_path`` must name a file of its own: the run removes it first and writes it last,
    so a training or test file there would be lost, and a file under ``OUT/clean``, ``removed``,
    ``bad`` or ``.state`` belongs to a shard (or the lock)."""
    if report_path is None:
        return
    rp = os.path.realpath(report_path)
    if os.path.isdir(report_path):
        raise Qwen25ValueError(f"--report {report_path}: is a folder; give a file name such as {os.path.join(report_path, 'report.json')}")
    for f in files + [t for t in tests if os.path.isfile(t)]:
        if os.path.realpath(f) == rp:
            raise Qwen25ValueError(f"--report {report_path}: is an input ({f}); the report would replace it")
    root = os.path.realpath(out)
    for sub in ("clean", "removed", "bad", STATE_DIR, LOCK_NAME):
        d = os.path.join(root, sub)
        if rp == d or os.path.commonpath([rp, d]) == d:
            raise Qwen25ValueError(f"--report {report_path}: is inside {os.path.join(out, sub)}, which the run manages; "
                                   f"give another path (default {os.path.join(out, 'report.json')})")  # fmt: skip


def shard_names(files: list[str]) -> list[str]:
    """Output names: paths relative to the inputs' common folder (so shards keep their layout)."""
    absd = [os.path.dirname(os.path.abspath(f)) for f in files]
    root = os.path.commonpath(absd) if absd else ""
    names = [os.path.relpath(os.path.abspath(f), root) for f in files]
    if len(set(names)) != len(names):
        raise Qwen25ValueError("two training files map to the same output name")
    return names


def _test_sets(spec: str) -> list[tuple[str, list[Any], bool]]:
    """(set name, records, from a file) for one --test value."""
    from . import benchmarks
    from .records import iter_objects, iter_parquet

    if os.path.isfile(spec):
        name = os.path.basename(spec)
        if spec.lower().endswith(".parquet"):
            return [(name, list(iter_parquet(spec)), True)]
        return [(name, [(line, obj) for line, obj, _ in iter_objects(spec)], True)]
    resolve = getattr(benchmarks, "resolve", None)
    if resolve is not None:
        return [(n, list(r), False) for n, r in resolve(spec)]
    if spec.lower() in benchmarks.names():
        return [(spec.lower(), benchmarks.load(spec), False)]
    raise Qwen25FileNotFoundError(2, f"not a file nor a known benchmark ({', '.join(benchmarks.names())})", spec)


def load_tests(tests: list[str], field: str = "text") -> tuple[list[str | list[int]], list[tuple[str, int, str]]]:
    """All test items (concatenated) and, per item, (set name, index in its set, item id).

    ``tests``: file paths (JSONL or Parquet, text in ``field``) or benchmark names. An item id is
    the record's ``id``/``task_id``/``question_id``, else ``<set>#<index>``; ids are unique."""
    items: list[str | list[int]] = []
    where: list[tuple[str, int, str]] = []
    seen: set[str] = set()
    for spec in tests:
        for name, recs, from_file in _test_sets(spec):
            if from_file and name in seen:
                name = spec  # two files of one name: the second is known by its path
            if name in seen:
                raise Qwen25ValueError(f"--test {spec}: a test set named {name!r} is given twice")
            seen.add(name)
            ids: set[str] = set()
            for i, r in enumerate(recs):
                line = None
                if from_file and isinstance(r, tuple):
                    line, r = r
                f = field if from_file or not isinstance(r, dict) or field in r else "text"
                try:
                    item = record_item(r, f)
                    bad = _surrogate(r)
                    if bad:
                        raise BadRecord(bad)
                except BadRecord as e:
                    at = f"{spec}:{line}" if line is not None else (f"{spec}: row {i}" if from_file else
                                                                     f"{spec}: test item {i}")
                    raise FormatError(f"{at}: {e}", spec, line or 0) from None
                rid = None
                if isinstance(r, dict):
                    rid = next((str(r[k]) for k in ("id", "task_id", "question_id") if r.get(k) is not None), None)
                rid = rid if rid is not None else f"{name}#{i}"
                if rid in ids:
                    rid = f"{rid}#{i}"
                ids.add(rid)
                items.append(item)
                where.append((name, i, rid))
    return items, where


def _tests_hash(items: list[str | list[int]], where: list[tuple[str, int, str]]) -> str:
    from .records import new_digest

    h = new_digest()
    for it, (name, _, rid) in zip(items, where):
        for part in (name, rid, it if isinstance(it, str) else json.dumps(it)):
            b = part.encode("utf-8", "surrogatepass")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    return h.hexdigest()


def fingerprint(path: str) -> dict[str, Any]:
    """``{"size", "mtime_ns", "digest", "digest_algorithm"}`` of a file (the digest streamed over
    its bytes, :func:`qwen25.data.records.file_digest`)."""
    from .records import file_digest

    st = os.stat(path)
    return _fp(st.st_size, st.st_mtime_ns, file_digest(path))


def _fp(size: int, mtime_ns: int, digest: str) -> dict[str, Any]:
    from .records import DIGEST_ALGORITHM

    return {"size": size, "mtime_ns": mtime_ns, "digest": digest, "digest_algorithm": DIGEST_ALGORITHM}


def file_digests(path: str) -> tuple[str, str]:
    """``(digest, blake2b)`` of the file's bytes as stored, both in one streamed pass: the digest
    (:func:`qwen25.data.records.new_digest`) and BLAKE2b-128 (hex) of an input the native reader
    did not read (Parquet, a resumed shard whose state predates the report's ``blake2b``)."""
    import hashlib

    from .records import new_digest

    d, h = new_digest(), hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            d.update(chunk)
            h.update(chunk)
    return d.hexdigest(), h.hexdigest()


def _stat(path: str) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


# -- reading and writing JSONL shards: the native record I/O (records.read_batches/open_writer) ---
def _bad_raw(content: bytes) -> str:
    return content.decode("utf-8", "surrogateescape")


class _BadWriter:
    """``OUT/bad/<shard>.jsonl``: created (through the atomic writer) on the first bad line; no bad
    line, no file."""

    def __init__(self, final: str) -> None:
        self.final = final
        self.w: Any = None

    def write(self, entry: dict[str, Any]) -> None:
        from .records import open_writer

        if self.w is None:
            self.w = open_writer(self.final)
        self.w.write((json.dumps(entry, ensure_ascii=True) + "\n").encode("ascii"))

    def commit(self) -> list[Any] | None:
        """``[size, digest]`` of the file written, None when there was no bad line."""
        if self.w is None:
            if os.path.exists(self.final):
                os.remove(self.final)
            return None
        return _done(self.w)

    def abort(self) -> None:
        if self.w is not None:
            self.w.abort()


def _done(w: Any) -> list[Any]:
    """Commit the writer ``w``: ``[size, digest]`` of its file (the digest computed as it was
    written: the file is not read back)."""
    size = int(w.commit())
    return [size, str(w.digest)]


# -- one shard -----------------------------------------------------------------------------------
def _witnesses(where: list[tuple[str, int, str]], ms: list[Any]) -> list[dict[str, Any]]:
    out = []
    for m in ms:
        name, local, tid = where[m.test_index]
        w: dict[str, Any] = {"test_set": name, "test_id": tid, "test_index": local, "lcs": m.lcs}
        win = getattr(m, "window", None)
        w["window"] = list(win) if win is not None else None
        tw = getattr(m, "token_window", None)
        if tw is not None:
            w["token_window"] = list(tw)
        w["ngram_hits"] = list(m.ngram_hits)
        if m.spans:
            w["spans"] = [list(s) for s in m.spans]
        out.append(w)
    return out


class _Shard:
    """Counts, removals, bad lines and damage of one shard as it is processed."""

    def __init__(self, shard: str, unit: str) -> None:
        self.shard, self.unit = shard, unit  # unit: "line" (JSONL) or "row" (Parquet)
        self.counts = {"in": 0, "clean": 0, "removed": 0, "bad": 0, "blank": 0}
        self.removed: list[dict[str, Any]] = []
        self.bad: list[dict[str, Any]] = []
        self.damage: dict[str, Any] | None = None

    def result(self) -> dict[str, Any]:
        c = self.counts
        c["in"] = c["clean"] + c["removed"] + c["bad"]
        return {"shard": self.shard, "counts": c, "removed": self.removed, "bad": self.bad, "damage": self.damage}


def _tick(bar: Any, n: int, tally: dict[str, float]) -> None:
    if bar is None:
        return
    bar.update(n)
    dt = max(time.perf_counter() - tally["t0"], 1e-9)
    bar.set_postfix({"MB/s": f"{tally['bytes'] / dt / 1e6:.1f}", "removed": int(tally["removed"])}, refresh=False)


def _reuses_blocks(path: str, opts: dict[str, Any]) -> bool:
    """Whether ``clean/`` of this shard copies the input's unchanged gzip blocks (a regular file:
    the blocks are read again from it, which a pipe cannot give)."""
    return not opts["recompress"] and path.lower().endswith(".gz") and os.path.isfile(path)


def _open_jsonl(path: str, opts: dict[str, Any]) -> tuple[Any, dict[str, int]]:
    """A JSONL shard's native reader, already reading on its background thread, and the shard's
    size and modification time when it was opened (to notice a change while it is read)."""
    from .records import read_batches

    before = _stat(path)
    reader = read_batches(path, opts["field"], skip_bad=opts["skip_bad"], encoding_errors=opts["encoding_errors"],
                          batch_size=opts["batch_size"], allow_ids=True, hash=True, blake2b=True,
                          num_threads=opts["num_threads"], gz_blocks=_reuses_blocks(path, opts))  # fmt: skip
    return reader, before


def _process_jsonl(d: Any, path: str, shard: str, out: str, opts: dict[str, Any], bar: Any,
                   tally: dict[str, float], opened: tuple[Any, dict[str, int]],
                   ) -> tuple[dict[str, Any], tuple[str, str], dict[str, list[Any]]]:  # fmt: skip
    """One JSONL shard (``opened``: :func:`_open_jsonl`'s reader and stat; the reader is closed
    here): read, parsed and hashed in Rust on a background thread; the engine judges each batch;
    the raw lines go to clean/ or removed/ without passing through Python objects."""
    from .records import open_writer

    s = _Shard(shard, "line")
    reader, before = opened
    level, nt = opts["compress_level"], opts["num_threads"]
    ws = []
    wb = _BadWriter(os.path.join(out, "bad", shard + ".jsonl"))
    try:
        src = path if _reuses_blocks(path, opts) else None
        ws.append(open_writer(os.path.join(out, "clean", shard), compress_level=level, num_threads=nt, source=src))
        ws.append(open_writer(os.path.join(out, "removed", shard), compress_level=level, num_threads=nt))
        wc, wr = ws
        for b in reader:
            res = d.check_records(b, num_threads=nt) if len(b) else []
            hit = [bool(ms) for ms in res]
            wc.write_selected(b, hit, False)  # every batch: a block-reusing writer needs each one's blocks
            if res:
                wr.write_selected(b, hit, True)
                lines, recs = b.lines, b.records
                for i, ms in enumerate(res):
                    if ms:
                        s.removed.append({"shard": shard, "record": recs[i], "line": lines[i],
                                          "witnesses": _witnesses(opts["where"], ms)})
            bad = b.bad
            for line, rec, why, raw in bad:
                wb.write({"line": line, "record": rec, "reason": why, "raw": _bad_raw(raw)})
                s.bad.append({"shard": shard, "line": line, "record": rec, "reason": why})
            dmg = b.damage
            if dmg is not None:
                s.damage = {"shard": shard, "line": dmg[0], "records_before": dmg[1], "reason": dmg[2]}
                wb.write({"line": dmg[0], "record": None, "reason": dmg[2], "raw": ""})
            n_removed = sum(hit)
            s.counts["removed"] += n_removed
            s.counts["clean"] += len(res) - n_removed
            s.counts["bad"] += len(bad)
            s.counts["blank"] += b.blank
            tally["removed"] += n_removed
            tally["bytes"] += b.nbytes
            _tick(bar, len(res) + len(bad), tally)
        sizes = {f"clean/{shard}": _done(wc), f"removed/{shard}": _done(wr)}
        nb = wb.commit()
        if nb is not None:
            sizes[f"bad/{shard}.jsonl"] = nb
    except BaseException:
        for w in ws:
            w.abort()
        wb.abort()
        raise
    finally:
        reader.close()
    if _stat(path) != before:
        raise Qwen25IOError(f"{path}: changed while it was being read; rerun when it is stable")
    return s.result(), (str(reader.digest), str(reader.blake2b)), sizes


def _process_parquet(d: Any, path: str, shard: str, out: str, opts: dict[str, Any], bar: Any,
                     tally: dict[str, float]) -> tuple[dict[str, Any], tuple[str, str], dict[str, list[Any]]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise Qwen25ValueError(f"{path}: Parquet needs the 'pyarrow' package") from e
    before = _stat(path)
    digests = file_digests(path)
    try:
        pf = pq.ParquetFile(path)
    except pa.ArrowException as e:
        raise FormatError(f"{path}: not a readable Parquet file: {' '.join(str(e).split())}", path, 0) from None
    from .records import open_writer

    s = _Shard(shard, "row")
    # each output through the one atomic writer (.tmp-<name>, renamed by commit), pyarrow writing
    # into it as into a file
    outs: dict[str, tuple[Any, Any]] = {}
    wb = _BadWriter(os.path.join(out, "bad", shard + ".jsonl"))
    rec = 0
    try:
        for kind in ("clean", "removed"):
            w = open_writer(os.path.join(out, kind, shard), num_threads=opts["num_threads"])
            outs[kind] = (w, None)
            outs[kind] = (w, pq.ParquetWriter(pa.PythonFile(w, mode="w"), pf.schema_arrow))
        batches = pf.iter_batches(batch_size=opts["batch_size"])
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as e:
                msg = f"corrupt Parquet data after {rec} rows (row {rec})"
                detail = " ".join(str(e).split())
                if not opts["skip_bad"]:
                    raise FormatError(f"{path}: {msg}: {detail} (pass --skip-bad to keep the rows before it)",
                                      path, 0) from None
                s.damage = {"shard": shard, "row": rec, "records_before": rec, "reason": f"{msg}: {detail}"}
                wb.write({"row": rec, "record": None, "reason": s.damage["reason"], "raw": ""})
                break
            rows = batch.to_pylist()
            items, ok = [], []
            for j, r in enumerate(rows):
                try:
                    item = record_item(r, opts["field"])
                    why = _surrogate(r)
                    if why:
                        raise BadRecord(why)
                    items.append(item)
                    ok.append(j)
                except BadRecord as e:
                    if not opts["skip_bad"]:
                        raise FormatError(f"{path}: row {rec + j}: {e} (pass --skip-bad to count, list and keep such "
                                          "rows in OUT/bad/)", path, 0) from None  # fmt: skip
                    wb.write({"row": rec + j, "record": rec + j, "reason": str(e),
                              "raw": json.dumps(r, ensure_ascii=True, default=str)})
                    s.bad.append({"shard": shard, "row": rec + j, "record": rec + j, "reason": str(e)})
            res = d.check_all(items, num_threads=opts["num_threads"]) if items else []
            keep = [False] * len(rows)
            drop = [False] * len(rows)
            for j, ms in zip(ok, res):
                if ms:
                    drop[j] = True
                    s.removed.append({"shard": shard, "record": rec + j, "row": rec + j,
                                      "witnesses": _witnesses(opts["where"], ms)})
                else:
                    keep[j] = True
            tbl = pa.Table.from_batches([batch])
            outs["removed"][1].write_table(tbl.filter(pa.array(drop, type=pa.bool_())))
            outs["clean"][1].write_table(tbl.filter(pa.array(keep, type=pa.bool_())))
            s.counts["removed"] += sum(drop)
            s.counts["clean"] += sum(keep)
            s.counts["bad"] += len(rows) - len(ok)
            rec += len(rows)
            tally["removed"] += sum(drop)
            tally["bytes"] += batch.nbytes
            _tick(bar, len(rows), tally)
        sizes = {}
        for kind, (w, pw) in outs.items():
            pw.close()  # the footer; the writer stays open (pyarrow did not open it)
            sizes[f"{kind}/{shard}"] = _done(w)
        nb = wb.commit()
        if nb is not None:
            sizes[f"bad/{shard}.jsonl"] = nb
    except BaseException:
        for w, pw in outs.values():
            with contextlib.suppress(Exception):  # the output is being thrown away
                if pw is not None:
                    pw.close()
            w.abort()
        wb.abort()
        raise
    if _stat(path) != before:
        raise Qwen25IOError(f"{path}: changed while it was being read; rerun when it is stable")
    return s.result(), digests, sizes


# -- the output folder ---------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sweep(out: str, shards: list[str]) -> list[str]:
    """Remove every file under clean/, removed/, bad/ and .state/ that belongs to no current shard
    (and leftover temporary files); the removed paths, relative to ``out``, sorted."""
    keep = set()
    for s in shards:
        keep |= {f"clean/{s}", f"removed/{s}", f"bad/{s}.jsonl", f"{STATE_DIR}/{s}.json"}
    gone = []
    for top in _OUT_DIRS:
        root = os.path.join(out, top)
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for fn in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, out).replace(os.sep, "/")
                if rel not in keep:
                    os.remove(full)
                    gone.append(rel)
            if dirpath != root and not os.listdir(dirpath):
                os.rmdir(dirpath)
    return sorted(gone)


def _resume_check(out: str, shard: str, path: str, opts_fp: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the state to resume from, None) or (None, why the shard is done again; None if never done)."""
    state_path = os.path.join(out, STATE_DIR, shard + ".json")
    if not os.path.exists(state_path):
        return None, None
    try:
        with open(state_path, encoding="utf-8") as f:
            st = json.load(f)
        if not isinstance(st, dict) or st.get("version") != STATE_VERSION:
            old_v = st.get("version") if isinstance(st, dict) else None
            return None, f"its state file is from another version ({old_v!r}; this one writes {STATE_VERSION})"
    except (OSError, ValueError):
        return None, "its state file cannot be read"
    old = st.get("options", {})
    diff = [k for k in sorted(set(old) | set(opts_fp)) if old.get(k) != opts_fp.get(k)]
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {opts_fp.get(k)!r}" if k != "tests_digest" else "the test items"
                          for k in diff)
        return None, f"the options changed ({shown})"
    prev = st.get("input", {})
    now = _stat(path)
    for k, what in (("size", "size"), ("mtime_ns", "modification time")):
        if prev.get(k) != now[k]:
            return None, f"the input's {what} changed ({prev.get(k)} -> {now[k]})"
    fp = fingerprint(path)
    if (fp["digest"], fp["digest_algorithm"]) != (prev.get("digest"), prev.get("digest_algorithm")):
        return None, f"the input's content changed (its {fp['digest_algorithm']} digest differs)"
    from .records import file_digest

    for rel, want in st.get("outputs", {}).items():
        p = os.path.join(out, *rel.split("/"))
        ok = isinstance(want, list) and len(want) == 2 and os.path.isfile(p) and os.path.getsize(p) == want[0]
        if not ok or file_digest(p) != want[1]:
            return None, f"its output {rel} is missing or changed"
    if not st.get("outputs"):
        return None, "its state lists no outputs"
    return st, None


# -- the job -------------------------------------------------------------------------------------
def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_job(
    *, train: list[str], tests: list[str], out: str, report_path: str | None = None, field: str = "text",
    test_field: str = "text", mode: str = "qwen", ngram: int = 13, lcs_min: int = 13, lcs_ratio: float = 0.6,
    window: str | int | None = DEFAULT_WINDOW, skip_bad: bool = False, encoding_errors: str = "strict",
    batch_size: int = 2048, num_threads: int | None = None, progress: bool = True, compress_level: int = 6,
    log: Callable[[str], None] | None = None, recompress: bool = False,
) -> dict[str, Any]:
    """Decontaminate the training shards ``train`` (paths or globs; JSONL, ``.jsonl.gz``,
    ``.jsonl.zst`` or Parquet) against ``tests`` (benchmark names or files) into ``out``; see the
    module docstring for the folder, the formats, resume and the report. Returns the report (plus
    ``report_path``). ``log`` receives notes and warnings as they happen (default: stderr).
    ``recompress``: compress ``clean/`` of a ``.gz`` shard whole at ``compress_level`` instead of
    copying the input's unchanged deflate blocks (the decompressed bytes are the same)."""
    from .decontam import Decontaminator
    from .stage_io import as_paths

    log = log or _stderr
    # one path or name is one input, not the characters of its name
    train, tests = as_paths(train), as_paths(tests)
    if not train:  # nothing to read would sweep every shard of an earlier run from ``out``
        raise Qwen25ValueError("no training files given (train is empty)")
    if not tests:
        raise Qwen25ValueError("no test sets given (tests is empty)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise Qwen25ValueError(f"--out {out}: is a file; the output is a folder (clean/, removed/, the report)")
    started = _now()
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)
    window = parse_window(window)
    _check_options(batch_size, num_threads, compress_level, encoding_errors)
    files = expand_train(train, out)
    names = shard_names(files)
    _check_report_path(report_path, out, files, tests)
    items, where = load_tests(tests, test_field)
    if not items:
        raise Qwen25ValueError(f"--test {', '.join(tests)}: no test items: nothing to decontaminate against")
    notes: list[str] = []
    warns: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            d = Decontaminator(
                [{"id": f"{n} {rid}", "text": it} for it, (n, _, rid) in zip(items, where)],
                mode=mode, ngram=ngram, lcs_min=lcs_min, lcs_ratio=lcs_ratio, window=window,
            )  # fmt: skip
        except Qwen25ValueError as e:
            raise Qwen25ValueError(" ".join(str(e).split())) from None
    for w in caught:
        msg = f"test sets: {' '.join(str(w.message).split())}"
        warns.append(msg)
        log(f"warning: {msg}")
    params = {"mode": mode, "ngram": ngram, "lcs_min": lcs_min, "lcs_ratio": lcs_ratio, "window": window,
              "field": field, "test_field": test_field, "skip_bad": skip_bad, "encoding_errors": encoding_errors,
              "tests": list(tests), "test_items": len(items)}  # fmt: skip
    opts_fp = {k: params[k] for k in ("mode", "ngram", "lcs_min", "lcs_ratio", "window", "field", "test_field",
                                      "skip_bad", "encoding_errors")}
    opts_fp["tests_digest"] = _tests_hash(items, where)
    options = {"train": list(train), "tests": list(tests), "out": out, "report_path": report_path, "field": field,
               "test_field": test_field, "mode": mode, "ngram": ngram, "lcs_min": lcs_min, "lcs_ratio": lcs_ratio,
               "window": window, "skip_bad": skip_bad, "encoding_errors": encoding_errors,
               "batch_size": batch_size, "num_threads": num_threads, "compress_level": compress_level,
               "recompress": recompress}  # fmt: skip
    rpath = report_path or os.path.join(out, "report.json")
    os.makedirs(out, exist_ok=True)
    lock = FolderLock(out, run_id, log, notes, job="decontaminate run")
    bar = None
    ahead: dict[int, tuple[Any, dict[str, int]]] = {}  # shard index -> its reader, opened ahead
    try:
        if os.path.isfile(rpath):
            os.remove(rpath)  # a report names a finished run; this folder is about to change
        stale = _sweep(out, names)
        if stale:
            note = f"removed {len(stale)} file(s) of shards not in this run's input: {', '.join(stale[:5])}" + (
                f" and {len(stale) - 5} more" if len(stale) > 5 else "")
            notes.append(note)
            log(f"note: {note}")
        opts = {"field": field, "skip_bad": skip_bad, "encoding_errors": encoding_errors, "batch_size": batch_size,
                "num_threads": num_threads, "where": where, "compress_level": compress_level,
                "recompress": bool(recompress)}
        if progress:
            from tqdm import tqdm

            bar = tqdm(unit="rec", unit_scale=True, desc="decontaminate", file=sys.stderr)
        tally: dict[str, float] = {"removed": 0, "bytes": 0, "t0": time.perf_counter()}
        shards: list[dict[str, Any]] = []
        inputs: list[dict[str, Any]] = []
        checks = [_resume_check(out, shard, path, opts_fp) for path, shard in zip(files, names)]
        # the JSONL shards to (re)do: each one's reader is opened while the one before it is judged,
        # so that reading and parsing its first batches overlap the end of the shard before
        todo = [k for k, (path, (st, _)) in enumerate(zip(files, checks))
                if st is None and not path.lower().endswith(".parquet")]  # fmt: skip
        for k, (path, shard) in enumerate(zip(files, names)):
            st, why = checks[k]
            if st is not None:
                res = st["result"]
                res["resumed"] = True
                shards.append(res)
                fp = dict(st["input"])
                if "blake2b" not in fp:  # a state written before the report's blake2b came back
                    fp["blake2b"] = file_digests(path)[1]
                inputs.append({"path": path, "shard": shard, **fp, "resumed": True})
                continue
            if why is not None:
                note = f"shard {shard}: redone: {why}"
                notes.append(note)
                log(f"note: {note}")
            state_path = os.path.join(out, STATE_DIR, shard + ".json")
            if os.path.exists(state_path):
                os.remove(state_path)  # not done until its outputs are all replaced
            if path.lower().endswith(".parquet"):
                before = _stat(path)
                res, (digest, b2), sizes = _process_parquet(d, path, shard, out, opts, bar, tally)
            else:
                opened = ahead.pop(k, None) or _open_jsonl(path, opts)
                before = opened[1]
                nxt = next((j for j in todo if j > k), None)
                if nxt is not None and nxt not in ahead:
                    ahead[nxt] = _open_jsonl(files[nxt], opts)
                res, (digest, b2), sizes = _process_jsonl(d, path, shard, out, opts, bar, tally, opened)
            fp = {**_fp(before["size"], before["mtime_ns"], digest), "blake2b": b2}
            write_json(state_path, {"version": STATE_VERSION, "options": opts_fp, "input": fp, "outputs": sizes,
                                    "result": res}, **_JSON)
            res["resumed"] = False
            if why is not None:
                res["redone"] = why
            shards.append(res)
            inputs.append({"path": path, "shard": shard, **fp, "resumed": False})
        if bar is not None:
            bar.close()
            bar = None
        run = {"id": run_id, "started": started, "finished": _now(), "qwen25_version": _version(),
               "options": options, "inputs": inputs}
        report = build_report(params, shards, where, run=run, notes=notes, warns=warns, stale=stale,
                              short_items=[where[i] for i in getattr(d, "short_items", [])])
        write_json(rpath, report, **_JSON)
    finally:
        for reader, _ in ahead.values():  # opened ahead, never reached (a shard before it failed)
            reader.close()
        if bar is not None:
            bar.close()
        lock.release()
    report["report_path"] = rpath
    return report


def _version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


# -- the report ----------------------------------------------------------------------------------
def generic_items(hits: dict[Any, int]) -> tuple[float, list[Any]]:
    """(the bar, the items over it): an item that removed more than
    ``max(GENERIC_MIN_HITS, GENERIC_FACTOR * median)`` records, the median taken over the items
    that removed any (and not used when fewer than ``GENERIC_MIN_ITEMS`` did)."""
    counts = [n for n in hits.values() if n > 0]
    med = statistics.median(counts) if len(counts) >= GENERIC_MIN_ITEMS else 0
    bar = max(GENERIC_MIN_HITS, GENERIC_FACTOR * med)
    return bar, sorted((k for k, n in hits.items() if n > bar), key=lambda k: (-hits[k], k))


def build_report(
    params: dict[str, Any], shards: list[dict[str, Any]], where: list[tuple[str, int, str]], *,
    run: dict[str, Any] | None = None, notes: list[str] | None = None, warns: list[str] | None = None,
    stale: list[str] | None = None, short_items: list[tuple[str, int, str]] | None = None,
) -> dict[str, Any]:
    """The JSON report of a run from its shards' results (see the module docstring)."""
    counts = {"in": 0, "clean": 0, "removed": 0, "bad": 0, "blank": 0}
    removed: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    damaged: list[dict[str, Any]] = []
    test_sets: dict[str, dict[str, Any]] = {}
    per_item: dict[tuple[str, int], int] = {}
    ids: dict[tuple[str, int], str] = {}
    for name, i, rid in where:
        test_sets.setdefault(name, {"items": 0, "items_hit": 0, "fraction_hit": 0.0, "hits": {}})["items"] += 1
        ids[(name, i)] = rid
    for s in shards:
        for k in counts:
            counts[k] += s["counts"].get(k, 0)
        removed.extend(s["removed"])
        bad.extend(s["bad"])
        if s.get("damage"):
            damaged.append(s["damage"])
        for r in s["removed"]:
            for w in r["witnesses"]:
                hit = {k: r[k] for k in ("shard", "record", "line", "row") if k in r}
                test_sets[w["test_set"]]["hits"].setdefault(w["test_id"], []).append(hit)
                key = (w["test_set"], w["test_index"])
                per_item[key] = per_item.get(key, 0) + 1
    for ts in test_sets.values():
        ts["items_hit"] = len(ts["hits"])
        ts["fraction_hit"] = ts["items_hit"] / ts["items"] if ts["items"] else 0.0
    for name, ts in test_sets.items():  # hits listed by count, then by index in the set
        order = sorted((k for k in per_item if k[0] == name), key=lambda k: (-per_item[k], k[1]))
        ts["hits"] = {ids[k]: ts["hits"][ids[k]] for k in order}
    if short_items:
        for name, _, rid in short_items:
            test_sets[name].setdefault("too_short", []).append(rid)
    assert counts["in"] == counts["clean"] + counts["removed"] + counts["bad"]
    most = sorted(per_item, key=lambda k: (-per_item[k], k))[:10]
    bar, generic = generic_items(per_item)
    all_warns = list(warns or [])
    for k in generic:
        all_warns.append(
            f"test item {k[0]} {ids[k]} (index {k[1]}) removed {per_item[k]} records, more than "
            f"max({GENERIC_MIN_HITS}, {GENERIC_FACTOR} x the median per hit item) = {bar:g}: it may be generic "
            "text rather than contamination; audit its removals in the report"
        )
    for dmg in damaged:
        at = f"line {dmg['line']}" if "line" in dmg else f"row {dmg['row']}"
        all_warns.append(f"shard {dmg['shard']}: {dmg['reason']}; the records from {at} on were not read")
    if counts["bad"]:
        all_warns.append(f"{counts['bad']} bad record(s) skipped; they are listed in the report and kept in bad/")
    return {
        "run": run or {},
        "params": params,
        "counts": counts,
        "shards": [{"shard": s["shard"], **s["counts"], "resumed": s.get("resumed", False),
                    **({"redone": s["redone"]} if s.get("redone") else {}),
                    **({"damaged": True} if s.get("damage") else {})} for s in shards],  # fmt: skip
        "test_sets": test_sets,
        "most_hit": [{"test_set": k[0], "test_id": ids[k], "test_index": k[1], "records": per_item[k]} for k in most],
        "generic_bar": bar,
        "warnings": all_warns,
        "notes": list(notes or []),
        "stale_removed": list(stale or []),
        "removed": removed,
        "bad": bad,
        "damaged": damaged,
    }


def _n(k: int, what: str) -> str:
    return f"{k} {what}" + ("" if k == 1 else "s")


def summary(report: dict[str, Any]) -> str:
    """The report in a few lines, for a terminal."""
    c = report["counts"]
    p = report["params"]
    shards = report["shards"]
    n_res = sum(1 for s in shards if s.get("resumed"))
    n_redo = sum(1 for s in shards if s.get("redone"))
    how = f" ({n_res} resumed" + (f", {n_redo} redone" if n_redo else "") + ")" if n_res or n_redo else ""
    lines = [
        f"decontaminate ({p['mode']}, ngram={p['ngram']}, lcs_min={p['lcs_min']}, lcs_ratio={p['lcs_ratio']}, "
        f"window={'none' if p['window'] is None else p['window']}): {c['in']} records in {len(shards)} shard(s)"
        f"{how}: {c['clean']} clean, {c['removed']} removed, {c['bad']} bad",
    ]
    for name, ts in report["test_sets"].items():
        top = list(ts["hits"].items())[:5]  # by count, then index (build_report)
        tops = ", ".join(f"{k} ({len(v)})" for k, v in top)
        lines.append(f"  {name}: {ts['items_hit']} of {ts['items']} test items hit training records "
                     f"({100 * ts['fraction_hit']:.1f}%)" + (f"; most: {tops}" if tops else ""))
    if report.get("most_hit"):
        lines.append("  most-hit test items: " + ", ".join(
            f"{m['test_set']} {m['test_id']} ({_n(m['records'], 'record')})" for m in report["most_hit"][:5]))
    for n in report.get("notes", []):
        lines.append(f"  note: {n}")
    for w in report.get("warnings", []):
        lines.append(f"  warning: {w}")
    if "report_path" in report:
        lines.append(f"  report: {report['report_path']}")
    return "\n".join(lines)
