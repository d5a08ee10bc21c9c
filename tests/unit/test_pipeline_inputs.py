"""`qwen25 data run` reads .jsonl.gz, .jsonl.zst and Parquet sources as it reads plain JSONL:
the same kept and removed records (same line numbers), the same packed bytes; a bad line names
the compressed file and its line; a damaged file names the file (with on_bad_line = "skip", the
records before the damage go on and the damage is listed)."""

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
    rep = run_pipeline(cfg, progress=False)
    # with the bad line skipped, the damaged file's records before the damage go on, and the
    # damage is listed (stage read) and warned about. The reference: the whole lines zstandard
    # inflates from the damaged file (the corpus has no blank lines)
    n = zstandard.ZstdDecompressor().decompressobj().decompress(zst.read_bytes()).count(b"\n")  # 0 here: one block
    out = tmp_path / "out"
    gone = read_jsonl(out / "removed.jsonl")
    assert [(r["file"], r["line"], r["reason"].split(":")[0]) for r in gone if r["stage"] == "read"] == [
        ("web/a.jsonl.gz", 21, "bad_line"), ("web/b.jsonl.zst", n + 1, "damaged_file")]
    why = next(r["reason"] for r in gone if r["file"] == "web/b.jsonl.zst" and r["stage"] == "read")
    assert f"truncated/corrupt compressed data after {n} records" in why
    b_lines = {r["line"] for r in read_jsonl(out / "kept.jsonl") if r["file"] == "web/b.jsonl.zst"}
    b_lines |= {r["line"] for r in gone if r["file"] == "web/b.jsonl.zst" and r["stage"] != "read"}
    assert b_lines == set(range(1, n + 1))  # every record before the damage: kept or removed
    assert rep["damaged"] == [{"file": "web/b.jsonl.zst", "line": n + 1, "reason": why.removeprefix("damaged_file: ")}]
    assert any(w.startswith(f"web/b.jsonl.zst:{n + 1}: truncated") for w in rep["warnings"])


def test_a_damaged_file_with_skip_keeps_the_records_before_the_damage(tmp_path):
    """on_bad_line = "skip": a gzip file cut in half gives the records zlib can inflate whole, the
    damage is one removed entry (stage read, reason damaged_file) and a warning; without skip the
    run stops naming the file and the line where the damage starts."""
    import random
    import zlib

    from tests.unit.test_pipeline import good_doc

    write_corpus(tmp_path)
    rng = random.Random(1)
    lines = [(json.dumps({"id": f"g{i}", "text": good_doc(rng, f"g{i}")}) + "\n").encode() for i in range(1500)]
    full = gzip.compress(b"".join(lines))
    gz = tmp_path / "web" / "g.jsonl.gz"
    gz.write_bytes(full[: len(full) // 2])
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the reference: whole lines zlib inflates
    prefix = d.decompress(gz.read_bytes())
    assert not d.eof
    n = prefix.count(b"\n")
    assert 0 < n < len(lines)
    cfg = config(tmp_path)
    with pytest.raises(FormatError, match=rf"g\.jsonl\.gz:{n + 1}: truncated/corrupt compressed data after {n} records"):
        run_pipeline(cfg, progress=False)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    cfg.write_text(cfg.read_text().replace("[pipeline]", '[pipeline]\non_bad_line = "skip"', 1))
    rep = run_pipeline(cfg, progress=False)
    out = tmp_path / "out"
    gone = read_jsonl(out / "removed.jsonl")
    dmg = [r for r in gone if r["file"] == "web/g.jsonl.gz" and r["stage"] == "read"]
    assert [(r["line"], r["reason"].split(":")[0]) for r in dmg] == [(n + 1, "damaged_file")]
    g_lines = {r["line"] for r in read_jsonl(out / "kept.jsonl") if r["file"] == "web/g.jsonl.gz"}
    g_lines |= {r["line"] for r in gone if r["file"] == "web/g.jsonl.gz" and r["stage"] != "read"}
    assert g_lines == set(range(1, n + 1))  # every record before the damage: kept or removed
    assert rep["removed_by_stage"]["read"] == {"damaged_file": 1}
    assert rep["damaged"] == [{"file": "web/g.jsonl.gz", "line": n + 1, "reason": dmg[0]["reason"].removeprefix("damaged_file: ")}]
    assert any(w.startswith(f"web/g.jsonl.gz:{n + 1}: truncated/corrupt") for w in rep["warnings"])
