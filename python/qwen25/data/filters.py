"""Heuristic quality filters (Gopher repetition, Gopher quality, C4, FineWeb), run in Rust.

The thresholds default to datatrove's, except FineWeb's duplicated-line-character ratio, pinned
at 0.1 as FineWeb ran it. The filters run in FineWeb's order: Gopher repetition, Gopher quality,
C4 (which may drop lines; later filters see the shortened text), FineWeb. A ``None`` filter is
switched off; a ``None`` (or 0) threshold switches that one check off, as in datatrove.

Two departures from datatrove, stated so results are not mistaken for NLTK's: words come from a
whitespace split with leading/trailing punctuation peeled off (not NLTK ``word_tokenize``), and
C4 counts sentences by splitting after ``.!?`` (+ closing quotes/brackets) and whitespace (not
punkt). A whitespace-only document is dropped by filter ``"empty"``.

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
    "DomainFilters",
    "FilterConfig",
    "FilterResult",
    "FineWebConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "QualityFilter",
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


_SECTIONS = {
    "gopher_repetition": GopherRepetitionConfig,
    "gopher_quality": GopherQualityConfig,
    "c4": C4Config,
    "fineweb": FineWebConfig,
}


@dataclass(frozen=True, kw_only=True)
class FilterConfig:
    """Which filters run and their thresholds."""

    gopher_repetition: GopherRepetitionConfig | None = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig | None = field(default_factory=GopherQualityConfig)
    c4: C4Config | None = field(default_factory=C4Config)
    fineweb: FineWebConfig | None = field(default_factory=FineWebConfig)

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
        return json.dumps(dataclasses.asdict(self))


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
        rows = self._inner.apply(_texts(texts), self.num_threads)
        return [FilterResult(k, f, r, s, t) for k, f, r, s, t in rows]


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
PRESETS: dict[str, dict[str, Any]] = {
    "web": {},  # every filter with its published thresholds (the default)
}


def preset_table(name: Any) -> dict[str, Any]:
    """The filter table of preset ``name`` (a copy); an unknown name raises, listing the known."""
    if not isinstance(name, str) or name not in PRESETS:
        raise Qwen25ValueError(f"unknown filter preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return json.loads(json.dumps(PRESETS[name]))
