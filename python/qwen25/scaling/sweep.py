"""A real hyperparameter sweep: train a grid of small models with a ``qwen25.train`` recipe, write
the table, fit it and plot it (:func:`run_sweep`, ``qwen25 scaling sweep``).

The grid is model shapes x token budgets x peak learning rates x global batches (x seeds). Every
run is the recipe's first stage with:

- the model shape ``HIDDENxLAYERS`` (``model_overrides``: hidden size, layers; the recipe's head
  size and MLP ratio kept, heads = hidden / head size, KV heads in the recipe's ratio);
- ``lr`` and ``global_batch_tokens`` from the grid (the micro-batch shrunk to divide the step's rows
  where needed: it only splits the step, whose loss is normalised over all its tokens);
- ``steps = round(D / batch)``, so that the run sees D tokens (the table records ``steps x batch``);
- the recipe's warm-up as the same fraction of the steps.

N is the model's non-embedding parameter count (``Qwen25Config.num_parameters(embeddings=False)``;
activated for MoE, with ``n_total_params`` the total). The run's loss is the mean training loss
over its last tenth of steps (at least one step): with the data seen once, each step's loss is on
tokens the model has not trained on, so it estimates the held-out loss; averaging the last steps
smooths the batch noise. A run whose loss turns NaN or infinite is recorded with ``loss`` NaN and
its error (the fit lists it as excluded).

``OUT/sweep.jsonl`` gets one line per finished run, flushed as it ends, so an interrupted sweep
resumes where it stopped (``resume=True``, the default; the plan in ``OUT/plan.json`` must match).
At the end ``OUT/sweep.csv``, ``OUT/fit.json``, ``OUT/summary.txt`` and, when matplotlib is
installed, ``OUT/lr.png``, ``OUT/batch.png`` and ``OUT/loss.png`` are written.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import FormatError, Qwen25ValueError
from .fit import ScalingFit, fit
from .table import write_table

__all__ = ["DEFAULT_SIZES", "SweepResult", "parse_sizes", "plan_runs", "run_sweep", "summary"]

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((32, 2), (64, 2), (96, 2))
DEFAULT_LRS: tuple[float, ...] = (2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)
PLAN_VERSION = 1


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"32x2,64x4"`` -> [(32, 2), (64, 4)] (hidden size x layers)."""
    out = []
    for part in text.split(","):
        p = part.strip().lower()
        if not p:
            continue
        h, sep, layers = p.partition("x")
        try:
            if not sep:
                raise ValueError
            size = (int(h), int(layers))
        except ValueError:
            raise Qwen25ValueError(f"model size {part.strip()!r}: expected HIDDENxLAYERS, e.g. 64x2") from None
        if size[0] <= 0 or size[1] <= 0:
            raise Qwen25ValueError(f"model size {part.strip()!r}: hidden size and layers must be positive")
        out.append(size)
    if not out:
        raise Qwen25ValueError(f"no model sizes in {text!r}")
    return out


@dataclass(frozen=True)
class PlannedRun:
    run: str  # the run's id, the key of resume
    hidden: int
    layers: int
    n_tokens_target: float
    lr: float
    batch_tokens: int
    seed: int
    steps: int
    config: Any = field(repr=False, compare=False)  # TrainConfig
    n_params: int = 0
    n_total_params: int | None = None


@dataclass
class SweepResult:
    out: str
    rows: list[dict[str, Any]]
    fit: ScalingFit
    ran: int
    reused: int
    files: list[str]
    notes: list[str]


def _shape_overrides(base_mc: Any, hidden: int, layers: int) -> dict[str, Any]:
    head = base_mc.head_dim_
    if hidden % head:
        raise Qwen25ValueError(f"model size {hidden}x{layers}: the hidden size must be a multiple of the recipe's "
                               f"head size {head}")
    heads = hidden // head
    kv_ratio = base_mc.num_key_value_heads / base_mc.num_attention_heads
    kv = max(d for d in range(1, heads + 1) if heads % d == 0 and d <= max(1.0, heads * kv_ratio))
    inter_ratio = base_mc.intermediate_size / base_mc.hidden_size
    ch: dict[str, Any] = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                          "num_key_value_heads": kv, "intermediate_size": max(2, round(hidden * inter_ratio))}
    if base_mc.head_dim is not None:
        ch["head_dim"] = head
    if getattr(base_mc, "num_experts", 0):
        m_ratio = base_mc.moe_intermediate_size / base_mc.hidden_size
        ch["moe_intermediate_size"] = max(2, round(hidden * m_ratio))
        if base_mc.shared_expert_intermediate_size:
            s_ratio = base_mc.shared_expert_intermediate_size / base_mc.hidden_size
            ch["shared_expert_intermediate_size"] = max(2, round(hidden * s_ratio))
    if getattr(base_mc, "max_window_layers", None) is not None and base_mc.max_window_layers > layers:
        ch["max_window_layers"] = layers
    return ch


def _fmt_num(x: float) -> str:
    return f"{x:.6g}"


def plan_runs(base: Any, *, sizes: Sequence[tuple[int, int]], tokens: Sequence[float], lrs: Sequence[float],
              batch_tokens: Sequence[float], seeds: int, data_path: str | None) -> list[PlannedRun]:
    """Every run of the grid as a checked TrainConfig (errors name the grid value at fault)."""
    from ..train.config import BUILTIN_DEBUG_DATA
    from ..train.trainer import model_config

    stage0 = base.stages[0]
    seq = stage0.seq_len
    base_mc = model_config(base)
    frac = base.warmup_steps / max(1, base.total_steps())
    runs = []
    for (hidden, layers), d, lr, b, seed in itertools.product(sizes, tokens, lrs, batch_tokens, range(seeds)):
        if not (math.isfinite(lr) and lr > 0):
            raise Qwen25ValueError(f"learning rate {lr!r} must be positive")
        if b != int(b) or int(b) % seq:
            raise Qwen25ValueError(f"batch {b:g} tokens: must be a whole multiple of the recipe's seq_len {seq}")
        bi = int(b)
        steps = max(1, round(d / bi))
        shape = _shape_overrides(base_mc, hidden, layers)
        data = tuple(data_path if (p == BUILTIN_DEBUG_DATA and data_path) else p for p in stage0.data)
        stage = dataclasses.replace(stage0, steps=steps, tokens=None, data=data)
        rows = bi // seq  # micro-batches only split the step (the loss is normalised over it): fit them
        micro = max(m for m in range(1, min(rows, base.micro_batch_size) + 1) if rows % m == 0)
        cfg = dataclasses.replace(
            base, name=f"{base.name}-sweep", stages=(stage,), lr=float(lr), global_batch_tokens=bi,
            micro_batch_size=micro,
            warmup_steps=min(steps - 1, round(frac * steps)) if steps > 1 else 0, seed=base.seed + seed,
            model_overrides={**dict(base.model_overrides), **shape}, checkpoint_every=0)
        mc = model_config(cfg)
        n_act = mc.num_parameters(active=True, embeddings=False)
        n_tot = mc.num_parameters(active=False, embeddings=False) if getattr(mc, "is_moe", False) else None
        rid = f"h{hidden}x{layers}-D{_fmt_num(d)}-lr{_fmt_num(lr)}-B{bi}-s{seed}"
        runs.append(PlannedRun(run=rid, hidden=hidden, layers=layers, n_tokens_target=float(d), lr=float(lr),
                               batch_tokens=bi, seed=seed, steps=steps, config=cfg, n_params=n_act,
                               n_total_params=n_tot))
    return runs


def _data_tokens(folders: Sequence[str]) -> int | None:
    """The tokens the stage's packed folders hold (None where one cannot be read here: the
    Trainer reports that itself)."""
    from ..data import PackedDataset

    try:
        return sum(PackedDataset(f).n_tokens for f in folders)
    except (OSError, ValueError):
        return None


def _final_loss(records: Sequence[Mapping[str, Any]]) -> float:
    losses = [float(r["loss"]) for r in records]
    k = max(1, len(losses) // 10)
    return sum(losses[-k:]) / k


def _read_done(path: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not os.path.exists(path):
        return done
    from ..data.records import iter_objects

    items = list(iter_objects(path, skip_bad=True))
    with open(path, "rb") as f:
        f.seek(max(f.seek(0, os.SEEK_END) - 1, 0))
        torn = f.read(1) not in (b"", b"\n")  # no newline after the last line: it may be cut short
    for k, (i, rec, why) in enumerate(items):
        if why is None and "run" not in rec:
            why = "a JSON object with a 'run' id was expected"
        if why is not None:
            if torn and k == len(items) - 1:  # a last line cut short by an interrupted write: that run is redone
                notes.append(f"{path}:{i}: an incomplete last line (an interrupted run) is dropped; the run is redone")
                continue
            raise FormatError(f"{path}:{i}: {why}", path, i)
        if rec.get("loss") is None:
            rec["loss"] = math.nan
        done[rec["run"]] = rec
    return done


def run_sweep(*, recipe: str = "debug", out: str | os.PathLike[str], sizes: Sequence[tuple[int, int]] | None = None,
              tokens: Sequence[float] | None = None, lrs: Sequence[float] | None = None,
              batch_tokens: Sequence[float] | None = None, seeds: int = 1, overrides: Sequence[str] = (),
              resume: bool = True, plot: bool = True, progress: bool = True,
              fit_kwargs: Mapping[str, Any] | None = None, threads: int | None = 1,
              trainer_factory: Callable[[Any], Any] | None = None) -> SweepResult:
    """Run the grid (see the module docstring) and fit it. Defaults: the shapes ``DEFAULT_SIZES``,
    token budgets of 16, 32 and 64 x the recipe's ``global_batch_tokens``, the lrs ``DEFAULT_LRS`` and
    batches of 1/4 and 1/2 x its ``global_batch_tokens`` (at these small token budgets the runs are
    short of steps, and the recipe's own batch was never near-best in the debug sweep). ``trainer_factory(config)`` replaces
    ``Trainer(config, out_dir=None, ...)`` (for tests). ``threads``: torch CPU threads while the
    sweep runs (default 1: these models are too small to gain from more, and one thread per run
    does not fight other work for the cores; None leaves torch's setting)."""
    from .._extras import require

    try:
        require("torch", "qwen25 scaling sweep")
    except ImportError as e:  # a clean one-line error on the command line, not a traceback
        raise Qwen25ValueError(str(e)) from None
    from ..train import Trainer, recipes
    from ..train.config import BUILTIN_DEBUG_DATA, apply_overrides
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise Qwen25ValueError(f"seeds must be a positive int, not {seeds!r}")
    out_dir = os.fspath(out)
    os.makedirs(out_dir, exist_ok=True)
    notes: list[str] = []
    base = recipes.get(recipe)
    if overrides:
        base = apply_overrides(base, list(overrides))
    if len(base.stages) > 1:
        notes.append(f"recipe {recipe!r} has {len(base.stages)} stages: the sweep trains its first, "
                     f"{base.stages[0].name!r}, only")
    seq = base.stages[0].seq_len
    b0 = base.global_batch_tokens
    sizes = list(sizes) if sizes else list(DEFAULT_SIZES)
    batch_tokens = list(batch_tokens) if batch_tokens else sorted({max(seq, (b0 // k) // seq * seq) for k in (4, 2)})
    tokens = list(tokens) if tokens else [16.0 * b0, 32.0 * b0, 64.0 * b0]
    lrs = list(lrs) if lrs else list(DEFAULT_LRS)

    data_path = None
    if any(p == BUILTIN_DEBUG_DATA for p in base.stages[0].data):
        from ..train.debug_data import prepare_debug_data

        data_path = prepare_debug_data(os.path.join(out_dir, "data"), seq)
    runs = plan_runs(base, sizes=sizes, tokens=tokens, lrs=lrs, batch_tokens=batch_tokens, seeds=seeds,
                     data_path=data_path)
    capacity = _data_tokens(runs[0].config.stages[0].data)
    biggest = max(r.steps * r.batch_tokens for r in runs)
    if capacity is not None and biggest > capacity:
        notes.append(f"the largest runs see {biggest} tokens but the data holds {capacity}: they repeat data, so "
                     "their loss is partly on tokens already trained on")

    plan = {"version": PLAN_VERSION, "recipe": recipe, "overrides": list(overrides)}
    plan_path = os.path.join(out_dir, "plan.json")
    table_path = os.path.join(out_dir, "sweep.jsonl")
    if resume and os.path.exists(plan_path):
        with open(plan_path, encoding="utf-8") as f:
            old = json.load(f)
        if old != plan:
            changed = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            raise Qwen25ValueError(f"{out_dir}: holds a sweep of another plan (changed: {', '.join(changed)}); "
                                   "use another folder or --fresh")
    if not resume:
        for name in ("sweep.jsonl", "sweep.csv", "fit.json", "summary.txt"):
            if os.path.exists(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
    with open(plan_path, "w", encoding="utf-8") as f:
        json.dump(plan, f, indent=2)
        f.write("\n")
    done = _read_done(table_path, notes) if resume else {}
    if done and notes and notes[-1].startswith(table_path):  # rewrite the file without the cut line
        with open(table_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps({k: (None if k == "loss" and not math.isfinite(v) else v)
                                    for k, v in rec.items()}) + "\n" for rec in done.values())

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise Qwen25ValueError(f"threads must be a positive int or None, not {threads!r}")
    make = trainer_factory or (lambda cfg: Trainer(cfg, out_dir=None, resume=False, progress=False, verbose=False))
    rows: list[dict[str, Any]] = []
    ran = reused = 0
    t_start = time.time()
    import torch

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        ran, reused = _run_all(runs, done, make, rows, table_path, seq, recipe, progress, t_start)
    finally:
        torch.set_num_threads(old_threads)

    files = [write_table(rows, os.path.join(out_dir, "sweep.csv")), table_path]
    fitted = fit(rows, **dict(fit_kwargs or {}))
    fit_path = os.path.join(out_dir, "fit.json")
    from ..data.records import write_json

    write_json(fit_path, _strict(fitted.to_dict()), indent=2, allow_nan=False)
    files.append(fit_path)
    if plot:
        from .plot import MatplotlibMissing
        from .plot import plot as draw

        try:
            files.extend(draw(fitted, out_dir, rows))
        except MatplotlibMissing as e:
            notes.append(f"no PNGs: {e}")
    result = SweepResult(out=out_dir, rows=rows, fit=fitted, ran=ran, reused=reused, files=files, notes=notes)
    sum_path = os.path.join(out_dir, "summary.txt")
    with open(sum_path, "w", encoding="utf-8") as f:
        f.write(summary(result) + "\n")
    result.files.append(sum_path)
    return result


def _run_all(runs: Sequence[PlannedRun], done: Mapping[str, dict[str, Any]], make: Callable[[Any], Any],
             rows: list[dict[str, Any]], table_path: str, seq: int, recipe: str, progress: bool,
             t_start: float) -> tuple[int, int]:
    ran = reused = 0
    for i, r in enumerate(runs, start=1):
        if r.run in done:
            rows.append(done[r.run])
            reused += 1
            continue
        t0 = time.time()
        error = None
        try:
            records = make(r.config).fit()
            loss = _final_loss(records)
            last = float(records[-1]["loss"]) if records else math.nan
        except FloatingPointError as e:  # TrainingDivergedError: a non-finite loss or gradient
            loss, last, error = math.nan, math.nan, str(e)
        row: dict[str, Any] = {
            "run": r.run, "n_params": r.n_params, "n_tokens": r.steps * r.batch_tokens, "lr": r.lr,
            "batch_tokens": r.batch_tokens, "loss": loss,
        }
        if r.n_total_params is not None:
            row["n_total_params"] = r.n_total_params
        row.update({"hidden": r.hidden, "layers": r.layers, "steps": r.steps, "seed": r.seed, "seq_len": seq,
                    "last_step_loss": last, "seconds": round(time.time() - t0, 3), "recipe": recipe})
        if error:
            row["error"] = error
        with open(table_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                for k, v in row.items()}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        rows.append(row)
        ran += 1
        if progress:
            eta = (time.time() - t_start) / ran * (len(runs) - i)
            print(f"[{i}/{len(runs)}] {r.run}: loss {loss:.4f} ({row['seconds']:.1f}s, ~{eta:.0f}s left)",
                  file=sys.stderr, flush=True)

    return ran, reused


def _strict(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def summary(result: SweepResult) -> str:
    lines = [f"sweep in {result.out}: {len(result.rows)} runs ({result.ran} trained now, {result.reused} reused)",
             result.fit.summary()]
    lines.extend(f"note: {n}" for n in result.notes)
    lines.extend(f"wrote {p}" for p in result.files)
    return "\n".join(lines)
