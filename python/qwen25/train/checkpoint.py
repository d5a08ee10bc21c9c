"""Training checkpoints: ``OUT/checkpoints/step-N/``, written with ``torch.distributed.checkpoint``.

A checkpoint folder holds:

* the DCP files (``.metadata`` and ``__R_0.distcp`` per rank) with ``model`` and ``optim``, the
  full (unsharded) names of ``get_state_dict``, so the same checkpoint loads on any number of
  ranks, FSDP or not;
* ``config.json``: the model config at that step (the stage's RoPE base, YaRN, DCA), what
  transformers needs to load the exported weights;
* ``train_config.json``: the run's :class:`TrainConfig`;
* ``trainer_state.json``: the step, the stage, the data position and the last metrics;
* ``rng-rank{R}.pt``: each rank's RNG states (torch CPU and CUDA, python, numpy).

Atomicity: everything is written into ``.step-N.tmp`` and renamed to ``step-N`` once complete and
synced, so a folder named ``step-N`` is always whole. A failed save (a full disk, say) removes the
temporary folder and raises, leaving the earlier checkpoints as they were. Only the last
``keep_last`` are kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.distributed.checkpoint.api import CheckpointException

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25IOError, Qwen25ValueError

if TYPE_CHECKING:
    import torch

    from ..model import Qwen2ForCausalLM, Qwen25Config

__all__ = ["save_checkpoint", "load_checkpoint", "list_checkpoints", "latest_checkpoint", "read_checkpoint_meta",
           "export_checkpoint", "load_model_from_checkpoint", "CheckpointSaveError"]

_STEP = re.compile(r"^step-(\d+)$")
TRAIN_CONFIG = "train_config.json"
TRAINER_STATE = "trainer_state.json"


class CheckpointSaveError(Qwen25IOError):
    """Saving a checkpoint failed; nothing of it was left under its final name."""


def _dist() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _root(e: BaseException) -> BaseException:
    """The first rank's original exception inside DCP's CheckpointException, else ``e``."""
    if isinstance(e, CheckpointException) and e.failures:
        return next(iter(e.failures.values()))[0]
    return e


def _cause(e: BaseException) -> str:
    r = _root(e)
    return str(r) or type(r).__name__


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def list_checkpoints(root: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints under ``root`` (``step-N`` folders), oldest first."""
    r = Path(root)
    if not r.is_dir():
        return []
    found = []
    for p in r.iterdir():
        m = _STEP.match(p.name)
        if m and p.is_dir() and (p / TRAINER_STATE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def _rng_state() -> dict[str, Any]:
    import random

    import numpy as np
    import torch

    st: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                          "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(root: str | os.PathLike[str], step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    *, model_config: Qwen25Config, train_config: dict[str, Any], trainer_state: dict[str, Any],
                    keep_last: int) -> Path:
    """Write ``root/step-{step}`` atomically (every rank calls this) and prune to ``keep_last``."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    rank, _ = _dist()
    r = Path(root)
    final = r / f"step-{step}"
    tmp = r / f".step-{step}.tmp"
    if rank == 0:
        r.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    _barrier()
    try:
        msd, osd = get_state_dict(model, optimizer)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
            dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp))
        torch.save(_rng_state(), tmp / f"rng-rank{rank}.pt")
        if rank == 0:
            model_config.save_pretrained(tmp)
            _write_json(tmp / TRAIN_CONFIG, train_config)
            _write_json(tmp / TRAINER_STATE, trainer_state)  # written last: marks the folder complete
            for p in tmp.iterdir():
                if p.is_file():
                    with open(p, "rb") as f:
                        os.fsync(f.fileno())
            _fsync_dir(tmp)
        _barrier()
        if rank == 0:
            if final.exists():  # a checkpoint of the same step from an earlier attempt
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(r)
    except (Exception, CheckpointException) as e:  # DCP's CheckpointException is a BaseException
        shutil.rmtree(tmp, ignore_errors=True)
        last = latest_checkpoint(r)
        keep = f"the last complete checkpoint is {last}" if last else "no complete checkpoint exists yet"
        raise CheckpointSaveError(f"saving checkpoint {final} failed: {_cause(e)}; nothing of it was kept ({keep})"
                                  ) from _root(e)
    if rank == 0:
        for old in list_checkpoints(r)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def read_checkpoint_meta(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(train_config dict, trainer_state dict) of a checkpoint folder."""
    p = Path(path)
    if not p.is_dir():
        raise Qwen25FileNotFoundError(f"checkpoint {p} does not exist")
    out = []
    for name in (TRAIN_CONFIG, TRAINER_STATE):
        f = p / name
        if not f.is_file():
            raise Qwen25FileNotFoundError(f"checkpoint {p} has no {name}: not a complete qwen25 training checkpoint")
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise FormatError(f"{f}:{e.lineno}: invalid JSON: {e.msg}", str(f), e.lineno) from None
    return out[0], out[1]


def load_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    *, restore_rng: bool = True) -> dict[str, Any]:
    """Load model and optimizer state (and this rank's RNG states) from ``path``; return its
    trainer state. Works on any number of ranks, whatever the number that saved it."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    p = Path(path)
    _, state = read_checkpoint_meta(p)
    rank, _ = _dist()
    msd, osd = get_state_dict(model, optimizer)
    sd: dict[str, Any] = {"model": msd, "optim": osd}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        try:
            dcp.load(sd, checkpoint_id=str(p))
        except (Exception, CheckpointException) as e:  # DCP wraps reader errors in its own types
            raise FormatError(f"{p}: could not read the model/optimizer state ({_cause(e)})", str(p)) from None
    set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    rng = p / f"rng-rank{rank}.pt"
    if restore_rng and rng.is_file():
        _set_rng_state(torch.load(rng, weights_only=False))
    return state


def load_model_from_checkpoint(path: str | os.PathLike[str], *, dtype: torch.dtype | None = None) -> Qwen2ForCausalLM:
    """A single-device model with the weights of training checkpoint ``path``, and its config."""
    import torch
    import torch.distributed.checkpoint as dcp

    from ..model import Qwen2ForCausalLM, Qwen25Config

    p = Path(path)
    read_checkpoint_meta(p)
    config = Qwen25Config.from_pretrained(p)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = model.to_empty(device="cpu")
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    sd = {"model": model.state_dict()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        try:
            dcp.load(sd, checkpoint_id=str(p))
        except (Exception, CheckpointException) as e:
            raise FormatError(f"{p}: could not read the model state ({_cause(e)})", str(p)) from None
    model.load_state_dict(sd["model"])
    from ..model.qwen2 import RotaryEmbedding

    model.rotary_emb = RotaryEmbedding(config)
    return model.to(dtype) if dtype is not None else model


def export_checkpoint(path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                      dtype: torch.dtype | str | None = None) -> Path:
    """Write training checkpoint ``path`` as an HF folder (config.json + safetensors) to ``out``
    through ``Qwen2ForCausalLM.save_pretrained``. ``dtype`` (e.g. ``"bfloat16"``) converts the
    weights; by default they stay fp32."""
    import torch

    from ..model.checkpoint import resolve_dtype

    o = Path(out)
    if o.exists() and any(o.iterdir()):
        raise Qwen25ValueError(f"export: {o} exists and is not empty")
    model = load_model_from_checkpoint(path)
    target = resolve_dtype(dtype, model.config) if dtype is not None else torch.float32
    model.save_pretrained(o, dtype=target)  # writes config.json with torch_dtype = target
    return o
