"""MinHash near-dedup decides as datatrove 0.10.1's four MinHash stages (FineWeb's shape: 5-grams,
14 bands x 8 rows) on real text: the same normalisation (``simplify_text``: lowercase, numbers
as 0, punctuation as spaces, accents dropped), the same shingles (its English words), no
signature for a document under 5 words, and the same documents removed. The hash functions
differ (xxh3 and 32-bit permutations here, xxhash64 and 61-bit ones there), so the corpus is made
of clear cases: real documents that share nothing, and near-copies of them (numbers, accents,
punctuation or one word in a hundred changed), far above LSH's threshold.
"""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datatrove")
pytest.importorskip("spacy")

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.dedup.minhash import (  # noqa: E402
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.utils.hashing import HashConfig  # noqa: E402
from datatrove.utils.text import ngrams, simplify_text  # noqa: E402
from datatrove.utils.word_tokenizers import load_word_tokenizer  # noqa: E402

from qwen25 import _native  # noqa: E402
from qwen25.data import MinHashDeduplicator  # noqa: E402

from .filter_corpus import code, prose  # noqa: E402


@pytest.fixture(scope="module")
def texts() -> list[str]:
    docs = prose(160) + code(40)
    assert len(docs) > 150
    return docs


def test_simplify_text_and_shingles_are_datatrove(texts: list[str]) -> None:
    tok = load_word_tokenizer("eng")
    d = MinHashDeduplicator()
    extra = ["Café NAÏVE résumé — 3,5 kg at 12:30, 1.000.000 items; ٣٤ and ６ digits", "x\u00a0y\tz\r\nw  ", ""]
    for t in texts + extra:
        s = simplify_text(t)
        assert _native.simplify_text(t) == s, t[:200]
        want = [" ".join(x) for x in ngrams(tok.word_tokenize(s), 5)]
        assert d.shingles(t) == want, t[:200]


def _near_copy(t: str, kind: int, rng: random.Random) -> str:
    if kind == 0:  # other numbers
        return "".join(str(rng.randrange(10)) if c.isdigit() else c for c in t)
    if kind == 1:  # accents
        return "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn") + " é"
    if kind == 2:  # punctuation and case
        return t.replace(",", ";").replace(".", "!").upper()
    words = t.split(" ")  # one word in a hundred
    for i in range(0, len(words), 100):
        words[i] = "zzqx"
    return " ".join(words)


def _datatrove_kept(texts: list[str], tmp: Path) -> list[int]:
    # sha1 shingle hashes: datatrove's xxhash wrapper needs xxhash<4 (its "processing" extra)
    cfg = MinhashConfig(hash_config=HashConfig(precision=64, hash_fc="sha1"))
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    MinhashDedupSignature(output_folder=str(tmp / "sigs"), config=cfg).run(iter(docs), rank=0, world_size=1)
    for b in range(cfg.num_buckets):
        MinhashDedupBuckets(input_folder=str(tmp / "sigs"), output_folder=str(tmp / "buckets"), config=cfg).run(
            rank=b, world_size=cfg.num_buckets
        )
    MinhashDedupCluster(input_folder=str(tmp / "buckets"), output_folder=str(tmp / "remove"), config=cfg).run()
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    kept = MinhashDedupFilter(input_folder=str(tmp / "remove")).run(iter(docs), rank=0, world_size=1)
    return sorted(int(d.id) for d in kept)


def test_same_documents_removed_as_datatrove(texts: list[str], tmp_path: Path) -> None:
    rng = random.Random(0)
    # documents long enough for one word in a hundred to leave them near-duplicates, and far
    # from each other (installed packages ship copies of the same licence): every cluster is
    # then one document and its near-copy, where both rules keep the first
    d = MinHashDeduplicator()
    base: list[str] = []
    seen: list[set[str]] = []
    for t in texts:
        sh = set(d.shingles(t))
        if len(t.split()) >= 300 and all(len(sh & s) < 0.3 * len(sh | s) for s in seen):
            base.append(t)
            seen.append(sh)
    base = base[:60]
    assert len(base) >= 40, "too few distinct long documents found"
    corpus = list(base)
    for i, t in enumerate(base[:40]):
        corpus.append(_near_copy(t, i % 4, rng))
    short = ["Too short to sign.", "Too short to sign.", "four words, no more"]
    corpus += short
    rng.shuffle(corpus)
    want = _datatrove_kept(corpus, tmp_path)
    keep = d.deduplicate(corpus)
    got = [i for i, k in enumerate(keep) if k]
    assert got == want
    assert len(corpus) - len(want) >= 30  # the near-copies were found
    # the identical short texts are never signed, so both are kept
    assert all(keep[i] for i, t in enumerate(corpus) if t in short)


def test_short_documents_and_survivor_options() -> None:
    same = ["a short one", "a short one", "another text of exactly five words here"] * 2
    assert MinHashDeduplicator().deduplicate(same).tolist() == [True, True, True, True, True, False]
    legacy = MinHashDeduplicator(sign_short_docs=True).deduplicate(same).tolist()
    assert legacy == [True, False, True, False, False, False]
    # 'first' keeps the lowest index of a cluster; 'representative' the root of datatrove's union
    # by size, which for a pair is its first member too
    pair = ["the same words in the same order again", "x y z w v u", "The same words, in the same order again!"]
    for keep in ("first", "representative"):
        ids = MinHashDeduplicator(keep=keep).cluster(pair)
        assert ids.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="keep must be"):
        MinHashDeduplicator(keep="last")


def test_representative_is_the_union_by_size_root() -> None:
    """Three copies reached through two bands: datatrove's rule can keep a later member. Built
    from one signature per document so the band groups are known: docs 1 and 2 share every band,
    doc 0 shares only the last band with doc 1."""
    d = MinHashDeduplicator(keep="representative")
    n = d.num_perm
    s1 = np.arange(n, dtype="<u4")
    s0 = s1 + 1000
    s0[-d.rows :] = s1[-d.rows :]
    sigs = np.stack([s0, s1, s1]).astype("<u4")
    s = d.stream()
    s.add_signatures(sigs)
    ids = s.finish().tolist()
    # band 0: (1, 2) -> root 1 of size 2; last band: (0, 1) joins 0 to the larger set
    assert ids == [1, 1, 1]
    f = MinHashDeduplicator(keep="first").stream()
    f.add_signatures(sigs)
    assert f.finish().tolist() == [0, 0, 0]
