"""Qwen25Config: presets against the issue's table and transformers' parameter counts; config.json
in both spellings; YaRN frequencies against transformers' ROPE_INIT_FUNCTIONS."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qwen25.errors import FormatError, Qwen25ValueError  # noqa: E402
from qwen25.model import PRESETS, Qwen25Config, RopeScaling  # noqa: E402

transformers.logging.set_verbosity_error()

# The table of the issue: layers, hidden, intermediate, q heads, kv heads, tied, vocab, eps.
TABLE = {
    "0.5B": (24, 896, 4864, 14, 2, True, 151936, 1e-6),
    "1.5B": (28, 1536, 8960, 12, 2, True, 151936, 1e-6),
    "3B": (36, 2048, 11008, 16, 2, True, 151936, 1e-6),
    "7B": (28, 3584, 18944, 28, 4, False, 152064, 1e-6),
    "14B": (48, 5120, 13824, 40, 8, False, 152064, 1e-5),
    "32B": (64, 5120, 27648, 40, 8, False, 152064, 1e-5),
    "72B": (80, 8192, 29568, 64, 8, False, 152064, 1e-6),
}
# Sizes the model cards state (billions of parameters); checked within 1% (cards round loosely).
PUBLISHED = {"0.5B": 0.49, "1.5B": 1.54, "3B": 3.09, "7B": 7.61, "14B": 14.7, "32B": 32.5, "72B": 72.7,
             "moe-a2.7b": 14.3, "moe-57b-a14b": 57.4}


@pytest.mark.parametrize("name", list(TABLE))
def test_dense_presets_match_table(name: str) -> None:
    c = Qwen25Config.from_preset(name)
    got = (c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads,
           c.tie_word_embeddings, c.vocab_size, c.rms_norm_eps)
    assert got == TABLE[name]
    assert c.rope_theta == 1e6 and c.hidden_act == "silu" and not c.is_moe


def test_moe_presets() -> None:
    a = Qwen25Config.from_preset("moe-a2.7b")
    assert (a.num_hidden_layers, a.hidden_size, a.num_attention_heads, a.num_key_value_heads, a.num_experts,
            a.num_experts_per_tok, a.moe_intermediate_size, a.shared_expert_intermediate_size) == (
        24, 2048, 16, 16, 60, 4, 1408, 5632)
    b = Qwen25Config.from_preset("moe-57b-a14b")
    assert (b.num_hidden_layers, b.hidden_size, b.num_attention_heads, b.num_key_value_heads, b.num_experts,
            b.num_experts_per_tok, b.moe_intermediate_size, b.shared_expert_intermediate_size) == (
        28, 3584, 28, 4, 64, 8, 2560, 20480)
    assert round(a.num_parameters(active=True) / 1e9, 1) == 2.7  # "A2.7B"
    assert round(b.num_parameters(active=True) / 1e9) == 14  # "A14B"


@pytest.mark.parametrize("name", list(PRESETS))
def test_parameter_count_matches_transformers(tmp_path, name: str) -> None:
    """Count against transformers' model built from our config.json on the meta device."""
    c = Qwen25Config.from_preset(name)
    c.save_pretrained(tmp_path)
    hc = transformers.AutoConfig.from_pretrained(tmp_path)
    with torch.device("meta"):
        m = transformers.AutoModelForCausalLM.from_config(hc)
    assert c.num_parameters() == sum(p.numel() for p in m.parameters())
    if name in PUBLISHED:
        assert c.num_parameters() / 1e9 == pytest.approx(PUBLISHED[name], rel=0.01)


def test_flops_per_token() -> None:
    c = Qwen25Config.from_preset("7B")
    # independent: 2 * (matmul weights a token passes through) + attention 4*L*T*nh*D
    h, hd, L = 3584, 128, 28
    per_layer = h * 28 * hd + 2 * h * 4 * hd + 28 * hd * h + 3 * h * 18944
    expected = 2 * (L * per_layer + 152064 * h) + 4 * L * 4096 * 28 * hd
    assert c.flops_per_token(4096) == expected
    assert c.flops_per_token(4096, training=True) == 3 * expected
    m = Qwen25Config.from_preset("moe-a2.7b")
    assert m.flops_per_token(1) < Qwen25Config.from_preset("3B").flops_per_token(1)  # only active experts


def test_unknown_preset_raises() -> None:
    with pytest.raises(Qwen25ValueError, match="unknown model preset '8B'.*0.5B"):
        Qwen25Config.from_preset("8B")


def test_frozen_and_keyword_only() -> None:
    c = Qwen25Config.from_preset("debug")
    with pytest.raises(Exception):
        c.hidden_size = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        Qwen25Config(151936)  # type: ignore[misc]
    assert c.replace(rope_theta=5e6).rope_theta == 5e6  # ABF: a new base per run


def test_bad_values_raise() -> None:
    with pytest.raises(Qwen25ValueError, match="num_key_value_heads"):
        Qwen25Config(num_attention_heads=14, num_key_value_heads=3)
    with pytest.raises(Qwen25ValueError, match="num_experts_per_tok"):
        Qwen25Config(num_experts=4, num_experts_per_tok=5, moe_intermediate_size=8)


RELEASED_7B = {  # Qwen/Qwen2.5-7B-Instruct config.json, with the model card's YaRN block
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
    "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28, "model_type": "qwen2",
    "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1", "use_cache": True, "use_sliding_window": False, "vocab_size": 152064,
    "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"},
}


def test_released_and_v5_spellings(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(RELEASED_7B))
    a = Qwen25Config.from_pretrained(tmp_path)
    assert a.rope_theta == 1e6 and a.torch_dtype == "bfloat16" and a.sliding_window == 131072
    assert a.rope_scaling == RopeScaling(factor=4.0, original_max_position_embeddings=32768)
    assert a.max_positions == 131072
    assert a.extra == {"transformers_version": "4.43.1", "architectures": ["Qwen2ForCausalLM"]}
    # transformers v5 reads it and writes its own spelling; we read that back identically
    hc = transformers.AutoConfig.from_pretrained(tmp_path)
    hc.save_pretrained(tmp_path / "v5")
    v5 = json.loads((tmp_path / "v5" / "config.json").read_text())
    assert "rope_parameters" in v5 and "dtype" in v5 and "rope_theta" not in v5
    b = Qwen25Config.from_pretrained(tmp_path / "v5")
    assert b == a.replace(sliding_window=None)  # v5 drops the unused window
    # rope_type instead of type
    d = dict(RELEASED_7B, rope_scaling={"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 4096})
    assert Qwen25Config.from_hf_dict(d).rope_scaling == RopeScaling(factor=2.0, original_max_position_embeddings=4096)


def test_every_field_from_file() -> None:
    d = dict(RELEASED_7B, rms_norm_eps=3e-6, rope_theta=12345.0, eos_token_id=[1, 2], max_position_embeddings=999)
    c = Qwen25Config.from_hf_dict(d)
    assert (c.rms_norm_eps, c.rope_theta, c.eos_token_id, c.max_position_embeddings) == (3e-6, 12345.0, (1, 2), 999)


def test_bad_config_files(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "qwen2",\n "hidden_size": }')
    with pytest.raises(FormatError, match=r"config.json:2: invalid JSON") as ei:
        Qwen25Config.from_pretrained(tmp_path)
    assert ei.value.line == 2
    with pytest.raises(FormatError, match="llama"):
        Qwen25Config.from_hf_dict({"model_type": "llama"})
    with pytest.raises(FormatError, match="'dynamic' is not supported"):
        Qwen25Config.from_hf_dict(dict(RELEASED_7B, rope_scaling={"type": "dynamic", "factor": 2.0}))
    with pytest.raises(FileNotFoundError):
        Qwen25Config.from_pretrained(tmp_path / "nope")


def test_yarn_frequencies_match_transformers() -> None:
    """The model cards' YaRN (factor 4, original 32768) on the 7B shape: inverse frequencies and
    attention factor equal transformers' ROPE_INIT_FUNCTIONS['yarn']."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from qwen25.model.qwen2 import rope_inv_freq

    c = Qwen25Config.from_hf_dict(RELEASED_7B)
    hc = transformers.Qwen2Config(**{k: v for k, v in RELEASED_7B.items() if k not in ("architectures", "rope_scaling")},
                                  rope_scaling=dict(RELEASED_7B["rope_scaling"]))
    ref_freq, ref_scale = ROPE_INIT_FUNCTIONS["yarn"](hc, "cpu")
    freq, scale = rope_inv_freq(c)
    torch.testing.assert_close(freq, ref_freq, atol=0, rtol=0)
    assert scale == pytest.approx(ref_scale) and scale == pytest.approx(0.1 * __import__("math").log(4) + 1)
