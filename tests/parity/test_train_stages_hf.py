"""Stages switch the sequence length and the RoPE base (ABF), and YaRN / DCA where set; each
checkpoint records its stage's config, and the exported folder loads in transformers with the
same logits as the model the loop trained."""

from __future__ import annotations

import json
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qwen25.train import Stage, TrainConfig, Trainer, export_checkpoint  # noqa: E402
from tests.parity.test_train_loop_hf import hf_folder  # noqa: E402
from tests.unit.test_train_data import V, make_docs, write_packed  # noqa: E402

warnings.filterwarnings("ignore", module="transformers")
transformers.logging.set_verbosity_error()

YARN = {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64}
DCA = {"chunk_size": 64, "local_size": 8, "original_max_position_embeddings": 64}


def _config(tmp_path, second: dict) -> TrainConfig:  # type: ignore[no-untyped-def]
    init = hf_folder(tmp_path / "init", seed=4)  # transformers' model, rope_theta 1e4
    a = write_packed(tmp_path / "a", make_docs(80, seed=31, learnable=True), 32)
    b = write_packed(tmp_path / "b", make_docs(80, seed=32, lo=20, hi=90, learnable=True), 64)
    return TrainConfig(name="abf", model=init, init_from=init,
                       stages=(Stage(name="short", data=(a,), seq_len=32, steps=3, rope_theta=1e4),
                               Stage(name="long", data=(b,), seq_len=64, steps=3, **second)),
                       global_batch_tokens=256, micro_batch_size=2, lr=3e-3, device="cpu", precision="fp32")


def _hf_logits(folder, x):  # type: ignore[no-untyped-def]
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(input_ids=x, use_cache=False).logits, hf


def _theta(hf_config) -> float:  # type: ignore[no-untyped-def]
    rp = getattr(hf_config, "rope_parameters", None)  # transformers v5; earlier: rope_theta
    return float(rp["rope_theta"] if rp else hf_config.rope_theta)


def test_abf_switch_and_export_load_in_transformers(tmp_path) -> None:
    cfg = _config(tmp_path, {"rope_theta": 1e6})
    trainer = Trainer(cfg, out_dir=tmp_path / "run", verbose=False)
    recs = trainer.fit()
    assert [(r["seq_len"], r["rope_theta"]) for r in recs] == [(32, 1e4)] * 3 + [(64, 1e6)] * 3
    ck = tmp_path / "run" / "checkpoints"
    assert json.loads((ck / "step-3" / "config.json").read_text())["rope_theta"] == 1e4
    final = json.loads((ck / "step-6" / "config.json").read_text())
    assert final["rope_theta"] == 1e6 and final["max_position_embeddings"] >= 64
    x = torch.randint(0, V, (2, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = trainer.model(x).logits
    for step in (3, 6):
        export_checkpoint(ck / f"step-{step}", tmp_path / f"hf{step}")
    ref, hf = _hf_logits(tmp_path / "hf6", x)
    assert _theta(hf.config) == 1e6
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    # the base matters at these positions: the same weights under the old base give other logits
    cfg_old = json.loads((tmp_path / "hf6" / "config.json").read_text())
    cfg_old["rope_theta"] = 1e4
    (tmp_path / "hf6" / "config.json").write_text(json.dumps(cfg_old))
    other, _ = _hf_logits(tmp_path / "hf6", x)
    assert (other - ref).abs().max() > 1e-3
    # the stage-one checkpoint exports its own base, and transformers reads it
    _, hf3 = _hf_logits(tmp_path / "hf3", x)
    assert _theta(hf3.config) == 1e4


def test_yarn_and_dca_are_recorded_per_stage(tmp_path) -> None:
    cfg = _config(tmp_path, {"rope_theta": 1e6, "rope_scaling": YARN, "dca": DCA})
    trainer = Trainer(cfg, out_dir=tmp_path / "run", verbose=False)
    trainer.fit()
    ck = tmp_path / "run" / "checkpoints"
    one = json.loads((ck / "step-3" / "config.json").read_text())
    two = json.loads((ck / "step-6" / "config.json").read_text())
    assert one.get("rope_scaling") is None and "dual_chunk_attention_config" not in one
    assert {k: two["rope_scaling"][k] for k in YARN} == YARN
    assert two["dual_chunk_attention_config"] == DCA
    # training ran with YaRN (and without DCA: packed rows): transformers, reading the exported
    # config (YaRN; it ignores the DCA entry), gives the trained model's logits
    export_checkpoint(ck / "step-6", tmp_path / "hf")
    x = torch.randint(0, V, (1, 64), generator=torch.Generator().manual_seed(2))
    ref, _ = _hf_logits(tmp_path / "hf", x)
    assert trainer.model.config.dual_chunk_attention_config is None
    with torch.no_grad():
        torch.testing.assert_close(trainer.model(x).logits, ref, atol=1e-5, rtol=0)
