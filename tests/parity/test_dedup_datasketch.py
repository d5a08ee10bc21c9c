"""MinHash against datasketch on the same shingles.

1. Given our shingle hash and our permutations, datasketch's MinHash arithmetic (its default
   "affine32" scheme: a * fmix32(h) + b mod 2^32) must reproduce our signatures bit for bit.
2. With datasketch's own defaults (SHA-1 hash, its own permutations), both estimators must agree
   with exact Jaccard and with each other within binomial bounds."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

datasketch = pytest.importorskip("datasketch")

from qwen25.data import MinHashDeduplicator  # noqa: E402
from qwen25.data.dedup import shingle_hash  # noqa: E402


def _corpus(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"Word{i}," if i % 7 == 0 else f"w{i}" for i in range(80)]
    base = " ".join(rng.choice(vocab) for _ in range(150))
    out = []
    for _ in range(n):
        frac = rng.random()
        out.append(" ".join(w if rng.random() > frac else rng.choice(vocab) for w in base.split()))
    return out


def test_bit_identical_with_our_hash_and_permutations():
    d = MinHashDeduplicator(seed=42)
    texts = _corpus(0, 30) + ["", "short one"]
    sigs = d.signatures(texts)
    perms = d.permutations
    for t, s in zip(texts, sigs):
        m = datasketch.MinHash(num_perm=112, hashfunc=shingle_hash, permutations=(perms[0], perms[1]), scheme="affine32")
        for sh in d.shingles(t):
            m.update(sh.encode("utf-8"))
        assert m.hashvalues.dtype == np.uint32 and np.array_equal(m.hashvalues, s)


def test_jaccard_estimates_agree_with_datasketch_defaults():
    d = MinHashDeduplicator(seed=1)
    texts = _corpus(1, 41)
    ours = d.signatures(texts)
    theirs = []
    for t in texts:
        m = datasketch.MinHash(num_perm=112, seed=1)
        m.update_batch([s.encode("utf-8") for s in d.shingles(t)])
        theirs.append(m)
    sets = [set(d.shingles(t)) for t in texts]
    diffs = []
    for i in range(1, len(texts)):
        j = len(sets[0] & sets[i]) / len(sets[0] | sets[i])
        est_ours = float(np.mean(ours[0] == ours[i]))
        est_ds = theirs[0].jaccard(theirs[i])
        sd = math.sqrt(j * (1 - j) / 112)
        assert abs(est_ours - j) <= 4.5 * sd + 1 / 112
        assert abs(est_ds - j) <= 4.5 * sd + 1 / 112
        # the two independent estimators differ by at most sqrt(2) x that
        assert abs(est_ours - est_ds) <= 4.5 * math.sqrt(2) * sd + 2 / 112
        diffs.append(est_ours - est_ds)
    assert abs(float(np.mean(diffs))) < 0.05
