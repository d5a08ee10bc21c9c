"""Hostile-input trial of the standalone ``qwen25 data`` stages: what a failing or repeated job
leaves on disk, outputs that name the same file, and inputs that are globs or folders. Every
expectation is checked against the files themselves (bytes before and after, ``os.walk``,
Python's ``json``/``glob``), not against counts the stage prints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from qwen25.cli import main


def _docs(n: int, start: int = 0) -> bytes:
    return b"".join(
        (json.dumps({"id": i, "text": f"document {i} about rivers, bridges and the towns along them"}) + "\n").encode()
        for i in range(start, start + n)
    )


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative name -> bytes)."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = Path(d) / n
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def _temporaries(root: Path) -> list[str]:
    return [str(Path(d) / n) for d, dirs, names in os.walk(root) for n in names + dirs if "tmp" in n]


def _pack(src: Path, out: Path, *extra: str) -> int:
    return main(["data", "pack", str(src), "-o", str(out), "--seq-len", "16", "--seqs-per-shard", "4",
                 "--no-progress", *extra])  # fmt: skip


def test_failed_pack_leaves_an_existing_pack_as_it_was_and_no_temporary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(_docs(40))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(_docs(30, 100) + b"{not json\n")  # the bad line comes after several batches
    out = tmp_path / "packed"
    assert _pack(good, out) == 0
    before = _tree(out)
    assert len([n for n in before if n.startswith("shard_")]) > 1
    assert _pack(bad, out, "--batch-size", "5") == 1
    assert "bad.jsonl:31: malformed JSON" in capsys.readouterr().err
    assert _tree(out) == before  # no shard of the failed job replaced one of the finished pack
    assert _temporaries(tmp_path) == []
    fresh = tmp_path / "fresh"
    assert _pack(bad, fresh, "--batch-size", "5") == 1
    assert not fresh.exists() and _temporaries(tmp_path) == []


def test_repacking_a_folder_leaves_no_stale_shard(tmp_path: Path) -> None:
    big, small = tmp_path / "big.jsonl", tmp_path / "small.jsonl"
    big.write_bytes(_docs(60))
    small.write_bytes(_docs(3))
    out, ref = tmp_path / "packed", tmp_path / "ref"
    assert _pack(big, out) == 0
    (out / "notes.txt").write_text("mine")  # a file that is not the packer's stays
    assert _pack(small, out) == 0
    assert _pack(small, ref) == 0  # the same input packed into a new folder: the reference
    manifest = json.loads((out / "manifest.json").read_text())
    shards = {s["file"] for s in manifest["shards"]}
    assert set(os.listdir(out)) == shards | {"docs.idx", "manifest.json", "notes.txt"}
    got = _tree(out)
    del got["notes.txt"]
    assert got == _tree(ref)


@pytest.mark.parametrize(
    "args",
    [
        ["filter", "{src}", "-o", "{out}", "--removed", "{out}"],
        ["dedup", "{src}", "-o", "{out}", "--report", "{out}"],
        ["mix", "--source", "a={src}", "-o", "{out}", "--removed", "{dot}"],
        ["pack", "{src}", "-o", "{out}", "--removed", "{out}"],
    ],
    ids=["filter", "dedup", "mix", "pack"],
)
def test_two_outputs_naming_one_file_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_docs(10))
    out = tmp_path / "o.jsonl"
    fill = {"src": str(src), "out": str(out), "dot": str(tmp_path / "." / "o.jsonl")}
    assert main(["data", *[a.format(**fill) for a in args], "--no-progress"]) == 1
    assert "name the same file" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]  # no output, no temporary


def test_mix_takes_an_existing_file_with_brackets_as_named(tmp_path: Path) -> None:
    src = tmp_path / "part[1].jsonl"  # as a glob, [1] would match "part1.jsonl" only
    src.write_bytes(_docs(5))
    out = tmp_path / "m.jsonl"
    assert main(["data", "mix", "--source", f"a={src}", "-o", str(out), "--unit", "docs", "--no-progress"]) == 0
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in got] == [json.loads(x)["id"] for x in src.read_text().splitlines()]


def test_stage_inputs_glob_across_folders_and_refuse_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import glob

    for rel, start in (("d/a.jsonl", 0), ("d/s/b.jsonl", 10), ("d/s/t/c.jsonl", 20)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(_docs(3, start))
    out = tmp_path / "o.jsonl"
    pat = str(tmp_path / "d" / "**" / "*.jsonl")
    assert main(["data", "filter", pat, str(tmp_path / "d" / "*"), "-o", str(out), "--no-progress",
                 "--config", str(_no_filters(tmp_path))]) == 0  # fmt: skip
    want = [json.loads(x)["id"] for f in sorted(glob.glob(pat, recursive=True)) for x in Path(f).read_text().splitlines()]
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == want and len(want) == 9
    assert main(["data", "filter", str(tmp_path / "d" / "s"), "-o", str(out), "--no-progress"]) == 1
    assert "is a folder" in capsys.readouterr().err


def _no_filters(tmp_path: Path) -> Path:
    p = tmp_path / "none.toml"
    p.write_text("gopher_repetition = false\ngopher_quality = false\nc4 = false\nfineweb = false\n")
    return p


def test_tokenize_globs_its_inputs_as_the_data_stages_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import glob

    import numpy as np

    for rel, start in (("d/a.jsonl", 0), ("d/s/b.jsonl", 10)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(_docs(3, start))
    pat = str(tmp_path / "d" / "**" / "*.jsonl")
    out = tmp_path / "t.bin"
    assert main(["tokenize", "-i", pat, "-o", str(out), "--no-progress"]) == 0
    files = sorted(glob.glob(pat, recursive=True))
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["inputs"] == files and meta["records"] == 6
    assert len(np.fromfile(str(out) + ".idx", dtype="<u8")) == 7
    assert main(["tokenize", "-i", str(tmp_path / "d"), "-o", str(out), "--no-progress"]) == 1
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ['[filter.default]\npreset = "code"\n', 'preset = "code"\n'])
def test_filter_config_takes_a_preset_as_pipeline_toml_does(tmp_path: Path, layout: str) -> None:
    code = "".join(f"def f{i}(x):\n    return x * {i} + 1  # a small function\n\n" for i in range(30))
    docs = [code, code + "data = '" + "z" * 1200 + "'\n"]  # the second has a 1,200-character line
    src = tmp_path / "code.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(docs)))
    cfg = tmp_path / "f.toml"
    cfg.write_text(layout)
    out, rem = tmp_path / "o.jsonl", tmp_path / "r.jsonl"
    assert main(["data", "filter", str(src), "-o", str(out), "--removed", str(rem), "--config", str(cfg), "--no-progress"]) == 0
    # the reference: BigCode's rule the code preset takes (a line over 1,000 characters), by hand
    want_kept = [i for i, t in enumerate(docs) if max(len(x) for x in t.splitlines()) <= 1000]
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == want_kept == [0]
    assert [json.loads(x)["reason"].split(":")[0] for x in rem.read_text().splitlines()] == ["code"]


@pytest.mark.parametrize("out_name", ["in.jsonl", "in"])  # OUT itself, or OUT.json, is the input
def test_tokenize_refuses_an_output_that_would_replace_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out_name: str
) -> None:
    src = tmp_path / ("in.jsonl" if out_name == "in.jsonl" else "in.json")
    src.write_bytes(_docs(3))
    before = src.read_bytes()
    assert main(["tokenize", "-i", str(src), "-o", str(tmp_path / out_name), "--no-progress"]) == 1
    assert "would replace it" in capsys.readouterr().err
    assert src.read_bytes() == before and sorted(os.listdir(tmp_path)) == [src.name]


@pytest.mark.parametrize(
    "args",
    [
        ["classify", "train", "{src}", "-o", "{src}", "--label-field", "id"],
        ["dedup", "{src}", "-o", "{other}", "--report", "{src}"],
        ["filter", "{src}", "-o", "{other}", "--removed", "{src}"],
        ["mix", "--source", "a={src}", "-o", "{other}", "--removed", "{src}"],
    ],
    ids=["classify-model", "dedup-report", "filter-removed", "mix-removed"],
)
def test_a_side_output_naming_an_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_docs(6))
    before = src.read_bytes()
    fill = {"src": str(src), "other": str(tmp_path / "o.jsonl")}
    assert main(["data", *[a.format(**fill) for a in args], "--no-progress"]) == 1
    assert "is the input" in capsys.readouterr().err
    assert src.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_filter_may_still_rewrite_its_input_in_place(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_docs(6) + (json.dumps({"id": 99, "text": "too short"}) + "\n").encode())
    want = [json.loads(x) for x in src.read_text().splitlines()]
    rem = tmp_path / "r.jsonl"
    assert main(["data", "filter", str(src), "-o", str(src), "--removed", str(rem), "--no-progress"]) == 0
    kept = [json.loads(x)["id"] for x in src.read_text().splitlines()]
    gone = [json.loads(x)["line"] for x in rem.read_text().splitlines()]
    assert sorted(kept + [want[n - 1]["id"] for n in gone]) == sorted(r["id"] for r in want) and 99 not in kept


def test_a_full_disk_while_packing_names_the_shard_not_its_temporary(tmp_path: Path, monkeypatch: Any) -> None:
    import errno

    from qwen25.data.pack import TokenPacker
    from qwen25.errors import Qwen25IOError

    def full(self: Any, *a: Any, **k: Any) -> None:  # what the native packer raises on a full disk
        raise OSError(errno.ENOSPC, "No space left on device (os error 28)", os.path.join(self.out_dir, "shard_00000.bin.tmp"))

    monkeypatch.setattr(TokenPacker, "add", full)
    src = tmp_path / "in.jsonl"
    src.write_bytes(_docs(3))
    out = tmp_path / "packed"
    from qwen25.data.stage_jobs import pack_job

    with pytest.raises(Qwen25IOError, match="No space left on device") as e:
        pack_job([str(src)], str(out), seq_len=16)
    assert e.value.filename == str(out / "shard_00000.bin") and e.value.errno == errno.ENOSPC
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]  # no folder, no temporary


@pytest.mark.parametrize("n", ["0", "-1", "100000"])
@pytest.mark.parametrize("cmd", ["filter", "dedup", "pack", "mix", "tokenize"])
def test_thread_counts_out_of_range_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], cmd: str, n: str) -> None:
    from qwen25.data.decontam_job import MAX_THREADS

    src = tmp_path / "in.jsonl"
    src.write_bytes(_docs(3))
    out = str(tmp_path / "o")
    args = {"mix": ["data", "mix", "--source", f"a={src}", "-o", out], "tokenize": ["tokenize", "-i", str(src), "-o", out]}
    argv = args.get(cmd, ["data", cmd, str(src), "-o", out])
    assert main([*argv, "--num-threads", n, "--no-progress"]) == 1  # -1 was an OverflowError traceback, 0 ran, 100000 hung
    assert f"--num-threads must be an int from 1 to {MAX_THREADS}, got {n}" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_a_job_takes_one_path_as_one_input_not_its_characters(tmp_path: Path) -> None:
    from qwen25.data.stage_jobs import filter_job

    src = tmp_path / "in.jsonl"
    src.write_bytes(_docs(4))
    for inputs in (str(src), src):
        c = filter_job(inputs, str(tmp_path / "o.jsonl"), config=None)
        assert c["records"] == len(src.read_text().splitlines()) == 4


def test_a_job_reads_a_generator_of_paths_once(tmp_path: Path) -> None:
    from qwen25.data.stage_jobs import filter_job

    src = tmp_path / "in.jsonl"
    src.write_bytes(_docs(4))
    c = filter_job((p for p in [str(src)]), str(tmp_path / "o.jsonl"), config=None)
    assert c["records"] == len(src.read_text().splitlines()) == 4  # was 0: the output check used up the generator


@pytest.mark.parametrize("stage", ["dedup", "classify"])
def test_an_output_in_a_folder_that_does_not_exist_yet_is_written(tmp_path: Path, stage: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"record {i} about rivers and towns", "domain": "ab"[i % 2]}) + "\n"
                           for i in range(6)))  # fmt: skip
    out = tmp_path / "new" / "sub" / ("o.jsonl" if stage == "dedup" else "m.bin")
    argv = ["data", "dedup", str(src), "--no-minhash"] if stage == "dedup" else ["data", "classify", "train", str(src)]
    assert main([*argv, "-o", str(out), "--no-progress"]) == 0  # failed: no spill folder / no folder for m.tmp
    assert out.is_file() and os.listdir(out.parent) == [out.name]  # no spill folder or temporary left
    if stage == "dedup":
        assert out.read_text().splitlines() == src.read_text().splitlines()  # distinct texts: all kept by exact dedup


def test_pack_into_the_working_folder_writes_nothing_outside_it(tmp_path: Path, monkeypatch: Any) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_docs(5))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert _pack(src, Path(".")) == 0
    assert sorted(os.listdir(tmp_path)) == ["here", "in.jsonl"]  # no .tmp-here beside it
    manifest = json.loads((here / "manifest.json").read_text())
    assert sorted(os.listdir(here)) == sorted({s["file"] for s in manifest["shards"]} | {"docs.idx", "manifest.json"})


@pytest.mark.parametrize("args", [["--label-field", "text"], ["--label-field", "t", "--text-field", "t_scores", "--scores"]])
def test_classify_predict_refuses_a_label_field_that_is_the_text_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    lab = tmp_path / "lab.jsonl"
    lab.write_text("".join(json.dumps({"text": t, "t_scores": t, "domain": d}) + "\n"
                           for t, d in [("def f(x): return x", "code"), ("the river runs by the town", "web")] * 3))  # fmt: skip
    model = tmp_path / "m.bin"
    assert main(["data", "classify", "train", str(lab), "-o", str(model), "--no-progress"]) == 0
    out = tmp_path / "o.jsonl"
    assert main(["data", "classify", "predict", str(lab), "--model", str(model), "-o", str(out), "--no-progress", *args]) == 1
    assert "is the text field: it would replace every text" in capsys.readouterr().err and not out.exists()
