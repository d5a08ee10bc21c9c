"""qwen25.model against transformers' Qwen2ForCausalLM / Qwen2MoeForCausalLM (the independent
reference): random-weight tiny models built and saved by transformers, loaded by us.

Tolerances: fp32 logits within 1e-5 (absolute); bf16 logits within 0.02 absolute on logits of
magnitude ~5, under one bf16 ulp there (0.03); on CPU they come out identical. The bf16 reference
is transformers loading the same files with dtype=bfloat16 (``model.to(bfloat16)`` would also
round its fp32 RoPE inverse frequencies to bf16, which loading does not).
"""

from __future__ import annotations

import json
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qwen25.errors import FormatError, Qwen25ValueError  # noqa: E402
from qwen25.model import CheckpointError, KVCache, Qwen2ForCausalLM  # noqa: E402

warnings.filterwarnings("ignore", module="transformers")
transformers.logging.set_verbosity_error()

V = 1000
TINY = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=256)
MOE = dict(TINY, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=64,
           output_router_logits=True, router_aux_loss_coef=0.01)
FP32_ATOL = 1e-5


def _randomise(model, seed: int) -> None:  # type: ignore[no-untyped-def]
    """Larger-than-default random weights so logits are far from uniform (greedy ties unlikely);
    norms and biases random too, so their handling is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def _hf(kind: str, seed: int = 0, **over):  # type: ignore[no-untyped-def]
    if kind == "dense":
        cfg = transformers.Qwen2Config(**{**TINY, **over})
        model = transformers.Qwen2ForCausalLM(cfg)
    else:
        cfg = transformers.Qwen2MoeConfig(**{**MOE, **over})
        model = transformers.Qwen2MoeForCausalLM(cfg)
    _randomise(model, seed)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return model.eval()


def _pair(tmp_path, kind: str, seed: int = 0, **over):  # type: ignore[no-untyped-def]
    hf = _hf(kind, seed, **over)
    hf.save_pretrained(tmp_path)
    return hf, Qwen2ForCausalLM.from_pretrained(tmp_path)


def _ids(b: int, t: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


CASES = {
    "dense-untied": ("dense", dict(tie_word_embeddings=False)),
    "dense-tied": ("dense", dict(tie_word_embeddings=True)),
    "moe-shared-norm": ("moe", dict(norm_topk_prob=True)),
    "moe-shared-nonorm": ("moe", dict(norm_topk_prob=False)),
    "moe-sparse-step": ("moe", dict(decoder_sparse_step=2, mlp_only_layers=[2])),
}


@pytest.mark.parametrize("case", list(CASES))
@torch.no_grad()
def test_logits_fp32(tmp_path, case: str) -> None:
    kind, over = CASES[case]
    hf, ours = _pair(tmp_path, kind, **over)
    x = _ids(2, 23)
    ref = hf(x).logits
    got = ours(x).logits
    assert ref.abs().max() > 1.0  # not a degenerate model
    torch.testing.assert_close(got, ref, atol=FP32_ATOL, rtol=0)
    if over.get("tie_word_embeddings"):
        assert ours.lm_head.weight is ours.model.embed_tokens.weight


@pytest.mark.parametrize("kind", ["dense", "moe"])
@torch.no_grad()
def test_logits_bf16(tmp_path, kind: str) -> None:
    hf = _hf(kind, norm_topk_prob=True) if kind == "moe" else _hf(kind)
    hf.save_pretrained(tmp_path)
    hf = type(hf).from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    ours = Qwen2ForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    x = _ids(2, 19)
    ref, got = hf(x).logits, ours(x).logits
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), ref.float(), atol=0.02, rtol=0)
    # casting a loaded fp32 model gives the same numbers (the RoPE frequencies stay fp32)
    cast = Qwen2ForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).to(torch.bfloat16)
    torch.testing.assert_close(cast(x).logits.float(), ref.float(), atol=0.02, rtol=0)


@pytest.mark.parametrize("spelling", ["v5", "released-type", "released-rope_type"])
@torch.no_grad()
def test_yarn_past_original_length(tmp_path, spelling: str) -> None:
    """YaRN factor 4 over 16 original positions, run on 50 positions (past 16, past 32)."""
    scaling = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}
    hf = _hf("dense", rope_parameters={**scaling, "rope_theta": 5000.0}, max_position_embeddings=16)
    hf.save_pretrained(tmp_path)
    cfg_path = tmp_path / "config.json"
    d = json.loads(cfg_path.read_text())
    if spelling != "v5":  # rewrite in the released-checkpoint spelling
        rp = d.pop("rope_parameters")
        d["rope_theta"] = rp.pop("rope_theta")
        rp.pop("type", None)
        key = "type" if spelling == "released-type" else "rope_type"
        d["rope_scaling"] = {key: rp.pop("rope_type"), **rp}
        d["torch_dtype"] = d.pop("dtype")
        cfg_path.write_text(json.dumps(d))
    ours = Qwen2ForCausalLM.from_pretrained(tmp_path)
    assert ours.config.rope_theta == 5000.0 and ours.config.rope_scaling is not None
    assert ours.config.max_positions == 64
    x = _ids(1, 50)
    torch.testing.assert_close(ours(x).logits, hf(x).logits, atol=FP32_ATOL, rtol=0)


@torch.no_grad()
def test_rope_base_per_run(tmp_path) -> None:
    """ABF: a checkpoint trained with base 1e4, run with base 1e6 (config.replace), matches
    transformers loading the same weights with rope_theta 1e6, and differs from base 1e4."""
    hf = _hf("dense", rope_parameters={"rope_type": "default", "rope_theta": 1e4})
    hf.save_pretrained(tmp_path)
    base = Qwen2ForCausalLM.from_pretrained(tmp_path)
    assert base.config.rope_theta == 1e4
    abf = Qwen2ForCausalLM(base.config.replace(rope_theta=1e6))
    abf.load_state_dict(base.state_dict())
    hcfg = transformers.AutoConfig.from_pretrained(tmp_path)
    hcfg.rope_parameters = {"rope_type": "default", "rope_theta": 1e6}
    hf_abf = transformers.Qwen2ForCausalLM.from_pretrained(tmp_path, config=hcfg).eval()
    x = _ids(1, 40)
    torch.testing.assert_close(abf(x).logits, hf_abf(x).logits, atol=FP32_ATOL, rtol=0)
    assert (abf(x).logits - base(x).logits).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["dense", "moe"])
@torch.no_grad()
def test_left_padded_batch(tmp_path, kind: str) -> None:
    """Left padding + attention mask: equals transformers given the same mask and positions, and
    equals each row run alone without padding."""
    hf, ours = _pair(tmp_path, kind)
    rows = [_ids(1, 12, 2)[0], _ids(1, 7, 3)[0], _ids(1, 1, 4)[0]]
    t = 12
    x = torch.zeros(3, t, dtype=torch.long)
    mask = torch.zeros(3, t, dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, t - len(r):] = r
        mask[i, t - len(r):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    ref = hf(x, attention_mask=mask, position_ids=pos).logits
    got = ours(x, attention_mask=mask).logits
    assert torch.isfinite(got).all()
    for i, r in enumerate(rows):
        n = len(r)
        torch.testing.assert_close(got[i, t - n:], ref[i, t - n:], atol=FP32_ATOL, rtol=0)
        alone = hf(r[None]).logits[0]
        torch.testing.assert_close(got[i, t - n:], alone, atol=FP32_ATOL, rtol=0)


@torch.no_grad()
def test_packed_documents(tmp_path) -> None:
    """Packed row: positions reset at document starts; each document's logits equal transformers
    run on that document alone."""
    hf, ours = _pair(tmp_path, "dense")
    docs = [_ids(1, 5, 5)[0], _ids(1, 9, 6)[0], _ids(1, 4, 7)[0]]
    x = torch.cat(docs)[None]
    pos = torch.cat([torch.arange(len(d)) for d in docs])[None]
    got = ours(x, position_ids=pos).logits[0]
    start = 0
    for d in docs:
        torch.testing.assert_close(got[start:start + len(d)], hf(d[None]).logits[0], atol=FP32_ATOL, rtol=0)
        start += len(d)


@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_loss_and_aux_loss(tmp_path, kind: str) -> None:
    hf, ours = _pair(tmp_path, kind)
    x = _ids(2, 16)
    labels = x.clone()
    labels[0, :5] = -100
    mask = torch.ones_like(x)
    mask[1, :3] = 0
    labels[1, :4] = -100  # predicted from padding positions, whose outputs are arbitrary
    with torch.no_grad():
        ref = hf(x, labels=labels, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    got = ours(x, labels=labels, attention_mask=mask)
    torch.testing.assert_close(got.loss, ref.loss, atol=1e-5, rtol=0)
    if kind == "moe":
        torch.testing.assert_close(got.aux_loss, ref.aux_loss, atol=1e-5, rtol=0)
        assert got.aux_loss > 0.5
    else:
        assert got.aux_loss is None
    got.loss.backward()  # differentiable, gradients reach the router
    if kind == "moe":
        assert ours.model.layers[0].mlp.gate.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_gradients_match_transformers(tmp_path, kind: str) -> None:
    """Training parity: gradients of the loss (CE + weighted aux loss for MoE) w.r.t. every weight."""
    hf, ours = _pair(tmp_path, kind)
    x = _ids(2, 14)
    hf.train(), ours.train()  # attention_dropout is 0: train mode changes nothing numerically
    hf(x, labels=x).loss.backward()
    ours(x, labels=x).loss.backward()
    ref = {k: p.grad for k, p in hf.named_parameters()}
    inter = MOE["moe_intermediate_size"]
    for k, p in ours.named_parameters():
        if k.endswith("experts.gate_proj"):
            want = ref[k.replace("gate_proj", "gate_up_proj")][:, :inter]
        elif k.endswith("experts.up_proj"):
            want = ref[k.replace("up_proj", "gate_up_proj")][:, inter:]
        else:
            want = ref[k]
        torch.testing.assert_close(p.grad, want, atol=2e-5, rtol=1e-4, msg=k)


@pytest.mark.parametrize("kind", ["dense", "moe"])
@torch.no_grad()
def test_save_pretrained_loads_in_transformers(tmp_path, kind: str) -> None:
    hf, ours = _pair(tmp_path / "a", kind)
    ours.save_pretrained(tmp_path / "b", max_shard_size=60_000)  # several shards + index
    assert (tmp_path / "b" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "b").glob("model-*.safetensors"))) > 1
    cls = transformers.Qwen2ForCausalLM if kind == "dense" else transformers.Qwen2MoeForCausalLM
    back = cls.from_pretrained(tmp_path / "b").eval()
    x = _ids(2, 11)
    torch.testing.assert_close(back(x).logits, hf(x).logits, atol=0, rtol=0)
    again = Qwen2ForCausalLM.from_pretrained(tmp_path / "b")
    torch.testing.assert_close(again(x).logits, ours(x).logits, atol=0, rtol=0)


@torch.no_grad()
def test_loads_transformers_sharded_checkpoint(tmp_path) -> None:
    hf = _hf("moe")
    hf.save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ours = Qwen2ForCausalLM.from_pretrained(tmp_path)
    x = _ids(1, 9)
    torch.testing.assert_close(ours(x).logits, hf(x).logits, atol=FP32_ATOL, rtol=0)


@torch.no_grad()
def test_loads_fused_expert_tensors(tmp_path) -> None:
    """transformers v5 holds experts fused in memory (gate_up_proj [E, 2I, H], down_proj [E, H, I]);
    a file written from that state dict loads too."""
    from safetensors.torch import save_file

    hf = _hf("moe")
    hf.save_pretrained(tmp_path)
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
    assert "model.layers.0.mlp.experts.gate_up_proj" in sd
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    ours = Qwen2ForCausalLM.from_pretrained(tmp_path)
    x = _ids(1, 9)
    torch.testing.assert_close(ours(x).logits, hf(x).logits, atol=FP32_ATOL, rtol=0)


def test_tied_checkpoint_has_no_lm_head(tmp_path) -> None:
    from safetensors import safe_open

    _, ours = _pair(tmp_path / "a", "dense", tie_word_embeddings=True)
    ours.save_pretrained(tmp_path / "b")
    with safe_open(str(tmp_path / "b" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "lm_head.weight" not in keys and "model.embed_tokens.weight" in keys


@pytest.mark.parametrize("kind", ["dense", "moe"])
@torch.no_grad()
def test_greedy_32_tokens_match_generate(tmp_path, kind: str) -> None:
    hf, ours = _pair(tmp_path, kind)
    prompt = _ids(1, 6, 9)
    ref = hf.generate(prompt, max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0)
    got = ours.generate(prompt, max_new_tokens=32, eos_token_id=None)
    assert got.shape == (1, 38)
    assert got.tolist() == ref.tolist()


@torch.no_grad()
def test_greedy_with_repetition_penalty_matches_generate(tmp_path) -> None:
    hf, ours = _pair(tmp_path, "dense")
    prompt = _ids(1, 6, 12)
    ref = hf.generate(prompt, max_new_tokens=20, do_sample=False, repetition_penalty=1.5, eos_token_id=None,
                      pad_token_id=0)
    got = ours.generate(prompt, max_new_tokens=20, repetition_penalty=1.5, eos_token_id=None)
    assert got.tolist() == ref.tolist()


@torch.no_grad()
def test_greedy_batched_left_padded_matches_generate(tmp_path) -> None:
    hf, ours = _pair(tmp_path, "dense")
    rows = [_ids(1, 8, 10)[0].tolist(), _ids(1, 3, 11)[0].tolist()]
    got = ours.generate(rows, max_new_tokens=12, eos_token_id=None, pad_token_id=0)
    x = torch.tensor([rows[0], [0] * 5 + rows[1]])
    mask = torch.tensor([[1] * 8, [0] * 5 + [1] * 3])
    ref = hf.generate(x, attention_mask=mask, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert got.tolist() == ref.tolist()


@pytest.mark.parametrize("kind", ["dense", "moe", "yarn"])
@torch.no_grad()
def test_kv_cache_logits_equal_full_forward(tmp_path, kind: str) -> None:
    if kind == "yarn":  # positions run past the original 8
        _, ours = _pair(tmp_path, "dense", max_position_embeddings=8, rope_parameters={
            "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8, "rope_theta": 1e4})
    else:
        _, ours = _pair(tmp_path, kind)
    x = _ids(2, 20)
    mask = torch.ones_like(x)
    mask[1, :4] = 0
    full = ours(x, attention_mask=mask).logits
    cache = KVCache(ours.config, 2, 20, dtype=ours.dtype, device="cpu")
    parts = [ours(x[:, :9], attention_mask=mask[:, :9], cache=cache).logits]
    for i in range(9, 20):
        parts.append(ours(x[:, i:i + 1], cache=cache).logits)
    stepped = torch.cat(parts, 1)
    torch.testing.assert_close(stepped[0], full[0], atol=FP32_ATOL, rtol=0)
    torch.testing.assert_close(stepped[1, 4:], full[1, 4:], atol=FP32_ATOL, rtol=0)


# ----------------------------------------------------------------------------- bad input
def test_bad_checkpoint_lists_every_key(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    hf = _hf("moe")
    hf.save_pretrained(tmp_path)
    f = tmp_path / "model.safetensors"
    sd = load_file(str(f))
    del sd["model.layers.1.self_attn.q_proj.bias"]
    del sd["model.layers.0.mlp.experts.3.up_proj.weight"]
    sd["model.layers.0.extra.weight"] = torch.zeros(2)
    sd["model.norm.weight"] = torch.zeros(63)
    save_file(sd, str(f), metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as ei:
        Qwen2ForCausalLM.from_pretrained(tmp_path)
    msg = str(ei.value)
    for key in ("model.layers.1.self_attn.q_proj.bias", "model.layers.0.mlp.experts.3.up_proj.weight",
                "model.layers.0.extra.weight", "model.norm.weight (file [63], model [64])"):
        assert key in msg
    assert ei.value.missing == ["model.layers.0.mlp.experts.3.up_proj.weight", "model.layers.1.self_attn.q_proj.bias"]
    assert isinstance(ei.value, FormatError) and isinstance(ei.value, ValueError)


def test_missing_weights_file(tmp_path) -> None:
    _hf("dense").config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        Qwen2ForCausalLM.from_pretrained(tmp_path)


def test_out_of_range_id_is_named(tmp_path) -> None:
    _, ours = _pair(tmp_path, "dense")
    x = _ids(1, 8)
    x[0, 5] = V + 7
    with pytest.raises(Qwen25ValueError, match=f"token id {V + 7}"):
        ours(x)
    x[0, 5] = -3
    with pytest.raises(Qwen25ValueError, match="token id -3"):
        ours(x)


def test_too_long_without_scaling(tmp_path) -> None:
    _, ours = _pair(tmp_path, "dense", max_position_embeddings=32)
    ours(_ids(1, 32))
    with pytest.raises(Qwen25ValueError, match="past the 32 positions.*rope_scaling"):
        ours(_ids(1, 33))
