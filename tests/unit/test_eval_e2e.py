"""``qwen25 demo e2e`` at its smallest: every stage runs and hands the next what it needs. Checked
independently of the demo's own bookkeeping: the re-tokenized data decodes to the documents the
pipeline packed, the exported models load with transformers-layout configs and their tokenizer,
the loss curves in report.md's plot come from metrics.jsonl files with the steps asked for, the
HumanEval split uses the decontamination job's own hits, and GRPO's metrics hold its steps and its
model is evaluated."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from qwen25.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):  # type: ignore[no-untyped-def]
    from qwen25.eval.e2e import run_e2e

    out = tmp_path_factory.mktemp("e2e")
    lines: list[str] = []
    summary = run_e2e(str(out), pretrain_steps=(6, 2), n_chat=120, n_prompts=4, n_toy=4, n_humaneval=2,
                      sft_epochs=1.0, passkey_lengths=(256,), grpo_episodes=1, log=lines.append)
    return out, summary, lines


def test_e2e_runs_every_stage_and_writes_the_report(run) -> None:  # type: ignore[no-untyped-def]
    out, summary, lines = run
    text = "\n".join(lines)
    for title in ("1. data", "2. pre-training", "3. SFT", "4. pairs from execution feedback", "5. GRPO",
                  "6. evaluation"):
        assert f"== {title}" in text
    # GRPO ran: its metrics hold the episode's steps, and its model was evaluated
    g = [json.loads(x) for x in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert len(g) == summary["grpo"]["steps"] >= 1 and all("reward" in r for r in g)
    assert "grpo" in summary["eval"]["scores"]
    report = (out / "report.md").read_text()
    assert "## Scores per stage" in report and "| base |" in report and "| sft |" in report
    for p in summary["plots"]:
        with open(out / p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert f"]({p})" in report
    assert "plots/loss.png" in summary["plots"] and "plots/scores.png" in summary["plots"]
    pre = [json.loads(x) for x in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in pre] == list(range(1, 9))
    assert [r["seq_len"] for r in pre] == [256] * 6 + [1024] * 2 and pre[-1]["rope_theta"] == 1e6
    assert json.loads((out / "summary.json").read_text())["stages"].keys() >= {"data", "pretrain", "sft", "eval"}


def test_e2e_data_is_the_pipeline_output_retokenized(run) -> None:  # type: ignore[no-untyped-def]
    from qwen25.data.pack import PackedDataset
    from qwen25.tokenizer import Tokenizer

    out, summary, _ = run
    qwen, demo = Tokenizer.qwen25(), Tokenizer.from_pretrained(out / "tokenizer")
    assert demo.vocab_size == 2048 and demo.chat_template
    for phase in ("general", "long"):
        a = PackedDataset(out / "data" / "pipeline" / "packed" / phase)
        b = PackedDataset(out / "data" / "packed" / phase)
        assert a.seq_len == b.seq_len and a.num_documents == b.num_documents > 0
        for i in range(0, a.num_documents, max(1, a.num_documents // 7)):
            assert demo.decode(b.document(i).tolist()) == qwen.decode(a.document(i).tolist())


def test_e2e_models_load_with_their_tokenizer_and_the_job_hits(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import transformers

    out, summary, _ = run
    hits = set(json.loads((out / "data" / "decontam" / "report.json").read_text())["test_sets"]["humaneval"]["hits"])
    assert hits and summary["data"]["humaneval_items_hit"] == len(hits)
    probs = summary["eval"]["humaneval_problems"]
    for name, s in summary["eval"]["scores"].items():
        assert s["humaneval_n_hit"] == sum(p in hits for p in probs)
        assert s["humaneval_n_hit"] + s["humaneval_n_clean"] == len(probs)
    final = out / "sft" / "final"
    hf = transformers.AutoModelForCausalLM.from_pretrained(final)
    assert hf.config.vocab_size == 2048 and hf.config.eos_token_id == 2047
    # the exported folder carries its tokenizer, so qwen25 eval reads it with no other flag
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"question": "Repeat the word: fox", "choices": ["fox", "dog"], "answer": 0}) + "\n")
    assert main(["eval", "--model", str(final), "--task", "mc", "--data", str(items), "--out", str(tmp_path / "ev"),
                 "--no-progress"]) == 0


def test_demo_e2e_needs_an_output_folder(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "e2e"]) == 1
    assert "needs --out DIR" in capsys.readouterr().err
