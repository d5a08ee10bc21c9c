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
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "MixPlan",
    "Phase",
    "Pool",
    "WeightedInterleaver",
    "docs_for_token_quota",
    "interleave",
    "long_context_phase",
    "mix_jsonl",
    "plan_phase",
    "schedule",
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


def _uniform_array(seed: int, k: Any) -> Any:
    """:func:`_uniform` (salt 0) over a numpy uint64 array of ``k``, bit for bit."""
    import numpy as np

    def mix(x: Any) -> Any:
        with np.errstate(over="ignore"):
            x = x + np.uint64(0x9E3779B97F4A7C15)
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

    x = mix(np.uint64(_splitmix64(seed & _M64)) ^ k.astype(np.uint64))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


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


def docs_for_token_quota(lengths: Sequence[int] | np.ndarray, quota: float) -> tuple[int, int]:
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
    """One pre-training phase of the mix.

    ``weights``: target proportions per domain (None: the domains' natural sizes); ``tokens``:
    the phase's budget in the mix unit (None: the most that meets the proportions within
    ``max_repeat`` epochs); ``seq_len``: the sequence length it is packed to. With
    ``long_share``, that share of the phase comes from long documents (at least ``long_min``
    tokens, default ``seq_len``) and the rest from shorter ones, each part split over the
    domains by ``weights``: Qwen2.5-Turbo's long-context stages use 40% sequences at the stage's
    maximum length and 60% shorter (:func:`long_context_phase`). :func:`plan_phase` turns a phase
    into per-pool document counts."""

    name: str
    weights: dict[str, float] | None = None
    tokens: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    seq_len: int | None = None
    long_share: float | None = None
    long_min: int | None = None
    max_repeat: float | None = None
    temperature: float | None = None  # with weights=None: p ~ size^(1/T) instead of the sizes

    def __post_init__(self) -> None:
        if self.temperature is not None and not self.temperature > 0:
            raise Qwen25ValueError(f"phase {self.name!r}: temperature must be > 0, got {self.temperature}")
        if self.temperature is not None and self.weights is not None:
            raise Qwen25ValueError(f"phase {self.name!r}: give weights or temperature, not both")
        if self.weights is not None:
            object.__setattr__(self, "weights", _check_weights(self.weights, f"phase {self.name!r}"))
        if self.long_share is not None and not 0 <= self.long_share <= 1:
            raise Qwen25ValueError(f"phase {self.name!r}: long_share must be in [0, 1], got {self.long_share}")
        for k in ("seq_len", "long_min"):
            v = getattr(self, k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise Qwen25ValueError(f"phase {self.name!r}: {k} must be a positive int, got {v!r}")
        if self.tokens is not None and not (math.isfinite(self.tokens) and self.tokens >= 0):
            raise Qwen25ValueError(f"phase {self.name!r}: tokens must be a finite number >= 0, got {self.tokens!r}")
        if self.max_repeat is not None and not self.max_repeat > 0:
            raise Qwen25ValueError(f"phase {self.name!r}: max_repeat must be > 0, got {self.max_repeat}")


def long_context_phase(
    max_len: int = 32768,
    *,
    weights: Mapping[str, float] | None = None,
    tokens: float | None = None,
    max_len_share: float = 0.4,
) -> Phase:
    """Qwen2.5-Turbo's long-context stage: packed to ``max_len``, 40% of its tokens from
    documents of at least ``max_len`` tokens, 60% from shorter ones."""
    return Phase(
        f"long_context_{max_len}", dict(weights) if weights is not None else None, tokens, {},
        seq_len=max_len, long_share=max_len_share, long_min=max_len,
    )  # fmt: skip


@dataclass(frozen=True)
class Pool:
    """Documents of one domain a phase draws from (all, or its long or short ones), and how
    many to take (in order, cycling for repeats)."""

    name: str
    domain: str
    long: bool | None
    index: Any  # numpy int64 indices of the pool's documents in the domain
    size: float  # in the mix unit
    target: float
    quota: float  # in the mix unit
    docs: int  # documents to take, repeats included


MAX_EPOCHS = 1000
"""The most epochs a plan may take of any pool, whatever ``max_repeat`` allows. Repeated data
stops paying off after about 16 epochs (Muennighoff et al. 2023, "Scaling Data-Constrained Language
Models"), so a plan past 1,000 is a typo (``max_repeat = 1e9``), and it would write until the disk
is full."""

MAX_PLANNED = 1e15
"""The most tokens (or documents) a plan may hold: about 30 times the largest published pre-training
runs (36T tokens)."""


def _check_plan_size(phase: Phase, plan: MixPlan, sizes: Mapping[str, float], unit: str, cap: float) -> None:
    """Refuse a plan past :data:`MAX_EPOCHS` epochs of a pool or :data:`MAX_PLANNED` in all, naming
    the total key, the planned size and the pool that is repeated most."""
    where = f"phase {phase.name!r}" if phase.name else "[mix]"
    key = f"total_{unit}"
    asked = "not given (the most within max_repeat)" if phase.tokens is None else f"{phase.tokens:g}"
    total = plan.total_tokens
    worst = max(plan.epochs, key=lambda n: plan.epochs[n], default=None)
    if worst is not None and plan.epochs[worst] > MAX_EPOCHS:
        raise Qwen25ValueError(
            f"{where}: the planned mix is {total:.4g} {unit}, {plan.epochs[worst]:.4g} epochs of {worst!r} "
            f"({sizes[worst]:g} {unit}), past the bound of {MAX_EPOCHS} epochs of any source ({key} = {asked}, "
            f"max_repeat = {cap:g}): lower {key} or max_repeat"
        )
    if total > MAX_PLANNED:
        raise Qwen25ValueError(
            f"{where}: the planned mix is {total:.4g} {unit}, past the bound of {MAX_PLANNED:g} "
            f"({key} = {asked}, max_repeat = {cap:g}): lower {key}"
        )


def plan_phase(
    phase: Phase, lengths: Mapping[str, Any], *, unit: str = "tokens", max_repeat: float = 1.0
) -> tuple[list[Pool], MixPlan, list[str]]:
    """Pools, the plan behind them, and notes (targets that cannot be met) for one phase over
    domains whose documents have ``lengths`` tokens (numpy arrays, in document order).

    Without ``long_share`` a domain is one pool; with it, each domain is split into its long
    (``>= long_min`` tokens) and short documents, the long pools share ``long_share`` of the
    phase by the domain weights, the short ones the rest. Sizes count ``unit`` (tokens or
    documents); :func:`weights_from_proportions` sets each pool's quota within the repeat cap,
    and :func:`docs_for_token_quota` turns a token quota into documents."""
    import numpy as np

    if unit not in ("tokens", "docs"):
        raise Qwen25ValueError(f"unit must be 'tokens' or 'docs', got {unit!r}")
    cap = float(phase.max_repeat if phase.max_repeat is not None else max_repeat)
    notes: list[str] = []
    lens = {d: np.asarray(v, dtype=np.int64) for d, v in lengths.items()}
    if phase.weights is not None:
        unknown = sorted(set(phase.weights) - set(lens))
        if unknown:
            notes.append(f"phase {phase.name!r}: weights name domains with no documents: {unknown}")
        order = list(phase.weights) + [d for d in lens if d not in phase.weights]
        dw = {d: phase.weights.get(d, 0.0) for d in order}
    else:
        order = list(lens)
        dw = {d: float(lens[d].sum() if unit == "tokens" else len(lens[d])) for d in order}
        if phase.temperature is not None and sum(dw.values()) > 0:
            dw = temperature_weights(dw, phase.temperature)

    def size_of(idx: Any, d: str) -> float:
        return float(lens[d][idx].sum()) if unit == "tokens" else float(len(idx))

    empty = np.zeros(0, dtype=np.int64)
    parts: list[tuple[str, str, bool | None, Any]] = []
    if phase.long_share is None:
        parts = [(d, d, None, np.arange(len(lens.get(d, empty)), dtype=np.int64)) for d in order]
        targets = {d: dw[d] for d in order}
    else:
        lm = phase.long_min or phase.seq_len
        if lm is None:
            raise Qwen25ValueError(f"phase {phase.name!r}: long_share needs long_min or seq_len")
        targets = {}
        for is_long, share in ((True, phase.long_share), (False, 1.0 - phase.long_share)):
            tag = "long" if is_long else "short"
            pools: list[tuple[str, str, bool | None, Any]] = []
            for d in order:
                ln = lens.get(d, empty)
                idx = np.flatnonzero(ln >= lm if is_long else ln < lm).astype(np.int64)
                pools.append((f"{d}/{tag}", d, is_long, idx))
            wsum = sum(dw[d] for (_, d, _, idx) in pools if len(idx) and size_of(idx, d) > 0)
            if share > 0 and wsum <= 0:
                notes.append(f"phase {phase.name!r}: no {tag} documents (>= {lm} tokens)" if is_long
                             else f"phase {phase.name!r}: no documents shorter than {lm} tokens")  # fmt: skip
            for name, d, lg, idx in pools:
                ok = len(idx) and size_of(idx, d) > 0 and wsum > 0
                targets[name] = share * dw[d] / wsum if ok else 0.0
                parts.append((name, d, lg, idx))
    sizes = {name: (size_of(idx, d) if d in lens else 0.0) for name, d, _, idx in parts}
    if sum(targets.values()) <= 0:
        return [Pool(n, d, lg, idx, sizes[n], 0.0, 0.0, 0) for n, d, lg, idx in parts], MixPlan({}, {}, {}), notes
    t = _check_weights(targets, f"phase {phase.name!r}")
    starved = sorted({n for n, _, _, _ in parts if t.get(n, 0) > 0 and sizes[n] <= 0})
    if starved:
        notes.append(f"phase {phase.name!r}: no documents for {starved}: their share goes to the others")
    total = phase.tokens
    if total is None:  # the largest budget that meets the proportions within the repeat cap; an
        # empty pool cannot meet its share at all, so it does not limit the budget
        total = min((cap * sizes[n] / w for n, w in t.items() if w > 0 and sizes[n] > 0), default=0.0)
    plan = weights_from_proportions(sizes, t, total_tokens=float(total), max_repeat=cap)
    _check_plan_size(phase, plan, sizes, unit, cap)
    out = []
    for name, d, lg2, idx in parts:
        q = plan.tokens.get(name, 0.0)
        if unit == "tokens":
            k = docs_for_token_quota(lens[d][idx] if d in lens else empty, q)[0]
        else:
            k = int(round(q))
        out.append(Pool(name, d, lg2, idx, sizes[name], t.get(name, 0.0), q, k))
    return out, plan, notes


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
        """Jump to ``position``. Random mode counts the choices before it with numpy, a million
        at a time (each is a pure function of (seed, k)); smooth mode replays them."""
        if position < 0:
            raise Qwen25ValueError(f"position must be >= 0, got {position}")
        self.position, self.counts = 0, {n: 0 for n in self.names}
        if self.mode == "random" and position > 4096:
            import numpy as np

            cum = np.array(self._cum[:-1], dtype=np.float64)
            tot = np.zeros(len(self.names), dtype=np.int64)
            for lo in range(0, position, 1 << 20):
                u = _uniform_array(self.seed, np.arange(lo, min(position, lo + (1 << 20)), dtype=np.uint64))
                tot += np.bincount(np.searchsorted(cum, u, side="right"), minlength=len(self.names))
            self.counts = {n: int(c) for n, c in zip(self.names, tot)}
            self.position = position
            return
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


def schedule(counts: Mapping[str, int], *, seed: int = 0, mode: str = "smooth") -> Iterator[str]:
    """Each name exactly ``counts[name]`` times, mixed by a :class:`WeightedInterleaver` over the
    counts. When a name has had its count, the others go on with a fresh interleaver weighted
    by what each still needs, seeded ``seed`` + the number of names drawn so far; so the order
    is a pure function of (counts, seed, mode)."""
    live = {n: int(c) for n, c in counts.items() if c > 0}
    done: Counter[str] = Counter()
    it = WeightedInterleaver(live, seed=seed, mode=mode) if live else None
    while it is not None and live:
        if len(live) == 1:  # one name left: every choice is that name (no draw needed)
            (n,) = live
            for _ in range(live[n] - done[n]):
                yield n
            return
        n = it.next()
        if n not in live:
            continue
        done[n] += 1
        yield n
        if done[n] >= live[n]:
            del live[n]
            if live:
                it = WeightedInterleaver({m: live[m] - done[m] for m in live}, seed=seed + len(done), mode=mode)


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


def mix_jsonl(
    sources: Mapping[str, Sequence[str]],
    output: str,
    *,
    weights: Mapping[str, float] | None = None,
    temperature: float | None = None,
    unit: str = "tokens",
    total: float | None = None,
    max_repeat: float = 1.0,
    seed: int = 0,
    mode: str = "smooth",
    removed: str | None = None,
    text_field: str = "text",
    skip_bad: bool = False,
    tokenizer: Any = None,
    num_threads: int | None = None,
    batch_size: int = 1000,
    progress: bool = False,
) -> dict[str, Any]:
    """Mix JSONL sources into one JSONL file by target proportions (behind ``qwen25 data mix``).

    ``sources`` maps a name to its files. Proportions come from ``weights``, from
    ``temperature`` sampling over the source sizes, or (neither) from the natural sizes; sizes
    count ``unit``: ``"tokens"`` (``encode_ordinary`` of the Qwen2.5 tokenizer, what packing
    stores) or ``"docs"``. :func:`weights_from_proportions` sets each source's share of ``total``
    (default: the most output that meets the proportions within ``max_repeat`` epochs); each
    share becomes a count of documents taken in input order, cycling for repeats (within half a
    document of the share: :func:`docs_for_token_quota`), interleaved by a seeded :class:`WeightedInterleaver`.

    Every input record ends in one place: ``output`` (with a ``"_mix"`` field: source, file,
    line, repeat), or ``removed`` (stage ``"mix"``, reason ``"downsampled"``; or stage
    ``"read"`` for a bad line with ``skip_bad``, and ``"damaged_file"`` for the damage of a truncated
    ``.gz``/``.zst``, whose records before the damage are mixed, with a note). Returns the report;
    its ``"notes"`` (a damaged input, targets that cannot be met, such as a weighted source without
    records) are also printed to stderr.
    A weighted source without records whose share no other source can carry (so that the output
    would be empty) raises :class:`Qwen25ValueError` naming it."""
    import sys

    import numpy as np

    from .stage_io import Inputs, Output

    if unit not in ("tokens", "docs"):
        raise Qwen25ValueError(f"unit must be 'tokens' or 'docs', got {unit!r}")
    if weights is not None and temperature is not None:
        raise Qwen25ValueError("give weights or temperature, not both")
    if not sources:
        raise Qwen25ValueError("no sources")
    if weights is not None:
        unknown = sorted(set(weights) - set(sources))
        if unknown:
            raise Qwen25ValueError(f"weights name sources that are not given: {unknown} (sources: {sorted(sources)})")
    if total is not None and not (math.isfinite(total) and total >= 0):
        raise Qwen25ValueError(f"total must be a finite number >= 0, got {total!r}")
    tok = None
    if unit == "tokens":
        from ..tokenizer import Tokenizer

        tok = tokenizer or Tokenizer.qwen25()

    rem_f = Output(removed)  # both through the atomic writer (.tmp-NAME, renamed on close)
    out_f = Output(output)
    try:
        # pass 1: the size of every record
        sizes: dict[str, np.ndarray] = {}
        bad: dict[str, int] = {}
        damaged: list[str] = []  # truncated/corrupt compressed inputs read with skip_bad
        for name, files in sources.items():

            def on_bad(path: str, line: int, why: str, name: str = name, kind: str = "bad_line") -> None:
                rem_f.write({"source": name, "file": path, "line": line, "stage": "read", "reason": f"{kind}: {why}"})

            def on_damage(path: str, line: int, why: str, name: str = name) -> None:  # as the other stages list it
                on_bad(path, line, why, name, "damaged_file")

            reader = Inputs(files, text_field, skip_bad=skip_bad, on_bad=on_bad, on_damage=on_damage, progress=progress,
                            desc=f"size {name}", batch_size=batch_size, num_threads=num_threads)  # fmt: skip
            parts: list[np.ndarray] = []
            batch: list[str] = []

            def flush() -> None:
                if tok is None:
                    parts.append(np.ones(len(batch), dtype=np.int64))
                else:
                    _, offs = tok.encode_batch(batch, allowed_special=(), disallowed_special=(), num_threads=num_threads, flat=True)
                    parts.append(np.diff(offs.astype(np.int64)))
                batch.clear()

            for d in reader:
                batch.append(d.text)  # parsed in Rust; the record itself is parsed only when written
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
            sizes[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            bad[name] = reader.bad
            damaged += [f"{msg}; the records before the damage were kept" for msg in reader.damaged]
        size_tot = {n: float(s.sum()) for n, s in sizes.items()}
        targets = dict(weights) if weights is not None else None
        if temperature is not None:
            targets = temperature_weights(size_tot, temperature)
        # sizes are already in the unit (ones for documents), so the plan counts them as tokens
        pools, plan, notes = plan_phase(Phase("mix", targets, total, max_repeat=max_repeat), sizes, unit="tokens")
        notes = list(notes)
        quota = {p.name: p.docs for p in pools}
        t = {p.name: p.target for p in pools}
        # a source asked for a share but holding nothing: the others carry the mix (with a note),
        # or, when nothing can be taken, it is an error rather than an empty output
        empty = {
            n: f"source {n!r} has weight {w:g} but no " + ("records" if len(sizes[n]) == 0 else f"{unit} in its records")
            for n, w in (weights or {}).items() if w > 0 and size_tot[n] <= 0
        }  # fmt: skip
        if empty and sum(quota.values()) == 0 and (total is None or total > 0):
            raise Qwen25ValueError("the mix would be empty: " + "; ".join(
                f"{msg} (files: {', '.join(sources[n])})" for n, msg in empty.items()))  # fmt: skip
        notes += [msg for n, msg in empty.items() if not any(repr(n) in x for x in notes)]
        notes = damaged + notes
        for x in notes:
            print(f"mix: note: {x}", file=sys.stderr)

        # pass 2: interleave, cycling through a source for repeats
        def records(name: str) -> Iterator[tuple[int, Any]]:
            rep = 0
            while True:
                r = Inputs(sources[name], text_field, skip_bad=True, batch_size=batch_size)  # bad lines were listed in pass 1
                for d in r:
                    yield rep, d
                rep += 1

        iters = {n: records(n) for n, q in quota.items() if q > 0}
        taken: Counter[str] = Counter()
        size_out: Counter[str] = Counter()
        from tqdm import tqdm

        bar = tqdm(total=sum(quota.values()), desc="mix", unit="doc", disable=not progress, file=sys.stderr, dynamic_ncols=True)
        for n in schedule(quota, seed=seed, mode=mode):
            rep, d = next(iters[n])
            size_out[n] += int(sizes[n][taken[n] % len(sizes[n])])
            taken[n] += 1
            out_f.write({**d.rec, "_mix": {"source": n, "file": d.path, "line": d.line, "repeat": rep}})
            bar.update(1)
        bar.close()
        # records a down-sampled source did not reach
        downsampled: Counter[str] = Counter()
        for name, files in sources.items():
            k = 0
            for k, d in enumerate(Inputs(files, text_field, skip_bad=True, batch_size=batch_size), 1):
                if k > taken[name]:
                    downsampled[name] += 1
                    rem_f.write({"source": name, "file": d.path, "line": d.line, "stage": "mix", "reason": "downsampled"})
            if k != len(sizes[name]):
                raise Qwen25ValueError(f"source {name!r}: its files changed while the mix ran ({len(sizes[name])} records, then {k})")
    except BaseException:
        out_f.discard()
        rem_f.discard()
        raise
    out_f.close()
    rem_f.close()
    out_total = sum(size_out.values())
    return {
        "unit": unit,
        "total": plan.total_tokens,  # planned, in the unit
        "seed": seed,
        "mode": mode,
        "max_repeat": max_repeat,
        "capped": list(plan.capped),
        "notes": notes,
        "sources": {
            n: {
                "files": list(sources[n]),
                "docs_in": int(len(sizes[n])),
                "bad_lines": bad[n],
                "size_in": size_tot[n],
                "target": t.get(n, 0.0),
                "planned": plan.tokens.get(n, 0.0),
                "epochs": plan.epochs.get(n, 0.0),
                "quota_docs": quota[n],
                "docs_out": taken[n],
                "repeats": max(0, taken[n] - len(sizes[n])),
                "downsampled": downsampled[n],
                "size_out": size_out[n],
                "share_out": size_out[n] / out_total if out_total else 0.0,
            }
            for n in sources
        },
    }
