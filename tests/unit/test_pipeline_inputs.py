"""`qwen25 data run` reads .jsonl.gz, .jsonl.zst and Parquet sources as it reads plain JSONL:
the same kept and removed records (same line numbers), the same packed bytes; a bad line names
the compressed file and its line; a damaged file names the file."""

from __future__ import annotations

import gzip
import json
import re
import shutil

import pytest

from qwen25.data.pipeline import run_pipeline
from qwen25.errors import FormatError
from tests.unit.test_pipeline import CONFIG, read_jsonl, write_corpus

zstandard = pytest.importorskip("zstandard")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")


def outputs(d):
    out = d / "out"
    kept = [(r["source"], r["id"], r["line"], r["doc"], r["repeat"]) for r in read_jsonl(out / "kept.jsonl")]
    removed = [(r["source"], r.get("id"), r["line"], r["stage"], r["reason"].split(" ")[0]) for r in read_jsonl(out / "removed.jsonl")]
    packed = {p.name: p.read_bytes() for p in sorted((out / "packed").iterdir()) if p.suffix in (".bin", ".idx")}
    return kept, removed, packed


def compress(d):
    a = d / "web" / "a.jsonl"
    (d / "web" / "a.jsonl.gz").write_bytes(gzip.compress(a.read_bytes()))
    b = d / "web" / "b.jsonl"
    (d / "web" / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b.read_bytes()))
    rows = read_jsonl(d / "code" / "c.jsonl")
    pq.write_table(pa.Table.from_pylist(rows), d / "code" / "c.parquet")
    for p in (a, b, d / "code" / "c.jsonl"):
        p.unlink()


def config(d):
    cfg = CONFIG.format(max_repeat=2.0).replace('"web/*.jsonl"', '"web/*.jsonl*"').replace('"code/*.jsonl"', '"code/*"')
    (d / "pipeline.toml").write_text(cfg)
    return d / "pipeline.toml"


def test_compressed_and_parquet_sources_read_like_plain_jsonl(tmp_path):
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    plain.mkdir()
    write_corpus(plain)
    shutil.copytree(plain, packed)
    compress(packed)
    run_pipeline(config(plain), progress=False)
    run_pipeline(config(packed), progress=False)
    a, b = outputs(plain), outputs(packed)
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    files = {r["file"] for r in read_jsonl(packed / "out" / "kept.jsonl")}
    assert files == {"web/a.jsonl.gz", "web/b.jsonl.zst", "code/c.parquet"}  # provenance names the real files
    assert not (packed / "out" / "plain").exists()  # the decompressed copies are gone


def test_bad_line_and_damaged_file_name_the_compressed_file(tmp_path):
    write_corpus(tmp_path)
    compress(tmp_path)
    gz = tmp_path / "web" / "a.jsonl.gz"
    data = gzip.decompress(gz.read_bytes()) + b"{not json\n"
    gz.write_bytes(gzip.compress(data))
    with pytest.raises(FormatError, match=r"a\.jsonl\.gz:21"):
        run_pipeline(config(tmp_path), progress=False)
    gz.write_bytes(gzip.compress(data)[:-30])  # truncated
    shutil.rmtree(tmp_path / "out")
    with pytest.raises(FormatError, match=r"a\.jsonl\.gz"):
        run_pipeline(config(tmp_path), progress=False)


def test_the_first_bad_line_in_input_order_is_the_one_named(tmp_path):
    """A bad line in one file and a damaged file after it: the error names the bad line (met first
    in input order), though the driver may already be reading the next batch; with the bad line
    skipped, the damage is named."""
    write_corpus(tmp_path)
    compress(tmp_path)
    gz = tmp_path / "web" / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(gzip.decompress(gz.read_bytes()) + b"{not json\n"))  # a.jsonl.gz:21
    zst = tmp_path / "web" / "b.jsonl.zst"  # the file read after it
    zst.write_bytes(zst.read_bytes()[:-20])  # truncated
    cfg = config(tmp_path)
    for batch in (1, 4, 1000):
        cfg.write_text(re.sub(r"batch_size = \d+", f"batch_size = {batch}", cfg.read_text()))
        with pytest.raises(FormatError, match=r"a\.jsonl\.gz:21"):
            run_pipeline(cfg, progress=False)
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
    cfg.write_text(cfg.read_text().replace("[pipeline]", '[pipeline]\non_bad_line = "skip"', 1))
    with pytest.raises(FormatError, match=r"b\.jsonl\.zst"):
        run_pipeline(cfg, progress=False)
