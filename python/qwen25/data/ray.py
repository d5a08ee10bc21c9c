"""Decontamination on Ray Data: the same engine as :class:`qwen25.data.Decontaminator`, run over
Arrow batches by a pool of actors that each build the test index once.

    import ray, qwen25.data.ray as qray
    ds = ray.data.read_json("corpus/*.jsonl.gz")
    clean, removed = qray.split(ds, "humaneval", field="text")

The Rust core knows nothing of Ray; this module only moves batches.
"""

from __future__ import annotations

from typing import Any

from .._extras import require

require("ray", "qwen25.data.ray")

from .decontam import Decontaminator, items_of_test_set
from .distributed import actor_pool

INDEX_COL = "decontam_test_index"
LCS_COL = "decontam_lcs"


class _Worker:
    """A Ray actor: builds the index once, then annotates each Arrow batch."""

    def __init__(self, items: list[Any], field: str, kwargs: dict[str, Any]) -> None:
        self.d = Decontaminator(items, **kwargs)
        self.field = field

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        col = batch.column(self.field).to_pylist() if self.field in batch.column_names else None
        if col is None:
            if "messages" not in batch.column_names:
                raise ValueError(f"batch has no column {self.field!r} (nor 'messages'); columns: {batch.column_names}")
            rows = [{"messages": m} for m in batch.column("messages").to_pylist()]
        else:
            rows = [{self.field: v} for v in col]
        res = self.d.check(rows, field=self.field)
        idx = [m.test_index if m else -1 for m in res]
        lcs = [m.lcs if m and m.lcs is not None else -1 for m in res]
        batch = batch.append_column(INDEX_COL, pa.array(idx, pa.int64()))
        return batch.append_column(LCS_COL, pa.array(lcs, pa.int64()))


def annotate(
    ds: Any,
    test_set: Any,
    *,
    field: str = "text",
    mode: str = "qwen",
    ngram: int = 13,
    lcs_min: int = 13,
    lcs_ratio: float = 0.6,
    window: int | str | None = "auto",
    batch_size: int = 1024,
    concurrency: int = 1,
) -> Any:
    """``ds`` with two int64 columns added: ``decontam_test_index`` (the witness with the lowest
    test index, -1 when clean) and ``decontam_lcs`` (its LCS; -1 when clean or in ngram mode)."""
    items, _ = items_of_test_set(test_set, "text")
    kwargs: dict[str, Any] = {"mode": mode, "ngram": ngram, "lcs_min": lcs_min, "lcs_ratio": lcs_ratio, "window": window}
    Decontaminator(items, **kwargs)  # check the arguments and the test set here, not in a worker
    return ds.map_batches(
        _Worker,
        fn_constructor_args=(items, field, kwargs),
        batch_format="pyarrow",
        batch_size=batch_size,
        **actor_pool(concurrency),
    )


def split(ds: Any, test_set: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``(clean, removed)`` datasets (annotated once, then filtered; ``removed`` keeps the
    annotation columns)."""
    ann = annotate(ds, test_set, **kwargs).materialize()
    try:  # newer Ray: vectorised predicate expressions; older Ray: a row function
        from ray.data.expressions import col

        clean = ann.filter(expr=col(INDEX_COL) < 0)
        removed = ann.filter(expr=col(INDEX_COL) >= 0)
    except (ImportError, TypeError):
        clean = ann.filter(lambda r: r[INDEX_COL] < 0)
        removed = ann.filter(lambda r: r[INDEX_COL] >= 0)
    clean = clean.drop_columns([INDEX_COL, LCS_COL])
    return clean, removed
