"""Sweep tables on disk: CSV (a header row naming the columns) or JSONL (one object per line).

Required columns: ``n_params``, ``n_tokens``, ``lr``, ``batch_tokens``, ``loss``; any other column
is kept (``n_total_params`` marks MoE runs). A diverged run's loss is written ``nan`` (CSV) or
``null`` (JSONL) and read back as NaN. :func:`read_table` checks every row and names the file and
line of a bad one; each row it returns carries ``"_where": "file:line"`` so that :func:`fit` names
it too. Files are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from .fit import REQUIRED_KEYS, WHERE_KEY, validate_rows

__all__ = ["read_table", "write_table"]


def _format(path: str) -> str:
    low = path.lower()
    if low.endswith(".csv"):
        return "csv"
    if low.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise Qwen25ValueError(f"{path}: a sweep table is .csv or .jsonl")


def _parse_number(text: str) -> int | float | str:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return text


def read_table(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a sweep table (``.csv`` or ``.jsonl``) into row dicts, checking every row."""
    p = os.fspath(path)
    kind = _format(p)
    if not os.path.exists(p):
        raise Qwen25FileNotFoundError(2, "No such file", p)
    rows: list[dict[str, Any]] = []
    if kind != "csv":
        from ..data.records import iter_objects

        for line, obj, _ in iter_objects(p):
            if "loss" in obj and obj["loss"] is None:
                obj["loss"] = math.nan
            obj[WHERE_KEY] = f"{p}:{line}"
            rows.append(obj)
    else:
        with open(p, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise FormatError(f"{p}: empty file (a header row naming the columns was expected)", p, 1)
            header = [h.strip() for h in header]
            missing = [k for k in REQUIRED_KEYS if k not in header]
            if missing:
                raise FormatError(f"{p}:1: the header lacks the column(s) {', '.join(missing)}", p, 1)
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise FormatError(f"{p}:{line}: {len(row)} fields, the header has {len(header)}", p, line)
                rec: dict[str, Any] = {}
                for k, v in zip(header, row):
                    val = _parse_number(v)
                    if k in REQUIRED_KEYS and isinstance(val, str):
                        raise FormatError(f"{p}:{line}: column {k} is not a number: {v!r}", p, line)
                    if k == "n_total_params" and isinstance(val, str) and val.strip() == "":
                        val = None  # type: ignore[assignment]
                    rec[k] = val
                rec[WHERE_KEY] = f"{p}:{line}"
                rows.append(rec)
    if not rows:
        raise FormatError(f"{p}: no rows", p, 0)
    try:
        validate_rows(rows)
    except Qwen25ValueError as e:
        where = str(e).split(": ", 1)[0]
        line = int(where.rsplit(":", 1)[1]) if where.startswith(p + ":") and where.rsplit(":", 1)[1].isdigit() else 0
        raise FormatError(str(e), p, line) from None
    return rows


def _columns(rows: list[Mapping[str, Any]]) -> list[str]:
    cols = list(REQUIRED_KEYS)
    for r in rows:
        for k in r:
            if k not in cols and not str(k).startswith("_"):
                cols.append(str(k))
    return cols


def write_table(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> str:
    """Write rows as a sweep table (``.csv`` or ``.jsonl``, by the extension) atomically; keys that
    start with ``_`` are left out. Returns the path."""
    p = os.fspath(path)
    kind = _format(p)
    rows = list(rows)
    validate_rows(rows)
    cols = _columns(rows)
    buf = io.StringIO()
    if kind == "csv":
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in cols])
    else:
        for r in rows:
            rec = {k: r[k] for k in cols if k in r}
            if isinstance(rec.get("loss"), float) and not math.isfinite(rec["loss"]):
                rec["loss"] = None
            buf.write(json.dumps(rec, allow_nan=False) + "\n")
    from ..data.records import write_bytes

    os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    write_bytes(p, buf.getvalue().encode())
    return p
