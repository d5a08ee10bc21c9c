"""The resume digests of the record I/O (`qwen25.data.records`): the reader's digest of an input,
the writer's digest of the file it wrote (its bytes as stored: compressed), `file_digest`,
`output_digest` and `new_digest`, each against the `xxhash` package's XXH3-128 of the bytes read
back from disk; and the state files that store them (decontaminate, data run) naming the
algorithm and redoing a state of another version with a note."""

from __future__ import annotations

import gzip
import json
import os
import random
import types
from pathlib import Path

import pytest
import xxhash
import zstandard

from qwen25.data import records
from qwen25.data.decontam_job import STATE_VERSION, run_job
from qwen25.data.pipeline import state
from qwen25.errors import Qwen25FileNotFoundError

SUFFIXES = ["x.jsonl", "x.jsonl.gz", "x.jsonl.zst"]


def _xxh(b: bytes) -> str:
    return xxhash.xxh3_128(b).hexdigest()


def _lines(n: int, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    return b"".join(json.dumps({"id": i, "text": " ".join(str(rnd.random()) for _ in range(rnd.randrange(1, 60)))}).encode() + b"\n"
                    for i in range(n))  # fmt: skip


def _compress(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.compress(data)
    if name.endswith(".zst"):
        return zstandard.ZstdCompressor().compress(data)
    return data


def test_digest_algorithm_is_named_once():
    from qwen25 import _native

    assert records.DIGEST_ALGORITHM == _native.digest_algorithm == "xxh3-128"


@pytest.mark.parametrize("name", SUFFIXES)
@pytest.mark.parametrize("n", [0, 1, 3000])
def test_the_writers_digest_is_of_the_file_as_stored(tmp_path, name, n):
    data = _lines(n, n)
    p = tmp_path / name
    w = records.open_writer(p, compress_level=6, num_threads=2)
    assert w.digest is None and w.size is None
    for i in range(0, len(data), 70_001):  # chunks unrelated to gzip's 1 MiB members
        w.write(data[i : i + 70_001])
    size = w.commit()
    raw = p.read_bytes()
    assert (size, w.size) == (len(raw), len(raw))
    assert w.digest == _xxh(raw)
    assert records.file_digest(p) == _xxh(raw) and records.output_digest(p) == _xxh(raw)
    # the digest is of the stored bytes, and those decompress to what was written
    if name.endswith(".gz"):
        assert gzip.decompress(raw) == data
    elif name.endswith(".zst"):
        assert zstandard.ZstdDecompressor().decompressobj().decompress(raw) == data
    else:
        assert raw == data


def test_write_selected_and_the_context_manager_digest_too(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines(500, 7))
    with records.open_writer(tmp_path / "odd.jsonl.gz") as odd, records.open_writer(tmp_path / "even.jsonl") as even:
        for b in records.read_batches(src, batch_size=64):
            pick = [r % 2 == 1 for r in b.records]
            odd.write_selected(b, pick, True)
            even.write_selected(b, pick, False)
    for w in (odd, even):
        assert w.digest == _xxh(Path(w.path).read_bytes())


def test_an_aborted_writer_has_no_digest(tmp_path):
    w = records.open_writer(tmp_path / "x.jsonl")
    w.write(b"a\n")
    w.abort()
    assert w.digest is None and w.size is None and not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("name", SUFFIXES)
@pytest.mark.parametrize("n", [0, 1, 2500])
def test_the_readers_digest_is_of_the_input_as_stored(tmp_path, name, n):
    raw = _compress(name, _lines(n, n + 1)) if n else b""
    p = tmp_path / name
    p.write_bytes(raw)
    r = records.read_batches(p, hash=True, batch_size=100)
    assert sum(len(b) for b in r) == n
    assert r.digest == _xxh(raw)
    r = records.read_batches(p, hash=False)
    list(r)
    assert r.digest is None


def test_file_digest_streams_any_file(tmp_path):
    rnd = random.Random(3)
    for size in (0, 1, 239, 240, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12345):
        data = rnd.randbytes(size)
        p = tmp_path / f"f{size}.bin"
        p.write_bytes(data)
        assert records.file_digest(p) == _xxh(data)
        assert records.file_digest(str(p)) == records.output_digest(p) == _xxh(data)
    with pytest.raises(Qwen25FileNotFoundError, match="nope"):
        records.file_digest(tmp_path / "nope")
    with pytest.raises(OSError, match="directory"):
        records.file_digest(tmp_path)


def test_new_digest_in_pieces_equals_one_shot():
    data = random.Random(5).randbytes(3_000_017)
    h = records.new_digest()
    assert h.hexdigest() == _xxh(b"")
    for i in range(0, len(data), 999_983):
        h.update(data[i : i + 999_983])
    assert h.hexdigest() == _xxh(data)


def _same_size_edit(p: Path) -> None:
    """Change one byte, keep the size and set the modification time back."""
    st = os.stat(p)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    p.write_bytes(bytes(raw))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(p).st_size == st.st_size and os.stat(p).st_mtime_ns == st.st_mtime_ns


def test_output_digest_forgets_a_written_file_once_it_changes(tmp_path):
    p = tmp_path / "x.jsonl"
    with records.open_writer(p) as w:
        w.write(_lines(100))
    assert records.output_digest(p) == w.digest
    _same_size_edit(p)
    assert records.output_digest(p) == _xxh(p.read_bytes()) != w.digest
    # replaced by another file of the same bytes written some other way: read, same digest
    p.write_bytes(_lines(100))
    assert records.output_digest(p) == w.digest == _xxh(p.read_bytes())


def test_data_run_state_digests_outputs_and_notices_a_same_size_edit(tmp_path):
    out = tmp_path / "out"
    cfg = types.SimpleNamespace(output=str(out))  # the scan phase's outputs need only the folder
    names = state.phase_outputs(cfg, "scan")  # type: ignore[arg-type]
    assert names
    for i, n in enumerate(names):
        with records.open_writer(out / n) as w:
            w.write(_lines(20 + i, i))
    rec = state.record_outputs(cfg, "scan")  # type: ignore[arg-type]
    assert rec == {n: [os.path.getsize(out / n), _xxh((out / n).read_bytes())] for n in names}
    assert state.outputs_ok(cfg, "scan", rec)  # type: ignore[arg-type]
    _same_size_edit(out / names[0])
    assert not state.outputs_ok(cfg, "scan", rec)  # type: ignore[arg-type]


def test_data_run_state_names_the_algorithm_and_an_old_state_is_redone_with_a_note(tmp_path):
    state.save_state(str(tmp_path), {"done": ["scan"], "fingerprints": {"scan": "f"}, "outputs": {}})
    st = json.loads((tmp_path / "state.json").read_text())
    assert (st["version"], st["digest_algorithm"]) == (state.STATE_VERSION, "xxh3-128")
    assert state.load_state(str(tmp_path))["done"] == ["scan"]
    (tmp_path / "state.json").write_text(json.dumps({**st, "version": 4}))  # a BLAKE2b-era state
    old = state.load_state(str(tmp_path))
    assert old["done"] == [] and "another version (4" in old["note"]
    (tmp_path / "state.json").write_text(json.dumps({**st, "digest_algorithm": "blake2b-128"}))
    assert state.load_state(str(tmp_path))["done"] == []


def test_decontaminate_state_names_the_algorithm_and_redoes_an_old_state(tmp_path):
    item = "the quick brown fox jumps over the lazy dog near the riverbank while the sun sets slowly in the west"
    (tmp_path / "tests.jsonl").write_text(json.dumps({"id": "t0", "text": item}) + "\n")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl.gz").write_bytes(gzip.compress(_lines(50) + json.dumps({"text": "x " + item}).encode() + b"\n"))
    kw = {"train": [str(corpus / "*.jsonl.gz")], "tests": [str(tmp_path / "tests.jsonl")], "out": str(tmp_path / "out"),
          "progress": False, "log": lambda _m: None}  # fmt: skip
    rep = run_job(**kw)
    assert rep["counts"]["removed"] == 1
    inp = rep["run"]["inputs"][0]
    assert (inp["digest"], inp["digest_algorithm"]) == (_xxh((corpus / "a.jsonl.gz").read_bytes()), "xxh3-128")
    sp = tmp_path / "out" / ".state" / "a.jsonl.gz.json"
    st = json.loads(sp.read_text())
    assert st["version"] == STATE_VERSION and st["input"]["digest_algorithm"] == "xxh3-128"
    assert run_job(**kw)["shards"][0]["resumed"]
    sp.write_text(json.dumps({**st, "version": 2}))  # a state of the BLAKE2b era
    rep = run_job(**kw)
    s = rep["shards"][0]
    assert not s["resumed"] and s["redone"].startswith("its state file is from another version (2")


def test_decontaminate_resume_checks_the_outputs_content(tmp_path):
    """An output edited to the same size with its mtime restored redoes its shard: the state holds
    each output's size and the digest its writer computed (equal to the file's XXH3-128)."""
    item = "def add(a, b):\n    return a + b  # the one function every benchmark of addition seems to hold today"
    (tmp_path / "tests.jsonl").write_text(json.dumps({"id": "t0", "text": item}) + "\n")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_bytes(_lines(40, 9) + json.dumps({"text": "x\n" + item}).encode() + b"\n")
    kw = {"train": [str(corpus / "*.jsonl")], "tests": [str(tmp_path / "tests.jsonl")], "out": str(tmp_path / "out"),
          "progress": False, "log": lambda _m: None}  # fmt: skip
    assert run_job(**kw)["counts"]["removed"] == 1
    st = json.loads((tmp_path / "out" / ".state" / "a.jsonl.json").read_text())
    for rel in ("clean/a.jsonl", "removed/a.jsonl"):
        raw = (tmp_path / "out" / rel).read_bytes()
        assert st["outputs"][rel] == [len(raw), _xxh(raw)]
    assert run_job(**kw)["shards"][0]["resumed"]
    _same_size_edit(tmp_path / "out" / "clean" / "a.jsonl")
    s = run_job(**kw)["shards"][0]
    assert not s["resumed"] and s["redone"] == "its output clean/a.jsonl is missing or changed"
    assert (tmp_path / "out" / "clean" / "a.jsonl").read_bytes() == _lines(40, 9)
