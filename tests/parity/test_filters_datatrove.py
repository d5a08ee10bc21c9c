"""The quality filters decide as datatrove 0.10.1 does, on real prose and code.

datatrove is the reference for the definitions we claim (Gopher repetition and quality, C4,
FineWeb); with its default thresholds and its English word tokenizer (spaCy's blank English
pipeline), each of our filters must keep and drop the same documents, for the same reason.
The corpus is real text found offline (tests/parity/filter_corpus.py): package descriptions,
licences, READMEs and standard-library docstrings (prose), standard-library modules (code),
Faker paragraphs, and documents with a repeated tail (to reach the repetition thresholds).
"""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("datatrove")
pytest.importorskip("spacy")  # datatrove's English word tokenizer

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (  # noqa: E402
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.utils.text import split_into_sentences  # noqa: E402
from datatrove.utils.word_tokenizers import load_word_tokenizer  # noqa: E402

from qwen25 import _native  # noqa: E402
from qwen25.data.filters import FilterConfig, QualityFilter  # noqa: E402

from .filter_corpus import code, prose  # noqa: E402

NONE = {"gopher_repetition": None, "gopher_quality": None, "c4": None, "fineweb": None}


def _faker_docs(n: int = 40) -> list[str]:
    faker = pytest.importorskip("faker")
    f = faker.Faker("en_US")
    f.seed_instance(1234)
    docs = []
    for i in range(n):
        paras = [f.paragraph(nb_sentences=3 + i % 7) for _ in range(1 + i % 6)]
        docs.append(("\n\n" if i % 2 else "\n").join(paras))
    return docs


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    docs = prose() + code() + _faker_docs()
    assert len(docs) > 300, "too little real text found"
    # a repeated tail pushes documents over the repetition thresholds
    docs += [d + "\n" + d[: len(d) // 3] for d in docs[:: len(docs) // 60]]
    return docs


def _ours(name: str) -> QualityFilter:
    full = FilterConfig()
    cfg = FilterConfig(**{**NONE, name: getattr(full, name)})
    return QualityFilter(cfg, num_threads=2)


REFERENCES = {
    "gopher_repetition": GopherRepetitionFilter,
    "gopher_quality": GopherQualityFilter,
    "c4": C4QualityFilter,
    "fineweb": FineWebQualityFilter,
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_same_decisions_as_datatrove(corpus: list[str], name: str) -> None:
    ref = REFERENCES[name]()
    ours = _ours(name).apply(corpus)
    dropped = 0
    for i, (text, r) in enumerate(zip(corpus, ours)):
        doc = Document(text=text, id=str(i))
        v = ref.filter(doc)
        keep, reason = (True, None) if v is True else (False, v[1])
        dropped += not keep
        assert (r.keep, r.reason) == (keep, reason), (name, i, r.stats, text[:300])
        if name == "c4" and keep:
            assert r.final_text(text) == doc.text  # the lines C4 keeps
    # the corpus exercises both outcomes
    assert 0 < dropped < len(corpus)


def test_words_and_sentences_are_spacys(corpus: list[str]) -> None:
    """The words every filter counts are datatrove's English words (spaCy's tokenizer), and C4's
    sentence count is spaCy's sentencizer's."""
    tok = load_word_tokenizer("eng")
    for text in corpus:
        assert _native.filter_words(text) == tok.word_tokenize(text)
    lines = [ln.strip() for text in corpus[:80] for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        assert _native.filter_count_sentences(ln) == len(split_into_sentences(ln)), ln


def test_defaults_are_datatrove_defaults() -> None:
    """Every threshold defaults to datatrove's (the FineWeb duplicated-character ratio too)."""
    cfg = FilterConfig()
    for name, cls in REFERENCES.items():
        ref = cls()
        ours = getattr(cfg, name)
        for f in dataclasses.fields(ours):
            attr = {"short_line_thr": "short_line_threshold"}.get(f.name, f.name)
            if not hasattr(ref, attr) or f.name in ("words", "lines", "sentences"):
                continue
            want = getattr(ref, attr)
            got = getattr(ours, f.name)
            if f.name == "stop_words":
                want, got = sorted(want), sorted(got)
            elif f.name == "stop_chars":
                want, got = sorted(want), sorted(got)
            elif isinstance(want, tuple):
                got = tuple(tuple(x) for x in got)
            assert got == want, (name, f.name)


def test_earlier_rules_stay_available() -> None:
    """The earlier definitions are options: blank lines as lines (``lines="splitlines"``), the
    whitespace word split (``words="simple"``), the regex sentence count."""
    text = "a licence line\n\n\n\nanother line\n\n\n\nthird line here\n"
    dt = GopherRepetitionFilter(top_n_grams=(), dup_n_grams=()).filter(Document(text=text, id="0"))
    base = dataclasses.replace(FilterConfig().gopher_repetition, top_n_grams=(), dup_n_grams=())  # type: ignore[type-var]
    ours_dt = QualityFilter(FilterConfig(**{**NONE, "gopher_repetition": base})).apply([text])[0]
    old = dataclasses.replace(base, lines="splitlines")
    ours_old = QualityFilter(FilterConfig(**{**NONE, "gopher_repetition": old})).apply([text])[0]
    assert dt is True and ours_dt.keep
    assert ours_old.reason == "dup_line_frac"  # 5 of 9 lines repeat an earlier (blank) one
    assert _native.filter_words("Don't ----- stop.", "simple") == ["Don't", "-", "-", "-", "-", "-", "stop", "."]
    assert _native.filter_words("Don't ----- stop.") == ["Do", "n't", "-----", "stop", "."]
