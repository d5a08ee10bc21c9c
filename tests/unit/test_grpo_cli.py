"""``qwen25 grpo``: the debug recipe end to end on text prompts (Qwen2.5's tokenizer and chat
template), its outputs, --print-config, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from qwen25.cli import main  # noqa: E402

PROMPTS = [
    {"prompt": "What is 2+3? Put the answer in \\boxed{}.", "answer": "5", "id": "a"},
    {"prompt": [{"role": "user", "content": "Compute 10-4."}], "answer": "6", "id": "b"},
    {"prompt": "What is 9+9?", "answer": "18", "id": "c"},
    {"prompt": "What is 7*6?", "answer": "42", "id": "d"},
]
SMALL = ["--set", "method.max_completion_length=4", "--set", "method.episodes=1", "--set", "method.num_generations=4",
         "--set", "global_batch_tokens=1024", "--no-progress"]


def write(path, rows) -> str:  # type: ignore[no-untyped-def]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_cli_grpo_debug_recipe(tmp_path, capsys):  # type: ignore[no-untyped-def]
    data = write(tmp_path / "p.jsonl", PROMPTS)
    out = tmp_path / "run"
    assert main(["grpo", "--recipe", "debug", "--prompts", data, "--out", str(out), *SMALL]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps_run"] == 2 and summary["episodes"] == 1  # 16 samples in steps of 8
    assert summary["reward"] == 0.0  # a random policy does not answer arithmetic
    assert (out / "final" / "config.json").is_file() and (out / "metrics.jsonl").is_file()
    samples = [json.loads(line) for line in (out / "rollouts" / "episode-0.jsonl").read_text().splitlines()]
    assert len(samples) == 16 and {s["id"] for s in samples} == {"a", "b", "c", "d"}
    assert all(s["prompt"].endswith(f"p.jsonl:{'abcd'.index(s['id']) + 1}") for s in samples)
    assert all(s["tokens"] <= 4 and set(s["rewards"]) == {"math", "format"} for s in samples)
    rec = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["rewards/math/applied"] == 1.0 and rec["kl"] == 0.0

    assert main(["grpo", "--recipe", "debug", "--prompts", data, "--print-config", *SMALL]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["stages"][0]["steps"] == 2 and cfg["stages"][0]["data"] == [data]
    assert cfg["method"]["num_generations"] == 4


def test_cli_grpo_errors(tmp_path, capsys):  # type: ignore[no-untyped-def]
    data = write(tmp_path / "p.jsonl", PROMPTS[:1] + [{"text": "no prompt here"}])
    assert main(["grpo", "--recipe", "debug", "--prompts", data, "--out", str(tmp_path / "o"), *SMALL]) == 1
    err = capsys.readouterr().err
    assert "p.jsonl:2: needs 'prompt'" in err and err.count("\n") == 1
    assert main(["grpo", "--recipe", "debug", "--out", str(tmp_path / "o")]) == 1
    assert "--prompts is required" in capsys.readouterr().err
    assert main(["grpo", "--recipe", "nope", "--prompts", data]) == 1
    assert "unknown GRPO recipe 'nope'" in capsys.readouterr().err
    assert main(["grpo", "--prompts", data, "--set", "method.temperature=0", "--print-config"]) == 1
    assert "temperature must be > 0" in capsys.readouterr().err
