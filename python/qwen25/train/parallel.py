"""Parallelism applied after the model is built; the model file stays single-device.

* :func:`init_distributed`: joins the process group that ``torchrun`` describes (gloo on the CPU,
  NCCL on GPUs) and builds an explicit 1-d device mesh.
* :func:`apply_fsdp`: FSDP2 ``fully_shard`` per decoder block, then the root, with a
  ``MixedPrecisionPolicy`` (bf16 compute and fp32 reduction for bf16 runs; fp32 on the CPU).
  Gradients are reduced with a plain SUM (no pre/post division: gloo has no PREMUL_SUM, and its
  AVG has had silent bugs); the loop divides the loss by the global target-token count instead.
* :func:`apply_activation_checkpointing`: recompute each block in the backward pass. The block's
  ``forward`` is wrapped in place, so parameter names (and checkpoints) do not change.
* :func:`compile_blocks`: ``torch.compile`` each block.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "init_distributed", "apply_fsdp", "apply_activation_checkpointing", "compile_blocks",
           "all_reduce_sum"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    mesh: Any = None  # a DeviceMesh when world_size > 1
    owns_group: bool = False  # whether we created the process group (and destroy it)


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group of a ``torchrun`` launch (``WORLD_SIZE`` > 1); a single process
    otherwise. The backend follows the device: gloo for ``cpu``, NCCL for ``cuda``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    from torch.distributed.device_mesh import init_device_mesh

    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        owns = True
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    mesh = init_device_mesh(device_type, (world,), mesh_dim_names=("dp",))
    return DistInfo(rank=rank, world_size=world, local_rank=local, mesh=mesh, owns_group=owns)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """SUM over ranks (in place; a no-op for one process)."""
    if info.world_size > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def apply_fsdp(model: nn.Module, mesh: Any, *, param_dtype: torch.dtype, reduce_dtype: torch.dtype = torch.float32
               ) -> nn.Module:
    """Shard ``model`` (a Qwen2ForCausalLM) with FSDP2: each decoder block, then the root."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    layers: list[nn.Module] = list(model.model.layers)  # type: ignore[union-attr,arg-type]
    for i, layer in enumerate(layers):
        # the last block's parameters are needed again at once by the root's backward: keep them
        fully_shard(layer, mesh=mesh, mp_policy=mp, reshard_after_forward=i < len(layers) - 1)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    for m in [*layers, model]:  # each fully_shard group reduces its own gradients: set every one
        m.set_gradient_divide_factor(1.0)  # type: ignore[operator]
        m.set_force_sum_reduction_for_comms(True)  # type: ignore[operator]
    return model


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute every decoder block's activations in the backward pass (non-reentrant)."""
    from torch.utils.checkpoint import checkpoint

    for layer in model.model.layers:  # type: ignore[union-attr]
        inner = layer.forward

        @functools.wraps(inner)
        def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        layer.forward = forward


def compile_blocks(model: nn.Module) -> None:
    """``torch.compile`` each decoder block (the root keeps its eager checks and masks)."""
    for layer in model.model.layers:  # type: ignore[union-attr]
        layer.compile()
