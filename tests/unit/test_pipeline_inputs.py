"""`qwen25 data run` reads .jsonl.gz, .jsonl.zst and Parquet sources as it reads plain JSONL:
the same kept and removed records (same line numbers), the same packed bytes; a bad line names
the compressed file and its line; a damaged file names the file."""

from __future__ import annotations

import gzip
import json
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
