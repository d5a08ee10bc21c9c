"""Dual Chunk Attention inside the model, against independent references: the model's standard
attention (one chunk), and a layer-by-layer reference forward whose attention is the naive DCA of
tests/unit/test_dca.py (explicit per-(query, key) position choice, one softmax over a [T, T]
matrix) with RoPE tables from transformers' Qwen2RotaryEmbedding (YaRN included). Prefill,
incremental decoding, chunked prefill, left-padded batches; config.json reading and writing."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qwen25.errors import FormatError, Qwen25ValueError  # noqa: E402
from qwen25.model import DualChunkAttention, KVCache, Qwen2ForCausalLM, Qwen25Config, prefill  # noqa: E402
from tests.unit.test_dca import naive_dca  # noqa: E402

hq = pytest.importorskip("transformers.models.qwen2.modeling_qwen2")
from transformers import Qwen2Config  # noqa: E402

V = 512


def _cfg(**kw):  # type: ignore[no-untyped-def]
    base = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=V, max_position_embeddings=64, rope_theta=10000.0,
                torch_dtype="float32")
    base.update(kw)
    return Qwen25Config(**base)


def _hf_tables(cfg: Qwen25Config, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [n, D] from transformers' rotary embedding (YaRN attention factor folded in)."""
    hc = Qwen2Config(hidden_size=cfg.hidden_size, num_attention_heads=cfg.num_attention_heads,
                     num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
                     rope_theta=cfg.rope_theta,
                     rope_scaling=None if cfg.rope_scaling is None else dict(cfg.rope_scaling.to_dict(), rope_type="yarn"))
    rot = hq.Qwen2RotaryEmbedding(hc)
    x = torch.zeros(1, n, cfg.head_dim_)
    cos, sin = rot(x, torch.arange(n)[None])
    return cos[0].float(), sin[0].float()


@torch.no_grad()
def reference_logits(model: Qwen2ForCausalLM, ids: torch.Tensor, seq_len: int | None = None) -> torch.Tensor:
    """The model's weights, attention replaced by the naive DCA reference (unpadded rows)."""
    cfg = model.config
    dc = cfg.dual_chunk_attention_config
    assert dc is not None
    b, t = ids.shape
    cos, sin = _hf_tables(cfg, dc.chunk_size + 1)
    x = model.model.embed_tokens(ids)
    for layer in model.model.layers:
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(b, t, a.nh, a.d).transpose(1, 2)
        k = a.k_proj(h).view(b, t, a.nkv, a.d).transpose(1, 2)
        v = a.v_proj(h).view(b, t, a.nkv, a.d).transpose(1, 2)
        y = naive_dca(q, k, v, dc.chunk_size, dc.local_size, dc.original_max_position_embeddings, torch.arange(t),
                      cos, sin, seq_len=seq_len)
        x = x + a.o_proj(y.transpose(1, 2).reshape(b, t, -1))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return model.lm_head(model.model.norm(x))


def _model(cfg: Qwen25Config, dtype: torch.dtype = torch.float32) -> Qwen2ForCausalLM:
    return Qwen2ForCausalLM.from_config(cfg, seed=1, dtype=dtype).eval()


def _ids(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------- config.json
def test_config_json_both_spellings_and_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dca = {"chunk_size": 262144, "local_size": 8192, "original_max_position_embeddings": 262144,
           "sparse_attention_enabled": True}
    released = {"model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4,
                "intermediate_size": 18944, "num_hidden_layers": 28, "max_position_embeddings": 1010000,
                "rope_theta": 10000000.0, "torch_dtype": "bfloat16", "dual_chunk_attention_config": dca}
    v5 = dict(released)
    del v5["rope_theta"], v5["torch_dtype"]
    v5.update(rope_parameters={"rope_type": "default", "rope_theta": 10000000.0}, dtype="bfloat16")
    for d in (released, v5):
        c = Qwen25Config.from_hf_dict(d)
        assert c.dual_chunk_attention_config == DualChunkAttention(
            chunk_size=262144, local_size=8192, original_max_position_embeddings=262144)
        assert c.rope_theta == 1e7
        c.save_pretrained(tmp_path)
        written = json.loads((tmp_path / "config.json").read_text())
        assert written["dual_chunk_attention_config"] == dca  # unknown keys kept
        again = Qwen25Config.from_pretrained(tmp_path)
        assert again == c and again.dual_chunk_attention_config.extra == {"sparse_attention_enabled": True}
    plain = Qwen25Config.from_preset("0.5B")
    assert "dual_chunk_attention_config" not in plain.to_hf_dict()
    # transformers reads the file we write and keeps the key
    assert Qwen2Config.from_dict(written).dual_chunk_attention_config == dca


def test_with_dca_defaults_and_bad_values() -> None:
    c = Qwen25Config.from_preset("7B").with_dca()
    assert c.dual_chunk_attention_config == DualChunkAttention(chunk_size=32768, local_size=1024,
                                                               original_max_position_embeddings=32768)
    c2 = c.with_dca(chunk_size=100, local_size=10, original_max_position_embeddings=0)
    assert (c2.dual_chunk_attention_config.chunk_size, c2.dual_chunk_attention_config.local_size) == (100, 10)
    with pytest.raises(Qwen25ValueError, match="local_size"):
        Qwen25Config.from_preset("debug").with_dca(chunk_size=8, local_size=8)
    with pytest.raises(FormatError, match=r"cfg\.json.*local_size"):
        Qwen25Config.from_hf_dict({"dual_chunk_attention_config": {"chunk_size": 8, "local_size": -1}}, "cfg.json")
    with pytest.raises(FormatError, match=r"lacks \['local_size'\]"):
        Qwen25Config.from_hf_dict({"dual_chunk_attention_config": {"chunk_size": 8}})
    with pytest.raises(FormatError, match="must be an object"):
        Qwen25Config.from_hf_dict({"dual_chunk_attention_config": [1]})


# ------------------------------------------------------------------------------- the model
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_one_chunk_equals_standard_attention(dtype: torch.dtype) -> None:
    cfg = _cfg()
    std = _model(cfg, dtype)
    dca = _model(cfg.with_dca(chunk_size=64, local_size=8), dtype)  # s = 56 >= T
    ids = _ids(2, 40)
    with torch.no_grad():
        a, b = std(ids).logits.float(), dca(ids).logits.float()
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=0, atol=1e-2)  # bf16: ~1 ulp
    torch.testing.assert_close(b, a, **tol)


@pytest.mark.parametrize("cs,ls,orig,t", [(16, 4, 0, 70), (16, 4, 20, 70), (12, 0, 12, 50)])
def test_prefill_several_chunks_equals_reference(cs: int, ls: int, orig: int, t: int) -> None:
    m = _model(_cfg().with_dca(chunk_size=cs, local_size=ls, original_max_position_embeddings=orig))
    ids = _ids(2, t, seed=cs + t)
    with torch.no_grad():
        got = m(ids).logits
    torch.testing.assert_close(got, reference_logits(m, ids), rtol=1e-4, atol=1e-4)


def test_decoding_and_chunked_prefill_equal_reference() -> None:
    m = _model(_cfg().with_dca(chunk_size=16, local_size=4, original_max_position_embeddings=0))
    ids = _ids(2, 60, seed=7)
    ref = reference_logits(m, ids)
    cache = KVCache(m.config, 2, 60, dtype=torch.float32, device="cpu")
    last = prefill(m, ids[:, :23], cache, chunk_size=9)
    torch.testing.assert_close(last, ref[:, 22], rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        for p in range(23, 60):  # one token at a time through the cache
            step = m(ids[:, p:p + 1], cache=cache).logits[:, -1]
            torch.testing.assert_close(step, ref[:, p], rtol=1e-4, atol=1e-4)


@settings(max_examples=8, deadline=None)
@given(cuts=st.lists(st.integers(1, 44), max_size=3, unique=True))
def test_any_prefill_chunking_gives_the_same_logits(cuts: list[int]) -> None:
    m = _MODEL_SCALED
    ids = _ids(1, 45, seed=3)
    ref = reference_logits(m, ids, seq_len=45)[:, -1]  # logit scale of the whole prompt (> orig 20)
    cache = KVCache(m.config, 1, 45, dtype=torch.float32, device="cpu")
    bounds = [0, *sorted(cuts), 45]
    with torch.no_grad():
        for a, e in zip(bounds, bounds[1:]):
            last = m(ids[:, a:e], cache=cache, dca_seq_len=45).logits[:, -1]
    torch.testing.assert_close(last, ref, rtol=1e-4, atol=1e-4)


_MODEL_SCALED = _model(_cfg().with_dca(chunk_size=14, local_size=3, original_max_position_embeddings=20))


def test_left_padded_batch_rows_equal_their_unpadded_runs() -> None:
    m = _model(_cfg().with_dca(chunk_size=16, local_size=4, original_max_position_embeddings=20))
    long, short = _ids(1, 50, seed=1), _ids(1, 33, seed=2)
    ids = torch.cat([long, torch.cat([torch.zeros(1, 17, dtype=torch.long), short], 1)])
    mask = torch.ones(2, 50, dtype=torch.long)
    mask[1, :17] = 0
    cache = KVCache(m.config, 2, 56, dtype=torch.float32, device="cpu")
    last = prefill(m, ids, cache, chunk_size=20, attention_mask=mask)
    torch.testing.assert_close(last[0], reference_logits(m, long)[0, -1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(last[1], reference_logits(m, short)[0, -1], rtol=1e-4, atol=1e-4)
    nxt = torch.tensor([[5], [9]])
    with torch.no_grad():
        step = m(nxt, cache=cache).logits[:, -1]
    torch.testing.assert_close(step[1], reference_logits(m, torch.cat([short, nxt[1:]], 1))[0, -1], rtol=1e-4, atol=1e-4)
    out = m.generate(ids, attention_mask=mask, max_new_tokens=3, eos_token_id=None)  # through DCA
    assert out.shape == (2, 53)
    pieces = m.generate(ids, attention_mask=mask, max_new_tokens=3, eos_token_id=None, prefill_chunk_size=7)
    assert torch.equal(pieces, out)
    greedy = int(reference_logits(m, short)[0, -1].argmax())
    assert int(out[1, 50]) == greedy


def test_yarn_with_dca_runs_past_4x_the_trained_length() -> None:
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}
    base = Qwen25Config.from_hf_dict({**_cfg(max_position_embeddings=32).to_hf_dict(), "rope_scaling": yarn})
    assert base.max_positions == 128 and base.trained_length == 32
    t = 4 * 32 + 22  # past 4x the trained length
    ids = _ids(1, t, seed=5)
    with pytest.raises(Qwen25ValueError, match="past the 128 positions"):
        _model(base)(ids)
    m = _model(base.with_dca(chunk_size=32, local_size=4))
    with torch.no_grad():
        got = m(ids).logits
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, reference_logits(m, ids), rtol=1e-4, atol=1e-4)


def test_bf16_prefill_and_decoding_close_to_fp32_reference() -> None:
    m = _model(_cfg().with_dca(chunk_size=16, local_size=4))
    ids = _ids(1, 40, seed=9)
    ref = reference_logits(m, ids)
    m = m.to(torch.bfloat16)
    with torch.no_grad():
        got = m(ids).logits.float()
    assert (got - ref).abs().max() < 0.05
    cache = KVCache(m.config, 1, 40, dtype=torch.bfloat16, device="cpu")
    prefill(m, ids[:, :30], cache, chunk_size=11)
    with torch.no_grad():
        for p in range(30, 40):  # bf16 KV-cache decoding
            step = m(ids[:, p:p + 1], cache=cache).logits[0, -1].float()
            assert (step - ref[0, p]).abs().max() < 0.05


def test_unsupported_inputs_are_named() -> None:
    m = _model(_cfg().with_dca(chunk_size=16, local_size=4))
    ids = _ids(2, 10)
    right = torch.ones(2, 10, dtype=torch.long)
    right[1, 7:] = 0
    with pytest.raises(Qwen25ValueError, match="left padding only"):
        m(ids, attention_mask=right)
    with pytest.raises(Qwen25ValueError, match="packed rows"):
        m(ids, position_ids=torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]))
    with pytest.raises(Qwen25ValueError, match="position_ids differ"):
        m(ids, position_ids=torch.arange(3, 13))
    with pytest.raises(Qwen25ValueError, match="chunk_size must be"):
        prefill(m, ids, KVCache(m.config, 2, 10, dtype=torch.float32, device="cpu"), chunk_size=0)
