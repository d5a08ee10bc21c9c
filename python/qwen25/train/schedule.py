"""Learning-rate schedules: the factor of the peak lr at each optimizer step. Torch-free.

Steps count from 1, and step ``s`` uses the factor transformers' schedulers give at their
``current_step = s`` (so the first step already has a small positive lr, and the last one ends the
decay exactly):

* ``cosine``: linear warm-up from 0 over ``warmup`` steps, then a half cosine down to
  ``min_ratio`` at the last step (``get_cosine_with_min_lr_schedule_with_warmup``);
* ``wsd``: warm-up (linear, from ``min_ratio``), stable at the peak, then a decay over the last
  ``decay_fraction`` of the steps, linear, cosine or 1-sqrt, to ``min_ratio`` (``get_wsd_schedule``);
* ``constant``: linear warm-up from 0, then the peak.
"""

from __future__ import annotations

import math

from ..errors import Qwen25ValueError

__all__ = ["lr_factor", "wsd_decay_steps"]


def wsd_decay_steps(total: int, warmup: int, decay_fraction: float) -> int:
    """Steps in WSD's decay phase: ``round(decay_fraction * total)``, within what warm-up leaves."""
    return max(0, min(total - warmup, round(decay_fraction * total)))


def lr_factor(step: int, *, total: int, warmup: int, kind: str = "cosine", min_ratio: float = 0.0,
              decay_fraction: float = 0.2, decay: str = "linear") -> float:
    """The multiplier of the peak lr at optimizer step ``step`` (1-based) of ``total``."""
    if not 1 <= step <= total:
        raise Qwen25ValueError(f"lr schedule: step {step} outside 1..{total}")
    if kind == "cosine":
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        f = 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, f * (1.0 - min_ratio) + min_ratio)
    if kind == "constant":
        return step / max(1, warmup) if step < warmup else 1.0
    if kind == "wsd":
        n_decay = wsd_decay_steps(total, warmup, decay_fraction)
        n_stable = total - warmup - n_decay
        if step < warmup:
            return max(0.0, (step / max(1, warmup)) * (1.0 - min_ratio) + min_ratio)
        if step < warmup + n_stable:
            return 1.0
        if step < warmup + n_stable + n_decay:
            progress = (step - warmup - n_stable) / max(1, n_decay)
            if decay == "linear":
                f = 1.0 - progress
            elif decay == "cosine":
                f = 0.5 * (1.0 + math.cos(math.pi * progress))
            elif decay == "1-sqrt":
                f = 1.0 - math.sqrt(progress)
            else:
                raise Qwen25ValueError(f"lr schedule: unknown WSD decay {decay!r}")
            return max(0.0, f * (1.0 - min_ratio) + min_ratio)
        return min_ratio
    raise Qwen25ValueError(f"lr schedule: unknown kind {kind!r} (cosine, wsd or constant)")
