"""Direct Preference Optimization (Rafailov et al., 2023) on the pre-training loop.

    loss = -log σ(β [(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])

* A sequence's log-probability is the sum over its completion tokens (the prompt is masked).
* The reference log-probs are computed once, before training, and cached on disk under a key
  made of the reference model's weights and the tokenized pairs (``OUT/ref_logps/KEY.pt``, or
  ``method.ref_cache``); a rerun or a resume reads them back instead of running the reference.
* Logged per step: the implicit rewards β (log π − log π_ref) of chosen and rejected, their margin
  and the reward accuracy (chosen > rejected).
* ``loss_type="ipo"`` (Azar et al., 2023): (h − 1/(2β))² with h the difference of log-ratios;
  in training the log-probs are divided by the completion lengths first, as TRL does.

Settings live in ``TrainConfig.method`` (see :class:`DPOSettings`); the recipes are ``debug``
(CPU, minutes) and ``dpo`` (the Qwen2.5 report's: 1 epoch, lr 7e-7, the Online Merging Optimizer).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import Qwen25ValueError
from ..train.config import Stage, TrainConfig
from ..train.recipes import pick
from ..train.export import save_final
from ..train.modes import evaluating
from ..train.parallel import all_reduce_sum
from ..train.trainer import Trainer, param_groups
from .prefdata import PairBatch, PairData, PairSet, holds_text, read_pairs, sized_to_epochs

__all__ = ["dpo_loss", "sequence_logps", "DPOSettings", "DPOTrainer", "RECIPES", "recipe", "prepare_config",
           "reference_logps", "LOSS_TYPES", "OPTIMIZERS"]

LOSS_TYPES = ("sigmoid", "ipo")
OPTIMIZERS = ("adamw", "omo-dare", "omo-ties")


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor, ref_chosen_logps: torch.Tensor,
             ref_rejected_logps: torch.Tensor, *, beta: float = 0.1, loss_type: str = "sigmoid"
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair (losses, chosen_rewards, rejected_rewards); the rewards β (log π − log π_ref) are
    detached (they are for logging)."""
    if loss_type not in LOSS_TYPES:
        raise Qwen25ValueError(f"loss_type must be one of {list(LOSS_TYPES)}, got {loss_type!r}")
    if not (isinstance(beta, (int, float)) and beta > 0 and math.isfinite(beta)):
        raise Qwen25ValueError(f"beta must be a positive number, got {beta!r}")
    chosen_ratio = policy_chosen_logps - ref_chosen_logps
    rejected_ratio = policy_rejected_logps - ref_rejected_logps
    h = chosen_ratio - rejected_ratio
    losses = -F.logsigmoid(beta * h) if loss_type == "sigmoid" else (h - 1 / (2 * beta)) ** 2
    return losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def sequence_logps(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   completion_mask: torch.Tensor) -> torch.Tensor:
    """Σ over completion tokens of log p(token | the tokens before it), per row: [B] in fp32.
    Only the positions from the earliest completion token on get logits (with left padding, as
    DPO's batches have, that is the longest completion plus one)."""
    t = input_ids.shape[1]
    starts = completion_mask.bool().any(0).nonzero()
    first = int(starts[0]) if len(starts) else t - 1
    keep = t - max(first - 1, 0)  # the position before the first completion token predicts it
    logits = model(input_ids, attention_mask=attention_mask, logits_to_keep=keep).logits[:, :-1].float()
    targets = input_ids[:, t - keep + 1:]  # [B, keep-1]
    token_logps = torch.gather(logits, -1, targets[..., None])[..., 0] - torch.logsumexp(logits, -1)
    return (token_logps * completion_mask[:, t - keep + 1:].to(token_logps.dtype)).sum(-1)


# ---------------------------------------------------------------------------------- settings
@dataclass(frozen=True, kw_only=True)
class DPOSettings:
    """``TrainConfig.method`` of a DPO run (``--set method.KEY=VALUE``).

    * ``beta``, ``loss_type`` (sigmoid or ipo);
    * ``ref_model``: the reference's HF folder (None: ``init_from``, else the run's seeded init);
    * ``ref_cache``: the folder of cached reference log-probs (None: OUT/ref_logps);
    * ``tokenizer``: an HF tokenizer folder for text pairs (None: Qwen2.5's);
    * ``epochs``: the stage's steps, when ``prepare_config`` sizes it from the data;
    * ``optimizer``: adamw, omo-dare or omo-ties; ``base_model``: the base (pre-SFT) model's HF
      folder for τ = θ_SFT − θ_base (None: τ = 0); ``reserve_p``/``density``, ``alpha``,
      ``rescale``, ``clip_val``, ``merge_every``: the OMO options;
    * ``eval_data``: held-out pairs whose reward accuracy is reported at the end."""

    beta: float = 0.1
    loss_type: str = "sigmoid"
    ref_model: str | None = None
    ref_cache: str | None = None
    tokenizer: str | None = None
    epochs: float = 1.0
    optimizer: str = "adamw"
    base_model: str | None = None
    reserve_p: float = 0.5
    density: float = 0.5
    alpha: float = 1e-4
    rescale: bool = False
    clip_val: float | None = None
    merge_every: int = 1
    eval_data: str | None = None

    @classmethod
    def from_method(cls, method: Mapping[str, Any]) -> DPOSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(method) - known)
        if unknown:
            raise Qwen25ValueError(f"method: unknown DPO settings {unknown}; known: {sorted(known)}")
        try:
            s = cls(**dict(method))
        except TypeError as e:  # pragma: no cover - keys are checked above
            raise Qwen25ValueError(f"method: {e}") from None
        if s.loss_type not in LOSS_TYPES:
            raise Qwen25ValueError(f"method.loss_type must be one of {list(LOSS_TYPES)}, got {s.loss_type!r}")
        if s.optimizer not in OPTIMIZERS:
            raise Qwen25ValueError(f"method.optimizer must be one of {list(OPTIMIZERS)}, got {s.optimizer!r}")
        if not (isinstance(s.beta, (int, float)) and s.beta > 0):
            raise Qwen25ValueError(f"method.beta must be positive, got {s.beta!r}")
        if not (isinstance(s.epochs, (int, float)) and s.epochs > 0):
            raise Qwen25ValueError(f"method.epochs must be positive, got {s.epochs!r}")
        return s


# ----------------------------------------------------------------------------------- recipes
def _debug() -> TrainConfig:
    """CPU, minutes: the debug model shape with Qwen2.5's vocabulary, a seeded random policy as its
    own reference, 8 pairs per step in micro-batches of 4, OMO (OnDARE) with τ = 0."""
    return TrainConfig(
        name="dpo-debug", model="debug",
        stages=(Stage(name="dpo", data=("pairs.jsonl",), seq_len=256, steps=1),),
        global_batch_tokens=8 * 256, micro_batch_size=4, lr=1e-3, schedule="constant", warmup_steps=0,
        weight_decay=0.0, clip_grad_norm=1.0, device="cpu", precision="fp32", checkpoint_every=0, keep_last=1,
        method={"beta": 0.1, "optimizer": "omo-dare", "reserve_p": 0.9, "alpha": 0.0, "epochs": 1.0},
    )


def _dpo() -> TrainConfig:
    """The Qwen2.5 report's offline RL: 1 epoch at lr 7e-7 with the Online Merging Optimizer.
    Set ``init_from`` (the SFT model; also the reference) and ``method.base_model`` (the base
    model, for τ); the batch (64 pairs of up to 4,096 tokens) is ours: the report gives none."""
    return TrainConfig(
        name="dpo", model="0.5B",
        stages=(Stage(name="dpo", data=("pairs.jsonl",), seq_len=4096, steps=1),),
        global_batch_tokens=64 * 4096, micro_batch_size=2, lr=7e-7, schedule="constant", warmup_steps=10,
        weight_decay=0.0, clip_grad_norm=1.0, checkpoint_every=200, keep_last=2, log_every=10,
        method={"beta": 0.1, "optimizer": "omo-dare", "reserve_p": 0.5, "alpha": 1e-4, "epochs": 1.0},
    )


RECIPES: dict[str, Callable[[], TrainConfig]] = {"debug": _debug, "dpo": _dpo}


def recipe(name: str) -> TrainConfig:
    return pick(RECIPES, name, "DPO")


def prepare_config(config: TrainConfig, data: str | os.PathLike[str] | None = None) -> TrainConfig:
    """Point the (single) stage at ``data`` and size it to ``method.epochs`` passes over its pairs
    (counted from the file, so the config a checkpoint records is complete)."""
    settings = DPOSettings.from_method(config.method)
    if len(config.stages) != 1:
        raise Qwen25ValueError(f"a DPO run has one stage, this config has {len(config.stages)}")
    return sized_to_epochs(config, data, settings.epochs)


# ------------------------------------------------------------------------------ reference
def _weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def reference_logps(model: torch.nn.Module, pairset: PairSet, *, micro_batch_size: int, device: torch.device,
                    pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(chosen logps, rejected logps, chosen lengths, rejected lengths) of every pair, [N] each."""
    data = PairData(pairset, seed=0, stage_index=0, shuffle=False, pad_id=pad_id, left=True)
    out_c, out_r = [], []
    rows = list(range(len(pairset.pairs)))
    with evaluating(model):
        for mb in data.micro_batches(rows, micro_batch_size):
            lp = sequence_logps(model, mb.input_ids.to(device), mb.attention_mask.to(device),
                                mb.completion_mask.to(device)).cpu()
            c, r = lp.chunk(2)
            out_c.append(c)
            out_r.append(r)
    lens_c = torch.tensor([len(p.chosen) for p in pairset.pairs], dtype=torch.float32)
    lens_r = torch.tensor([len(p.rejected) for p in pairset.pairs], dtype=torch.float32)
    return torch.cat(out_c), torch.cat(out_r), lens_c, lens_r


# -------------------------------------------------------------------------------- trainer
class DPOTrainer(Trainer):
    """:class:`qwen25.train.Trainer` with the DPO objective on a pairs file (stage 0's data).
    Checkpoints, resume, the schedule, clipping, FSDP2 and logging are the pre-training loop's."""

    def __init__(self, config: TrainConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.settings = DPOSettings.from_method(config.method)
        if len(config.stages) != 1:
            raise Qwen25ValueError(f"a DPO run has one stage, this config has {len(config.stages)}")
        self.pairset: PairSet | None = None
        self.ref: tuple[torch.Tensor, ...] | None = None
        self.ref_source = ""
        self._tokenizer: Any = None

    # --- data
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from ..tokenizer import Tokenizer

            t = self.settings.tokenizer
            self._tokenizer = Tokenizer.from_pretrained(t) if t else Tokenizer.qwen25()
        return self._tokenizer

    def _pairs(self, path: str, vocab_size: int, seq_len: int) -> PairSet:
        tok = self.tokenizer() if holds_text(path) else None  # only text pairs need the tokenizer
        ps = read_pairs(path, max_length=seq_len, tokenizer=tok, vocab_size=vocab_size)
        if ps.truncated:
            self._note(f"{path}: {ps.truncated} completion(s) cut at max_length {seq_len}")
        return ps

    def check_data(self) -> None:  # read (and so check) the pairs before the model is built
        stage = self.config.stages[0]
        if self.pairset is None:
            self.pairset = self._pairs(stage.data[0], self.stage_configs[0][0].vocab_size, stage.seq_len)

    def stage_data(self, stage: Stage, index: int) -> PairData:
        if self.pairset is None:
            self.pairset = self._pairs(stage.data[0], self.stage_configs[index][0].vocab_size, stage.seq_len)
        return PairData(self.pairset, seed=self.config.seed, stage_index=index, shuffle=self.config.shuffle, left=True)

    # --- models
    def _reference_model(self) -> torch.nn.Module:
        from ..model import Qwen2ForCausalLM

        cfg = self.config
        path = self.settings.ref_model or cfg.init_from
        if path is not None:
            return Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32)
        return Qwen2ForCausalLM.from_config(self.stage_configs[0][0], dtype=torch.float32, seed=cfg.seed)

    def build_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        s, cfg = self.settings, self.config
        if s.optimizer == "adamw":
            return super().build_optimizer(model)
        from . import omo

        groups = param_groups(model, cfg)
        params = [p for g in groups for p in g["params"]]
        sft = [p.detach().clone() for p in params]  # the run starts from the SFT model
        if s.base_model is not None:
            from ..model import Qwen2ForCausalLM

            base_model = Qwen2ForCausalLM.from_pretrained(s.base_model, dtype=torch.float32)
            by_name = dict(base_model.named_parameters())
            names = {id(p): n for n, p in model.named_parameters()}
            missing = [names[id(p)] for p in params if names[id(p)] not in by_name]
            if missing:
                raise Qwen25ValueError(f"method.base_model {s.base_model}: no parameters {missing[:5]}")
            base = [by_name[names[id(p)]].detach() for p in params]
        else:
            self._note("method.base_model is not set: tau = 0, the optimizer merges nothing in")
            base = [t.clone() for t in sft]
        common = dict(sft_params=sft, base_params=base, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                      weight_decay=cfg.weight_decay, alpha=s.alpha, rescale=s.rescale, clip_val=s.clip_val,
                      merge_every=s.merge_every, seed=cfg.seed)
        if s.optimizer == "omo-dare":
            return omo.OnDAREAdamW(groups, reserve_p=s.reserve_p, **common)
        return omo.OnTIESAdamW(groups, density=s.density, **common)

    def setup(self) -> None:
        first = self.model is None
        super().setup()
        if first:
            self._load_reference()

    def _load_reference(self) -> None:
        cfg = self.config
        stage = cfg.stages[0]
        if self.pairset is None:
            self.pairset = self._pairs(stage.data[0], self.stage_configs[0][0].vocab_size, stage.seq_len)
        ref_model = self._reference_model().to(self.device)
        # the batching is part of the key: the reference runs the first epoch's micro-batches
        layout = f"{cfg.seed}|{cfg.shuffle}|{cfg.rows_per_step(stage)}|{cfg.micro_batch(stage)}|{self.dist.world_size}"
        key = hashlib.sha256(f"{_weights_digest(ref_model)}|{self.pairset.digest}|{layout}".encode()).hexdigest()
        cache_dir = Path(self.settings.ref_cache) if self.settings.ref_cache else (
            self.out_dir / "ref_logps" if self.out_dir is not None else None)
        path = cache_dir / f"{key[:24]}.pt" if cache_dir is not None else None
        if path is not None and path.is_file():
            blob = torch.load(path, weights_only=True)
            if blob.get("key") == key and len(blob["chosen"]) == len(self.pairset.pairs):
                self.ref = (blob["chosen"], blob["rejected"], blob["chosen_len"], blob["rejected_len"])
                self.ref_source = f"reused {path}"
        if self.ref is None:
            self.ref = self._reference_in_training_order(ref_model)
            self.ref_source = f"computed for {len(self.pairset.pairs)} pairs"
            if path is not None and self.dist.rank == 0:
                from ..data.records import write_bytes

                path.parent.mkdir(parents=True, exist_ok=True)
                buf = io.BytesIO()
                torch.save({"key": key, "chosen": self.ref[0], "rejected": self.ref[1], "chosen_len": self.ref[2],
                            "rejected_len": self.ref[3]}, buf)
                write_bytes(path, buf.getvalue())
                self.ref_source += f", cached in {path}"
        del ref_model
        self._note(f"reference log-probs: {self.ref_source}")

    @torch.no_grad()
    def _reference_in_training_order(self, ref_model: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        """The reference log-probs of every pair, each computed in the micro-batch that the first
        epoch trains it in (same rows, same padding), so that a policy equal to the reference
        gives exactly the same log-probs there: loss ln 2, rewards 0."""
        cfg = self.config
        stage = cfg.stages[0]
        assert self.pairset is not None
        n = len(self.pairset.pairs)
        rows_per_step, world, rank = cfg.rows_per_step(stage), self.dist.world_size, self.dist.rank
        sim = PairData(self.pairset, seed=cfg.seed, stage_index=0, shuffle=cfg.shuffle, left=True)
        vals = torch.zeros(2, n, dtype=torch.float64)
        have = torch.zeros(n, dtype=torch.float64)
        ref_model.eval()
        per_rank = rows_per_step // world
        for _ in range(math.ceil(n / rows_per_step)):
            rows = sim.take_step(rows_per_step)[rank * per_rank:(rank + 1) * per_rank]
            todo = [r for r in dict.fromkeys(rows) if not have[r]]
            for mb in sim.micro_batches(todo, cfg.micro_batch(stage)):
                with self._autocast():
                    lp = sequence_logps(ref_model, mb.input_ids.to(self.device), mb.attention_mask.to(self.device),
                                        mb.completion_mask.to(self.device)).double().cpu()
                idx = torch.tensor(mb.rows)
                vals[0, idx], vals[1, idx] = lp.chunk(2)
                have[idx] = 1.0
        if world > 1:
            both = torch.cat([vals * have, have[None]]).to(self.device)
            all_reduce_sum(both, self.dist)
            both = both.cpu()
            vals, have = both[:2] / both[2].clamp(min=1), both[2]
        if not bool((have > 0).all()):  # pragma: no cover - every pair falls in the first epoch's steps
            raise Qwen25ValueError("internal: some pairs got no reference log-probs")
        lens_c = torch.tensor([len(p.chosen) for p in self.pairset.pairs], dtype=torch.float32)
        lens_r = torch.tensor([len(p.rejected) for p in self.pairset.pairs], dtype=torch.float32)
        return vals[0].float(), vals[1].float(), lens_c, lens_r

    # --- the step
    def pair_losses(self, mb: PairBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-pair DPO losses of a micro-batch and its detached statistics."""
        assert self.model is not None and self.ref is not None
        s = self.settings
        dev = self.device
        with self._autocast():
            lp = sequence_logps(self.model, mb.input_ids.to(dev), mb.attention_mask.to(dev),
                                mb.completion_mask.to(dev))
        pc, pr = lp.chunk(2)
        idx = torch.tensor(mb.rows)
        rc, rr = self.ref[0][idx].to(dev), self.ref[1][idx].to(dev)
        if s.loss_type == "ipo":  # per-token averages, as TRL
            lc, lr_ = self.ref[2][idx].to(dev), self.ref[3][idx].to(dev)
            losses, cr, rj = dpo_loss(pc / lc, pr / lr_, rc / lc, rr / lr_, beta=s.beta, loss_type="ipo")
        else:
            losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta=s.beta)
        stats = {"chosen": cr, "rejected": rj, "logps_chosen": pc.detach(), "logps_rejected": pr.detach()}
        return losses, stats

    def forward_backward(self, step: int) -> dict[str, Any]:
        cfg = self.config
        model = self.model
        assert model is not None
        stage, all_rows, mine, micro = self.step_micro_batches(step)
        world, n_pairs = self.dist.world_size, len(all_rows)
        parts, stats = [], {k: [] for k in ("chosen", "rejected", "logps_chosen", "logps_rejected")}
        tokens = 0
        for mb in self.accumulating(micro):
            losses, st = self.pair_losses(mb)
            (losses.sum() / n_pairs).backward()
            parts.append(losses.detach().sum())
            for k, v in st.items():
                stats[k].append(v)
            tokens += mb.n_tokens
        local = torch.stack(parts)
        cr, rj = torch.cat(stats["chosen"]), torch.cat(stats["rejected"])
        sums = torch.stack([local.sum().double(), cr.sum().double(), rj.sum().double(),
                            (cr > rj).double().sum(), torch.cat(stats["logps_chosen"]).sum().double(),
                            torch.cat(stats["logps_rejected"]).sum().double(),
                            torch.tensor(float(tokens), dtype=torch.float64, device=cr.device)])
        all_reduce_sum(sums, self.dist)
        n = float(n_pairs)
        metrics = {"rewards_chosen": float(sums[1]) / n, "rewards_rejected": float(sums[2]) / n,
                   "rewards_margin": float(sums[1] - sums[2]) / n, "rewards_accuracy": float(sums[3]) / n,
                   "logps_chosen": float(sums[4]) / n, "logps_rejected": float(sums[5]) / n,
                   "pairs": n_pairs, "target_tokens": int(sums[6])}
        return {"stage": stage, "rows": all_rows, "mine": mine, "micro": micro, "n_global": n, "local": local,
                "ce_total": float(sums[0]), "aux_mean": None, "tokens": int(sums[6]), "metrics": metrics}

    # --- evaluation
    @torch.no_grad()
    def evaluate(self, path: str | os.PathLike[str]) -> dict[str, float]:
        """Held-out pairs: the mean DPO loss, implicit-reward accuracy and margin of the current
        policy against the reference (whose log-probs are computed here, not cached)."""
        self.setup()
        assert self.model is not None
        stage = self.config.stages[0]
        ps = self._pairs(os.fspath(path), self.stage_configs[0][0].vocab_size, stage.seq_len)
        ref_model = self._reference_model().to(self.device)
        m = self.config.micro_batch(stage)
        rc, rr, _, _ = reference_logps(ref_model, ps, micro_batch_size=m, device=self.device)
        pc, pr, _, _ = reference_logps(self.model, ps, micro_batch_size=m, device=self.device)
        losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta=self.settings.beta)
        return {"eval_loss": float(losses.mean()), "eval_rewards_accuracy": float((cr > rj).float().mean()),
                "eval_rewards_margin": float((cr - rj).mean()), "eval_pairs": len(ps.pairs)}


def train_dpo(config: TrainConfig, *, data: str | None = None, out_dir: str | None = None,
              **trainer_kwargs: Any) -> tuple[DPOTrainer, list[dict[str, Any]]]:
    """Run a DPO config (sized from ``data`` by :func:`prepare_config`); at the end, evaluate on
    ``method.eval_data`` when set and write the policy to ``OUT/final`` (on several ranks: gathered,
    written by rank 0)."""
    cfg = prepare_config(config, data)
    trainer = DPOTrainer(cfg, out_dir=out_dir, **trainer_kwargs)
    records = trainer.fit()
    if trainer.settings.eval_data:
        ev = trainer.evaluate(trainer.settings.eval_data)
        if records:
            records[-1].update(ev)
        print(f"qwen25 dpo: held-out {ev}", file=sys.stderr)
    if out_dir is not None:  # on several ranks: gathered, written by rank 0 (every rank takes part)
        assert trainer.model is not None
        save_final(trainer.model, Path(out_dir) / "final")
    return trainer, records
