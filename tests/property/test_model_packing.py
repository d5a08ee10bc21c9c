"""Packing invariants (hypothesis): a document's logits do not depend on what it is packed with,
where it sits in the row, or on left padding of the row. The unpacked path is the one checked
against transformers in tests/parity/test_model_hf.py."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qwen25.model import Qwen25Config, Qwen2ForCausalLM  # noqa: E402

CFG = Qwen25Config.from_preset("debug-moe", vocab_size=500, num_hidden_layers=2)
MODEL = Qwen2ForCausalLM.from_config(CFG, seed=1).eval()
# Larger weights than the default init, so logits differ clearly between contexts.
with torch.no_grad():
    _g = torch.Generator().manual_seed(0)
    for name, p in MODEL.named_parameters():
        if "norm" not in name:
            p.normal_(0, 0.2, generator=_g)

docs_strategy = st.lists(st.lists(st.integers(0, CFG.vocab_size - 1), min_size=1, max_size=12), min_size=1, max_size=4)


@settings(max_examples=15)
@given(docs=docs_strategy, pad=st.integers(0, 3))
@torch.no_grad()
def test_packed_documents_are_independent(docs: list[list[int]], pad: int) -> None:
    ids = torch.tensor([t for d in docs for t in d])[None]
    pos = torch.cat([torch.arange(len(d)) for d in docs])[None]
    packed = MODEL(ids, position_ids=pos).logits[0]
    start = 0
    for d in docs:
        alone = MODEL(torch.tensor(d)[None]).logits[0]
        torch.testing.assert_close(packed[start:start + len(d)], alone, atol=2e-5, rtol=0)
        start += len(d)
    # the same row left-padded (mask) gives the same logits on its real tokens
    padded = torch.cat([torch.zeros(1, pad, dtype=torch.long), ids], 1)
    mask = torch.cat([torch.zeros(1, pad, dtype=torch.long), torch.ones_like(ids)], 1)
    if len(docs) == 1:
        got = MODEL(padded, attention_mask=mask).logits[0, pad:]
        torch.testing.assert_close(got, packed, atol=2e-5, rtol=0)


@settings(max_examples=30)
@given(
    layers=st.integers(1, 6), heads=st.sampled_from([(4, 1), (4, 2), (8, 8), (6, 2)]), theta=st.floats(1e3, 1e7),
    eps=st.sampled_from([1e-5, 1e-6]), tied=st.booleans(), experts=st.sampled_from([0, 4, 8]),
    yarn=st.one_of(st.none(), st.tuples(st.floats(1.5, 8.0), st.integers(64, 4096))),
    eos=st.one_of(st.none(), st.integers(0, 100), st.lists(st.integers(0, 100), min_size=1, max_size=3)),
)
def test_config_json_round_trip(layers, heads, theta, eps, tied, experts, yarn, eos) -> None:  # type: ignore[no-untyped-def]
    from qwen25.model import RopeScaling

    c = Qwen25Config(
        num_hidden_layers=layers, num_attention_heads=heads[0], num_key_value_heads=heads[1], hidden_size=48,
        rope_theta=theta, rms_norm_eps=eps, tie_word_embeddings=tied, num_experts=experts,
        num_experts_per_tok=2 if experts else 0, moe_intermediate_size=16 if experts else 0,
        shared_expert_intermediate_size=32 if experts else 0, eos_token_id=eos,
        rope_scaling=None if yarn is None else RopeScaling(factor=yarn[0], original_max_position_embeddings=yarn[1]),
    )
    assert Qwen25Config.from_hf_dict(c.to_hf_dict()) == c
