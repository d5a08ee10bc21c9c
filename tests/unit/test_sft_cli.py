"""``qwen25 sft``: the output layout of ``qwen25 pretrain`` plus the data report, resume, one-line
errors naming the bad record, --skip-bad, the recipes' values, and a tiny two-stage ``sft-long``
whose second stage trains past the first's window with YaRN and records DCA."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from qwen25.cli import main  # noqa: E402
from qwen25.train import sft  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["sft", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_debug_recipe_layout_report_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc, stdout, err = run_cli(capsys, "--recipe", "debug", "--set", "method.epochs=0.1", "--out", str(out))
    assert rc == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    report = json.loads((out / "sft_report.json").read_text())
    (stage,) = report["stages"]
    assert (stage["records"], stage["kept"], stage["skipped"], stage["truncated"]) == (2000, 2000, 0, 0)
    # steps = ceil(epochs x packed rows / rows per step), rows per step = 2048 / 256
    assert summary["of"] == summary["step"] == math.ceil(0.1 * stage["packed_rows"] / 8)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, summary["of"] + 1))
    assert (out / "checkpoints" / f"step-{summary['of']}").is_dir() and (out / "loss.png").is_file()
    assert summary["data"] == [{"stage": "sft", "kept": 2000, "truncated": 0, "skipped": 0}]
    # a rerun resumes from the checkpoint and has nothing left to do
    rc, stdout, _ = run_cli(capsys, "--recipe", "debug", "--set", "method.epochs=0.1", "--out", str(out))
    assert rc == 0 and json.loads(stdout.strip().splitlines()[-1])["steps_run"] == 0


def test_steps_follow_epochs_and_packed_rows(tmp_path: Path) -> None:
    cfg = sft.recipe("debug")
    prepared = sft.prepare(cfg, tmp_path)
    (stage,) = prepared.report["stages"]
    lengths = prepared.data[0].lengths().tolist()
    rows = len(sft.pack_bfd(lengths, 256))
    assert stage["packed_rows"] == rows
    assert prepared.config.stages[0].steps == -(-2 * rows // 8)  # 2 epochs of 8-row steps, rounded up
    assert stage["tokens"] == sum(lengths)


def write(path: Path, records: list[Any]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_bad_record_is_a_one_line_error_or_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = sft.debug_chat(40)
    bad = {"messages": [{"role": "user", "content": "no answer"}]}
    data = write(tmp_path / "chat.jsonl", good[:5] + [bad] + good[5:])
    common = ["--recipe", "debug", "--data", data, "--set", "method.epochs=0.05"]
    rc, _, err = run_cli(capsys, *common, "--out", str(tmp_path / "a"))
    assert rc == 1
    assert err.strip() == f"qwen25 sft: error: {data}:6: no assistant turn (nothing to train on)"
    rc, _, err = run_cli(capsys, *common, "--skip-bad", "--out", str(tmp_path / "b"))
    assert rc == 0, err
    (stage,) = json.loads((tmp_path / "b" / "sft_report.json").read_text())["stages"]
    assert (stage["kept"], stage["skipped"]) == (40, 1)
    assert stage["skipped_records"] == [{"where": f"{data}:6", "reason": "no assistant turn (nothing to train on)"}]


def test_recipes_carry_the_report_values() -> None:
    cfg = sft.recipe("sft")
    (s,) = cfg.stages
    # Qwen2.5 report, post-training: 2 epochs, 32,768 tokens, lr 7e-6 -> 7e-7, wd 0.1, clipping 1.0
    assert (cfg.method["epochs"], s.seq_len, cfg.lr, cfg.lr * cfg.min_lr_ratio) == (2.0, 32768, 7e-6, pytest.approx(7e-7))
    assert (cfg.weight_decay, cfg.clip_grad_norm, cfg.warmup_steps) == (0.1, 1.0, 0)
    long = sft.recipe("sft-long")
    assert [x.seq_len for x in long.stages] == [32768, 262144]
    assert long.stages[1].rope_scaling["rope_type"] == "yarn" and long.stages[1].dca is not None
    with pytest.raises(ValueError, match="unknown SFT recipe"):
        sft.recipe("nope")


def test_tiny_sft_long_two_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = sft.debug_chat(60)
    long = [{"messages": [{"role": "user", "content": "Repeat: " + " ".join(sft.DEBUG_WORDS)},
                          {"role": "assistant", "content": " ".join(sft.DEBUG_WORDS * 2)}]}] * 3
    data = write(tmp_path / "chat.jsonl", short + long)
    yarn = '{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}'
    dca = '{"chunk_size": 64, "local_size": 16, "original_max_position_embeddings": 64}'
    sets = ["model=debug", "model.vocab_size=512", "init_from=none", "method.tokenizer=builtin:debug-chat",
            "activation_checkpointing=false", "device=cpu", "precision=fp32", "global_batch_tokens=512",
            "micro_batch_size=2", "stages.0.seq_len=64", "stages.1.seq_len=256", f"stages.1.rope_scaling={yarn}",
            f"stages.1.dca={dca}", "method.epochs=[0.2, 0.2]", "checkpoint_every=0"]
    args = ["--recipe", "sft-long", "--data", data, "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    rc, stdout, err = run_cli(capsys, *args)
    assert rc == 0, err
    report = json.loads((tmp_path / "run" / "sft_report.json").read_text())["stages"]
    # stage 1 leaves the long conversations to stage 2 (counted, not silently dropped)
    assert (report[0]["kept"], report[0]["skipped_too_long"]) == (60, 3)
    assert (report[1]["kept"], report[1]["skipped"]) == (63, 0)
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["seq_len"] for m in metrics] == [64] * report[0]["steps"] + [256] * report[1]["steps"]
    last = sorted((tmp_path / "run" / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))[-1]
    config = json.loads((last / "config.json").read_text())
    assert config["rope_scaling"]["rope_type"] == "yarn" and config["rope_scaling"]["factor"] == 4.0
    assert config["dual_chunk_attention_config"]["chunk_size"] == 64


TINY_SETS = ["stages.0.seq_len=128", "global_batch_tokens=512", "micro_batch_size=2", "method.epochs=1.0",
             "warmup_steps=2", "checkpoint_every=3"]


def _metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]


def test_exact_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stopping after step 3 and rerunning gives the losses of one uninterrupted run, step by step:
    the packed-row position and RNG come back from the checkpoint."""
    data = write(tmp_path / "chat.jsonl", sft.debug_chat(120, seed=5))
    args = ["--recipe", "debug", "--data", data]
    for s in TINY_SETS:
        args += ["--set", s]
    rc, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "whole"))
    assert rc == 0, err
    rc, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "split"), "--stop-at-step", "3")
    assert rc == 0, err
    rc, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "split"))
    assert rc == 0, err
    whole, split = _metrics(tmp_path / "whole"), _metrics(tmp_path / "split")
    assert len(whole) >= 5
    assert [m["loss"] for m in split] == [m["loss"] for m in whole]
    assert [m["target_tokens"] for m in split] == [m["target_tokens"] for m in whole]


def test_two_gloo_processes_equal_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FSDP2 over gloo with 2 processes (torchrun) trains SFT with the losses of one process."""
    import os
    import subprocess
    import sys

    if not torch.distributed.is_available():  # pragma: no cover
        pytest.skip("torch.distributed is not available")
    data = write(tmp_path / "chat.jsonl", sft.debug_chat(120, seed=5))
    args = ["--recipe", "debug", "--data", data]
    for s in TINY_SETS:
        args += ["--set", s]
    rc, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "one"))
    assert rc == 0, err
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "qwen25.cli",
           "sft", *args, "--out", str(tmp_path / "two"), "--no-progress"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert len(one) == len(two) >= 5
    for a, b in zip(one, two):
        assert b["target_tokens"] == a["target_tokens"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
