"""qwen25.eval.perplexity against transformers: the reference rebuilds the packed rows from the
texts with HF tokenizers (each document, then <|endoftext|>, cut into rows, the last one padded),
runs every document piece of every row alone through transformers' Qwen2ForCausalLM loaded from
the same checkpoint, and sums the NLL of each piece's tokens after its first."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qwen25.data.pack import TokenPacker  # noqa: E402
from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.eval import perplexity  # noqa: E402
from qwen25.model import Qwen2ForCausalLM, Qwen25Config  # noqa: E402
from tests.conftest import build_hf_qwen25  # noqa: E402

TEXTS = [
    "The river bends twice before it reaches the old mill, where the water slows and turns green.",
    "def area(r):\n    return 3.14159 * r * r\n",
    "Short one.",
    "A much longer document about trains. " * 12,  # spans rows
    "最后一个文档：中文文本。",
]
SEQ = 48


def reference(hf, texts: list[str]) -> tuple[float, int]:
    tok = build_hf_qwen25()
    sep = tok.token_to_id("<|endoftext|>")
    stream: list[int] = []
    starts = set()
    for t in texts:
        starts.add(len(stream))
        stream += tok.encode(t).ids + [sep]
    total, count = 0.0, 0
    for a in range(0, len(stream), SEQ):
        row = list(range(a, min(a + SEQ, len(stream))))  # global offsets of the real tokens
        cuts = [0] + [j for j, g in enumerate(row) if g in starts and j > 0] + [len(row)]
        for lo, hi in zip(cuts, cuts[1:]):
            piece = [stream[g] for g in row[lo:hi]]
            if len(piece) < 2:
                continue
            with torch.no_grad():
                logits = hf(torch.tensor([piece])).logits[0].double()
            lp = logits[:-1].log_softmax(-1).gather(-1, torch.tensor(piece[1:])[:, None])
            total -= float(lp.sum())
            count += len(piece) - 1
    return total, count


def test_perplexity_equals_transformers_on_unpacked_pieces(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = Qwen25Config.from_preset("debug", max_position_embeddings=128)
    model = Qwen2ForCausalLM.from_config(cfg, seed=1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.mul_(10)
    model.save_pretrained(tmp_path / "m")
    hf = transformers.Qwen2ForCausalLM.from_pretrained(tmp_path / "m", dtype=torch.float32).eval()
    with TokenPacker(tmp_path / "packed", seq_len=SEQ) as packer:
        packer.add(TEXTS)
    ours = perplexity(Qwen2ForCausalLM.from_pretrained(tmp_path / "m"), tmp_path / "packed", batch_size=2)
    total, count = reference(hf, TEXTS)
    assert ours["tokens"] == count
    assert ours["nll"] * ours["tokens"] == pytest.approx(total, rel=1e-5)
    assert ours["ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)
    assert ours["sequences"] == len(ours["per_sequence"]) > 2
    # only the first rows
    part = perplexity(model, tmp_path / "packed", max_sequences=1)
    assert part["sequences"] == 1 and part["tokens"] == ours["per_sequence"][0]["tokens"]
    with pytest.raises(Qwen25ValueError, match="longer than the model's 32 positions"):
        perplexity(Qwen2ForCausalLM.from_config(cfg.replace(max_position_embeddings=32)), tmp_path / "packed")
    with pytest.raises(FileNotFoundError, match="manifest"):
        perplexity(model, tmp_path)
