"""The schema of ``pipeline.toml``: one frozen, keyword-only dataclass per table, each default
written once (in the field), each key typed. :func:`parse_config` turns the TOML into a
:class:`PipelineConfig`; every error names the TOML file, the table and the key, and an unknown
key is an error that lists the known ones. Paths are resolved against the TOML's folder here, so
nothing later depends on the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import FormatError, Qwen25FileNotFoundError, Qwen25IOError, Qwen25TypeError, Qwen25ValueError

__all__ = [
    "ClassifySection",
    "DecontaminateSection",
    "DedupSection",
    "ENGINES",
    "FilterSection",
    "MixPhase",
    "MixSection",
    "PackSection",
    "PipelineConfig",
    "PipelineSection",
    "STOP_AFTER",
    "ScoreSection",
    "Source",
    "load_config",
    "parse_config",
]

ENGINES = ("local", "ray")
# ``--stop-after`` / ``[pipeline] stop_after``: the stages after which a run can stop, leaving
# a JSONL of the survivors (``survivors.jsonl``) instead of mixing and packing.
STOP_AFTER = ("filter", "dedup", "decontaminate", "mix")
# How the job runs, not what it computes: left out of the resume fingerprint.
EXEC_KEYS = ("engine", "ray_address", "concurrency", "num_threads", "batch_size")


def resolve_path(base: str, path: str) -> str:
    """A path of the TOML, relative to its folder; ``~`` is the home folder (as a shell reads
    it: ``output = "~/out"`` made a folder named ``~`` beside the TOML)."""
    return os.path.join(base, os.path.expanduser(path))


def _key(default: Any = dataclasses.MISSING, kind: type | tuple[type, ...] = object, *, minimum: float | None = None,
         choices: tuple[Any, ...] | None = None, factory: Any = None) -> Any:  # fmt: skip
    """A dataclass field that also records how its TOML value is checked."""
    meta = {"kind": kind, "minimum": minimum, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _check(value: Any, name: str, f: dataclasses.Field[Any], where: str) -> Any:
    m = f.metadata
    return check_value(value, name, where, m["kind"], minimum=m["minimum"], choices=m["choices"])


def check_value(value: Any, name: str, where: str, kind: type | tuple[type, ...] = object, *,
                minimum: float | None = None, choices: tuple[Any, ...] | None = None) -> Any:  # fmt: skip
    """``value`` checked against ``kind`` (an int is a float too; a bool is no number),
    ``minimum`` and ``choices``; errors name ``where`` and the key."""
    if value is None:
        return value
    if choices is not None:
        if value not in choices:
            raise Qwen25ValueError(f"{where}: {name} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if object in kinds:
        return value
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise Qwen25ValueError(f"{where}: {name} must be {names}, got {value!r}")
    if minimum is not None and value < minimum:
        raise Qwen25ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return value


def _build(cls: Any, table: Any, where: str, **extra: Any) -> Any:
    """``cls(**table)`` with unknown keys and wrong types reported against ``where``."""
    if not isinstance(table, Mapping):
        raise Qwen25ValueError(f"{where}: must be a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in extra}
    bad = sorted(set(table) - set(fields))
    if bad:
        raise Qwen25ValueError(f"{where}: unknown key(s) {bad} (known: {sorted(fields)})")
    missing = [n for n, f in fields.items() if n not in table and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # fmt: skip
    if missing:
        raise Qwen25ValueError(f"{where}: needs {', '.join(missing)}")
    return cls(**{k: _check(v, k, fields[k], where) for k, v in table.items()}, **extra)


# ---- the tables ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PipelineSection:
    """``[pipeline]``."""

    output: str = _key(kind=str)  # folder for everything, relative to the TOML
    batch_size: int = _key(1000, int, minimum=1)  # input lines per batch (results never depend on it)
    num_threads: int | None = _key(None, int, minimum=1)  # default QWEN25_NUM_THREADS / all cores; 1 per Ray actor
    on_bad_line: str = _key("error", choices=("error", "skip"))
    engine: str = _key("local", choices=ENGINES)
    ray_address: str | None = _key(None, str)
    concurrency: int | None = _key(None, int, minimum=1)  # actors per stage under Ray
    stop_after: str | None = _key(None, choices=STOP_AFTER)


@dataclass(frozen=True, kw_only=True)
class SourceTable:
    """One ``[[sources]]`` table as written."""

    name: str = _key(kind=str)
    paths: Any = _key(kind=(str, list))
    text_field: str = _key("text", str)
    id_field: str | None = _key(None, str)
    domain: str | None = _key(None, str)  # default: the source name


@dataclass(frozen=True, kw_only=True)
class Source:
    """A source with its files found (sorted, per glob in order)."""

    name: str
    files: tuple[str, ...]
    text_field: str
    id_field: str | None
    domain: str


@dataclass(frozen=True, kw_only=True)
class FilterSection:
    """``[filter]``: ``default`` and ``domains.NAME`` are filter tables as
    :meth:`qwen25.data.filters.FilterConfig.from_dict` reads them, plus ``preset`` (a name in
    :data:`qwen25.data.filters.PRESETS`); a domain's table overrides the default key by key."""

    enabled: bool = _key(True, bool)
    stats: str = _key("removed", choices=("removed", "all"))
    default: dict[str, Any] = _key(kind=dict, factory=dict)
    domains: dict[str, Any] = _key(kind=dict, factory=dict)


@dataclass(frozen=True, kw_only=True)
class DedupSection:
    """``[dedup]``: exact dedup (xxh3-128, first occurrence kept) and MinHash (FineWeb's shape)."""

    exact: bool = _key(True, bool)
    exact_lowercase: bool = _key(False, bool)
    exact_strip_punct: bool = _key(False, bool)
    exact_collapse_ws: bool = _key(False, bool)
    minhash: bool = _key(True, bool)
    minhash_lowercase: bool = _key(True, bool)
    minhash_strip_punct: bool = _key(True, bool)
    minhash_collapse_ws: bool = _key(True, bool)
    minhash_datatrove_words: bool = _key(True, bool)
    minhash_sign_short_docs: bool = _key(False, bool)
    num_perm: int = _key(112, int, minimum=1)
    bands: int = _key(14, int, minimum=1)
    rows: int = _key(8, int, minimum=1)
    ngram: int = _key(5, int, minimum=1)
    seed: int = _key(1, int, minimum=0)
    mem_budget: int = _key(1 << 30, int, minimum=1)


@dataclass(frozen=True, kw_only=True)
class DecontaminateSection:
    """``[decontaminate]``: ``Decontaminator(**options).check(texts)``; skipped (and reported)
    without a ``test_set``. ``options`` keys are checked against ``Decontaminator.__init__``."""

    enabled: bool = _key(True, bool)
    options: dict[str, Any] = _key(kind=dict, factory=dict)


@dataclass(frozen=True, kw_only=True)
class ScoreSection:
    """``[score]``: model-based quality scoring with a chat checkpoint (:class:`LMScorer`)."""

    model: str = _key(kind=str)  # a checkpoint folder (resolved against the TOML)
    dimensions: dict[str, str] | None = _key(None, dict)
    min: dict[str, float] = _key(kind=dict, factory=dict)
    max_doc_tokens: int = _key(2048, int, minimum=1)
    batch_size: int = _key(8, int, minimum=1)
    device: str | None = _key(None, str)  # default: cuda when available, else cpu
    dtype: str | None = _key(None, str)  # default: the checkpoint's


@dataclass(frozen=True, kw_only=True)
class ClassifySection:
    """``[classify]``: a DomainClassifier file whose label becomes the domain."""

    model: str | None = _key(None, str)


@dataclass(frozen=True, kw_only=True)
class MixPhase:
    """One ``[[mix.phases]]`` table (``total`` is ``total_tokens`` or ``total_docs`` by unit)."""

    name: str
    weights: dict[str, float] | None = None
    temperature: float | None = None
    total: float | None = None
    max_repeat: float  # default: [mix] max_repeat
    seq_len: int  # default: [pack] seq_len
    long_share: float | None = None
    long_min: int | None = None


@dataclass(frozen=True, kw_only=True)
class MixSection:
    """``[mix]``: proportions by tokens (default) or documents; or ``[[mix.phases]]``."""

    weights: dict[str, float] | None = _key(None, object)
    temperature: float | None = _key(None, float)
    unit: str = _key("tokens", choices=("tokens", "docs"))
    max_repeat: float = _key(1.0, float)
    total_tokens: float | None = _key(None, float, minimum=0)
    total_docs: float | None = _key(None, float, minimum=0)
    seed: int = _key(0, int, minimum=0)
    mode: str = _key("smooth", choices=("smooth", "random"))
    phases: tuple[MixPhase, ...] = _key(kind=list, factory=tuple)


@dataclass(frozen=True, kw_only=True)
class PackSection:
    """``[pack]``."""

    seq_len: int = _key(4096, int, minimum=1)
    seqs_per_shard: int = _key(16384, int, minimum=1)


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """A whole ``pipeline.toml``, checked, with paths resolved."""

    path: str  # the TOML file (absolute), or "pipeline config" for a dict without one
    base: str  # the folder paths are relative to
    pipeline: PipelineSection
    sources: tuple[Source, ...]
    filter: FilterSection
    dedup: DedupSection
    decontaminate: DecontaminateSection
    score: ScoreSection | None
    classify: ClassifySection
    mix: MixSection
    pack: PackSection

    @property
    def output(self) -> str:
        return resolve_path(self.base, self.pipeline.output)


_TABLES = ("pipeline", "sources", "filter", "dedup", "decontaminate", "score", "classify", "mix", "pack")


# ---- reading ---------------------------------------------------------------------------------


def _tomllib() -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef,unused-ignore]
    return tomllib


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a pipeline TOML as a dict (with ``_path``, the file); syntax errors raise
    FormatError naming file:line."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise Qwen25FileNotFoundError(2, "no such pipeline file", path) from None
    except OSError as e:  # a folder, an unreadable file
        raise Qwen25IOError(e.errno, f"cannot read the pipeline file ({e.strerror or e})", path) from None
    try:
        cfg: dict[str, Any] = _tomllib().loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise FormatError(f"{path}:0: not UTF-8 ({e})", path, 0) from None
    except Exception as e:  # tomllib.TOMLDecodeError
        m = re.search(r"line (\d+)", str(e))
        line = int(m.group(1)) if m else 0
        raise FormatError(f"{path}:{line}: {e}", path, line) from None
    cfg["_path"] = os.path.abspath(path)
    return cfg


def check_weights(w: Any, where: str) -> None:
    if w is None:
        return
    if not isinstance(w, dict) or not w:
        raise Qwen25ValueError(f"{where}: weights must be a table of domain = number, got {w!r}")
    for k, v in w.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise Qwen25ValueError(f"{where}: weight of {k!r} must be a number >= 0, got {v!r}")
    if sum(w.values()) <= 0:
        raise Qwen25ValueError(f"{where}: weights sum to 0")


def parse_config(cfg: Mapping[str, Any], *, engine: str | None = None) -> PipelineConfig:
    """Check a pipeline TOML (as :func:`load_config` reads it) and resolve its paths. Every
    check that needs no reading of the inputs happens here, Rust-side filter configurations
    included, so a bad value fails before anything is read or written."""
    if not isinstance(cfg, Mapping):
        raise Qwen25TypeError(f"a pipeline config must be a table (a dict, as load_config reads a TOML), not {type(cfg).__name__}")
    where = cfg.get("_path", "pipeline config")
    base = os.path.dirname(where) if os.path.isfile(where) else os.getcwd()
    bad = sorted(set(cfg) - set(_TABLES) - {"_path"})
    if bad:
        raise Qwen25ValueError(f"{where}: unknown section(s) {bad} (known: {sorted(_TABLES)})")
    if not isinstance(cfg.get("pipeline"), Mapping) or "output" not in cfg["pipeline"]:
        raise Qwen25ValueError(f"{where}: [pipeline] needs output = \"folder\"")
    pipe: PipelineSection = _build(PipelineSection, cfg.get("pipeline", {}), f"{where} [pipeline]")
    if not pipe.output:
        raise Qwen25ValueError(f"{where}: [pipeline] output must be a folder name, got {pipe.output!r}")
    from ..stage_jobs import check_threads

    check_threads(pipe.num_threads, f"{where} [pipeline]: num_threads")
    out_dir = resolve_path(base, pipe.output)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise Qwen25ValueError(f"{where} [pipeline]: output {pipe.output!r} is a file ({out_dir}); it must be a folder")
    if engine is not None:
        pipe = dataclasses.replace(pipe, engine=check_value(engine, "engine", where, choices=ENGINES))
    if pipe.engine == "ray":
        import importlib.util

        missing = [m for m in ("ray", "pyarrow") if importlib.util.find_spec(m) is None]
        if missing:
            raise Qwen25ValueError(f"{where}: engine 'ray' needs {missing}: pip install 'ray[data]' pyarrow")
    sources = _sources(cfg.get("sources"), where, base, resolve_path(base, pipe.output))
    flt: FilterSection = _build(FilterSection, cfg.get("filter", {}), f"{where} [filter]")
    dedup = _dedup(cfg.get("dedup", {}), where)
    decon = _decontaminate(cfg.get("decontaminate", {}), where, base)
    score = _score(cfg["score"], where, base) if cfg.get("score") else None
    classify: ClassifySection = _build(ClassifySection, cfg.get("classify", {}), f"{where} [classify]")
    if classify.model is not None:
        classify = ClassifySection(model=resolve_path(base, classify.model))
    pack: PackSection = _build(PackSection, cfg.get("pack", {}), f"{where} [pack]")
    mix = _mix(cfg.get("mix", {}), where, pack)
    out = PipelineConfig(path=where, base=base, pipeline=pipe, sources=sources, filter=flt, dedup=dedup,
                         decontaminate=decon, score=score, classify=classify, mix=mix, pack=pack)  # fmt: skip
    if flt.enabled:
        filter_tables(flt, where, check=True)
    _check_domains(out)
    return out


def resolve_filter_table(table: Any, where: str, fallback: Mapping[str, Any]) -> dict[str, Any]:
    """A filter table with its ``preset`` resolved: the preset's table (or ``fallback`` without
    one) with the table's other keys over it, key by key (a filter's table changes only the
    thresholds it names). Errors name ``where``."""
    from ..filters import preset_table

    if not isinstance(table, Mapping):
        raise Qwen25ValueError(f"{where}: must be a table, got {table!r}")
    if "preset" in table:
        try:
            start = preset_table(table["preset"])
        except Qwen25ValueError as e:
            raise Qwen25ValueError(f"{where}: preset: {e}") from None
    else:
        start = dict(fallback)
    out = dict(start)
    for k, val in table.items():
        if k == "preset":
            continue
        b = out.get(k)
        out[k] = {**b, **val} if isinstance(b, dict) and isinstance(val, Mapping) else val
    return out


def filter_tables(flt: FilterSection, where: str, *, check: bool = False) -> dict[str, Any]:
    """``{"default": table, "domains": {domain: table}}`` as
    :meth:`qwen25.data.filters.FilterConfig.from_dict` reads them. A table may name a
    ``preset`` (:data:`qwen25.data.filters.PRESETS`; a domain without one starts from the
    default table); its other keys override the preset's, and a domain's the default's, key by
    key (``gopher_quality = false`` drops that filter; a table changes only the thresholds it
    names). With ``check``, every configuration is built once, Rust side included, so errors
    name the TOML file and come before any reading."""
    default = resolve_filter_table(flt.default, f"{where} [filter.default]", {})
    doms = {d: resolve_filter_table(v, f"{where} [filter.domains.{d}]", default) for d, v in flt.domains.items()}
    if check:
        from ... import _native
        from ..filters import FilterConfig

        for name, table in [("default", default)] + [(f"domains.{d}", t) for d, t in doms.items()]:
            w = f"{where} [filter.{name}]"
            fc = FilterConfig.from_dict(table, where=w)
            try:
                _native.QualityFilters(fc.to_json())
            except (ValueError, TypeError) as e:
                raise Qwen25ValueError(f"{w}: {e}") from None
    return {"default": default, "domains": doms}


def _sources(srcs: Any, where: str, base: str, output: str) -> tuple[Source, ...]:
    """The ``[[sources]]`` with their files found (:func:`qwen25.data.stage_io.expand_globs`: an
    existing file as named, else a glob whose ``**`` spans folders; a file matched twice is read
    once). Errors: a file inside the output folder (a rerun would read the run's own kept.jsonl,
    survivors.jsonl, ... as input; as for ``qwen25 decontaminate``), a file of two sources, two
    sources of one name."""
    root = os.path.realpath(output)
    if not isinstance(srcs, list) or not srcs:
        raise Qwen25ValueError(f"{where}: needs at least one [[sources]] table")
    from ..stage_io import expand_globs

    out = []
    names: dict[str, int] = {}  # source name -> its index
    owner: dict[str, tuple[int, str]] = {}  # file (real path) -> the source that reads it
    for i, s in enumerate(srcs):
        w = f"{where}: sources[{i}]"
        if not isinstance(s, Mapping) or "name" not in s or "paths" not in s:
            raise Qwen25ValueError(f"{w} needs name and paths")
        t: SourceTable = _build(SourceTable, s, w)
        pats = [t.paths] if isinstance(t.paths, str) else t.paths
        if not isinstance(pats, list) or not pats or not all(isinstance(x, str) and x for x in pats):
            raise Qwen25ValueError(f"{w} paths must be a glob or a non-empty list of globs, got {t.paths!r}")
        for key in ("name", "text_field", "id_field", "domain"):
            v = getattr(t, key)
            if key in s and not v:
                raise Qwen25ValueError(f"{w} {key} must be a non-empty string, got {v!r}")
        if t.name in names:
            raise Qwen25ValueError(f"{w} name {t.name!r} is also the name of sources[{names[t.name]}]: each source needs its own")
        names[t.name] = i
        files = expand_globs(pats, f"{w} ({t.name!r})", base)
        for h in files:
            real = os.path.realpath(h)
            if os.path.commonpath([real, root]) == root:
                raise Qwen25ValueError(f"{w} ({t.name!r}): {h} is inside the output folder {output} (the run writes "
                                       "there, and a rerun would read its own outputs): move the output or the input")  # fmt: skip
            other = owner.setdefault(real, (i, t.name))
            if other[0] != i:
                raise Qwen25ValueError(f"{w} ({t.name!r}): {h} is also a file of sources[{other[0]}] ({other[1]!r}): "
                                       "its records would be read twice")  # fmt: skip
        out.append(Source(name=t.name, files=tuple(files), text_field=t.text_field, id_field=t.id_field,
                          domain=t.domain if t.domain is not None else t.name))  # fmt: skip
    return tuple(out)


def _dedup(table: Any, where: str) -> DedupSection:
    d: DedupSection = _build(DedupSection, table, f"{where} [dedup]")
    if d.minhash:
        from ..dedup import MinHashDeduplicator

        try:  # bands x rows must equal num_perm, and so on: checked here, not after reading
            MinHashDeduplicator(d.num_perm, d.bands, d.rows, d.ngram, d.seed)
        except Qwen25ValueError as e:
            raise Qwen25ValueError(f"{where} [dedup]: {e}") from None
    return d


# What [decontaminate] options cannot hold, and why (everything else is a keyword of
# Decontaminator.__init__, read from its signature so the two cannot drift apart).
_DECONTAM_NOT_OPTIONS = {
    "field": "the pipeline passes each source's text_field text; set text_field in [[sources]]",
    "num_threads": "set [pipeline] num_threads (the decontamination check uses it)",
    "tokenizer": "the Qwen2.5 tokenizer is used; it cannot be given in TOML",
}


def check_decontam_options(opts: Mapping[str, Any], where: str) -> None:
    """Every key of ``[decontaminate] options`` must be a keyword that
    ``Decontaminator.__init__`` takes (checked before any reading, naming the file and key)."""
    import inspect

    from ..decontam import Decontaminator

    params = inspect.signature(Decontaminator.__init__).parameters
    known = sorted(n for n, p in params.items() if n != "self" and n not in _DECONTAM_NOT_OPTIONS
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))  # fmt: skip
    for key in sorted(opts):
        if key in _DECONTAM_NOT_OPTIONS:
            raise Qwen25ValueError(f"{where}: options.{key} is not a Decontaminator option: {_DECONTAM_NOT_OPTIONS[key]}")
        if key not in known:
            raise Qwen25ValueError(f"{where}: unknown option options.{key} (known: {known})")
    # the values too, here and not when the index is built after the scan phase
    for key, kw in _DECONTAM_VALUES.items():
        if key in opts:
            check_value(opts[key], f"options.{key}", where, **kw)
    ratio, window = opts.get("lcs_ratio"), opts.get("window", "auto")
    if ratio is not None and not 0 <= ratio <= 1:
        raise Qwen25ValueError(f"{where}: options.lcs_ratio must be in [0, 1], got {ratio!r}")
    if window != "auto":
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise Qwen25ValueError(f"{where}: options.window must be \"auto\" or an int >= 1, got {window!r}")
        if opts.get("mode", "qwen") != "qwen":
            raise Qwen25ValueError(f"{where}: options.window applies to mode = \"qwen\" only, got mode = {opts['mode']!r}")


# How the values of [decontaminate] options are checked (Decontaminator's own rules).
_DECONTAM_VALUES: dict[str, dict[str, Any]] = {
    "mode": {"choices": ("qwen", "lcs", "ngram")},
    "ngram": {"kind": int, "minimum": 1},
    "lcs_min": {"kind": int, "minimum": 1},
    "lcs_ratio": {"kind": float},
    "prefilter": {"kind": bool},
}


def _decontaminate(table: Any, where: str, base: str) -> DecontaminateSection:
    w = f"{where} [decontaminate]"
    if isinstance(table, Mapping) and "options" in table and not isinstance(table["options"], dict):
        raise Qwen25ValueError(f"{w}: options must be a table, got {table['options']!r}")
    d: DecontaminateSection = _build(DecontaminateSection, table, w)
    opts = d.options
    ts = opts.get("test_set")
    if isinstance(ts, str) and d.enabled:
        from .. import benchmarks

        if ts.lower() not in benchmarks.names():  # a file: relative to the TOML, like every path here
            path = resolve_path(base, ts)
            if not os.path.exists(path):
                raise Qwen25FileNotFoundError(2, f"[decontaminate] test_set is neither a benchmark ({', '.join(benchmarks.names())}) nor a file", path)
            d = DecontaminateSection(enabled=d.enabled, options={**opts, "test_set": path})
    check_decontam_options(opts, w)
    return d


def _score(table: Any, where: str, base: str) -> ScoreSection:
    sw = f"{where} [score]"
    if not isinstance(table, Mapping) or not isinstance(table.get("model"), str):
        raise Qwen25ValueError(f"{sw}: needs model = \"checkpoint folder\"")
    s: ScoreSection = _build(ScoreSection, table, sw)
    mpath = resolve_path(base, s.model)
    if not os.path.isfile(os.path.join(mpath, "config.json")):
        raise Qwen25FileNotFoundError(2, "[score] model is not a checkpoint folder (no config.json)", mpath)
    dims = s.dimensions
    if dims is not None and (not dims or not all(isinstance(v, str) for v in dims.values())):
        raise Qwen25ValueError(f"{sw}: dimensions must be a table of name = \"what is rated\"")
    from ..classify import LM_DIMENSIONS

    names = set(dims or LM_DIMENSIONS)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in s.min.values()):
        raise Qwen25ValueError(f"{sw}: min must be a table of dimension = number")
    if set(s.min) - names:
        raise Qwen25ValueError(f"{sw}: min names unknown dimension(s) {sorted(set(s.min) - names)} (dimensions: {sorted(names)})")
    return dataclasses.replace(s, model=mpath)


_PHASE_KINDS: dict[str, tuple[Any, float | None]] = {
    "name": (str, None), "weights": (object, None), "temperature": (float, None), "total": (float, 0),
    "max_repeat": (float, None), "seq_len": (int, 1), "long_share": (float, None), "long_min": (int, 1),
}  # fmt: skip


def _mix(table: Any, where: str, pack: PackSection) -> MixSection:
    mw = f"{where} [mix]"
    raw_phases = table.get("phases") if isinstance(table, Mapping) else None
    body = {k: v for k, v in table.items() if k != "phases"} if isinstance(table, Mapping) else table
    m: MixSection = _build(MixSection, body, mw)
    other = "total_docs" if m.unit == "tokens" else "total_tokens"
    if other in body:
        raise Qwen25ValueError(f"{where}: [mix] {other} needs unit = {'docs' if m.unit == 'tokens' else 'tokens'!r}")
    if m.max_repeat <= 0:
        raise Qwen25ValueError(f"{mw}: max_repeat must be > 0, got {m.max_repeat!r}")
    check_weights(m.weights, mw)
    if raw_phases and (set(body) & {"weights", "total_tokens", "total_docs", "temperature"}):
        raise Qwen25ValueError(f"{mw}: with [[mix.phases]], give weights, totals and temperature per phase, not in [mix]")
    if m.weights is not None and m.temperature is not None:
        raise Qwen25ValueError(f"{mw}: give weights or temperature, not both")
    if raw_phases is None:
        try:  # the mix's own checks (finite weights and totals, temperature > 0, ...), before any reading
            ph = _plain_phase(m, pack.seq_len)
        except Qwen25ValueError as e:
            raise Qwen25ValueError(f"{mw}: {str(e).removeprefix(_PLAIN_PHASE_PREFIX)}") from None
        _bounded(ph, mw, "total_tokens" if m.unit == "tokens" else "total_docs")
        return m
    if not isinstance(raw_phases, list) or not all(isinstance(x, dict) for x in raw_phases):
        raise Qwen25ValueError(f"{where}: [[mix.phases]] must be tables")
    total_key = "total_tokens" if m.unit == "tokens" else "total_docs"
    known = {"name", "weights", "temperature", total_key, "max_repeat", "seq_len", "long_share", "long_min"}
    names: set[str] = set()
    phases = []
    for i, ph in enumerate(raw_phases):
        w = f"{where}: [[mix.phases]] #{i + 1}"
        bad = sorted(set(ph) - known)
        if bad:
            raise Qwen25ValueError(f"{w}: unknown key(s) {bad} (known: {sorted(known)})")
        name = ph.get("name")
        if not isinstance(name, str) or not name or name in names or "/" in name or os.sep in name or name.startswith("."):
            raise Qwen25ValueError(f"{w}: needs a unique name usable as a folder name, got {name!r}")
        w = f"{where}: [[mix.phases]] {name!r}"
        names.add(name)
        check_weights(ph.get("weights"), w)
        if "weights" in ph and "temperature" in ph:
            raise Qwen25ValueError(f"{w}: give weights or temperature, not both")
        vals = {("total" if k == total_key else k): v for k, v in ph.items()}
        checked = {}
        for k, v in vals.items():
            kind, lo = _PHASE_KINDS[k]
            checked[k] = check_value(v, total_key if k == "total" else k, w, kind, minimum=lo)
        checked.setdefault("max_repeat", m.max_repeat)
        checked.setdefault("seq_len", pack.seq_len)
        p = MixPhase(**checked)
        try:  # the mix's own checks (shares in [0, 1], max_repeat > 0, ...), before any reading
            mp = to_mix_phase(p)
        except Qwen25ValueError as e:
            raise Qwen25ValueError(f"{w}: {e}") from None
        _bounded(mp, w, total_key)
        phases.append(p)
    return dataclasses.replace(m, phases=tuple(phases))


def _bounded(ph: Any, where: str, total_key: str) -> None:
    """An infinite ``max_repeat`` needs a total: the most that meets the weights within infinite
    epochs is unbounded (the mix failed on it after the scan, "quota must be finite")."""
    import math

    if ph.tokens is None and ph.max_repeat is not None and math.isinf(ph.max_repeat):
        raise Qwen25ValueError(f"{where}: max_repeat = inf needs {total_key} (without it the mix would be endless)")


def to_mix_phase(p: MixPhase) -> Any:
    """The :class:`qwen25.data.mix.Phase` a ``[[mix.phases]]`` table describes."""
    from ..mix import Phase

    return Phase(p.name, p.weights, p.total, {}, seq_len=p.seq_len, long_share=p.long_share, long_min=p.long_min,
                 max_repeat=p.max_repeat, temperature=p.temperature)  # fmt: skip


def mix_phases(cfg: PipelineConfig) -> list[Any]:
    """The mix's phases (:class:`qwen25.data.mix.Phase`): ``[[mix.phases]]`` in order, or
    ``[mix]`` itself as one unnamed phase (packed to ``packed/``)."""
    m = cfg.mix
    if m.phases:
        return [to_mix_phase(p) for p in m.phases]
    return [_plain_phase(m, cfg.pack.seq_len)]


_PLAIN_PHASE_PREFIX = "phase '': "  # how the mix names the unnamed phase in its errors


def _plain_phase(m: MixSection, seq_len: int) -> Any:
    """``[mix]`` without ``[[mix.phases]]`` as one unnamed :class:`qwen25.data.mix.Phase`."""
    from ..mix import Phase

    w = m.weights or None
    total = m.total_tokens if m.unit == "tokens" else m.total_docs
    # without weights or a temperature every document is taken once, whatever max_repeat says
    return Phase("", w, total, {}, seq_len=seq_len, max_repeat=m.max_repeat if (w or m.temperature) else 1.0,
                 temperature=m.temperature)  # fmt: skip


def _check_domains(cfg: PipelineConfig) -> None:
    """Weights must name domains that can exist: a source's domain or a classifier label;
    ``[filter.domains.NAME]`` a source's domain (the filters run before classification), so a
    misspelt one does not leave its domain to the default filters unnoticed."""
    known = {s.domain for s in cfg.sources}
    if cfg.filter.enabled:
        unknown = sorted(set(cfg.filter.domains) - known)
        if unknown:
            raise Qwen25ValueError(f"{cfg.path} [filter.domains]: {unknown} name(s) no source's domain "
                                   f"(domains: {sorted(known)})")  # fmt: skip
    model = cfg.classify.model
    if model is not None:
        from ..classify import DomainClassifier

        try:
            known = set(DomainClassifier.load(model).labels)
        except OSError as e:
            raise Qwen25FileNotFoundError(2, f"[classify] model cannot be read ({e})", model) from None
    tables = [("[mix]", cfg.mix.weights)] + [(f"[[mix.phases]] {p.name!r}", p.weights) for p in cfg.mix.phases]
    for what, w in tables:
        unknown = sorted(set(w or {}) - known)
        if unknown:
            raise Qwen25ValueError(f"{cfg.path} {what}: weights name unknown domain(s) {unknown} (domains: {sorted(known)})")
