"""Rejection sampling for SFT data: sample k responses per prompt with the model, keep those a
verifier accepts, as new SFT records with their provenance.

    >>> from qwen25.train.rejection import rejection_sample
    >>> kept, report = rejection_sample(model, tok, tasks, k=8, temperature=0.7)   # doctest: +SKIP

A task is a dict (a JSONL record) with the prompt's ``messages`` and what checks a response:

* ``{"messages": [...], "answer": "42"}``: math. The final answer is pulled from the response
  (``\\boxed{}`` or ``####``, :func:`qwen25.rl.verify.extract_answer`) and compared with
  :func:`qwen25.rl.verify.math_equal` (numerically or symbolically).
* ``{"messages": [...], "tests": "assert f(1) == 2", "entry_point": "f"}``: code. The code (the
  last fenced ``python`` block of the response, else the whole response) runs with the tests in
  :mod:`qwen25.sandbox` (own namespaces, dropped privileges, time and memory limits); it passes
  when everything ran to its end. ``entry_point`` (optional) calls HumanEval's ``check(f)``.

Generation is the model's KV-cache :func:`qwen25.model.generation.generate`: prompts are rendered
with the chat template (generation prompt added), each repeated k times in left-padded batches,
sampled with the given temperature / top-p / top-k and a seed per batch, so a run is reproducible.
A kept record is ``{"messages": prompt + [{"role": "assistant", "content": response}],
"provenance": {...}}`` with the task's id or file:line, the sample index, the verifier and its
verdict, the sampling settings and the model's name. ``report`` counts prompts, candidates,
passes per verifier, and lists the prompts with no passing candidate.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..data.records import write_jsonl  # lives in records; re-exported here for existing imports
from ..errors import FormatError, Qwen25ValueError
from .modes import evaluating

if TYPE_CHECKING:
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer

__all__ = ["Verdict", "verify_response", "extract_code", "generate_candidates", "rejection_sample",
           "read_tasks", "write_jsonl"]

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    verifier: str  # "math" or "code"
    detail: str = ""


def extract_code(text: str) -> str:
    """The last fenced code block of ``text`` (```python ... ```), else the whole text."""
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


def task_kind(task: Mapping[str, Any], where: str = "task") -> str:
    if not isinstance(task, Mapping):
        raise Qwen25ValueError(f"{where}: a task must be a JSON object, got {type(task).__name__}")
    msgs = task.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise Qwen25ValueError(f"{where}: a task needs 'messages' (the prompt, a non-empty list)")
    has_answer, has_tests = "answer" in task, "tests" in task
    if has_answer == has_tests:
        raise Qwen25ValueError(f"{where}: a task needs exactly one of 'answer' (math) and 'tests' (code)")
    if has_answer and not isinstance(task["answer"], (str, int, float)):
        raise Qwen25ValueError(f"{where}: 'answer' must be a string or a number")
    if has_tests and not isinstance(task["tests"], str):
        raise Qwen25ValueError(f"{where}: 'tests' must be a string of Python")
    return "math" if has_answer else "code"


def verify_response(task: Mapping[str, Any], response: str, *, timeout: float = 10.0, memory_mb: int = 512
                    ) -> Verdict:
    """Check one response against its task (see the module docstring)."""
    kind = task_kind(task)
    if kind == "math":
        from ..rl.verify import extract_answer, math_equal

        got = extract_answer(response)
        if got is None:
            return Verdict(False, "math", "no final answer (\\boxed{} or ####)")
        ok = math_equal(got, str(task["answer"]))
        return Verdict(ok, "math", f"answer {got!r} {'=' if ok else '!='} reference {str(task['answer'])!r}")
    from ..sandbox import run_tests

    r = run_tests(extract_code(response), task["tests"], entry_point=task.get("entry_point"), timeout=timeout,
                  memory_mb=memory_mb)
    return Verdict(r.passed, "code", r.status if r.passed else f"{r.status}: {r.detail}"[:300])


def generate_candidates(model: Qwen2ForCausalLM, tokenizer: Tokenizer, prompts: Sequence[Sequence[Mapping[str, Any]]],
                        *, k: int, max_new_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.95,
                        top_k: int = 0, seed: int = 0, batch_size: int = 16) -> list[list[str]]:
    """k sampled responses per prompt (chat-templated messages), by batched KV-cache generation."""
    from ..model.generation import generate

    if not isinstance(k, int) or k < 1:
        raise Qwen25ValueError(f"k must be a positive int, got {k!r}")
    if batch_size < 1:
        raise Qwen25ValueError(f"batch_size must be >= 1, got {batch_size}")
    eos = [t for t in (tokenizer.token_to_id("<|im_end|>"), tokenizer.eos_token_id) if t is not None]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    jobs = [(i, j, list(tokenizer.apply_chat_template(list(p), add_generation_prompt=True)))
            for i, p in enumerate(prompts) for j in range(k)]
    out: list[list[str]] = [[""] * k for _ in prompts]
    with evaluating(model):
        for b, s in enumerate(range(0, len(jobs), batch_size)):
            part = jobs[s:s + batch_size]
            ids = generate(model, [p for _, _, p in part], max_new_tokens=max_new_tokens, do_sample=True,
                           temperature=temperature, top_p=top_p, top_k=top_k, seed=seed * 1_000_003 + b,
                           eos_token_id=eos or None, pad_token_id=pad)
            start = max(len(p) for _, _, p in part)
            for r, (i, j, _) in enumerate(part):
                new = ids[r, start:].tolist()
                cut = next((n for n, t in enumerate(new) if t in eos), len(new))
                out[i][j] = tokenizer.decode(new[:cut], skip_special_tokens=True)
    return out


def read_tasks(path: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """(where, task) for each record of a JSONL file; a bad record raises naming file:line."""
    from ..data.records import iter_objects

    p = os.fspath(path)
    out = []
    for line, obj, _ in iter_objects(p):
        where = f"{p}:{line}"
        try:
            task_kind(obj, where)
        except Qwen25ValueError as e:
            raise FormatError(str(e), p, line) from None
        out.append((where, obj))
    return out


def rejection_sample(model: Qwen2ForCausalLM | None, tokenizer: Tokenizer | None,
                     tasks: Iterable[Mapping[str, Any] | tuple[str, Mapping[str, Any]]], *, k: int = 4,
                     max_new_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.95, top_k: int = 0,
                     seed: int = 0, batch_size: int = 16, keep: str = "all", timeout: float = 10.0,
                     memory_mb: int = 512, model_name: str = "",
                     candidates: Callable[[list[list[Mapping[str, Any]]]], list[list[str]]] | None = None
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sample, verify, keep (see the module docstring). ``keep``: ``"all"`` passing candidates, or
    the ``"first"`` per prompt. ``candidates`` replaces the model's generation with any
    ``prompts -> k responses each`` callable (another engine, or recorded responses)."""
    if keep not in ("all", "first"):
        raise Qwen25ValueError(f"keep must be 'all' or 'first', got {keep!r}")
    items: list[tuple[str, Mapping[str, Any]]] = []
    for n, t in enumerate(tasks):
        where, task = t if isinstance(t, tuple) else (str(t.get("id", f"task {n + 1}")) if isinstance(t, Mapping)
                                                      else f"task {n + 1}", t)
        task_kind(task, where)
        items.append((where, task))
    prompts = [list(task["messages"]) for _, task in items]
    if candidates is not None:
        responses = candidates(prompts)
        if len(responses) != len(prompts) or any(len(r) != k for r in responses):
            raise Qwen25ValueError(f"candidates must return {k} responses for each of the {len(prompts)} prompts")
    else:
        if model is None or tokenizer is None:
            raise Qwen25ValueError("rejection_sample needs a model and a tokenizer (or candidates=)")
        responses = generate_candidates(model, tokenizer, prompts, k=k, max_new_tokens=max_new_tokens,
                                        temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                                        batch_size=batch_size)
    kept: list[dict[str, Any]] = []
    by_kind: dict[str, dict[str, int]] = {}
    unsolved: list[str] = []
    sampling = {"k": k, "temperature": temperature, "top_p": top_p, "top_k": top_k, "seed": seed,
                "max_new_tokens": max_new_tokens}
    for (where, task), prompt, resps in zip(items, prompts, responses):
        solved = False
        for j, resp in enumerate(resps):
            v = verify_response(task, resp, timeout=timeout, memory_mb=memory_mb)
            c = by_kind.setdefault(v.verifier, {"prompts": 0, "candidates": 0, "passed": 0, "kept": 0})
            c["candidates"] += 1
            c["prompts"] += j == 0
            if not v.passed:
                continue
            c["passed"] += 1
            if keep == "first" and solved:
                solved = True
                continue
            solved = True
            c["kept"] += 1
            kept.append({"messages": [dict(m) for m in prompt] + [{"role": "assistant", "content": resp}],
                         "provenance": {"source": where, "sample": j, "verifier": v.verifier, "verdict": v.detail,
                                        "model": model_name, **sampling}})
        if not solved:
            unsolved.append(where)
    report = {"prompts": len(items), "candidates": sum(len(r) for r in responses), "kept": len(kept),
              "by_verifier": by_kind, "unsolved": unsolved, **sampling}
    return kept, report
