"""Hostile-input trial of ``qwen25 data run``: configurations that used to fail late or read the
wrong files. Each expectation is checked against an independent reference (Python's ``glob``
and ``json``, the files on disk), not against the run's own counts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qwen25.data.pipeline import run_pipeline
from qwen25.errors import Qwen25Error


def _docs(n: int, start: int = 0) -> str:
    return "".join(
        json.dumps({"id": i, "text": f"Document {i} tells of rivers. The bridges cross them. Towns grow along them."}) + "\n"
        for i in range(start, start + n)
    )


def _toml(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "pipeline.toml"
    p.write_text(body)
    return p


def test_an_input_inside_the_output_folder_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "in.jsonl").write_text(_docs(5))
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "out/*.jsonl"\n')
    with pytest.raises(Qwen25Error, match=r"pipeline\.toml: sources\[0\].*in\.jsonl is inside the output folder"):
        run_pipeline(cfg, progress=False)
    assert os.listdir(out) == ["in.jsonl"]
