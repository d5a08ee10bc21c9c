"""Running a model outside training for a while: :func:`evaluating`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["evaluating"]


@contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """``model`` in eval mode with autograd off for the block (generation, scoring, reference
    log-probs); its training mode comes back afterwards, also when the block raises."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)
