"""Hostile-input trial of ``qwen25 decontaminate``: a ``--report`` path that names an input or a
file the run manages is refused before anything is touched; the inputs' bytes, read before and
after, are the reference."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qwen25.cli import main

TEST_ITEM = "def add(a, b):\n    # add two numbers and return the sum of both of them to the caller\n    return a + b\n"


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"id": i, "text": f"record {i}: rivers, bridges and towns"}) + "\n" for i in range(5))
                     + json.dumps({"id": 9, "text": "copied: " + TEST_ITEM}) + "\n")  # fmt: skip
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"id": "t0", "text": TEST_ITEM}) + "\n")
    return train, test


@pytest.mark.parametrize("which", ["train", "test", "clean", "folder"])
def test_a_report_path_that_would_replace_an_input_or_an_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    train, test = _setup(tmp_path)
    before = {p: p.read_bytes() for p in (train, test)}
    out = tmp_path / "out"
    report = {"train": train, "test": test, "clean": out / "clean" / "train.jsonl", "folder": tmp_path}[which]
    args = ["decontaminate", "--train", str(train), "--test", str(test), "--out", str(out), "--no-progress"]
    assert main([*args, "--report", str(report)]) == 1
    assert "--report" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before  # the input was not removed or replaced
    assert not out.exists()  # refused before the output folder was made
    assert main(args) == 0  # the same run with the default report: the copied record is removed
    removed = [json.loads(x)["id"] for x in (out / "removed" / "train.jsonl").read_text().splitlines()]
    assert removed == [9] and os.path.isfile(out / "report.json")


def test_run_job_takes_one_path_and_refuses_an_empty_train_list_that_would_sweep_out(tmp_path: Path) -> None:
    from qwen25.data.decontam_job import run_job
    from qwen25.errors import Qwen25Error

    train, test = _setup(tmp_path)
    out = tmp_path / "out"
    rep = run_job(train=str(train), tests=str(test), out=str(out), progress=False)  # one path each, not characters
    assert rep["counts"]["in"] == len(train.read_text().splitlines()) and rep["counts"]["removed"] == 1
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(Qwen25Error, match="train is empty"):
        run_job(train=[], tests=[str(test)], out=str(out), progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing swept
    (tmp_path / "afile").write_text("x")
    with pytest.raises(Qwen25Error, match="is a file"):
        run_job(train=[str(train)], tests=[str(test)], out=str(tmp_path / "afile"), progress=False)


def test_a_quoted_tilde_glob_is_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qwen25.data.decontam_job import expand_train

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jsonl").write_text("{}\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand_train(["~/d/*.jsonl"]) == [str(tmp_path / "d" / "a.jsonl")]
