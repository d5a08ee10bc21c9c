"""``qwen25 scaling``: hyperparameter and loss scaling laws (the job is :mod:`qwen25.scaling`).

    qwen25 scaling fit TABLE... [--predict N,D ...] [--json FIT.json] [--plot DIR]
    qwen25 scaling reference --n-params N --n-tokens D [--layers L --d-model H --seq-len S | --compute C]
    qwen25 scaling compare-moe --dense TABLE... --moe TABLE... [--json OUT.json]
    qwen25 scaling sweep --recipe debug --out DIR [--sizes 32x2,64x2] [--tokens 64K,128K] [--lrs ...]

Tables are CSV or JSONL with n_params, n_tokens, lr, batch_tokens and loss (n_total_params for
MoE). Counts take K/M/B/T suffixes (``7B``, ``2T``).
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from ..errors import Qwen25ValueError

HELP = "Scaling laws: fit optimal lr/batch and L(N, D) to a sweep, predict, compare MoE, run a debug sweep."

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def count(text: str) -> float:
    """``7B`` -> 7e9, ``64K`` -> 64000, ``1e9`` -> 1e9 (a positive number)."""
    t = text.strip()
    scale = 1.0
    if t and t[-1].lower() in _SUFFIX:
        scale, t = _SUFFIX[t[-1].lower()], t[:-1]
    try:
        v = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return v


def _point(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected N,D (e.g. 7B,2T), not {text!r}")
    return count(parts[0]), count(parts[1])


def _floats(text: str) -> list[float]:
    return [count(x) for x in text.split(",") if x.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="scaling_command", metavar="COMMAND", required=True)

    f = sub.add_parser("fit", help="fit a sweep table: optimal lr and batch as power laws, L(N, D), intervals")
    f.add_argument("tables", nargs="+", help="sweep tables (.csv or .jsonl)")
    f.add_argument("--predict", type=_point, action="append", default=[], metavar="N,D",
                   help="print the predicted lr, batch and loss at N params and D tokens (repeatable)")
    _fit_options(f)
    f.add_argument("--json", metavar="FILE", help="write the fit (laws, intervals, cells, notes) as JSON")
    f.add_argument("--plot", metavar="DIR", help="write lr.png, batch.png and loss.png there (needs matplotlib)")

    r = sub.add_parser("reference", help="the published laws: DeepSeek LLM and Step Law")
    r.add_argument("--n-params", type=count, help="non-embedding parameters (Step Law's N)")
    r.add_argument("--n-tokens", type=count, required=True, help="training tokens D")
    r.add_argument("--layers", type=int, help="layers (for DeepSeek's compute C = M * D)")
    r.add_argument("--d-model", type=int, help="hidden size (for DeepSeek's M)")
    r.add_argument("--seq-len", type=int, help="sequence length (for DeepSeek's M)")
    r.add_argument("--compute", type=count, help="DeepSeek's compute budget C in FLOPs, given directly")

    m = sub.add_parser("compare-moe", help="MoE (activated and total parameters) against dense at equal loss")
    m.add_argument("--dense", nargs="+", required=True, help="dense sweep tables")
    m.add_argument("--moe", nargs="+", required=True, help="MoE sweep tables (with n_total_params)")
    _fit_options(m)
    m.add_argument("--json", metavar="FILE", help="write the comparison as JSON")

    s = sub.add_parser("sweep", help="train a grid of small models with a recipe, write the table, fit and plot it")
    s.add_argument("--recipe", default="debug", help="training recipe (qwen25.train.recipes; default: debug)")
    s.add_argument("--out", required=True, help="output folder: sweep.jsonl, sweep.csv, fit.json, PNGs")
    s.add_argument("--sizes", default=None,
                   help="model shapes HIDDENxLAYERS, comma-separated (default: 32x2,64x2,96x2)")
    s.add_argument("--tokens", type=_floats, default=None,
                   help="token budgets D (default: 16, 32 and 64 x the recipe's global batch)")
    s.add_argument("--lrs", type=_floats, default=None, help="peak learning rates (default: 2e-3,4e-3,8e-3,1.6e-2,3.2e-2)")
    s.add_argument("--batch-tokens", type=_floats, default=None,
                   help="global batches in tokens (default: 1/4 and 1/2 of the recipe's global batch)")
    s.add_argument("--seeds", type=int, default=1, help="runs per grid point (different seeds; default 1)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the recipe for every run (as qwen25 pretrain --set)")
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    s.add_argument("--fresh", action="store_true", help="start over (default: skip the runs already in OUT)")
    s.add_argument("--no-plot", action="store_true", help="no PNGs")
    s.add_argument("--no-progress", action="store_true")
    _fit_options(s)


def _fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--near-best", type=float, default=0.0025,
                   help="runs within this relative loss of a cell's best count as near-best (default 0.0025)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap refits of the lr/batch laws (default 1000)")
    p.add_argument("--bootstrap-loss", type=int, default=200, help="bootstrap refits of L(N, D) (default 200)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def _fit_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"near_best": args.near_best, "n_boot": args.bootstrap, "n_boot_loss": args.bootstrap_loss,
            "confidence": args.confidence, "seed": args.seed}


def _read(paths: list[str]) -> list[dict[str, Any]]:
    from ..scaling import read_table

    rows: list[dict[str, Any]] = []
    for p in paths:
        rows.extend(read_table(p))
    return rows


def _write_json(path: str, obj: Any) -> None:
    from ..data.records import write_json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, obj, indent=2, allow_nan=False, default=_jsonable)


def _jsonable(x: Any) -> Any:
    from ..scaling import Estimate

    if isinstance(x, Estimate):
        return x.to_dict()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _clean(obj: Any) -> Any:
    """NaN and inf -> None, for strict JSON."""
    from ..scaling import Estimate

    if isinstance(obj, Estimate):
        return obj.to_dict()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def format_prediction(n: float, d: float, pred: dict[str, Any]) -> str:
    def show(k: str, fmt: str) -> str:
        e = pred[k]
        if e is None:
            return f"{k} -"
        ci = f" [{e.low:{fmt}}, {e.high:{fmt}}]" if math.isfinite(e.low) else ""
        return f"{k} {float(e):{fmt}}{ci}"

    return (f"N={n:.4g} D={d:.4g}: " + "  ".join([show("lr", ".3g"), show("batch_tokens", ".4g"),
                                                 show("loss", ".4f")]))


def run(args: argparse.Namespace) -> int:
    from .. import scaling

    cmd = args.scaling_command
    if cmd == "fit":
        if args.plot:
            from ..scaling.plot import MatplotlibMissing, have_matplotlib

            if not have_matplotlib():
                raise MatplotlibMissing("the scaling plots need matplotlib: pip install matplotlib")
        rows = _read(args.tables)
        fitted = scaling.fit(rows, **_fit_kwargs(args))
        print(fitted.summary())
        preds = []
        for n, d in args.predict:
            pred = fitted.predict(n, d)
            preds.append({"n_params": n, "n_tokens": d, **{k: v.to_dict() if v is not None else None
                                                           for k, v in pred.items()}})
            print(format_prediction(n, d, pred))
        if args.json:
            _write_json(args.json, _clean({**fitted.to_dict(), "predictions": preds}))
            print(f"wrote {args.json}")
        if args.plot:
            from ..scaling.plot import plot

            for p in plot(fitted, args.plot, rows):
                print(f"wrote {p}")
        return 0
    if cmd == "reference":
        return _reference(args)
    if cmd == "compare-moe":
        dense = scaling.fit(_read(args.dense), **_fit_kwargs(args))
        moe = scaling.fit(_read(args.moe), **_fit_kwargs(args))
        table = scaling.compare_moe(dense, moe)
        print(dense.loss_law.formula() if dense.loss_law else "")
        print(f"{'activated':>10} {'total':>10} {'tokens':>10} {'loss':>7} {'dense equal':>12} "
              f"{'x active':>9} {'x total':>8}")
        for r in table:
            print(f"{r['n_params']:>10.4g} {r['n_total_params']:>10.4g} {r['n_tokens']:>10.4g} {r['loss']:>7.4f} "
                  f"{float(r['dense_equivalent_params']):>12.4g} {float(r['ratio_to_active']):>9.3f} "
                  f"{float(r['ratio_to_total']):>8.3f}")
        if any(not math.isfinite(float(r["dense_equivalent_params"])) for r in table):
            print("inf: under the dense loss law no dense size reaches that loss with those tokens")
        if args.json:
            _write_json(args.json, _clean(table))
            print(f"wrote {args.json}")
        return 0
    if cmd == "sweep":
        from ..scaling.sweep import parse_sizes, run_sweep, summary

        result = run_sweep(
            recipe=args.recipe, out=args.out, sizes=parse_sizes(args.sizes) if args.sizes else None,
            tokens=args.tokens, lrs=args.lrs, batch_tokens=args.batch_tokens, seeds=args.seeds,
            overrides=args.set, resume=not args.fresh, plot=not args.no_plot, progress=not args.no_progress,
            fit_kwargs=_fit_kwargs(args), threads=args.threads)
        print(summary(result))
        return 0
    raise Qwen25ValueError(f"unknown scaling command {cmd!r}")  # pragma: no cover - argparse checks


def _reference(args: argparse.Namespace) -> int:
    from .. import scaling

    d = args.n_tokens
    shape = (args.layers, args.d_model, args.seq_len)
    if args.compute is not None and any(v is not None for v in shape):
        raise Qwen25ValueError("give either --compute or --layers/--d-model/--seq-len, not both")
    if args.compute is None and any(v is not None for v in shape) and not all(v is not None for v in shape):
        raise Qwen25ValueError("DeepSeek's M needs all of --layers, --d-model and --seq-len")
    if args.n_params is None and args.compute is None and shape[0] is None:
        raise Qwen25ValueError("give --n-params (Step Law) and/or --compute or --layers/--d-model/--seq-len (DeepSeek)")
    if args.n_params is not None:
        s = scaling.steplaw(args.n_params, d)
        print(f"Step Law (N={args.n_params:.4g}, D={d:.4g}): lr {s['lr']:.4g}  batch_tokens {s['batch_tokens']:.4g}")
    c = args.compute
    if c is None and shape[0] is not None:
        c = scaling.deepseek_compute(args.layers, args.d_model, args.seq_len, d)
        m = scaling.deepseek_flops_per_token(args.layers, args.d_model, args.seq_len)
        print(f"DeepSeek M = 72*{args.layers}*{args.d_model}^2 + 12*{args.layers}*{args.d_model}*{args.seq_len} "
              f"= {m:.4g} FLOPs/token; C = M*D = {c:.4g}")
    if c is not None:
        s = scaling.deepseek(c)
        print(f"DeepSeek LLM (C={c:.4g}): lr {s['lr']:.4g}  batch_tokens {s['batch_tokens']:.4g}")
    return 0
