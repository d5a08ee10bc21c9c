"""Passkey retrieval at growing lengths: the long-context check, with and without YaRN + DCA.

A five-digit key sits at a chosen depth inside filler text of a target length in tokens; the model
is asked for it. It is scored as a choice among ``n_candidates`` five-digit keys (the true one and
distractors drawn from the same seeded generator) by log-likelihood, so a model that cannot see
the key scores at chance, ``1 / n_candidates``, and the test of the harness needs no trained
model. ``exact`` (greedy generation of the key) is reported too when ``generate=True``.

Modes:

* ``"base"``: the model as configured. A prompt longer than its positions is left-truncated (as
  lm-eval truncates), so a key placed early falls out of its reach and it scores at chance.
* ``"yarn+dca"``: the same weights with YaRN scaling the positions by
  ``ceil(length / trained length)`` and Dual Chunk Attention with chunks of the trained length
  (``Qwen25Config.with_dca``), the report's recipe for lengths past training. No truncation.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError
from .loglik import Request, Scorer, model_max_length, score_requests

if TYPE_CHECKING:
    from ..model import Qwen2ForCausalLM, Qwen25Config
    from ..tokenizer import Tokenizer

__all__ = ["passkey", "passkey_prompt", "long_context_config", "MODES"]

MODES = ("base", "yarn+dca")
_INTRO = "There is an important piece of information hidden inside a lot of irrelevant text. Find it and memorize it.\n"
_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
_QUESTION = "\nWhat is the pass key? The pass key is"


def _needle(key: str) -> str:
    return f"The pass key is {key}. Remember it. {key} is the pass key. "


def passkey_prompt(tokenizer: Tokenizer, key: str, length: int, depth: float) -> tuple[list[int], int]:
    """Token ids of a prompt of about ``length`` tokens (never more) with ``key`` at ``depth``
    (0 = start of the filler, 1 = end), and the token offset where the key's sentence starts."""
    if not 0.0 <= depth <= 1.0:
        raise Qwen25ValueError(f"depth must be in [0, 1], got {depth}")
    head = tokenizer.encode(_INTRO)
    needle = tokenizer.encode(_needle(key))
    tail = tokenizer.encode(_QUESTION)
    unit = tokenizer.encode(_FILLER)
    room = length - len(head) - len(needle) - len(tail)
    if room < 0:
        raise Qwen25ValueError(f"length {length} is too short for a passkey prompt "
                               f"({len(head) + len(needle) + len(tail)} tokens without filler)")
    filler = (unit * (room // len(unit) + 1))[:room]  # whole copies of a sentence set, cut to fit
    at = round(depth * len(filler))
    ids = head + filler[:at] + needle + filler[at:] + tail
    return ids, len(head) + at


def long_context_config(config: Qwen25Config, length: int) -> Qwen25Config:
    """``config`` with YaRN covering ``length`` and Dual Chunk Attention (module docstring)."""
    from ..model.config import RopeScaling

    trained = config.trained_length
    factor = max(1.0, float(math.ceil(length / trained)))
    cfg = config.replace(rope_scaling=RopeScaling(factor=factor, original_max_position_embeddings=trained),
                         max_position_embeddings=max(config.max_position_embeddings, int(factor * trained)))
    return cfg.with_dca(chunk_size=trained)


@contextlib.contextmanager
def _with_config(model: Qwen2ForCausalLM, config: Qwen25Config) -> Iterator[None]:
    """Run ``model`` under another RoPE / attention config (same weights), then restore it."""
    from ..model.qwen2 import RotaryEmbedding

    old = (model.config, model.rotary_emb, model._dca_tables)
    model.config = config
    model.rotary_emb = RotaryEmbedding(config, model.device)
    model._dca_tables = {}
    try:
        yield
    finally:
        model.config, model.rotary_emb, model._dca_tables = old


def passkey(model: Qwen2ForCausalLM | None, tokenizer: Tokenizer, *, lengths: Sequence[int] = (256, 512, 1024),
            depths: Sequence[float] = (0.1, 0.5, 0.9), trials: int = 4, n_candidates: int = 10,
            modes: Sequence[str] = MODES, seed: int = 0, batch_size: int = 4, scorer: Scorer | None = None,
            max_length: int | None = -1, generate: bool = False, progress: Any = None) -> dict[str, Any]:
    """Passkey accuracy per mode and length (module docstring).

    For every mode, length, depth and trial: ``n_candidates`` keys drawn from
    ``random.Random(seed)`` (the same draws in every mode), one of them, at a random place among
    the candidates, hidden in the prompt, and the choice of the candidate of highest log-likelihood
    (the first one on ties, so a model that sees nothing scores at chance). ``scorer`` (with
    :func:`score_requests`'s contract) replaces the model's scoring; ``max_length`` says where
    ``"base"`` truncates (default: the model's positions). ``generate`` also asks for the key by
    greedy generation (``exact``). Returns ``chance``, ``results`` ({mode: {length: {acc, n,
    truncated, key_cut}}}) and ``items`` (one record per prompt)."""
    for m in modes:
        if m not in MODES:
            raise Qwen25ValueError(f"unknown passkey mode {m!r}; known: {', '.join(MODES)}")
    if n_candidates < 2:
        raise Qwen25ValueError(f"n_candidates must be >= 2, got {n_candidates}")
    if trials < 1:
        raise Qwen25ValueError(f"trials must be >= 1, got {trials}")
    if model is None and scorer is None:
        raise Qwen25ValueError("passkey: give a model or a scorer")
    if generate and model is None:
        raise Qwen25ValueError("passkey: generate=True needs a model")
    rng = random.Random(seed)
    cases = []
    for length in lengths:
        for depth in depths:
            for trial in range(trials):
                keys = [str(k) for k in rng.sample(range(10000, 100000), n_candidates)]
                answer = rng.randrange(n_candidates)  # the key's place among the candidates
                cases.append((int(length), float(depth), trial, keys, answer))
    prompts = {}
    for length, depth, trial, keys, answer in cases:
        prompts[(length, depth, trial)] = passkey_prompt(tokenizer, keys[answer], length, depth)
    results: dict[str, dict[str, Any]] = {}
    items: list[dict[str, Any]] = []
    for mode in modes:
        results[mode] = {}
        for length in dict.fromkeys(int(x) for x in lengths):
            mine = [c for c in cases if c[0] == length]
            ctx: contextlib.AbstractContextManager[None]
            if mode == "base":
                limit = model_max_length(model) if (max_length == -1 and model is not None) else max_length
                limit = None if limit == -1 else limit
                ctx = contextlib.nullcontext()
            else:
                limit = None
                ctx = _with_config(model, long_context_config(model.config, length)) if model is not None \
                    else contextlib.nullcontext()
            reqs = []
            cut = []
            for length_, depth, trial, keys, _ in mine:
                ids, at = prompts[(length_, depth, trial)]
                conts = [tokenizer.encode(" " + k) for k in keys]
                room = len(ids) if limit is None else limit + 1 - max(len(c) for c in conts)
                lost = len(ids) > room
                if lost:
                    ids = ids[len(ids) - room:]
                reqs.append(Request(ids, conts))
                cut.append((lost, lost and at < len(prompts[(length_, depth, trial)][0]) - room))
            with ctx:
                if scorer is not None:
                    scored = scorer(reqs)
                else:
                    assert model is not None
                    scored = score_requests(model, reqs, batch_size=batch_size, max_length=None)
                gens = _greedy_keys(model, tokenizer, reqs) if generate else [None] * len(reqs)
            correct = 0
            for (length_, depth, trial, keys, answer), row, (trunc, key_cut), gen in zip(mine, scored, cut, gens):
                lls = [s[0] for s in row]
                pred = max(range(len(lls)), key=lambda j: (lls[j], -j))  # the first maximum
                ok = pred == answer
                correct += ok
                rec = {"mode": mode, "length": length_, "depth": depth, "trial": trial, "key": keys[answer],
                       "predicted": keys[pred], "correct": int(ok), "truncated": trunc, "key_cut": key_cut}
                if gen is not None:
                    rec["generated"] = gen
                    rec["exact"] = int(gen.strip().startswith(keys[answer]))
                items.append(rec)
            res = {"acc": correct / len(mine), "n": len(mine), "truncated": sum(c[0] for c in cut),
                   "key_cut": sum(c[1] for c in cut)}
            if generate:
                res["exact"] = sum(r["exact"] for r in items[-len(mine):]) / len(mine)
            results[mode][str(length)] = res
            if progress is not None:
                progress(len(mine))
    return {"chance": 1.0 / n_candidates, "n_candidates": n_candidates, "results": results, "items": items}


def _greedy_keys(model: Qwen2ForCausalLM | None, tokenizer: Tokenizer, reqs: Sequence[Request]) -> list[str]:
    from ..model.generation import generate

    assert model is not None
    out = []
    for r in reqs:
        ids = generate(model, [r.context], max_new_tokens=7)
        out.append(tokenizer.decode(ids[0, len(r.context):].tolist(), skip_special_tokens=True))
    return out
