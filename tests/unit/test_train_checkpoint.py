"""Checkpoints: exact resume (bit for bit on the CPU), config changes, the last K kept, atomic
saves under a full disk, NaN stops, and export to the HF layout."""

from __future__ import annotations

import errno
import json
import math

import pytest

torch = pytest.importorskip("torch")

from qwen25.errors import Qwen25FileNotFoundError, Qwen25ValueError  # noqa: E402
from qwen25.model import Qwen2ForCausalLM  # noqa: E402
from qwen25.train import (CheckpointSaveError, Stage, TrainConfig, Trainer, TrainingDivergedError,  # noqa: E402
                          export_checkpoint, list_checkpoints, load_model_from_checkpoint, override)
from qwen25.train import checkpoint as ckpt_mod  # noqa: E402
from tests.unit.test_train_data import V, make_docs, write_packed  # noqa: E402

TINY_MODEL = {"vocab_size": V, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
              "num_key_value_heads": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("packed")
    return (write_packed(root / "a", make_docs(150, seed=21, learnable=True), 32),
            write_packed(root / "b", make_docs(150, seed=22, learnable=True), 64))


def small_config(data, **over) -> TrainConfig:  # type: ignore[no-untyped-def]
    a, b = data
    kw = dict(name="ckpt", model="debug", model_overrides=dict(TINY_MODEL),
              stages=(Stage(name="one", data=(a,), seq_len=32, steps=4),
                      Stage(name="two", data=(b,), seq_len=64, steps=4, rope_theta=5e5)),
              global_batch_tokens=256, micro_batch_size=2, lr=3e-3, warmup_steps=2, seed=5, shuffle=True,
              device="cpu", precision="fp32", checkpoint_every=0, keep_last=10)
    kw.update(over)
    return TrainConfig(**kw)


@pytest.fixture(scope="module")
def full(tmp_path_factory, data):  # type: ignore[no-untyped-def]
    """An uninterrupted run of small_config: (its records, its output folder, the trainer)."""
    out = tmp_path_factory.mktemp("full")
    trainer = Trainer(small_config(data), out_dir=out, verbose=False)
    return trainer.fit(), out, trainer


def _weights(path) -> dict:  # type: ignore[no-untyped-def]
    return dict(load_model_from_checkpoint(path).state_dict())


@pytest.mark.parametrize("stop", [4, 6])  # at stage one's end (the switch comes next), inside stage two
def test_resume_is_bit_identical(tmp_path, data, full, stop: int) -> None:
    cfg = small_config(data)
    records, full_out, _ = full
    first = Trainer(cfg, out_dir=tmp_path, verbose=False).fit(stop_at_step=stop)
    assert [r["step"] for r in first] == list(range(1, stop + 1))
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")][-1] == f"step-{stop}"
    rest = Trainer(cfg, out_dir=tmp_path, verbose=False).fit()
    assert [r["step"] for r in rest] == list(range(stop + 1, 9))
    assert [r["loss"] for r in first + rest] == [r["loss"] for r in records]  # exactly, not approximately
    assert [r["grad_norm"] for r in first + rest] == [r["grad_norm"] for r in records]
    a, b = _weights(full_out / "checkpoints" / "step-8"), _weights(tmp_path / "checkpoints" / "step-8")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # metrics.jsonl holds each step once, in order, across the two runs
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 9))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a rerun after the end has nothing to do
    assert Trainer(cfg, out_dir=tmp_path, verbose=False).fit() == []


def test_resume_with_a_changed_config_names_the_keys(tmp_path, data) -> None:
    cfg = small_config(data)
    Trainer(cfg, out_dir=tmp_path, verbose=False).fit(stop_at_step=2)
    changed = override(cfg, {"lr": 1e-3, "stages.1.rope_theta": 1e6})
    with pytest.raises(Qwen25ValueError, match=r"differs from the checkpoint's in lr \(0\.003 -> 0\.001\), "
                                               r"stages\.1\.rope_theta \(500000\.0 -> 1000000\.0\); pass --allow-changes"):
        Trainer(changed, out_dir=tmp_path, verbose=False).fit()
    recs = Trainer(override(cfg, {"lr": 1e-3}), out_dir=tmp_path, verbose=False, allow_changes=True).fit()
    # step 3 of 8 after 2 warm-up steps, on the new peak: cosine at progress 1/6, floor 0.1
    assert recs[0]["step"] == 3
    assert recs[0]["lr"] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 6))))


def test_no_resume_refuses_to_overwrite(tmp_path, data) -> None:
    cfg = small_config(data)
    Trainer(cfg, out_dir=tmp_path, verbose=False).fit(stop_at_step=1)
    with pytest.raises(Qwen25ValueError, match="already holds checkpoints .*step-1"):
        Trainer(cfg, out_dir=tmp_path, verbose=False, resume=False).fit()
    with pytest.raises(Qwen25FileNotFoundError, match="resume: checkpoint .*nowhere does not exist"):
        Trainer(cfg, out_dir=tmp_path, verbose=False, resume=str(tmp_path / "nowhere")).fit()


def test_keeps_the_last_k(tmp_path, data) -> None:
    cfg = small_config(data, checkpoint_every=1, keep_last=3)
    Trainer(cfg, out_dir=tmp_path, verbose=False).fit()
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-6", "step-7", "step-8"]
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))


@pytest.mark.parametrize("where", ["dcp", "json", "rng"])
def test_full_disk_while_saving_leaves_nothing_that_looks_complete(tmp_path, data, full, monkeypatch, where: str
                                                                   ) -> None:
    cfg = small_config(data, checkpoint_every=2)
    calls = {"n": 0}

    def full_disk(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    def after_first(real, only=lambda *a: True):  # type: ignore[no-untyped-def]
        def wrapped(*a, **k):  # type: ignore[no-untyped-def]
            if only(*a):
                calls["n"] += 1
                if calls["n"] > marks[where]:
                    full_disk()
            return real(*a, **k)
        return wrapped

    from torch.distributed.checkpoint import filesystem

    marks = {"dcp": 1, "json": 2, "rng": 1}  # the first checkpoint (step 2) goes through
    if where == "dcp":
        monkeypatch.setattr(filesystem.FileSystemWriter, "write_data", after_first(filesystem.FileSystemWriter.write_data))
    elif where == "json":
        monkeypatch.setattr(ckpt_mod, "_write_json", after_first(ckpt_mod._write_json))
    else:
        monkeypatch.setattr(torch, "save", after_first(torch.save, lambda obj, f, *a: "rng-rank" in str(f)))
    with pytest.raises(CheckpointSaveError, match=r"step-4 failed: .*No space left on device; nothing of it was kept "
                                                  r"\(the last complete checkpoint is .*step-2\)"):
        Trainer(cfg, out_dir=tmp_path, verbose=False).fit()
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-2"]  # no step-4, no temporary folder
    monkeypatch.undo()
    # the survivor is whole: a rerun resumes from it and matches an uninterrupted run
    rest = Trainer(cfg, out_dir=tmp_path, verbose=False).fit()
    assert rest[0]["step"] == 3
    assert [r["loss"] for r in rest] == [r["loss"] for r in full[0][2:]]


def test_nan_loss_stops_naming_step_and_batch(tmp_path, data, monkeypatch) -> None:
    cfg = small_config(data, checkpoint_every=2)
    real = Trainer._micro_loss
    seen = {"n": 0}

    # stage one: 8 rows per step in micro-batches of 2 -> 4 micro-batches per step; step 5 is in stage
    # two: 4 rows of 64 -> 2 micro-batches. Calls before step 5: 4 x 4 = 16; its second is call 18.
    def poisoned2(self, mb):  # type: ignore[no-untyped-def]
        ce, aux = real(self, mb)
        seen["n"] += 1
        return (ce * float("nan"), aux) if seen["n"] == 18 else (ce, aux)

    monkeypatch.setattr(Trainer, "_micro_loss", poisoned2)
    with pytest.raises(TrainingDivergedError) as ei:
        Trainer(cfg, out_dir=tmp_path, verbose=False).fit()
    e = ei.value
    assert (e.step, e.micro_batch) == (5, 2)
    assert str(e).startswith("step 5 (stage 'two'): the loss is nan on micro-batch 2 (rank 0; rows: ")
    assert "/b sequences [" in str(e) and e.last_checkpoint is not None and e.last_checkpoint.endswith("step-4")
    assert "the last good checkpoint is" in str(e)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-2", "step-4"]
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_export_writes_an_hf_folder_with_the_trained_weights(tmp_path, full) -> None:
    _, run, trainer = full
    out = export_checkpoint(run / "checkpoints" / "step-8", tmp_path / "hf")
    model = Qwen2ForCausalLM.from_pretrained(out)
    assert model.config.rope_theta == 5e5 and model.config.max_position_embeddings >= 64
    x = torch.randint(0, V, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, trainer.model(x).logits, atol=0, rtol=0)
    bf16 = export_checkpoint(run / "checkpoints" / "step-8", tmp_path / "hf16", dtype="bfloat16")
    assert json.loads((bf16 / "config.json").read_text())["torch_dtype"] == "bfloat16"
    with pytest.raises(Qwen25ValueError, match="exists and is not empty"):
        export_checkpoint(run / "checkpoints" / "step-8", tmp_path / "hf")
    with pytest.raises(Qwen25FileNotFoundError, match="has no train_config.json: not a complete"):
        export_checkpoint(tmp_path / "hf", tmp_path / "x")
