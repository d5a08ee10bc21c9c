"""The exact prefilter of mode qwen (``Decontaminator(prefilter=True)``, the default) only changes
the speed: every decision and every match list (witnesses, LCS, n-gram hits, token and character
windows) is the same with it off. And, checked independently, a record it lets through to no
tokenization shares no n-gram of token ids with any test item: the ids come from HF
``tokenizers`` built from the Qwen2.5 files (tests/conftest.py) over the pure-Python normaliser of
tests/parity/decontam_ref.py."""

from __future__ import annotations

import os
import random
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen25 import Tokenizer
from qwen25.data import Decontaminator, benchmarks

sys.path.insert(0, str(Path(__file__).parents[1] / "parity"))
import decontam_ref as ref  # noqa: E402

TOK = Tokenizer.qwen25()
WINDOWS = ("auto", None, 48)


def pair(test: list, **kw) -> tuple[Decontaminator, Decontaminator]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short test items are part of the cases
        return (Decontaminator(test, tokenizer=TOK, **kw),
                Decontaminator(test, tokenizer=TOK, prefilter=False, **kw))


def same(on: Decontaminator, off: Decontaminator, batch: list) -> list:
    """check and check_all agree with the prefilter on and off; returns check_all's lists."""
    a, b = on.check_all(batch), off.check_all(batch)
    assert a == b
    assert on.check(batch) == off.check(batch)
    return a


def hf_ids(hf, text: str) -> list[int]:
    return hf.encode(ref.normalize(text), add_special_tokens=False).ids


def shares(t: list[int], test_ids: list[list[int]], n: int) -> bool:
    grams = set().union(*(ref.grams(e, n) for e in test_ids if len(e) >= n))
    return any(g in grams for g in ref.grams(t, n))


# --- real text: site-packages files, HumanEval pasted in -----------------------------------------
def site_files(k: int, seed: int) -> list[str]:
    files = []
    for root in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        for dp, dns, fns in os.walk(root):
            dns.sort()
            files.extend(os.path.join(dp, f) for f in sorted(fns) if f.endswith((".py", ".md", ".rst", ".txt")))
    random.Random(seed).shuffle(files)
    out = []
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.strip():
            out.append(text[:12_000])
        if len(out) == k:
            break
    return out


def edited(rng: random.Random, s: str) -> str:
    """An item pasted whole, in part, or with edits (characters dropped, a name changed)."""
    kind = rng.randrange(4)
    if kind == 1:
        a = rng.randrange(len(s) // 2)
        return s[a : a + rng.randrange(60, 400)]
    if kind == 2:
        return "".join(c for c in s if rng.random() > 0.03)
    if kind == 3:
        return s.replace("return", "yield").replace("    ", "\t")
    return s


@pytest.fixture(scope="module")
def humaneval() -> list[str]:
    return [r["text"] for r in benchmarks.load("humaneval")]


@pytest.fixture(scope="module")
def real_corpus(humaneval: list[str]) -> list[str]:
    rng = random.Random(16)
    docs = site_files(160, seed=3)
    for i in range(0, len(docs), 4):  # a quarter of the files get a HumanEval item pasted in
        at = rng.randrange(len(docs[i]) + 1)
        docs[i] = docs[i][:at] + "\n" + edited(rng, rng.choice(humaneval)) + "\n" + docs[i][at:]
    return docs


@pytest.mark.parametrize("window", WINDOWS)
def test_real_text_same_matches(humaneval: list[str], real_corpus: list[str], window) -> None:
    on, off = pair(humaneval, window=window)
    got = same(on, off, real_corpus)
    passes = on._d.prefilter_passes(real_corpus)
    assert passes is not None  # the prefilter was used
    assert sum(passes) < len(passes) // 2  # most files were never tokenized ...
    assert sum(map(bool, got)) >= 10  # ... and pasted items were still found
    assert all(p for p, m in zip(passes, got) if m)


def test_rejected_real_text_shares_no_ngram(humaneval: list[str], real_corpus: list[str], hf_plain) -> None:
    on, _ = pair(humaneval)
    passes = on._d.prefilter_passes(real_corpus)
    test_ids = [hf_ids(hf_plain, t) for t in humaneval]
    rejected = [t for t, p in zip(real_corpus, passes) if not p]
    assert len(rejected) > 60
    for t in rejected[:60]:
        assert not shares(hf_ids(hf_plain, t), test_ids, 13)
    # and the ones it lets through include every file that does share one
    sharing = [t for t in real_corpus[::4] if shares(hf_ids(hf_plain, t), test_ids, 13)]
    assert sharing and all(on._d.prefilter_passes(sharing))


def test_check_records_same(humaneval: list[str], real_corpus: list[str], tmp_path) -> None:
    import json

    from qwen25.data.records import read_batches

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in real_corpus), encoding="utf-8")
    on, off = pair(humaneval)
    a = [m for b in read_batches(path) for m in on.check_records(b)]
    b = [m for b in read_batches(path) for m in off.check_records(b)]
    assert a == b and a == on.check_all(real_corpus) and sum(map(bool, a)) >= 10


# --- adversarial text ---------------------------------------------------------------------------
TEST_ITEMS = [
    "Le cafe\u0301 de la gare: ou\u0300 est-il? Cre\u0300me bru\u0302le\u0301e, s'il vous plai\u0302t.",
    "Le caf\u00e9 de la gare: o\u00f9 est-il? Cr\u00e8me br\u00fbl\u00e9e, s'il vous pla\u00eet.",
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
    "3.14159265358979323846264338327950288419716939937510",
    "!!!! ---- .... ???? ((((  )))) ////",  # punctuation only: empty after normalising
    "    \t\t\n\n   lots    of\n\n\nwhite   space   \t between   the    words   here   ok   ",
    "数据集的测试项目没有空格而且很长很长很长很长",
    "def f(x):\n    return [i * i for i in range(x) if i % 3 == 0]  # squares",
    "x",
    "ab cd",
]

PIECES = ["e\u0301", "\u00e9", "caf", "e", "\u0301", " ", "  ", "\t", "\n", "1", "2", "3", " 4", "10",
          "!", "...", "-", "(", ")", "数据", "集", "def f(x):", " return", " i", " for", "Ω", "\u2126",
          "A\u030a", "\u00c5", "ﬁ", "\u200b", "🙂"]


@st.composite
def records(draw) -> list[str]:
    out = []
    for _ in range(draw(st.integers(8, 20))):
        parts = draw(st.lists(st.sampled_from(PIECES), max_size=30))
        item = draw(st.sampled_from(TEST_ITEMS))
        a = draw(st.integers(0, len(item)))
        b = draw(st.integers(a, len(item)))
        piece = item[a:b]
        if draw(st.booleans()) and piece:
            k = draw(st.integers(0, len(piece) - 1))
            piece = piece[:k] + draw(st.sampled_from(PIECES)) + piece[k + 1 :]
        at = draw(st.integers(0, len(parts)))
        out.append("".join(parts[:at]) + piece + "".join(parts[at:]))
    return out + ["", " ", "!!", "1", "é", "e\u0301", "\n\n\n", "数"] + list(TEST_ITEMS)


@pytest.mark.parametrize("ngram", [1, 2, 5, 13])
@given(batch=records())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_adversarial_same_matches(ngram: int, batch: list[str]) -> None:
    for window in WINDOWS:
        on, off = DECONTAMINATORS[(ngram, window)]
        same(on, off, batch)
    on = DECONTAMINATORS[(ngram, "auto")][0]
    passes = on._d.prefilter_passes(batch)
    assert passes is not None and all(passes[-len(TEST_ITEMS):][i] for i in (0, 1, 2, 3, 7))


DECONTAMINATORS = {
    (n, w): pair(TEST_ITEMS, ngram=n, lcs_min=min(n, 5), window=w) for n in (1, 2, 5, 13) for w in WINDOWS
}


def test_nfc_variants_found_both_ways() -> None:
    """The test item with combining accents and the one precomposed are the same after NFC: a
    record holding either form matches both, with the prefilter on."""
    on, off = DECONTAMINATORS[(5, "auto")]
    for t in (TEST_ITEMS[0], TEST_ITEMS[1]):
        got = same(on, off, ["intro " + t + " outro"] * 4)[0]
        assert {m.test_index for m in got} >= {0, 1}


def test_rejects_unrelated_and_short() -> None:
    on, off = DECONTAMINATORS[(13, "auto")]
    batch = ["completely unrelated words about gardening and weather " * 3, "x", "ab cd", "", "1 2 3"] * 4
    assert same(on, off, batch) == [[]] * len(batch)
    assert on._d.prefilter_passes(batch) == [False] * len(batch)


def test_ids_and_no_prefilter_modes(humaneval: list[str]) -> None:
    on, off = pair(humaneval)
    ids = [on.test_tokens(i) for i in range(3)] + [TOK.encode("unrelated text here")]
    got = same(on, off, ids)
    assert all(got[:3]) and not got[3]
    for mode in ("lcs", "ngram"):
        on, off = pair(humaneval[:20], mode=mode)
        assert on._d.prefilter_passes(["x" * 1000]) is None
        same(on, off, humaneval[:5] + ["unrelated"])


def test_index_bytes_count_the_prefilter(humaneval: list[str]) -> None:
    on, off = pair(humaneval)
    assert on.index_bytes() > off.index_bytes()
    assert Decontaminator(humaneval, prefilter=False).prefilter is False
