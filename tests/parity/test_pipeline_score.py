"""`[score]` in `qwen25 data run`: the LMScorer stage (the scorer itself is checked against
transformers in test_lm_scorer) rates every document that survives decontamination, keeps its
scores in kept.jsonl, and removes those under `min` with stage "score"; the stages still chain."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qwen25.data.classify import LMScorer  # noqa: E402
from qwen25.data.pipeline import STAGES, run_pipeline  # noqa: E402
from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.model import Qwen2ForCausalLM  # noqa: E402
from tests.parity.test_lm_scorer import tiny_chat_checkpoint  # noqa: E402
from tests.unit.test_pipeline import CONFIG, read_jsonl, write_corpus  # noqa: E402

SCORE = '\n[score]\nmodel = "ckpt"\ndimensions = {{ quality = "overall quality" }}\nmax_doc_tokens = 32\nbatch_size = 4\ndevice = "cpu"\n{extra}'


def test_score_stage(tmp_path):
    web, code = write_corpus(tmp_path)
    tiny_chat_checkpoint(tmp_path / "ckpt")
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0) + SCORE.format(extra=""))
    run_pipeline(cfg, progress=False)
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    text = {("web", r["id"]): r["text"] for r in web} | {("code", r["id"]): r["text"] for r in code}
    scorer = LMScorer(Qwen2ForCausalLM.from_pretrained(tmp_path / "ckpt").eval(), dimensions={"quality": "overall quality"},
                      max_doc_tokens=32)  # fmt: skip
    want = scorer.score([text[(k["source"], k["id"])] for k in kept])[:, 0]
    assert [k["scores"]["quality"] for k in kept] == pytest.approx(want.tolist(), abs=1e-5)
    # a threshold at the median removes the documents under it, and only those
    scored = {(k["source"], k["id"]): k["scores"]["quality"] for k in kept}
    removed_before = {(r["source"], r.get("id")) for r in read_jsonl(tmp_path / "out" / "removed.jsonl")}
    vals = sorted(scored.values())  # a threshold between two scores, far from both (float noise)
    i = max(range(1, len(vals)), key=lambda j: (vals[j] - vals[j - 1]) - abs(j - len(vals) / 2) * 1e-3)
    t = (vals[i - 1] + vals[i]) / 2
    assert vals[i] - vals[i - 1] > 1e-4
    cfg.write_text(CONFIG.format(max_repeat=1.0) + SCORE.format(extra=f"min = {{ quality = {t} }}\n"))
    rep = run_pipeline(cfg, progress=False)
    low = {r_id for r_id, v in scored.items() if v < t}
    gone = {(r["source"], r.get("id")) for r in read_jsonl(tmp_path / "out" / "removed.jsonl") if r["stage"] == "score"}
    assert low and gone == low
    assert all(r["reason"].startswith("low_score: quality=") for r in read_jsonl(tmp_path / "out" / "removed.jsonl") if r["stage"] == "score")
    assert {(r["source"], r.get("id")) for r in read_jsonl(tmp_path / "out" / "removed.jsonl") if r["stage"] != "score" and r["stage"] != "mix"} <= removed_before
    st = rep["stages"]
    assert st["score"]["removed"]["docs"] == len(low)
    for a, b in zip(STAGES, STAGES[1:]):
        assert st[a]["out"] == st[b]["in"], (a, b)


def test_score_config_errors(tmp_path):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0) + SCORE.format(extra=""))
    with pytest.raises(FileNotFoundError, match="config.json"):
        run_pipeline(cfg, progress=False)
    tiny_chat_checkpoint(tmp_path / "ckpt")
    cfg.write_text(CONFIG.format(max_repeat=1.0) + SCORE.format(extra="min = { qualty = 2.0 }\n"))
    with pytest.raises(Qwen25ValueError, match="qualty"):
        run_pipeline(cfg, progress=False)
