"""Data pipeline: decontamination, deduplication, quality filtering, mixing and packing.

Names are imported lazily, so ``import qwen25.data`` stays light. Each area adds its public
names to ``_LAZY`` (name -> submodule).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    # decontamination (issue: benchmark decontamination)
    "Decontaminator": "decontam",
    "Match": "decontam",
    "decontaminate_demo": "decontam",
    # dedup, filters, mixing, packing (issue: pre-training data pipeline)
    "MinHashDeduplicator": "dedup",
    "MinHashStream": "dedup",
    "ExactDeduplicator": "dedup",
    "QualityFilter": "filters",
    "DomainFilters": "filters",
    "FilterConfig": "filters",
    "TokenPacker": "pack",
    "PackedDataset": "pack",
    "WeightedInterleaver": "mix",
    "Phase": "mix",
    "weights_from_proportions": "mix",
    "temperature_weights": "mix",
    "long_context_phase": "mix",
    "plan_phase": "mix",
    "interleave": "mix",
    "docs_for_token_quota": "mix",
    "mix_jsonl": "mix",
    "DomainClassifier": "classify",
    "CallableScorer": "classify",
    "Scorer": "classify",
    "LMScorer": "classify",
    "ray_filter": "distributed",
    "ray_dedup": "distributed",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'qwen25.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qwen25.data.{mod}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(_LAZY)
