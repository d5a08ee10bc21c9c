"""The ``debug`` recipe's data: a synthetic English-like corpus, a 512-token BPE trained on it, and
the packed folder, all made on the fly so the recipe runs anywhere, in minutes, on a CPU.

The corpus is the same on every machine and Python version: it comes from a fixed grammar driven
by splitmix64 (no ``random``, no numpy streams). Its documents mix simple sentences ("the small fox
sees three birds.") with arithmetic ("7 plus 5 is 12."), so a tiny model has structure to learn and
its loss keeps falling for a while.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from ..errors import Qwen25ValueError

__all__ = ["synthetic_documents", "prepare_debug_data", "build_folder_once", "DEBUG_VOCAB_SIZE",
           "DEBUG_CORPUS_VERSION"]

DEBUG_VOCAB_SIZE = 512
DEBUG_CORPUS_VERSION = 1
DEBUG_DOCUMENTS = 4000

_MASK = (1 << 64) - 1


class _SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def pick(self, xs: tuple[str, ...]) -> str:
        return xs[self.below(len(xs))]


_ADJ = ("small", "big", "red", "quiet", "old", "young", "bright", "dark", "happy", "tired", "green", "cold")
_NOUN = ("fox", "bird", "cat", "river", "tree", "child", "teacher", "boat", "house", "dog", "garden", "star")
_VERB = ("sees", "finds", "likes", "follows", "helps", "paints", "watches", "carries", "visits", "hears")
_PLACE = ("near the river", "in the garden", "under the tree", "at the house", "by the sea", "in the morning")
_NUM = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _sentence(r: _SplitMix64) -> str:
    kind = r.below(4)
    if kind == 0:
        a, b = r.below(50), r.below(50)
        return f"{a} plus {b} is {a + b}."
    if kind == 1:
        n = r.below(len(_NUM))
        noun = r.pick(_NOUN)
        return f"the {r.pick(_ADJ)} {r.pick(_NOUN)} {r.pick(_VERB)} {_NUM[n]} {noun}{'s' if n else ''}."
    if kind == 2:
        return f"the {r.pick(_NOUN)} {r.pick(_VERB)} the {r.pick(_ADJ)} {r.pick(_NOUN)} {r.pick(_PLACE)}."
    start = r.below(8)
    return "count: " + " ".join(str(start + i) for i in range(3 + r.below(6))) + "."


def synthetic_documents(n: int = DEBUG_DOCUMENTS, seed: int = 0) -> list[str]:
    """``n`` documents of 1 to 12 sentences from the fixed grammar; the same list everywhere."""
    r = _SplitMix64(seed * 0x2545F4914F6CDD1D + 12345)
    docs = []
    for _ in range(n):
        s = " ".join(_sentence(r) for _ in range(1 + r.below(12)))
        docs.append(s[0].upper() + s[1:])
    return docs


def prepare_debug_data(out_dir: str | os.PathLike[str], seq_len: int) -> str:
    """Write the packed debug corpus at ``seq_len`` to ``out_dir/debug-v{N}-seq{seq_len}`` (once: a
    complete folder is reused) and return its path. The tokenizer is saved alongside it."""
    from .._train import train_bpe
    from ..data.pack import MANIFEST, TokenPacker

    if not isinstance(seq_len, int) or seq_len < 2:
        raise Qwen25ValueError(f"debug data: seq_len must be an int >= 2, got {seq_len!r}")
    final = os.path.join(os.fspath(out_dir), f"debug-v{DEBUG_CORPUS_VERSION}-seq{seq_len}")

    def build(tmp: str) -> None:
        docs = synthetic_documents()
        tok = train_bpe(docs, DEBUG_VOCAB_SIZE, num_threads=1)
        if tok.vocab_size > DEBUG_VOCAB_SIZE:  # pragma: no cover - train_bpe keeps to the size asked
            raise Qwen25ValueError(f"debug data: tokenizer has {tok.vocab_size} tokens")
        extra: dict[str, Any] = {"debug_corpus": DEBUG_CORPUS_VERSION, "documents": len(docs)}
        with TokenPacker(tmp, tokenizer=tok, seq_len=seq_len, num_threads=1, extra=extra) as packer:
            packer.add(docs, source="synthetic")
        tok.save_pretrained(os.path.join(tmp, "tokenizer"))
        with open(os.path.join(tmp, "README.json"), "w", encoding="utf-8") as f:
            json.dump({"what": "qwen25 debug corpus", "vocab_size": DEBUG_VOCAB_SIZE}, f)

    return build_folder_once(final, MANIFEST, build)


def build_folder_once(final: str, marker: str, build: Callable[[str], None]) -> str:
    """Return the folder ``final``, built first when ``final/marker`` is missing: ``build(tmp)``
    fills a new folder of this process's own (``final.tmpPID``), which is then renamed to ``final``.
    Every rank of a run may do this at once: the first rename wins, the others drop their copy."""
    if os.path.isfile(os.path.join(final, marker)):
        return final
    tmp = f"{final}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not os.path.isfile(os.path.join(final, marker)):  # another process may have won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
