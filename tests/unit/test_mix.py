"""Mixing: weights against hand-computed water-filling and temperature formulas; realized
proportions of the interleaver converge to the targets (binomial bound in random mode, within two
items in smooth mode); resuming continues exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen25.data.mix import (
    Phase,
    plan_phase,
    WeightedInterleaver,
    interleave,
    long_context_phase,
    temperature_weights,
    weights_from_proportions,
)
from qwen25.errors import Qwen25ValueError


def test_proportions_with_repeat_cap():
    # budget 100: web wants 50 (has 80), code wants 30 (has 20: 1.5 epochs), math wants 20 (has 4)
    plan = weights_from_proportions(
        {"web": 80, "code": 20, "math": 4}, {"web": 0.5, "code": 0.3, "math": 0.2}, total_tokens=100, max_repeat=2
    )
    # math capped at 8 tokens; its 12-token deficit goes to web:code as 5:3 -> web 57.5, code 34.5
    assert plan.capped == ("math",)
    assert plan.tokens["math"] == pytest.approx(8)
    assert plan.tokens["web"] == pytest.approx(50 + 12 * 5 / 8)
    assert plan.tokens["code"] == pytest.approx(30 + 12 * 3 / 8)
    assert plan.total_tokens == pytest.approx(100)
    assert plan.epochs["code"] == pytest.approx(34.5 / 20)
    assert sum(plan.weights.values()) == pytest.approx(1)
    # all capped: fewer tokens than asked
    plan = weights_from_proportions({"a": 1, "b": 1}, {"a": 1, "b": 1}, total_tokens=100, max_repeat=3)
    assert plan.total_tokens == pytest.approx(6) and plan.weights == {"a": 0.5, "b": 0.5}
    with pytest.raises(Qwen25ValueError, match="without a size"):
        weights_from_proportions({"a": 1}, {"b": 1})


def test_temperature_weights():
    w = temperature_weights({"a": 90, "b": 10}, 2.0)
    ra, rb = 0.9**0.5, 0.1**0.5
    assert w["a"] == pytest.approx(ra / (ra + rb)) and w["b"] == pytest.approx(rb / (ra + rb))
    assert temperature_weights({"a": 90, "b": 10}, 1.0) == pytest.approx({"a": 0.9, "b": 0.1})
    with pytest.raises(Qwen25ValueError):
        temperature_weights({"a": 1}, 0)


def test_long_context_phase():
    p = long_context_phase(32768, weights={"web": 3, "code": 1})
    assert (p.seq_len, p.long_share, p.long_min) == (32768, 0.4, 32768)
    assert p.weights == {"web": 0.75, "code": 0.25}
    with pytest.raises(Qwen25ValueError, match="long_share"):
        long_context_phase(1024, max_len_share=1.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([0.4, 0.25, 0.7]), st.sampled_from([1.0, 2.0, 3.0]))
def test_plan_phase_long_share_and_weights(seed, share, cap):
    """The long documents get `share` of the phase's tokens and each domain its weight within
    the long and the short part, to within one document each (checked by taking the planned
    documents in order, cycling, as the pipeline does)."""
    rng = np.random.default_rng(seed)
    lengths = {
        "web": rng.integers(1, 400, size=int(rng.integers(5, 60))),
        "code": rng.integers(50, 900, size=int(rng.integers(5, 40))),
    }
    lengths["web"][0] = 500  # at least one long document per domain
    lengths["code"][0] = 800
    phase = Phase("lc", {"web": 0.6, "code": 0.4}, None, {}, seq_len=300, long_share=share, max_repeat=cap)
    pools, plan, notes = plan_phase(phase, lengths, max_repeat=cap)
    assert not notes
    got = {}
    for p in pools:
        ln = lengths[p.domain][p.index]
        assert (ln >= 300).all() if p.long else (ln < 300).all()
        got[p.name] = sum(int(ln[k % len(ln)]) for k in range(p.docs))  # in order, cycling
        assert p.docs <= np.ceil(cap * len(ln)) + 1e-9  # the repeat cap
    total = sum(got.values())
    slack = 2 * max(int(v.max()) for v in lengths.values())
    long_tok = got["web/long"] + got["code/long"]
    assert abs(long_tok - share * total) <= slack
    # when no pool is capped, each domain gets its weight inside each part it has documents in
    size = {p.name: p.size for p in pools}
    if not plan.capped:
        for tag, part in (("long", long_tok), ("short", total - long_tok)):
            if size[f"web/{tag}"] and size[f"code/{tag}"]:
                assert abs(got[f"web/{tag}"] - 0.6 * part) <= slack
            else:  # a domain without documents in this part leaves it to the other
                assert got[f"web/{tag}"] + got[f"code/{tag}"] == part


WEIGHTS = st.dictionaries(st.sampled_from("abcdef"), st.floats(0.01, 10), min_size=1, max_size=6)


@settings(max_examples=30, deadline=None)
@given(WEIGHTS, st.integers(0, 2**32))
def test_smooth_mode_within_two_items_of_target(w, seed):
    it = WeightedInterleaver(w, seed=seed, mode="smooth")
    total = sum(w.values())
    for k in range(1, 400):
        it.next()
        for n in w:
            assert abs(it.counts[n] - w[n] / total * k) < 2


def test_random_mode_converges_binomially():
    w = {"web": 0.6, "code": 0.25, "math": 0.1, "books": 0.05}
    it = WeightedInterleaver(w, seed=123)
    n = 20000
    it.take(n)
    for k, p in w.items():
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(it.counts[k] / n - p) <= 5 * sd


@pytest.mark.parametrize("mode", ["random", "smooth"])
def test_same_seed_same_order_and_resume(mode):
    w = {"a": 0.5, "b": 0.3, "c": 0.2}
    full = WeightedInterleaver(w, seed=7, mode=mode).take(500)
    assert WeightedInterleaver(w, seed=7, mode=mode).take(500) == full
    assert WeightedInterleaver(w, seed=8, mode=mode).take(500) != full
    it = WeightedInterleaver(w, seed=7, mode=mode)
    head = it.take(123)
    saved = json.loads(json.dumps(it.state()))
    tail = WeightedInterleaver(w, seed=7, mode=mode, state=saved).take(377)
    assert head + tail == full
    s = WeightedInterleaver(w, seed=7, mode=mode)
    s.seek(200)
    assert s.take(300) == full[200:]
    if mode == "random":
        assert [WeightedInterleaver(w, seed=7).choice_at(k) for k in (0, 99, 499)] == [full[0], full[99], full[499]]
    with pytest.raises(Qwen25ValueError, match="seed"):
        WeightedInterleaver(w, seed=9, mode=mode, state=saved)


def test_interleave_sources_resume():
    srcs = {"a": [f"a{i}" for i in range(300)], "b": [f"b{i}" for i in range(300)]}
    w = {"a": 0.7, "b": 0.3}
    full = list(interleave(srcs, w, seed=3))
    assert len(full) >= 300  # stops when "a" runs out
    assert [x for n, x in full if n == "a"] == srcs["a"][: sum(n == "a" for n, _ in full)]
    mix = interleave(srcs, w, seed=3)
    head = [next(mix) for _ in range(100)]
    rest = list(interleave(srcs, w, seed=3, state=mix.state()))
    assert head + rest == full


def test_bad_weights():
    for bad in ({}, {"a": -1}, {"a": 0}, {"a": float("nan")}):
        with pytest.raises(Qwen25ValueError):
            WeightedInterleaver(bad)
    with pytest.raises(Qwen25ValueError, match="mode"):
        WeightedInterleaver({"a": 1}, mode="x")
    with pytest.raises(Qwen25ValueError, match="no source"):
        interleave({"a": []}, {"a": 1, "b": 1})


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from("abcde"), st.integers(0, 60), min_size=1, max_size=5), st.integers(0, 2**32),
       st.sampled_from(["smooth", "random"]))  # fmt: skip
def test_schedule_gives_each_name_its_count(counts, seed, mode):
    from collections import Counter

    from qwen25.data.mix import schedule

    order = list(schedule(counts, seed=seed, mode=mode))
    assert Counter(order) == Counter({k: v for k, v in counts.items() if v > 0})
    assert order == list(schedule(counts, seed=seed, mode=mode))  # a pure function of its inputs
    if mode == "smooth" and len([v for v in counts.values() if v]) == 2:
        a, b = (k for k, v in counts.items() if v)
        # until one name runs out, every prefix is within two of its share
        n = len(order)
        first_done = min(max(i for i, x in enumerate(order) if x == k) for k in (a, b))
        for k in range(1, first_done + 1):
            assert abs(order[:k].count(a) - k * counts[a] / n) <= 2


@pytest.mark.parametrize("seed", [0, 5, 2**40 + 3])
def test_random_seek_counts_as_replay(seed):
    """seek() in random mode counts with numpy; it must land where replaying the draws lands."""
    w = {"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.05}
    fast = WeightedInterleaver(w, seed=seed, mode="random")
    fast.seek(30_000)
    slow = WeightedInterleaver(w, seed=seed, mode="random")
    for _ in range(30_000):
        slow.next()
    assert fast.state() == slow.state()
    assert fast.take(100) == slow.take(100)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from("abcd"), st.integers(0, 40), min_size=1, max_size=4), st.integers(0, 2**32),
       st.sampled_from(["smooth", "random"]))  # fmt: skip
def test_schedule_is_the_interleavers_draws_as_documented(counts, seed, mode):
    """``schedule`` skips the draws once one name is left; the order is still the documented one:
    each choice of an interleaver over what each name still needs, a fresh one (seeded ``seed``
    + names drawn so far) whenever a name has had its count, choices of finished names skipped."""
    from qwen25.data.mix import schedule

    need = {n: c for n, c in counts.items() if c > 0}
    done = {n: 0 for n in need}
    want: list[str] = []
    it = WeightedInterleaver(dict(need), seed=seed, mode=mode) if need else None
    while it is not None and len(want) < sum(need.values()):
        n = it.next()
        if n not in need or done[n] >= need[n]:
            continue
        done[n] += 1
        want.append(n)
        if done[n] == need[n]:
            left = {m: need[m] - done[m] for m in need if done[m] < need[m]}
            drawn = sum(1 for m in done if done[m] > 0)
            if left:
                it = WeightedInterleaver(left, seed=seed + drawn, mode=mode)
    assert list(schedule(counts, seed=seed, mode=mode)) == want
