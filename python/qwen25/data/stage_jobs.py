"""The standalone ``qwen25 data`` stages as library jobs: :func:`filter_job`, :func:`dedup_job`.

Each job reads its inputs with :class:`qwen25.data.stage_io.Inputs` (the native record reader),
runs its engine, writes the kept records and the removed list through the atomic writer
(:class:`~qwen25.data.stage_io.Output`; every output is removed again if the job fails) and returns
the counts: ``records`` (read, bad lines included), ``kept``, ``bad_lines`` and ``removed``
(a :class:`~collections.Counter` of reasons). The ``qwen25 data`` command parses its arguments,
calls the job and prints these counts."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from .stage_io import Inputs, Output

__all__ = ["ReadOptions", "load_filter_config", "filter_job", "dedup_job"]


@dataclass(frozen=True, kw_only=True)
class ReadOptions:
    """How a job reads its inputs: the text field, ``skip_bad`` (bad lines go to the removed list,
    stage "read", instead of stopping the job), a progress bar, records per batch, threads, and
    ``hint``: advice appended to a bad line's error."""

    text_field: str = "text"
    skip_bad: bool = False
    progress: bool = False
    batch_size: int = 1000
    num_threads: int | None = None
    hint: str = ""


class _Outputs:
    """The outputs a job opens, all discarded if it fails."""

    def __init__(self) -> None:
        self.open: list[Output] = []

    def __call__(self, path: str | None) -> Output:
        out = Output(path)
        self.open.append(out)
        return out


@contextmanager
def _outputs() -> Iterator[_Outputs]:
    outs = _Outputs()
    try:
        yield outs
    except BaseException:
        for out in outs.open:
            out.discard()
        raise


def _inputs(paths: list[str], read: ReadOptions, removed: Output | None, desc: str, **kw: Any) -> Inputs:
    def on_bad(path: str, line: int, why: str) -> None:
        if removed is not None:
            removed.write({"file": path, "line": line, "stage": "read", "reason": f"bad_line: {why}"})

    return Inputs(
        paths, read.text_field, skip_bad=read.skip_bad, on_bad=on_bad, progress=read.progress, desc=desc,
        batch_size=read.batch_size, num_threads=read.num_threads, hint=read.hint, **kw,
    )  # fmt: skip


def load_filter_config(path: str) -> Any:
    """A FilterConfig from a .toml or .json file holding a pipeline's ``[filter.default]`` table:
    written as in pipeline.toml (``[filter.default]``, or ``[filter]`` with ``default = {...}``) or
    as its bare contents (``[c4]`` ...). Every error names the file (and the line, where the parser
    gives one); keys only ``data run`` can use (``domains``, ``enabled``, ``stats``) are errors."""
    from .filters import FilterConfig

    if not os.path.isfile(path):
        raise Qwen25FileNotFoundError(2, "no such filter config", path)
    low = path.lower()
    if not low.endswith((".toml", ".json")):
        raise Qwen25ValueError(f"{path}: a filter config must be a .toml or .json file")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{path}: invalid UTF-8 at byte {e.start}", path) from None
    if low.endswith(".json"):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"{path}:{e.lineno}: malformed JSON: {e.msg} at column {e.colno}", path, e.lineno) from None
    else:
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[no-redef,unused-ignore]
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise FormatError(f"{path}: malformed TOML: {e}", path) from None
    if not isinstance(d, dict):
        raise Qwen25ValueError(f"{path}: a filter config must be a table of filters, not {type(d).__name__}")
    if "filter" in d:  # the pipeline's layout: [filter.default]
        if set(d) != {"filter"}:
            raise Qwen25ValueError(f"{path}: holds [filter] and other tables {sorted(set(d) - {'filter'})}: write the "
                                   "thresholds either under [filter.default] or bare, not both")  # fmt: skip
        d = d["filter"]
        if not isinstance(d, dict):
            raise Qwen25ValueError(f"{path}: [filter] must be a table, not {type(d).__name__}")
        other = sorted(set(d) - {"default"})
        if other:
            raise Qwen25ValueError(f"{path}: [filter] key(s) {other} are not used by `data filter`, which takes one table, "
                                   "[filter.default] (domains, enabled and stats belong to `data run`)")  # fmt: skip
        d = d.get("default", {})
        if not isinstance(d, dict):
            raise Qwen25ValueError(f"{path}: [filter.default] must be a table, not {type(d).__name__}")
        return FilterConfig.from_dict(d, where=f"{path} [filter.default]")
    return FilterConfig.from_dict(d, where=path)


def filter_job(
    inputs: list[str],
    output: str,
    *,
    removed: str | None = None,
    config: Any = None,
    config_name: str | None = None,
    stats_field: str | None = None,
    read: ReadOptions = ReadOptions(),
) -> dict[str, Any]:
    """Quality filters (:class:`qwen25.data.filters.QualityFilter` with ``config``, default: the
    published thresholds) over ``inputs``: kept records (text as the filters leave it) to
    ``output``, the others to ``removed`` with ``filter:reason``. ``stats_field``: write each
    document's per-filter statistics there. ``config_name`` names the config in a threshold error."""
    from .filters import QualityFilter

    try:
        f = QualityFilter(config, num_threads=read.num_threads)
    except (ValueError, TypeError) as e:  # thresholds of the wrong type, as the native side reads them
        if config is None:
            raise
        raise Qwen25ValueError(f"{config_name}: {e}") from None
    sf = stats_field
    with _outputs() as opened:
        out, rem = opened(output), opened(removed)
        reader = _inputs(inputs, read, rem, "filter")
        n = 0
        why: Counter[str] = Counter()
        for batch in reader.batches():
            n += len(batch)
            for d, r in zip(batch, f.apply([d.text for d in batch])):
                stats = {sf: r.stats} if sf else {}
                if r.keep:
                    out.write({**d.rec, read.text_field: r.final_text(d.text), **stats})
                else:
                    why[f"{r.filter}"] += 1
                    rem.write({"file": d.path, "line": d.line, "stage": "filter", "reason": f"{r.filter}:{r.reason}", **stats})
        out.close()
        rem.close()
    return {"records": n + reader.bad, "kept": out.n, "bad_lines": reader.bad, "removed": why}
