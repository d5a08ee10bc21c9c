"""MinHash's word split of simplified text (``spacy::word_spans``: words split at spaces, plain
ASCII words kept as they are, the others through spaCy's rules) against datatrove's own word
tokenizer, on text made of the words where that split could go wrong: every special case of
spaCy's English tokenizer (``"cannot"`` -> ``"can" "not"``, ``"gonna"``, ...), as it is and as
``simplify_text`` leaves it, words right after digits (``"0km"``), non-ASCII words, and words
long enough to straddle the 64-byte blocks the split reads.

References, independent of qwen25: datatrove 0.10.1's ``simplify_text`` and ``word_tokenize``
(spaCy) for the shingles, datasketch's MinHash arithmetic with the ``xxhash`` package's XXH3
(low 32 bits) and our permutation parameters for the signatures.
"""

from __future__ import annotations

import random

import pytest

pytest.importorskip("datatrove")
spacy = pytest.importorskip("spacy")
pytest.importorskip("datasketch")
pytest.importorskip("xxhash")

from datatrove.utils.text import simplify_text  # noqa: E402

from qwen25.data import MinHashDeduplicator  # noqa: E402
from tests.parity.test_minhash_fast_paths import check_against_datatrove  # noqa: E402


def _special_cases() -> list[str]:
    # spaCy's own table of the blank English tokenizer, the one datatrove loads
    return sorted(spacy.blank("en").tokenizer.rules)


def _texts() -> list[str]:
    keys = _special_cases()
    assert len(keys) > 1000
    simple = sorted({simplify_text(k) for k in keys} - {""})
    extra = ["the", "qzab", "0km", "5km", "2nd", "x0y", "a1", "café", "日本語", "straße", "км", "٣",
             "Cannot", "can", "not", "o", "or", "d", "’s", "U.S.", "e.g.", "1,000", "3.14", "  ", "\n",
             "supercalifragilisticexpialidocious" * 2]
    rng = random.Random(0)
    out = []
    pools = [keys, simple, simple + extra, keys + simple + extra]
    for n in range(1500):
        pool = pools[n % len(pools)]
        out.append(" ".join(rng.choice(pool) for _ in range(rng.randrange(1, 60))))
    # every key once, in one text each of simplified keys and raw keys
    out.append(" ".join(simple))
    out.append(" ".join(keys))
    return out


def test_word_split_of_special_cases_matches_datatrove() -> None:
    signed = split = 0
    for t, s, words, sig, ok in check_against_datatrove(MinHashDeduplicator(seed=3), _texts()):
        split += words != s.split()  # a special case or a unit after a digit took effect
        if not ok:
            assert (sig == 2**32 - 1).all(), repr(t)
        signed += ok
    assert signed > 1000
    assert split > 1000
