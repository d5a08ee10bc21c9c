"""Hyperparameter and loss scaling laws (``qwen25.scaling``).

- :func:`fit` fits a sweep table: the optimal peak lr and batch size as power laws of model size
  N and data D (near-best runs, log-space least squares, bootstrap intervals) and the loss in
  Chinchilla's form; :meth:`ScalingFit.predict` gives lr, batch and loss with intervals.
- :func:`compare_moe` sets MoE models (activated and total parameters) against dense ones at
  equal loss.
- :func:`deepseek` and :func:`steplaw` are the published laws of DeepSeek LLM and StepFun.
- :func:`read_table` / :func:`write_table` read and write sweep tables (CSV or JSONL);
  :func:`run_sweep` trains a small grid of models with ``qwen25.train`` and fits it
  (``qwen25 scaling sweep``); :func:`plot` draws the fits as PNG (needs matplotlib).

Fitting needs numpy only; the sweep imports torch, the plots matplotlib, when used.
"""

from __future__ import annotations

from typing import Any

from .fit import (
    REQUIRED_KEYS,
    Cell,
    Estimate,
    LossLaw,
    PowerLaw,
    ScalingFit,
    compare_moe,
    fit,
    fit_loss_law,
    fit_power_law,
)
from .references import deepseek, deepseek_compute, deepseek_flops_per_token, steplaw
from .table import read_table, write_table

__all__ = [
    "REQUIRED_KEYS",
    "Cell",
    "Estimate",
    "LossLaw",
    "PowerLaw",
    "ScalingFit",
    "compare_moe",
    "deepseek",
    "deepseek_compute",
    "deepseek_flops_per_token",
    "fit",
    "fit_loss_law",
    "fit_power_law",
    "plot",
    "read_table",
    "run_sweep",
    "steplaw",
    "write_table",
]



def __getattr__(name: str) -> Any:  # the sweep (torch) and the plots (matplotlib) load when used
    if name == "run_sweep":
        from .sweep import run_sweep

        return run_sweep
    if name == "plot":
        from .plot import plot

        return plot
    raise AttributeError(f"module 'qwen25.scaling' has no attribute {name!r}")
