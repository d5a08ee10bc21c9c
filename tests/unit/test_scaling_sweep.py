"""``qwen25 scaling sweep``: a real, tiny sweep of debug models on the CPU (2 sizes x 2 lrs x 1
batch, 4 steps each). The table is checked against independent references: the parameter count
of the torch model itself, and a Trainer run configured by hand with ``override`` from the recipe."""

from __future__ import annotations

import csv
import json
import math

import pytest

torch = pytest.importorskip("torch")
train = pytest.importorskip("qwen25.train")

from qwen25 import scaling
from qwen25.cli import main
from qwen25.errors import Qwen25ValueError
from qwen25.scaling.plot import have_matplotlib
from qwen25.scaling.sweep import parse_sizes, run_sweep

GRID = {"recipe": "debug", "sizes": [(32, 1), (64, 1)], "tokens": [2048], "lrs": [3e-3, 1e-2],
        "batch_tokens": [512], "fit_kwargs": {"n_boot": 50, "n_boot_loss": 0}, "progress": False}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return out, run_sweep(out=out, **GRID)


def non_embedding_numel(model) -> int:
    emb = {id(p) for n, p in model.named_parameters() if "embed_tokens" in n or "lm_head" in n}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


def test_sweep_table_against_the_model_and_a_hand_made_trainer_run(swept):
    out, res = swept
    from qwen25.model import Qwen2ForCausalLM
    from qwen25.train import Trainer, override, recipes

    assert res.ran == 4 and res.reused == 0 and len(res.rows) == 4
    by_run = {r["run"]: r for r in res.rows}
    assert set(by_run) == {f"h{h}x1-D2048-lr{lr}-B512-s0" for h in (32, 64) for lr in ("0.003", "0.01")}
    data = str(out / "data" / "debug-v1-seq128")
    for hidden in (32, 64):
        # the debug shape scaled: head size 16, KV heads half the heads, MLP 2 x hidden (the debug preset)
        changes = {"lr": 1e-2, "global_batch_tokens": 512, "micro_batch_size": 4, "stages.0.steps": 4,
                   "warmup_steps": 0, "checkpoint_every": 0, "stages.0.data": data,
                   "model.hidden_size": hidden, "model.num_hidden_layers": 1, "model.intermediate_size": 2 * hidden,
                   "model.num_attention_heads": hidden // 16, "model.num_key_value_heads": hidden // 32,
                   "model.max_window_layers": 1}
        cfg = override(recipes.get("debug"), changes)
        row = by_run[f"h{hidden}x1-D2048-lr0.01-B512-s0"]
        model = Qwen2ForCausalLM(train.model_config(cfg))
        assert row["n_params"] == non_embedding_numel(model)
        records = Trainer(cfg, out_dir=None, resume=False, progress=False, verbose=False).fit()
        assert len(records) == row["steps"] == 4
        assert row["n_tokens"] == 4 * 512 and row["batch_tokens"] == 512
        # bit-identical on the CPU: the sweep ran this shape, lr and batch (the last tenth of 4 steps
        # is the last step)
        assert row["loss"] == records[-1]["loss"]
        assert row["loss"] != by_run[f"h{hidden}x1-D2048-lr0.003-B512-s0"]["loss"]
    # the smaller model has fewer parameters; every loss is a real, finite training loss
    assert by_run["h32x1-D2048-lr0.01-B512-s0"]["n_params"] < by_run["h64x1-D2048-lr0.01-B512-s0"]["n_params"]
    assert all(0 < r["loss"] < math.log(512) + 1 for r in res.rows)


def test_sweep_files_and_fit(swept):
    out, res = swept
    with open(out / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["run"] for t in table] == [r["run"] for r in res.rows]
    assert [float(t["loss"]) for t in table] == [r["loss"] for r in res.rows]
    assert len((out / "sweep.jsonl").read_text().splitlines()) == 4
    doc = json.loads((out / "fit.json").read_text())
    assert doc["n_runs"] == 4 and len(doc["cells"]) == 2
    # one token budget: the lr law is in N only, two cells determine it exactly, no L(N, D)
    f = res.fit
    assert f.lr_law is not None and f.lr_law.exponents["n_tokens"] is None
    cells = sorted(f.cells, key=lambda c: c.n_params)
    want = math.log(cells[1].lr / cells[0].lr) / math.log(cells[1].n_params / cells[0].n_params)
    assert f.lr_law.exponents["n_params"] == pytest.approx(want, abs=1e-9)
    assert f.batch_law is None and f.loss_law is None
    assert (out / "summary.txt").read_text().startswith(f"sweep in {out}: 4 runs")
    if have_matplotlib():
        for name in ("lr.png", "batch.png", "loss.png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert any("need matplotlib" in n for n in res.notes)
        assert not (out / "lr.png").exists()


def test_sweep_resumes_and_redoes_a_cut_run(swept, tmp_path):
    out, res = swept
    again = run_sweep(out=out, **GRID)
    assert again.ran == 0 and again.reused == 4
    assert [r["loss"] for r in again.rows] == [r["loss"] for r in res.rows]
    # an interrupted write: the last line is cut short; that run is trained again, with the same loss
    lines = (out / "sweep.jsonl").read_text().splitlines()
    (out / "sweep.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    third = run_sweep(out=out, **GRID)
    assert third.ran == 1 and third.reused == 3
    assert any("incomplete last line" in n for n in third.notes)
    assert [r["loss"] for r in third.rows] == [r["loss"] for r in res.rows]
    assert len((out / "sweep.jsonl").read_text().splitlines()) == 4
    # another plan in the same folder is refused
    with pytest.raises(Qwen25ValueError, match="another plan.*overrides"):
        run_sweep(out=out, overrides=["weight_decay=0.0"], **GRID)


def test_diverged_run_is_recorded_not_lost(tmp_path):
    from qwen25.train import Trainer, TrainingDivergedError

    class Diverging:
        def __init__(self, cfg):
            self.cfg = cfg

        def fit(self):
            if self.cfg.lr > 5e-3:
                raise TrainingDivergedError("step 3: the loss is nan (micro-batch 0, rows 0-3)", step=3,
                                            micro_batch=0, rows="0-3", last_checkpoint=None)
            return Trainer(self.cfg, out_dir=None, resume=False, progress=False, verbose=False).fit()

    res = run_sweep(out=tmp_path, trainer_factory=Diverging, **GRID)
    bad = [r for r in res.rows if r["lr"] == 1e-2]
    assert len(bad) == 2 and all(math.isnan(r["loss"]) and "loss is nan" in r["error"] for r in bad)
    assert len(res.fit.excluded) == 2 and res.fit.n_runs == 2
    back = scaling.read_table(tmp_path / "sweep.jsonl")
    assert sum(math.isnan(r["loss"]) for r in back) == 2


def test_bad_grids(tmp_path):
    with pytest.raises(Qwen25ValueError, match="'64y2': expected HIDDENxLAYERS"):
        parse_sizes("32x2,64y2")
    with pytest.raises(Qwen25ValueError, match="batch 700 tokens: must be a whole multiple of the recipe's seq_len 128"):
        run_sweep(out=tmp_path, **{**GRID, "batch_tokens": [700]})
    with pytest.raises(Qwen25ValueError, match="model size 40x1: the hidden size must be a multiple of the recipe's "
                                               "head size 16"):
        run_sweep(out=tmp_path, **{**GRID, "sizes": [(40, 1)]})
    with pytest.raises(Qwen25ValueError, match="unknown recipe|nope"):
        run_sweep(out=tmp_path, **{**GRID, "recipe": "nope"})


def test_cli_sweep(tmp_path, capsys):
    rc = main(["scaling", "sweep", "--recipe", "debug", "--out", str(tmp_path), "--sizes", "32x1,64x1",
               "--tokens", "2K", "--lrs", "3e-3,1e-2", "--batch-tokens", "512", "--bootstrap", "20",
               "--no-progress", "--no-plot"])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"sweep in {tmp_path}: 4 runs (4 trained now, 0 reused)" in out
    assert "lr = " in out and f"wrote {tmp_path / 'sweep.csv'}" in out
    assert not (tmp_path / "lr.png").exists()


def test_a_budget_past_the_data_is_noted(tmp_path):
    # the debug corpus holds 285,824 tokens (its manifest); 600K tokens repeat it. The note is made
    # before any training, so a stand-in trainer (a fixed falling loss) keeps this test fast.
    class Fixed:
        def __init__(self, cfg):
            self.steps = cfg.total_steps()

        def fit(self):
            return [{"step": i + 1, "loss": 5.0 - i / self.steps} for i in range(self.steps)]

    res = run_sweep(out=tmp_path, trainer_factory=Fixed, **{**GRID, "tokens": [6.0e5], "batch_tokens": [65536]})
    manifest = json.loads((tmp_path / "data" / "debug-v1-seq128" / "manifest.json").read_text())
    held = sum(s["tokens"] for s in manifest["shards"])
    assert any(f"see {9 * 65536} tokens but the data holds {held}" in n for n in res.notes)
