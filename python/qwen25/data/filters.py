"""Heuristic quality filters (Gopher repetition, Gopher quality, C4, FineWeb), run in Rust.

Each filter is datatrove 0.10.1's definition with datatrove's default thresholds, and decides as
datatrove does (tests/parity/test_filters_datatrove.py runs both on real prose and code). The
configuration is defined once, in Rust (``qwen25-core/src/filter/config.rs``); the dataclasses
below take their defaults from it. The filters run in FineWeb's order: Gopher repetition, Gopher
quality, C4 (which may drop lines; later filters see the shortened text), FineWeb. A ``None``
filter is switched off; a ``None`` (or 0) threshold switches that one check off, as in datatrove.
A whitespace-only document is dropped first, by filter ``"empty"``.

Words are datatrove's English words: spaCy's English tokenizer rules (ported to Rust), blank
tokens dropped, so punctuation counts as words (``"Hello, world."`` is 4 words) and ``-----``
is one token; C4 counts sentences with spaCy's sentencizer. Earlier qwen25 rules remain as
options, each a deliberate difference from datatrove:

- ``words="simple"`` (Gopher repetition, Gopher quality, FineWeb): a whitespace split with each
  chunk's leading and trailing punctuation peeled off as one-char tokens (``-----`` is 5 words,
  ``don't`` one); faster, and ratios over words differ;
- ``lines="splitlines"`` (Gopher repetition): ``str.splitlines()``, where blank lines are lines
  and repeat each other (datatrove: ``re.split("\\n+")``, blank lines do not count);
- ``sentences="simple"`` (C4): split after ``.!?`` (+ closing quotes/brackets) and whitespace;
- ``char_duplicates_ratio=0.1`` (FineWeb): qwen25's earlier default (datatrove's is 0.01).

One known difference is not an option: Gopher repetition's duplicated n-grams are equal when
their words are, where datatrove compares the words joined without spaces (for it ``ab c``
repeats ``a bc``); it never changed a decision on the parity corpus.

These filters judge prose. :data:`PRESETS` names starting points per domain: ``"web"`` (all of
the above, the default) and ``"code"`` (no prose rules; Gopher's duplicated-line rules at
thresholds measured on real code, plus BigCode's line-length and alphanumeric rules,
:class:`CodeConfig`); ``preset("code")`` builds one, and a pipeline's ``[filter.domains.NAME]``
takes ``preset = "code"``.

>>> from qwen25.data import QualityFilter
>>> r = QualityFilter().apply(["too short"])[0]
>>> (r.keep, r.filter, r.reason)
(False, 'gopher_repetition', 'top_2_gram')
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _native
from ..errors import Qwen25ValueError

__all__ = [
    "C4Config",
    "CodeConfig",
    "DomainFilters",
    "FilterConfig",
    "FilterResult",
    "FineWebConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "PRESETS",
    "QualityFilter",
    "code_stats",
    "preset",
]


# The defaults, as the Rust core defines them (the one definition).
_D: dict[str, dict[str, Any]] = json.loads(_native.filter_default_config_json())
_GR, _GQ, _C4, _FW = (_D[k] for k in ("gopher_repetition", "gopher_quality", "c4", "fineweb"))


def _pairs(xs: list[list[Any]]) -> tuple[tuple[int, float], ...]:
    return tuple((int(n), float(t)) for n, t in xs)


@dataclass(frozen=True, kw_only=True)
class GopherRepetitionConfig:
    dup_line_frac: float | None = _GR["dup_line_frac"]
    dup_para_frac: float | None = _GR["dup_para_frac"]
    dup_line_char_frac: float | None = _GR["dup_line_char_frac"]
    dup_para_char_frac: float | None = _GR["dup_para_char_frac"]
    top_n_grams: tuple[tuple[int, float], ...] = _pairs(_GR["top_n_grams"])
    dup_n_grams: tuple[tuple[int, float], ...] = _pairs(_GR["dup_n_grams"])
    words: str = _GR["words"]  # "spacy" (datatrove's English words) or "simple"
    lines: str = _GR["lines"]  # "newline_runs" (datatrove's re.split("\\n+")) or "splitlines"


@dataclass(frozen=True, kw_only=True)
class GopherQualityConfig:
    min_doc_words: int | None = _GQ["min_doc_words"]
    max_doc_words: int | None = _GQ["max_doc_words"]
    min_avg_word_length: float | None = _GQ["min_avg_word_length"]
    max_avg_word_length: float | None = _GQ["max_avg_word_length"]
    max_symbol_word_ratio: float | None = _GQ["max_symbol_word_ratio"]
    max_bullet_lines_ratio: float | None = _GQ["max_bullet_lines_ratio"]
    max_ellipsis_lines_ratio: float | None = _GQ["max_ellipsis_lines_ratio"]
    max_non_alpha_words_ratio: float | None = _GQ["max_non_alpha_words_ratio"]
    min_stop_words: int | None = _GQ["min_stop_words"]  # distinct stop words present, as datatrove
    stop_words: tuple[str, ...] = tuple(_GQ["stop_words"])
    words: str = _GQ["words"]  # "spacy" or "simple"


@dataclass(frozen=True, kw_only=True)
class C4Config:
    remove_citations: bool = _C4["remove_citations"]
    filter_no_terminal_punct: bool = _C4["filter_no_terminal_punct"]
    min_num_sentences: int = _C4["min_num_sentences"]  # -1 disables
    min_words_per_line: int = _C4["min_words_per_line"]  # -1 disables
    max_word_length: int = _C4["max_word_length"]  # -1 disables
    filter_lorem_ipsum: bool = _C4["filter_lorem_ipsum"]
    filter_javascript: bool = _C4["filter_javascript"]
    filter_curly_bracket: bool = _C4["filter_curly_bracket"]
    filter_policy: bool = _C4["filter_policy"]
    sentences: str = _C4["sentences"]  # "spacy" (spaCy's sentencizer, as datatrove) or "simple"


@dataclass(frozen=True, kw_only=True)
class FineWebConfig:
    line_punct_thr: float = _FW["line_punct_thr"]
    line_punct_exclude_zero: bool = _FW["line_punct_exclude_zero"]
    short_line_thr: float = _FW["short_line_thr"]
    short_line_length: int = _FW["short_line_length"]
    char_duplicates_ratio: float = _FW["char_duplicates_ratio"]  # datatrove's 0.01 (qwen25 had 0.1)
    new_line_ratio: float = _FW["new_line_ratio"]
    stop_chars: str = _FW["stop_chars"]  # datatrove's TERMINAL_PUNCTUATION
    words: str = _FW["words"]  # "spacy" or "simple"


@dataclass(frozen=True, kw_only=True)
class CodeConfig:
    """The "basic" code-file filter of The Stack / SantaCoder / StarCoder data preparation
    (BigCode, ``bigcode-dataset/preprocessing/filtering.py``; Allal et al. 2023, "SantaCoder:
    don't reach for the stars!", and Li et al. 2023, "StarCoder: may the source be with you!",
    after Chen et al. 2021, "Evaluating Large Language Models Trained on Code" (Codex), §3.1,
    which dropped files with an average line length over 100, a maximum line length over 1000
    or few alphanumeric characters). Lines are ``str.splitlines()``; the alphanumeric fraction
    is that of all characters (``str.isalnum``), as BigCode computes them. Run in Python, after
    the Rust filters; a ``None`` threshold switches that check off."""

    max_line_length: int | None = 1000  # drop a file with a longer line
    max_mean_line_length: float | None = 100.0  # drop a file whose mean line length is above
    min_alnum_fraction: float | None = 0.25  # drop a file with fewer alphanumeric characters


for _name, _cls in (
    ("gopher_repetition", GopherRepetitionConfig),
    ("gopher_quality", GopherQualityConfig),
    ("c4", C4Config),
    ("fineweb", FineWebConfig),
):  # the Rust definition and these fields must name the same options
    if {f.name for f in dataclasses.fields(_cls)} != set(_D[_name]):
        raise ImportError(f"qwen25._native's {_name} options {sorted(_D[_name])} differ from {_cls.__name__}'s")

# the options that take one of a few names (the Rust enums' names)
_CHOICES = {"words": ("spacy", "simple"), "lines": ("newline_runs", "splitlines"), "sentences": ("spacy", "simple")}

_SECTIONS = {
    "gopher_repetition": GopherRepetitionConfig,
    "gopher_quality": GopherQualityConfig,
    "c4": C4Config,
    "fineweb": FineWebConfig,
    "code": CodeConfig,
}


@dataclass(frozen=True, kw_only=True)
class FilterConfig:
    """Which filters run and their thresholds."""

    gopher_repetition: GopherRepetitionConfig | None = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig | None = field(default_factory=GopherQualityConfig)
    c4: C4Config | None = field(default_factory=C4Config)
    fineweb: FineWebConfig | None = field(default_factory=FineWebConfig)
    code: CodeConfig | None = None  # off unless asked for (the "code" preset turns it on)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "filter config") -> FilterConfig:
        """From a nested mapping (as read from TOML); unknown keys raise, naming them."""
        kwargs: dict[str, Any] = {}
        for k, v in d.items():
            sec = _SECTIONS.get(k)
            if sec is None:
                raise Qwen25ValueError(f"{where}: unknown filter {k!r} (known: {', '.join(_SECTIONS)})")
            if v is None or v is False:
                kwargs[k] = None
                continue
            if v is True:
                kwargs[k] = sec()
                continue
            if not isinstance(v, Mapping):
                raise Qwen25ValueError(f"{where}: [{k}] must be a table, true or false, got {v!r}")
            names = {f.name for f in dataclasses.fields(sec)}
            bad = sorted(set(v) - names)
            if bad:
                raise Qwen25ValueError(f"{where}: unknown key(s) {bad} in [{k}] (known: {sorted(names)})")
            vv = dict(v)
            defaults = sec()
            for key, val in vv.items():  # the type of each value, by its default's
                dv = getattr(defaults, key)
                if isinstance(dv, bool):
                    ok = isinstance(val, bool)
                elif isinstance(dv, (int, float)) or dv is None:
                    ok = val is None or (isinstance(val, (int, float)) and not isinstance(val, bool))
                    if isinstance(dv, int) and not isinstance(dv, bool) and isinstance(val, float) and not val.is_integer():
                        ok = False
                elif isinstance(dv, str):
                    ok = isinstance(val, str) and val in _CHOICES.get(key, (val,))
                else:  # tuples: lists in TOML
                    ok = isinstance(val, (list, tuple))
                if not ok and key in _CHOICES and isinstance(val, str):
                    raise Qwen25ValueError(f"{where}: [{k}] {key} = {val!r} is not one of {list(_CHOICES[key])}")
                if not ok:
                    raise Qwen25ValueError(f"{where}: [{k}] {key} = {val!r} has the wrong type (default: {dv!r})")
            for key in ("top_n_grams", "dup_n_grams", "stop_words"):
                if key in vv:
                    vv[key] = tuple(tuple(x) if isinstance(x, list) else x for x in vv[key])
            kwargs[k] = sec(**vv)
        return cls(**kwargs)

    def to_json(self) -> str:
        """The Rust filters' configuration (the code rules run in Python)."""
        d = dataclasses.asdict(self)
        d.pop("code")
        return json.dumps(d)


@dataclass(frozen=True)
class FilterResult:
    keep: bool
    filter: str | None  # the filter that dropped the document
    reason: str | None  # datatrove's reason string
    stats: dict[str, float]
    text: str | None  # the text after C4's line removal, when it changed

    def final_text(self, original: str) -> str:
        return original if self.text is None else self.text


def _texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of str, not a single str/bytes")
    return texts if isinstance(texts, list) else list(texts)


class QualityFilter:
    """All heuristic filters with one configuration."""

    def __init__(self, config: FilterConfig | None = None, *, num_threads: int | None = None) -> None:
        self.config = config or FilterConfig()
        self.num_threads = num_threads
        self._inner = _native.QualityFilters(self.config.to_json())

    def apply(self, texts: Iterable[str]) -> list[FilterResult]:
        texts = _texts(texts)
        rows = self._inner.apply(texts, self.num_threads)
        out = [FilterResult(k, f, r, s, t) for k, f, r, s, t in rows]
        code = self.config.code
        if code is not None:
            out = [_code_rules(code, t, r) for t, r in zip(texts, out)]
        return out


def code_stats(text: str) -> dict[str, float]:
    """BigCode's statistics of a code file: maximum and mean line length, alphanumeric
    fraction (0 for an empty text)."""
    lengths = [len(line) for line in text.splitlines()]
    return {
        "code.max_line_length": float(max(lengths, default=0)),
        "code.mean_line_length": sum(lengths) / len(lengths) if lengths else 0.0,
        "code.alnum_fraction": sum(map(str.isalnum, text)) / len(text) if text else 0.0,
    }


def _code_rules(cfg: CodeConfig, text: str, r: FilterResult) -> FilterResult:
    """``r`` with the code statistics added, and dropped (filter ``"code"``) when it was kept
    but breaks a code rule."""
    st = code_stats(r.final_text(text))
    stats = {**r.stats, **st}
    if not r.keep:
        return FilterResult(r.keep, r.filter, r.reason, stats, r.text)
    why = None
    if cfg.max_line_length is not None and st["code.max_line_length"] > cfg.max_line_length:
        why = "code_max_line_length"
    elif cfg.max_mean_line_length is not None and st["code.mean_line_length"] > cfg.max_mean_line_length:
        why = "code_mean_line_length"
    elif cfg.min_alnum_fraction is not None and st["code.alnum_fraction"] < cfg.min_alnum_fraction:
        why = "code_alnum_fraction"
    if why is not None:
        return FilterResult(False, "code", why, stats, None)
    return FilterResult(True, None, None, stats, r.text)


class DomainFilters:
    """Per-domain thresholds: ``configs[domain]`` or ``default`` for unknown domains."""

    def __init__(
        self,
        configs: Mapping[str, FilterConfig],
        default: FilterConfig | None = None,
        *,
        num_threads: int | None = None,
    ) -> None:
        self._filters = {d: QualityFilter(c, num_threads=num_threads) for d, c in configs.items()}
        self._default = QualityFilter(default, num_threads=num_threads)

    def apply(self, texts: Sequence[str], domains: Sequence[str]) -> list[FilterResult]:
        texts = _texts(texts)
        if len(domains) != len(texts):
            raise Qwen25ValueError(f"{len(texts)} texts but {len(domains)} domains")
        out: list[FilterResult | None] = [None] * len(texts)
        groups: dict[str, list[int]] = {}
        for i, d in enumerate(domains):
            groups.setdefault(d, []).append(i)
        for d, idx in groups.items():
            res = self._filters.get(d, self._default).apply([texts[i] for i in idx])
            for i, r in zip(idx, res):
                out[i] = r
        return [r for r in out if r is not None]


# Named starting points for a domain's filter table (``preset = "NAME"`` in a pipeline's
# ``[filter.default]`` or ``[filter.domains.NAME]``), as tables FilterConfig.from_dict reads.
#
# "code": Gopher's quality rules, C4 and FineWeb judge prose (stop words, sentence ends, short
# lines, bullet and ellipsis lines) and remove nearly all code; the preset drops them, keeps
# Gopher's duplicated-line rules and adds BigCode's code rules (CodeConfig: line lengths and the
# alphanumeric fraction, as The Stack / StarCoder filtered code). The duplicated-line thresholds
# are measured on real code: over 4,000 .py files (over 200 characters) of an installed
# site-packages (numpy, torch, transformers, ray, ...), Gopher's prose values (0.3 of lines,
# 0.2 of characters) removed 36.6% (blank lines and lone brackets repeat in code; this
# implementation counts blank lines as lines), 0.5 / 0.3 removed 4.8%, 0.6 / 0.4 removed 1.5%
# (long tables of generated or repeated statements), 0.7 / 0.5 0.6%. The whole code preset
# removed 2.0% of those files; the web preset removed all of them.
PRESETS: dict[str, dict[str, Any]] = {
    "web": {},  # every filter with its published thresholds (the default)
    "code": {
        "gopher_quality": False,
        "c4": False,
        "fineweb": False,
        "gopher_repetition": {
            "dup_line_frac": 0.6, "dup_line_char_frac": 0.4,  # measured, see above
            "lines": "splitlines",  # blank lines count, as when the thresholds were measured
            "dup_para_frac": None, "dup_para_char_frac": None, "top_n_grams": [], "dup_n_grams": [],  # prose rules
        },  # fmt: skip
        "code": {},  # CodeConfig's thresholds (BigCode's)
    },
}


def preset_table(name: Any) -> dict[str, Any]:
    """The filter table of preset ``name`` (a copy); an unknown name raises, listing the known."""
    if not isinstance(name, str) or name not in PRESETS:
        raise Qwen25ValueError(f"unknown filter preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return json.loads(json.dumps(PRESETS[name]))


def preset(name: str) -> FilterConfig:
    """The FilterConfig of a named preset (``"web"``, ``"code"``)."""
    return FilterConfig.from_dict(preset_table(name), where=f"preset {name!r}")
