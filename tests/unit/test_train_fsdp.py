"""FSDP2 on the CPU: ``torchrun --nproc-per-node 2 -m qwen25.train`` over gloo equals one process
within 1e-5 over 10 steps, and its checkpoint (saved by two ranks) resumes in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from qwen25.train import Trainer, apply_overrides, recipes  # noqa: E402
from tests.unit.test_train_data import make_docs, write_packed  # noqa: E402


def _sets(data: str) -> list[str]:
    return ["model.vocab_size=320", "model.hidden_size=32", "model.intermediate_size=64", f"stages.0.data={data}",
            "stages.0.seq_len=32", "stages.0.steps=10", "global_batch_tokens=256", "micro_batch_size=2",
            "warmup_steps=2", "checkpoint_every=5"]


def _metrics(path) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_processes_equal_one(tmp_path) -> None:
    data = write_packed(tmp_path / "data", make_docs(150, seed=41, learnable=True), 32)
    sets = _sets(data)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "qwen25.train", "--recipe", "debug", "--out", str(tmp_path / "two"), "--no-progress",
           "--stop-at-step", "5"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "x 2 rank(s)" in out.stderr  # it really ran on two ranks
    cfg = apply_overrides(recipes.get("debug"), sets)
    one = Trainer(cfg, out_dir=tmp_path / "one", verbose=False).fit()
    two = _metrics(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2, 3, 4, 5]
    # the two-rank checkpoint (a shard per rank) resumes in a single process
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints" / "step-5").glob("*.distcp")) == \
        ["__0_0.distcp", "__1_0.distcp"]
    rest = Trainer(cfg, out_dir=tmp_path / "two", verbose=False).fit()
    two += rest
    assert len(one) == len(two) == 10
    for a, b in zip(one, two):
        assert abs(a["loss"] - b["loss"]) < 1e-5, (a["step"], a["loss"], b["loss"])
        assert abs(a["grad_norm"] - b["grad_norm"]) < 1e-5, a["step"]
        assert a["target_tokens"] == b["target_tokens"]
    assert one[-1]["loss"] < one[0]["loss"]
