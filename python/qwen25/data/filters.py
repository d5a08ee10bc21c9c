"""Heuristic quality filters (Gopher repetition, Gopher quality, C4, FineWeb), run in Rust.

The thresholds default to datatrove's, except FineWeb's duplicated-line-character ratio, pinned
at 0.1 as FineWeb ran it. The filters run in FineWeb's order: Gopher repetition, Gopher quality,
C4 (which may drop lines; later filters see the shortened text), FineWeb. A ``None`` filter is
switched off; a ``None`` (or 0) threshold switches that one check off, as in datatrove.

Two departures from datatrove, stated so results are not mistaken for NLTK's: words come from a
whitespace split with leading/trailing punctuation peeled off (not NLTK ``word_tokenize``), and
C4 counts sentences by splitting after ``.!?`` (+ closing quotes/brackets) and whitespace (not
punkt). A whitespace-only document is dropped by filter ``"empty"``.

These filters judge prose. :data:`PRESETS` names starting points per domain: ``"web"`` (all of
the above, the default) and ``"code"`` (no prose rules; Gopher's duplicated-line rules at
thresholds measured on real code, plus BigCode's line-length and alphanumeric rules,
:class:`CodeConfig`); ``preset("code")`` builds one, and a pipeline's ``[filter.domains.NAME]``
takes ``preset = "code"``.

>>> from qwen25.data import QualityFilter
>>> r = QualityFilter().apply(["too short"])[0]
>>> (r.keep, r.filter, r.reason)
(False, 'gopher_quality', 'gopher_short_doc')
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


@dataclass(frozen=True, kw_only=True)
class GopherRepetitionConfig:
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


@dataclass(frozen=True, kw_only=True)
class GopherQualityConfig:
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")


@dataclass(frozen=True, kw_only=True)
class C4Config:
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = 5  # -1 disables
    min_words_per_line: int = 3  # -1 disables
    max_word_length: int = 1000  # -1 disables
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


@dataclass(frozen=True, kw_only=True)
class FineWebConfig:
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.1  # FineWeb's value (datatrove's default is 0.01)
    new_line_ratio: float = 0.3


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
                else:  # tuples: lists in TOML
                    ok = isinstance(val, (list, tuple))
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
