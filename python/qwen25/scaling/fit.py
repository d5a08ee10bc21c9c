"""Fitting hyperparameter and loss scaling laws to a sweep table: :func:`fit`.

A sweep is a table of training runs, one row each: model size ``n_params`` (N, non-embedding
parameters; the *activated* ones for MoE), training tokens ``n_tokens`` (D), peak learning rate
``lr``, global batch ``batch_tokens`` and the final ``loss``. Rows of the same (N, D) (equal
within ``group_tol``, and for MoE the same ``n_total_params``) form a *cell*.

1. **Optimal hyperparameters.** In each cell the *near-best* runs are those whose loss is within
   ``near_best`` (relative, DeepSeek LLM's 0.25% by default) of the cell's best. The cell's
   optimal lr is the geometric mean of the near-best runs' lr (likewise the batch). Across cells,
   ``log lr* = log c + a log N + b log D`` is fitted by least squares in log space (a variable
   that does not vary across cells is left out; when D is proportional to N only N is kept), the
   same for the batch. Only cells that swept at least two values of the hyperparameter count.
2. **Loss.** The cells' best losses are fitted with Chinchilla's ``L = E + A/N^alpha + B/D^beta``:
   for fixed (alpha, beta) the model is linear in (E, A, B) >= 0, solved exactly (non-negative
   least squares over the 7 supports) and made robust with Huber weights on relative residuals
   (iteratively reweighted); (alpha, beta) are found on a log grid and refined by Nelder-Mead.
   This is variable projection: only the two exponents are searched.
3. **Intervals.** Cells are resampled with replacement (a case bootstrap, seeded) and both fits
   repeated; the percentile intervals of the exponents and of every prediction come from those
   refits. With no more cells than coefficients there is no interval (NaN, and a note).

Runs whose loss is NaN or infinite (diverged) are left out of the fits and listed in
``ScalingFit.excluded``; every other bad value is an error naming the row.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np

from ..errors import Qwen25ValueError

__all__ = [
    "REQUIRED_KEYS",
    "Cell",
    "Estimate",
    "LossLaw",
    "PowerLaw",
    "Run",
    "ScalingFit",
    "compare_moe",
    "fit",
    "fit_loss_law",
    "fit_power_law",
    "validate_rows",
]

REQUIRED_KEYS = ("n_params", "n_tokens", "lr", "batch_tokens", "loss")
_POSITIVE_KEYS = ("n_params", "n_tokens", "lr", "batch_tokens")
WHERE_KEY = "_where"  # set by read_table: "file:line", used in error messages


# ------------------------------------------------------------------------------------- values
class Estimate(float):
    """A float with an interval: ``low`` and ``high`` (NaN where there is none). It behaves as the
    point value everywhere a float is expected."""

    __slots__ = ("high", "low")
    low: float
    high: float

    def __new__(cls, value: float, low: float = math.nan, high: float = math.nan) -> Estimate:  # noqa: PYI034
        obj = float.__new__(cls, value)
        obj.low = float(low)
        obj.high = float(high)
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (Estimate, (float(self), self.low, self.high))

    def __repr__(self) -> str:
        return f"Estimate({float(self)!r}, low={self.low!r}, high={self.high!r})"

    def __str__(self) -> str:
        return f"{float(self):.4g} [{self.low:.4g}, {self.high:.4g}]"

    @property
    def interval(self) -> tuple[float, float]:
        return (self.low, self.high)

    def to_dict(self) -> dict[str, float | None]:
        def j(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {"value": float(self), "low": j(self.low), "high": j(self.high)}


@dataclass(frozen=True)
class Run:
    """One validated row of a sweep table. ``where`` names it in messages (``rows[3]`` or
    ``file.csv:5``)."""

    where: str
    n_params: float
    n_tokens: float
    lr: float
    batch_tokens: float
    loss: float
    n_total_params: float | None = None


def _number(where: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise Qwen25ValueError(f"{where}: {key} must be a number, not {type(value).__name__} {value!r}")
    return float(value)


def validate_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[list[Run], list[tuple[str, str]]]:
    """Check every row; return the usable runs and the excluded ones as ``(where, why)`` (diverged
    runs: a NaN or infinite loss). Any other bad row raises :class:`Qwen25ValueError` naming it."""
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise Qwen25ValueError(f"rows must be an iterable of dicts, not {type(rows).__name__}")
    runs: list[Run] = []
    excluded: list[tuple[str, str]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise Qwen25ValueError(f"rows[{i}] must be a dict, not {type(row).__name__}")
        where = str(row.get(WHERE_KEY, f"rows[{i}]"))
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            raise Qwen25ValueError(f"{where}: missing {', '.join(missing)} (a row needs {', '.join(REQUIRED_KEYS)})")
        vals = {k: _number(where, k, row[k]) for k in REQUIRED_KEYS}
        for k in _POSITIVE_KEYS:
            if not (math.isfinite(vals[k]) and vals[k] > 0):
                raise Qwen25ValueError(f"{where}: {k} must be positive and finite, not {row[k]!r}")
        total = row.get("n_total_params")
        n_total = None
        if total is not None and total != "":
            n_total = _number(where, "n_total_params", total)
            if not (math.isfinite(n_total) and n_total >= vals["n_params"]):
                raise Qwen25ValueError(
                    f"{where}: n_total_params must be at least n_params ({vals['n_params']:.6g}), not {total!r}")
        if not math.isfinite(vals["loss"]):
            excluded.append((where, f"loss is {vals['loss']} (diverged run)"))
            continue
        if vals["loss"] <= 0:
            raise Qwen25ValueError(f"{where}: loss must be positive, not {row['loss']!r}")
        runs.append(Run(where=where, n_total_params=n_total, **vals))
    if not runs and not excluded:
        raise Qwen25ValueError("no rows: a sweep table needs at least one run")
    return runs, excluded


# -------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """The runs of one (N, D) point of the sweep and its estimated optimum."""

    n_params: float
    n_tokens: float
    n_total_params: float | None
    runs: int
    best_loss: float
    best_lr: float
    best_batch_tokens: float
    lr: float  # geometric mean of the near-best runs' lr
    batch_tokens: float  # likewise
    near_best: int
    lr_values: int  # distinct learning rates swept in the cell
    batch_values: int
    lr_at_edge: bool  # the near-best band touches the smallest or largest lr swept
    batch_at_edge: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cluster(values: np.ndarray, rel_tol: float) -> np.ndarray:
    """Label each value; values within ``rel_tol`` (relative) of a cluster's smallest share it."""
    logs = np.log(values)
    order = np.argsort(logs, kind="stable")
    labels = np.empty(len(values), dtype=np.int64)
    lab, start = -1, -math.inf
    for idx in order:
        if logs[idx] - start > math.log1p(rel_tol):
            lab += 1
            start = logs[idx]
        labels[idx] = lab
    return labels


def _distinct(values: Sequence[float] | np.ndarray, rel_tol: float = 1e-9) -> int:
    return int(_cluster(np.asarray(values, dtype=float), rel_tol).max()) + 1 if len(values) else 0


def make_cells(runs: Sequence[Run], near_best: float, group_tol: float) -> list[Cell]:
    n = _cluster(np.array([r.n_params for r in runs]), group_tol)
    d = _cluster(np.array([r.n_tokens for r in runs]), group_tol)
    totals = [r.n_total_params for r in runs]
    t_known = np.array([t if t is not None else 1.0 for t in totals])
    t = _cluster(t_known, group_tol)
    groups: dict[tuple[int, int, int, bool], list[Run]] = {}
    for i, r in enumerate(runs):
        groups.setdefault((int(n[i]), int(d[i]), int(t[i]), totals[i] is None), []).append(r)
    cells = []
    for key in sorted(groups):
        rs = groups[key]
        losses = np.array([r.loss for r in rs])
        best = int(np.argmin(losses))
        band = [r for r in rs if r.loss <= losses[best] * (1.0 + near_best)]
        lrs = [r.lr for r in rs]
        bss = [r.batch_tokens for r in rs]

        def gmean(xs: Iterable[float]) -> float:
            a = np.fromiter(xs, dtype=float)
            return float(a[0]) if np.all(a == a[0]) else float(np.exp(np.mean(np.log(a))))

        def at_edge(all_v: list[float], band_v: list[float]) -> bool:
            if _distinct(all_v) < 2:
                return False
            lo, hi = min(all_v), max(all_v)
            return any(math.isclose(v, lo, rel_tol=1e-9) or math.isclose(v, hi, rel_tol=1e-9) for v in band_v)

        tot = None if key[3] else gmean(r.n_total_params for r in rs)  # type: ignore[misc]
        cells.append(Cell(
            n_params=gmean(r.n_params for r in rs), n_tokens=gmean(r.n_tokens for r in rs), n_total_params=tot,
            runs=len(rs), best_loss=float(losses[best]), best_lr=rs[best].lr,
            best_batch_tokens=rs[best].batch_tokens, lr=gmean(r.lr for r in band),
            batch_tokens=gmean(r.batch_tokens for r in band), near_best=len(band),
            lr_values=_distinct(lrs), batch_values=_distinct(bss),
            lr_at_edge=at_edge(lrs, [r.lr for r in band]), batch_at_edge=at_edge(bss, [r.batch_tokens for r in band]),
        ))
    return cells


# ------------------------------------------------------------------------------ power laws
VARIABLES = ("n_params", "n_tokens")


def _which_vary(log_n: np.ndarray, log_d: np.ndarray) -> tuple[tuple[bool, bool], str | None]:
    vn = bool(np.ptp(log_n) > 1e-9) if len(log_n) else False
    vd = bool(np.ptp(log_d) > 1e-9) if len(log_d) else False
    if vn and vd:
        x = np.stack([log_n - log_n.mean(), log_d - log_d.mean()], axis=1)
        s = np.linalg.svd(x, compute_uv=False)
        if s[1] <= 1e-8 * s[0]:
            return (True, False), "n_tokens is proportional to n_params across the cells: only the n_params exponent is fitted"
    return (vn, vd), None


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    if samples.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(samples, [a, 100.0 - a])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class PowerLaw:
    """``y = exp(log_coef) * N^a * D^b``; an exponent is None where its variable was not fitted."""

    name: str
    log_coef: float
    exponents: dict[str, float | None]
    intervals: dict[str, tuple[float, float]]  # "coef", "n_params", "n_tokens" (NaN: none)
    n_cells: int
    rmse_log: float  # residual RMS in natural-log units
    confidence: float
    samples: np.ndarray = field(repr=False)  # bootstrap (log_coef, a, b), 0 for absent variables

    @property
    def coef(self) -> float:
        return math.exp(self.log_coef)

    def _log(self, n: float, d: float, theta: np.ndarray) -> np.ndarray:
        return theta[..., 0] + theta[..., 1] * math.log(n) + theta[..., 2] * math.log(d)

    def _theta(self) -> np.ndarray:
        return np.array([self.log_coef, self.exponents["n_params"] or 0.0, self.exponents["n_tokens"] or 0.0])

    def __call__(self, n_params: float, n_tokens: float) -> float:
        return float(math.exp(self._log(n_params, n_tokens, self._theta())))

    def estimate(self, n_params: float, n_tokens: float) -> Estimate:
        lo, hi = _percentile_interval(self._log(n_params, n_tokens, self.samples), self.confidence)
        return Estimate(self(n_params, n_tokens), math.exp(lo), math.exp(hi))

    def formula(self) -> str:
        parts = [f"{self.coef:.4g}"]
        for var, sym in zip(VARIABLES, ("N", "D")):
            e = self.exponents[var]
            if e is not None:
                lo, hi = self.intervals[var]
                ci = f" [{lo:+.3f}, {hi:+.3f}]" if math.isfinite(lo) else ""
                parts.append(f"{sym}^{e:+.4f}{ci}")
        return f"{self.name} = " + " * ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        def j(x: float | None) -> float | None:
            return x if x is not None and math.isfinite(x) else None

        return {
            "coef": self.coef, "exponents": dict(self.exponents),
            "intervals": {k: [j(a), j(b)] for k, (a, b) in self.intervals.items()},
            "n_cells": self.n_cells, "rmse_log": self.rmse_log, "bootstrap_samples": len(self.samples),
        }


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    theta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return np.asarray(theta)


def fit_power_law(name: str, n_params: Sequence[float], n_tokens: Sequence[float], values: Sequence[float], *,
                  n_boot: int = 1000, confidence: float = 0.95, seed: int = 0,
                  notes: list[str] | None = None) -> PowerLaw:
    """Least squares of ``log y`` on ``log N`` and ``log D`` (the ones that vary), with a case
    bootstrap over the points for the intervals."""
    ln, ld, ly = (np.log(np.asarray(v, dtype=float)) for v in (n_params, n_tokens, values))
    k = len(ly)
    if k == 0:
        raise Qwen25ValueError(f"{name}: no cells to fit")
    (vn, vd), why = _which_vary(ln, ld)
    if why and notes is not None:
        notes.append(f"{name}: {why}")
    cols = [np.ones(k)] + ([ln] if vn else []) + ([ld] if vd else [])
    x = np.stack(cols, axis=1)
    theta = _lstsq(x, ly)
    if theta is None:  # cannot happen once the varying columns are chosen; kept as a guard
        raise Qwen25ValueError(f"{name}: the cells do not determine a power law")

    def full(t: np.ndarray) -> np.ndarray:
        out = np.zeros(3)
        out[0] = t[0]
        j = 1
        if vn:
            out[1], j = t[j], j + 1
        if vd:
            out[2] = t[j]
        return out

    theta_full = full(theta)
    resid = ly - x @ theta
    rmse = float(np.sqrt(np.mean(resid**2)))
    samples = np.zeros((0, 3))
    if k > x.shape[1] and n_boot > 0:
        rng = np.random.default_rng(seed)
        got = []
        for _ in range(n_boot):
            idx = rng.integers(0, k, size=k)
            t = _lstsq(x[idx], ly[idx])
            if t is not None:
                got.append(full(t))
        samples = np.array(got) if got else np.zeros((0, 3))
    elif notes is not None:
        notes.append(f"{name}: {k} cells for {x.shape[1]} coefficients: no bootstrap interval")
    intervals = {
        "coef": tuple(math.exp(v) for v in _percentile_interval(samples[:, 0], confidence)),
        "n_params": _percentile_interval(samples[:, 1], confidence) if vn else (math.nan, math.nan),
        "n_tokens": _percentile_interval(samples[:, 2], confidence) if vd else (math.nan, math.nan),
    }
    return PowerLaw(
        name=name, log_coef=float(theta_full[0]),
        exponents={"n_params": float(theta_full[1]) if vn else None, "n_tokens": float(theta_full[2]) if vd else None},
        intervals=intervals, n_cells=k, rmse_log=rmse, confidence=confidence, samples=samples,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------ loss law
@dataclass(frozen=True)
class LossLaw:
    """Chinchilla's ``L(N, D) = E + A / N^alpha + B / D^beta``; a term whose variable was not
    fitted has ``None`` for both its constant and its exponent (E then absorbs it)."""

    E: float
    A: float | None
    alpha: float | None
    B: float | None
    beta: float | None
    intervals: dict[str, tuple[float, float]]
    n_cells: int
    rmse_rel: float  # RMS of (prediction - loss) / loss over the cells
    confidence: float
    huber_delta: float
    samples: np.ndarray = field(repr=False)  # bootstrap (E, A, alpha, B, beta), 0 for absent terms

    def _theta(self) -> np.ndarray:
        return np.array([self.E, self.A or 0.0, self.alpha or 0.0, self.B or 0.0, self.beta or 0.0])

    @staticmethod
    def _eval(theta: np.ndarray, n: float, d: float) -> np.ndarray:
        return theta[..., 0] + theta[..., 1] * n ** -theta[..., 2] + theta[..., 3] * d ** -theta[..., 4]

    def __call__(self, n_params: float, n_tokens: float) -> float:
        return float(self._eval(self._theta(), float(n_params), float(n_tokens)))

    def estimate(self, n_params: float, n_tokens: float) -> Estimate:
        lo, hi = _percentile_interval(self._eval(self.samples, float(n_params), float(n_tokens)), self.confidence)
        return Estimate(self(n_params, n_tokens), lo, hi)

    def params_for_loss(self, loss: float, n_tokens: float, theta: np.ndarray | None = None) -> float:
        """The N at which the law reaches ``loss`` with ``n_tokens`` tokens (inf where no N does)."""
        t = self._theta() if theta is None else theta
        if self.A is None:
            raise Qwen25ValueError("the loss law has no n_params term (n_params did not vary in its sweep)")
        rest = loss - t[0] - t[3] * float(n_tokens) ** -t[4]
        if rest <= 0 or t[1] <= 0:
            return math.inf
        return float((t[1] / rest) ** (1.0 / t[2]))

    def formula(self) -> str:
        def ci(k: str) -> str:
            lo, hi = self.intervals.get(k, (math.nan, math.nan))
            return f" [{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) else ""

        s = f"L = {self.E:.4g}{ci('E')}"
        if self.A is not None:
            s += f" + {self.A:.4g} / N^{self.alpha:.4f}{ci('alpha')}"
        if self.B is not None:
            s += f" + {self.B:.4g} / D^{self.beta:.4f}{ci('beta')}"
        return s

    def to_dict(self) -> dict[str, Any]:
        def j(x: float | None) -> float | None:
            return x if x is not None and math.isfinite(x) else None

        return {
            "E": self.E, "A": self.A, "alpha": self.alpha, "B": self.B, "beta": self.beta,
            "intervals": {k: [j(a), j(b)] for k, (a, b) in self.intervals.items()},
            "n_cells": self.n_cells, "rmse_rel": self.rmse_rel, "huber_delta": self.huber_delta,
            "bootstrap_samples": len(self.samples),
        }


_SUBSETS_CACHE: dict[int, list[np.ndarray]] = {}


def _subsets(k: int) -> list[np.ndarray]:
    if k not in _SUBSETS_CACHE:
        _SUBSETS_CACHE[k] = [np.array([j for j in range(k) if m >> j & 1]) for m in range(1, 1 << k)]
    return _SUBSETS_CACHE[k]


def _wnnls(design: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact weighted non-negative least squares for a stack of small problems: ``design``
    (G, n, k) >= 0, targets ``y`` (G, n), weights ``w`` (G, n). The NNLS optimum is the
    unconstrained optimum on its own support, so where the full-support solution is not feasible
    the best feasible one over all 2^k - 1 supports is it. Returns theta (G, k) and the weighted
    sum of squares (G,)."""
    k = design.shape[2]
    dw = design * w[..., None]
    gram = np.matmul(dw.transpose(0, 2, 1), design)
    rhs = np.einsum("gni,gn->gi", dw, y)
    gram += 1e-13 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(k)
    theta = np.linalg.solve(gram, rhs[..., None])[..., 0]
    bad = np.flatnonzero(np.any(theta < 0, axis=1))
    if len(bad):
        gb, rb = gram[bad], rhs[bad]
        best = np.zeros((len(bad), k))
        best_obj = np.full(len(bad), np.inf)
        for s in _subsets(k)[:-1]:  # the last one is the full support, already infeasible
            m = gb[:, s[:, None], s[None, :]]
            b = rb[:, s]
            t = np.linalg.solve(m, b[..., None])[..., 0]
            obj = -np.einsum("gi,gi->g", t, b)  # y'Wy - t'b at the optimum on this support
            take = np.all(t >= 0, axis=1) & (obj < best_obj)
            if np.any(take):
                full = np.zeros((int(take.sum()), k))
                full[:, s] = t[take]
                best[take] = full
                best_obj[take] = obj[take]
        theta[bad] = best
    r = np.einsum("gni,gi->gn", design, theta) - y
    return theta, np.einsum("gn,gn->g", w, r * r)


def _design(exps: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Columns [1, x_1^-e_1, ...]: ``exps`` (G, m), scaled variables ``xs`` (G, m, n) -> (G, n, 1+m)."""
    g, m, n = xs.shape
    cols = [np.ones((g, n))] + [xs[:, j, :] ** -exps[:, j : j + 1] for j in range(m)]
    return np.stack(cols, axis=2)


def _nelder_mead(f: Any, x0: np.ndarray, step: float, iters: int) -> np.ndarray:
    """Nelder-Mead (reflection 1, expansion 2, contraction 1/2, shrink 1/2) on G problems at once,
    in lockstep: ``f`` maps points (G, d) to values (G,); ``x0`` is (G, d)."""
    g, d = x0.shape
    pts = np.repeat(x0[:, None, :], d + 1, axis=1)
    pts[:, 1:, :] += step * np.eye(d)[None]
    vals = np.stack([f(pts[:, i]) for i in range(d + 1)], axis=1)
    rows = np.arange(g)
    for _ in range(iters):
        order = np.argsort(vals, axis=1, kind="stable")
        pts = np.take_along_axis(pts, order[:, :, None], axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        if np.all(np.max(np.abs(pts - pts[:, :1]), axis=(1, 2)) < 1e-7):
            break
        worst, f_best, f_second, f_worst = pts[:, -1], vals[:, 0], vals[:, -2], vals[:, -1]
        centroid = pts[:, :-1].mean(axis=1)
        xr = centroid + (centroid - worst)
        fr = f(xr)
        expand = fr < f_best
        xe = centroid + 2.0 * (centroid - worst)
        fe = f(xe) if np.any(expand) else np.full(g, np.inf)
        reflect = ~expand & (fr < f_second)
        outside = fr < f_worst
        xc = np.where(outside[:, None], centroid + 0.5 * (xr - centroid), centroid + 0.5 * (worst - centroid))
        need_c = ~expand & ~reflect
        fc = f(xc) if np.any(need_c) else np.full(g, np.inf)
        contract_ok = need_c & (fc < np.where(outside, fr, f_worst))
        new_pt = worst.copy()
        new_val = f_worst.copy()
        use_e = expand & (fe < fr)
        use_r = (expand & ~use_e) | reflect
        new_pt[use_e], new_val[use_e] = xe[use_e], fe[use_e]
        new_pt[use_r], new_val[use_r] = xr[use_r], fr[use_r]
        new_pt[contract_ok], new_val[contract_ok] = xc[contract_ok], fc[contract_ok]
        pts[:, -1], vals[:, -1] = new_pt, new_val
        shrink = need_c & ~contract_ok
        if np.any(shrink):
            shrunk = pts[:, :1] + 0.5 * (pts - pts[:, :1])
            pts[shrink] = shrunk[shrink]
            for i in range(1, d + 1):
                vals[shrink, i] = f(pts[:, i])[shrink]
    return pts[rows, np.argmin(vals, axis=1)]


_EXP_LO, _EXP_HI = 0.01, 3.0


def _fit_loss_stack(xs: np.ndarray, y: np.ndarray, delta: float, start: np.ndarray | None,
                    outer: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Robust fits of ``y ~ c0 + sum_j c_j x_j^-e_j`` (c >= 0) for G problems at once: ``xs``
    (G, m, n) scaled variables, ``y`` (G, n). Huber on relative residuals by iteratively
    reweighted least squares; inside, variable projection (linear c by exact NNLS, exponents e by
    Nelder-Mead in log space). Returns exponents (G, m) and c (G, 1+m)."""
    g, m, _ = xs.shape
    w = 1.0 / (y * y)  # squared relative residuals, Huber weights multiply in

    def profile(z: np.ndarray, ww: np.ndarray, data_x: np.ndarray, data_y: np.ndarray) -> np.ndarray:
        e = np.exp(z)
        bad = np.any((e < _EXP_LO / 2) | (e > 2 * _EXP_HI), axis=1)
        _, obj = _wnnls(_design(np.clip(e, _EXP_LO / 2, 2 * _EXP_HI), data_x), data_y, ww)
        return np.where(bad, np.inf, obj)

    if m == 0:
        exps = np.zeros((g, 0))
    elif start is None:
        grid1 = np.geomspace(_EXP_LO, _EXP_HI, 120 if m == 1 else 30)
        grid = grid1[:, None] if m == 1 else np.stack(np.meshgrid(grid1, grid1, indexing="ij"), -1).reshape(-1, 2)
        exps = np.empty((g, m))
        for i in range(g):  # one problem at a time against the whole grid
            rep = len(grid)
            obj = profile(np.log(grid), np.repeat(w[i : i + 1], rep, 0), np.repeat(xs[i : i + 1], rep, 0),
                          np.repeat(y[i : i + 1], rep, 0))
            exps[i] = grid[int(np.argmin(obj))]
    else:
        exps = np.broadcast_to(start, (g, m)).copy()
    hw = np.ones_like(y)
    theta = np.zeros((g, 1 + m))
    for it in range(outer):
        ww = w * hw
        prev = np.concatenate([exps, theta], axis=1)
        if m:
            z = _nelder_mead(lambda zz, ww=ww: profile(zz, ww, xs, y), np.log(exps), step=0.2 if it == 0 else 0.05,
                             iters=200 if it == 0 else 60)
            exps = np.exp(z)
        design = _design(exps, xs)
        theta, _ = _wnnls(design, y, ww)
        r = (np.einsum("gni,gi->gn", design, theta) - y) / y
        hw = np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        now = np.concatenate([exps, theta], axis=1)
        if it and np.allclose(now, prev, rtol=1e-6, atol=1e-12):
            break
    return exps, theta


def fit_loss_law(n_params: Sequence[float], n_tokens: Sequence[float], losses: Sequence[float], *,
                 n_boot: int = 200, confidence: float = 0.95, seed: int = 0, huber_delta: float = 1e-3,
                 notes: list[str] | None = None) -> LossLaw | None:
    """Robust variable-projection fit of ``E + A/N^alpha + B/D^beta`` (see the module docstring).
    Returns None (with a note) when the points cannot determine it."""
    n = np.asarray(n_params, dtype=float)
    d = np.asarray(n_tokens, dtype=float)
    y = np.asarray(losses, dtype=float)
    (vn, vd), why = _which_vary(np.log(n), np.log(d))
    if why and notes is not None:
        notes.append(f"loss: {why}")
    use = [v for v, on in (("n", vn), ("d", vd)) if on]
    n_coef = 1 + 2 * len(use)
    if not use or len(y) < n_coef:
        if notes is not None:
            notes.append(f"loss: {len(y)} cells, but L(N, D) needs at least {max(n_coef, 3)} with N or D varying: "
                         "not fitted")
        return None
    for v in use:
        values = _distinct(n if v == "n" else d, 0.01)
        if values < 3 and notes is not None:
            name, sym = ("n_params", "alpha") if v == "n" else ("n_tokens", "beta")
            notes.append(f"loss: {name} takes {values} values only: with E free, {sym} is not determined by the data "
                         f"(sweep 3 or more values; see its interval)")
    # scale N and D by their geometric means so that the linear system is well conditioned
    n_ref, d_ref = float(np.exp(np.log(n).mean())), float(np.exp(np.log(d).mean()))
    xs = np.stack([(n / n_ref) if v == "n" else (d / d_ref) for v in use])  # (m, cells)

    def unscale(e: np.ndarray, th: np.ndarray) -> np.ndarray:  # (G, m), (G, 1+m) -> (G, 5)
        out = np.zeros((len(e), 5))
        out[:, 0] = th[:, 0]
        for j, v in enumerate(use):
            ref, slot = (n_ref, 1) if v == "n" else (d_ref, 3)
            out[:, slot], out[:, slot + 1] = th[:, 1 + j] * ref ** e[:, j], e[:, j]
        return out

    e, th = _fit_loss_stack(xs[None], y[None], huber_delta, None)
    best = unscale(e, th)[0]
    pred = LossLaw._eval(best, n, d)  # type: ignore[arg-type]
    rmse = float(np.sqrt(np.mean(((pred - y) / y) ** 2)))
    samples = np.zeros((0, 5))
    if len(y) > n_coef and n_boot > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(y), size=(n_boot, len(y)))
        keep = np.array([len(np.unique(i)) >= n_coef and all(np.ptp(np.log(x[i])) > 1e-9 for x in xs) for i in idx])
        idx = idx[keep]
        if len(idx):
            eb, tb = _fit_loss_stack(xs[:, idx].transpose(1, 0, 2), y[idx], huber_delta, e[0])
            samples = unscale(eb, tb)
    elif notes is not None:
        notes.append(f"loss: {len(y)} cells for {n_coef} coefficients: no bootstrap interval")
    intervals = {}
    for j, k in enumerate(["E", "A", "alpha", "B", "beta"]):
        absent = (k in ("A", "alpha") and "n" not in use) or (k in ("B", "beta") and "d" not in use)
        if not absent:
            intervals[k] = _percentile_interval(samples[:, j], confidence)
    return LossLaw(
        E=float(best[0]), A=float(best[1]) if "n" in use else None, alpha=float(best[2]) if "n" in use else None,
        B=float(best[3]) if "d" in use else None, beta=float(best[4]) if "d" in use else None,
        intervals=intervals, n_cells=len(y), rmse_rel=rmse, confidence=confidence, huber_delta=huber_delta,
        samples=samples,
    )

# ------------------------------------------------------------------------------- the fit
@dataclass(frozen=True)
class ScalingFit:
    """The result of :func:`fit`. ``lr_law``/``batch_law`` are None where that hyperparameter was
    swept at one value only in every cell; ``loss_law`` is None where too few cells vary."""

    lr_law: PowerLaw | None
    batch_law: PowerLaw | None
    loss_law: LossLaw | None
    cells: list[Cell]
    excluded: list[tuple[str, str]]
    notes: list[str]
    near_best: float
    confidence: float
    n_runs: int

    def predict(self, n_params: float, n_tokens: float) -> dict[str, Estimate | None]:
        """The optimal peak ``lr``, ``batch_tokens`` and the ``loss`` expected at (N, D), each an
        :class:`Estimate` (a float with ``.low``/``.high`` bootstrap bounds), or None where the
        sweep does not determine it."""
        from .references import _positive

        n = _positive("n_params", n_params)
        d = _positive("n_tokens", n_tokens)
        return {
            "lr": self.lr_law.estimate(n, d) if self.lr_law else None,
            "batch_tokens": self.batch_law.estimate(n, d) if self.batch_law else None,
            "loss": self.loss_law.estimate(n, d) if self.loss_law else None,
        }

    @property
    def domain(self) -> dict[str, tuple[float, float]]:
        """The range of N and D the cells cover (predictions outside it extrapolate)."""
        ns = [c.n_params for c in self.cells]
        ds = [c.n_tokens for c in self.cells]
        return {"n_params": (min(ns), max(ns)), "n_tokens": (min(ds), max(ds))}

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr_law.to_dict() if self.lr_law else None,
            "batch_tokens": self.batch_law.to_dict() if self.batch_law else None,
            "loss": self.loss_law.to_dict() if self.loss_law else None,
            "cells": [c.to_dict() for c in self.cells],
            "excluded": [{"where": w, "why": y} for w, y in self.excluded],
            "notes": list(self.notes), "near_best": self.near_best, "confidence": self.confidence,
            "n_runs": self.n_runs, "domain": {k: list(v) for k, v in self.domain.items()},
        }

    def summary(self) -> str:
        pct = f"{self.confidence:.0%}"
        head = (f"{self.n_runs} runs in {len(self.cells)} cells (N x D); near-best band {self.near_best:.2%}; "
                f"intervals: {pct} bootstrap")
        lines = [head]
        for law in (self.lr_law, self.batch_law):
            if law is not None:
                lines.append(f"  {law.formula()}   (rms log residual {law.rmse_log:.3f})")
        if self.loss_law is not None:
            lines.append(f"  {self.loss_law.formula()}   (rms relative residual {self.loss_law.rmse_rel:.4f})")
        for w, y in self.excluded:
            lines.append(f"  excluded {w}: {y}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def fit(rows: Iterable[Mapping[str, Any]], *, near_best: float = 0.0025, n_boot: int = 1000,
        n_boot_loss: int = 200, confidence: float = 0.95, seed: int = 0, group_tol: float = 0.01,
        huber_delta: float = 1e-3) -> ScalingFit:
    """Fit the optimal lr and batch as power laws of N and D, and the loss in Chinchilla's form,
    to a sweep table (see the module docstring). ``rows``: dicts with ``n_params``, ``n_tokens``,
    ``lr``, ``batch_tokens``, ``loss`` (and ``n_total_params`` for MoE runs)."""
    if not (isinstance(near_best, Real) and 0 <= near_best < 1):
        raise Qwen25ValueError(f"near_best must be in [0, 1), not {near_best!r}")
    if not (isinstance(confidence, Real) and 0 < confidence < 1):
        raise Qwen25ValueError(f"confidence must be in (0, 1), not {confidence!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise Qwen25ValueError(f"n_boot must be a non-negative int, not {n_boot!r}")
    if isinstance(n_boot_loss, bool) or not isinstance(n_boot_loss, int) or n_boot_loss < 0:
        raise Qwen25ValueError(f"n_boot_loss must be a non-negative int, not {n_boot_loss!r}")
    runs, excluded = validate_rows(rows)
    if not runs:
        raise Qwen25ValueError(f"every run diverged ({len(excluded)} rows with a non-finite loss): nothing to fit")
    cells = make_cells(runs, float(near_best), group_tol)
    notes: list[str] = []
    laws: dict[str, PowerLaw | None] = {}
    for name, count, edge in (("lr", "lr_values", "lr_at_edge"), ("batch_tokens", "batch_values", "batch_at_edge")):
        swept = [c for c in cells if getattr(c, count) >= 2]
        if not swept:
            notes.append(f"{name}: every cell has one value only: no {name} law")
            laws[name] = None
            continue
        if len(swept) < len(cells):
            notes.append(f"{name}: {len(cells) - len(swept)} of {len(cells)} cells swept one value only and are left out")
        at_edge = sum(1 for c in swept if getattr(c, edge))
        if at_edge:
            notes.append(f"{name}: in {at_edge} of {len(swept)} cells the near-best band touches the edge of the "
                         "swept range, so the optimum may lie outside it")
        laws[name] = fit_power_law(
            name, [c.n_params for c in swept], [c.n_tokens for c in swept], [getattr(c, name) for c in swept],
            n_boot=n_boot, confidence=confidence, seed=seed, notes=notes)
    loss_law = fit_loss_law([c.n_params for c in cells], [c.n_tokens for c in cells], [c.best_loss for c in cells],
                            n_boot=n_boot_loss, confidence=confidence, seed=seed, huber_delta=huber_delta, notes=notes)
    return ScalingFit(lr_law=laws["lr"], batch_law=laws["batch_tokens"], loss_law=loss_law, cells=cells,
                      excluded=excluded, notes=notes, near_best=float(near_best), confidence=float(confidence),
                      n_runs=len(runs))


# ------------------------------------------------------------------------------- MoE vs dense
def compare_moe(dense: ScalingFit, moe: ScalingFit | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """MoE models against dense ones at equal loss. For each MoE cell (activated ``n_params``,
    ``n_total_params``, ``n_tokens``, best loss), the dense size that the dense fit's loss law says
    reaches the same loss with the same tokens, and its ratios to the activated and the total
    parameters (>1: the MoE is worth more than a dense model of that size), with bootstrap
    intervals; also the dense law's optimal lr and batch at that size next to the MoE cell's own.
    A loss no dense model reaches with those tokens gives ``inf``."""
    law = dense.loss_law
    if law is None or law.A is None:
        raise Qwen25ValueError("the dense fit has no loss law with an n_params term: sweep several dense sizes")
    moe_fit = moe if isinstance(moe, ScalingFit) else fit(moe, n_boot=0, n_boot_loss=0)
    out = []
    for c in moe_fit.cells:
        if c.n_total_params is None:
            raise Qwen25ValueError(
                f"MoE cell N={c.n_params:.6g}, D={c.n_tokens:.6g}: its rows have no n_total_params")
        n_eq = law.params_for_loss(c.best_loss, c.n_tokens)
        boot = np.array([law.params_for_loss(c.best_loss, c.n_tokens, t) for t in law.samples])
        boot = boot[np.isfinite(boot)]
        lo, hi = _percentile_interval(boot, law.confidence) if len(boot) else (math.nan, math.nan)
        row: dict[str, Any] = {
            "n_params": c.n_params, "n_total_params": c.n_total_params, "n_tokens": c.n_tokens,
            "loss": c.best_loss, "dense_equivalent_params": Estimate(n_eq, lo, hi),
            "ratio_to_active": Estimate(n_eq / c.n_params, lo / c.n_params, hi / c.n_params),
            "ratio_to_total": Estimate(n_eq / c.n_total_params, lo / c.n_total_params, hi / c.n_total_params),
            "moe_lr": c.lr if c.lr_values >= 2 else None,
            "moe_batch_tokens": c.batch_tokens if c.batch_values >= 2 else None,
        }
        finite = math.isfinite(n_eq)
        row["dense_lr"] = dense.lr_law(n_eq, c.n_tokens) if dense.lr_law and finite else None
        row["dense_batch_tokens"] = dense.batch_law(n_eq, c.n_tokens) if dense.batch_law and finite else None
        out.append(row)
    return out
