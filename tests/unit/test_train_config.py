"""TrainConfig, the recipes and the checked ``--set`` overrides (torch-free parts of qwen25.train)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest

from qwen25.errors import Qwen25ValueError
from qwen25.train import ConfigOverrideError, Stage, TrainConfig, apply_overrides, config_diff, override, recipes


def _cfg(**over):  # type: ignore[no-untyped-def]
    base = dict(stages=(Stage(name="a", data=("x",), seq_len=32, steps=10),), global_batch_tokens=128,
                micro_batch_size=2)
    base.update(over)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------------ recipes
def test_recipe_names_and_unknown() -> None:
    assert recipes.names() == ["debug", "0.5b", "1.5b", "long-context", "turbo"]
    with pytest.raises(Qwen25ValueError, match="unknown recipe 'nope'.*debug, 0.5b"):
        recipes.get("nope")


@pytest.mark.parametrize("name", ["debug", "0.5b", "1.5b", "long-context", "turbo"])
def test_every_recipe_is_a_full_frozen_config(name: str) -> None:
    cfg = recipes.get(name)
    assert isinstance(cfg, TrainConfig) and cfg.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    assert cfg.total_steps() > 0
    for s in cfg.stages:  # the batch splits into whole rows and micro-batches
        assert cfg.rows_per_step(s) * s.seq_len == cfg.global_batch_tokens
        assert cfg.grad_accum(s) * cfg.micro_batch(s) == cfg.rows_per_step(s)
    # the JSON form round-trips
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_long_context_recipe_is_the_report_abf_stage() -> None:
    cfg = recipes.get("long-context")
    assert [(s.seq_len, s.rope_theta) for s in cfg.stages] == [(4096, 1e4), (32768, 1e6)]


def test_turbo_recipe_has_four_stages_at_base_1e7_with_40_60_data() -> None:
    cfg = recipes.get("turbo")
    assert [s.seq_len for s in cfg.stages] == [32768, 65536, 131072, 262144]
    for s in cfg.stages:
        assert s.rope_theta == 1e7
        assert len(s.data) == 2 and s.shares == pytest.approx((0.4, 0.6))


@pytest.mark.parametrize("name,layers,hidden,tokens", [("0.5b", 24, 896, 1e11), ("1.5b", 28, 1536, 2e11)])
def test_gpu_recipes_follow_deepseek_laws(name: str, layers: int, hidden: int, tokens: float) -> None:
    """The recipes' docstrings say lr and batch come from DeepSeek LLM's laws at C = M D; check it
    with the published constants (eta = 0.3118 C^-0.125, B = 0.2920 C^0.3271)."""
    cfg = recipes.get(name)
    m = 72 * layers * hidden**2 + 6 * layers * 4096 * hidden
    c = m * tokens
    assert cfg.lr == pytest.approx(0.3118 * c**-0.125, rel=0.05)
    b = 0.2920 * c**0.3271
    assert 0.75 * b <= cfg.global_batch_tokens <= 1.25 * b  # rounded to a power of two
    assert cfg.stages[0].tokens == tokens


def test_recipes_import_no_torch() -> None:
    code = ("import sys; from qwen25.train import recipes, override; c = override(recipes.get('debug'), "
            "{'lr': '1e-3', 'stages.0.steps': '7'}); print(c.lr, c.total_steps(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0.001", "7", "False"]


# ---------------------------------------------------------------------------------- overrides
def test_overrides_parse_by_field_type() -> None:
    cfg = apply_overrides(recipes.get("debug"), [
        "lr=1e-3", "warmup_steps=5", "shuffle=false", "init_from=none", "no_decay=norm,bias", "fused_loss=true",
        "stages.0.steps=12", "stages.0.data=a,b", "stages.0.weights=0.25,0.75", "stages.0.rope_theta=1e4",
        'stages.0.rope_scaling={"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64}',
        "global_batch_tokens=4096", "peak_flops=1e12",
    ])
    assert cfg.lr == 1e-3 and cfg.warmup_steps == 5 and cfg.shuffle is False and cfg.init_from is None
    assert cfg.no_decay == ("norm", "bias") and cfg.fused_loss is True and cfg.peak_flops == 1e12
    s = cfg.stages[0]
    assert s.steps == 12 and s.data == ("a", "b") and s.shares == (0.25, 0.75) and s.rope_theta == 1e4
    assert s.rope_scaling == {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64}
    assert cfg.global_batch_tokens == 4096
    assert apply_overrides(cfg, ["no_decay="]).no_decay == ()
    assert apply_overrides(cfg, ["global_batch_tokens=4.096e3"]).global_batch_tokens == 4096


def test_model_overrides_are_checked_against_the_model_config() -> None:
    cfg = apply_overrides(recipes.get("debug"), ["model.hidden_size=32", "model.num_hidden_layers=1"])
    assert cfg.model_overrides == {"vocab_size": 512, "hidden_size": 32, "num_hidden_layers": 1}
    with pytest.raises(ConfigOverrideError, match=r"model\.hiden_size.*did you mean hidden_size"):
        apply_overrides(cfg, ["model.hiden_size=32"])
    with pytest.raises(ConfigOverrideError, match=r"model\.hidden_size=big: expected an int"):
        apply_overrides(cfg, ["model.hidden_size=big"])
    with pytest.raises(ConfigOverrideError, match="rope_theta is set per stage"):
        apply_overrides(cfg, ["model.rope_theta=1e4"])


@pytest.mark.parametrize("assignment,message", [
    ("lrr=1", r"--set lrr: unknown key \(did you mean lr"),
    ("lr=fast", r"--set lr=fast: expected a float"),
    ("warmup_steps=2.5", r"--set warmup_steps=2.5: expected an int"),
    ("shuffle=maybe", r"--set shuffle=maybe: expected a bool"),
    ("init_from", r"--set init_from: expected KEY=VALUE"),
    ("stages.3.steps=1", r"stage 3 does not exist \(the run has 1 stage"),
    ("stages.x.steps=1", r"'x' is not a stage index"),
    ("stages.0.stepz=1", r"unknown stage field 'stepz' \(did you mean steps"),
    ("stages.0.rope_scaling=[1]", r"expected a JSON object"),
    ("schedule=linear", r"schedule must be one of \['cosine', 'wsd', 'constant'\], got 'linear'"),
    ("stages.0.seq_len=100", r"global_batch_tokens 2048 is not a multiple of its seq_len 100"),
    ("micro_batch_size=5", r"16 rows per step .* do not split into micro-batches of 5"),
    ("no_decay=norms", r"no_decay \['norms'\] unknown"),
    ("lr=-1", r"lr must be a positive number"),
    ("stages.0.weights=1,2", r"1 data folders but 2 weights"),
])
def test_bad_overrides_name_the_key(assignment: str, message: str) -> None:
    cfg = recipes.get("debug")
    with pytest.raises(ConfigOverrideError, match=message):
        apply_overrides(cfg, [assignment])


def test_typed_override_values() -> None:
    cfg = override(recipes.get("debug"), {"lr": 2e-3, "stages.0.steps": 3, "no_decay": ["bias"]})
    assert (cfg.lr, cfg.total_steps(), cfg.no_decay) == (2e-3, 3, ("bias",))
    with pytest.raises(ConfigOverrideError, match="stages.0.steps=3.5"):
        override(cfg, {"stages.0.steps": 3.5})
    with pytest.raises(ConfigOverrideError, match="shuffle=1"):
        override(cfg, {"shuffle": 1})


# ------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("over,message", [
    (dict(stages=()), "stages must be a non-empty tuple"),
    (dict(global_batch_tokens=100), "not a multiple of its seq_len 32"),
    (dict(min_lr_ratio=1.5), r"min_lr_ratio must be in \[0, 1\]"),
    (dict(beta2=1.0), r"beta2 must be in \[0, 1\)"),
    (dict(device="tpu"), "device must be auto, cpu, cuda"),
    (dict(model_overrides={"rope_theta": 1.0}), r"model_overrides \['rope_theta'\] are set per stage"),
    (dict(stages=(Stage(name="a", data=("x",), seq_len=32, steps=1), Stage(name="a", data=("y",), seq_len=32,
                                                                          steps=1))), "stage names must differ"),
])
def test_config_validation(over: dict, message: str) -> None:
    with pytest.raises(Qwen25ValueError, match=message):
        _cfg(**over)


@pytest.mark.parametrize("kw,message", [
    (dict(steps=None), "exactly one of steps and tokens"),
    (dict(steps=1, tokens=5), "exactly one of steps and tokens"),
    (dict(data=()), "data must name at least one packed folder"),
    (dict(seq_len=0), "seq_len must be a positive int"),
    (dict(weights=(0.0,)), "weights must be finite, >= 0 and not all 0"),
    (dict(rope_theta=-1.0), "rope_theta must be positive"),
])
def test_stage_validation(kw: dict, message: str) -> None:
    base = dict(name="s", data=("x",), seq_len=16, steps=1)
    base.update(kw)
    with pytest.raises(Qwen25ValueError, match=message):
        Stage(**base)


def test_derived_batch_and_stage_bounds() -> None:
    cfg = _cfg(stages=(Stage(name="a", data=("x",), seq_len=32, steps=3),
                       Stage(name="b", data=("y",), seq_len=64, tokens=300, micro_batch_size=1)))
    # 128 tokens per step: 4 rows of 32 in 2 micro-batches of 2; then 2 rows of 64 one by one
    assert [cfg.rows_per_step(s) for s in cfg.stages] == [4, 2]
    assert [cfg.grad_accum(s) for s in cfg.stages] == [2, 2]
    assert cfg.grad_accum(cfg.stages[0], world_size=2) == 1
    assert cfg.stage_steps(cfg.stages[1]) == math.ceil(300 / 128)
    assert cfg.stage_bounds() == [(1, 3), (4, 6)]
    assert [cfg.stage_index(s) for s in range(1, 7)] == [0, 0, 0, 1, 1, 1]
    with pytest.raises(Qwen25ValueError, match="micro-batches of 2 rows over 4 rank"):
        cfg.grad_accum(cfg.stages[0], world_size=4)


def test_config_diff_names_changed_keys() -> None:
    a = recipes.get("long-context")
    b = override(a, {"lr": 1e-4, "stages.1.seq_len": 16384, "model.hidden_size": 128})
    assert config_diff(a, b) == ["lr", "model_overrides.hidden_size", "stages.1.seq_len"]
    assert config_diff(a, a) == []
    with pytest.raises(Qwen25ValueError, match=r"unknown keys \['bogus'\]"):
        TrainConfig.from_dict({**a.to_dict(), "bogus": 1})
