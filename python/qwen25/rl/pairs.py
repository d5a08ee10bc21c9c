"""Preference pairs from the SFT model's own samples, labelled by execution feedback or answer
matching (the Qwen2.5 report's offline-RL data).

1. :func:`sample_responses`: k sampled responses per prompt from a model (chat template, seeded);
2. :func:`score_responses`: each response scored by a verifier: ``"math"`` (the answer extracted
   from the response equals the record's ``answer``: ``qwen25.rl.verify``), ``"code"`` (the
   response's program runs with the record's ``tests`` appended, in ``qwen25.sandbox``), or any
   callable ``(record, response) -> float`` (e.g. a reward model's score);
3. :func:`make_pairs`: per prompt, the best-scored response is chosen and the worst rejected,
   with their provenance. Prompts whose responses all score the same have no contrast: they are
   counted and listed in the report (``no_contrast``), never dropped silently.

Prompt records are dicts with ``prompt`` (text or chat messages), ``id`` (optional) and what
the verifier needs (``answer`` or ``tests``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import Qwen25ValueError
from ..train.modes import evaluating

__all__ = ["sample_responses", "score_responses", "make_pairs", "math_score", "code_score", "extract_code"]

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(response: str) -> str:
    """The last fenced code block of a response (```python ... ```), else the whole response."""
    blocks = _FENCE.findall(response)
    return blocks[-1] if blocks else response


def math_score(record: Mapping[str, Any], response: str) -> float:
    from .verify import extract_answer, math_equal

    if "answer" not in record:
        raise Qwen25ValueError(f"prompt {record.get('id', '?')!r}: the math verifier needs an 'answer'")
    return 1.0 if math_equal(extract_answer(response), str(record["answer"])) else 0.0


def code_score(record: Mapping[str, Any], response: str, *, timeout: float = 10.0, memory_mb: int = 512) -> float:
    from ..sandbox import run_python

    if "tests" not in record:
        raise Qwen25ValueError(f"prompt {record.get('id', '?')!r}: the code verifier needs 'tests'")
    program = extract_code(response) + "\n\n" + str(record["tests"]) + "\n"
    return 1.0 if run_python(program, timeout=timeout, memory_mb=memory_mb).status == "ok" else 0.0


_VERIFIERS: dict[str, Callable[[Mapping[str, Any], str], float]] = {"math": math_score, "code": code_score}


def score_responses(records: Sequence[Mapping[str, Any]], responses: Sequence[Sequence[str]],
                    verifier: str | Callable[[Mapping[str, Any], str], float]) -> list[list[float]]:
    """Scores [prompt][sample] from ``verifier`` ("math", "code" or a callable)."""
    fn = _VERIFIERS.get(verifier) if isinstance(verifier, str) else verifier
    if fn is None:
        raise Qwen25ValueError(f"unknown verifier {verifier!r}; use 'math', 'code' or a callable")
    if len(records) != len(responses):
        raise Qwen25ValueError(f"{len(records)} prompts but responses for {len(responses)}")
    return [[float(fn(rec, r)) for r in rs] for rec, rs in zip(records, responses)]


def _messages(prompt: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt and all(isinstance(m, Mapping) for m in prompt):
        return [dict(m) for m in prompt]
    raise Qwen25ValueError(f"{where}: 'prompt' must be a string or a list of messages")


def sample_responses(model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], *, k: int = 4,
                     max_new_tokens: int = 256, temperature: float = 1.0, top_p: float = 1.0,
                     seed: int = 0) -> list[list[str]]:
    """k sampled responses per prompt (the chat template's generation prompt; sampling seeded per
    prompt and sample, so a rerun gives the same responses)."""
    import torch

    if not (isinstance(k, int) and k >= 2):
        raise Qwen25ValueError(f"k must be an int >= 2 (a pair needs two responses), got {k!r}")
    end = tokenizer.token_to_id("<|im_end|>")
    out: list[list[str]] = []
    with evaluating(model):
        for i, rec in enumerate(records):
            ids = tokenizer.apply_chat_template(_messages(rec.get("prompt"), f"prompt {i}"),
                                                add_generation_prompt=True)
            batch = torch.tensor([ids] * k, dtype=torch.long, device=model.device)
            full = model.generate(batch, max_new_tokens=max_new_tokens, do_sample=True,
                                  temperature=temperature, top_p=top_p, seed=seed * 1_000_003 + i,
                                  stop=[end] if end is not None else None)
            rs = []
            for row in full[:, len(ids):].tolist():
                if end is not None and end in row:
                    row = row[: row.index(end)]
                rs.append(tokenizer.decode(row, skip_special_tokens=True))
            out.append(rs)
    return out


def make_pairs(records: Sequence[Mapping[str, Any]], responses: Sequence[Sequence[str]],
               scores: Sequence[Sequence[float]], *, source: str = "sft-samples",
               verifier: str = "") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(pair records for ``qwen25 dpo``/``qwen25 rm``, a report). Per prompt: chosen = the first
    best-scored response, rejected = the first worst-scored; ties at the top and bottom (no
    contrast) produce no pair and are reported."""
    if not (len(records) == len(responses) == len(scores)):
        raise Qwen25ValueError(f"{len(records)} prompts, {len(responses)} response lists, {len(scores)} score lists")
    pairs: list[dict[str, Any]] = []
    no_contrast: list[Any] = []
    for i, (rec, rs, sc) in enumerate(zip(records, responses, scores)):
        if len(rs) != len(sc) or len(rs) < 2:
            raise Qwen25ValueError(f"prompt {i}: {len(rs)} responses and {len(sc)} scores (need equal counts, >= 2)")
        hi = max(range(len(sc)), key=lambda j: (sc[j], -j))
        lo = min(range(len(sc)), key=lambda j: (sc[j], j))
        pid = rec.get("id", i)
        if sc[hi] == sc[lo]:
            no_contrast.append(pid)
            continue
        pairs.append({"prompt": rec["prompt"], "chosen": rs[hi], "rejected": rs[lo],
                      "provenance": {"source": source, "prompt_id": pid, "verifier": verifier, "k": len(rs),
                                     "chosen_sample": hi, "rejected_sample": lo, "chosen_score": sc[hi],
                                     "rejected_score": sc[lo], "scores": list(sc)}})
    report = {"prompts": len(records), "pairs": len(pairs), "no_contrast": len(no_contrast),
              "no_contrast_ids": no_contrast}
    return pairs, report
