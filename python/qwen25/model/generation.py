"""Generation with a static KV cache: batched (left padding), greedy or sampled, streamed.

``generate`` returns prompt + new ids; ``generate_steps`` yields the next ids of every row one step
at a time; ``stream_text`` turns one row's steps into text through the tokenizer's incremental
decoder (never half a UTF-8 character).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..errors import Qwen25ValueError
from .qwen2 import KVCache, prefill

if TYPE_CHECKING:
    from ..tokenizer import Tokenizer
    from .qwen2 import Qwen2ForCausalLM

__all__ = ["generate", "generate_steps", "stream_text", "left_pad", "sample_next", "filter_logits",
           "apply_repetition_penalty"]

_UNSET: Any = object()


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad lists of ids to one [B, T] tensor; returns (ids, attention_mask)."""
    if not rows or any(len(r) == 0 for r in rows):
        raise Qwen25ValueError("every prompt needs at least one token")
    t = max(len(r) for r in rows)
    ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, t - len(r):] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, t - len(r):] = 1
    return ids, mask


def _as_batch(input_ids: Any, attention_mask: Any, pad_id: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(input_ids, torch.Tensor):
        ids = input_ids if input_ids.dim() == 2 else input_ids.reshape(1, -1)
        mask = None if attention_mask is None else torch.as_tensor(attention_mask).reshape(ids.shape)
        return ids.long(), mask
    rows = list(input_ids)
    if rows and isinstance(rows[0], int):
        rows = [rows]
    if attention_mask is not None:
        raise Qwen25ValueError("attention_mask goes with a tensor of ids; lists are padded for you")
    if len({len(r) for r in rows}) == 1:
        return torch.as_tensor(rows, dtype=torch.long), None
    return left_pad(rows, pad_id)


def filter_logits(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  min_p: float = 0.0) -> torch.Tensor:
    """Temperature, then top-k, top-p (nucleus) and min-p filtering of fp32 logits [B, V]; removed
    tokens get -inf. The best token always survives."""
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        # remove the least likely tokens whose total mass is at most 1 - top_p
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        mass_below = sorted_logits.softmax(-1).cumsum(-1)
        drop = mass_below <= 1 - top_p
        drop[:, -1] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    if min_p > 0.0:
        probs = logits.softmax(-1)
        logits = logits.masked_fill(probs < min_p * probs.max(dim=-1, keepdim=True).values, -math.inf)
    return logits


def sample_next(logits: torch.Tensor, *, do_sample: bool, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0, min_p: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Next ids [B] from fp32 logits [B, V]: argmax, or a draw after ``filter_logits``."""
    if not do_sample:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def apply_repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty on ids already seen ([B, V] bool): positive logits / penalty, negative x penalty."""
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalised, scores)


def _stop_sequences(stop: Any, eos: Sequence[int]) -> list[tuple[int, ...]]:
    seqs: list[tuple[int, ...]] = [(int(e),) for e in eos]
    if stop is None:
        return seqs
    if isinstance(stop, int):
        stop = [stop]
    for s in stop:
        if isinstance(s, int):
            seqs.append((s,))
        elif isinstance(s, str):
            raise Qwen25ValueError("stop strings need a tokenizer: encode them, or use stream_text(stop=...)")
        else:
            t = tuple(int(x) for x in s)
            if not t:
                raise Qwen25ValueError("an empty stop sequence")
            seqs.append(t)
    return seqs


@torch.no_grad()
def generate_steps(model: Qwen2ForCausalLM, input_ids: Any, *, max_new_tokens: int = 32, do_sample: bool = False,
                   temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
                   repetition_penalty: float = 1.0, stop: Any = None, seed: int | None = None,
                   attention_mask: Any = None, eos_token_id: Any = _UNSET,
                   pad_token_id: int | None = None, prefill_chunk_size: int | None = None
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (next_ids [B], finished [B]) once per new token; the ids of finished rows are the pad id.
    ``prefill_chunk_size`` runs the prompt in pieces of that many tokens (bounded memory for long
    prompts; see ``qwen2.prefill``).

    The first value yielded is ``(prompt_ids [B, T], attention_mask or None)`` so callers can
    rebuild the full sequences."""
    if max_new_tokens < 0:
        raise Qwen25ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if do_sample:
        if not temperature > 0:
            raise Qwen25ValueError(f"temperature must be > 0 when sampling, got {temperature}")
        if not 0 < top_p <= 1:
            raise Qwen25ValueError(f"top_p must be in (0, 1], got {top_p}")
        if not 0 <= min_p <= 1:
            raise Qwen25ValueError(f"min_p must be in [0, 1], got {min_p}")
        if top_k < 0:
            raise Qwen25ValueError(f"top_k must be >= 0, got {top_k}")
    if repetition_penalty <= 0:
        raise Qwen25ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")
    cfg = model.config
    eos = cfg.eos_ids() if eos_token_id is _UNSET else (
        () if eos_token_id is None else ((eos_token_id,) if isinstance(eos_token_id, int) else tuple(eos_token_id)))
    pad = pad_token_id if pad_token_id is not None else (cfg.pad_token_id if cfg.pad_token_id is not None else
                                                          (eos[0] if eos else 0))
    stops = _stop_sequences(stop, eos)
    ids, mask = _as_batch(input_ids, attention_mask, pad)
    device = model.device
    ids = ids.to(device)
    mask = None if mask is None else mask.to(device)
    yield ids, mask  # type: ignore[misc]
    if max_new_tokens == 0:
        return
    b, t = ids.shape
    longest = int(mask.sum(-1).max()) if mask is not None else t
    if cfg.dual_chunk_attention_config is None and longest + max_new_tokens > cfg.max_positions:
        raise Qwen25ValueError(f"prompt ({longest} tokens) + max_new_tokens ({max_new_tokens}) is past the "
                               f"{cfg.max_positions} positions this model supports")
    cache = KVCache(cfg, b, t + max_new_tokens, dtype=model.dtype, device=device)
    gen = None
    if seed is not None:
        gen = torch.Generator(device=device).manual_seed(seed)
    seen = None
    if repetition_penalty != 1.0:  # [B, V] which ids occurred (prompt padding excluded)
        seen = torch.zeros(b, cfg.vocab_size, dtype=torch.bool, device=device)
        seen.scatter_(1, ids, mask.bool() if mask is not None else torch.ones_like(ids, dtype=torch.bool))
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    single = torch.tensor([s[0] for s in stops if len(s) == 1], dtype=torch.long, device=device)
    multi = [s for s in stops if len(s) > 1]
    history: list[list[int]] = [[] for _ in range(b)] if multi else []

    logits = prefill(model, ids, cache, chunk_size=prefill_chunk_size, attention_mask=mask)
    for step in range(max_new_tokens):
        scores = logits.float()
        if seen is not None:
            scores = apply_repetition_penalty(scores, seen, repetition_penalty)
        nxt = sample_next(scores, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                          min_p=min_p, generator=gen)
        nxt = torch.where(finished, torch.full_like(nxt, pad), nxt)
        if seen is not None:
            seen[torch.arange(b, device=device), nxt] = True
        done_now = torch.isin(nxt, single) if single.numel() else torch.zeros_like(finished)
        if multi:
            for i, tok in enumerate(nxt.tolist()):
                if finished[i]:
                    continue
                history[i].append(tok)
                if any(tuple(history[i][-len(s):]) == s for s in multi):
                    done_now[i] = True
        finished = finished | done_now
        yield nxt, finished.clone()
        if bool(finished.all()) or step == max_new_tokens - 1:
            return
        logits = model(nxt[:, None], cache=cache, logits_to_keep=1).logits[:, -1]


def generate(model: Qwen2ForCausalLM, input_ids: Any, *, max_new_tokens: int = 32, do_sample: bool = False,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
             repetition_penalty: float = 1.0, stop: Any = None, seed: int | None = None, **kwargs: Any) -> torch.Tensor:
    """Prompt + new ids, [B, T + n] (n <= max_new_tokens: it stops early when every row has hit
    an end-of-sequence id or a ``stop`` id / id sequence; rows that finished first are padded).

    ``input_ids``: a [B, T] tensor (with ``attention_mask`` for padded rows), a list of ids, or a
    list of id lists of any lengths (left-padded for you). ``eos_token_id`` defaults to the
    config's; ``pad_token_id`` to the config's, else the first eos id. ``seed`` makes sampling
    reproducible."""
    steps = generate_steps(model, input_ids, max_new_tokens=max_new_tokens, do_sample=do_sample,
                           temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                           repetition_penalty=repetition_penalty, stop=stop, seed=seed, **kwargs)
    ids, _ = next(steps)
    new = [nxt for nxt, _ in steps]
    return torch.cat([ids, torch.stack(new, 1)], 1) if new else ids


def stream_text(model: Qwen2ForCausalLM, tokenizer: Tokenizer, prompt_ids: Sequence[int], *,
                skip_special_tokens: bool = True, stop_strings: Sequence[str] = (), **kwargs: Any) -> Iterator[str]:
    """Generate for one prompt and yield the text as it grows. Stops at eos/stop ids or when the
    text contains one of ``stop_strings`` (the text up to it is yielded, the stop string not)."""
    dec = tokenizer.incremental_decoder(skip_special_tokens=skip_special_tokens)
    steps = generate_steps(model, [list(prompt_ids)], **kwargs)
    next(steps)
    text = ""
    emitted = 0
    hold = max((len(s) for s in stop_strings), default=0)
    for nxt, finished in steps:
        if bool(finished[0]):  # an eos or stop id: not part of the text
            break
        text += dec.step(int(nxt[0]))
        cut = min((i for i in (text.find(s) for s in stop_strings) if i >= 0), default=-1)
        if cut >= 0:
            if cut > emitted:
                yield text[emitted:cut]
            return
        safe = len(text) - max(hold - 1, 0)  # a stop string may still be forming at the end
        if safe > emitted:
            yield text[emitted:safe]
            emitted = safe
    text += dec.flush()
    cut = min((i for i in (text.find(s) for s in stop_strings) if i >= 0), default=-1)
    end = cut if cut >= 0 else len(text)
    if end > emitted:
        yield text[emitted:end]
