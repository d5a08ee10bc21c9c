"""Exact and MinHash dedup against independent references: a pure-Python normaliser and
shingler, exact Jaccard on the same shingle sets, brute-force LSH banding with a Python
union-find, and the binomial law of the MinHash estimator / LSH detection curve."""

from __future__ import annotations

import math
import random
import unicodedata
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen25.data import ExactDeduplicator, MinHashDeduplicator
from qwen25.errors import Qwen25ValueError

# ---- pure-Python reference ------------------------------------------------------------------


def ref_normalize(text: str, lowercase=True, strip_punct=True, collapse_ws=True) -> str:
    if strip_punct:
        text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    if collapse_ws:
        text = " ".join(text.split())
    if lowercase:
        text = "".join(c.lower() for c in text)  # per char: no final-sigma context rule
    return text


# the shingling this reference spells out: qwen25's plain one (datatrove's is the default, checked
# in tests/parity/test_minhash_datatrove.py)
LEGACY = {"datatrove_words": False, "sign_short_docs": True}


def ref_shingles(text: str, n: int) -> list[str]:
    words = [w for w in ref_normalize(text).split(" ") if w]
    if not words:
        return []
    if len(words) < n:
        return [" ".join(words)]
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


class UF:
    def __init__(self, n):
        self.p = list(range(n))

    def find(self, x):
        while self.p[x] != x:
            x = self.p[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


def ref_lsh_clusters(sigs: np.ndarray, bands: int, rows: int) -> list[int]:
    """Documents sharing any band (equal row tuples) are joined; id = lowest index."""
    uf = UF(len(sigs))
    for j in range(bands):
        first: dict[tuple, int] = {}
        for i, s in enumerate(sigs):
            key = tuple(int(x) for x in s[j * rows : (j + 1) * rows])
            if key in first:
                uf.union(first[key], i)
            else:
                first[key] = i
    return [uf.find(i) for i in range(len(sigs))]


ALPHABET = st.sampled_from(list("abcdefgh ABC  ,.;!?-'\"\n\t") + ["é", "ß", "中", "文", "\u2014", "\u3000", "«", "»"])
texts_st = st.lists(st.text(ALPHABET, max_size=60), min_size=0, max_size=25)

# ---- shingles and normalisation -------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(ALPHABET, max_size=80), st.integers(1, 6))
def test_shingles_match_reference(text, n):
    d = MinHashDeduplicator(ngram=n, **LEGACY)
    assert d.shingles(text) == ref_shingles(text, n)


# ---- exact dedup ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(texts_st, st.booleans(), st.booleans(), st.booleans(), st.integers(1, 7))
def test_exact_dedup_matches_dict_reference(texts, lo, sp, cw, batch):
    # dictionary reference on the pure-Python normalised text; the first occurrence wins
    first: dict[str, int] = {}
    want = [first.setdefault(ref_normalize(t, lo, sp, cw), i) for i, t in enumerate(texts)]
    d = ExactDeduplicator(lowercase=lo, strip_punct=sp, collapse_ws=cw, num_threads=2)
    got: list[int] = []
    for k in range(0, len(texts), batch):  # shards fed one after another
        got += d.add(texts[k : k + batch]).tolist()
    assert got == want
    sizes = Counter(want)
    assert d.cluster_sizes(1) == sorted(sizes.items())
    assert d.cluster_sizes(2) == sorted((k, v) for k, v in sizes.items() if v >= 2)
    assert d.n_docs == len(texts) and d.n_unique == len(sizes)
    keep = ExactDeduplicator(lowercase=lo, strip_punct=sp, collapse_ws=cw).deduplicate(texts)
    assert keep.tolist() == [w == i for i, w in enumerate(want)]


def test_exact_keep_across_batches():
    d = ExactDeduplicator()
    assert d.add_keep(["a", "b"]).tolist() == [True, True]
    assert d.add_keep(["b", "c", "c"]).tolist() == [False, True, False]


# ---- MinHash vs exact Jaccard ---------------------------------------------------------------


def _doc(rng: random.Random, vocab: list[str], n: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def test_minhash_estimate_within_binomial_bound_of_exact_jaccard():
    """With 112 independent slots, the estimate is Binomial(112, J)/112: each pair must lie within
    z=4.5 standard deviations (+ one slot of discreteness), and the mean error over all pairs
    must be within 4.5 standard errors of zero (no bias)."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(60)]
    d = MinHashDeduplicator(seed=3, **LEGACY)
    errs, var = [], []
    for _ in range(150):
        a = _doc(rng, vocab, rng.randint(20, 200))
        words = a.split()
        # mutate a fraction of the words to sweep the similarity range
        frac = rng.random()
        b = " ".join(w if rng.random() > frac else rng.choice(vocab) for w in words)
        j = jaccard(set(ref_shingles(a, 5)), set(ref_shingles(b, 5)))
        s = d.signatures([a, b])
        est = float(np.mean(s[0] == s[1]))
        sd = math.sqrt(j * (1 - j) / 112)
        assert abs(est - j) <= 4.5 * sd + 1 / 112, (j, est)
        errs.append(est - j)
        var.append(j * (1 - j) / 112)
    assert abs(np.mean(errs)) <= 4.5 * math.sqrt(sum(var)) / len(errs) + 1e-3


def _pair_with_jaccard(rng: random.Random, tag: int, m: int, k: int) -> tuple[str, str]:
    """Two texts (1-gram shingles) whose word sets have |A∪B| = m and |A∩B| = k."""
    words = [f"t{tag}x{i}" for i in range(m)]
    rng.shuffle(words)
    common, rest = words[:k], words[k:]
    half = len(rest) // 2
    return " ".join(common + rest[:half]), " ".join(common + rest[half:])


@pytest.mark.parametrize("s", [0.5, 0.65, 0.75, 0.8, 0.85, 0.9, 0.95])
def test_detection_curve_follows_banding_formula(s):
    """Rate at which pairs of known Jaccard s share a cluster ~ 1-(1-s^8)^14, tested as a
    binomial proportion over 150 pairs (4.5 sd + 1/n tolerance)."""
    rng = random.Random(int(s * 1000))
    d = MinHashDeduplicator(ngram=1, seed=11, **LEGACY)
    m = 200
    k = round(s * m)
    pairs = [_pair_with_jaccard(rng, i, m, k) for i in range(150)]
    flat = [t for p in pairs for t in p]
    exact = [jaccard(set(a.split()), set(b.split())) for a, b in pairs]
    assert all(abs(e - k / m) < 1e-12 for e in exact)
    ids = d.cluster(flat)
    hit = np.mean([ids[2 * i] == ids[2 * i + 1] for i in range(len(pairs))])
    p = d.detection_probability(k / m)
    assert abs(p - (1 - (1 - (k / m) ** 8) ** 14)) < 1e-12
    sd = math.sqrt(p * (1 - p) / len(pairs))
    assert abs(hit - p) <= 4.5 * sd + 1 / len(pairs), (s, hit, p)


# ---- clustering and determinism -------------------------------------------------------------


def _near_dup_corpus(seed: int, n: int = 60) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"v{i}" for i in range(400)]
    base = [_doc(rng, vocab, rng.randint(30, 80)) for _ in range(n // 3)]
    out = list(base)
    for _ in range(n - len(base)):
        words = rng.choice(base).split()
        i = rng.randrange(len(words))
        words[i] = rng.choice(vocab)  # one-word edit: near duplicate
        out.append(" ".join(words))
    rng.shuffle(out)
    return out


def test_cluster_matches_bruteforce_banding():
    texts = _near_dup_corpus(1)
    d = MinHashDeduplicator(seed=5)
    sigs = d.signatures(texts)
    want = ref_lsh_clusters(sigs, 14, 8)
    assert d.cluster(texts).tolist() == want
    assert d.deduplicate(texts).tolist() == [w == i for i, w in enumerate(want)]
    assert len(set(want)) < len(texts)  # the corpus does contain near duplicates


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 25), st.sampled_from([1, 2, 4]), st.sampled_from([24, 2000, 1 << 30]))
def test_stream_identical_for_threads_batches_spills(seed, batch, threads, budget):
    texts = _near_dup_corpus(seed, 40)
    ref = MinHashDeduplicator(seed=2, num_threads=1).cluster(texts)
    d = MinHashDeduplicator(seed=2, num_threads=threads)
    s = d.stream(mem_budget=budget)
    sigs = []
    for k in range(0, len(texts), batch):
        sigs.append(s.add(texts[k : k + batch], return_signatures=True))
    if budget == 24:
        assert s.n_spills > 0
    assert s.n_docs == len(texts)
    assert s.finish().tolist() == ref.tolist()
    assert np.array_equal(np.concatenate(sigs), MinHashDeduplicator(seed=2).signatures(texts))


def test_stream_from_signatures_and_spill_dir(tmp_path):
    texts = _near_dup_corpus(3)
    d = MinHashDeduplicator(seed=9)
    s = d.stream(mem_budget=100, spill_dir=tmp_path)
    sigs = d.signatures(texts)
    s.add_signatures(sigs[:10])
    s.add_signatures(sigs[10:])
    assert s.n_spills > 0
    assert s.finish().tolist() == d.cluster(texts).tolist()
    assert list(tmp_path.iterdir()) == []  # run files removed
    with pytest.raises(Qwen25ValueError):
        s.finish()


def test_seed_changes_permutations_not_structure():
    a, b = MinHashDeduplicator(seed=1), MinHashDeduplicator(seed=2)
    assert not np.array_equal(a.permutations, b.permutations)
    assert np.array_equal(a.permutations, MinHashDeduplicator(seed=1).permutations)
    p = a.permutations
    assert p.shape == (2, 112) and p.dtype == np.uint32 and (p[0] % 2 == 1).all()


def test_empty_and_short_texts():
    d = MinHashDeduplicator()
    s = d.signatures(["", "  ,, ", "two words"])
    assert (s[0] == 2**32 - 1).all() and (s[1] == 2**32 - 1).all()
    assert d.signatures([]).shape == (0, 112)
    assert d.cluster([]).tolist() == []


def test_bad_inputs():
    with pytest.raises(Qwen25ValueError, match="exceeds num_perm"):
        MinHashDeduplicator(num_perm=100)
    with pytest.raises(Qwen25ValueError, match="ngram"):
        MinHashDeduplicator(ngram=0)
    with pytest.raises(TypeError, match="single str"):
        MinHashDeduplicator().signatures("a text")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        MinHashDeduplicator().signatures(["ok", 3])
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        ExactDeduplicator().add([b"bytes"])
    s = MinHashDeduplicator().stream()
    with pytest.raises(Qwen25ValueError, match="shape"):
        s.add_signatures(np.zeros((2, 5), dtype=np.uint32))
    with pytest.raises(Qwen25ValueError, match="mem_budget"):
        MinHashDeduplicator().stream(mem_budget=0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=120), max_size=10))
def test_arbitrary_unicode_dedup_never_fails(texts):
    ids = MinHashDeduplicator(ngram=2, **LEGACY).cluster(texts)
    assert all(0 <= c <= i for i, c in enumerate(ids.tolist()))
    ex = ExactDeduplicator(lowercase=True, strip_punct=True, collapse_ws=True).cluster(texts)
    assert all(0 <= c <= i for i, c in enumerate(ex.tolist()))
    # identical texts always share both clusters
    for i, t in enumerate(texts):
        j = texts.index(t)
        assert ex[i] == ex[j] and ids[i] == ids[j]
