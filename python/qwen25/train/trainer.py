"""The pre-training loop: :class:`Trainer`.

One optimizer step of stage s:

1. take the step's ``rows_per_step`` rows (see ``data.py``); this rank reads its block of them in
   micro-batches;
2. count the target tokens of the whole step over all micro-batches and ranks (an all-reduce SUM);
3. for each micro-batch, loss = (sum of its token cross-entropies) / that global count, plus, for
   MoE, ``router_aux_loss_coef`` x its load-balancing loss / (micro-batches x ranks); backward.
   The gradients summed over micro-batches and ranks (FSDP reduces with SUM) are then exactly those
   of the mean loss over every target token of the step, however the rows were split;
4. a non-finite loss or gradient norm stops the run before the optimizer step, naming the step, the
   micro-batch and its rows (the last checkpoint is left as it was);
5. clip the global gradient norm, set the scheduled lr, AdamW step (decoupled weight decay; none on
   norms, biases and embeddings unless configured);
6. log, and checkpoint when due.

Precision: fp32 master weights and optimizer state; bf16 autocast on GPU (FSDP: a bf16
``MixedPrecisionPolicy`` with fp32 reduction), fp32 on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from ..errors import Qwen25Error, Qwen25FileNotFoundError, Qwen25ValueError
from ..model import DualChunkAttention, Qwen2ForCausalLM, Qwen25Config
from ..model.config import PRESETS, _rope_scaling_from_dict
from ..model.qwen2 import RotaryEmbedding, load_balancing_loss
from . import checkpoint as ckpt
from .config import BUILTIN_DEBUG_DATA, Stage, TrainConfig, config_diff
from .data import MicroBatch, StageData, open_packed
from .parallel import (DistInfo, all_reduce_sum, apply_activation_checkpointing, apply_fsdp, compile_blocks,
                       init_distributed)
from .schedule import lr_factor

MB = TypeVar("MB")

__all__ = ["Trainer", "TrainingDivergedError", "model_config", "stage_model_configs", "train_flops_per_token",
           "param_groups", "PEAK_BF16_FLOPS"]

# Dense bf16 peak FLOP/s per GPU, from the vendors' data sheets (no sparsity), for MFU.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12,
                   "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


class TrainingDivergedError(Qwen25Error, FloatingPointError):
    """The loss or the gradient norm became NaN or infinite. ``step``, ``micro_batch`` (1-based,
    None for the gradient norm), ``rows`` and ``last_checkpoint`` say where and what is kept."""

    def __init__(self, message: str, *, step: int, micro_batch: int | None, rows: str,
                 last_checkpoint: str | None) -> None:
        super().__init__(message)
        self.step, self.micro_batch, self.rows, self.last_checkpoint = step, micro_batch, rows, last_checkpoint


# ------------------------------------------------------------------------------ model configs
def model_config(config: TrainConfig) -> Qwen25Config:
    """The run's model config before any stage's RoPE settings: the preset (or config.json) with
    ``model_overrides`` applied."""
    name = config.model
    if name in PRESETS:
        mc = Qwen25Config.from_preset(name)
    elif os.path.exists(name):
        mc = Qwen25Config.from_pretrained(name)
    else:
        raise Qwen25ValueError(f"model {name!r} is neither a preset ({', '.join(PRESETS)}) nor an existing "
                               "HF folder or config.json")
    if config.model_overrides:
        try:
            mc = mc.replace(**dict(config.model_overrides))
        except TypeError as e:
            raise Qwen25ValueError(f"model_overrides: {e}") from None
    return mc.replace(torch_dtype="float32")


def stage_model_configs(config: TrainConfig, base: Qwen25Config | None = None
                        ) -> list[tuple[Qwen25Config, Qwen25Config]]:
    """Per stage: (the config the model trains with, the config its checkpoints record). They
    differ only in the DCA config, which is recorded for inference but not used on packed rows."""
    base = base if base is not None else model_config(config)
    out = []
    for s in config.stages:
        where = f"stage {s.name!r}"
        scaling = base.rope_scaling
        if s.rope_scaling is not None:
            scaling = _rope_scaling_from_dict(dict(s.rope_scaling), f"{where}: rope_scaling")
        dca = base.dual_chunk_attention_config
        if s.dca is not None:
            dca = DualChunkAttention.from_dict(dict(s.dca), f"{where}: dca")
        train = base.replace(rope_theta=float(s.rope_theta) if s.rope_theta is not None else base.rope_theta,
                             rope_scaling=scaling, dual_chunk_attention_config=None,
                             max_position_embeddings=max(base.max_position_embeddings, s.seq_len))
        if s.seq_len > train.max_positions:  # pragma: no cover - max_position_embeddings >= seq_len above
            raise Qwen25ValueError(f"{where}: seq_len {s.seq_len} is past the model's {train.max_positions} positions")
        out.append((train, train.replace(dual_chunk_attention_config=dca)))
    return out


def train_flops_per_token(mc: Qwen25Config, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward = 3 x forward) counting causal attention:
    the scores and the weighted sum cost half of the full-square figure ``flops_per_token`` uses."""
    full = mc.flops_per_token(seq_len)
    attn_full = 4 * mc.num_hidden_layers * seq_len * mc.num_attention_heads * mc.head_dim_
    return 3.0 * (full - attn_full / 2)


_ARCH_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "tie_word_embeddings", "qkv_bias", "num_experts",
                "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
                "decoder_sparse_step", "mlp_only_layers")


def param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on every weight except the kinds in ``config.no_decay`` (norms:
    names ending in ``norm.weight``; biases; embeddings: ``embed_tokens``, and the tied lm_head with
    it). Parameters come in ``named_parameters`` order; a tied weight appears once."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = ("norm" if name.endswith("norm.weight") else "bias" if name.endswith(".bias")
                else "embedding" if "embed_tokens" in name else "weight")
        (no_decay if kind in config.no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay, "name": "decay"}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "name": "no_decay"})
    return groups


def _peak_flops(config: TrainConfig, device: torch.device, bf16: bool) -> float | None:
    if config.peak_flops is not None:
        return config.peak_flops
    if device.type != "cuda" or not bf16:
        return None
    name = torch.cuda.get_device_name(device)
    for key, v in PEAK_BF16_FLOPS.items():
        if key in name:
            return v
    return None


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20


# ------------------------------------------------------------------------------------ logging
class _Logs:
    """metrics.jsonl, TensorBoard (when installed) and the progress bar, on rank 0."""

    def __init__(self, out_dir: Path | None, *, enabled: bool, progress: bool, total: int, start: int,
                 note: Callable[[str], None]) -> None:
        self.out_dir, self.enabled = out_dir, enabled
        self.jsonl = None
        self.tb = None
        self.bar = None
        if not enabled:
            return
        if out_dir is not None:
            path = out_dir / "metrics.jsonl"
            from ..data.records import iter_objects, write_bytes

            kept = []
            if start > 0 and path.is_file():  # keep the history up to the step resumed from (a torn line goes)
                for _, rec, _ in iter_objects(path, skip_bad=True):
                    if rec is not None and isinstance(rec.get("step"), int) and rec["step"] <= start:
                        kept.append(json.dumps(rec, sort_keys=True))  # as written below
            write_bytes(path, "".join(k + "\n" for k in kept).encode())
            self.jsonl = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start + 1 if start else None)
            except ImportError:
                note("TensorBoard is not installed: metrics go to metrics.jsonl only (pip install tensorboard)")
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)

    def step(self, rec: dict[str, Any], show: bool) -> None:
        if not self.enabled:
            return
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(rec, sort_keys=True) + "\n")
            self.jsonl.flush()
        if self.tb is not None and show:
            for k in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "memory_gib", "aux_loss"):
                if rec.get(k) is not None:
                    self.tb.add_scalar(f"train/{k}", rec[k], rec["step"])
        if self.bar is not None:
            self.bar.update(1)
            if show:
                self.bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}",
                                     tok_s=f"{rec['tokens_per_s']:.0f}", refresh=False)

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
            self.jsonl = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ------------------------------------------------------------------------------------ trainer
class Trainer:
    """Runs a :class:`TrainConfig`.

    * ``out_dir``: where ``metrics.jsonl``, ``checkpoints/step-N/``, ``loss.png`` (and the
      built-in debug data) go. None: nothing is written (metrics are only returned).
    * ``resume``: True (default) continues from the latest checkpoint in ``out_dir`` when there
      is one; a path resumes from that checkpoint; False starts afresh (existing checkpoints are
      then an error, so nothing is overwritten by accident).
    * ``allow_changes``: resume even if the config differs from the checkpoint's (otherwise an
      error names the changed keys).
    * ``progress``: a progress bar (None: when stderr is a terminal); ``verbose``: notes on stderr.
    """

    def __init__(self, config: TrainConfig, *, out_dir: str | os.PathLike[str] | None = None,
                 resume: bool | str | os.PathLike[str] = True, allow_changes: bool = False,
                 progress: bool | None = None, verbose: bool = True) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer needs a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume = resume
        self.allow_changes = allow_changes
        self.progress = progress
        self.verbose = verbose
        self.model: Qwen2ForCausalLM | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.dist = DistInfo()
        self.device = torch.device("cpu")
        self.step = 0
        self.data: StageData | None = None
        self._stage = -1
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._last_ckpt: Path | None = None
        self._tokens_seen = 0

    @property
    def last_checkpoint(self) -> Path | None:
        """The checkpoint folder this trainer wrote or resumed from last (None before any)."""
        return self._last_ckpt

    # ---------------------------------------------------------------------------- helpers
    def _note(self, msg: str) -> None:
        if self.verbose and self.dist.rank == 0:
            print(f"qwen25 train: {msg}", file=sys.stderr, flush=True)

    def _resolve_device(self) -> torch.device:
        d = self.config.device
        if d == "auto":
            d = "cuda" if torch.cuda.is_available() else "cpu"
        if d.startswith("cuda"):
            if not torch.cuda.is_available():
                raise Qwen25ValueError(f"device {self.config.device!r}: no CUDA device is available")
            if d == "cuda":
                d = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        return torch.device(d)

    @property
    def checkpoint_root(self) -> Path | None:
        return self.out_dir / "checkpoints" if self.out_dir is not None else None

    # ------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build the model, the optimizer and (when resuming) load the checkpoint. ``fit`` calls it."""
        if self.model is not None:
            return
        cfg = self.config
        self.device = self._resolve_device()
        self.dist = init_distributed(self.device.type)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        world = self.dist.world_size
        use_fsdp = cfg.fsdp == "on" or (cfg.fsdp == "auto" and world > 1)
        if use_fsdp and world == 1:
            raise Qwen25ValueError("fsdp=on needs several processes: launch with torchrun --nproc-per-node N")
        if world > 1 and not use_fsdp:
            raise Qwen25ValueError("several processes need fsdp=auto or fsdp=on (there is no other data-parallel mode)")
        for s in cfg.stages:
            cfg.grad_accum(s, world)  # every stage must split evenly over the ranks
        self.bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")

        base = model_config(cfg)
        if cfg.init_from is not None:
            init_cfg = Qwen25Config.from_pretrained(cfg.init_from)
            diff = [f for f in _ARCH_FIELDS if getattr(init_cfg, f) != getattr(base, f)]
            if diff:
                raise Qwen25ValueError(
                    f"init_from {cfg.init_from}: its architecture differs from model {cfg.model!r} in "
                    + ", ".join(f"{f} ({getattr(init_cfg, f)} vs {getattr(base, f)})" for f in diff))
        self.stage_configs = stage_model_configs(cfg, base)
        self.check_data()  # every stage's data, before any step
        # the builtin debug corpus goes to OUT/data (or a temporary folder without OUT)
        self.builtin_dir: str | None = None
        if any(BUILTIN_DEBUG_DATA in s.data for s in cfg.stages):
            if self.out_dir is not None:
                self.builtin_dir = str(self.out_dir / "data")
            else:
                self._tmp = tempfile.TemporaryDirectory(prefix="qwen25-debug-data-")
                self.builtin_dir = self._tmp.name
            if self.dist.rank == 0 or self.out_dir is None:
                from .debug_data import prepare_debug_data

                for s in cfg.stages:
                    if BUILTIN_DEBUG_DATA in s.data:
                        prepare_debug_data(self.builtin_dir, s.seq_len)
            if world > 1:
                torch.distributed.barrier()

        torch.manual_seed(cfg.seed)
        first = self.stage_configs[0][0]
        model = self.build_model(first)
        model.config = first
        model.rotary_emb = RotaryEmbedding(first)
        model.train()
        model.to(self.device)
        if cfg.activation_checkpointing:
            apply_activation_checkpointing(model)
        if cfg.compile:
            compile_blocks(model)
        if use_fsdp:
            apply_fsdp(model, self.dist.mesh, param_dtype=torch.bfloat16 if self.bf16 else torch.float32)
        self.fsdp = use_fsdp
        self.model = model
        self.optimizer = self.build_optimizer(model)
        if cfg.fused_loss is not None:
            self.fused_loss = cfg.fused_loss
        else:
            from .. import kernels

            self.fused_loss = self.device.type == "cuda" and kernels.available()
        self.peak_flops = _peak_flops(cfg, self.device, self.bf16)
        self._resume()

    # ------------------------------------------------------------------------------ hooks
    # Subclasses that train another objective (qwen25.rl's reward model and DPO) override these;
    # everything else (stages, schedule, clipping, checkpoints, resume, FSDP2, logging) is shared.
    def build_model(self, config: Qwen25Config) -> Qwen2ForCausalLM:
        """The model before any parallelism: ``init_from``'s weights, else a seeded random init."""
        cfg = self.config
        if cfg.init_from is not None:
            return Qwen2ForCausalLM.from_pretrained(cfg.init_from, dtype=torch.float32)
        return Qwen2ForCausalLM.from_config(config, dtype=torch.float32, seed=cfg.seed)

    def build_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """AdamW over :func:`param_groups` (fused on CUDA)."""
        cfg = self.config
        fused = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                 eps=cfg.eps, weight_decay=cfg.weight_decay, **fused)

    def check_data(self) -> None:
        """Fail early on a missing or unusable data source of any stage (``setup`` calls it before
        building the model); a trainer with its own ``stage_data`` checks its own sources."""
        for s, (mc, _) in zip(self.config.stages, self.stage_configs):
            for path in s.data:
                if path != BUILTIN_DEBUG_DATA:
                    open_packed(path, s, mc.vocab_size)

    def stage_data(self, stage: Stage, index: int) -> Any:
        """The batch source of stage ``index``: ``take_step``, ``micro_batches``, ``describe``,
        ``state``/``load_state`` and ``repeated``, as :class:`StageData` (packed folders)."""
        cfg = self.config
        return StageData(stage, index, seed=cfg.seed, shuffle=cfg.shuffle,
                         vocab_size=self.stage_configs[index][0].vocab_size,
                         mask_document_boundaries=cfg.mask_document_boundaries, builtin_dir=self.builtin_dir)

    def _resume(self) -> None:
        cfg = self.config
        root = self.checkpoint_root
        path: Path | None = None
        if isinstance(self.resume, (str, os.PathLike)):
            path = Path(self.resume)
            if not path.is_dir():
                raise Qwen25FileNotFoundError(f"resume: checkpoint {path} does not exist")
        elif root is not None:
            found = ckpt.latest_checkpoint(root)
            if found is not None and not self.resume:
                raise Qwen25ValueError(f"{self.out_dir} already holds checkpoints (latest {found.name}); resume "
                                       "from it, or choose another output folder")
            path = found if self.resume else None
        if path is None:
            return
        saved_cfg, state = ckpt.read_checkpoint_meta(path)
        changed = config_diff(saved_cfg, cfg)
        if changed and not self.allow_changes:
            from .config import _flatten

            a, b = _flatten(saved_cfg), _flatten(cfg.to_dict())
            shown = ", ".join(f"{k} ({a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r})" for k in changed)
            raise Qwen25ValueError(f"resuming from {path}: the config differs from the checkpoint's in {shown}; "
                                   "pass --allow-changes (allow_changes=True) to resume anyway, or start a new run")
        if changed:
            self._note(f"resuming with a changed config: {', '.join(changed)}")
        step = int(state["step"])
        if step > cfg.total_steps():
            raise Qwen25ValueError(f"resuming from {path}: its step {step} is past this config's "
                                   f"{cfg.total_steps()} steps")
        # the model must have the checkpoint stage's RoPE before its weights matter: set the stage first
        saved_stage = int(state["stage"])
        assert self.model is not None and self.optimizer is not None
        ckpt.load_checkpoint(path, self.model, self.optimizer)
        self.step = step
        self._tokens_seen = int(state.get("tokens_seen", 0))
        self._last_ckpt = path
        if step < cfg.total_steps():
            nxt = cfg.stage_index(step + 1)
            self._enter_stage(nxt, state["data"] if nxt == saved_stage else None)
        self._note(f"resumed from {path} at step {step}")

    # ------------------------------------------------------------------------------ stages
    def _enter_stage(self, i: int, data_state: dict[str, Any] | None = None) -> None:
        cfg = self.config
        stage = cfg.stages[i]
        train_cfg, _ = self.stage_configs[i]
        model = self.model
        assert model is not None
        model.config = train_cfg
        model.rotary_emb = RotaryEmbedding(train_cfg, self.device)
        model._dca_tables = {}
        self.data = self.stage_data(stage, i)
        if data_state is not None:
            self.data.load_state(data_state)
        self._stage = i
        first, last = cfg.stage_bounds()[i]
        self._note(f"stage {stage.name!r} (steps {first}-{last}): seq_len {stage.seq_len}, rope_theta "
                   f"{train_cfg.rope_theta:g}, {cfg.rows_per_step(stage)} rows per step in "
                   f"{cfg.grad_accum(stage, self.dist.world_size)} micro-batch(es) of {cfg.micro_batch(stage)} "
                   f"per rank x {self.dist.world_size} rank(s)")

    # ------------------------------------------------------------------------------- step
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.bf16 and not self.fsdp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _micro_loss(self, mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(sum of the micro-batch's token cross-entropies in fp32, its MoE aux loss or None)."""
        model = self.model
        assert model is not None
        ids = mb.input_ids.to(self.device, non_blocking=True)
        pos = mb.position_ids.to(self.device, non_blocking=True)
        labels = mb.labels.to(self.device, non_blocking=True)
        mc = model.config
        with self._autocast():
            if self.fused_loss and mb.n_targets > 0:
                out = model(ids, position_ids=pos, labels=labels, fused_loss=True, return_logits=False)
                assert out.loss is not None
                ce_mean = out.loss
                if out.aux_loss is not None:  # the model added coef x aux: take the cross-entropy alone
                    ce_mean = ce_mean - mc.router_aux_loss_coef * out.aux_loss
                return ce_mean.float() * mb.n_targets, out.aux_loss
            out = model(ids, position_ids=pos)
            logits = out.logits[:, :-1]  # position t predicts token t + 1
            ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                 ignore_index=-100, reduction="sum")
            aux = None
            if out.router_logits:
                aux = load_balancing_loss(list(out.router_logits), mc.num_experts, mc.num_experts_per_tok)
            return ce, aux

    def _diverged(self, step: int, what: str, micro: int | None, rows: str) -> TrainingDivergedError:
        last = str(self._last_ckpt) if self._last_ckpt is not None else None
        where = f" on micro-batch {micro} (rank {self.dist.rank}; rows: {rows})" if micro is not None else ""
        keep = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        stage = self.config.stages[self._stage].name
        return TrainingDivergedError(f"step {step} (stage {stage!r}): {what}{where}; stopped before the optimizer "
                                     f"step, nothing saved: {keep}", step=step, micro_batch=micro, rows=rows,
                                     last_checkpoint=last)

    def step_micro_batches(self, step: int) -> tuple[Any, list[Any], list[Any], list[Any]]:
        """Enter step ``step``'s stage if needed, take the step's rows (all ranks') from the data
        and cut this rank's share into micro-batches: ``(stage, all_rows, mine, micro_batches)``."""
        cfg = self.config
        i = cfg.stage_index(step)
        if i != self._stage:
            self._enter_stage(i)
        assert self.data is not None
        stage = cfg.stages[i]
        world, rank = self.dist.world_size, self.dist.rank
        rows_per_step = cfg.rows_per_step(stage)
        all_rows = self.data.take_step(rows_per_step)
        per_rank = rows_per_step // world
        mine = all_rows[rank * per_rank:(rank + 1) * per_rank]
        return stage, all_rows, mine, self.data.micro_batches(mine, cfg.micro_batch(stage))

    def accumulating(self, micro: Sequence[MB]) -> Iterator[MB]:
        """The micro-batches of one optimizer step, in order; under FSDP the gradients are reduced
        once, after the last of them."""
        model = self.model
        assert model is not None
        for a, mb in enumerate(micro):
            if self.fsdp:
                model.set_requires_gradient_sync(a == len(micro) - 1)  # type: ignore[operator]
            yield mb

    def forward_backward(self, step: int) -> dict[str, Any]:
        """Take step ``step``'s rows and accumulate the gradients of its loss (the mean over every
        target token of the step, on all ranks) into ``.grad``; no optimizer step, no checks.
        Returns what ``train_step`` needs: rows, micro-batches, the global target count, and the
        summed cross-entropy and aux losses (all ranks)."""
        cfg = self.config
        model = self.model
        assert model is not None
        stage, all_rows, mine, micro = self.step_micro_batches(step)
        assert self.data is not None
        world = self.dist.world_size
        count = torch.tensor([float(sum(mb.n_targets for mb in micro))], dtype=torch.float64, device=self.device)
        n_global = float(all_reduce_sum(count, self.dist).item())
        if n_global == 0:
            raise Qwen25ValueError(f"step {step} (stage {stage.name!r}): the batch has no target tokens "
                                   f"({self.data.describe(all_rows)})")
        ce_parts, aux_parts = [], []
        coef = model.config.router_aux_loss_coef
        for mb in self.accumulating(micro):
            ce_sum, aux = self._micro_loss(mb)
            loss = ce_sum / n_global
            if aux is not None:
                loss = loss + coef * aux.float() / (len(micro) * world)
                aux_parts.append(aux.detach().float())
            loss.backward()
            ce_parts.append(ce_sum.detach())
        local = torch.stack(ce_parts)
        totals = torch.cat([local.sum().reshape(1).double(),
                            torch.stack(aux_parts).sum().reshape(1).double() if aux_parts else local.new_zeros(1).double()])
        all_reduce_sum(totals, self.dist)
        return {"stage": stage, "rows": all_rows, "mine": mine, "micro": micro, "n_global": n_global,
                "local": local, "ce_total": float(totals[0]),
                "aux_mean": float(totals[1]) / (len(micro) * world) if aux_parts else None}

    def train_step(self, step: int) -> dict[str, Any]:
        """Run optimizer step ``step`` (1-based) and return its metrics."""
        cfg = self.config
        model, opt = self.model, self.optimizer
        assert model is not None and opt is not None
        lr = cfg.lr * lr_factor(step, total=cfg.total_steps(), warmup=cfg.warmup_steps, kind=cfg.schedule,
                                min_ratio=cfg.min_lr_ratio, decay_fraction=cfg.wsd_decay_fraction, decay=cfg.wsd_decay)
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        res = self.forward_backward(step)
        assert self.data is not None
        stage, micro, local, world = res["stage"], res["micro"], res["local"], self.dist.world_size
        if not math.isfinite(res["ce_total"]):
            opt.zero_grad(set_to_none=True)
            bad = [a for a in range(len(micro)) if not bool(torch.isfinite(local[a]))]
            if bad:
                a = bad[0]
                raise self._diverged(step, f"the loss is {float(local[a])}", a + 1, self.data.describe(micro[a].rows))
            raise self._diverged(step, "the loss is not finite on another rank", None, "")
        clip = cfg.clip_grad_norm if cfg.clip_grad_norm > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        grad_norm = float(norm)
        if not math.isfinite(grad_norm):
            opt.zero_grad(set_to_none=True)
            raise self._diverged(step, f"the gradient norm is {grad_norm}", None, self.data.describe(res["mine"]))
        opt.step()
        opt.zero_grad(set_to_none=True)
        n_global = res["n_global"]
        loss_value = res["ce_total"] / n_global
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
        tokens = int(res.get("tokens", cfg.rows_per_step(stage) * stage.seq_len))  # forward_backward may count its own
        self._tokens_seen += tokens
        tps = tokens / dt
        rec: dict[str, Any] = {
            "step": step, "stage": stage.name, "seq_len": stage.seq_len, "rope_theta": model.config.rope_theta,
            "loss": loss_value, "lr": lr, "grad_norm": grad_norm, "tokens": tokens, "target_tokens": int(n_global),
            "tokens_seen": self._tokens_seen, "tokens_per_s": tps, "step_time_s": dt,
            "mfu": (train_flops_per_token(model.config, stage.seq_len) * tps / (self.peak_flops * world)
                    if self.peak_flops else None),
            "memory_gib": _peak_memory_gib(self.device),
        }
        if res["aux_mean"] is not None:
            rec["aux_loss"] = res["aux_mean"]
        rec.update(res.get("metrics") or {})  # an objective's own metrics (DPO rewards, accuracy, ...)
        self.step = step
        return rec

    # -------------------------------------------------------------------------------- fit
    def _save(self, step: int, rec: dict[str, Any]) -> None:
        root = self.checkpoint_root
        if root is None:
            return
        assert self.model is not None and self.optimizer is not None and self.data is not None
        _, record_cfg = self.stage_configs[self._stage]
        state = {"format": "qwen25-train-v1", "step": step, "stage": self._stage,
                 "stage_name": self.config.stages[self._stage].name, "data": self.data.state(),
                 "tokens_seen": self._tokens_seen, "world_size": self.dist.world_size, "metrics": rec}
        self._last_ckpt = ckpt.save_checkpoint(root, step, self.model, self.optimizer, model_config=record_cfg,
                                               train_config=self.config.to_dict(), trainer_state=state,
                                               keep_last=self.config.keep_last)

    def _due(self, step: int, stop: int) -> bool:
        cfg = self.config
        if step == stop:
            return True
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            return True
        return any(step == last for _, last in cfg.stage_bounds())  # every stage's end

    def fit(self, *, stop_at_step: int | None = None) -> list[dict[str, Any]]:
        """Train to the end of the last stage (or to ``stop_at_step``, saving a checkpoint there)
        and return one metrics dict per optimizer step run by this call."""
        cfg = self.config
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.setup()
        total = cfg.total_steps()
        stop = total if stop_at_step is None else min(int(stop_at_step), total)
        start = self.step
        records: list[dict[str, Any]] = []
        rank0 = self.dist.rank == 0
        progress = self.progress if self.progress is not None else sys.stderr.isatty()
        logs = _Logs(self.out_dir, enabled=rank0, progress=progress and rank0, total=total, start=start,
                     note=self._note)
        try:
            if start >= stop:
                self._note(f"nothing to do: at step {start} of {total}")
            for step in range(start + 1, stop + 1):
                rec = self.train_step(step)
                records.append(rec)
                logs.step(rec, show=(step % cfg.log_every == 0) or step == stop)
                if self.data is not None and any(self.data.repeated) and not getattr(self, "_warned_repeat", False):
                    self._warned_repeat = True
                    self._note(f"stage {cfg.stages[self._stage].name!r}: the data is repeated (a folder ran out "
                               "of rows and started another epoch)")
                if self._due(step, stop):
                    self._save(step, rec)
        finally:
            logs.close()
            if rank0 and self.out_dir is not None:
                self._plot()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
        return records

    def _plot(self) -> None:
        from ..data.records import iter_objects
        from .plot import plot_loss

        assert self.out_dir is not None
        path = self.out_dir / "metrics.jsonl"
        if not path.is_file():
            return
        steps, losses = [], []
        for _, rec, _ in iter_objects(path, skip_bad=True):  # a line cut short by a crash is no point
            try:
                step, loss = int(rec["step"]), float(rec["loss"])
            except (KeyError, TypeError, ValueError):
                continue
            steps.append(step)
            losses.append(loss)
        if not steps:
            return
        starts = [first for first, _ in self.config.stage_bounds()[1:]]
        note = plot_loss(self.out_dir / "loss.png", steps, losses, title=f"qwen25 pretrain: {self.config.name}",
                         stage_starts=starts)
        if note:
            self._note(note)

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        if self.dist.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.dist = DistInfo()
