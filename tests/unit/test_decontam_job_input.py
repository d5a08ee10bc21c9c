"""`qwen25 decontaminate` on bad input and in its output formats: every bad line is a one-line
`file:line` error (exit 1, no traceback) or, with --skip-bad, counted, listed and kept with its
exact bytes; damaged compressed shards say how far they were read; outputs are valid gzip/zstd
even when empty and carry the input lines byte for byte; out-of-range options are clean errors.

The oracle is the construction: test items are random word strings, a record is contaminated
exactly when it carries one verbatim, and every expected byte is read from the input file with
Python's gzip/zlib/zstandard directly."""

from __future__ import annotations

import gzip
import inspect
import json
import random
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from qwen25.cli import build_parser, main

RND = random.Random(7)
ALPHA = "abcdefghijklmnopqrstuvwxyz"


def _words(rnd: random.Random, n: int, alpha: str = ALPHA) -> str:
    return " ".join("".join(rnd.choice(alpha) for _ in range(rnd.randrange(3, 9))) for _ in range(n))


ITEMS = [_words(RND, 40) for _ in range(4)]  # the test set: 4 long items
PLAIN = [_words(RND, 25, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(50)]  # never contaminated


def _tests(tmp: Path) -> Path:
    p = tmp / "tests.jsonl"
    p.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(ITEMS)))
    return p


def _line(text: str, **extra: object) -> bytes:
    return json.dumps({"text": text, **extra}).encode()


def _dirty(i: int) -> str:
    return f"{PLAIN[i % len(PLAIN)]} {ITEMS[i % len(ITEMS)]} {PLAIN[(i + 1) % len(PLAIN)]}"


def _cli(tmp: Path, capsys: pytest.CaptureFixture[str], *args: str, out: str = "out",
         train: str | None = None) -> tuple[int, str, str]:
    rc = main(["decontaminate", "--train", train or str(tmp / "corpus" / "*"), "--test", str(_tests(tmp)),
               "--out", str(tmp / out), "--no-progress", *args])
    o = capsys.readouterr()
    return rc, o.out, o.err


def _one_line_error(rc: int, err: str) -> str:
    assert rc == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("qwen25 decontaminate: error: ")
    return lines[0]


def _split_lines(data: bytes) -> list[bytes]:
    """Lines with their endings (only b"\\n" ends a line; a CR stays part of it)."""
    return re.findall(rb"[^\n]*\n|[^\n]+$", data)


def _decompress(p: Path) -> bytes:
    data = p.read_bytes()
    if p.name.endswith(".gz"):
        return gzip.decompress(data)
    if p.name.endswith(".zst"):
        zstd = pytest.importorskip("zstandard")
        out, rest = b"", data
        while rest:
            obj = zstd.ZstdDecompressor().decompressobj()
            out += obj.decompress(rest)
            assert obj.eof, f"{p}: zstd frame not complete"
            rest = obj.unused_data
        return out
    return data


def _write(p: Path, data: bytes) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.name.endswith(".gz"):
        data = gzip.compress(data)
    elif p.name.endswith(".zst"):
        data = pytest.importorskip("zstandard").ZstdCompressor().compress(data)
    p.write_bytes(data)


# -- bad lines -----------------------------------------------------------------------------------
BAD = [
    (b'{"text": broken', "malformed JSON"),
    (b'{"text": "caf\xe9 au lait"}', "invalid UTF-8 at byte 13"),
    (b'{"text": "a\\ud800b"}', "lone surrogate U+D800"),
    (b'{"id": 1, "text": "fine", "note": "\\udfff"}', "lone surrogate U+DFFF"),
    (b'{"text": 5}', "field 'text' is a number, not a string"),
    (b'{"text": null}', "field 'text' is null, not a string"),
    (b'{"text": {"a": 1}}', "field 'text' is an object, not a string"),
    (b'{"text": ["a", "b"]}', "text[0] is a string, not a {role, content} object"),
    (b'{"messages": "hi"}', "'messages' is a string, not a list of {role, content} objects"),
    (b'{"messages": ["hi"]}', "messages[0] is a string, not a {role, content} object"),
    (b'{"messages": [{"content": "no role"}]}', "messages[0] is an object, not a {role, content} object"),
    (b'{"messages": [{"role": "user", "content": 3}]}', "messages[0] is an object, not a {role, content}"),
    (b'{"body": "no text here"}', "no field 'text' (nor a 'messages' list); its fields: 'body'"),
    (b"[1, 2]", "a record must be a JSON object, not an array"),
    (b"42", "a record must be a JSON object, not a number"),
    (b'"just a string"', "a record must be a JSON object, not a string"),
]


@pytest.mark.parametrize("raw,why", BAD, ids=[w.split(" ")[0] + str(i) for i, (_, w) in enumerate(BAD)])
def test_each_bad_line_is_a_one_line_file_line_error(tmp_path, capsys, raw, why):
    p = tmp_path / "corpus" / "x.jsonl"
    _write(p, _line(PLAIN[0]) + b"\n\n" + raw + b"\n" + _line(_dirty(1)) + b"\n")
    rc, _, err = _cli(tmp_path, capsys)
    msg = _one_line_error(rc, err)
    assert f"{p}:3: {why}" in msg
    assert "--skip-bad" in msg
    # nothing presented as done, and the lock is gone
    assert not (tmp_path / "out" / "clean" / "x.jsonl").exists()
    assert not (tmp_path / "out" / "report.json").exists()
    assert not (tmp_path / "out" / ".lock").exists()


def test_skip_bad_counts_lists_and_keeps_every_bad_line(tmp_path, capsys):
    lines: list[bytes] = []
    want_bad: list[tuple[int, bytes, str]] = []
    want_clean: list[bytes] = []
    want_removed: list[bytes] = []
    for i, (raw, why) in enumerate(BAD):
        good = _line(_dirty(i) if i % 3 == 0 else PLAIN[i], id=i)
        lines.append(good + (b"\r\n" if i % 2 else b"\n"))
        (want_removed if i % 3 == 0 else want_clean).append(lines[-1])
        lines.append(raw + b"\n")
        want_bad.append((len(lines), raw, why))
    _write(tmp_path / "corpus" / "x.jsonl.gz", b"".join(lines))
    rc, out, err = _cli(tmp_path, capsys, "--skip-bad")
    assert rc == 0, err
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    n = len(BAD)
    assert rep["counts"] == {"in": 2 * n, "clean": len(want_clean), "removed": len(want_removed), "bad": n, "blank": 0}
    assert [(b["line"], b["record"]) for b in rep["bad"]] == [(ln, ln - 1) for ln, _, _ in want_bad]
    for b, (_, _, why) in zip(rep["bad"], want_bad):
        assert why in b["reason"]
    kept = [json.loads(x) for x in (tmp_path / "out" / "bad" / "x.jsonl.gz.jsonl").read_text("ascii").splitlines()]
    assert [k["line"] for k in kept] == [ln for ln, _, _ in want_bad]
    assert [k["raw"].encode("utf-8", "surrogateescape") for k in kept] == [raw for _, raw, _ in want_bad]
    assert _split_lines(_decompress(tmp_path / "out" / "clean" / "x.jsonl.gz")) == want_clean
    assert _split_lines(_decompress(tmp_path / "out" / "removed" / "x.jsonl.gz")) == want_removed
    assert f"{n} bad" in out and "warning:" in out


def test_encoding_errors_replace_makes_a_non_utf8_line_good(tmp_path, capsys):
    raw = b'{"text": "caf\xe9 ' + ITEMS[2].encode() + b'"}\n'
    _write(tmp_path / "corpus" / "x.jsonl", _line(PLAIN[1]) + b"\n" + raw)
    rc, _, err = _cli(tmp_path, capsys, "--encoding-errors", "replace")
    assert rc == 0, err
    assert (tmp_path / "out" / "removed" / "x.jsonl").read_bytes() == raw  # the bytes as they were


# -- damaged compressed shards -------------------------------------------------------------------
def _long_corpus(n: int) -> bytes:
    rnd = random.Random(3)  # incompressible enough that a cut lands mid-stream
    return b"".join(_line(_dirty(i) if i % 7 == 0 else _words(rnd, 30), id=i) + b"\n" for i in range(n))


def _prefix_lines(data: bytes, kind: str) -> int:
    """Complete lines in what an independent decompressor recovers from a cut file."""
    if kind == "gz":
        got = zlib.decompressobj(31).decompress(data)
    else:
        got = pytest.importorskip("zstandard").ZstdDecompressor().decompressobj().decompress(data)
    return got.count(b"\n")


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_truncated_compressed_shard(tmp_path, capsys, kind):
    data = _long_corpus(3000)
    name = f"x.jsonl.{kind}"
    _write(tmp_path / "corpus" / name, data)
    full = (tmp_path / "corpus" / name).read_bytes()
    cut = full[: len(full) * 3 // 5]
    (tmp_path / "corpus" / name).write_bytes(cut)
    n = _prefix_lines(cut, kind)
    assert 0 < n < 3000
    rc, _, err = _cli(tmp_path, capsys)
    msg = _one_line_error(rc, err)
    assert f"{tmp_path / 'corpus' / name}: truncated/corrupt compressed data after {n} records (line {n + 1})" in msg
    assert not (tmp_path / "out" / "clean" / name).exists()
    # --skip-bad: the records before the damage are processed, the damage is reported
    rc, out, err = _cli(tmp_path, capsys, "--skip-bad")
    assert rc == 0, err
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["counts"]["in"] == n
    assert rep["damaged"] == [{"shard": name, "line": n + 1, "records_before": n, "reason": rep["damaged"][0]["reason"]}]
    assert rep["damaged"][0]["reason"].startswith(f"truncated/corrupt compressed data after {n} records")
    assert any("truncated/corrupt" in w for w in rep["warnings"]) and "truncated/corrupt" in out
    got = _split_lines(_decompress(tmp_path / "out" / "clean" / name)) + \
        _split_lines(_decompress(tmp_path / "out" / "removed" / name))
    assert sorted(got) == sorted(_split_lines(data)[:n])
    want_removed = [ln for ln in _split_lines(data)[:n] if json.loads(ln)["id"] % 7 == 0]
    assert _split_lines(_decompress(tmp_path / "out" / "removed" / name)) == want_removed
    # the input fingerprint covers the whole file, not only what could be read
    import xxhash

    inp = rep["run"]["inputs"][0]
    assert (inp["digest"], inp["digest_algorithm"]) == (xxhash.xxh3_128(cut).hexdigest(), "xxh3-128")


def test_corrupt_gzip_and_not_gzip_at_all(tmp_path, capsys):
    data = _long_corpus(2000)
    z = bytearray(gzip.compress(data))
    z[-6] ^= 0xFF  # the CRC-32 in the trailer: every line decodes, the check at the end fails
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "x.jsonl.gz").write_bytes(bytes(z))
    with pytest.raises(gzip.BadGzipFile):  # the independent reader agrees it is damaged
        gzip.decompress(bytes(z))
    rc, _, err = _cli(tmp_path, capsys)
    msg = _one_line_error(rc, err)
    assert "x.jsonl.gz: truncated/corrupt compressed data after 2000 records (line 2001)" in msg
    rc, _, err = _cli(tmp_path, capsys, "--skip-bad")
    assert rc == 0, err
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["counts"]["in"] == 2000 and rep["damaged"][0]["line"] == 2001
    (tmp_path / "corpus" / "x.jsonl.gz").write_bytes(data[:500])  # plain text named .gz
    rc, _, err = _cli(tmp_path, capsys, out="o2")
    assert "x.jsonl.gz: truncated/corrupt compressed data after 0 records (line 1)" in _one_line_error(rc, err)


# -- Parquet rows --------------------------------------------------------------------------------
def test_parquet_rows_with_wrong_type_or_missing_field(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "corpus").mkdir()
    texts = [PLAIN[0], _dirty(1), None, PLAIN[3], _dirty(4)]
    pq.write_table(pa.table({"text": texts, "n": list(range(5))}), tmp_path / "corpus" / "p.parquet")
    rc, _, err = _cli(tmp_path, capsys)
    assert f"{tmp_path / 'corpus' / 'p.parquet'}: row 2: field 'text' is null" in _one_line_error(rc, err)
    rc, _, err = _cli(tmp_path, capsys, "--skip-bad")
    assert rc == 0, err
    assert pq.read_table(tmp_path / "out" / "clean" / "p.parquet").to_pydict()["n"] == [0, 3]
    assert pq.read_table(tmp_path / "out" / "removed" / "p.parquet").to_pydict()["n"] == [1, 4]
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(b["row"], b["reason"]) for b in rep["bad"]] == [(2, "field 'text' is null, not a string (nor a messages list)")]
    kept = json.loads((tmp_path / "out" / "bad" / "p.parquet.jsonl").read_text())
    assert kept["row"] == 2 and json.loads(kept["raw"]) == {"text": None, "n": 2}
    # a file without the field: every row is bad
    pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "corpus" / "p.parquet")
    rc, _, err = _cli(tmp_path, capsys, out="o2")
    assert "p.parquet: row 0: no field 'text'" in _one_line_error(rc, err)
    # not a Parquet file at all
    (tmp_path / "corpus" / "p.parquet").write_bytes(b"PAR1 garbage")
    rc, _, err = _cli(tmp_path, capsys, out="o3")
    assert "p.parquet: not a readable Parquet file" in _one_line_error(rc, err)


# -- output formats ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "jsonl.zst"])
def test_empty_outputs_are_valid_files(tmp_path, capsys, kind):
    _write(tmp_path / "corpus" / f"a.{kind}", b"")  # no record at all
    _write(tmp_path / "corpus" / f"b.{kind}", b"\n  \n\r\n")  # blank lines only
    _write(tmp_path / "corpus" / f"c.{kind}", _line(PLAIN[2]) + b"\n")  # nothing removed
    rc, _, err = _cli(tmp_path, capsys)
    assert rc == 0, err
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(s["shard"], s["in"], s["blank"]) for s in rep["shards"]] == \
        [(f"a.{kind}", 0, 0), (f"b.{kind}", 0, 3), (f"c.{kind}", 1, 0)]
    for shard in "abc":
        for sub in ("clean", "removed"):
            p = tmp_path / "out" / sub / f"{shard}.{kind}"
            if kind.endswith("gz"):
                with gzip.open(p, "rb") as f:
                    f.read()
                if shutil.which("gzip"):
                    subprocess.run(["gzip", "-t", str(p)], check=True)
            if kind.endswith("zst"):
                _decompress(p)  # a complete frame
                if shutil.which("zstd"):
                    subprocess.run(["zstd", "-q", "-t", str(p)], check=True)
            want = _line(PLAIN[2]) + b"\n" if (shard, sub) == ("c", "clean") else b""
            assert _decompress(p) == want


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "jsonl.zst"])
def test_lines_pass_through_byte_for_byte(tmp_path, capsys, kind):
    rnd = random.Random(5)
    lines = []
    for i in range(60):
        text = _dirty(i) if rnd.random() < 0.3 else PLAIN[i % len(PLAIN)]
        raw = json.dumps({"i": i, "text": text, "pad": " \t" * rnd.randrange(3)}, ensure_ascii=rnd.random() < 0.5)
        lines.append(raw.encode() + rnd.choice([b"\n", b"\r\n"]))
    data = b"".join(lines) + _line(_dirty(61)) + b"\r"  # the last line: no newline (a CR, though)
    _write(tmp_path / "corpus" / f"x.{kind}", data)
    for batch in ("1", "7", "2048"):
        rc, _, err = _cli(tmp_path, capsys, "--batch-size", batch, out=f"out{batch}")
        assert rc == 0, err
        clean = _decompress(tmp_path / f"out{batch}" / "clean" / f"x.{kind}")
        removed = _decompress(tmp_path / f"out{batch}" / "removed" / f"x.{kind}")
        want = _split_lines(data)
        want[-1] += b"\n"  # documented: a last line without a line ending gets one
        is_dirty = [any(t in json.loads(w)["text"] for t in ITEMS) for w in want]
        assert _split_lines(clean) == [w for w, d in zip(want, is_dirty) if not d]
        assert _split_lines(removed) == [w for w, d in zip(want, is_dirty) if d]
        assert any(is_dirty) and not all(is_dirty)


# -- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,what", [
    (["--num-threads", "0"], "--num-threads must be an int from 1 to 4096, not 0"),
    (["--num-threads", "-2"], "--num-threads must be an int from 1 to 4096, not -2"),
    (["--num-threads", "100000"], "--num-threads must be an int from 1 to 4096, not 100000"),
    (["--batch-size", "0"], "--batch-size must be an int >= 1, not 0"),
    (["--batch-size", "-5"], "--batch-size must be an int >= 1, not -5"),
])
def test_out_of_range_counts_are_clean_errors(tmp_path, capsys, args, what):
    _write(tmp_path / "corpus" / "x.jsonl", _line(PLAIN[0]) + b"\n")
    rc, _, err = _cli(tmp_path, capsys, *args)
    assert what in _one_line_error(rc, err)
    assert not (tmp_path / "out").exists()  # refused before touching the folder


@pytest.mark.parametrize("value", ["0", "-3", "big", "1.5", ""])
def test_window_takes_auto_none_or_a_positive_int(tmp_path, capsys, value):
    _write(tmp_path / "corpus" / "x.jsonl", _line(_dirty(0)) + b"\n")
    with pytest.raises(SystemExit) as e:
        _cli(tmp_path, capsys, "--window", value)
    assert e.value.code == 2
    assert "argument --window: must be auto, none or a positive int" in capsys.readouterr().err


@pytest.mark.parametrize("value,want", [("auto", "auto"), ("none", None), ("None", None), ("40", 40), (None, "auto")])
def test_window_values_reach_the_job(tmp_path, capsys, value, want):
    _write(tmp_path / "corpus" / "x.jsonl", _line(_dirty(0)) + b"\n" + _line(PLAIN[1]) + b"\n")
    rc, out, err = _cli(tmp_path, capsys, *(["--window", value] if value else []))
    assert rc == 0, err
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["params"]["window"] == want
    assert rep["counts"]["removed"] == 1  # a verbatim copy goes whatever the window
    assert f"window={'none' if want is None else want}" in out


def test_api_and_cli_defaults_agree():
    from qwen25.data import Decontaminator
    from qwen25.data.decontam_job import run_job

    argv = ["decontaminate", "--train", "x", "--test", "y", "--out", "z"]
    args = build_parser(argv).parse_args(argv)
    job = inspect.signature(run_job).parameters
    engine = inspect.signature(Decontaminator).parameters
    assert args.window == job["window"].default == engine["window"].default == "auto"
    for name in ("mode", "ngram", "lcs_min", "lcs_ratio"):
        assert getattr(args, name) == job[name].default == engine[name].default
    for name in ("field", "test_field", "skip_bad", "encoding_errors", "batch_size", "num_threads", "compress_level"):
        assert getattr(args, name) == job[name].default, name


def test_training_file_inside_the_output_folder_is_refused(tmp_path, capsys):
    _write(tmp_path / "corpus" / "x.jsonl", _line(_dirty(0)) + b"\n")
    rc, _, err = _cli(tmp_path, capsys, out="corpus/out")
    assert rc == 0, err
    rc, _, err = _cli(tmp_path, capsys, out="corpus/out", train=str(tmp_path / "corpus" / "**" / "*.jsonl"))
    assert "a training file inside the output folder" in _one_line_error(rc, err)


def test_test_set_errors_and_warnings(tmp_path, capsys):
    _write(tmp_path / "corpus" / "x.jsonl", _line(_dirty(0)) + b"\n")
    base = ["decontaminate", "--train", str(tmp_path / "corpus" / "x.jsonl"), "--out", str(tmp_path / "o"),
            "--no-progress"]
    (tmp_path / "empty.jsonl").write_text("")
    rc = main([*base, "--test", str(tmp_path / "empty.jsonl")])
    assert "no test items" in _one_line_error(rc, capsys.readouterr().err)
    (tmp_path / "short.jsonl").write_text(json.dumps({"id": "s1", "text": "too short"}) + "\n")
    rc = main([*base, "--test", str(tmp_path / "short.jsonl")])
    assert "shorter than ngram=13" in _one_line_error(rc, capsys.readouterr().err)
    rc = main([*base, "--test", "no-such-benchmark-or-file"])
    assert "no-such-benchmark-or-file" in _one_line_error(rc, capsys.readouterr().err)
    (tmp_path / "badtest.jsonl").write_text(json.dumps({"id": "s1", "text": ITEMS[0]}) + "\n{oops\n")
    rc = main([*base, "--test", str(tmp_path / "badtest.jsonl")])
    assert f"{tmp_path / 'badtest.jsonl'}:2:" in _one_line_error(rc, capsys.readouterr().err)
    # some items too short: a printed warning naming them, in the report too
    rc = main([*base, "--test", str(_tests(tmp_path)), "--test", str(tmp_path / "short.jsonl")])
    o = capsys.readouterr()
    assert rc == 0, o.err
    assert "warning:" in o.out and "short.jsonl s1" in o.out
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert any("short.jsonl s1" in w for w in rep["warnings"])
    assert rep["test_sets"]["short.jsonl"]["too_short"] == ["s1"]


def test_test_specs_go_through_benchmarks_resolve(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    q = [f"{ITEMS[i]} how many apples are left" for i in range(2)]
    a = [f"{PLAIN[i]} the answer is {i + 3}" for i in range(2)]
    gsm = tmp_path / "gsm8k_test.jsonl"  # GSM8K's own fields
    gsm.write_text("".join(json.dumps({"question": x, "answer": y}) + "\n" for x, y in zip(q, a)))
    _write(tmp_path / "corpus" / "x.jsonl", b"".join(_line(t) + b"\n" for t in
                                                     [PLAIN[5], f"{q[1]}\n{a[1]}", PLAIN[6]]))
    rc = main(["decontaminate", "--train", str(tmp_path / "corpus" / "x.jsonl"), "--test", f"gsm8k={gsm}",
               "--out", str(tmp_path / "o"), "--no-progress"])
    o = capsys.readouterr()
    assert rc == 0, o.err
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert list(rep["test_sets"]) == ["gsm8k"] and rep["test_sets"]["gsm8k"]["items"] == 2
    assert [(r["line"], r["witnesses"][0]["test_set"], r["witnesses"][0]["test_index"]) for r in rep["removed"]] == \
        [(2, "gsm8k", 1)]
    # a group or name that cannot be loaded offline is a one-line error, not a traceback
    rc = main(["decontaminate", "--train", str(tmp_path / "corpus" / "x.jsonl"), "--test", "nosuchgroup",
               "--out", str(tmp_path / "o2"), "--no-progress"])
    assert "unknown benchmark 'nosuchgroup'" in _one_line_error(rc, capsys.readouterr().err)


def test_two_test_files_of_one_name_stay_apart(tmp_path, capsys):
    for d, item in (("a", ITEMS[0]), ("b", ITEMS[1])):
        (tmp_path / d).mkdir()
        (tmp_path / d / "t.jsonl").write_text(json.dumps({"id": "q", "text": item}) + "\n")
    _write(tmp_path / "corpus" / "x.jsonl", _line(_dirty(1)) + b"\n")  # carries ITEMS[1]
    rc = main(["decontaminate", "--train", str(tmp_path / "corpus" / "x.jsonl"), "--test", str(tmp_path / "a" / "t.jsonl"),
               "--test", str(tmp_path / "b" / "t.jsonl"), "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    second = str(tmp_path / "b" / "t.jsonl")
    assert {k: v["items_hit"] for k, v in rep["test_sets"].items()} == {"t.jsonl": 0, second: 1}
    assert rep["removed"][0]["witnesses"][0]["test_set"] == second
