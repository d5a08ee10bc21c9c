"""``qwen25 decontaminate``: remove benchmark contamination from a sharded corpus.

Every input record lands in exactly one of ``OUT/clean/`` or ``OUT/removed/``, in the same
format and order, one output shard per input shard (JSONL lines are copied byte for byte).
Shards are written under temporary names and renamed when complete; a per-shard state file,
written last, marks a shard done, so a rerun resumes after the last completed shard. The JSON
report lists per test set and item the records it hit, per removed record its witnesses, and
counts in = clean + removed + bad. Memory is the test index plus one batch.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

HELP = "Remove training records contaminated by benchmarks (Qwen n-gram + LCS rule)."
STATE_DIR = ".state"
STATE_VERSION = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", action="append", required=True, metavar="GLOB",
                   help="training shards: JSONL (.jsonl, .jsonl.gz, .jsonl.zst) or Parquet; globs allowed; repeatable")
    p.add_argument("--test", action="append", required=True, metavar="NAME|PATH",
                   help="test set: a benchmark name (e.g. humaneval) or a JSONL/Parquet file; repeatable")
    p.add_argument("--field", default="text", help="record field holding the text (a chat 'messages' list also works)")
    p.add_argument("--test-field", default="text", help="field of the test files' records")
    p.add_argument("--mode", default="qwen", choices=["qwen", "lcs", "ngram"])
    p.add_argument("--ngram", type=int, default=13)
    p.add_argument("--lcs-min", type=int, default=13)
    p.add_argument("--lcs-ratio", type=float, default=0.6)
    p.add_argument("--window", type=int, default=None, help="qwen mode: judge the WINDOW tokens around each n-gram hit")
    p.add_argument("--out", required=True, help="output folder (clean/ and removed/ go there)")
    p.add_argument("--report", default=None, help="JSON report path (default OUT/report.json)")
    p.add_argument("--skip-bad", action="store_true", help="count and report malformed lines instead of failing")
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict",
                   help="non-UTF-8 input: strict = a bad line (an error unless --skip-bad); replace = U+FFFD")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--compress-level", type=int, default=6, choices=range(0, 10), metavar="0-9",
                   help="gzip level of .gz outputs (default 6; 1 is several times faster)")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    report = run_job(
        train=args.train, tests=args.test, out=args.out, report_path=args.report, field=args.field,
        test_field=args.test_field, mode=args.mode, ngram=args.ngram, lcs_min=args.lcs_min,
        lcs_ratio=args.lcs_ratio, window=args.window, skip_bad=args.skip_bad,
        encoding_errors=args.encoding_errors, batch_size=args.batch_size, num_threads=args.num_threads,
        progress=not args.no_progress, compress_level=args.compress_level,
    )
    print(summary(report))
    return 0


# -- inputs ------------------------------------------------------------------------------------
def expand_train(patterns: list[str]) -> list[str]:
    files: list[str] = []
    for pat in patterns:
        hits = sorted(glob.glob(pat, recursive=True)) if glob.has_magic(pat) else ([pat] if os.path.exists(pat) else [])
        hits = [h for h in hits if os.path.isfile(h)]
        if not hits:
            raise Qwen25FileNotFoundError(2, "no training file matches", pat)
        files.extend(h for h in hits if h not in files)
    return files


def shard_names(files: list[str]) -> list[str]:
    """Output names: paths relative to the inputs' common folder (so shards keep their layout)."""
    absd = [os.path.dirname(os.path.abspath(f)) for f in files]
    root = os.path.commonpath(absd) if absd else ""
    names = [os.path.relpath(os.path.abspath(f), root) for f in files]
    if len(set(names)) != len(names):
        raise Qwen25ValueError("two training files map to the same output name")
    return names


def load_tests(tests: list[str], field: str) -> tuple[list[Any], list[tuple[str, int, str]]]:
    """All test items (concatenated) and, per item, (set name, index in set, item id)."""
    from ..data import benchmarks
    from ..data.decontam import _item_of
    from ..data.records import iter_path

    items: list[Any] = []
    where: list[tuple[str, int, str]] = []
    for t in tests:
        if os.path.exists(t):
            name, recs = os.path.basename(t), iter_path(t)
        elif t.lower() in benchmarks.names():
            name, recs = t.lower(), iter(benchmarks.load(t))
        else:
            raise Qwen25FileNotFoundError(
                2, f"not a file nor a known benchmark ({', '.join(benchmarks.names())})", t
            )
        for i, r in enumerate(recs):
            items.append(_item_of(r, field, f"{t}: test item {i}: "))
            rid = None
            if isinstance(r, dict):
                rid = next((str(r[k]) for k in ("id", "task_id", "question_id") if k in r), None)
            where.append((name, i, rid if rid is not None else f"{name}#{i}"))
    return items, where


# -- shards --------------------------------------------------------------------------------------
class _Batch:
    """Up to batch_size records of one shard: their engine inputs and how to write them back."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.raw: list[Any] = []  # bytes (JSONL) or row index (Parquet)
        self.lines: list[int] = []
        self.nbytes = 0


def _jsonl_batches(path: str, field: str, skip_bad: bool, enc: str, bs: int, bad: list[dict[str, Any]],
                   shard: str) -> Iterator[_Batch]:
    from ..data.decontam import _item_of
    from ..data.records import read_jsonl_lines

    b = _Batch()
    for ln in read_jsonl_lines(path, encoding_errors=enc):
        b.nbytes += len(ln.raw) + 1
        if ln.error is not None:
            if not skip_bad:
                raise FormatError(f"{path}:{ln.line}: {ln.error} (pass --skip-bad to count and skip such lines)",
                                  path, ln.line)
            bad.append({"shard": shard, "line": ln.line, "error": ln.error})
            continue
        try:
            item = _item_of(ln.obj, field, "")
        except (Qwen25ValueError, TypeError) as e:
            raise FormatError(f"{path}:{ln.line}: {e}", path, ln.line) from None
        b.items.append(item)
        b.raw.append(ln.raw)
        b.lines.append(ln.line)
        if len(b.items) >= bs:
            yield b
            b = _Batch()
    if b.items or b.nbytes:
        yield b


class _JsonlWriter:
    """One output shard, written a batch at a time to a temporary name and renamed by commit().

    ``.gz`` output is a sequence of gzip members, one per batch (a valid gzip file: ``gzip -d``,
    ``zcat`` and Python's ``gzip`` read it whole), compressed by a thread pool: zlib releases the
    GIL, so compression overlaps the engine and uses every core. ``.zst`` uses zstandard's own
    threads. Members are written in batch order, so the bytes never depend on timing."""

    def __init__(self, final: str, pool: Any, level: int) -> None:
        from ..data.records import open_binary

        self.final = final
        self.tmp = os.path.join(os.path.dirname(final), ".tmp-" + os.path.basename(final))
        os.makedirs(os.path.dirname(final), exist_ok=True)
        self.gz = final.lower().endswith(".gz")
        self.pool, self.level = pool, level
        self.pending: list[Any] = []  # futures of compressed members, in order
        self.buf: list[bytes] = []
        self.f = open(self.tmp, "wb") if self.gz else open_binary(self.tmp, "wb")

    def write(self, raw: bytes) -> None:
        self.buf.append(raw)

    def end_batch(self) -> None:
        if not self.buf:
            return
        data = b"\n".join(self.buf) + b"\n"
        self.buf = []
        if not self.gz:
            self.f.write(data)
            return
        import gzip

        self.pending.append(self.pool.submit(gzip.compress, data, self.level, mtime=0))
        while self.pending and (self.pending[0].done() or len(self.pending) > 4):
            self.f.write(self.pending.pop(0).result())

    def commit(self) -> None:
        self.end_batch()
        for fut in self.pending:
            self.f.write(fut.result())
        self.pending = []
        self.f.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        for fut in self.pending:
            fut.cancel()
        try:
            self.f.close()
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)


def _prefetch(it: Iterator[Any]) -> Iterator[Any]:
    """Read the next batch in a thread while the caller works on this one (the engine releases
    the GIL, so reading, decompressing and parsing overlap it). Errors surface in order."""
    import queue
    import threading

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def work() -> None:
        try:
            for x in it:
                while not stop.is_set():
                    try:
                        q.put(("item", x), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # handed to the consumer
            q.put(("error", e))

    t = threading.Thread(target=work, daemon=True, name="qwen25-decontaminate-reader")
    t.start()
    try:
        while True:
            kind, x = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise x
            yield x
    finally:
        stop.set()
        t.join(timeout=5)


def _process_jsonl(d: Any, path: str, shard: str, out: str, opts: dict[str, Any], bar: Any,
                   tally: dict[str, float]) -> dict[str, Any]:
    bad: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    counts = {"in": 0, "clean": 0, "removed": 0, "bad": 0}
    wc = _JsonlWriter(os.path.join(out, "clean", shard), opts["pool"], opts["compress_level"])
    wr = _JsonlWriter(os.path.join(out, "removed", shard), opts["pool"], opts["compress_level"])
    rec = 0
    try:
        batches = _jsonl_batches(path, opts["field"], opts["skip_bad"], opts["encoding_errors"], opts["batch_size"],
                                 bad, shard)
        for b in _prefetch(batches):
            res = d._d.check(b.items, True, opts["num_threads"]) if b.items else []
            for raw, line, ms in zip(b.raw, b.lines, res):
                if ms:
                    wr.write(raw)
                    removed.append(_removed_entry(opts["where"], shard, rec, line, ms))
                else:
                    wc.write(raw)
                rec += 1
            wc.end_batch()
            wr.end_batch()
            n_removed = sum(bool(m) for m in res)
            counts["removed"] += n_removed
            counts["clean"] += len(res) - n_removed
            tally["records"] += len(res)
            tally["removed"] += n_removed
            tally["bytes"] += b.nbytes
            _tick(bar, len(res), tally)
        wc.commit()
        wr.commit()
    except BaseException:
        wc.abort()
        wr.abort()
        raise
    counts["bad"] = len(bad)
    counts["in"] = counts["clean"] + counts["removed"] + counts["bad"]
    return {"shard": shard, "counts": counts, "removed": removed, "bad": bad}


def _process_parquet(d: Any, path: str, shard: str, out: str, opts: dict[str, Any], bar: Any,
                     tally: dict[str, float]) -> dict[str, Any]:
    from ..data.decontam import _item_of

    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise Qwen25ValueError(f"{path}: Parquet needs the 'pyarrow' package") from e
    pf = pq.ParquetFile(path)
    outs = {}
    for kind in ("clean", "removed"):
        final = os.path.join(out, kind, shard)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = os.path.join(os.path.dirname(final), ".tmp-" + os.path.basename(final))
        outs[kind] = (final, tmp, pq.ParquetWriter(tmp, pf.schema_arrow))
    removed: list[dict[str, Any]] = []
    counts = {"in": 0, "clean": 0, "removed": 0, "bad": 0}
    rec = 0
    try:
        for batch in pf.iter_batches(batch_size=opts["batch_size"]):
            rows = batch.to_pylist()
            items = []
            for j, r in enumerate(rows):
                try:
                    items.append(_item_of(r, opts["field"], ""))
                except (Qwen25ValueError, TypeError) as e:
                    raise FormatError(f"{path}: row {rec + j}: {e}", path, 0) from None
            res = d._d.check(items, True, opts["num_threads"]) if items else []
            mask = [bool(m) for m in res]
            for j, ms in enumerate(res):
                if ms:
                    removed.append(_removed_entry(opts["where"], shard, rec + j, None, ms))
            rec += len(rows)
            tbl = pa.Table.from_batches([batch])
            outs["removed"][2].write_table(tbl.filter(pa.array(mask, type=pa.bool_())))
            outs["clean"][2].write_table(tbl.filter(pa.array([not m for m in mask], type=pa.bool_())))
            counts["removed"] += sum(mask)
            counts["clean"] += len(mask) - sum(mask)
            tally["records"] += len(mask)
            tally["removed"] += sum(mask)
            tally["bytes"] += batch.nbytes
            _tick(bar, len(mask), tally)
        for final, tmp, w in outs.values():
            w.close()
            os.replace(tmp, final)
    except BaseException:
        for _, tmp, w in outs.values():
            try:
                w.close()
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        raise
    counts["in"] = counts["clean"] + counts["removed"]
    return {"shard": shard, "counts": counts, "removed": removed, "bad": []}


def _removed_entry(where: list[tuple[str, int, str]], shard: str, rec: int, line: int | None, ms: list[Any]) -> dict[str, Any]:
    wit = []
    for t, lcs, hits, spans in ms:
        name, local, tid = where[t]
        w: dict[str, Any] = {"test_set": name, "test_id": tid, "test_index": local, "lcs": lcs, "ngram_hits": hits}
        if spans:
            w["spans"] = [list(s) for s in spans]
        wit.append(w)
    e: dict[str, Any] = {"shard": shard, "record": rec}
    if line is not None:
        e["line"] = line
    e["witnesses"] = wit
    return e


def _tick(bar: Any, n: int, tally: dict[str, float]) -> None:
    if bar is None:
        return
    bar.update(n)
    dt = max(time.perf_counter() - tally["t0"], 1e-9)
    bar.set_postfix({"MB/s": f"{tally['bytes'] / dt / 1e6:.1f}", "removed": tally["removed"]}, refresh=False)


def _atomic_json(path: str, obj: Any) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), ".tmp-" + os.path.basename(path))
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


# -- the job -------------------------------------------------------------------------------------
def run_job(
    *, train: list[str], tests: list[str], out: str, report_path: str | None = None, field: str = "text",
    test_field: str = "text", mode: str = "qwen", ngram: int = 13, lcs_min: int = 13, lcs_ratio: float = 0.6,
    window: int | None = None, skip_bad: bool = False, encoding_errors: str = "strict", batch_size: int = 2048,
    num_threads: int | None = None, progress: bool = True, compress_level: int = 6,
) -> dict[str, Any]:
    from ..data.decontam import Decontaminator

    if batch_size < 1:
        raise Qwen25ValueError("--batch-size must be >= 1")
    files = expand_train(train)
    names = shard_names(files)
    items, where = load_tests(tests, test_field)
    d = Decontaminator(items, mode=mode, ngram=ngram, lcs_min=lcs_min, lcs_ratio=lcs_ratio, window=window)
    params = {"mode": mode, "ngram": ngram, "lcs_min": lcs_min, "lcs_ratio": lcs_ratio, "window": window,
              "field": field, "tests": list(tests), "test_items": len(items)}
    from concurrent.futures import ThreadPoolExecutor

    from .. import _native

    if not 0 <= compress_level <= 9:
        raise Qwen25ValueError(f"compress_level must be 0-9, got {compress_level}")
    pool = ThreadPoolExecutor(max_workers=_native.effective_threads(num_threads), thread_name_prefix="qwen25-gzip")
    opts = {"field": field, "skip_bad": skip_bad, "encoding_errors": encoding_errors, "batch_size": batch_size,
            "num_threads": num_threads, "where": where, "pool": pool, "compress_level": compress_level}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="rec", unit_scale=True, desc="decontaminate", file=sys.stderr)
    tally: dict[str, float] = {"records": 0, "removed": 0, "bytes": 0, "t0": time.perf_counter()}
    shards = []
    try:
        for path, shard in zip(files, names):
            state = os.path.join(out, STATE_DIR, shard + ".json")
            done = (os.path.exists(state) and os.path.exists(os.path.join(out, "clean", shard))
                    and os.path.exists(os.path.join(out, "removed", shard)))
            if done:
                with open(state, encoding="utf-8") as f:
                    st = json.load(f)
                if st.get("params") != params or st.get("version") != STATE_VERSION:
                    raise Qwen25ValueError(
                        f"{out}: shard {shard} was done with other settings; use a fresh --out folder"
                    )
                st["result"]["resumed"] = True
                shards.append(st["result"])
                continue
            proc = _process_parquet if path.lower().endswith(".parquet") else _process_jsonl
            res = proc(d, path, shard, out, opts, bar, tally)
            _atomic_json(state, {"version": STATE_VERSION, "params": params, "result": res})
            res["resumed"] = False
            shards.append(res)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    report = build_report(params, shards, where)
    _atomic_json(report_path or os.path.join(out, "report.json"), report)
    report["report_path"] = report_path or os.path.join(out, "report.json")
    return report


def build_report(params: dict[str, Any], shards: list[dict[str, Any]], where: list[tuple[str, int, str]]
                 ) -> dict[str, Any]:
    counts = {"in": 0, "clean": 0, "removed": 0, "bad": 0}
    removed: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    test_sets: dict[str, dict[str, Any]] = {}
    for name, _, _ in where:
        test_sets.setdefault(name, {"items": 0, "items_hit": 0, "hits": {}})["items"] += 1
    for s in shards:
        for k in counts:
            counts[k] += s["counts"][k]
        removed.extend(s["removed"])
        bad.extend(s["bad"])
        for r in s["removed"]:
            for w in r["witnesses"]:
                hit = {"shard": r["shard"], "record": r["record"]}
                if "line" in r:
                    hit["line"] = r["line"]
                test_sets[w["test_set"]]["hits"].setdefault(w["test_id"], []).append(hit)
    for ts in test_sets.values():
        ts["items_hit"] = len(ts["hits"])
    assert counts["in"] == counts["clean"] + counts["removed"] + counts["bad"]
    return {
        "params": params,
        "counts": counts,
        "shards": [{"shard": s["shard"], **s["counts"], "resumed": s.get("resumed", False)} for s in shards],
        "test_sets": test_sets,
        "removed": removed,
        "bad": bad,
    }


def summary(report: dict[str, Any]) -> str:
    c = report["counts"]
    p = report["params"]
    lines = [
        f"decontaminate ({p['mode']}, ngram={p['ngram']}, lcs_min={p['lcs_min']}, lcs_ratio={p['lcs_ratio']}"
        f"{', window=' + str(p['window']) if p['window'] else ''}): {c['in']} records in {len(report['shards'])} "
        f"shard(s): {c['clean']} clean, {c['removed']} removed, {c['bad']} bad",
    ]
    for name, ts in report["test_sets"].items():
        top = sorted(ts["hits"].items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]
        tops = ", ".join(f"{k} ({len(v)})" for k, v in top)
        lines.append(f"  {name}: {ts['items_hit']} of {ts['items']} test items hit training records"
                     + (f"; most: {tops}" if tops else ""))
    if "report_path" in report:
        lines.append(f"  report: {report['report_path']}")
    return "\n".join(lines)
