"""MinHash's datatrove shingling on text shaped for the fast paths of ``simplify_text``: ASCII
taken 64 bytes at a time (AVX-512, where the CPU has it) or 8 bytes of letters and single spaces
at a time, and the one pass over text with non-ASCII chars, which takes its ASCII stretches the
same way. The edges of those blocks are where a fast path can go wrong: whitespace and
punctuation runs, numbers and non-ASCII chars that straddle byte 64, leading and trailing
whitespace, a text exactly 64 bytes long.

References, all independent of qwen25: datatrove 0.10.1's ``simplify_text`` and its English word
tokenizer (spaCy) for the shingles, and datasketch's MinHash arithmetic over those shingles with
the ``xxhash`` package's XXH3 (low 32 bits) and our permutation parameters for the signatures.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("datatrove")
pytest.importorskip("spacy")
datasketch = pytest.importorskip("datasketch")
xxhash = pytest.importorskip("xxhash")

from datatrove.utils.text import ngrams, simplify_text  # noqa: E402
from datatrove.utils.word_tokenizers import load_word_tokenizer  # noqa: E402

from qwen25 import _native  # noqa: E402
from qwen25.data import MinHashDeduplicator  # noqa: E402

def datasketch_signature(shingles: list[str], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The reference: datasketch's MinHash (scheme affine32, 112 permutations ``(a, b)``) of the
    shingles, hashed as ours are (xxh3-64 of the UTF-8, low 32 bits)."""
    m = datasketch.MinHash(
        num_perm=112,
        hashfunc=lambda x: xxhash.xxh3_64_intdigest(x) & 0xFFFFFFFF,
        permutations=(a, b),
        scheme="affine32",
    )
    m.update_batch([w.encode("utf-8") for w in shingles])
    return m.hashvalues


PIECES = {
    "prose": ["the", "Quick", " ", " ", "   ", "brown", "FOX", ". ", ", ", "\n", "a", "jumps", "It's"],
    "code": ["    ", "def", " foo", "(x):", "\n", "\t", "_bar", " = ", "[1, 2]", "# c", "{}", " ", "self.x"],
    "numbers": ["3.14", "1,000", " ", "x", "7", ".", ",", "a1", "  ", "0.5.6", "B", "\r\n", "5km"],
    "mixed": [
        "the", " ", "café", "ÉTÉ", " naïve", "“quoted”", "—", "٣٫٥", "\u00a0", "Straße", "e\u0301", "’s",
    ],
}


def _texts() -> list[str]:
    rng = random.Random(0)
    out = []
    for kind, pieces in PIECES.items():
        for n in range(120):
            t = ""
            target = rng.randrange(0, 700)
            while len(t) < target:
                t += rng.choice(pieces)
            out.append(t)
    # something of each kind at every offset around the end of the first 64-byte block
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"
    for k in range(56, 72):
        head = filler[:k]
        for x in ["  ", ". ", "--- ", "42", "4.2", "é", "\u00a0", "’", " \n\t ", "X"]:
            out.append(head + x + filler)
        out.append(" " * k + filler)
        out.append(filler[:k] + " " * 70)
    out += [filler[:64], filler[:63] + " ", "A" * 64, " " * 64, "", "é" * 40]
    return out


def check_against_datatrove(d: MinHashDeduplicator, texts: list[str]) -> Iterator[tuple[str, str, list[str], Any, bool]]:
    """Per text, datatrove's simplification, word split and 5-word shingles, with ``d``'s shingles
    asserted equal to them and, when there are any, ``d``'s signature asserted equal to datasketch's
    over them: yields ``(text, simplified, words, signature, signed)``."""
    tok = load_word_tokenizer("eng")
    a, b = d.permutations
    for t, sig in zip(texts, d.signatures(texts)):
        s = simplify_text(t)
        words = tok.word_tokenize(s)
        want = [" ".join(x) for x in ngrams(words, 5)]
        assert d.shingles(t) == want, repr(t)
        if want:
            assert np.array_equal(datasketch_signature(want, a, b), sig), repr(t)
        yield t, s, words, sig, bool(want)  # under 5 words: not signed (datatrove's rule)


def test_simplify_shingles_and_signatures_match_the_references() -> None:
    signed = 0
    for t, s, _, _, ok in check_against_datatrove(MinHashDeduplicator(seed=7), _texts()):
        assert _native.simplify_text(t) == s, repr(t)
        signed += ok
    assert signed > 300
