"""Pre-training: recipes, the training loop, checkpoints and export.

    >>> from qwen25.train import Trainer, recipes, override
    >>> cfg = override(recipes.get("debug"), {"stages.0.steps": 20})   # doctest: +SKIP
    >>> metrics = Trainer(cfg).fit()                                    # doctest: +SKIP

``TrainConfig``, ``Stage``, ``recipes``, ``override``/``apply_overrides`` and the schedules are
torch-free; ``Trainer``, the checkpoint functions and ``memory`` import torch when first used.
Launch several processes with ``torchrun --nproc-per-node N -m qwen25.train --recipe ... --out ...``.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import recipes
from .config import ConfigOverrideError, Stage, TrainConfig, apply_overrides, config_diff, override

_LAZY: dict[str, str] = {
    "Trainer": "trainer",
    "TrainingDivergedError": "trainer",
    "model_config": "trainer",
    "stage_model_configs": "trainer",
    "train_flops_per_token": "trainer",
    "export_checkpoint": "checkpoint",
    "load_model_from_checkpoint": "checkpoint",
    "latest_checkpoint": "checkpoint",
    "list_checkpoints": "checkpoint",
    "CheckpointSaveError": "checkpoint",
    "lr_factor": "schedule",
    "memory_table": "memory",
    "estimate_memory": "memory",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'qwen25.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qwen25.train.{mod}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(["TrainConfig", "Stage", "recipes", "override", "apply_overrides", "config_diff",
                  "ConfigOverrideError", *_LAZY])
