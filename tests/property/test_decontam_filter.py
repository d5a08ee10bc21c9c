"""filter() partitions its input: every record lands in exactly one of clean/removed, in input
order, whatever the batch size, and removed records are exactly those check() flags."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qwen25.data import Decontaminator

TEST = [list(range(i, i + 30)) for i in range(0, 90, 30)]
D = Decontaminator(TEST, mode="lcs")


@given(
    st.lists(st.one_of(st.lists(st.integers(0, 100), max_size=40), st.sampled_from(TEST)), max_size=30),
    st.integers(1, 7),
    st.booleans(),
)
@settings(max_examples=80)
def test_filter_partitions_in_order(records, batch_size, removed_first):
    clean_it, removed_it = D.filter([{"text": r, "i": i} for i, r in enumerate(records)], batch_size=batch_size)
    if removed_first:
        removed = list(removed_it)
        clean = list(clean_it)
    else:
        clean = list(clean_it)
        removed = list(removed_it)
    ci = [r["i"] for r in clean]
    ri = [r["i"] for r, _ in removed]
    assert ci == sorted(ci) and ri == sorted(ri)
    assert sorted(ci + ri) == list(range(len(records)))
    flags = D.check(records)
    assert ri == [i for i, m in enumerate(flags) if m is not None]
    for (r, m), i in zip(removed, ri):
        assert m == flags[i]


def test_filter_is_lazy():
    seen = []

    def gen():
        for i in range(10_000):
            seen.append(i)
            yield "plain text number %d" % i

    clean, _ = D.filter(gen(), batch_size=8)
    next(clean)
    assert len(seen) <= 9
