"""Decontamination decides exactly as a brute-force reference (tests/parity/decontam_ref.py:
O(mn) LCS DP over all pairs, literal n-gram sets, unicodedata + HF tokenizers for text)."""

from __future__ import annotations

import random
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import decontam_ref as ref  # noqa: E402

from qwen25 import Qwen25ValueError  # noqa: E402
from qwen25._native import lcs_length  # noqa: E402
from qwen25.data import Decontaminator  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")


def got_witnesses(d: Decontaminator, t: list[int]) -> list[tuple[int, int | None]]:
    return [(m.test_index, m.lcs) for m in d.check_all([t])[0]]


# --- LCS itself -------------------------------------------------------------------------------
@given(st.lists(st.integers(0, 5), max_size=200), st.lists(st.integers(0, 5), max_size=200))
@settings(max_examples=200)
def test_bit_parallel_lcs_equals_dp(a, b):
    assert lcs_length(a, b) == ref.lcs_dp(a, b)


# --- every mode against the reference, on ids ---------------------------------------------------
@st.composite
def cases(draw):
    alpha = draw(st.sampled_from([2, 3, 6, 30]))
    base = draw(st.lists(st.integers(0, alpha - 1), min_size=0, max_size=160))
    rnd = random.Random(draw(st.integers(0, 2**32)))

    def edit(s):
        s = [x for x in s if rnd.random() > 0.15]
        if rnd.random() < 0.2:
            rnd.shuffle(s)
        if rnd.random() < 0.3:
            i = rnd.randrange(len(s) + 1)
            s = s[:i] + [rnd.randrange(alpha) for _ in range(rnd.randrange(20))] + s[i:]
        return s[: rnd.randrange(200)]

    test = [edit(base) for _ in range(draw(st.integers(1, 5)))]
    train = [edit(base) for _ in range(3)] + [[]]
    ngram = draw(st.sampled_from([1, 2, 3, 5, 13]))
    lcs_min = draw(st.integers(1, 20))
    ratio = draw(st.sampled_from([0.0, 0.3, 0.5, 0.6, 0.75, 1.0]))
    return test, train, ngram, lcs_min, ratio


@pytest.mark.parametrize("mode", ["qwen", "lcs", "ngram-ids"])
@given(case=cases(), window=st.one_of(st.none(), st.just("auto"), st.integers(1, 60)))
@settings(max_examples=60)
def test_modes_equal_reference(mode, case, window):
    test, train, ngram, lcs_min, ratio = case
    if mode != "qwen":
        window = None if window != "auto" else "auto"
    if mode == "ngram-ids":
        # ngram mode works on words: give every id its own word
        to_text = lambda s: " ".join(f"w{x}" for x in s)  # noqa: E731
        if all(len(e) < ngram for e in test):
            with pytest.raises(Qwen25ValueError, match="shorter than"):
                Decontaminator([to_text(e) for e in test], mode="ngram", ngram=ngram)
            return
        d = Decontaminator([to_text(e) for e in test], mode="ngram", ngram=ngram)
        for t in train:
            want = [i for i, _ in ref.witnesses(test, t, mode="ngram", ngram=ngram)]
            got = d.check_all([to_text(t)])[0]
            assert [m.test_index for m in got] == want
            for m in got:
                assert list(m.ngram_hits) == ref.shared_positions(t, test[m.test_index], ngram)
        return
    need = lcs_min if mode == "lcs" else ngram
    if all(len(e) < need for e in test):  # no item can ever match: refused up front
        with pytest.raises(Qwen25ValueError, match="shorter than"):
            Decontaminator(test, mode=mode, ngram=ngram, lcs_min=lcs_min, lcs_ratio=ratio, window=window)
        return
    d = Decontaminator(test, mode=mode, ngram=ngram, lcs_min=lcs_min, lcs_ratio=ratio, window=window)
    for t in train:
        want = ref.witnesses(test, t, mode=mode, ngram=ngram, lcs_min=lcs_min, ratio=ratio, window=window)
        assert got_witnesses(d, t) == want
        first = d.check([t])[0]
        assert (first.test_index if first else None) == (want[0][0] if want else None)
        for m in d.check_all([t])[0]:  # every witness satisfies the rule
            e = test[m.test_index]
            if mode == "qwen":
                assert list(m.ngram_hits) == ref.shared_positions(t, e, ngram)
            if window is None:
                assert ref.rule(ref.lcs_dp(t, e), len(t), len(e), lcs_min, ratio)


# --- built boundary cases -----------------------------------------------------------------------
def seq(n, start=0):
    return list(range(start, start + n))


def test_lcs_12_vs_13():
    e = seq(20)
    t12 = seq(12) + [999] * 8  # LCS 12, length 20: ratio 0.6 met, lcs_min not
    t13 = seq(13) + [999] * 7
    for mode in ("lcs", "qwen"):
        d = Decontaminator([e], mode=mode, ngram=12)
        assert ref.lcs_dp(t12, e) == 12 and ref.lcs_dp(t13, e) == 13
        assert d.check([t12]) == [None]
        assert d.check([t13])[0].lcs == 13


def test_ratio_exactly_0_6():
    e = seq(25)
    t = seq(15) + [999] * 10  # LCS 15 = 0.6 * 25 exactly
    d = Decontaminator([e], mode="lcs")
    assert d.check([t])[0].lcs == 15
    t14 = seq(14) + [999] * 11  # 14 < 15
    assert d.check([t14]) == [None]
    assert ref.rule(15, 25, 25, 13, 0.6) and not ref.rule(14, 25, 25, 13, 0.6)


def test_short_test_items_never_match():
    short = seq(12)
    d = Decontaminator([short], mode="qwen", ngram=5)
    assert d.check([short, short * 3, []]) == [None, None, None]
    # in lcs mode a 12-token item can never reach lcs_min=13: an error when all are that short,
    # a warning naming them when some are
    with pytest.raises(Qwen25ValueError, match="every test item is shorter than lcs_min=13"):
        Decontaminator([short], mode="lcs")
    from qwen25.data.decontam import ShortTestItemWarning

    with pytest.warns(ShortTestItemWarning, match=r"1 of 2 test items .*: #0"):
        d = Decontaminator([short, seq(30)], mode="lcs")
    assert d.short_items == [0]
    assert d.check([short, short * 3, []]) == [None, None, None]


def test_empty_or_all_short_test_sets_are_errors():
    with pytest.raises(Qwen25ValueError, match="test set is empty"):
        Decontaminator([])
    with pytest.raises(Qwen25ValueError, match="shorter than ngram=13 tokens"):
        Decontaminator(["def f(x): return x"])
    with pytest.raises(Qwen25ValueError, match="shorter than ngram=13 words"):
        Decontaminator(["only five words are here"], mode="ngram")
    from qwen25.data.decontam import ShortTestItemWarning

    long_item = {"id": "long", "text": " ".join(f"word{i}" for i in range(40))}
    with pytest.warns(ShortTestItemWarning, match="short-one"):
        Decontaminator([long_item, {"id": "short-one", "text": "tiny"}])


def test_shuffled_copy_high_bag_low_lcs():
    e = seq(100)
    t = list(reversed(e))  # same bag, LCS 1
    d = Decontaminator([e], mode="lcs")
    assert d.check([t]) == [None]
    assert d.check([e])[0].lcs == 100


def test_repeated_tokens_and_long_items():
    for n in (63, 64, 65, 127, 128, 129, 300):
        e = [7] * n
        t = [7] * (n // 2) + [1] * (n // 2)
        d = Decontaminator([e], mode="lcs", lcs_ratio=0.5)
        want = ref.witnesses([e], t, mode="lcs", ratio=0.5)
        assert got_witnesses(d, t) == want
        rnd = random.Random(n)
        e2 = [rnd.randrange(4) for _ in range(n)]
        t2 = [x for x in e2 if rnd.random() > 0.3]
        for window in (None, "auto"):
            d2 = Decontaminator([e2], mode="qwen", ngram=3, lcs_ratio=0.5, window=window)
            want2 = ref.witnesses([e2], t2, mode="qwen", ngram=3, ratio=0.5, window=window)
            assert got_witnesses(d2, t2) == want2


def test_empty_inputs():
    d = Decontaminator([[], seq(30)], mode="lcs")
    assert d.check([[], ""]) == [None, None]
    assert Decontaminator([seq(30)], mode="qwen").check([[], "", seq(12)]) == [None, None, None]


# --- independence of threads, batch size and order ---------------------------------------------
def test_thread_batch_order_independence():
    rnd = random.Random(5)
    base = [rnd.randrange(10) for _ in range(400)]
    test = [[x for x in base[i : i + 80] if rnd.random() > 0.2] for i in range(0, 320, 20)]
    train = [[x for x in base[i : i + 60] if rnd.random() > 0.3] for i in range(0, 340, 7)]
    for mode in ("qwen", "lcs"):
        d = Decontaminator(test, mode=mode, ngram=4)
        one = d.check_all(train, num_threads=1)
        assert any(one)
        assert d.check_all(train, num_threads=4) == one
        pieces = [d.check_all(train[i : i + 3], num_threads=2) for i in range(0, len(train), 3)]
        assert [x for p in pieces for x in p] == one
        perm = list(range(len(train)))
        rnd.shuffle(perm)
        shuffled = d.check_all([train[i] for i in perm], num_threads=3)
        assert [shuffled[perm.index(i)] for i in range(len(train))] == one


# --- text: normalisation + tokenization against unicodedata + HF tokenizers --------------------
assigned = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cn", "Co")
).filter(lambda c: unicodedata.category(c) != "Cn")


@given(st.text(alphabet=assigned, max_size=60) | st.text(alphabet=" \t\n\x1c,.;!?-_()[]$+<=>^`|~abcXYZ0123é", max_size=60))
@settings(max_examples=300)
def test_normalisation_equals_unicodedata(text):
    from qwen25.data.decontam import normalize

    assert normalize(text) == ref.normalize(text)


@given(st.text(alphabet=assigned, max_size=60) | st.text(alphabet=" \t\n,.;!?-ABCabcé", max_size=60))
@settings(max_examples=300)
def test_ngram_words_equal_reference(text):
    from qwen25._native import decontam_words

    assert [w for w, _, _ in decontam_words(text)] == ref.words(text)


def test_humaneval_text_qwen_mode_vs_reference(hf_tok):
    from qwen25.data import benchmarks

    he = benchmarks.load("humaneval")[:40]
    d = Decontaminator(he, window=None)
    d_auto = Decontaminator(he)  # window="auto"
    ref_test = [hf_tok.encode(ref.normalize(r["text"]), add_special_tokens=False).ids for r in he]
    for i in range(len(he)):
        assert d.test_tokens(i) == ref_test[i]
    rnd = random.Random(0)
    train = []
    for r in he[:15]:
        words = r["text"].split(" ")
        kept = [w for w in words if rnd.random() > rnd.choice([0.05, 0.3, 0.6])]
        train.append(" ".join(kept))
    train += ["def add(a, b):\n    return a + b\n", "", "x" * 50]
    # embedded in a longer file: the whole-record rule may not see them, the aligned window does
    host = "\n".join(f"def helper_{i}(value):\n    return value * {i} + {i * 7}\n" for i in range(60))
    train += [host[:2000] + "\n" + r["text"] + "\n" + host[2000:] for r in he[15:20]]
    got = d.check_all(train)
    got_auto = d_auto.check_all(train)
    for t, g, ga in zip(train, got, got_auto):
        t_ids = hf_tok.encode(ref.normalize(t), add_special_tokens=False).ids
        assert [(m.test_index, m.lcs) for m in g] == ref.witnesses(ref_test, t_ids, mode="qwen")
        assert [(m.test_index, m.lcs) for m in ga] == ref.witnesses(ref_test, t_ids, mode="qwen", window="auto")
        for m in ga:  # the character window is the part of t the rule was judged on
            s, e = m.window
            a, b = m.token_window
            w_ids = hf_tok.encode(ref.normalize(t[s:e]), add_special_tokens=False).ids
            assert ref.lcs_dp(w_ids, ref_test[m.test_index]) >= m.lcs - 2  # token edges may re-merge
            assert len(ref.normalize(t[s:e])) <= len(ref.normalize(t)) and b - a <= len(t_ids)
    for i, ga in enumerate(got_auto[-5:]):  # every embedded item is caught, and its window holds it
        m = ga[0]
        item = he[15 + i]["text"]
        s, e = m.window
        assert m.test_index == 15 + i
        at = train[-5 + i].index(item)
        assert s <= at and at + len(item) <= e
    assert sum(bool(g) for g in got) >= 5  # the lightly edited copies are caught


def test_ngram_mode_text_and_cut():
    test = ["The quick brown fox jumps over the lazy dog near the river bank today"]
    d = Decontaminator(test, mode="ngram")
    train = "x " * 300 + "the QUICK brown fox, jumps over the lazy dog near the river bank today!" + " y" * 300
    m = d.check([train])[0]
    assert m is not None and m.lcs is None
    assert ref.shared_positions(ref.words(train), ref.words(test[0]), 13) == list(m.ngram_hits)
    s, e = m.spans[0][0], m.spans[-1][1]  # two 13-grams (the test has 14 words)
    assert train[s:e].startswith("the QUICK") and train[s:e].endswith("today!")
    pieces = Decontaminator.cut(train, m, margin=200)
    assert pieces == [train[: s - 200], train[e + 200 :]]


# --- bad inputs ---------------------------------------------------------------------------------
def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        Decontaminator(["a"], mode="nope")
    with pytest.raises(ValueError, match="window"):
        Decontaminator(["a"], mode="lcs", window=10)
    with pytest.raises(ValueError, match="lcs_ratio"):
        Decontaminator(["a"], lcs_ratio=1.5)
    with pytest.raises(Qwen25ValueError, match="ngram"):
        Decontaminator(["a"], ngram=0)
    with pytest.raises(ValueError, match="needs text"):
        Decontaminator([[1, 2, 3]], mode="ngram")
    d = Decontaminator([" ".join(f"w{i}" for i in range(30))])
    with pytest.raises(TypeError):
        d.check([3.5])
    with pytest.raises(ValueError, match="'body'"):
        d.check([{"text": "x"}], field="body")
    with pytest.raises(ValueError, match="unknown benchmark"):
        from qwen25.data import benchmarks

        benchmarks.load("nope")


def test_bad_token_id_lists_name_the_element():
    d = Decontaminator([list(range(30))], mode="lcs")
    for bad, shown in (([1, True, 3], "True"), ([1, -1], "-1"), ([1, 2**32], str(2**32)), (["a"], "'a'")):
        j = 1 if len(bad) > 1 else 0
        with pytest.raises(TypeError, match=rf"batch\[1\]\[{j}\] = {shown} is not a token id"):
            d.check([list(range(5)), bad])
    # a tuple of ids is a sequence of ids like a list
    assert d.check([tuple(range(30))])[0].lcs == 30
