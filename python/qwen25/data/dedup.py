"""Exact and near-duplicate (MinHash-LSH) deduplication, backed by ``qwen25_core::dedup``.

Defaults follow FineWeb as datatrove 0.10.1 runs it: word 5-gram shingles of datatrove's
``simplify_text`` (lowercase, numbers as ``0``, its punctuation as spaces, whitespace collapsed,
accents dropped) split into its English words (spaCy's rules, as the quality filters); a text of
fewer than 5 words is not signed and never a duplicate (``sign_short_docs=True`` signs it);
``datatrove_words=False`` is the plain shingling (lowercase, Unicode P* deleted, whitespace
collapsed, split on spaces). 112 hashes as 14 bands x 8 rows. Shingles hash to 32 bits
(xxh3-64, low half) and permutations are datasketch's default "affine32" scheme
(``a * fmix32(h) + b mod 2^32``, ``a`` odd), so datasketch reproduces our signatures bit for bit
when given :func:`shingle_hash` and :attr:`MinHashDeduplicator.permutations`. Documents that share
any band land in the same cluster (union-find connected components); the cluster id is the
lowest input index in it, and that document is the one kept (``keep="representative"`` keeps the
root of datatrove's union by size instead). tests/parity/test_minhash_datatrove.py checks the
shingles and the removed documents against datatrove's four MinHash stages. Results do not
depend on the thread count, batch size or spill points.

>>> from qwen25.data import MinHashDeduplicator
>>> d = MinHashDeduplicator(seed=0)
>>> keep = d.deduplicate(["a b c d e f", "A b, c d e f!", "something else entirely here"])
>>> keep.tolist()
[True, False, True]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _native
from ..errors import Qwen25Error, Qwen25TypeError, Qwen25ValueError
from .records import surrogate_error

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ExactDeduplicator", "MinHashDeduplicator", "MinHashStream", "exact_hash", "exact_hashes", "shingle_hash"]

shingle_hash = _native.shingle_hash


def exact_hash(text: str, *, lowercase: bool = False, strip_punct: bool = False, collapse_ws: bool = False) -> int:
    """xxh3-128 of ``text`` after the chosen normalisation, as a Python int."""
    if not isinstance(text, str):
        raise Qwen25TypeError(f"text is {type(text).__name__}, not str")
    return _on_texts(lambda t: _native.exact_hash(t[0], lowercase, strip_punct, collapse_ws), [text], "text")


def exact_hashes(
    texts: Iterable[str],
    *,
    lowercase: bool = False,
    strip_punct: bool = False,
    collapse_ws: bool = False,
    num_threads: int | None = None,
) -> bytes:
    """xxh3-128 of each text after the chosen normalisation, 16 little-endian bytes each."""
    return _on_texts(lambda t: _native.exact_hashes(t, lowercase, strip_punct, collapse_ws, num_threads), _texts(texts))


def _texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise Qwen25TypeError("texts must be a sequence of str, not a single str/bytes")
    try:
        return texts if isinstance(texts, list) else list(texts)
    except TypeError:
        raise Qwen25TypeError(f"texts must be a sequence of str, not {type(texts).__name__}") from None


_T = TypeVar("_T")


def _on_texts(job: Callable[[list[str]], _T], texts: list[str], what: str = "texts[{}]") -> _T:
    """``job(texts)``; a text that is not a str, or holds a lone surrogate (no UTF-8 text can),
    is a Qwen25 error naming its index (found by a second look only when the engine refused)."""
    try:
        return job(texts)
    except (TypeError, UnicodeEncodeError) as e:
        if isinstance(e, Qwen25Error):
            raise
        for i, t in enumerate(texts):
            name = what.format(i)
            if not isinstance(t, str):
                raise Qwen25TypeError(f"{name} is {type(t).__name__}, not str") from None
            err = surrogate_error(t, name)
            if err is not None:
                raise err from None
        if isinstance(e, TypeError):
            raise Qwen25TypeError(str(e)) from None
        raise


class MinHashStream:
    """Streaming MinHash-LSH over batches, for corpora larger than memory.

    Band records are held up to ``mem_budget`` bytes (24 bytes per document per band), then
    sorted and spilled to run files under ``spill_dir`` (default: the OS temp dir) and merged
    at :meth:`finish`. The union-find keeps 8 bytes per document in memory.
    """

    def __init__(self, owner: MinHashDeduplicator, mem_budget: int, spill_dir: str | os.PathLike[str] | None):
        if mem_budget < 1:
            raise Qwen25ValueError(f"mem_budget must be >= 1 byte, got {mem_budget}")
        self._owner = owner
        self._inner = _native.MinHashStream(owner._hasher, int(mem_budget), None if spill_dir is None else os.fspath(spill_dir))
        self._done = False

    def add(self, texts: Iterable[str], *, return_signatures: bool = False) -> np.ndarray | None:
        """Add a batch (documents get the next global indices); optionally return signatures."""
        import numpy as np

        out = _on_texts(lambda t: self._inner.add(t, self._owner.num_threads, return_signatures), _texts(texts))
        if out is None:
            return None
        return np.frombuffer(out, dtype="<u4").reshape(-1, self._owner.num_perm)

    def add_signatures(self, signatures: Any) -> None:
        """Add precomputed signatures, shape (n, num_perm) uint32."""
        import numpy as np

        sig = np.ascontiguousarray(signatures, dtype="<u4")
        if sig.ndim != 2 or sig.shape[1] != self._owner.num_perm:
            raise Qwen25ValueError(f"signatures must have shape (n, {self._owner.num_perm}), got {sig.shape}")
        self._inner.add_signatures(sig.tobytes(), self._owner.num_threads)

    def finish(self) -> np.ndarray:
        """Cluster id (lowest member index) of every document added, int64."""
        import numpy as np

        if self._done:
            raise Qwen25ValueError("this stream has already finished")
        self._done = True
        return np.frombuffer(self._inner.finish(), dtype="<u8").astype(np.int64)

    @property
    def n_docs(self) -> int:
        return int(self._inner.n_docs)

    @property
    def n_spills(self) -> int:
        """Run files spilled to disk so far."""
        return int(self._inner.n_spills)


class MinHashDeduplicator:
    """MinHash-LSH near-dedup (FineWeb defaults). See the module docs.

    ``num_perm`` is at most :attr:`MAX_NUM_PERM` (8,192: 73 times FineWeb's 112, a 32 KiB signature
    per document; every permutation costs one multiply per shingle, so 10**9 would run for hours
    on one document) and ``bands * rows <= num_perm``; ``ngram`` is at most :attr:`MAX_NGRAM`.
    """

    MAX_NUM_PERM = 8192
    MAX_NGRAM = 1024

    def __init__(
        self,
        num_perm: int = 112,
        bands: int = 14,
        rows: int = 8,
        ngram: int = 5,
        seed: int = 1,
        *,
        lowercase: bool = True,
        strip_punct: bool = True,
        collapse_ws: bool = True,
        datatrove_words: bool = True,
        sign_short_docs: bool = False,
        keep: str = "first",
        num_threads: int | None = None,
    ) -> None:
        """``datatrove_words``: shingle as datatrove (FineWeb) does: its ``simplify_text``
        (lowercase, numbers as ``0``, punctuation as spaces, accents dropped) and its English
        words; off, ``lowercase``/``strip_punct``/``collapse_ws`` and a split on spaces.
        ``sign_short_docs``: give a text with fewer than ``ngram`` words one shingle (off, as
        datatrove: it has no signature and is never a duplicate). ``keep``: which member of a
        cluster is its id and is kept, ``"first"`` (the lowest index, the default) or
        ``"representative"`` (the root of datatrove's union by size)."""
        if keep not in ("first", "representative"):
            raise Qwen25ValueError(f"keep must be 'first' or 'representative', got {keep!r}")
        for name, v in (("num_perm", num_perm), ("bands", bands), ("rows", rows), ("ngram", ngram)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise Qwen25ValueError(f"{name} must be a positive int, got {v!r}")
        if num_perm > self.MAX_NUM_PERM:
            raise Qwen25ValueError(f"num_perm must be at most {self.MAX_NUM_PERM}, got {num_perm} (FineWeb uses 112; "
                                   "each permutation costs a multiply per shingle of every document)")  # fmt: skip
        if bands * rows > num_perm:
            raise Qwen25ValueError(f"bands * rows = {bands} * {rows} = {bands * rows} exceeds num_perm = {num_perm}")
        if ngram > self.MAX_NGRAM:
            raise Qwen25ValueError(f"ngram must be at most {self.MAX_NGRAM} words, got {ngram}")
        if not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise Qwen25ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
        self.num_perm, self.bands, self.rows, self.ngram, self.seed = num_perm, bands, rows, ngram, seed
        self.lowercase, self.strip_punct, self.collapse_ws = lowercase, strip_punct, collapse_ws
        self.num_threads = num_threads
        self.datatrove_words, self.sign_short_docs, self.keep = datatrove_words, sign_short_docs, keep
        self._hasher = _native.MinHasher(
            num_perm, bands, rows, ngram, seed, lowercase, strip_punct, collapse_ws,
            datatrove_words=datatrove_words, sign_short_docs=sign_short_docs, keep=keep,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"MinHashDeduplicator(num_perm={self.num_perm}, bands={self.bands}, rows={self.rows}, "
            f"ngram={self.ngram}, seed={self.seed})"
        )

    @property
    def threshold(self) -> float:
        """The similarity at which the detection probability 1-(1-s^r)^b is about 1/2: (1/b)^(1/r)."""
        return float((1.0 / self.bands) ** (1.0 / self.rows))

    def detection_probability(self, s: float) -> float:
        """P(two documents of Jaccard similarity ``s`` share at least one band) = 1-(1-s^r)^b."""
        return 1.0 - (1.0 - s**self.rows) ** self.bands

    def shingles(self, text: str) -> list[str]:
        """The shingles of ``text`` (duplicates included, in order; none for a text that is not
        signed)."""
        if not isinstance(text, str):
            raise Qwen25TypeError(f"text is {type(text).__name__}, not str")
        return _on_texts(lambda t: self._hasher.shingles(t[0]), [text], "text")

    @property
    def permutations(self) -> np.ndarray:
        """(2, num_perm) uint32: the (a, b) of each permutation (a odd), datasketch's
        ``permutations`` layout for its "affine32" scheme."""
        import numpy as np

        a, b = self._hasher.permutations()
        return np.array([a, b], dtype=np.uint32)

    def signatures(self, texts: Iterable[str]) -> np.ndarray:
        """MinHash signatures, a (n, num_perm) uint32 array."""
        import numpy as np

        buf = _on_texts(lambda t: self._hasher.signatures(t, self.num_threads), _texts(texts))
        return np.frombuffer(buf, dtype="<u4").reshape(-1, self.num_perm)

    def signature_from_hashes(self, hashes: Iterable[int]) -> np.ndarray:
        """Signature of explicit raw 32-bit shingle hashes (as :func:`shingle_hash` gives them)."""
        import numpy as np

        return np.array(self._hasher.signature_from_hashes(list(hashes)), dtype=np.uint32)

    def band_keys(self, signature: Sequence[int]) -> list[int]:
        return list(self._hasher.band_keys([int(x) for x in signature]))

    def stream(self, *, mem_budget: int = 1 << 30, spill_dir: str | os.PathLike[str] | None = None) -> MinHashStream:
        """A streaming clusterer with this configuration."""
        return MinHashStream(self, mem_budget, spill_dir)

    def cluster(self, texts: Iterable[str]) -> np.ndarray:
        """One cluster id per text, int64: the index of the member kept (``keep``; by default
        the lowest input index in the cluster)."""
        s = self.stream()
        s.add(texts)
        return s.finish()

    def deduplicate(self, texts: Iterable[str]) -> np.ndarray:
        """One keep flag per text: True for the member of each cluster that ``keep`` picks."""
        import numpy as np

        ids = self.cluster(texts)
        return ids == np.arange(len(ids), dtype=np.int64)


class ExactDeduplicator:
    """Exact dedup on xxh3-128 of the (optionally normalised) text; first occurrence kept.

    Stateful across :meth:`add` calls, so shards fed one after another dedup against each other.
    """

    def __init__(
        self,
        *,
        lowercase: bool = False,
        strip_punct: bool = False,
        collapse_ws: bool = False,
        num_threads: int | None = None,
    ) -> None:
        self.lowercase, self.strip_punct, self.collapse_ws = lowercase, strip_punct, collapse_ws
        self.num_threads = num_threads
        self._inner = _native.ExactDedup(lowercase, strip_punct, collapse_ws)

    def add(self, texts: Iterable[str]) -> np.ndarray:
        """Cluster id (global index of the first occurrence) of each text in the batch, int64."""
        import numpy as np

        buf = _on_texts(lambda t: self._inner.add(t, self.num_threads), _texts(texts))
        return np.frombuffer(buf, dtype="<u8").astype(np.int64)

    def add_hashes(self, hashes: bytes) -> np.ndarray:
        """Like :meth:`add` for precomputed hashes (16 little-endian bytes each, as
        :func:`exact_hashes` returns them)."""
        import numpy as np

        return np.frombuffer(self._inner.add_hashes(bytes(hashes)), dtype="<u8").astype(np.int64)

    def add_keep(self, texts: Iterable[str]) -> np.ndarray:
        """Like :meth:`add` but returns keep flags (first occurrence so far)."""
        import numpy as np

        start = self.n_docs
        ids = self.add(texts)
        return ids == np.arange(start, start + len(ids), dtype=np.int64)

    def cluster(self, texts: Iterable[str]) -> np.ndarray:
        """Stateless: cluster ids of ``texts`` alone."""
        return ExactDeduplicator(
            lowercase=self.lowercase, strip_punct=self.strip_punct, collapse_ws=self.collapse_ws, num_threads=self.num_threads
        ).add(texts)

    def deduplicate(self, texts: Iterable[str]) -> np.ndarray:
        """Stateless: keep flags of ``texts`` alone."""
        import numpy as np

        ids = self.cluster(texts)
        return ids == np.arange(len(ids), dtype=np.int64)

    def cluster_sizes(self, min_size: int = 2) -> list[tuple[int, int]]:
        """(first index, size) of each cluster with at least ``min_size`` members, by first index."""
        return [(int(a), int(b)) for a, b in self._inner.cluster_sizes(min_size)]

    @property
    def n_docs(self) -> int:
        return int(self._inner.n_docs)

    @property
    def n_unique(self) -> int:
        return int(self._inner.n_unique)
