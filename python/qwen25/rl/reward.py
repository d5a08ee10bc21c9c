"""The reward model: the Qwen2.5 body with a scalar score head, trained on preference pairs with
the Bradley–Terry loss, saved and loaded as transformers' ``Qwen2ForSequenceClassification``
(``num_labels=1``).

The reward of a row is the score at its last real token. That position comes from the attention
mask (or the lengths), never from token values: Qwen's pad token ``<|endoftext|>`` may also be real
content. (transformers finds the position from ``pad_token_id`` instead; the two agree whenever
the pad id does not occur in the content.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from ..model import Qwen2ForCausalLM, Qwen25Config
from ..model.checkpoint import CheckpointError, resolve_dtype, save_safetensors
from ..train.config import Stage, TrainConfig
from ..train.recipes import pick
from ..train.export import save_final
from ..train.modes import evaluating
from ..train.parallel import all_reduce_sum
from ..train.trainer import Trainer
from .prefdata import PairBatch, PairData, PairSet, holds_text, read_pairs, sized_to_epochs

__all__ = ["RewardModel", "reward_loss", "RewardTrainer", "RECIPES", "recipe", "prepare_config", "train_reward_model",
           "pair_accuracy"]

DEFAULT_PAD_ID = 151643  # <|endoftext|>, Qwen2.5's pad token


def reward_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, *, margin: torch.Tensor | float | None = None,
                center_rewards_coefficient: float | None = None) -> torch.Tensor:
    """Bradley–Terry: mean of -log σ(r_chosen − r_rejected − margin), plus, with a coefficient c,
    c · mean((r_chosen + r_rejected)²), which centres the rewards at 0."""
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    if center_rewards_coefficient is not None:
        loss = loss + center_rewards_coefficient * torch.mean((chosen_rewards + rejected_rewards) ** 2)
    return loss


def last_token_index(attention_mask: torch.Tensor | None = None, lengths: torch.Tensor | None = None,
                     seq_len: int | None = None) -> torch.Tensor:
    """Each row's last real position [B]: from ``lengths`` (right padding) or the attention mask
    (any padding: the last 1). A row with no real token is an error naming it."""
    if lengths is not None:
        lengths = torch.as_tensor(lengths).long()
        bad = ((lengths < 1) | (lengths > (seq_len or int(lengths.max())))).nonzero()
        if len(bad):
            i = int(bad[0])
            raise Qwen25ValueError(f"row {i}: length {int(lengths[i])} is outside 1..{seq_len}")
        return lengths - 1
    if attention_mask is None:
        raise Qwen25ValueError("the reward needs an attention_mask or lengths to find each row's last token")
    am = attention_mask.bool()
    empty = (~am.any(-1)).nonzero()
    if len(empty):
        raise Qwen25ValueError(f"row {int(empty[0])}: the attention mask has no real token")
    t = am.shape[-1]
    return t - 1 - am.flip(-1).long().argmax(-1)


class RewardModel(Qwen2ForCausalLM):
    """A Qwen2.5 body with a scalar score head (``score``): ``(input_ids, attention_mask) ->
    rewards [B]`` in fp32. It is a :class:`Qwen2ForCausalLM` whose head has one output, so the
    training loop, FSDP2 and checkpoints treat it as any model of the family."""

    def __init__(self, config: Qwen25Config) -> None:
        super().__init__(config)
        self.lm_head = nn.Linear(config.hidden_size, 1, bias=False)  # untied: the score head

    @property
    def score(self) -> nn.Linear:
        return self.lm_head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,  # type: ignore[override]
                *, lengths: torch.Tensor | None = None, return_scores: bool = False) -> torch.Tensor:
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        if attention_mask is None and lengths is not None:
            lengths_t = torch.as_tensor(lengths, device=input_ids.device).long()
            attention_mask = (torch.arange(input_ids.shape[1], device=input_ids.device)[None] < lengths_t[:, None]).long()
        idx = last_token_index(attention_mask, lengths, input_ids.shape[1]) if (
            attention_mask is not None or lengths is not None) else \
            torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long)
        scores = super().forward(input_ids, attention_mask=attention_mask).logits[..., 0]  # [B, T]
        if return_scores:
            return scores.float()
        return scores.gather(1, idx.to(scores.device)[:, None])[:, 0].float()

    # ------------------------------------------------------------------------ checkpoints
    @classmethod
    def from_causal_lm(cls, lm: Qwen2ForCausalLM, *, seed: int | None = None) -> RewardModel:
        """A reward model with ``lm``'s body (shared tensors copied) and a fresh score head,
        normal(0, initializer_range)."""
        rm = cls(lm.config)
        body = {k: v for k, v in lm.state_dict().items() if not k.startswith("lm_head.")}
        missing, unexpected = rm.load_state_dict(body, strict=False)
        assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            rm.lm_head.weight.copy_(torch.randn(rm.lm_head.weight.shape, generator=gen) * lm.config.initializer_range)
        return rm.to(lm.dtype)

    @classmethod
    def from_pretrained(cls, directory: Any, dtype: torch.dtype | str | None = None,  # type: ignore[override]
                        device: torch.device | str | None = None) -> RewardModel:
        """Load a ``Qwen2ForSequenceClassification`` folder (num_labels 1, ours or transformers');
        a causal-LM folder (e.g. the SFT model) gives its body with a new score head."""
        from safetensors import safe_open

        d = Path(directory)
        cfg_path = d / "config.json"
        if not cfg_path.is_file():
            raise Qwen25FileNotFoundError(f"no config.json in {d}")
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
        archs = raw.get("architectures") or []
        if "Qwen2ForSequenceClassification" not in archs:
            lm = Qwen2ForCausalLM.from_pretrained(d, dtype=dtype, device=device)
            return cls.from_causal_lm(lm).to(device=device)
        labels = raw.get("num_labels", len(raw.get("id2label") or {0: ""}))
        if labels != 1:
            raise FormatError(f"{cfg_path}: a reward model has num_labels 1, this one {labels}", str(cfg_path))
        config = Qwen25Config.from_hf_dict(raw, str(cfg_path))
        if config.is_moe:
            raise Qwen25ValueError(f"{d}: MoE reward models are not supported")
        target = resolve_dtype(dtype, config)
        files = sorted(d.glob("model*.safetensors"))
        if not files:
            raise Qwen25FileNotFoundError(f"no model*.safetensors in {d}")
        with torch.device("meta"):
            model = cls(config)
        expected = {("score.weight" if k == "lm_head.weight" else k): v.shape for k, v in model.state_dict().items()}
        ours: dict[str, torch.Tensor] = {}
        for f in files:
            with safe_open(str(f), framework="pt", device="cpu") as h:
                for k in h.keys():
                    ours[k] = h.get_tensor(k).to(target)
        missing = sorted(set(expected) - set(ours))
        unexpected = sorted(set(ours) - set(expected))
        mismatched = [(k, tuple(ours[k].shape), tuple(expected[k])) for k in sorted(expected)
                      if k in ours and tuple(ours[k].shape) != tuple(expected[k])]
        if missing or unexpected or mismatched:
            raise CheckpointError(str(d), missing, unexpected, mismatched)
        sd = {("lm_head.weight" if k == "score.weight" else k): v for k, v in ours.items()}
        model.load_state_dict(sd, strict=True, assign=True)
        from ..model.qwen2 import RotaryEmbedding

        model.rotary_emb = RotaryEmbedding(config)
        return model.to(device=device).eval()

    def save_pretrained(self, directory: Any, *, max_shard_size: int | str = "5GB",  # type: ignore[override]
                        dtype: torch.dtype | None = None, pad_token_id: int | None = None) -> None:
        """Write ``config.json`` (``Qwen2ForSequenceClassification``, num_labels 1, the pad id) and
        ``model.safetensors`` (the body under transformers' names and ``score.weight``)."""
        if self.config.is_moe:
            raise Qwen25ValueError("MoE reward models are not supported")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {("score.weight" if k == "lm_head.weight" else k): v.detach().to("cpu", dtype or v.dtype).contiguous()
                   for k, v in self.state_dict().items()}
        save_safetensors(tensors, d / "model.safetensors")
        pad = pad_token_id if pad_token_id is not None else self.config.pad_token_id
        if pad is None:
            pad = DEFAULT_PAD_ID if self.config.vocab_size > DEFAULT_PAD_ID else self.config.vocab_size - 1
        saved = dtype or next(iter(tensors.values())).dtype
        cfg = self.config.replace(torch_dtype=str(saved).removeprefix("torch."), pad_token_id=pad).to_hf_dict()
        cfg["architectures"] = ["Qwen2ForSequenceClassification"]
        cfg["id2label"] = {"0": "LABEL_0"}
        cfg["label2id"] = {"LABEL_0": 0}
        cfg.pop("num_labels", None)
        from ..data.records import write_json

        write_json(d / "config.json", cfg, indent=2, sort_keys=True)


def pair_accuracy(model: RewardModel, pairset: PairSet, *, micro_batch_size: int = 8,
                  device: torch.device | str = "cpu") -> dict[str, float]:
    """Held-out pair accuracy (reward of chosen > rejected), the mean margin and the mean loss."""
    data = PairData(pairset, seed=0, stage_index=0, shuffle=False)
    rc, rr, margins = [], [], []
    with evaluating(model):
        for mb in data.micro_batches(list(range(len(pairset.pairs))), micro_batch_size):
            r = model(mb.input_ids.to(device), mb.attention_mask.to(device))
            c, j = r.chunk(2)
            rc.append(c.cpu())
            rr.append(j.cpu())
            margins.append(mb.margin if mb.margin is not None else torch.zeros(len(mb.rows)))
    c, j = torch.cat(rc), torch.cat(rr)
    return {"accuracy": float((c > j).float().mean()), "margin": float((c - j).mean()),
            "loss": float(reward_loss(c, j, margin=torch.cat(margins))), "pairs": len(pairset.pairs)}


# -------------------------------------------------------------------------------- training
def _debug() -> TrainConfig:
    """CPU, minutes: the debug shape with Qwen2.5's vocabulary, seeded init, 8 pairs per step."""
    return TrainConfig(
        name="rm-debug", model="debug",
        stages=(Stage(name="rm", data=("pairs.jsonl",), seq_len=256, steps=1),),
        global_batch_tokens=8 * 256, micro_batch_size=4, lr=1e-3, schedule="cosine", warmup_steps=0,
        weight_decay=0.0, clip_grad_norm=1.0, device="cpu", precision="fp32", keep_last=1,
        method={"epochs": 1.0},
    )


def _rm() -> TrainConfig:
    """A reward model from the SFT model (``--set init_from=PATH``): 1 epoch, lr 1e-6 with cosine
    decay, 64 pairs of up to 4,096 tokens per step (our choices: the report gives none)."""
    return TrainConfig(
        name="rm", model="0.5B",
        stages=(Stage(name="rm", data=("pairs.jsonl",), seq_len=4096, steps=1),),
        global_batch_tokens=64 * 4096, micro_batch_size=2, lr=1e-6, schedule="cosine", warmup_steps=10,
        weight_decay=0.0, clip_grad_norm=1.0, checkpoint_every=200, keep_last=2, log_every=10,
        method={"epochs": 1.0},
    )


RECIPES = {"debug": _debug, "rm": _rm}
_KNOWN = ("epochs", "center_rewards_coefficient", "tokenizer", "eval_data")


def recipe(name: str) -> TrainConfig:
    return pick(RECIPES, name, "reward-model")


def _method(config: TrainConfig) -> dict[str, Any]:
    unknown = sorted(set(config.method) - set(_KNOWN))
    if unknown:
        raise Qwen25ValueError(f"method: unknown reward-model settings {unknown}; known: {list(_KNOWN)}")
    return dict(config.method)


def prepare_config(config: TrainConfig, data: str | os.PathLike[str] | None = None) -> TrainConfig:
    """Point the stage at ``data`` and size it to ``method.epochs`` passes over its pairs."""
    return sized_to_epochs(config, data, float(_method(config).get("epochs", 1.0)))


class RewardTrainer(Trainer):
    """:class:`qwen25.train.Trainer` training a :class:`RewardModel` on a pairs file. ``init_from``
    (a causal LM, e.g. the SFT model, or a reward model) gives the body; else a seeded init."""

    def __init__(self, config: TrainConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.m = _method(config)
        self.pairset: PairSet | None = None

    def build_model(self, config: Qwen25Config) -> RewardModel:  # type: ignore[override]
        cfg = self.config
        if cfg.init_from is not None:
            return RewardModel.from_pretrained(cfg.init_from, dtype=torch.float32)
        lm = Qwen2ForCausalLM.from_config(config, dtype=torch.float32, seed=cfg.seed)
        return RewardModel.from_causal_lm(lm, seed=cfg.seed)

    def _pairs(self, path: str, seq_len: int) -> PairSet:
        tok = None
        if holds_text(path):
            from ..tokenizer import Tokenizer

            t = self.m.get("tokenizer")
            tok = Tokenizer.from_pretrained(t) if t else Tokenizer.qwen25()
        ps = read_pairs(path, max_length=seq_len, tokenizer=tok, vocab_size=self.stage_configs[0][0].vocab_size)
        if ps.truncated:
            self._note(f"{path}: {ps.truncated} completion(s) cut at max_length {seq_len}")
        return ps

    def check_data(self) -> None:  # read (and so check) the pairs before the model is built
        if self.pairset is None:
            self.pairset = self._pairs(self.config.stages[0].data[0], self.config.stages[0].seq_len)

    def stage_data(self, stage: Stage, index: int) -> PairData:
        if self.pairset is None:
            self.pairset = self._pairs(stage.data[0], stage.seq_len)
        return PairData(self.pairset, seed=self.config.seed, stage_index=index, shuffle=self.config.shuffle)

    def forward_backward(self, step: int) -> dict[str, Any]:
        cfg = self.config
        model = self.model
        assert model is not None
        stage, all_rows, mine, micro = self.step_micro_batches(step)
        world, n_pairs = self.dist.world_size, len(all_rows)
        coef = self.m.get("center_rewards_coefficient")
        parts, rc, rr, tokens = [], [], [], 0
        for mb in self.accumulating(micro):
            with self._autocast():
                r = model(mb.input_ids.to(self.device), mb.attention_mask.to(self.device))
            c, j = r.chunk(2)
            margin = mb.margin.to(self.device) if mb.margin is not None else None
            # the step's loss is the mean over all its pairs: each micro-batch adds its share
            share = len(mb.rows) / n_pairs
            loss = reward_loss(c, j, margin=margin, center_rewards_coefficient=coef) * share
            loss.backward()
            parts.append(loss.detach())
            rc.append(c.detach())
            rr.append(j.detach())
            tokens += mb.n_tokens
        local = torch.stack(parts)
        c, j = torch.cat(rc), torch.cat(rr)
        sums = torch.stack([local.sum().double(), (c > j).double().sum(), (c - j).double().sum(),
                            c.double().sum() + j.double().sum(), torch.tensor(float(tokens), dtype=torch.float64,
                                                                              device=c.device)])
        all_reduce_sum(sums, self.dist)
        n = float(n_pairs)
        metrics = {"accuracy": float(sums[1]) / n, "margin": float(sums[2]) / n, "mean_reward": float(sums[3]) / (2 * n),
                   "pairs": n_pairs, "target_tokens": int(sums[4])}
        # train_step divides ce_total by n_global: the loss is already a mean, so n_global is 1
        return {"stage": stage, "rows": all_rows, "mine": mine, "micro": micro, "n_global": 1.0, "local": local,
                "ce_total": float(sums[0]), "aux_mean": None, "tokens": int(sums[4]), "metrics": metrics}


def train_reward_model(config: TrainConfig, *, data: str | None = None, out_dir: str | None = None,
                       **trainer_kwargs: Any) -> tuple[RewardTrainer, list[dict[str, Any]]]:
    """Run a reward-model config; report held-out pair accuracy on ``method.eval_data`` when set;
    write the model to ``OUT/final``, a ``Qwen2ForSequenceClassification`` folder (on several ranks:
    gathered, written by rank 0)."""
    cfg = prepare_config(config, data)
    trainer = RewardTrainer(cfg, out_dir=out_dir, **trainer_kwargs)
    records = trainer.fit()
    assert trainer.model is not None
    ev_path = trainer.m.get("eval_data")
    if ev_path:
        ps = trainer._pairs(str(ev_path), cfg.stages[0].seq_len)
        ev = pair_accuracy(trainer.model, ps, micro_batch_size=cfg.micro_batch(cfg.stages[0]),  # type: ignore[arg-type]
                           device=trainer.device)
        if records:
            records[-1].update({f"eval_{k}": v for k, v in ev.items()})
        print(f"qwen25 rm: held-out {ev}", file=sys.stderr)
    if out_dir is not None:  # on several ranks: gathered, written by rank 0 (every rank takes part)
        save_final(trainer.model, Path(out_dir) / "final")
    return trainer, records
