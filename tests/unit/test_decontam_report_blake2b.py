"""The decontaminate report keeps each input's ``blake2b`` (BLAKE2b-128 of the file's bytes as
stored), beside the resume ``digest`` (XXH3-128): checked against hashlib and the xxhash package
for plain, .gz, .zst and Parquet inputs, first run and resumed run; the reader computes it only
when asked."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from qwen25.cli import main
from qwen25.data.records import read_batches

ITEMS = ["alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"]


def _corpus(n: int) -> bytes:
    lines = [json.dumps({"id": i, "text": f"record {i} " + ("word " * (i % 17)) + (ITEMS[0] if i % 5 == 0 else "")})
             for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def _b2(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _run(tmp: Path, capsys: pytest.CaptureFixture[str], train: str) -> dict:
    tests = tmp / "tests.jsonl"
    tests.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(ITEMS)))
    rc = main(["decontaminate", "--train", train, "--test", str(tests), "--out", str(tmp / "out"),
               "--no-progress", "--ngram", "8", "--lcs-min", "8"])
    err = capsys.readouterr().err
    assert rc == 0, err
    return json.loads((tmp / "out" / "report.json").read_text())


def test_report_inputs_have_blake2b_and_digest(tmp_path, capsys):
    import xxhash

    zstd = pytest.importorskip("zstandard")
    data = _corpus(3000)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    stored = {
        "a.jsonl": data,
        "b.jsonl.gz": gzip.compress(data),
        "c.jsonl.zst": zstd.ZstdCompressor().compress(data),
        "d.jsonl": b"",
    }
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [json.loads(x) for x in data.splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), corpus / "e.parquet")
    stored["e.parquet"] = (corpus / "e.parquet").read_bytes()
    for name, b in stored.items():
        if name != "e.parquet":
            (corpus / name).write_bytes(b)
    for resumed in (False, True):
        rep = _run(tmp_path, capsys, str(corpus / "*"))
        assert rep["counts"]["removed"] == 4 * 600  # the engine ran on every input
        got = {Path(x["path"]).name: x for x in rep["run"]["inputs"]}
        assert sorted(got) == sorted(stored)
        for name, b in stored.items():
            x = got[name]
            assert x["resumed"] is resumed
            assert x["blake2b"] == _b2(b), name
            assert (x["digest"], x["digest_algorithm"]) == (xxhash.xxh3_128(b).hexdigest(), "xxh3-128")
            assert x["size"] == len(b)


def test_reader_blake2b_only_when_asked(tmp_path):
    data = _corpus(5000)
    p = tmp_path / "x.jsonl.gz"
    p.write_bytes(gzip.compress(data))
    for hash_, b2 in ((False, False), (True, False), (False, True), (True, True)):
        r = read_batches(p, blake2b=b2, hash=hash_, batch_size=64)
        n = sum(len(b) for b in r)
        assert n == 5000
        assert r.blake2b == (_b2(p.read_bytes()) if b2 else None)
        assert (r.digest is not None) is hash_


def test_reader_blake2b_covers_bytes_after_damage(tmp_path):
    # a truncated .gz read with skip_bad: the hash still covers every byte of the file as stored
    full = gzip.compress(_corpus(20000))
    cut = full[: len(full) // 2]
    p = tmp_path / "x.jsonl.gz"
    p.write_bytes(cut)
    r = read_batches(p, skip_bad=True, blake2b=True)
    batches = list(r)
    assert batches[-1].damage is not None
    assert r.blake2b == _b2(cut)
