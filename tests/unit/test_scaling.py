"""qwen25.scaling: the published laws against the papers' own numbers, the fits against the known
laws that generated synthetic sweeps (seeded noise), the robust loss fit against a brute-force
search, MoE-vs-dense against bisection, and bad input."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from qwen25 import scaling
from qwen25.errors import Qwen25ValueError


# ------------------------------------------------------------------------- published laws
def test_deepseek_reproduces_deepseek_llm_7b():
    # DeepSeek LLM (arXiv:2401.02954), Table 2: the 7B model has 30 layers, d_model 4096, a 4096
    # context, 2.0T tokens, a peak lr of 4.2e-4 and a batch of 2304 sequences (x 4096 tokens =
    # 9,437,184 ~ 9.4M tokens). Compute as the paper counts it (section 3.1, eq. 2): C = M * D with
    # M the non-embedding FLOPs/token = 72 n_layer d_model^2 + 12 n_layer d_model l_seq.
    n_layer, d_model, l_seq, tokens = 30, 4096, 4096, 2.0e12
    m = 72 * n_layer * d_model**2 + 12 * n_layer * d_model * l_seq
    c = m * tokens
    assert scaling.deepseek_flops_per_token(n_layer, d_model, l_seq) == m
    assert scaling.deepseek_compute(n_layer, d_model, l_seq, tokens) == c
    got = scaling.deepseek(c)
    assert set(got) == {"lr", "batch_tokens"}
    assert got["lr"] == pytest.approx(4.2e-4, rel=0.05)
    assert got["batch_tokens"] == pytest.approx(2304 * 4096, rel=0.05)


def test_deepseek_67b_learning_rate():
    # Table 2 again: 67B has 95 layers, d_model 8192, lr 3.2e-4 (its batch, 4608 x 4096, is ~9%
    # above the law's value, which the paper does not claim to match exactly, so only lr here).
    c = (72 * 95 * 8192**2 + 12 * 95 * 8192 * 4096) * 2.0e12
    assert scaling.deepseek(c)["lr"] == pytest.approx(3.2e-4, rel=0.05)


def test_steplaw_is_the_published_equation():
    # Step Law (arXiv:2503.04715) eq. (1), (2), evaluated here in plain floats
    for n, d in [(1e9, 1e11), (4.3e8, 4e10), (7e9, 2e12)]:
        got = scaling.steplaw(n, d)
        assert got["lr"] == pytest.approx(1.79 * n**-0.713 * d**0.307, rel=1e-12)
        assert got["batch_tokens"] == pytest.approx(0.58 * d**0.571, rel=1e-12)
    # the batch depends on D only; the lr falls with N and rises with D
    assert scaling.steplaw(1e8, 1e10)["batch_tokens"] == scaling.steplaw(1e10, 1e10)["batch_tokens"]
    assert scaling.steplaw(2e9, 1e11)["lr"] < scaling.steplaw(1e9, 1e11)["lr"] < scaling.steplaw(1e9, 2e11)["lr"]


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "1e9", None, True])
def test_references_reject_bad_values(bad):
    with pytest.raises(Qwen25ValueError, match="compute_flops"):
        scaling.deepseek(bad)
    with pytest.raises(Qwen25ValueError, match="n_tokens"):
        scaling.steplaw(1e9, bad)
    with pytest.raises(Qwen25ValueError, match="n_params"):
        scaling.steplaw(bad, 1e9)


# ------------------------------------------------------------------------- synthetic sweeps
def chinchilla(n, d, E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28):  # Hoffmann et al. 2022, approach 3
    return E + A / n**alpha + B / d**beta


LR_STEPS = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
BATCH_STEPS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def synthetic_sweep(*, lr_law, batch_law, sizes, tokens, noise, seed, lr_steps=LR_STEPS, batch_steps=BATCH_STEPS,
                    extra=None):
    """Runs on a grid around a known optimum: the loss is Chinchilla's L(N, D) times a convex bowl
    in log lr and log batch, with seeded multiplicative noise; the grids are jittered per cell."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for d in tokens:
            lr_opt, b_opt = lr_law(n, d), batch_law(n, d)
            lr_shift, b_shift = rng.uniform(-0.25, 0.25, size=2)
            for s in lr_steps:
                for t in batch_steps:
                    lr = lr_opt * 2.0 ** (s + lr_shift)
                    b = b_opt * 2.0 ** (t + b_shift)
                    bowl = 1 + 0.01 * math.log(lr / lr_opt) ** 2 + 0.004 * math.log(b / b_opt) ** 2
                    loss = chinchilla(n, d) * bowl * (1 + rng.normal(0, noise))
                    rows.append({"n_params": float(n), "n_tokens": float(d), "lr": lr, "batch_tokens": b,
                                 "loss": loss, **(extra or {})})
    return rows


SIZES = np.geomspace(2e7, 2e9, 5)
TOKENS = np.geomspace(4e9, 4e11, 4)


def true_lr(n, d):
    return 0.5 * n**-0.30 * d**0.12


def true_batch(n, d):
    return 0.3 * d**0.5


def test_fit_recovers_known_exponents_from_noisy_sweep():
    rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES, tokens=TOKENS, noise=3e-4, seed=7)
    f = scaling.fit(rows, seed=1)
    assert f.n_runs == len(rows) and len(f.cells) == 20
    lr, bs = f.lr_law, f.batch_law
    assert lr.exponents["n_params"] == pytest.approx(-0.30, abs=0.03)
    assert lr.exponents["n_tokens"] == pytest.approx(0.12, abs=0.03)
    assert bs.exponents["n_tokens"] == pytest.approx(0.5, abs=0.05)
    assert bs.exponents["n_params"] == pytest.approx(0.0, abs=0.05)
    # the bootstrap intervals hold the true exponents and are not absurdly wide
    for law, var, true in [(lr, "n_params", -0.30), (lr, "n_tokens", 0.12), (bs, "n_tokens", 0.5), (bs, "n_params", 0.0)]:
        lo, hi = law.intervals[var]
        assert lo <= true <= hi, (law.name, var, lo, hi)
        assert hi - lo < 0.2
    # the loss law is Chinchilla's
    ll = f.loss_law
    assert ll.alpha == pytest.approx(0.34, abs=0.02)
    assert ll.beta == pytest.approx(0.28, abs=0.02)
    assert ll.E == pytest.approx(1.69, abs=0.05)
    # predictions, in and out of the sweep's range, with intervals around them
    for n, d in [(2e8, 4e10), (7e9, 1.4e12)]:
        p = f.predict(n, d)
        assert set(p) == {"lr", "batch_tokens", "loss"}
        assert float(p["lr"]) == pytest.approx(true_lr(n, d), rel=0.2)
        assert float(p["batch_tokens"]) == pytest.approx(true_batch(n, d), rel=0.35)
        assert float(p["loss"]) == pytest.approx(chinchilla(n, d), rel=0.01)
        for k in p:
            assert p[k].low <= p[k] <= p[k].high
        assert p["loss"].low <= chinchilla(n, d) <= p["loss"].high


def test_exact_power_law_is_recovered_exactly():
    # one run per lr in each cell, the optimum on the grid, no noise: the fit is exact
    rows = []
    for n in (1e7, 1e8, 1e9):
        for d in (1e9, 1e10, 1e11):
            lr_opt = 0.02 * n**-0.25 * d**0.05
            for f_ in (0.25, 0.5, 1.0, 2.0, 4.0):
                rows.append({"n_params": n, "n_tokens": d, "lr": lr_opt * f_, "batch_tokens": 1024.0 * (1 + (f_ > 1)),
                             "loss": 3.0 + math.log(f_) ** 2})
    f = scaling.fit(rows, near_best=0.0)
    assert f.lr_law.exponents["n_params"] == pytest.approx(-0.25, abs=1e-9)
    assert f.lr_law.exponents["n_tokens"] == pytest.approx(0.05, abs=1e-9)
    assert f.lr_law.coef == pytest.approx(0.02, rel=1e-8)
    assert f.lr_law.rmse_log == pytest.approx(0.0, abs=1e-9)


def test_fit_agrees_with_steplaw_on_a_steplaw_sweep():
    # a sweep whose optima follow Step Law: the fit's predictions meet steplaw() out of range
    rows = synthetic_sweep(lr_law=lambda n, d: scaling.steplaw(n, d)["lr"],
                           batch_law=lambda n, d: scaling.steplaw(n, d)["batch_tokens"],
                           sizes=SIZES, tokens=TOKENS, noise=2e-4, seed=3)
    f = scaling.fit(rows, n_boot_loss=0)
    p = f.predict(1e10, 2e12)
    ref = scaling.steplaw(1e10, 2e12)
    assert float(p["lr"]) == pytest.approx(ref["lr"], rel=0.25)
    assert float(p["batch_tokens"]) == pytest.approx(ref["batch_tokens"], rel=0.35)


# ------------------------------------------------------------------------- the loss fit
def test_loss_fit_recovers_chinchilla_exactly_without_noise():
    n = np.repeat(np.geomspace(1e7, 3e9, 5), 5)
    d = np.tile(np.geomspace(1e9, 1e12, 5), 5)
    law = scaling.fit_loss_law(n, d, chinchilla(n, d), n_boot=0)
    assert law.E == pytest.approx(1.69, rel=1e-3)
    assert law.A == pytest.approx(406.4, rel=1e-2)
    assert law.alpha == pytest.approx(0.34, rel=1e-3)
    assert law.B == pytest.approx(410.7, rel=1e-2)
    assert law.beta == pytest.approx(0.28, rel=1e-3)
    assert law.rmse_rel < 1e-6


def test_robust_loss_fit_ignores_outliers():
    rng = np.random.default_rng(2)
    n = np.repeat(np.geomspace(1e7, 3e9, 6), 6)
    d = np.tile(np.geomspace(3e8, 3e11, 6), 6)
    y = chinchilla(n, d) * (1 + rng.normal(0, 0.003, size=n.size))
    y[[3, 17, 30]] *= np.array([1.25, 0.8, 1.3])  # three broken runs
    robust = scaling.fit_loss_law(n, d, y, n_boot=0)
    plain = scaling.fit_loss_law(n, d, y, n_boot=0, huber_delta=1e6)  # Huber that never bends: least squares
    assert robust.alpha == pytest.approx(0.34, abs=0.03)
    assert robust.beta == pytest.approx(0.28, abs=0.03)
    assert abs(plain.alpha - 0.34) > 3 * abs(robust.alpha - 0.34)  # least squares is pulled off


def brute_force_one_term(x, y):
    """min over (E, A >= 0, alpha) of sum ((E + A x^-alpha - y) / y)^2: alpha on a fine grid,
    (E, A) by the 2x2 weighted normal equations (or the best non-negative edge), in plain Python."""
    best = (math.inf, None)
    for i in range(1, 3001):
        alpha = i / 1000
        u = [xi**-alpha for xi in x]
        w = [1 / yi**2 for yi in y]
        sw = sum(w)
        su = sum(wi * ui for wi, ui in zip(w, u))
        suu = sum(wi * ui * ui for wi, ui in zip(w, u))
        sy = sum(wi * yi for wi, yi in zip(w, y))
        suy = sum(wi * ui * yi for wi, ui, yi in zip(w, u, y))
        det = sw * suu - su * su
        cands = [(sy / sw, 0.0), (0.0, suy / suu)]
        if det > 0:
            e, a = (suu * sy - su * suy) / det, (sw * suy - su * sy) / det
            if e >= 0 and a >= 0:
                cands.append((e, a))
        for e, a in cands:
            obj = sum(((e + a * ui - yi) / yi) ** 2 for ui, yi in zip(u, y))
            if obj < best[0]:
                best = (obj, (e, a, alpha))
    return best


def test_loss_fit_is_at_least_as_good_as_brute_force():
    rng = random.Random(5)
    x = [1e7 * 3**i for i in range(7)]
    y = [2.0 + 50.0 / xi**0.3 * (1 + rng.gauss(0, 0.01)) for xi in x]
    law = scaling.fit_loss_law(x, [1e10] * len(x), y, n_boot=0, huber_delta=1e6)
    assert law.B is None and law.beta is None  # D does not vary: E absorbs the D term
    ours = sum(((law(xi, 1e10) - yi) / yi) ** 2 for xi, yi in zip(x, y))
    ref_obj, (_, _, alpha) = brute_force_one_term(x, y)
    assert ours <= ref_obj * (1 + 1e-6)
    assert law.alpha == pytest.approx(alpha, abs=0.002)


# ------------------------------------------------------------------------- MoE against dense
def test_compare_moe_finds_the_dense_equivalent():
    dense_rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES, tokens=TOKENS, noise=0.0,
                                 seed=11)
    dense = scaling.fit(dense_rows, n_boot=200, n_boot_loss=50)
    # MoE runs whose best loss is that of a dense model 2.5x their activated size
    moe_rows = []
    for act, total in [(5e7, 4e8), (2e8, 1.6e9)]:
        for d in (1e10, 1e11):
            for k, f_ in enumerate((0.5, 1.0, 2.0)):
                loss = chinchilla(2.5 * act, d) * (1 + 0.01 * math.log(f_) ** 2)
                moe_rows.append({"n_params": act, "n_total_params": total, "n_tokens": d,
                                 "lr": 1e-3 * f_, "batch_tokens": 2.0**20, "loss": loss})
    out = scaling.compare_moe(dense, moe_rows)
    assert len(out) == 4
    for r in out:
        law = dense.loss_law
        # bisection on the fitted dense law, in log N
        lo, hi = math.log(1e3), math.log(1e15)
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if law(math.exp(mid), r["n_tokens"]) > r["loss"] else (lo, mid)
        assert r["dense_equivalent_params"] == pytest.approx(math.exp(lo), rel=1e-6)
        assert float(r["ratio_to_active"]) == pytest.approx(2.5, rel=0.05)
        assert float(r["ratio_to_total"]) == pytest.approx(2.5 * r["n_params"] / r["n_total_params"], rel=0.05)
        assert r["ratio_to_active"].low <= r["ratio_to_active"] <= r["ratio_to_active"].high
        assert r["moe_lr"] == pytest.approx(1e-3)
        assert r["dense_lr"] == pytest.approx(dense.lr_law(r["dense_equivalent_params"], r["n_tokens"]))


def test_compare_moe_needs_total_params_and_a_dense_size_term():
    rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES, tokens=TOKENS, noise=0.0, seed=1)
    dense = scaling.fit(rows, n_boot=0, n_boot_loss=0)
    with pytest.raises(Qwen25ValueError, match="n_total_params"):
        scaling.compare_moe(dense, rows[:5])
    one_size = scaling.fit([r for r in rows if r["n_params"] == SIZES[0]], n_boot=0, n_boot_loss=0)
    with pytest.raises(Qwen25ValueError, match="n_params term"):
        scaling.compare_moe(one_size, rows[:5])


# ------------------------------------------------------------------------- degenerate sweeps
def test_one_token_budget_fits_n_only_and_says_so():
    rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES, tokens=[1e10], noise=0.0, seed=2)
    f = scaling.fit(rows, n_boot_loss=0)
    assert f.lr_law.exponents["n_tokens"] is None
    assert f.lr_law.exponents["n_params"] == pytest.approx(-0.30, abs=0.03)
    assert f.loss_law.B is None and f.loss_law.alpha == pytest.approx(0.34, abs=0.03)


def test_tokens_proportional_to_params_is_noted():
    rows = []
    for n in SIZES:
        rows += synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=[n], tokens=[20 * n], noise=0, seed=4)
    f = scaling.fit(rows, n_boot=0, n_boot_loss=0)
    assert f.lr_law.exponents["n_tokens"] is None
    assert any("proportional" in n for n in f.notes)


def test_unswept_hyperparameter_gives_no_law_and_no_prediction():
    rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES, tokens=TOKENS, noise=0, seed=5,
                           batch_steps=[0.0])
    f = scaling.fit(rows, n_boot=0, n_boot_loss=0)
    assert f.batch_law is None and f.lr_law is not None
    assert f.predict(1e9, 1e11)["batch_tokens"] is None
    assert any("batch_tokens: every cell has one value" in n for n in f.notes)


def test_too_few_cells_for_intervals_gives_nan_and_a_note():
    rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES[:2], tokens=[1e10], noise=0, seed=6)
    f = scaling.fit(rows)
    p = f.predict(1e9, 1e10)
    assert math.isnan(p["lr"].low) and math.isfinite(p["lr"])
    assert f.loss_law is None and p["loss"] is None
    assert any("no bootstrap interval" in n for n in f.notes)


def test_edge_of_the_grid_is_noted():
    rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES, tokens=TOKENS, noise=0, seed=8,
                           lr_steps=np.arange(0, 2.01, 0.5))  # the optimum sits at the smallest lr swept
    f = scaling.fit(rows, n_boot=0, n_boot_loss=0)
    assert any("lr: in" in n and "edge" in n for n in f.notes)


# ------------------------------------------------------------------------- bad input
def good_row(**kw):
    r = {"n_params": 1e8, "n_tokens": 1e10, "lr": 1e-3, "batch_tokens": 2.0**19, "loss": 3.2}
    r.update(kw)
    return r


@pytest.mark.parametrize("row, match", [
    ({"n_params": 1e8, "n_tokens": 1e10, "lr": 1e-3, "loss": 3.0}, r"rows\[1\]: missing batch_tokens"),
    (good_row(n_params=-5), r"rows\[1\]: n_params must be positive"),
    (good_row(lr=0), r"rows\[1\]: lr must be positive"),
    (good_row(n_tokens=math.inf), r"rows\[1\]: n_tokens must be positive and finite"),
    (good_row(lr="3e-4"), r"rows\[1\]: lr must be a number, not str"),
    (good_row(loss=True), r"rows\[1\]: loss must be a number, not bool"),
    (good_row(loss=-1.0), r"rows\[1\]: loss must be positive"),
    (good_row(n_total_params=1e7), r"rows\[1\]: n_total_params must be at least n_params"),
    ([1, 2], r"rows\[1\] must be a dict"),
])
def test_bad_rows_name_the_row(row, match):
    with pytest.raises(Qwen25ValueError, match=match):
        scaling.fit([good_row(), row])


def test_bad_arguments():
    with pytest.raises(Qwen25ValueError, match="no rows"):
        scaling.fit([])
    with pytest.raises(Qwen25ValueError, match="iterable of dicts"):
        scaling.fit("n_params,loss")
    with pytest.raises(Qwen25ValueError, match="near_best"):
        scaling.fit([good_row()], near_best=1.5)
    with pytest.raises(Qwen25ValueError, match="confidence"):
        scaling.fit([good_row()], confidence=1.0)
    with pytest.raises(Qwen25ValueError, match="n_boot"):
        scaling.fit([good_row()], n_boot=-1)
    f = scaling.fit([good_row(), good_row(lr=2e-3, loss=3.3)], n_boot=0)
    with pytest.raises(Qwen25ValueError, match="n_params"):
        f.predict(0, 1e10)


def test_diverged_runs_are_listed_not_lost():
    rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES[:3], tokens=TOKENS[:2], noise=0, seed=9)
    rows[4]["loss"] = math.nan
    rows[9]["loss"] = math.inf
    f = scaling.fit(rows, n_boot=0, n_boot_loss=0)
    assert f.n_runs == len(rows) - 2
    assert f.excluded == [("rows[4]", "loss is nan (diverged run)"), ("rows[9]", "loss is inf (diverged run)")]
    assert "excluded rows[4]" in f.summary()
    with pytest.raises(Qwen25ValueError, match="every run diverged"):
        scaling.fit([good_row(loss=math.nan)])


def test_estimate_behaves_as_a_float():
    e = scaling.Estimate(2.0, 1.0, 3.0)
    assert e * 2 == 4.0 and f"{e:.1f}" == "2.0" and e.interval == (1.0, 3.0)
    import pickle

    back = pickle.loads(pickle.dumps(e))
    assert back == 2.0 and back.low == 1.0 and back.high == 3.0
    assert e.to_dict() == {"value": 2.0, "low": 1.0, "high": 3.0}
    assert scaling.Estimate(1.0).to_dict() == {"value": 1.0, "low": None, "high": None}


def test_compare_moe_unreachable_loss_is_inf():
    rows = synthetic_sweep(lr_law=true_lr, batch_law=true_batch, sizes=SIZES, tokens=TOKENS, noise=0.0, seed=12)
    dense = scaling.fit(rows, n_boot=0, n_boot_loss=0)
    d = 1e10
    floor = dense.loss_law.E + dense.loss_law.B / d**dense.loss_law.beta  # the loss of an infinite dense model
    moe = [{"n_params": 1e8, "n_total_params": 8e8, "n_tokens": d, "lr": 1e-3, "batch_tokens": 2.0**20,
            "loss": floor * 0.99}]
    (r,) = scaling.compare_moe(dense, moe)
    assert math.isinf(r["dense_equivalent_params"]) and math.isinf(r["ratio_to_active"])
    assert r["dense_lr"] is None
