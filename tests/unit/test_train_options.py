"""Loop options: activation checkpointing recomputes the same numbers, bf16 autocast stays close to
fp32, an MoE model logs its aux loss, a non-finite gradient norm stops the run."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from qwen25.train import Trainer, TrainingDivergedError, override  # noqa: E402
from tests.unit.test_train_checkpoint import small_config  # noqa: E402
from tests.unit.test_train_data import make_docs, write_packed  # noqa: E402


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("opts")
    data = (write_packed(root / "a", make_docs(100, seed=61, learnable=True), 32),
            write_packed(root / "b", make_docs(100, seed=62, learnable=True), 64))
    return override(small_config(data), {"stages.0.steps": 2, "stages.1.steps": 1})


@pytest.fixture(scope="module")
def fp32_losses(cfg):  # type: ignore[no-untyped-def]
    return [r["loss"] for r in Trainer(cfg, verbose=False).fit()]


def test_activation_checkpointing_gives_the_same_losses(cfg, fp32_losses) -> None:
    trainer = Trainer(override(cfg, {"activation_checkpointing": True}), verbose=False)
    assert [r["loss"] for r in trainer.fit()] == fp32_losses
    # parameter names (so checkpoints) are unchanged by the wrapping
    assert "model.layers.0.self_attn.q_proj.weight" in dict(trainer.model.named_parameters())


def test_bf16_autocast_stays_close_to_fp32(cfg, fp32_losses) -> None:
    got = [r["loss"] for r in Trainer(override(cfg, {"precision": "bf16"}), verbose=False).fit()]
    assert got != fp32_losses
    assert got == pytest.approx(fp32_losses, abs=2e-2)


def test_moe_logs_its_aux_loss(cfg) -> None:
    moe = override(cfg, {"model.num_experts": 4, "model.num_experts_per_tok": 2, "model.moe_intermediate_size": 16,
                         "model.router_aux_loss_coef": 0.01})
    recs = Trainer(moe, verbose=False).fit()
    # num_experts * sum_e f_e P_e, f_e the share of tokens sending to e (<= 1), P_e its mean router
    # probability (summing to 1): at most num_experts (4), top_k (2) when perfectly balanced
    assert all(1.5 <= r["aux_loss"] <= 4.0 for r in recs)
    assert all(r["aux_loss"] != recs[0]["aux_loss"] for r in recs[1:])


def test_non_finite_gradient_norm_stops(cfg, monkeypatch) -> None:
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, m: real(params, m) * float("inf"))
    with pytest.raises(TrainingDivergedError, match=r"step 1 \(stage 'one'\): the gradient norm is inf; stopped "
                                                    r"before the optimizer step"):
        Trainer(cfg, verbose=False).fit()


def test_a_later_stage_s_bad_folder_is_reported_before_the_first_step(cfg, tmp_path) -> None:
    from qwen25.errors import Qwen25FileNotFoundError

    bad = override(cfg, {"stages.1.data": str(tmp_path / "not-yet")})
    with pytest.raises(Qwen25FileNotFoundError, match=r"stage 'two': data folder .*not-yet does not exist"):
        Trainer(bad, out_dir=tmp_path / "run", verbose=False).fit()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
