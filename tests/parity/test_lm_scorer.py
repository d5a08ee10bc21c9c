"""LMScorer (model-based quality scoring) against a reference built only from transformers: its
tokenizer renders the same chat prompts, its Qwen2ForCausalLM (same random weights) runs each
prompt alone, unpadded, and the expected rating is computed from its logits."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qwen25.data.classify import LMScorer, Scorer  # noqa: E402
from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.model import Qwen2ForCausalLM  # noqa: E402
from tests.conftest import bytes_to_unicode  # noqa: E402

warnings.filterwarnings("ignore", module="transformers")
transformers.logging.set_verbosity_error()

DIMS = {"quality": "overall quality", "edu": "educational value for a student"}
TEXTS = [
    "The mill by the river ground flour for the town's bakeries for two centuries.",
    "buy now!!! cheap cheap cheap",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. " * 6,  # cut to 24 tokens
    "短い文章です。",
]


def tiny_chat_checkpoint(d):  # type: ignore[no-untyped-def]
    """A tiny random-weight Qwen2 with the Qwen2.5 vocabulary, saved by transformers into ``d``."""
    cfg = transformers.Qwen2Config(vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   tie_word_embeddings=True)  # fmt: skip
    hf = transformers.Qwen2ForCausalLM(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g) if "norm" in name else 0.3 * torch.randn(p.shape, generator=g))
    hf.tie_weights()
    hf.save_pretrained(d)
    return hf.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("lm")
    hf = tiny_chat_checkpoint(d)
    return hf, Qwen2ForCausalLM.from_pretrained(d).eval(), d


def reference(hf, hf_tok, text: str, desc: str, max_doc: int, lo: int = 0, hi: int = 5) -> float:
    ids = hf_tok.encode(text, add_special_tokens=False)
    if len(ids) > max_doc:
        # the first max_doc tokens' bytes, a split UTF-8 character at the end dropped
        raw = b"".join(_token_bytes(t) for t in hf_tok.convert_ids_to_tokens(ids[:max_doc]))
        text = raw.decode("utf-8", errors="ignore")
    user = (f"Rate the following text for {desc}.\n\nText:\n{text}\n\n"
            f"Answer with a single digit from {lo} (lowest) to {hi} (highest).")  # fmt: skip
    msgs = [{"role": "system", "content": "You are a careful annotator of pre-training data."}, {"role": "user", "content": user}]
    prompt = hf_tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    if isinstance(prompt, dict) or hasattr(prompt, "input_ids"):
        prompt = prompt["input_ids"]
    with torch.no_grad():
        logits = hf(torch.tensor([prompt])).logits[0, -1].double()
    digits = [hf_tok.convert_tokens_to_ids(str(k)) for k in range(lo, hi + 1)]
    p = torch.softmax(logits[digits], dim=-1)
    return float((p * torch.arange(lo, hi + 1, dtype=torch.float64)).sum())


def _token_bytes(tok: str) -> bytes:
    """GPT-2 byte-level token string -> bytes."""
    inv = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(inv[ch] for ch in tok)


def test_scores_match_transformers_reference(models, qwen25_data_dir) -> None:  # type: ignore[no-untyped-def]
    hf, ours, _ = models
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(qwen25_data_dir))
    scorer = LMScorer(ours, dimensions=DIMS, max_doc_tokens=24, batch_size=3)
    assert isinstance(scorer, Scorer) and scorer.dimensions == ["quality", "edu"]
    got = scorer.score(TEXTS)
    assert got.shape == (len(TEXTS), 2)
    for i, t in enumerate(TEXTS):
        for j, desc in enumerate(DIMS.values()):
            assert got[i, j] == pytest.approx(reference(hf, hf_tok, t, desc, 24), abs=1e-5), (i, j)
    assert ((got >= 0) & (got <= 5)).all() and got.std() > 0  # random weights: not all the same
    # batching and order do not change a document's scores
    again = LMScorer(ours, dimensions=DIMS, max_doc_tokens=24, batch_size=1).score(TEXTS[::-1])
    assert abs(again[::-1] - got).max() < 1e-5  # fp32 sums over other batch shapes


def test_bad_arguments(models) -> None:  # type: ignore[no-untyped-def]
    _, ours, _ = models
    with pytest.raises(Qwen25ValueError, match="digits"):
        LMScorer(ours, lo=3, hi=12)
    with pytest.raises(Qwen25ValueError, match="prompt must contain"):
        LMScorer(ours, prompt="no placeholders")
    with pytest.raises(Qwen25ValueError, match="empty"):
        LMScorer(ours, dimensions={})
    with pytest.raises(TypeError):
        LMScorer(ours).score("a single string")


def test_score_command(models, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from qwen25.cli import main

    _, ours, ckpt = models
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)) + "{bad\n")
    out = tmp_path / "scored.jsonl"
    args = ["data", "score", str(src), "--model", str(ckpt), "-o", str(out), "--dimension", "quality=overall quality",
            "--dimension", "edu=educational value for a student", "--max-doc-tokens", "24", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(args) == 1
    assert f"{src}:5:" in capsys.readouterr().err
    assert main([*args, "--skip-bad", "--batch-size", "3"]) == 0
    got = [json.loads(x) for x in out.read_text().splitlines()]
    want = LMScorer(ours, dimensions=DIMS, max_doc_tokens=24).score(TEXTS)
    assert [r["id"] for r in got] == list(range(len(TEXTS)))
    for r, w in zip(got, want):
        assert list(r["scores"]) == ["quality", "edu"]
        assert [r["scores"]["quality"], r["scores"]["edu"]] == pytest.approx(w.tolist(), abs=1e-5)
