"""`qwen25 tokenize`: flat uint32 tokens + uint64 offsets, checked against HF tokenizers."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qwen25.cli import main

TEXTS = ["Hello world", "", "你好，世界！", "<|im_start|>user\nhi<|im_end|>", "def f():\n    return 1\n"] * 7


def _write(path: Path, records: list[object], gz: bool = False) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def _read(out: Path) -> list[list[int]]:
    ids = np.fromfile(out, dtype="<u4")
    idx = np.fromfile(str(out) + ".idx", dtype="<u8")
    return [ids[idx[i]: idx[i + 1]].tolist() for i in range(len(idx) - 1)]


def test_tokenize_jsonl_and_gz(tmp_path: Path, hf_tok) -> None:  # type: ignore[no-untyped-def]
    _write(tmp_path / "a.jsonl", [{"text": t, "id": i} for i, t in enumerate(TEXTS)])
    _write(tmp_path / "b.jsonl.gz", [{"text": t} for t in reversed(TEXTS)], gz=True)
    out = tmp_path / "out" / "tokens.bin"
    rc = main(["tokenize", "--input", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl.gz"),
               "--output", str(out), "--batch-size", "4", "--no-progress"])
    assert rc == 0
    expected = [hf_tok.encode(t).ids for t in TEXTS + TEXTS[::-1]]
    assert _read(out) == expected
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["records"] == len(expected) and meta["tokens"] == sum(map(len, expected)) and meta["bad_lines"] == 0
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_append_eos_and_plain_specials(tmp_path: Path, hf_plain) -> None:  # type: ignore[no-untyped-def]
    _write(tmp_path / "a.jsonl", [{"body": t} for t in TEXTS[:5]])
    out = tmp_path / "t.bin"
    assert main(["tokenize", "-i", str(tmp_path / "a.jsonl"), "-o", str(out), "--field", "body",
                 "--append-eos", "--plain-specials", "--no-progress"]) == 0
    assert _read(out) == [hf_plain.encode(t).ids + [151645] for t in TEXTS[:5]]


def test_bad_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "ok"}\n{"text": oops}\n')
    out = tmp_path / "t.bin"
    assert main(["tokenize", "-i", str(p), "-o", str(out), "--no-progress"]) == 1
    assert f"{p}:3:" in capsys.readouterr().err
    assert not out.exists() and not Path(str(out) + ".tmp").exists()
    # --skip-bad counts and reports the line, and keeps the good ones
    assert main(["tokenize", "-i", str(p), "-o", str(out), "--no-progress", "--skip-bad"]) == 0
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["records"] == 2 and meta["bad_lines"] == 1 and meta["bad"][0].startswith(f"{p}:3:")
    assert "1 malformed lines skipped" in capsys.readouterr().err


def test_missing_field_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "ok"}\n{"content": "no text field"}\n')
    assert main(["tokenize", "-i", str(p), "-o", str(tmp_path / "t.bin"), "--no-progress"]) == 1
    assert f"{p}:2: no field 'text'" in capsys.readouterr().err
    assert main(["tokenize", "-i", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "t.bin"), "--no-progress"]) == 1
    assert "missing.jsonl" in capsys.readouterr().err


def test_console_entry_point_runs(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "qwen25.cli", "--help"], capture_output=True, text=True, check=True)
    assert "tokenize" in out.stdout


def test_zst_messages_and_the_shared_bad_line_rules(tmp_path: Path, hf_tok, capsys) -> None:  # type: ignore[no-untyped-def]
    zstd = pytest.importorskip("zstandard")
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    lines = [json.dumps({"text": TEXTS[0]}), json.dumps(chat), '{"text": "a\\ud800"}', json.dumps({"text": TEXTS[2]})]
    p = tmp_path / "a.jsonl.zst"
    p.write_bytes(zstd.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "t.bin"
    assert main(["tokenize", "-i", str(p), "-o", str(out), "--no-progress"]) == 1
    assert f"{p}:3: lone surrogate U+D800" in capsys.readouterr().err  # not text: a bad line
    assert main(["tokenize", "-i", str(p), "-o", str(out), "--no-progress", "--skip-bad"]) == 0
    assert _read(out) == [hf_tok.encode(t).ids for t in (TEXTS[0], "hi\nyo", TEXTS[2])]


def test_truncated_gz_with_skip_bad_keeps_what_was_read(tmp_path: Path, hf_tok, capsys) -> None:  # type: ignore[no-untyped-def]
    import random
    import zlib

    rnd = random.Random(1)
    texts = [" ".join(str(rnd.random()) for _ in range(30)) for _ in range(2000)]
    z = gzip.compress("".join(json.dumps({"text": t}) + "\n" for t in texts).encode())
    cut = z[: len(z) // 2]
    n = zlib.decompressobj(31).decompress(cut).count(b"\n")  # complete lines an independent reader recovers
    p = tmp_path / "a.jsonl.gz"
    p.write_bytes(cut)
    out = tmp_path / "t.bin"
    assert main(["tokenize", "-i", str(p), "-o", str(out), "--no-progress"]) == 1
    assert f"truncated/corrupt compressed data after {n} records (line {n + 1})" in capsys.readouterr().err
    assert not out.exists()
    assert main(["tokenize", "-i", str(p), "-o", str(out), "--no-progress", "--skip-bad"]) == 0
    assert _read(out) == [hf_tok.encode(t).ids for t in texts[:n]]
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["bad_lines"] == 1 and "truncated/corrupt" in meta["bad"][0]


def test_the_library_job_is_what_the_command_runs(tmp_path: Path, hf_tok) -> None:  # type: ignore[no-untyped-def]
    from qwen25.data.tokenize_job import tokenize_files

    _write(tmp_path / "a.jsonl", [{"text": t} for t in TEXTS[:5]])
    r = tokenize_files([str(tmp_path / "a.jsonl")], str(tmp_path / "t.bin"), progress=False, append_eos=True)
    assert _read(tmp_path / "t.bin") == [hf_tok.encode(t).ids + [151645] for t in TEXTS[:5]]  # <|im_end|>, as above
    assert r["records"] == 5 and r["bytes"] == (tmp_path / "a.jsonl").stat().st_size
    assert json.loads(Path(r["meta_path"]).read_text())["records"] == 5


def test_encode_records_gives_hf_ids_from_a_batch(tmp_path: Path, hf_tok) -> None:  # type: ignore[no-untyped-def]
    from qwen25 import Tokenizer
    from qwen25.data.records import read_batches
    from qwen25.errors import Qwen25ValueError

    _write(tmp_path / "a.jsonl", [{"text": t} for t in TEXTS])
    (b,) = list(read_batches(tmp_path / "a.jsonl"))
    ids, offsets = Tokenizer.qwen25().encode_records(b, num_threads=2)
    assert [ids[offsets[i]: offsets[i + 1]].tolist() for i in range(len(TEXTS))] == [hf_tok.encode(t).ids for t in TEXTS]
    _write(tmp_path / "ids.jsonl", [{"text": [1, 2]}])
    (b,) = list(read_batches(tmp_path / "ids.jsonl", allow_ids=True))
    with pytest.raises(Qwen25ValueError, match="token ids"):
        Tokenizer.qwen25().encode_records(b)


def test_a_file_named_twice_is_tokenized_once(tmp_path: Path, hf_tok) -> None:  # type: ignore[no-untyped-def]
    """As the data stages read their inputs: the file itself, then a glob matching it again."""
    _write(tmp_path / "a.jsonl", [{"text": t} for t in TEXTS])
    out = tmp_path / "tokens.bin"
    assert main(["tokenize", "--input", str(tmp_path / "a.jsonl"), str(tmp_path / "*.jsonl"),
                 "--output", str(out), "--no-progress"]) == 0
    assert _read(out) == [hf_tok.encode(t).ids for t in TEXTS]  # once, not twice
