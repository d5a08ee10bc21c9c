"""Rollout engines for online RL: the protocol the GRPO trainer talks to, the local engine on our
KV-cache model, and a Ray adapter that runs it on workers.

    >>> from qwen25.rl import LocalRollouts, SamplingParams                            # doctest: +SKIP
    >>> engine = LocalRollouts(model, tokenizer)                                       # doctest: +SKIP
    >>> out = engine.generate([prompt_ids], 8, SamplingParams(max_new_tokens=64, seed=1))  # doctest: +SKIP
    >>> out[0].token_ids, out[0].logps, out[0].finish_reason                           # doctest: +SKIP

The protocol (:class:`RolloutEngine`) is two methods: ``generate(prompts, n, sampling)`` returns
``len(prompts) * n`` :class:`Completion` objects, the ``n`` samples of each prompt contiguous, each
with its token ids and the log-prob of every token under ``log_softmax(logits / temperature)``
(the distribution the trainer differentiates, :func:`qwen25.rl.grpo.token_logps`);
``update_weights(state_dict)`` loads the policy's new weights. A serving engine (vLLM, SGLang)
plugs in by implementing the same two methods.

Sampling: temperature, and by default top-p = 1 and top-k off, so that the sampled distribution is
the one the trainer computes. With top-p/top-k the tokens are drawn from the filtered distribution
while the recorded log-probs stay those of the full ``log_softmax(logits / T)``, as the trainer
sees them. A completion ends at the first stop token (which it keeps: ``finish_reason="stop"``) or
after ``max_new_tokens`` (``"length"``). Its length, never a token value, says where it ends:
Qwen's pad id ``<|endoftext|>`` is also a real stop token.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import Qwen25ValueError
from ..train.modes import evaluating

if TYPE_CHECKING:
    import torch

__all__ = ["SamplingParams", "Completion", "RolloutEngine", "LocalRollouts", "RayRollouts", "RolloutBatch",
           "collate_completions", "shard_seed", "default_stop_ids"]

FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How rollouts are sampled. ``stop_token_ids`` None: the engine's (the tokenizer's
    ``<|im_end|>`` and ``<|endoftext|>``, else the model's eos ids)."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    stop_token_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop_token_ids, list):
            object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))
        if not (isinstance(self.max_new_tokens, int) and not isinstance(self.max_new_tokens, bool)
                and self.max_new_tokens >= 1):
            raise Qwen25ValueError(f"SamplingParams: max_new_tokens must be a positive int, got {self.max_new_tokens!r}")
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature > 0):
            raise Qwen25ValueError(f"SamplingParams: temperature must be > 0, got {self.temperature!r}")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise Qwen25ValueError(f"SamplingParams: top_p must be in (0, 1], got {self.top_p!r}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise Qwen25ValueError(f"SamplingParams: top_k must be an int >= 0 (0: off), got {self.top_k!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise Qwen25ValueError(f"SamplingParams: seed must be an int, got {self.seed!r}")
        if self.stop_token_ids is not None and not all(isinstance(t, int) and t >= 0 for t in self.stop_token_ids):
            raise Qwen25ValueError(f"SamplingParams: stop_token_ids must be ids >= 0, got {self.stop_token_ids!r}")


@dataclass(frozen=True)
class Completion:
    """One sampled completion: ``token_ids`` (the stop token included when it stopped on one),
    ``logps`` (log_softmax(logits / T) of each token), ``finish_reason`` ("stop" or "length"),
    and where it came from (``prompt_index`` into the prompts given, ``sample_index`` in 0..n-1)."""

    prompt_index: int
    sample_index: int
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    logps: tuple[float, ...]
    finish_reason: str

    @property
    def truncated(self) -> bool:
        """Cut at max_new_tokens without a stop token."""
        return self.finish_reason == "length"


@runtime_checkable
class RolloutEngine(Protocol):
    """What the GRPO trainer needs from a sampler."""

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingParams) -> list[Completion]:
        """``len(prompts) * n`` completions, prompt-major: the n samples of prompt i are
        ``out[i * n:(i + 1) * n]``."""
        ...

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Load the policy's current weights (a no-op for an engine that shares the model)."""
        ...


def shard_seed(seed: int, shard: int) -> int:
    """The sampling seed of shard ``shard`` of a request split over workers: shard 0 keeps
    ``seed`` (one worker samples what the local engine samples); the others get a mixed value."""
    if shard == 0:
        return seed
    x = (seed * 0x9E3779B97F4A7C15 + shard * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 29)) & 0x7FFFFFFFFFFFFFFF


def default_stop_ids(tokenizer: Any, model_config: Any) -> tuple[int, ...]:
    """``<|im_end|>`` and ``<|endoftext|>`` of the tokenizer when it has them (a chat model ends
    its turn with the first, a base model its text with the second), else the model's eos ids."""
    ids: list[int] = []
    if tokenizer is not None and hasattr(tokenizer, "token_to_id"):
        for tok in ("<|im_end|>", "<|endoftext|>"):
            i = tokenizer.token_to_id(tok)
            if i is not None:
                ids.append(int(i))
    if not ids and model_config is not None:
        ids = list(model_config.eos_ids())
    return tuple(dict.fromkeys(ids))


def _check_request(prompts: Sequence[Sequence[int]], n: int, vocab_size: int | None) -> list[tuple[int, ...]]:
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise Qwen25ValueError(f"generate: n must be a positive int, got {n!r}")
    out = []
    for i, p in enumerate(prompts):
        try:
            ids = tuple(int(x) for x in p)
        except (TypeError, ValueError):
            raise Qwen25ValueError(f"generate: prompt {i} is not a sequence of token ids") from None
        if not ids:
            raise Qwen25ValueError(f"generate: prompt {i} is empty")
        bad = [x for x in ids if x < 0 or (vocab_size is not None and x >= vocab_size)]
        if bad:
            raise Qwen25ValueError(f"generate: prompt {i} has token id {bad[0]} outside [0, {vocab_size})")
        out.append(ids)
    return out


# ------------------------------------------------------------------------------ local engine
class LocalRollouts:
    """:class:`RolloutEngine` on a ``Qwen2ForCausalLM`` in this process, with the static KV cache
    of ``qwen25.model.generation``: prompts left-padded into batches of ``batch_size`` rows (None:
    all rows at once), each row sampled until its stop token or ``max_new_tokens``. The rows of
    one prompt share its prefill (computed once, its cache copied to each sample's row).

    One ``torch.Generator`` seeded with ``sampling.seed`` draws every token of a call, so a call
    is reproducible for a given batch layout. ``autocast`` (a dtype such as ``torch.bfloat16``)
    samples under autocast, to match a trainer that computes under it."""

    def __init__(self, model: Any, tokenizer: Any = None, *, batch_size: int | None = None,
                 stop_token_ids: Sequence[int] | None = None, pad_token_id: int | None = None,
                 autocast: torch.dtype | None = None) -> None:
        if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
            raise Qwen25ValueError(f"LocalRollouts: batch_size must be a positive int or None, got {batch_size!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        cfg = model.config
        self.stop_token_ids = tuple(int(t) for t in stop_token_ids) if stop_token_ids is not None else \
            default_stop_ids(tokenizer, cfg)
        if pad_token_id is None:
            pad_token_id = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
        if pad_token_id is None:
            pad_token_id = cfg.pad_token_id if cfg.pad_token_id is not None else (
                self.stop_token_ids[0] if self.stop_token_ids else 0)
        self.pad_token_id = int(pad_token_id)
        self.autocast = autocast

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        import torch

        own = self.model.state_dict()
        if all(k in own and isinstance(v, torch.Tensor) and v.data_ptr() == own[k].data_ptr()
               for k, v in state_dict.items()):
            return  # the trainer's own model (the engine shares it): nothing to copy
        self.model.load_state_dict(dict(state_dict))

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingParams) -> list[Completion]:
        import contextlib

        import torch

        if not isinstance(sampling, SamplingParams):
            raise TypeError(f"generate: sampling must be a SamplingParams, got {type(sampling).__name__}")
        model = self.model
        rows_in = _check_request(prompts, n, model.config.vocab_size)
        stops = sampling.stop_token_ids if sampling.stop_token_ids is not None else self.stop_token_ids
        rows = [(i, j, p) for i, p in enumerate(rows_in) for j in range(n)]
        if not rows:
            return []
        longest = max(len(p) for p in rows_in)
        if model.config.dual_chunk_attention_config is None and longest + sampling.max_new_tokens > model.config.max_positions:
            raise Qwen25ValueError(f"generate: the longest prompt ({longest} tokens) + max_new_tokens "
                                   f"({sampling.max_new_tokens}) is past the model's {model.config.max_positions} positions")
        device = model.device
        gen = torch.Generator(device=device).manual_seed(sampling.seed)
        bs = self.batch_size or len(rows)
        ctx = torch.autocast(device.type, dtype=self.autocast) if self.autocast is not None else contextlib.nullcontext()
        out: list[Completion] = []
        with evaluating(model), ctx:
            for a in range(0, len(rows), bs):
                chunk = rows[a:a + bs]
                for (i, j, p), (toks, lps, reason) in zip(chunk, self._sample([r[2] for r in chunk], sampling,
                                                                              stops, gen)):
                    out.append(Completion(i, j, p, toks, lps, reason))
        return out

    def _sample(self, rows: list[tuple[int, ...]], sampling: SamplingParams, stops: tuple[int, ...],
                gen: torch.Generator) -> list[tuple[tuple[int, ...], tuple[float, ...], str]]:
        """The completions of ``rows``; called by :meth:`generate` inside ``evaluating(model)``,
        which turns autograd off."""
        import torch

        from ..model.generation import filter_logits, left_pad
        from ..model.qwen2 import KVCache, prefill

        model = self.model
        device = model.device
        # a prompt's n samples share its prefill: run each distinct prompt once, then copy its
        # cache rows (the KV of a prompt does not depend on the other rows of the batch)
        distinct = list(dict.fromkeys(rows))
        where = {p: i for i, p in enumerate(distinct)}
        ids, padded = left_pad(distinct, self.pad_token_id)
        ids = ids.to(device)
        mask = None if bool(padded.all()) else padded.to(device)  # no padding: the plain causal path
        b, t = len(rows), ids.shape[1]
        steps = sampling.max_new_tokens
        cache = KVCache(model.config, len(distinct), t + steps, dtype=model.dtype, device=device)
        logits = prefill(model, ids, cache, attention_mask=mask)  # [distinct, V]
        if len(distinct) < b:
            sel = torch.tensor([where[r] for r in rows], dtype=torch.long, device=device)
            cache.k, cache.v = cache.k.index_select(1, sel), cache.v.index_select(1, sel)
            cache.next_position = cache.next_position.index_select(0, sel)
            if cache.key_mask is not None:
                cache.key_mask = cache.key_mask.index_select(0, sel)
            logits = logits.index_select(0, sel)  # [B, V]
        stop_t = torch.tensor(stops, dtype=torch.long, device=device)
        tokens = torch.full((b, steps), self.pad_token_id, dtype=torch.long, device=device)
        logps = torch.zeros(b, steps, dtype=torch.float32, device=device)
        lengths = torch.full((b,), steps, dtype=torch.long, device=device)
        finished = torch.zeros(b, dtype=torch.bool, device=device)
        pad = torch.full((b,), self.pad_token_id, dtype=torch.long, device=device)
        filtered = sampling.top_k > 0 or sampling.top_p < 1.0
        for step in range(steps):
            scaled = logits.float() / sampling.temperature  # the trainer's logits / T
            if filtered:  # draw from the filtered distribution, record the full one's log-prob
                probs = filter_logits(scaled, top_k=sampling.top_k, top_p=sampling.top_p).softmax(-1)
            else:
                probs = scaled.softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
            nxt = torch.where(finished, pad, nxt)
            tokens[:, step] = nxt
            if filtered:
                logps[:, step] = scaled.gather(1, nxt[:, None])[:, 0] - torch.logsumexp(scaled, -1)
            else:  # log of the drawn token's probability: log_softmax without another pass over V
                logps[:, step] = probs.gather(1, nxt[:, None])[:, 0].log()
            stop_now = torch.isin(nxt, stop_t) & ~finished if stop_t.numel() else torch.zeros_like(finished)
            lengths = torch.where(stop_now, torch.full_like(lengths, step + 1), lengths)
            finished = finished | stop_now
            if step == steps - 1 or bool(finished.all()):
                break
            logits = model(nxt[:, None], cache=cache, logits_to_keep=1).logits[:, -1]
        toks, lps, lens, fin = tokens.cpu().tolist(), logps.cpu().tolist(), lengths.cpu().tolist(), finished.cpu().tolist()
        return [(tuple(toks[r][:lens[r]]), tuple(lps[r][:lens[r]]), "stop" if fin[r] else "length") for r in range(b)]


# -------------------------------------------------------------------------------- Ray adapter
class _RolloutWorker:
    """A Ray actor holding its own copy of the policy and a :class:`LocalRollouts` on it."""

    def __init__(self, config: Any, state_dict: Mapping[str, Any], stop_token_ids: tuple[int, ...], pad_token_id: int,
                 batch_size: int | None, threads: int | None) -> None:
        import torch

        from ..model import Qwen2ForCausalLM

        if threads:
            torch.set_num_threads(threads)
        model = Qwen2ForCausalLM(config)
        model.load_state_dict(dict(state_dict))
        self.engine = LocalRollouts(model.eval(), None, batch_size=batch_size, stop_token_ids=stop_token_ids,
                                    pad_token_id=pad_token_id)

    def generate(self, prompts: list[tuple[int, ...]], n: int, sampling: SamplingParams) -> list[Completion]:
        return self.engine.generate(prompts, n, sampling)

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        self.engine.model.load_state_dict(dict(state_dict))

    def ping(self) -> bool:
        return True


class RayRollouts:
    """:class:`RolloutEngine` on ``num_workers`` Ray actors, each with a copy of the policy. A
    request's prompts are split into contiguous shards, one per worker (a prompt's n samples stay
    on one worker); shard k samples with ``shard_seed(seed, k)``, so one worker gives exactly what
    :class:`LocalRollouts` gives. ``update_weights`` sends the new weights to every worker once
    (``ray.put``). Ray must be initialised by the caller (``ray.init()`` or a cluster address)."""

    def __init__(self, model: Any, tokenizer: Any = None, *, num_workers: int = 1, num_cpus_per_worker: float = 1,
                 num_gpus_per_worker: float = 0, batch_size: int | None = None,
                 stop_token_ids: Sequence[int] | None = None, pad_token_id: int | None = None) -> None:
        from .._extras import require

        require("ray", "qwen25.rl.RayRollouts")
        import ray

        if not (isinstance(num_workers, int) and num_workers >= 1):
            raise Qwen25ValueError(f"RayRollouts: num_workers must be a positive int, got {num_workers!r}")
        local = LocalRollouts(model, tokenizer, batch_size=batch_size, stop_token_ids=stop_token_ids,
                              pad_token_id=pad_token_id)  # resolves the stop and pad ids the same way
        self.config = model.config
        self.stop_token_ids, self.pad_token_id = local.stop_token_ids, local.pad_token_id
        actor: Any = ray.remote(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker)(_RolloutWorker)
        weights = ray.put(_cpu_state(model.state_dict()))
        threads = max(1, int(num_cpus_per_worker)) if num_gpus_per_worker == 0 else None
        self.workers: list[Any] = [actor.remote(self.config, weights, self.stop_token_ids, self.pad_token_id, batch_size, threads)
                        for _ in range(num_workers)]
        ray.get([w.ping.remote() for w in self.workers])  # fail here, not at the first request

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingParams) -> list[Completion]:
        import ray

        if not isinstance(sampling, SamplingParams):
            raise TypeError(f"generate: sampling must be a SamplingParams, got {type(sampling).__name__}")
        rows = _check_request(prompts, n, self.config.vocab_size)
        k = len(self.workers)
        bounds = [(len(rows) * s // k, len(rows) * (s + 1) // k) for s in range(k)]
        futures = [(a, w.generate.remote(rows[a:e], n, dataclasses.replace(sampling, seed=shard_seed(sampling.seed, s))))
                   for s, (w, (a, e)) in enumerate(zip(self.workers, bounds)) if e > a]
        out: list[Completion] = []
        for a, fut in futures:
            out.extend(dataclasses.replace(c, prompt_index=c.prompt_index + a) for c in ray.get(fut))
        return out

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        import ray

        ref = ray.put(_cpu_state(state_dict))
        ray.get([w.update_weights.remote(ref) for w in self.workers])

    def shutdown(self) -> None:
        import ray

        for w in self.workers:
            ray.kill(w)
        self.workers = []


def _cpu_state(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in state_dict.items():
        if hasattr(v, "full_tensor"):
            v = v.full_tensor()
        out[k] = v.detach().to("cpu")
    return out


# ---------------------------------------------------------------------------- batches
@dataclass
class RolloutBatch:
    """Completions as padded tensors, in the layout the trainer scores: prompts left-padded
    [N, P] and completions right-padded [N, C]; ``completion_mask`` from each completion's length
    (its stop token included), zero on padding; ``sampler_logps`` [N, C] the engine's log-probs."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    sampler_logps: torch.Tensor
    truncated: torch.Tensor  # [N] bool

    @property
    def input_ids(self) -> torch.Tensor:
        import torch

        return torch.cat([self.prompt_ids, self.completion_ids], 1)

    @property
    def attention_mask(self) -> torch.Tensor:
        import torch

        return torch.cat([self.prompt_mask, self.completion_mask], 1)


def collate_completions(completions: Sequence[Completion], pad_id: int, *, mask_truncated: bool = False,
                        completion_length: int | None = None) -> RolloutBatch:
    """Pad ``completions`` into a :class:`RolloutBatch`. ``mask_truncated`` zeroes the mask of
    completions cut at max_new_tokens (they then add nothing to the loss, DAPO's overlong
    filtering). ``completion_length`` pads the completions to that many columns (at least the
    longest)."""
    import torch

    if not completions:
        raise Qwen25ValueError("collate_completions: no completions")
    n = len(completions)
    p = max(len(c.prompt_ids) for c in completions)
    longest = max(len(c.token_ids) for c in completions)
    width = max(longest, completion_length or 0, 1)
    prompt_ids = torch.full((n, p), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros(n, p, dtype=torch.long)
    completion_ids = torch.full((n, width), pad_id, dtype=torch.long)
    completion_mask = torch.zeros(n, width, dtype=torch.long)
    sampler = torch.zeros(n, width, dtype=torch.float32)
    truncated = torch.zeros(n, dtype=torch.bool)
    for r, c in enumerate(completions):
        if c.finish_reason not in FINISH_REASONS:
            raise Qwen25ValueError(f"completion {r}: finish_reason must be one of {list(FINISH_REASONS)}, got "
                                   f"{c.finish_reason!r}")
        if len(c.logps) != len(c.token_ids):
            raise Qwen25ValueError(f"completion {r}: {len(c.token_ids)} tokens but {len(c.logps)} log-probs")
        k, m = len(c.prompt_ids), len(c.token_ids)
        prompt_ids[r, p - k:] = torch.tensor(c.prompt_ids, dtype=torch.long)
        prompt_mask[r, p - k:] = 1
        if m:
            completion_ids[r, :m] = torch.tensor(c.token_ids, dtype=torch.long)
            sampler[r, :m] = torch.tensor(c.logps, dtype=torch.float32)
            completion_mask[r, :m] = 1
        truncated[r] = c.truncated
    if mask_truncated:
        completion_mask[truncated] = 0
    return RolloutBatch(prompt_ids, prompt_mask, completion_ids, completion_mask, sampler, truncated)
