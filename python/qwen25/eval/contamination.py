"""Scores next to contamination: which evaluated items the training data hit, and the score on
the clean rest.

The input is the report of a decontamination run (``qwen25 decontaminate``, ``OUT/report.json``):
per test set, ``test_sets[name]["hits"]`` maps each test item id that some training record hit to
those records. A task is matched to its test set by the benchmark name (``humaneval``), else by
the base name of its data file (the set name the job gives a test file), else by the task name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError

__all__ = ["read_report", "match_set", "split_scores"]


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decontamination report at ``path``, checked for the fields this module reads."""
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as f:
            rep = json.load(f)
    except FileNotFoundError:
        raise Qwen25FileNotFoundError(2, "no such decontamination report", p) from None
    except json.JSONDecodeError as e:
        raise FormatError(f"{p}:{e.lineno}: not a JSON report: {e.msg}", p, e.lineno) from None
    sets = rep.get("test_sets") if isinstance(rep, dict) else None
    if not isinstance(sets, dict):
        raise FormatError(f"{p}: no 'test_sets' object (is this a qwen25 decontaminate report.json?)", p)
    for name, ts in sets.items():
        if not isinstance(ts, dict) or not isinstance(ts.get("hits"), dict):
            raise FormatError(f"{p}: test_sets[{name!r}] has no 'hits' object", p)
    rep["_path"] = p
    return rep


def match_set(report: dict[str, Any], task: str, benchmark: str | None,
              data_path: str | None) -> tuple[str, str] | None:
    """``(test set name, item key)`` of the report's set that ``task`` was scored on: the key is
    ``"id"``, or ``"file_id"`` when the set is the data file itself. None when none matches."""
    sets = report["test_sets"]
    if benchmark and benchmark in sets:
        return benchmark, "id"
    if data_path:
        base = os.path.basename(os.fspath(data_path).rstrip("/"))
        if base in sets:
            return base, "file_id"
    if task in sets:
        return task, "id"
    return None


def split_scores(ids: Sequence[str], scores: Sequence[float], hit_ids: Sequence[str] | set[str]) -> dict[str, Any]:
    """The mean score over all items, over the items hit, and over the clean rest; plus the hit
    ids that are not among the evaluated items (a subset was evaluated, or another version)."""
    if len(ids) != len(scores):
        raise ValueError(f"{len(ids)} ids but {len(scores)} scores")
    hits = set(hit_ids)
    hit = [s for i, s in zip(ids, scores) if i in hits]
    clean = [s for i, s in zip(ids, scores) if i not in hits]
    evaluated = set(ids)

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    return {"n": len(ids), "score": mean(list(scores)), "n_hit": len(hit), "hit_score": mean(hit),
            "n_clean": len(clean), "clean_score": mean(clean),
            "hit_ids": [i for i in ids if i in hits],
            "hits_not_evaluated": sorted(h for h in hits if h not in evaluated)}
