"""Composable rewards for online RL: the reward model, verifiable checks (math answers, code run in
the sandbox) and rules (format, length), weighted and summed, every component kept for the logs.

    >>> from qwen25.rl.rewards import CompositeReward, RewardFunction, format_reward, math_correctness, per_sample
    >>> reward = CompositeReward([RewardFunction("math", per_sample(math_correctness), 1.0),
    ...                           RewardFunction("format", format_reward(), 0.1)])
    >>> total, parts = reward(records, texts, completions)                                # doctest: +SKIP

A reward function is batched: ``fn(records, texts, completions) -> one value per completion``,
where ``records[i]`` is the prompt record (its ``answer``, ``tests``, ...), ``texts[i]`` the decoded
completion and ``completions[i]`` the :class:`~qwen25.rl.rollouts.Completion` (token ids,
``finish_reason``). :func:`per_sample` turns ``fn(record, text) -> value`` into one. A value of
None means "does not apply" (a math check on a code prompt): it is left out of that component's
statistics and of the weighted sum; a completion to which no component applies has no reward
(NaN), gets advantage 0 and is counted (``unscored``).

Built in (:func:`build_rewards` makes them from a config): ``math`` (:func:`math_correctness`),
``code`` (:func:`code_execution`), ``format`` (:func:`format_reward`), ``length``
(:func:`length_penalty`), ``reward_model`` (:func:`reward_model_score`, a
:class:`~qwen25.rl.reward.RewardModel` folder).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Qwen25ValueError
from ..train.modes import evaluating

__all__ = ["RewardFunction", "CompositeReward", "per_sample", "math_correctness", "code_execution", "format_reward",
           "length_penalty", "reward_model_score", "build_rewards", "BUILTIN"]

BatchFn = Callable[[Sequence[Mapping[str, Any]], Sequence[str], Sequence[Any]], Sequence[float | None]]


def per_sample(fn: Callable[[Mapping[str, Any], str], float | None]) -> BatchFn:
    """A batched reward function from a per-sample one ``fn(record, text) -> float | None``."""

    def batched(records: Sequence[Mapping[str, Any]], texts: Sequence[str], completions: Sequence[Any]
                ) -> list[float | None]:
        return [fn(r, t) for r, t in zip(records, texts)]

    batched.__name__ = getattr(fn, "__name__", "reward")
    return batched


@dataclass(frozen=True)
class RewardFunction:
    """A named, weighted reward component. ``fn`` is batched (see the module docstring)."""

    name: str
    fn: BatchFn
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise Qwen25ValueError(f"RewardFunction: name must be a non-empty string, got {self.name!r}")
        if not callable(self.fn):
            raise Qwen25ValueError(f"reward {self.name!r}: fn must be callable, got {type(self.fn).__name__}")
        if not (isinstance(self.weight, (int, float)) and not isinstance(self.weight, bool)
                and math.isfinite(self.weight)):
            raise Qwen25ValueError(f"reward {self.name!r}: weight must be a finite number, got {self.weight!r}")


class CompositeReward:
    """Σ_k w_k r_k over the components that apply to a completion. Calling it returns
    ``(total [N], {name: [N]})`` as float tensors, NaN where a component (or, for the total,
    every component) does not apply; :meth:`metrics` summarises a call for the logs."""

    def __init__(self, functions: Sequence[RewardFunction]) -> None:
        functions = list(functions)
        if not functions:
            raise Qwen25ValueError("CompositeReward needs at least one reward function")
        names = [f.name for f in functions]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise Qwen25ValueError(f"CompositeReward: reward names must differ, {dup} repeat")
        for f in functions:
            if not isinstance(f, RewardFunction):
                raise TypeError(f"CompositeReward takes RewardFunction objects, got {type(f).__name__}")
        self.functions = functions

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.functions]

    def __call__(self, records: Sequence[Mapping[str, Any]], texts: Sequence[str], completions: Sequence[Any]
                 ) -> tuple[Any, dict[str, Any]]:
        import torch

        n = len(completions)
        if not (len(records) == len(texts) == n):
            raise Qwen25ValueError(f"CompositeReward: {len(records)} records, {len(texts)} texts, {n} completions")
        parts: dict[str, torch.Tensor] = {}
        for f in self.functions:
            values = list(f.fn(records, texts, completions))
            if len(values) != n:
                raise Qwen25ValueError(f"reward {f.name!r} returned {len(values)} values for {n} completions")
            col = torch.empty(n, dtype=torch.float64)
            for i, v in enumerate(values):
                if v is None:
                    col[i] = math.nan
                    continue
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    raise Qwen25ValueError(f"reward {f.name!r} gave {v!r} for completion {i} (prompt "
                                           f"{_where(records[i])}): not a number or None") from None
                if not math.isfinite(x):
                    raise Qwen25ValueError(f"reward {f.name!r} gave {x} for completion {i} (prompt "
                                           f"{_where(records[i])}): rewards must be finite (None: does not apply)")
                col[i] = x
            parts[f.name] = col
        stacked = torch.stack([parts[f.name] * f.weight for f in self.functions], 1)  # [N, K]
        total = torch.nansum(stacked, 1)
        total[torch.isnan(stacked).all(1)] = math.nan
        return total, parts

    @staticmethod
    def metrics(total: Any, parts: Mapping[str, Any]) -> dict[str, float]:
        """``reward`` and ``reward_std`` (over scored completions), ``unscored`` (how many have no
        reward), and per component ``rewards/NAME/mean``, ``/std`` and ``/applied`` (the fraction
        it applied to)."""
        import torch

        def stats(x: torch.Tensor) -> tuple[float, float]:
            ok = x[~torch.isnan(x)]
            if ok.numel() == 0:
                return math.nan, math.nan
            return float(ok.mean()), float(ok.std()) if ok.numel() > 1 else 0.0

        out: dict[str, float] = {}
        out["reward"], out["reward_std"] = stats(total)
        out["unscored"] = float(torch.isnan(total).sum())
        for name, x in parts.items():
            out[f"rewards/{name}/mean"], out[f"rewards/{name}/std"] = stats(x)
            out[f"rewards/{name}/applied"] = float((~torch.isnan(x)).double().mean()) if x.numel() else 0.0
        return out


def _where(record: Mapping[str, Any]) -> str:
    """Where a prompt record came from: ``file:line`` when the trainer read it, else its id."""
    if not isinstance(record, Mapping):
        return "?"
    return str(record.get("_where") or repr(record.get("id", "?")))


# --------------------------------------------------------------------------------- built-ins
def math_correctness(record: Mapping[str, Any], text: str) -> float | None:
    """1.0 when the completion's final answer (``\\boxed{}``, else after ``####``) equals the
    record's ``answer`` (``qwen25.rl.verify.math_equal``), else 0.0; None without an ``answer``."""
    from .verify import extract_answer, math_equal

    if record.get("answer") is None:
        return None
    got = extract_answer(text)
    return 1.0 if got is not None and math_equal(got, str(record["answer"])) else 0.0


def code_execution(*, timeout: float = 10.0, memory_mb: int = 512, workers: int | None = None) -> BatchFn:
    """1.0 when the completion's last fenced Python block (or the whole text), followed by the
    record's ``tests``, runs to the end in ``qwen25.sandbox`` (no error, no timeout), else 0.0;
    None without ``tests``. Programs run ``workers`` at a time (default: the CPU count)."""

    def run(records: Sequence[Mapping[str, Any]], texts: Sequence[str], completions: Sequence[Any]
            ) -> list[float | None]:
        from concurrent.futures import ThreadPoolExecutor

        from ..sandbox import run_python
        from .pairs import extract_code

        def one(i: int) -> float | None:
            tests = records[i].get("tests")
            if tests is None:
                return None
            program = extract_code(texts[i]) + "\n\n" + str(tests) + "\n"
            return 1.0 if run_python(program, timeout=timeout, memory_mb=memory_mb).status == "ok" else 0.0

        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            return list(pool.map(one, range(len(texts))))

    run.__name__ = "code_execution"
    return run


def format_reward(pattern: str = r"\\boxed\{", *, flags: int = re.DOTALL) -> BatchFn:
    """1.0 when ``pattern`` (a regular expression) is found in the completion, else 0.0."""
    try:
        rx = re.compile(pattern, flags)
    except re.error as e:
        raise Qwen25ValueError(f"format reward: bad pattern {pattern!r}: {e}") from None
    return per_sample(lambda record, text: 1.0 if rx.search(text) else 0.0)


def length_penalty(max_length: int, cache: int) -> BatchFn:
    """DAPO's soft overlong punishment on the completion's token count L: 0 up to
    ``max_length − cache``, then falling linearly to −1 at ``max_length``, −1 beyond."""
    if not (isinstance(max_length, int) and isinstance(cache, int) and 0 < cache <= max_length):
        raise Qwen25ValueError(f"length reward: need 0 < cache <= max_length, got cache={cache!r}, "
                               f"max_length={max_length!r}")

    def run(records: Sequence[Mapping[str, Any]], texts: Sequence[str], completions: Sequence[Any]) -> list[float]:
        free = max_length - cache
        out = []
        for c in completions:
            n = len(c.token_ids)
            out.append(0.0 if n <= free else (-1.0 if n > max_length else (free - n) / cache))
        return out

    run.__name__ = "length_penalty"
    return run


def reward_model_score(model: Any, *, batch_size: int = 8, pad_token_id: int = 0) -> BatchFn:
    """The reward model's score of prompt + completion (the ids as sampled: a chat completion
    ends in its ``<|im_end|>``), read at the last real token, in batches of ``batch_size``."""

    def run(records: Sequence[Mapping[str, Any]], texts: Sequence[str], completions: Sequence[Any]) -> list[float]:
        import torch

        device = next(model.parameters()).device
        rows = [list(c.prompt_ids) + list(c.token_ids) for c in completions]
        out: list[float] = []
        with evaluating(model):
            for a in range(0, len(rows), batch_size):
                chunk = rows[a:a + batch_size]
                width = max(len(r) for r in chunk)
                ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
                am = torch.zeros(len(chunk), width, dtype=torch.long)
                for i, r in enumerate(chunk):
                    ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
                    am[i, :len(r)] = 1
                out.extend(float(x) for x in model(ids.to(device), am.to(device)).float().cpu())
        return out

    run.__name__ = "reward_model"
    return run


BUILTIN = ("math", "code", "format", "length", "reward_model")


def build_rewards(spec: Mapping[str, Any], *, max_completion_length: int | None = None, device: Any = "cpu",
                  pad_token_id: int = 0) -> CompositeReward:
    """A :class:`CompositeReward` from a config mapping ``name -> weight`` or ``name -> {"weight":
    w, ...options}``. Names: ``math``; ``code`` (options ``timeout``, ``memory_mb``); ``format``
    (``pattern``); ``length`` (``cache``, and ``max_length``, default ``max_completion_length``);
    ``reward_model`` (``path``: a RewardModel / Qwen2ForSequenceClassification folder,
    ``batch_size``)."""
    if not isinstance(spec, Mapping) or not spec:
        raise Qwen25ValueError(f"rewards: expected a non-empty mapping of reward name -> weight, got {spec!r}")
    fns = []
    for name, value in spec.items():
        opts = dict(value) if isinstance(value, Mapping) else {"weight": value}
        weight = opts.pop("weight", 1.0)
        where = f"rewards.{name}"

        def take(allowed: Sequence[str], _opts: dict[str, Any] = opts, _where: str = where) -> dict[str, Any]:
            bad = sorted(set(_opts) - set(allowed))
            if bad:
                raise Qwen25ValueError(f"{_where}: unknown options {bad}; known: {sorted(allowed)}")
            return _opts

        if name == "math":
            take(())
            fn: BatchFn = per_sample(math_correctness)
        elif name == "code":
            fn = code_execution(**take(("timeout", "memory_mb", "workers")))
        elif name == "format":
            fn = format_reward(**take(("pattern",)))
        elif name == "length":
            o = take(("cache", "max_length"))
            max_len = o.get("max_length", max_completion_length)
            if max_len is None or "cache" not in o:
                raise Qwen25ValueError(f"{where}: needs cache (and max_length, or the run's max_completion_length)")
            fn = length_penalty(int(max_len), int(o["cache"]))
        elif name == "reward_model":
            o = take(("path", "batch_size"))
            if not o.get("path"):
                raise Qwen25ValueError(f"{where}: needs path (a reward model folder)")
            import torch

            from .reward import RewardModel

            rm = RewardModel.from_pretrained(o["path"], dtype=torch.float32, device=device)
            fn = reward_model_score(rm, batch_size=int(o.get("batch_size", 8)), pad_token_id=pad_token_id)
        else:
            raise Qwen25ValueError(f"rewards: unknown reward {name!r}; built in: {list(BUILTIN)} (pass other "
                                   "functions through the Python API: GRPOTrainer(reward_functions=...))")
        fns.append(RewardFunction(name, fn, weight))
    return CompositeReward(fns)
