"""Code generation scored by execution: HumanEval pass@k.

Each problem's prompt (a signature and docstring) is completed ``n`` times, greedily when ``n`` is
1, else by seeded sampling (temperature 0.8, top-p 0.95, the Codex paper's setting for pass@10 and
more). A completion is cut at the first of the Codex stop sequences (``\\nclass``, ``\\ndef``,
``\\n#``, ``\\nif``, ``\\nprint``), then ``prompt + completion + test + check(entry_point)`` runs
in :func:`qwen25.sandbox.run_tests`: its own process tree, a wall-clock time limit, an
address-space limit, no network, a temporary working directory. pass@k is the unbiased estimator
of the Codex paper, averaged over problems.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError

if TYPE_CHECKING:
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer

__all__ = ["pass_at_k", "HUMANEVAL_STOP", "check_program", "execute", "humaneval"]

HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def _count(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Qwen25ValueError(f"pass_at_k: {name} must be an int, got {v!r}")
    return v


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from ``n`` samples of which ``c`` passed:
    ``1 - C(n - c, k) / C(n, k)`` (exact in rational arithmetic, then rounded once)."""
    n, c, k = _count(n, "n"), _count(c, "c"), _count(k, "k")
    if n < 1:
        raise Qwen25ValueError(f"pass_at_k: n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise Qwen25ValueError(f"pass_at_k: c must be in 0..n ({n}), got {c}")
    if not 1 <= k <= n:
        raise Qwen25ValueError(f"pass_at_k: k must be in 1..n ({n}), got {k}")
    if n - c < k:
        return 1.0
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def check_program(problem: dict[str, Any], completion: str) -> str:
    """The program HumanEval runs for a completion: prompt, completion, tests, the check call."""
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})\n"


def execute(problems: Sequence[dict[str, Any]], completions: Sequence[str], *, timeout: float = 10.0,
            memory_mb: int = 1024, workers: int = 2) -> list[dict[str, Any]]:
    """Run each (problem, completion) in the sandbox; per pair ``passed``, ``status`` and
    ``detail`` (why it failed), in order."""
    from ..sandbox import run_python

    if len(problems) != len(completions):
        raise Qwen25ValueError(f"{len(problems)} problems but {len(completions)} completions")

    def one(pc: tuple[dict[str, Any], str]) -> dict[str, Any]:
        res = run_python(check_program(*pc), timeout=timeout, memory_mb=memory_mb)
        return {"passed": res.passed, "status": res.status, "detail": res.detail or res.stderr[-300:]}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, zip(problems, completions)))


def _check_problem(p: Any, i: int) -> None:
    if not isinstance(p, dict):
        raise Qwen25ValueError(f"problem {i}: expected a dict, got {type(p).__name__}")
    for key in ("prompt", "test", "entry_point"):
        if not isinstance(p.get(key), str):
            iid = p.get("task_id", p.get("id"))
            raise Qwen25ValueError(f"problem {i}" + (f" ({iid})" if iid else "") + f": needs a string {key!r}")


def humaneval(model: Qwen2ForCausalLM, tokenizer: Tokenizer, problems: Sequence[dict[str, Any]], *,
              n: int = 1, k: Sequence[int] = (1,), max_new_tokens: int = 384, batch_size: int = 8,
              temperature: float = 0.8, top_p: float = 0.95, seed: int = 0, timeout: float = 10.0,
              memory_mb: int = 1024, workers: int = 2, progress: Any = None) -> dict[str, Any]:
    """pass@k over ``problems`` (dicts with ``prompt``, ``test``, ``entry_point``, and ``task_id``).

    Returns ``pass@k`` for every k <= n, ``n_samples``, ``n`` (problems) and per problem the
    ``completions``, their ``passed`` flags and ``status``es, ``num_correct`` and ``pass@1``."""
    from .generative import generate_until

    if not problems:
        raise Qwen25ValueError("humaneval: no problems")
    for i, p in enumerate(problems):
        _check_problem(p, i)
    if n < 1:
        raise Qwen25ValueError(f"humaneval: n must be >= 1, got {n}")
    ks = sorted({int(x) for x in k if int(x) <= n}) or [1]
    prompts = [p["prompt"] for p in problems for _ in range(n)]
    comps = generate_until(model, tokenizer, prompts, until=HUMANEVAL_STOP, max_new_tokens=max_new_tokens,
                           batch_size=batch_size, do_sample=n > 1, temperature=temperature, top_p=top_p,
                           seed=seed if n > 1 else None, progress=progress)
    runs = execute([p for p in problems for _ in range(n)], comps, timeout=timeout, memory_mb=memory_mb,
                   workers=workers)
    per: list[dict[str, Any]] = []
    for i, p in enumerate(problems):
        mine = runs[i * n:(i + 1) * n]
        c = sum(r["passed"] for r in mine)
        per.append({"task_id": p.get("task_id", p.get("id")), "completions": comps[i * n:(i + 1) * n],
                    "passed": [r["passed"] for r in mine], "status": [r["status"] for r in mine],
                    "num_correct": c, "pass@1": pass_at_k(n, c, 1)})
    out: dict[str, Any] = {"n": len(problems), "n_samples": n}
    for kk in ks:
        out[f"pass@{kk}"] = sum(pass_at_k(n, r["num_correct"], kk) for r in per) / len(per)
    out["problems"] = per
    return out
