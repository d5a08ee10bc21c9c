"""Log-likelihoods of continuations, the lm-evaluation-harness way, with one forward per context.

The token split is lm-eval's (``TemplateLM._encode_pair``): trailing spaces of the context move to
the continuation, then ``context_ids = encode(context)`` and ``continuation_ids =
encode(context + continuation)[len(context_ids):]``; the model sees ``context_ids +
continuation_ids``. An empty context is replaced by one prefix token (the tokenizer's BOS, else its
EOS), as lm-eval does.

Where lm-eval runs every (context, continuation) pair as a full sequence (sharing logits only for
one-token continuations of one context), :func:`score_requests` runs each context once into a KV
cache, reads the first continuation token off its last position, and runs only the remaining
continuation tokens of every choice against a copy of that cache. It computes only the logits it
needs (one position per context, then the continuation positions). The result is the same
log-likelihood up to float rounding (tests/parity/test_eval_lm_eval.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError
from ..train.modes import evaluating

if TYPE_CHECKING:
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer

__all__ = ["encode_pair", "prefix_token_id", "Request", "score_requests", "Scorer", "model_max_length"]


def prefix_token_id(tokenizer: Tokenizer) -> int:
    """The token that stands in for an empty context: BOS when the tokenizer has one, else EOS
    (lm-eval's ``prefix_token_id``); ``<|endoftext|>`` for Qwen2.5."""
    cfg = tokenizer.config or {}
    for key in ("bos_token", "eos_token"):
        tok = cfg.get(key)
        if isinstance(tok, dict):
            tok = tok.get("content")
        if isinstance(tok, str):
            tid = tokenizer.token_to_id(tok)
            if tid is not None:
                return tid
    tid = tokenizer.token_to_id("<|endoftext|>")
    if tid is None:
        raise Qwen25ValueError("the tokenizer has no BOS, no EOS and no <|endoftext|> to stand for an empty context")
    return tid


def encode_pair(tokenizer: Tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) split as lm-eval splits them (module docstring)."""
    if not isinstance(context, str) or not isinstance(continuation, str):
        raise TypeError(f"context and continuation must be str, got {type(context).__name__} and "
                        f"{type(continuation).__name__}")
    if continuation == "":
        raise Qwen25ValueError(f"an empty continuation after context {context[-40:]!r}")
    if context == "":
        cont = tokenizer.encode(continuation)
        pre = prefix_token_id(tokenizer)
        return ([pre], cont) if cont[0] != pre else (cont[:1], cont[1:])
    n = len(context) - len(context.rstrip())
    if n:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole = tokenizer.encode(context + continuation)
    ctx = tokenizer.encode(context)
    cont = whole[len(ctx):]
    if not cont:  # the continuation merged into the context's last token
        raise Qwen25ValueError(f"continuation {continuation!r} adds no token after context {context[-40:]!r}")
    return ctx, cont


@dataclass
class Request:
    """One context and the continuations to score after it (token ids)."""

    context: list[int]
    continuations: list[list[int]]


# A scorer maps requests to one log-likelihood per continuation (and whether each is greedy).
Scorer = Callable[[Sequence[Request]], list[list[tuple[float, bool]]]]


def model_max_length(model: Qwen2ForCausalLM) -> int | None:
    """The longest input the model takes: its positions, or None (no limit) with dual chunk
    attention."""
    cfg = model.config
    return None if cfg.dual_chunk_attention_config is not None else cfg.max_positions


def _truncate(req: Request, max_len: int | None) -> tuple[list[int], bool]:
    """The context, left-truncated as lm-eval does so that context + the longest continuation
    minus its last token fits ``max_len``."""
    if max_len is None:
        return req.context, False
    longest = max(len(c) for c in req.continuations)
    if longest > max_len:
        raise Qwen25ValueError(f"a continuation of {longest} tokens is longer than the model's {max_len} positions")
    room = max_len + 1 - longest
    if len(req.context) <= room:
        return req.context, False
    return req.context[len(req.context) - room:], True


def score_requests(model: Qwen2ForCausalLM, requests: Sequence[Request], *, batch_size: int = 8,
                   max_length: int | None = -1, progress: Any = None) -> list[list[tuple[float, bool]]]:
    """Sum of log-probabilities (and greedy flag) of every continuation of every request, in order.

    Contexts are grouped by length (longest first, as lm-eval) into batches of ``batch_size``,
    left-padded, run once into a KV cache; continuations of more than one token then run as one
    right-padded row each against a copy of their context's cache. ``max_length`` (default: the
    model's, see :func:`model_max_length`) left-truncates long contexts. ``progress`` is a callable
    receiving the number of requests done after each batch."""
    import torch

    from ..model.generation import left_pad
    from ..model.qwen2 import KVCache, prefill

    if batch_size < 1:
        raise Qwen25ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_length == -1:
        max_length = model_max_length(model)
    for i, r in enumerate(requests):
        if not r.continuations or any(len(c) == 0 for c in r.continuations):
            raise Qwen25ValueError(f"request {i}: every continuation needs at least one token")
        if not r.context:
            raise Qwen25ValueError(f"request {i}: an empty context (use encode_pair, which puts a prefix token)")
    cfg = model.config
    device = model.device
    out: list[list[tuple[float, bool]]] = [[] for _ in requests]
    ctxs = [_truncate(r, max_length)[0] for r in requests]
    order = sorted(range(len(requests)), key=lambda i: (-len(ctxs[i]), i))
    with evaluating(model):
        for a in range(0, len(order), batch_size):
            idx = order[a:a + batch_size]
            ids, mask = left_pad([ctxs[i] for i in idx], 0)
            t = ids.shape[1]
            longest = max(len(c) for i in idx for c in requests[i].continuations)
            cache = KVCache(cfg, len(idx), t + longest - 1, dtype=model.dtype, device=device)
            am = mask.to(device) if bool((mask == 0).any()) else None
            last = prefill(model, ids.to(device), cache, attention_mask=am).float().log_softmax(-1)  # [B, V]
            top = last.argmax(-1)
            # first continuation token of every choice comes from the context's last position
            rows: list[tuple[int, int]] = []  # (batch row, choice) of continuations with more tokens
            for b, i in enumerate(idx):
                for j, c in enumerate(requests[i].continuations):
                    out[i].append((float(last[b, c[0]]), int(top[b]) == c[0]))
                    if len(c) > 1:
                        rows.append((b, j))
            for s in range(0, len(rows), batch_size):
                part = rows[s:s + batch_size]
                conts = [requests[idx[b]].continuations[j] for b, j in part]
                n = max(len(c) for c in conts) - 1
                sel = torch.tensor([b for b, _ in part], device=device)
                sub = KVCache(cfg, len(part), cache.max_len, dtype=model.dtype, device=device)
                sub.k[:, :, :, :t] = cache.k[:, sel, :, :t]
                sub.v[:, :, :, :t] = cache.v[:, sel, :, :t]
                sub.key_mask = None if cache.key_mask is None else cache.key_mask[sel].clone()
                sub.next_position = cache.next_position[sel].clone()
                sub.length = t
                # right padding: the padded tail comes after every real token, so it changes none
                inp = torch.zeros(len(part), n, dtype=torch.long)
                for row, c in enumerate(conts):
                    inp[row, :len(c) - 1] = torch.as_tensor(c[:-1])
                logp = model(inp.to(device), cache=sub).logits.float().log_softmax(-1)  # [R, n, V]
                for row, ((b, j), c) in enumerate(zip(part, conts)):
                    tgt = torch.as_tensor(c[1:], device=device)
                    lp = logp[row, :len(c) - 1]
                    ll, greedy = out[idx[b]][j]
                    ll += float(lp.gather(-1, tgt[:, None]).sum())
                    greedy = greedy and bool((lp.argmax(-1) == tgt).all())
                    out[idx[b]][j] = (ll, greedy)
            if progress is not None:
                progress(len(idx))
    return out
