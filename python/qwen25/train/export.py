"""The end of a run: the trained model written as an HF folder, from one process or several.

:func:`save_final` is what ``train_grpo``, ``train_dpo`` and ``train_reward_model`` call for
``OUT/final``. In one process it is the model's own ``save_pretrained``. On several ranks
(``torchrun``, FSDP2) every rank calls it: the whole tensors are gathered to rank 0's CPU
(``get_model_state_dict`` with ``full_state_dict`` and ``cpu_offload``, so no rank holds the whole
model on its accelerator), rank 0 loads them into a single-device copy of the model's class and
writes it, and the others wait at a barrier. The folder is the same as a one-process run's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["save_final"]


def _plain_class(model: nn.Module) -> type[nn.Module]:
    """The model's own class: ``fully_shard`` swaps in a subclass ``FSDP<Class>(FSDPModule, Class)``."""
    from torch.distributed.fsdp import FSDPModule

    for cls in type(model).__mro__:
        if issubclass(cls, nn.Module) and not issubclass(cls, FSDPModule):
            return cls
    raise TypeError(f"{type(model).__name__} has no class outside FSDPModule")  # pragma: no cover


def _is_sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def _single_device_copy(model: nn.Module, state_dict: Mapping[str, Any]) -> nn.Module:
    """A model of ``model``'s class and config holding ``state_dict`` (CPU tensors, dtypes kept),
    built on the meta device so no weights are initialised and then thrown away."""
    from ..model.qwen2 import RotaryEmbedding

    config: Any = model.config
    with torch.device("meta"):
        whole = _plain_class(model)(config)
    tied = whole.lm_head.weight is whole.model.embed_tokens.weight  # type: ignore[union-attr]
    whole.load_state_dict(state_dict, strict=True, assign=True)
    if tied:  # assign replaced both names with separate tensors: tie them again
        whole.lm_head.weight = whole.model.embed_tokens.weight  # type: ignore[union-attr]
    whole.rotary_emb = RotaryEmbedding(config)  # a plain attribute, still on the meta device
    return whole


def save_final(model: nn.Module, directory: str | os.PathLike[str], **save_kwargs: Any) -> Path:
    """Write ``model`` to ``directory`` with its class's ``save_pretrained`` (``save_kwargs`` passed
    on). On several ranks every rank must call this (the gathers are collective); rank 0 writes."""
    d = Path(directory)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        model.save_pretrained(d, **save_kwargs)  # type: ignore[operator]
        return d
    if not _is_sharded(model):  # a replica on every rank: rank 0's is the model
        if dist.get_rank() == 0:
            model.save_pretrained(d, **save_kwargs)  # type: ignore[operator]
        dist.barrier()
        return d
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() == 0:  # the other ranks get an empty dict
        _single_device_copy(model, sd).save_pretrained(d, **save_kwargs)  # type: ignore[operator]
    del sd
    dist.barrier()
    return d
