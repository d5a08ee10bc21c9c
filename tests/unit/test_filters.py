"""Quality filters against a small pure-Python reference written from datatrove 0.10.1's
definitions, run with the options that swap datatrove's spaCy words, its newline-run lines and
spaCy's sentencizer for simpler rules (``words="simple"``, ``lines="splitlines"``,
``sentences="simple"``), which this reference spells out. The defaults themselves are checked
against datatrove in tests/parity/test_filters_datatrove.py. Cases sit on both sides of every
threshold."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen25.data import DomainFilters, QualityFilter
from qwen25.data import filters as _f
from qwen25.errors import Qwen25ValueError

PUNCTUATION_SET = pytest.importorskip("datatrove.utils.text").PUNCTUATION_SET  # Gopher's symbols


def GopherRepetitionConfig(**kw):  # noqa: N802 - the section, with the reference's rules
    return _f.GopherRepetitionConfig(**{"words": "simple", "lines": "splitlines", **kw})


def GopherQualityConfig(**kw):  # noqa: N802
    return _f.GopherQualityConfig(**{"words": "simple", **kw})


def C4Config(**kw):  # noqa: N802
    return _f.C4Config(**{"sentences": "simple", **kw})


def FineWebConfig(**kw):  # noqa: N802
    return _f.FineWebConfig(**{"words": "simple", **kw})


def FilterConfig(**kw):  # noqa: N802 - every filter on, with the reference's rules
    d = {
        "gopher_repetition": GopherRepetitionConfig(),
        "gopher_quality": GopherQualityConfig(),
        "c4": C4Config(),
        "fineweb": FineWebConfig(),
    }
    return _f.FilterConfig(**{**d, **kw})

# ---- reference ------------------------------------------------------------------------------


def is_ps(c: str) -> bool:
    return unicodedata.category(c)[0] in "PS"


def ref_words(text: str) -> list[str]:
    out: list[str] = []
    for chunk in text.split():
        i = 0
        while i < len(chunk) and is_ps(chunk[i]):
            i += 1
        if i == len(chunk):
            out += list(chunk)
            continue
        j = len(chunk)
        while j > 0 and is_ps(chunk[j - 1]):
            j -= 1
        out += list(chunk[:i]) + [chunk[i:j]] + list(chunk[j:])
    return out


def find_duplicates(x):
    seen, n, chars = set(), 0, 0
    for e in x:
        if e in seen:
            n += 1
            chars += len(e)
        else:
            seen.add(e)
    return n, chars


def ngrams(words, n):
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def find_top_duplicate(grams):
    g, c = Counter(grams).most_common(1)[0]
    return len(g) * c


def find_all_duplicate(words, n):
    # datatrove's, with one known difference: an n-gram is its words (datatrove compares them
    # joined without spaces, where "ab c" equals "a bc"); its length is theirs, spaces excluded
    seen, rep, i = set(), 0, 0
    while i < len(words) - n + 1:
        g = tuple(words[i : i + n])
        if g in seen:
            rep += sum(map(len, g))
            i += n
        else:
            seen.add(g)
            i += 1
    return rep


def ref_gopher_repetition(text, c: GopherRepetitionConfig):
    paras = re.split(r"\n{2,}", text.strip())
    d, ch = find_duplicates(paras)
    if c.dup_para_frac and d / len(paras) > c.dup_para_frac:
        return "dup_para_frac"
    if c.dup_para_char_frac and ch / len(text) > c.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = text.splitlines()
    d, ch = find_duplicates(lines)
    if c.dup_line_frac and d / max(len(lines), 1) > c.dup_line_frac:
        return "dup_line_frac"
    if c.dup_line_char_frac and ch / len(text) > c.dup_line_char_frac:
        return "dup_line_char_frac"
    words = ref_words(text)
    for n, f in c.top_n_grams:
        g = ngrams(words, n)
        if g and find_top_duplicate(g) / len(text) > f:
            return f"top_{n}_gram"
    for n, f in c.dup_n_grams:
        if find_all_duplicate(words, n) / len(text) > f:
            return f"duplicated_{n}_n_grams"
    return None


def ref_gopher_quality(text, c: GopherQualityConfig):
    words = ref_words(text)
    n_words = max(len(words), 1)
    ns = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
    if c.min_doc_words and len(ns) < c.min_doc_words:
        return "gopher_short_doc"
    if c.max_doc_words and len(ns) > c.max_doc_words:
        return "gopher_long_doc"
    avg = sum(len(w) for w in ns) / len(ns) if ns else float("nan")  # numpy's mean of []
    if c.min_avg_word_length and avg < c.min_avg_word_length:
        return "gopher_below_avg_threshold"
    if c.max_avg_word_length and avg > c.max_avg_word_length:
        return "gopher_above_avg_threshold"
    if c.max_symbol_word_ratio and text.count("#") / n_words > c.max_symbol_word_ratio:
        return "gopher_too_many_hashes"
    if c.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > c.max_symbol_word_ratio:
        return "gopher_too_many_ellipsis"
    lines = text.splitlines()
    nl = max(len(lines), 1)
    if c.max_bullet_lines_ratio and sum(s.lstrip().startswith(("•", "-")) for s in lines) / nl > c.max_bullet_lines_ratio:
        return "gopher_too_many_bullets"
    if c.max_ellipsis_lines_ratio and sum(s.rstrip().endswith(("...", "…")) for s in lines) / nl > c.max_ellipsis_lines_ratio:
        return "gopher_too_many_end_ellipsis"
    if c.max_non_alpha_words_ratio and sum(any(ch.isalpha() for ch in w) for w in words) / n_words < c.max_non_alpha_words_ratio:
        return "gopher_below_alpha_threshold"
    if c.min_stop_words and len(set(c.stop_words) & set(words)) < c.min_stop_words:
        return "gopher_enough_stop_words"
    return None


CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]


def ref_sentences(line):
    return len([p for p in re.split(r"[.!?]+[\"')\]]*\s+", line) if p.strip()])


def ref_c4_lines(text, c: C4Config):
    """C4's line pass: (reason that drops the document or None, kept lines, lines seen, sentences)."""
    n_sent, kept, n_lines = 0, [], 0
    for line in text.splitlines():
        n_lines += 1
        line = line.strip()
        words = line.split()
        if c.max_word_length != -1 and any(len(w) > c.max_word_length for w in words):
            continue
        if c.remove_citations:
            line = CITATION.sub("", line)
        if c.filter_no_terminal_punct and (not line.endswith((".", "?", "!", '"', "'")) or line.endswith("...")):
            continue
        if len(words) < c.min_words_per_line:
            continue
        low = line.lower()
        if c.filter_lorem_ipsum and "lorem ipsum" in low:
            return "lorem_ipsum", kept, n_lines, n_sent
        if c.filter_javascript and "javascript" in low:
            continue
        if c.filter_curly_bracket and "{" in line:
            return "curly_bracket", kept, n_lines, n_sent
        if c.filter_policy and any(p in low for p in POLICY):
            continue
        n_sent += ref_sentences(line)
        kept.append(line)
    return None, kept, n_lines, n_sent


def ref_c4(text, c: C4Config):
    reason, kept, _, n_sent = ref_c4_lines(text, c)
    if reason is not None:
        return reason, None
    if n_sent < c.min_num_sentences:
        return "too_few_sentences", None
    return None, "\n".join(kept).strip()


def ref_fineweb(text, c: FineWebConfig):
    lines = [ln for ln in text.split("\n") if ln.strip() != ""]
    if not lines:
        return "empty"
    r = sum(1 for ln in lines if ln.endswith(tuple(c.stop_chars))) / len(lines)
    if r < c.line_punct_thr and not (r == 0 and c.line_punct_exclude_zero):
        return "line_punct_ratio"
    r = sum(1 for ln in lines if len(ln) <= c.short_line_length) / len(lines)
    if r > c.short_line_thr:
        return "short_line_ratio"
    if find_duplicates(lines)[1] / max(len(text.replace("\n", "")), 1) > c.char_duplicates_ratio:
        return "char_dup_ratio"
    if text.count("\n") / max(len(ref_words(text)), 1) > c.new_line_ratio:
        return "list_ratio"
    return None


def ref_apply(text, cfg: FilterConfig):
    if not text.strip():
        return "empty", "empty_document", None
    if cfg.gopher_repetition and (r := ref_gopher_repetition(text, cfg.gopher_repetition)):
        return "gopher_repetition", r, None
    if cfg.gopher_quality and (r := ref_gopher_quality(text, cfg.gopher_quality)):
        return "gopher_quality", r, None
    new = None
    if cfg.c4:
        r, t = ref_c4(text, cfg.c4)
        if r:
            return "c4", r, None
        new = t if t != text else None
    cur = text if new is None else new
    if cfg.fineweb and (r := ref_fineweb(cur, cfg.fineweb)):
        return "fineweb", r, new
    return None, None, new


def check(texts, cfg):
    got = QualityFilter(cfg, num_threads=2).apply(texts)
    for t, g in zip(texts, got):
        f, r, new = ref_apply(t, cfg)
        assert (g.filter, g.reason, g.text) == (f, r, new), repr(t)
        assert g.keep == (f is None)
    return got


# ---- threshold cases ------------------------------------------------------------------------

GOOD = (
    "The cat sat on the mat and looked at the bird with great interest.\n"
    "It was a sunny day, and the garden was full of flowers that have bloomed.\n"
)


def only(**kw):
    """A config with just the named filter(s)."""
    base = {"gopher_repetition": None, "gopher_quality": None, "c4": None, "fineweb": None}
    base.update(kw)
    return FilterConfig(**base)


def words_doc(n: int, word: str = "word", stops: int = 2) -> str:
    # distinct stop words: datatrove counts the distinct ones present
    return " ".join(["the", "be", "to", "of", "and", "that", "have", "with"][:stops] + [word] * (n - stops))


@pytest.mark.parametrize("n", [49, 50, 51])
def test_gopher_min_words_threshold(n):
    got = check([words_doc(n, "apple")], only(gopher_quality=GopherQualityConfig()))
    assert got[0].keep == (n >= 50)


@pytest.mark.parametrize("avg", ["ab", "abc", "abcdefghij", "abcdefghijk"])
def test_gopher_avg_word_length_thresholds(avg):
    t = " ".join(["the", "and"] + [avg] * 60)
    got = check([t], only(gopher_quality=GopherQualityConfig(stop_words=("the", "and"), min_avg_word_length=3)))
    mean = (6 + len(avg) * 60) / 62
    assert got[0].keep == (3 <= mean <= 10)


@pytest.mark.parametrize("k", [5, 6, 7])  # 60 words, ratio 0.1 at k=6
def test_gopher_hash_ratio(k):
    t = words_doc(60 - k, "apple") + " " + " ".join(["x"] * k) + "#" * k
    check([t], only(gopher_quality=GopherQualityConfig()))


@pytest.mark.parametrize("bul", [8, 9, 10])  # 10 lines: ratio 0.9 boundary
def test_gopher_bullets_and_ellipsis_lines(bul):
    lines = ["• the apple and pear " * 2] * bul + ["the apple and pear " * 2] * (10 - bul)
    check(["\n".join(lines)], only(gopher_quality=GopherQualityConfig()))
    lines = ["the apple and pear tree ..." if i < bul - 6 else "the apple and pear tree" for i in range(10)]
    check(["\n".join(lines)], only(gopher_quality=GopherQualityConfig()))


@pytest.mark.parametrize("k", [0, 14, 15, 16, 30])  # alpha ratio 0.8 boundary at 60 words
def test_gopher_alpha_ratio(k):
    t = " ".join(["the", "and"] + ["apple"] * (58 - k) + ["1234"] * k)
    got = check([t], only(gopher_quality=GopherQualityConfig()))
    assert got[0].keep == ((60 - k) / 60 >= 0.8)


@pytest.mark.parametrize("stops", [0, 1, 2])
def test_gopher_stop_words(stops):
    got = check([words_doc(60, "apple", stops)], only(gopher_quality=GopherQualityConfig()))
    assert got[0].keep == (stops >= 2)


@pytest.mark.parametrize("dups", [2, 3, 4])  # 10 lines, dup_line_frac 0.3
def test_gopher_repetition_lines_and_paragraphs(dups):
    uniq = [f"line number {i} is here" for i in range(10 - dups)]
    check(["\n".join(uniq + ["repeated line"] * dups)], only(gopher_repetition=GopherRepetitionConfig()))
    check(["\n\n".join(uniq + ["repeated paragraph"] * dups)], only(gopher_repetition=GopherRepetitionConfig()))


@pytest.mark.parametrize("reps", [1, 3, 5, 8, 12])
def test_gopher_repetition_ngrams(reps):
    filler = " ".join(f"w{i}" for i in range(40))
    t = filler + " " + " ".join(["alpha beta gamma delta epsilon zeta"] * reps)
    check([t], only(gopher_repetition=GopherRepetitionConfig()))


def test_top_ngram_tie_goes_to_first_seen():
    # "aa b" and "c dddd" both occur twice; the first seen decides len * count
    t = "aa b aa b c dddd c dddd zz"
    for thr in (0.2, 0.3, 0.4, 0.5):
        check([t], only(gopher_repetition=GopherRepetitionConfig(dup_line_frac=None, dup_para_frac=None, top_n_grams=((2, thr),), dup_n_grams=())))


@pytest.mark.parametrize("n_sent", [4, 5])
def test_c4_sentences_and_line_rules(n_sent):
    body = " ".join(["This is a sentence."] * n_sent)
    cases = [
        body,
        body + "\nshort line\nno terminal punctuation here",
        body + "\nPlease enable JavaScript in your browser.",
        body + "\nRead our privacy policy here.",
        body + "\nSome text with a citation[12] here.",
        body + "\nlorem ipsum dolor sit amet.",
        body + "\nfunction f() { return 1; }.",
        body + "\n" + "x" * 1001 + " is too long.",
        body + "\nIt trails off...",
    ]
    check(cases, only(c4=C4Config()))
    check(cases, only(c4=C4Config(filter_no_terminal_punct=False, min_num_sentences=-1)))


@pytest.mark.parametrize("n_punct", [1, 2])  # 12 lines: 1/12 <= 0.12 < 2/12
def test_fineweb_line_punct(n_punct):
    lines = [f"a fairly long line of text without an ending {i}" for i in range(12 - n_punct)]
    lines += [f"a fairly long line of text that ends well {i}." for i in range(n_punct)]
    got = check(["\n".join(lines)], only(fineweb=FineWebConfig()))
    assert (got[0].reason == "line_punct_ratio") == (n_punct == 1)


@pytest.mark.parametrize("n_short", [6, 7])  # of 10 lines; threshold 0.67
def test_fineweb_short_lines(n_short):
    lines = ["short."] * 0 + [f"s{i}." for i in range(n_short)] + [f"this is a long enough line of text number {i}." for i in range(10 - n_short)]
    got = check(["\n".join(lines)], only(fineweb=FineWebConfig()))
    assert (got[0].reason == "short_line_ratio") == (n_short == 7)


def test_fineweb_char_dup_at_threshold():
    # 10 distinct 10-char lines + k duplicates: dup chars / non-newline chars vs 0.1
    uniq = [f"line{i:05d}." for i in range(10)]
    for k in (0, 1, 2):
        t = "\n".join(uniq + uniq[:k]) + "\nThis long closing line keeps short-line ratios in check."
        check([t], only(fineweb=FineWebConfig(short_line_thr=1.1)))


@pytest.mark.parametrize("n_lines", [2, 3, 4, 5])
def test_fineweb_list_ratio(n_lines):
    t = "\n".join(["one two three."] * 1 + [f"w{i} x." for i in range(n_lines - 1)])
    check([t], only(fineweb=FineWebConfig(short_line_thr=1.1, char_duplicates_ratio=1.1)))


# ---- whole chain, random documents ----------------------------------------------------------

LINE = st.sampled_from(
    [
        "The cat sat on the mat and looked at the bird.",
        "• a bullet with the item and to be",
        "Privacy policy and terms of use apply.",
        "short",
        "## Heading with # marks",
        "It trails off...",
        "Numbers 123 456 789 are here!",
        "A line with a citation[3] in it.",
        "",
        "to be or not to be, that is the question?",
        "Ünïcödé wörds — and «quotes» here.",
        "lorem ipsum is rare",
    ]
)


@settings(max_examples=120, deadline=None)
@given(st.lists(LINE, max_size=40), st.sampled_from(["\n", "\n\n", "\r\n"]))
def test_chain_matches_reference_on_random_documents(lines, sep):
    check([sep.join(lines)], FilterConfig())


def test_defaults_keep_good_prose_and_stats_reported():
    text = GOOD + (
        "Our town was founded long ago by farmers who came from the hills.\n"
        "Its market square still hosts a fair with music and food every autumn.\n"
        "Children learn to swim in the river that runs past the old mill.\n"
        "Visitors often say that the bread from the corner bakery is the best.\n"
        "In winter, the streets are quiet and covered with a thin layer of snow.\n"
    )
    r = check([text], FilterConfig())[0]
    assert r.keep, (r.filter, r.reason)
    assert {"gopher_quality.avg_word_length", "fineweb.line_punct_ratio", "c4.sentences"} <= set(r.stats)


def test_per_domain_thresholds():
    t = words_doc(30, "apple")
    loose = only(gopher_quality=GopherQualityConfig(min_doc_words=10))
    strict = only(gopher_quality=GopherQualityConfig())
    res = DomainFilters({"code": loose}, strict).apply([t, t], ["code", "web"])
    assert [r.keep for r in res] == [True, False]


def test_config_from_dict_errors():
    cfg = _f.FilterConfig.from_dict({"c4": False, "fineweb": {"new_line_ratio": 0.5}})
    assert cfg.c4 is None and cfg.fineweb.new_line_ratio == 0.5 and cfg.fineweb.char_duplicates_ratio == 0.01
    with pytest.raises(Qwen25ValueError, match="unknown filter 'gopher'"):
        _f.FilterConfig.from_dict({"gopher": {}})
    with pytest.raises(Qwen25ValueError, match="unknown key"):
        _f.FilterConfig.from_dict({"c4": {"min_sentences": 3}})
    with pytest.raises(Qwen25ValueError, match=r"words = 'nltk' is not one of \['spacy', 'simple'\]"):
        _f.FilterConfig.from_dict({"gopher_quality": {"words": "nltk"}})
    assert _f.FilterConfig.from_dict({"gopher_repetition": {"lines": "splitlines"}}).gopher_repetition.lines == "splitlines"
    with pytest.raises(TypeError):
        QualityFilter().apply("one text")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=8))
def test_arbitrary_unicode_never_fails(texts):
    # no reference here (Unicode tables differ across versions): the Rust side must not fail
    for r in QualityFilter(num_threads=2).apply(texts):
        assert r.keep == (r.filter is None) == (r.reason is None)
        assert all(isinstance(v, float) for v in r.stats.values())


# Statistic values (not only decisions) of the n-gram checks against the reference: a small
# vocabulary makes n-grams repeat at every length; short, long (> 7 bytes), non-ASCII and
# punctuation-peeled words; the order of sizes forces the n-gram levels to restart.
NGRAM_WORD = st.sampled_from(["a", "bb", "a.", "ccc", "the", "(x)", "dddddddd", "éé", "...", "a\x00"])
TOP_NS = (1, 2, 3, 4)
DUP_NS = (5, 2, 3, 6, 7, 8, 9, 10)


@settings(max_examples=150, deadline=None)
@given(st.lists(NGRAM_WORD, max_size=60), st.sampled_from([" ", "  ", "\n"]))
def test_ngram_statistics_match_reference(ws, sep):
    text = sep.join(ws)
    if not text.strip():
        return
    never = 1e9
    cfg = only(
        gopher_repetition=GopherRepetitionConfig(
            top_n_grams=tuple((n, never) for n in TOP_NS), dup_n_grams=tuple((n, never) for n in DUP_NS)
        )
    )
    stats = QualityFilter(cfg, num_threads=1).apply([text])[0].stats
    if "gopher_repetition.top_1_gram" not in stats:  # dropped on duplicated lines/paragraphs
        return
    words = ref_words(text)
    for n in TOP_NS:
        g = ngrams(words, n)
        key = f"gopher_repetition.top_{n}_gram"
        if g:
            assert stats[key] == pytest.approx(find_top_duplicate(g) / len(text)), (key, text)
        else:
            assert key not in stats
    for n in DUP_NS:
        key = f"gopher_repetition.duplicated_{n}_n_grams"
        assert stats[key] == pytest.approx(find_all_duplicate(words, n) / len(text)), (key, text)


# Every statistic (names, order and exact values), not only the decisions, against the
# reference on adversarial text: every line break and Unicode whitespace, CRLF, empty and blank
# lines, very long lines and words, punctuation runs, repeated n-grams and lines.


def ref_stats(text, cfg: FilterConfig):
    """(filter, reason, stats) as the reference computes them, stats in the order they are made."""
    st: dict[str, float] = {}
    if not text.strip():
        return "empty", "empty_document", st
    n = len(text)
    if c := cfg.gopher_repetition:
        paras = re.split(r"\n{2,}", text.strip())
        d, ch = find_duplicates(paras)
        st["gopher_repetition.dup_para_frac"] = d / len(paras)
        st["gopher_repetition.dup_para_char_frac"] = ch / n
        lines = text.splitlines()
        ld, lc = find_duplicates(lines)
        st["gopher_repetition.dup_line_frac"] = ld / max(len(lines), 1)
        st["gopher_repetition.dup_line_char_frac"] = lc / n
        words = ref_words(text)
        for k, _ in c.top_n_grams:
            if g := ngrams(words, k):
                st[f"gopher_repetition.top_{k}_gram"] = find_top_duplicate(g) / n
        for k, _ in c.dup_n_grams:
            st[f"gopher_repetition.duplicated_{k}_n_grams"] = find_all_duplicate(words, k) / n
    if c := cfg.gopher_quality:
        words = ref_words(text)
        nw = max(len(words), 1)
        ns = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
        st["gopher_quality.n_non_symbol_words"] = float(len(ns))
        st["gopher_quality.avg_word_length"] = sum(len(w) for w in ns) / len(ns) if ns else 0.0
        st["gopher_quality.hash_word_ratio"] = text.count("#") / nw
        st["gopher_quality.ellipsis_word_ratio"] = (text.count("...") + text.count("…")) / nw
        lines = text.splitlines()
        nl = max(len(lines), 1)
        bullets = sum(s.lstrip().startswith(("•", "-")) for s in lines)
        st["gopher_quality.bullet_lines_ratio"] = bullets / nl
        st["gopher_quality.end_ellipsis_lines_ratio"] = sum(s.rstrip().endswith(("...", "…")) for s in lines) / nl
        st["gopher_quality.alpha_words_ratio"] = sum(any(ch.isalpha() for ch in w) for w in words) / nw
        st["gopher_quality.stop_words"] = float(len(set(c.stop_words) & set(words)))
    cur = text
    if c := cfg.c4:
        _, kept, n_lines, n_sent = ref_c4_lines(text, c)  # NEVER-style configs: no early return
        st["c4.lines"], st["c4.kept_lines"] = float(n_lines), float(len(kept))
        st["c4.sentences"] = float(n_sent)
        cur = "\n".join(kept).strip()
    if c := cfg.fineweb:
        lines = [ln for ln in cur.split("\n") if ln.strip() != ""]
        if not lines:
            return "fineweb", "empty", st
        n_punct = sum(ln.endswith(tuple(c.stop_chars)) for ln in lines)
        st["fineweb.line_punct_ratio"] = n_punct / len(lines)
        st["fineweb.short_line_ratio"] = sum(len(ln) <= c.short_line_length for ln in lines) / len(lines)
        st["fineweb.char_dup_ratio"] = find_duplicates(lines)[1] / max(len(cur.replace("\n", "")), 1)
        st["fineweb.list_ratio"] = cur.count("\n") / max(len(ref_words(cur)), 1)
    return None, None, st


# no check drops (C4's lorem ipsum and curly bracket checks stop the line loop: off too)
NEVER = FilterConfig(
    gopher_repetition=GopherRepetitionConfig(
        dup_line_frac=None,
        dup_para_frac=None,
        dup_line_char_frac=None,
        dup_para_char_frac=None,
        top_n_grams=((2, 9.0), (1, 9.0), (4, 9.0), (3, 9.0)),
        dup_n_grams=((5, 9.0), (2, 9.0), (10, 9.0), (6, 9.0)),
    ),
    gopher_quality=GopherQualityConfig(
        min_doc_words=None,
        max_doc_words=None,
        min_avg_word_length=None,
        max_avg_word_length=None,
        max_symbol_word_ratio=None,
        max_bullet_lines_ratio=None,
        max_ellipsis_lines_ratio=None,
        max_non_alpha_words_ratio=None,
        min_stop_words=None,
        stop_words=("the", "of", "abcdefghijklmnop", "x"),
    ),
    c4=C4Config(min_num_sentences=-1, filter_lorem_ipsum=False, filter_curly_bracket=False),
    fineweb=FineWebConfig(
        line_punct_thr=-1.0, short_line_thr=9.0, char_duplicates_ratio=9.0, new_line_ratio=9.0
    ),
)

FRAGMENT = st.sampled_from(
    ["the", "of", "x", "x.", "cat", "(y)", "...", "…", "#", "-", "•", '"q"', "?!", "[1]", "[edit]", "{",
     "abcdefg", "abcdefgh", "abcdefghi", "abcdefghijklmno", "abcdefghijklmnop", "w" * 40, "é", "Ünï",
     "Lorem Ipsum", "JavaScript", "Privacy Policy", "use cookies", "a\x00b"]
)  # fmt: skip
SPACE = st.sampled_from(
    [" ", " ", " ", "  ", "\t", "\n", "\n", "\n\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f",
     "\x85", "\u2028", "\u2029", "\xa0", "\u3000", " \n "]
)  # fmt: skip


@st.composite
def adversarial_doc(draw):
    parts = draw(st.lists(st.tuples(FRAGMENT, SPACE), max_size=120))
    text = "".join(a + b for a, b in parts)
    # repeat a stretch: duplicated lines, paragraphs and n-grams
    if text and draw(st.booleans()):
        i = draw(st.integers(0, len(text) - 1))
        text += text[i:] * draw(st.integers(1, 3))
    return text + draw(st.sampled_from(["", "\n", "\n\n", " ", "\r\n"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(adversarial_doc(), min_size=1, max_size=4))
def test_all_statistics_match_reference_on_adversarial_text(texts):
    # ASCII-only variants too: those take the byte-class fast path
    texts = texts + [t.encode("ascii", "ignore").decode() for t in texts]
    got = QualityFilter(NEVER, num_threads=2).apply(texts)
    for t, g in zip(texts, got):
        f, r, want = ref_stats(t, NEVER)
        assert (g.filter, g.reason) == (f, r), repr(t)
        assert list(g.stats) == list(want), repr(t)
        assert g.stats == want, repr(t)
    # decisions at the default thresholds, one by one and in one batch
    check(texts, FilterConfig())
    one_by_one = [QualityFilter().apply([t])[0].stats for t in texts]
    assert [r.stats for r in QualityFilter(num_threads=1).apply(texts)] == one_by_one


def test_stats_dicts_are_independent_and_exact_across_rows():
    # rows with the same keys share a template dict in the binding: each row's dict is its own
    docs = [GOOD * k + "Extra words here and the end." for k in (3, 3, 4, 1, 5, 5)] + ["", "x"] + [GOOD * 2]
    res = QualityFilter(NEVER, num_threads=1).apply(docs)
    for t, r in zip(docs, res):
        assert r.stats == ref_stats(t, NEVER)[2]
    res[0].stats["gopher_quality.stop_words"] = -1.0
    res[0].stats["new"] = 1.0
    assert res[1].stats == ref_stats(docs[1], NEVER)[2]
    assert QualityFilter(NEVER, num_threads=1).apply(docs)[0].stats == ref_stats(docs[0], NEVER)[2]
