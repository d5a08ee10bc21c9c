"""The golden loss curve of the debug recipe (tests/data/golden_debug_loss.json), checked in after
the correctness tests passed: a regression guard. The first steps of the recipe, rerun here with
its full schedule (``stop_at_step``), must give the same losses; a change in the data, the
initialisation, the loss or the optimizer shows up at once.

Tolerance: 2e-3 relative. fp32 on the CPU is reproducible on one machine (the resume test asserts
bit-identity), but another BLAS or thread count may sum in another order; over a few steps that
moves the loss in the 5th-6th digit, far below what a real change does (a different lr, decay
group or loss normalisation moves it in the 2nd-3rd)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from qwen25.train import Trainer, override, recipes  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden_debug_loss.json"
STEPS = 5


def test_the_checked_in_curve_is_a_full_learning_run() -> None:
    g = json.loads(GOLDEN.read_text())
    cfg = recipes.get("debug")
    assert g["steps"] == list(range(1, cfg.total_steps() + 1))
    assert len(g["loss"]) == len(g["lr"]) == cfg.total_steps()
    assert g["loss"][-1] < g["loss"][0] - 3.0  # it learned the synthetic corpus


def test_debug_recipe_reproduces_the_golden_curve() -> None:
    g = json.loads(GOLDEN.read_text())
    recs = Trainer(recipes.get("debug"), verbose=False, progress=False).fit(stop_at_step=STEPS)
    assert [r["step"] for r in recs] == list(range(1, STEPS + 1))
    assert [r["lr"] for r in recs] == pytest.approx(g["lr"][:STEPS], rel=1e-12)
    assert [r["loss"] for r in recs] == pytest.approx(g["loss"][:STEPS], rel=2e-3)


def test_the_guard_is_sharp() -> None:
    """A plausible regression (another peak lr) leaves the tolerance within the same steps."""
    g = json.loads(GOLDEN.read_text())
    recs = Trainer(override(recipes.get("debug"), {"lr": 2e-3}), verbose=False, progress=False).fit(
        stop_at_step=STEPS)
    assert abs(recs[-1]["loss"] - g["loss"][STEPS - 1]) > 2e-3 * g["loss"][STEPS - 1]
