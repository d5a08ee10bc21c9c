"""qwen25: an open, Rust-accelerated toolkit for Qwen2.5-class language models.

``import qwen25`` is light: it loads the Rust extension and nothing else (no torch, no cupy).
The model, training and kernel parts import torch when they are used.
"""

from __future__ import annotations

import os as _os

from . import _native
from .errors import (
    DisallowedSpecialTokenError,
    FormatError,
    Qwen25Error,
    Qwen25FileNotFoundError,
    Qwen25IOError,
    Qwen25ValueError,
    UnknownTokenError,
)
from ._train import train_bpe
from .tokenizer import AddedToken, IncrementalDecoder, Tokenizer

# One source: Cargo.toml's [workspace.package] version, compiled into the extension. maturin writes
# the same into the wheel's metadata (tests/unit/test_wheel.py checks that an installed wheel's
# __version__, `qwen25 --version` and importlib.metadata agree). Read from the extension rather
# than importlib.metadata: free at import, and right in editable and source-tree installs too.
__version__: str = _native.__version__

# rayon's pool does not survive fork(): a forked child (torch DataLoader workers) runs serially.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_native._set_forked)

__all__ = [
    "Tokenizer",
    "AddedToken",
    "IncrementalDecoder",
    "train_bpe",
    "Qwen25Error",
    "Qwen25ValueError",
    "FormatError",
    "UnknownTokenError",
    "DisallowedSpecialTokenError",
    "Qwen25IOError",
    "Qwen25FileNotFoundError",
    "__version__",
]
