"""The pipeline's stages on Ray Data, over Arrow batches; the Rust core stays engine-free.

- Per-document work runs in Ray tasks (``map_batches`` with ``batch_format="pyarrow"``): quality
  filters (:func:`ray_filter`), MinHash signatures and exact hashes.
- The global steps run on the driver, streaming the batches in input order
  (``preserve_order``): exact dedup from the hashes, and MinHash-LSH clustering from the
  signatures with the same spilling clusterer as the local run.

Signatures and hashes are pure functions of each text and the clustering sees them in input
order, so the results equal the local run's whatever the block layout or the worker count.

The whole ``qwen25 data run`` goes through :func:`ray_map_ordered` with ``engine = "ray"``: it
runs the pipeline's per-batch workers (:class:`qwen25.data.pipeline.ScanWorker`,
:class:`~qwen25.data.pipeline.NearWorker`) as Ray Data actors over Arrow batches and hands
their outputs back to the driver in task order.

>>> import ray.data
>>> from qwen25.data.distributed import ray_filter, ray_dedup
>>> ds = ray.data.from_items([{"text": t} for t in texts])          # doctest: +SKIP
>>> kept = ray_filter(ds).filter(lambda r: r["keep"])               # doctest: +SKIP
>>> res = ray_dedup(kept)                                           # doctest: +SKIP
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .dedup import MinHashDeduplicator
    from .filters import FilterConfig

__all__ = ["ray_dedup", "ray_filter", "ray_map_ordered"]


def _filter_batch(batch: Any, *, config_json: str, text_column: str) -> Any:
    import json

    import pyarrow as pa

    from .. import _native

    texts = batch.column(text_column).to_pylist()
    rows = _native.QualityFilters(config_json).apply(texts, 1)
    new_text = [t if r[4] is None else r[4] for t, r in zip(texts, rows)]
    i = batch.schema.get_field_index(text_column)
    out = batch.set_column(i, text_column, pa.array(new_text, type=pa.string()))
    out = out.append_column("keep", pa.array([r[0] for r in rows], type=pa.bool_()))
    out = out.append_column("filter", pa.array([r[1] for r in rows], type=pa.string()))
    out = out.append_column("reason", pa.array([r[2] for r in rows], type=pa.string()))
    return out.append_column("filter_stats", pa.array([json.dumps(dict(r[3])) for r in rows], type=pa.string()))


def ray_filter(ds: Any, config: FilterConfig | None = None, *, text_column: str = "text") -> Any:
    """Add ``keep``, ``filter``, ``reason`` and ``filter_stats`` (JSON) columns; ``text_column``
    becomes the text after C4's line removal. Row order and count are unchanged."""
    from .filters import FilterConfig

    cfg = (config or FilterConfig()).to_json()
    return ds.map_batches(
        _filter_batch, batch_format="pyarrow", fn_kwargs={"config_json": cfg, "text_column": text_column}
    )


def _hash_batch(batch: Any, *, text_column: str, exact: dict[str, bool] | None, minhash: dict[str, Any] | None) -> Any:
    import numpy as np
    import pyarrow as pa

    from .. import _native

    texts = batch.column(text_column).to_pylist()
    cols: dict[str, Any] = {}
    if exact is not None:
        buf = _native.exact_hashes(texts, exact["lowercase"], exact["strip_punct"], exact["collapse_ws"], 1)
        cols["_exact_hash"] = pa.array([buf[16 * k : 16 * k + 16] for k in range(len(texts))], type=pa.binary(16))
    if minhash is not None:
        h = _native.MinHasher(**minhash)
        sig = np.frombuffer(h.signatures(texts, 1), dtype="<u4")
        cols["_minhash"] = pa.FixedSizeListArray.from_arrays(pa.array(sig, type=pa.uint32()), minhash["num_perm"])
    return pa.table(cols) if cols else pa.table({"_n": pa.array(np.zeros(len(texts), dtype=np.int8))})


@contextmanager
def _ordered(progress_bars: bool | None = None) -> Any:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    old = ctx.execution_options.preserve_order
    old_bars = ctx.enable_progress_bars
    ctx.execution_options.preserve_order = True
    if progress_bars is not None:
        ctx.enable_progress_bars = progress_bars
    try:
        yield
    finally:
        ctx.execution_options.preserve_order = old
        ctx.enable_progress_bars = old_bars


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    return {"int64": pa.int64(), "string": pa.string(), "binary": pa.binary()}[name]


class _ArrowWorker:
    """A Ray Data actor around a pipeline worker: Arrow batch -> columns -> worker -> Arrow,
    typed by the worker's ``SCHEMA``."""

    def __init__(self, worker: type, spec: dict[str, Any]) -> None:
        self.inner = worker(spec)
        self.schema: dict[str, str] = worker.SCHEMA  # type: ignore[attr-defined]

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        out = self.inner(batch.to_pydict())
        return pa.table({k: pa.array(out[k], type=_arrow_type(t)) for k, t in self.schema.items()})


def ray_map_ordered(
    worker: type,
    spec: dict[str, Any],
    tasks: list[dict[str, Any]],
    *,
    concurrency: int | None = None,
    address: str | None = None,
) -> Iterator[dict[str, list[Any]]]:
    """Run ``worker(spec)`` on Ray Data actors, one task (a row of ``tasks``) per call, and yield
    each output as columns (``{name: [values]}``) in task order (``preserve_order``).

    Ray is started (``ray.init(address=address)``) unless it already is; ``concurrency`` actors
    (default: the cluster's CPUs, at most one per task) each build the worker once."""
    import ray
    import ray.data

    if not tasks:
        return
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True)
    if concurrency is None:
        concurrency = max(1, int(ray.cluster_resources().get("CPU", 1)))
    concurrency = max(1, min(concurrency, len(tasks)))
    with _ordered(progress_bars=False):
        ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
        out = ds.map_batches(
            _ArrowWorker, fn_constructor_args=(worker, spec), batch_size=1, batch_format="pyarrow",
            **actor_pool(concurrency),
        )  # fmt: skip
        b: Any
        for b in out.iter_batches(batch_format="pyarrow", batch_size=None):
            yield b.to_pydict()


def actor_pool(n: int) -> dict[str, Any]:
    """``map_batches`` arguments for a pool of ``n`` actors: ``compute=ActorPoolStrategy`` (Ray
    >= 2.51 deprecates ``concurrency=`` for this), or ``concurrency=`` on Ray without it."""
    import ray.data

    strategy = getattr(ray.data, "ActorPoolStrategy", None)
    if strategy is None:  # pragma: no cover - depends on the Ray version
        return {"concurrency": n}
    return {"compute": strategy(size=n)}


def ray_dedup(
    ds: Any,
    *,
    text_column: str = "text",
    exact: bool = True,
    exact_lowercase: bool = False,
    exact_strip_punct: bool = False,
    exact_collapse_ws: bool = False,
    minhash: MinHashDeduplicator | None | bool = True,
    mem_budget: int = 1 << 30,
    spill_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 4096,
) -> dict[str, np.ndarray]:
    """Exact and MinHash dedup of a Ray Dataset; returns numpy arrays in input order:
    ``exact_cluster`` / ``minhash_cluster`` (lowest input index of each document's cluster) and
    ``keep`` (True for documents that are their clusters' lowest index under both).

    Exact duplicates have equal signatures, so MinHash over all documents keeps the same set as
    the local pipeline's exact-then-MinHash order."""
    import numpy as np

    from .dedup import ExactDeduplicator, MinHashDeduplicator

    mh: MinHashDeduplicator | None
    if minhash is True:
        mh = MinHashDeduplicator()
    elif minhash is False or minhash is None:
        mh = None
    else:
        mh = minhash
    ex_cfg = {"lowercase": exact_lowercase, "strip_punct": exact_strip_punct, "collapse_ws": exact_collapse_ws}
    mh_cfg = None
    if mh is not None:
        mh_cfg = {
            "num_perm": mh.num_perm, "bands": mh.bands, "rows": mh.rows, "ngram": mh.ngram, "seed": mh.seed,
            "lowercase": mh.lowercase, "strip_punct": mh.strip_punct, "collapse_ws": mh.collapse_ws,
        }  # fmt: skip
    ex = ExactDeduplicator(**ex_cfg) if exact else None
    stream = mh.stream(mem_budget=mem_budget, spill_dir=spill_dir) if mh is not None else None
    ex_ids: list[np.ndarray] = []
    n = 0
    with _ordered():
        hashed = ds.map_batches(
            _hash_batch, batch_format="pyarrow",
            fn_kwargs={"text_column": text_column, "exact": ex_cfg if exact else None, "minhash": mh_cfg},
        )  # fmt: skip
        for b in hashed.iter_batches(batch_format="pyarrow", batch_size=batch_size):
            n += b.num_rows
            if ex is not None:
                col = b.column("_exact_hash").combine_chunks()
                ex_ids.append(ex.add_hashes(b"".join(col.to_pylist())))
            if stream is not None and mh is not None:
                col = b.column("_minhash").combine_chunks()
                flat = np.asarray(col.flatten(), dtype=np.uint32)
                stream.add_signatures(flat.reshape(-1, mh.num_perm))
    idx = np.arange(n, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    keep = np.ones(n, dtype=bool)
    if ex is not None:
        out["exact_cluster"] = np.concatenate(ex_ids) if ex_ids else np.zeros(0, np.int64)
        keep &= out["exact_cluster"] == idx
    if stream is not None:
        out["minhash_cluster"] = stream.finish()
        keep &= out["minhash_cluster"] == idx
    out["keep"] = keep
    return out
