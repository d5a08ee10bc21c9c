"""Domain mixing: sampling weights per phase, and a deterministic, seekable weighted interleaver.

Weights come either from target proportions (up/down-sampling each source, with a cap on how
many times a source may be repeated; the deficit of a capped source is spread over the others in
proportion to their targets) or from temperature sampling (p_i ~ n_i^(1/T)). A
:class:`Phase` holds one mix; :func:`long_context_phase` is Qwen2.5-Turbo's 40% max-length /
60% shorter mix.

:class:`WeightedInterleaver` turns weights into an endless stream of source choices:

- ``mode="random"``: draw k is a pure function of (seed, k) (counter-based splitmix64), so any
  draw is available in O(1) (``choice_at(k)``); proportions converge at the binomial rate;
- ``mode="smooth"``: low-discrepancy deficit scheduling, every prefix within two items of
  the target count of each source (tested); seeded tie-breaking; the state is the per-source counts.

Both give the same order for the same seed and resume exactly from :meth:`state`.

>>> from qwen25.data.mix import WeightedInterleaver
>>> it = WeightedInterleaver({"web": 0.7, "code": 0.3}, seed=0, mode="smooth")
>>> [it.next() for _ in range(10)].count("web")
7
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import Qwen25ValueError

__all__ = [
    "MixPlan",
    "Phase",
    "WeightedInterleaver",
    "docs_for_token_quota",
    "interleave",
    "long_context_phase",
    "temperature_weights",
    "weights_from_proportions",
]

_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _uniform(seed: int, k: int, salt: int = 0) -> float:
    """A uniform in [0, 1) that depends only on (seed, k, salt)."""
    x = _splitmix64(_splitmix64((seed ^ (salt * 0xD1B54A32D192ED03)) & _M64) ^ (k & _M64))
    return (x >> 11) / float(1 << 53)


def _check_weights(w: Mapping[str, float], what: str = "weights") -> dict[str, float]:
    if not w:
        raise Qwen25ValueError(f"{what}: no sources")
    out = {}
    for k, v in w.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise Qwen25ValueError(f"{what}: weight of {k!r} must be a finite number >= 0, got {v!r}")
        out[str(k)] = float(v)
    total = sum(out.values())
    if total <= 0:
        raise Qwen25ValueError(f"{what}: weights sum to 0")
    return {k: v / total for k, v in out.items()}


@dataclass(frozen=True)
class MixPlan:
    """Per source: sampling weight (share of the output), epochs (times its data is seen), tokens."""

    weights: dict[str, float]
    epochs: dict[str, float]
    tokens: dict[str, float]
    capped: tuple[str, ...] = ()

    @property
    def total_tokens(self) -> float:
        return sum(self.tokens.values())


def weights_from_proportions(
    sizes: Mapping[str, float],
    targets: Mapping[str, float],
    *,
    total_tokens: float | None = None,
    max_repeat: float = 4.0,
) -> MixPlan:
    """Up/down-sample sources to ``targets`` of a ``total_tokens`` budget (default: all data).

    No source is seen more than ``max_repeat`` epochs; a capped source's deficit goes to the
    uncapped ones in proportion to their targets (water-filling). When every source with a
    positive target is capped, the plan has fewer tokens than asked."""
    t = _check_weights(targets, "targets")
    missing = sorted(set(t) - set(sizes))
    if missing:
        raise Qwen25ValueError(f"targets name sources without a size: {missing}")
    for k, v in sizes.items():
        if v < 0 or not math.isfinite(v):
            raise Qwen25ValueError(f"size of {k!r} must be a finite number >= 0, got {v!r}")
    if max_repeat <= 0:
        raise Qwen25ValueError(f"max_repeat must be > 0, got {max_repeat}")
    total = float(sum(sizes[k] for k in t) if total_tokens is None else total_tokens)
    tokens = {k: 0.0 for k in t}
    capped: set[str] = {k for k in t if t[k] > 0 and sizes[k] == 0}
    free = {k for k in t if t[k] > 0} - capped
    remaining = total
    while free:
        share = sum(t[k] for k in free)
        want = {k: remaining * t[k] / share for k in free}
        over = {k for k in free if want[k] > max_repeat * sizes[k]}
        if not over:
            tokens.update(want)
            break
        for k in over:
            tokens[k] = max_repeat * sizes[k]
            remaining -= tokens[k]
        capped |= over
        free -= over
    got = sum(tokens.values())
    weights = {k: (v / got if got > 0 else 0.0) for k, v in tokens.items()}
    epochs = {k: (tokens[k] / sizes[k] if sizes[k] > 0 else 0.0) for k in t}
    return MixPlan(weights, epochs, tokens, tuple(sorted(capped)))


def docs_for_token_quota(lengths: Sequence[int], quota: float) -> tuple[int, int]:
    """``(documents, tokens)`` to take from a source whose documents have ``lengths`` tokens, to
    meet a token ``quota``: documents are taken in order, cycling from the first again for
    repeats, while the tokens taken so far are below the quota.

    The rule for the last document: the one that would cross the quota is taken when at least
    half of its tokens fit (``2 * (quota - taken) >= length``), so the tokens taken differ from
    the quota by at most half a document. Zero-length documents are taken while below the
    quota; a source without tokens gives nothing. Repeats never exceed ``ceil(quota / size)``
    passes, so a quota within ``max_repeat`` epochs keeps that cap.
    """
    import numpy as np

    lens = np.asarray(lengths, dtype=np.int64)
    if lens.ndim != 1 or (lens.size and int(lens.min()) < 0):
        raise Qwen25ValueError("lengths must be a 1-d sequence of token counts >= 0")
    q = float(quota)
    if not math.isfinite(q):
        raise Qwen25ValueError(f"quota must be finite, got {quota!r}")
    n = int(lens.size)
    size = int(lens.sum())
    if q <= 0 or size == 0:
        return 0, 0
    before = np.concatenate([[0], np.cumsum(lens)[:-1]])  # tokens before each document in a pass
    epoch = max(0, int(q // size) - 1)  # every earlier pass is taken whole
    while True:
        t = (epoch * size + before).astype(np.float64)
        take = (t < q) & (2.0 * (q - t) >= lens)
        if not take.all():
            j = int(np.argmin(take))
            return epoch * n + j, epoch * size + int(before[j])
        epoch += 1


def temperature_weights(sizes: Mapping[str, float], temperature: float) -> dict[str, float]:
    """p_i proportional to (n_i / N)^(1/T): T=1 keeps natural proportions, larger T flattens."""
    if not temperature > 0:
        raise Qwen25ValueError(f"temperature must be > 0, got {temperature}")
    nat = _check_weights(sizes, "sizes")
    raw = {k: (v ** (1.0 / temperature) if v > 0 else 0.0) for k, v in nat.items()}
    return _check_weights(raw, "sizes")


@dataclass(frozen=True)
class Phase:
    """One pre-training phase: a name, source weights and a token budget."""

    name: str
    weights: dict[str, float]
    tokens: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _check_weights(self.weights, f"phase {self.name!r}"))


def long_context_phase(max_len: int = 32768, *, tokens: int | None = None, max_len_share: float = 0.4) -> Phase:
    """Qwen2.5-Turbo's long-context mix: 40% sequences at ``max_len``, 60% shorter."""
    if not 0 <= max_len_share <= 1:
        raise Qwen25ValueError(f"max_len_share must be in [0, 1], got {max_len_share}")
    return Phase(
        f"long_context_{max_len}",
        {f"len_{max_len}": max_len_share, "shorter": 1.0 - max_len_share},
        tokens,
        {"max_len": max_len},
    )


class WeightedInterleaver:
    """Deterministic weighted stream of source names; see the module docs."""

    def __init__(
        self,
        weights: Mapping[str, float],
        *,
        seed: int = 0,
        mode: str = "random",
        state: Mapping[str, Any] | None = None,
    ) -> None:
        if mode not in ("random", "smooth"):
            raise Qwen25ValueError(f"mode must be 'random' or 'smooth', got {mode!r}")
        self.weights = _check_weights(weights)
        self.names = list(self.weights)
        self.seed, self.mode = int(seed), mode
        self._cum: list[float] = []
        acc = 0.0
        for n in self.names:
            acc += self.weights[n]
            self._cum.append(acc)
        self.position = 0
        self.counts = {n: 0 for n in self.names}
        if state is not None:
            self.load_state(state)

    def _pick(self, k: int) -> str:
        if self.mode == "random":
            u = _uniform(self.seed, k)
            for n, c in zip(self.names, self._cum):
                if u < c:
                    return n
            return self.names[-1]
        # smooth: largest deficit w_i * (k + 1) - count_i; seeded tie-break
        best, best_key = self.names[0], None
        for j, n in enumerate(self.names):
            key = (self.weights[n] * (k + 1) - self.counts[n], _uniform(self.seed, k, j + 1))
            if best_key is None or key > best_key:
                best, best_key = n, key
        return best

    def next(self) -> str:
        n = self._pick(self.position)
        self.position += 1
        self.counts[n] += 1
        return n

    def __iter__(self) -> Iterator[str]:
        while True:
            yield self.next()

    def take(self, n: int) -> list[str]:
        return [self.next() for _ in range(n)]

    def choice_at(self, k: int) -> str:
        """The k-th choice, in O(1) (random mode only: smooth mode depends on the counts)."""
        if self.mode != "random":
            raise Qwen25ValueError("choice_at needs mode='random'")
        return self._pick(k)

    def seek(self, position: int) -> None:
        """Jump to ``position``; the per-source counts are rebuilt by replaying the choices."""
        if position < 0:
            raise Qwen25ValueError(f"position must be >= 0, got {position}")
        self.position, self.counts = 0, {n: 0 for n in self.names}
        for _ in range(position):
            self.next()

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable state; ``WeightedInterleaver(..., state=s)`` resumes exactly."""
        return {"seed": self.seed, "mode": self.mode, "position": self.position, "counts": dict(self.counts), "weights": dict(self.weights)}

    def load_state(self, s: Mapping[str, Any]) -> None:
        if s.get("mode") != self.mode or int(s.get("seed", -1)) != self.seed:
            raise Qwen25ValueError("state was saved by an interleaver with another seed or mode")
        if {k: round(v, 12) for k, v in s.get("weights", {}).items()} != {k: round(v, 12) for k, v in self.weights.items()}:
            raise Qwen25ValueError("state was saved by an interleaver with other weights")
        self.position = int(s["position"])
        self.counts = {n: int(s["counts"].get(n, 0)) for n in self.names}


class interleave:  # noqa: N801 (used like a function)
    """Iterate (source, item) pairs from ``sources`` by a :class:`WeightedInterleaver`'s choices.

    ``state()`` (call it between items) resumes exactly when passed back with the same sources:
    each source is re-read and its consumed items skipped. The stream stops when the chosen
    source runs out.

    >>> mix = interleave({"a": range(100), "b": range(100)}, {"a": 0.5, "b": 0.5}, seed=1)
    >>> first = [next(iter(mix)) for _ in range(3)]
    """

    def __init__(
        self,
        sources: Mapping[str, Iterable[Any]],
        weights: Mapping[str, float],
        *,
        seed: int = 0,
        mode: str = "random",
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self._it = WeightedInterleaver(weights, seed=seed, mode=mode, state=state)
        self._iters: dict[str, Iterator[Any]] = {}
        for name in self._it.names:
            if name not in sources:
                raise Qwen25ValueError(f"no source named {name!r}")
            src = iter(sources[name])
            for _ in range(self._it.counts[name]):
                next(src, None)
            self._iters[name] = src
        self._gen = self._run()

    def _run(self) -> Iterator[tuple[str, Any]]:
        it, sentinel = self._it, object()
        while True:
            name = it._pick(it.position)
            item = next(self._iters[name], sentinel)
            if item is sentinel:
                return
            it.position += 1
            it.counts[name] += 1
            yield name, item

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._gen

    def __next__(self) -> tuple[str, Any]:
        return next(self._gen)

    def state(self) -> dict[str, Any]:
        return self._it.state()
