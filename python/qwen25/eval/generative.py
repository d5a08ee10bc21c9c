"""Generative tasks: batched generation until stop strings, and GSM8K exact match.

``generate_until`` is lm-eval's ``generate_until`` request: greedy (or seeded sampling) generation
from each prompt, left-truncated to leave room for ``max_new_tokens``, stopped at an EOS id or as
soon as the text holds one of the ``until`` strings, and cut before the first of them.

GSM8K follows lm-eval's ``gsm8k`` task: ``Question: ...\\nAnswer:`` prompts with few-shot
examples joined by a blank line, stop strings ``Question:``, ``</s>``, ``<|im_end|>``, the two
extraction filters (:func:`gsm8k_extract`) and its exact match (case-insensitive after removing
commas, dollar signs, everything up to ``#### `` and a final period).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError
from ..train.modes import evaluating

if TYPE_CHECKING:
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer

__all__ = ["generate_until", "gsm8k_extract", "gsm8k_target", "gsm8k_exact_match", "gsm8k_prompt", "gsm8k",
           "GSM8K_STOP", "GSM8K_FEWSHOT"]

# lm-eval gsm8k.yaml, filter_list: strict-match (first "#### n") and flexible-extract (last number)
_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# lm-eval gsm8k.yaml, exact_match regexes_to_ignore
_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))

GSM8K_STOP = ("Question:", "</s>", "<|im_end|>")

# Few-shot examples in GSM8K's format, written for this package (the default when no few-shot
# file is given; lm-eval draws its five from GSM8K's train split).
GSM8K_FEWSHOT: tuple[dict[str, str], ...] = (
    {"question": "A baker makes 24 rolls in the morning and 18 in the afternoon. She sells 30 of them. How many "
                 "rolls are left?",
     "answer": "She makes 24 + 18 = <<24+18=42>>42 rolls.\nAfter selling 30, 42 - 30 = <<42-30=12>>12 are left.\n"
               "#### 12"},
    {"question": "Tom reads 15 pages a day. How many pages does he read in 2 weeks?",
     "answer": "Two weeks have 2 * 7 = <<2*7=14>>14 days.\nHe reads 15 * 14 = <<15*14=210>>210 pages.\n#### 210"},
    {"question": "A box holds 6 eggs. How many boxes are needed for 45 eggs?",
     "answer": "45 / 6 = 7.5, so 7 boxes are not enough.\nThey need 8 boxes.\n#### 8"},
    {"question": "Maria had $50. She bought 3 books at $9 each. How much money does she have now?",
     "answer": "The books cost 3 * 9 = <<3*9=27>>27 dollars.\nShe has 50 - 27 = <<50-27=23>>23 dollars left.\n"
               "#### 23"},
    {"question": "A train travels 60 miles per hour for 3 hours, then 40 miles per hour for 2 hours. How far does "
                 "it go?",
     "answer": "First it goes 60 * 3 = <<60*3=180>>180 miles.\nThen 40 * 2 = <<40*2=80>>80 miles.\n"
               "In all 180 + 80 = <<180+80=260>>260 miles.\n#### 260"},
)


def gsm8k_extract(text: str, mode: str = "strict") -> str | None:
    """The answer in a GSM8K completion, by lm-eval's filters: ``"strict"`` takes the number after
    the first ``#### ``; ``"flexible"`` takes the last number-like span. None when nothing matches
    (lm-eval's ``[invalid]``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if mode == "strict":
        found = _STRICT.findall(text)
        return found[0].strip() if found else None
    if mode == "flexible":
        groups = _FLEXIBLE.findall(text)
        if not groups:
            return None
        parts = [g for g in groups[-1] if g]
        return parts[0].strip() if parts else None
    raise Qwen25ValueError(f"gsm8k_extract: mode must be 'strict' or 'flexible', got {mode!r}")


def _normalise(s: str) -> str:
    for rx in _IGNORE:
        s = rx.sub("", s)
    return s.lower()


def gsm8k_target(answer: str) -> str:
    """The reference number of a GSM8K ``answer`` field (the text after ``#### ``)."""
    return _normalise(answer).strip() if "####" in answer else answer.strip()


def gsm8k_exact_match(prediction: str | None, answer: str) -> bool:
    """lm-eval's GSM8K exact match of an extracted ``prediction`` against the ``answer`` field
    (both normalised: no commas, no ``$``, nothing up to ``#### ``, no final period, lower case)."""
    if prediction is None:
        return False
    return _normalise(prediction) == _normalise(answer)


def gsm8k_prompt(question: str, fewshot: Sequence[dict[str, str]] = ()) -> str:
    """lm-eval's gsm8k prompt: ``Question: q\\nAnswer: a`` per example, blank lines between, the
    test question last with ``Answer:``."""
    shots = [f"Question: {ex['question']}\nAnswer: {ex['answer']}" for ex in fewshot]
    return "\n\n".join([*shots, f"Question: {question}\nAnswer:"])


def generate_until(model: Qwen2ForCausalLM, tokenizer: Tokenizer, prompts: Sequence[str], *,
                   until: Sequence[str] = (), max_new_tokens: int = 256, batch_size: int = 8,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                   progress: Any = None) -> list[str]:
    """The completion of every prompt (module docstring), in order. Prompts are batched by
    length; with ``do_sample`` each batch draws from its own generator seeded from ``seed`` and the
    batch's first prompt index, so results do not depend on what else runs."""
    from ..model.generation import generate_steps

    if max_new_tokens < 1:
        raise Qwen25ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if batch_size < 1:
        raise Qwen25ValueError(f"batch_size must be >= 1, got {batch_size}")
    if any(not s for s in until):
        raise Qwen25ValueError("an empty stop string")
    cfg = model.config
    limit = None if cfg.dual_chunk_attention_config is not None else cfg.max_positions - max_new_tokens
    if limit is not None and limit < 1:
        raise Qwen25ValueError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt in the model's "
                               f"{cfg.max_positions} positions")
    enc = []
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompt {i} must be a str, got {type(p).__name__}")
        ids = tokenizer.encode(p)
        if not ids:
            raise Qwen25ValueError(f"prompt {i} is empty")
        enc.append(ids[-limit:] if limit is not None else ids)
    order = sorted(range(len(prompts)), key=lambda i: (-len(enc[i]), i))
    out = [""] * len(prompts)
    hold = max((len(s) for s in until), default=0)
    nvocab = tokenizer.vocab_size
    with evaluating(model):
        for a in range(0, len(order), batch_size):
            idx = order[a:a + batch_size]
            s = None if seed is None else seed * 1_000_003 + idx[0]
            steps = generate_steps(model, [enc[i] for i in idx], max_new_tokens=max_new_tokens, do_sample=do_sample,
                                   temperature=temperature, top_p=top_p, seed=s)
            next(steps)
            decs = [tokenizer.incremental_decoder(skip_special_tokens=False) for _ in idx]
            texts = [""] * len(idx)
            done = [False] * len(idx)
            for nxt, finished in steps:
                for r, tok in enumerate(nxt.tolist()):
                    if done[r]:
                        continue
                    if bool(finished[r]):  # an EOS id: not part of the text
                        done[r] = True
                        continue
                    # an id past the tokenizer (the embedding's padding rows) has no text: U+FFFD
                    texts[r] += decs[r].step(int(tok)) if tok < nvocab else "\ufffd"
                    tail = texts[r][-(hold + 16):] if hold else ""
                    if hold and any(u in tail for u in until):
                        done[r] = True
                if all(done):
                    break
            for r, i in enumerate(idx):
                t = texts[r] if done[r] else texts[r] + decs[r].flush()
                for u in until:  # cut before the first stop string, as lm-eval
                    t = t.split(u)[0]
                out[i] = t
            if progress is not None:
                progress(len(idx))
    return out


def gsm8k(model: Qwen2ForCausalLM, tokenizer: Tokenizer, items: Sequence[dict[str, Any]], *,
          fewshot: Sequence[dict[str, str]] | None = None, num_fewshot: int = 5, max_new_tokens: int = 256,
          batch_size: int = 8, until: Sequence[str] = GSM8K_STOP, progress: Any = None) -> dict[str, Any]:
    """GSM8K exact match (greedy). ``items`` have ``question`` and ``answer`` (the dataset's
    solution ending in ``#### n``, or just the number). ``fewshot`` examples (same fields; default
    :data:`GSM8K_FEWSHOT`) are prepended, the first ``num_fewshot`` of them.

    Returns ``exact_match_strict``, ``exact_match_flexible``, ``n`` and per item ``completion``,
    ``strict``, ``flexible`` (extracted answers), ``target`` and ``correct_strict``/``correct_flexible``."""
    if not items:
        raise Qwen25ValueError("gsm8k: no items")
    shots = list(GSM8K_FEWSHOT if fewshot is None else fewshot)[:num_fewshot]
    for j, ex in enumerate(shots):
        if not isinstance(ex, dict) or not isinstance(ex.get("question"), str) or not isinstance(ex.get("answer"), str):
            raise Qwen25ValueError(f"few-shot example {j}: needs string 'question' and 'answer'")
    prompts = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("question"), str) or not isinstance(it.get("answer"), str):
            iid = it.get("id") if isinstance(it, dict) else None
            raise Qwen25ValueError(f"item {i}" + (f" (id {iid!r})" if iid is not None else "")
                                   + ": needs string 'question' and 'answer'")
        prompts.append(gsm8k_prompt(it["question"], shots))
    comps = generate_until(model, tokenizer, prompts, until=until, max_new_tokens=max_new_tokens,
                           batch_size=batch_size, progress=progress)
    strict = [gsm8k_extract(c, "strict") for c in comps]
    flex = [gsm8k_extract(c, "flexible") for c in comps]
    cs = [int(gsm8k_exact_match(p, it["answer"])) for p, it in zip(strict, items)]
    cf = [int(gsm8k_exact_match(p, it["answer"])) for p, it in zip(flex, items)]
    n = len(items)
    return {"exact_match_strict": sum(cs) / n, "exact_match_flexible": sum(cf) / n, "n": n,
            "completion": comps, "strict": strict, "flexible": flex,
            "target": [gsm8k_target(it["answer"]) for it in items], "correct_strict": cs, "correct_flexible": cf}
