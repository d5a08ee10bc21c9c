"""PNG figures of a :class:`~qwen25.scaling.ScalingFit` (needs matplotlib; no pyplot state is used).

- ``lr.png`` and ``batch.png``: each cell's optimum (the near-best band's geometric mean) against N
  (one colour per D) and against D (one colour per N), with the fitted law as lines and its
  bootstrap band; every run of the sweep in grey behind.
- ``loss.png``: the fitted L(N, D) as filled contours over log N and log D with the cells' best
  losses as labelled points (without a loss law: the points only).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import Qwen25Error
from .fit import REQUIRED_KEYS, PowerLaw, ScalingFit

__all__ = ["MatplotlibMissing", "have_matplotlib", "plot"]


class MatplotlibMissing(Qwen25Error, ImportError):
    """The plots need matplotlib, which is not installed."""


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(w: float, h: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise MatplotlibMissing("the scaling plots need matplotlib: pip install matplotlib") from e
    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _groups(values: Sequence[float]) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or v > out[-1] * 1.01:
            out.append(v)
    return out


def _fmt(x: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _no_minor_labels(ax: Any) -> None:  # minor labels on a log x axis run into each other
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())


def _law_panel(fig: Any, fit: ScalingFit, law: PowerLaw | None, key: str, rows: Sequence[Mapping[str, Any]],
               title: str) -> None:
    cells = [c for c in fit.cells if (c.lr_values if key == "lr" else c.batch_values) >= 2] or fit.cells
    ns = _groups([c.n_params for c in cells])
    ds = _groups([c.n_tokens for c in cells])
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for ax_i, (xvar, series, svar) in enumerate((("n_params", ds, "n_tokens"), ("n_tokens", ns, "n_params"))):
        ax = fig.add_subplot(1, 2, ax_i + 1)
        if rows:
            ax.scatter([r[xvar] for r in rows], [r[key] for r in rows], s=6, color="0.8", label="runs", zorder=1)
        lo_x = min(getattr(c, xvar) for c in fit.cells)
        hi_x = max(getattr(c, xvar) for c in fit.cells)
        xs = np.geomspace(lo_x / 1.5, hi_x * 1.5, 50)
        for j, s in enumerate(series):
            color = cmap(j / max(1, len(series) - 1))
            pts = [c for c in cells if abs(math.log(getattr(c, svar) / s)) < math.log(1.01)]
            ax.scatter([getattr(c, xvar) for c in pts], [getattr(c, key) for c in pts], s=28, color=color,
                       edgecolor="k", zorder=3, label=f"{'D' if svar == 'n_tokens' else 'N'}={_fmt(s)}")
            if law is not None:
                args = [(x, s) if xvar == "n_params" else (s, x) for x in xs]
                ax.plot(xs, [law(*a) for a in args], color=color, zorder=2)
                if len(law.samples):
                    ests = [law.estimate(*a) for a in args]
                    ax.fill_between(xs, [e.low for e in ests], [e.high for e in ests], color=color, alpha=0.15,
                                    lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _no_minor_labels(ax)
        ax.set_xlabel("N (non-embedding parameters)" if xvar == "n_params" else "D (training tokens)")
        ax.set_ylabel("optimal " + ("peak learning rate" if key == "lr" else "batch (tokens)"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)


def plot(fit: ScalingFit, out_dir: str | os.PathLike[str],
         rows: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """Write ``lr.png``, ``batch.png`` and ``loss.png`` for ``fit`` into ``out_dir`` (the sweep's
    ``rows`` are drawn behind the optima when given). Returns the paths. Raises
    :class:`MatplotlibMissing` when matplotlib is not installed."""
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    runs = [r for r in (rows or []) if all(k in r for k in REQUIRED_KEYS) and math.isfinite(float(r["loss"]))]
    paths = []
    for key, law, name in (("lr", fit.lr_law, "lr.png"), ("batch_tokens", fit.batch_law, "batch.png")):
        fig = _figure(10, 4)
        _law_panel(fig, fit, law, key, runs, law.formula() if law else f"{key}: no law (swept at one value)")
        fig.tight_layout()
        p = os.path.join(out, name)
        fig.savefig(p)
        paths.append(p)

    fig = _figure(6.5, 5)
    ax = fig.add_subplot(1, 1, 1)
    n = np.array([c.n_params for c in fit.cells])
    d = np.array([c.n_tokens for c in fit.cells])
    loss_law = fit.loss_law
    if loss_law is not None:
        gn = np.geomspace(n.min() / 1.5, n.max() * 1.5, 80)
        gd = np.geomspace(d.min() / 1.5, d.max() * 1.5, 80)
        nn, dd = np.meshgrid(gn, gd)
        zz = np.vectorize(loss_law)(nn, dd)
        cs = ax.contourf(nn, dd, zz, levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="fitted loss")
        ax.set_title(loss_law.formula(), fontsize=8)
    else:
        ax.set_title("loss: no L(N, D) fit (too few cells)", fontsize=8)
    ax.scatter(n, d, c="w", edgecolor="k", s=30, zorder=3)
    for c in fit.cells:
        ax.annotate(f"{c.best_loss:.3f}", (c.n_params, c.n_tokens), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _no_minor_labels(ax)
    ax.set_xlabel("N (non-embedding parameters)")
    ax.set_ylabel("D (training tokens)")
    fig.tight_layout()
    p = os.path.join(out, "loss.png")
    fig.savefig(p)
    paths.append(p)
    return paths
