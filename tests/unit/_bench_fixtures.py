"""Small benchmark fixtures written the way the real datasets ship: Parquet through pyarrow,
JSONL (optionally gzipped), CSV through the csv module, and a `datasets` cache entry in the
layout `datasets` itself writes (an Arrow stream plus its dataset_info.json)."""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path
from typing import Any


def parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def csv_file(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def datasets_cache_entry(cache_dir: Path, repo_id: str, config: str, split: str, rows: list[dict[str, Any]]) -> Path:
    """What `load_dataset(repo_id, config)` leaves in HF_DATASETS_CACHE: the `datasets` Cache
    builder finds `<ns>___<name>/<config>/<version>/<hash>/` and reads `<name>-<split>.arrow`."""
    import datasets
    import pyarrow as pa

    ns, name = repo_id.split("/")
    d = cache_dir / f"{ns}___{name}" / config / "0.0.0" / "0123456789abcdef"
    d.mkdir(parents=True, exist_ok=True)
    ds = datasets.Dataset.from_list(rows)
    table = ds.data.table
    with pa.OSFile(os.fspath(d / f"{name}-{split}.arrow"), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table)
    info = datasets.DatasetInfo(
        features=ds.features, config_name=config, dataset_name=name,
        splits=datasets.SplitDict({split: datasets.SplitInfo(split, num_examples=len(rows), dataset_name=name)}),
    )
    info.write_to_directory(os.fspath(d))
    return d
