"""Packed sequences feed the model: `PackedDataset.position_ids` restarts at every document
start (computed here from HF tokenizers' token counts, not from the packer's index), and the
model given those positions scores each document of a packed row as it scores the document alone."""

from __future__ import annotations

import random

import numpy as np
import pytest

from qwen25.data import PackedDataset, TokenPacker

WORDS = "river market bread winter garden music story harbour lantern orchard the and of".split()


def test_position_ids_restart_at_document_starts(tmp_path, hf_tok):
    rng = random.Random(3)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(30)]
    with TokenPacker(tmp_path, seq_len=32, seqs_per_shard=3) as p:
        p.add(docs)
    ds = PackedDataset(tmp_path)
    # the reference: every document is its tokens plus one separator, back to back
    starts, pos = [], 0
    for d in docs:
        starts.append(pos)
        pos += len(hf_tok.encode(d, add_special_tokens=False).ids) + 1
    for i in range(len(ds)):
        lo = 32 * i
        want, cur = [], 0
        for t in range(lo, lo + 32):
            cur = 0 if t == lo or t in starts else cur + 1
            want.append(cur)
        assert ds.position_ids(i).tolist() == want, i
    assert ds.position_ids(-1).tolist() == ds.position_ids(len(ds) - 1).tolist()
    with pytest.raises(IndexError):
        ds.position_ids(len(ds))


def test_model_scores_packed_documents_as_alone(tmp_path):
    torch = pytest.importorskip("torch")
    from qwen25.model import Qwen25Config, Qwen2ForCausalLM

    rng = random.Random(5)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(6)]
    with TokenPacker(tmp_path, seq_len=48) as p:
        p.add(docs)
    ds = PackedDataset(tmp_path)
    cfg = Qwen25Config(vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for prm in model.parameters():
            prm.normal_(0, 0.3)
    seq = torch.tensor(ds[0].astype(np.int64))[None]
    pos = torch.tensor(ds.position_ids(0))[None]
    with torch.no_grad():
        packed = model(seq, position_ids=pos).logits[0]
        starts = ds.document_starts(0).tolist() + [48]
        for a, b in zip(starts, starts[1:]):
            alone = model(seq[:, a:b]).logits[0]
            assert torch.allclose(packed[a:b], alone, atol=1e-5), (a, b)
    assert len(starts) > 3  # several documents share the row
