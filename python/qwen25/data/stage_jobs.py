"""The standalone ``qwen25 data`` stages as library jobs: :func:`filter_job`, :func:`dedup_job`,
:func:`train_classifier_job` / :func:`evaluate_classifier_job` / :func:`classify_job`,
:func:`score_job` and :func:`pack_job` (``data mix`` is :func:`qwen25.data.mix.mix_jsonl`).

Each job reads its inputs with :class:`qwen25.data.stage_io.Inputs` (the native record reader),
runs its engine, writes the kept records and the removed list through the atomic writer
(:class:`~qwen25.data.stage_io.Output`; every output is removed again if the job fails) and returns
the counts (filter and dedup: ``records`` read, bad lines included, ``kept``, ``bad_lines`` and
``removed``, a :class:`~collections.Counter` of reasons). The ``qwen25 data`` command parses its arguments,
calls the job and prints these counts."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from .stage_io import Inputs, Output, as_paths

__all__ = [
    "ReadOptions", "load_filter_config", "filter_job", "dedup_job", "train_classifier_job", "evaluate_classifier_job",
    "classify_job", "score_job", "pack_job", "distinct_outputs", "check_threads",
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ReadOptions:
    """How a job reads its inputs: the text field, ``skip_bad`` (bad lines go to the removed list,
    stage "read", instead of stopping the job; a truncated or corrupt compressed file then keeps the
    records before the damage, lists the damage there too and names it in the counts' ``damaged``),
    a progress bar, records per batch, threads, and
    ``hint``: advice appended to a bad line's error."""

    text_field: str = "text"
    skip_bad: bool = False
    progress: bool = False
    batch_size: int = 1000
    num_threads: int | None = None
    hint: str = ""

    def __post_init__(self) -> None:
        check_threads(self.num_threads)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise Qwen25ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}")


def check_threads(num_threads: Any, what: str = "num_threads") -> None:
    """``num_threads`` must be None (the default) or an int from 1 to ``MAX_THREADS`` (a pool of
    100,000 threads hangs the job while it is built; 0 and negatives mean nothing)."""
    from .decontam_job import MAX_THREADS

    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or not 1 <= num_threads <= MAX_THREADS):  # fmt: skip
        raise Qwen25ValueError(f"{what} must be an int from 1 to {MAX_THREADS}, got {num_threads!r}")


class _Outputs:
    """The outputs a job opens, all discarded if it fails."""

    def __init__(self) -> None:
        self.open: list[Output] = []

    def __call__(self, path: str | None) -> Output:
        out = Output(path)
        self.open.append(out)
        return out


def distinct_outputs(inputs: Iterable[str] = (), **paths: str | None) -> None:
    """A :class:`Qwen25ValueError` when two of the named output paths (None: not written) are
    the same file (their writers would share one temporary and the job would end in a bogus
    "cannot be written" with a mix of both outputs left behind), or when one of them other than
    ``output`` is one of ``inputs`` (the removed list, a report or a model would replace the
    records; ``output`` may rewrite an input in place: every record is in it or the removed list)."""
    seen: dict[str, str] = {}
    ins = {os.path.realpath(p): p for p in inputs}
    for name, p in paths.items():
        if not p:
            continue
        key = os.path.realpath(p)
        if key in seen:
            raise Qwen25ValueError(f"{seen[key]} and {name} name the same file {p!r}: give each output its own path")
        if name != "output" and key in ins:
            raise Qwen25ValueError(f"{name} {p!r} is the input {ins[key]!r}: it would replace the records; give another path")
        seen[key] = name


def _takes_paths(job: Any) -> Any:
    """A job whose ``inputs`` may also be one path (a str or os.PathLike) or any iterable of
    paths: listed by :func:`~qwen25.data.stage_io.as_paths` (one path is ``[path]``, not the
    characters of its name; a generator is read once, not emptied by the output checks)."""
    import functools

    @functools.wraps(job)
    def call(*args: Any, **kw: Any) -> Any:
        if "inputs" in kw:
            kw["inputs"] = as_paths(kw["inputs"])
        elif args:
            args = (as_paths(args[0]), *args[1:])
        return job(*args, **kw)

    return call


@contextmanager
def _outputs(inputs: Iterable[str] = (), **paths: str | None) -> Iterator[_Outputs]:
    """The outputs a job opens (``paths``: the job's output paths by name, checked by
    :func:`distinct_outputs` before anything is read), all discarded if the job fails."""
    distinct_outputs(inputs, **paths)
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

    def on_damage(path: str, line: int, why: str) -> None:  # as data run lists it
        if removed is not None:
            removed.write({"file": path, "line": line, "stage": "read", "reason": f"damaged_file: {why}"})

    return Inputs(
        paths, read.text_field, skip_bad=read.skip_bad, on_bad=on_bad, on_damage=on_damage, progress=read.progress,
        desc=desc,
        batch_size=read.batch_size, num_threads=read.num_threads, hint=read.hint, **kw,
    )  # fmt: skip


def load_filter_config(path: str) -> Any:
    """A FilterConfig from a .toml or .json file holding a pipeline's ``[filter.default]`` table:
    written as in pipeline.toml (``[filter.default]``, or ``[filter]`` with ``default = {...}``) or
    as its bare contents (``[c4]`` ...). Every error names the file (and the line, where the parser
    gives one); keys only ``data run`` can use (``domains``, ``enabled``, ``stats``) are errors."""
    from .filters import FilterConfig
    from .pipeline.config import resolve_filter_table  # a preset = "code" key, as in pipeline.toml

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
        where = f"{path} [filter.default]"
        return FilterConfig.from_dict(resolve_filter_table(d, where, {}), where=where)
    return FilterConfig.from_dict(resolve_filter_table(d, path, {}), where=path)


@_takes_paths
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
    with _outputs(inputs, output=output, removed=removed) as opened:
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
    return {"records": n + reader.bad, "kept": out.n, "bad_lines": reader.bad, "removed": why, "damaged": reader.damaged}


@_takes_paths
def dedup_job(
    inputs: list[str],
    output: str,
    *,
    removed: str | None = None,
    exact: dict[str, bool] | None = None,
    minhash: dict[str, Any] | None = None,
    mem_budget: int = 1 << 30,
    report: str | None = None,
    read: ReadOptions = ReadOptions(),
) -> dict[str, Any]:
    """Exact (:class:`~qwen25.data.dedup.ExactDeduplicator` with the ``exact`` normalisation) then
    MinHash-LSH (:class:`~qwen25.data.dedup.MinHashDeduplicator` with the ``minhash`` options)
    dedup, the first occurrence kept; ``None`` skips that kind. Two passes, memory bounded by a few
    integers per record (``array`` of int64, not Python objects): the first assigns clusters
    (spilling LSH band records past ``mem_budget`` bytes to disk), the second re-reads the inputs
    and writes. ``report``: a JSON file of the counts and every exact and near-duplicate cluster."""
    import tempfile
    from array import array

    import numpy as np

    from .dedup import ExactDeduplicator, MinHashDeduplicator

    if exact is None and minhash is None:
        raise Qwen25ValueError("exact and minhash dedup both off leave nothing to do")
    line_bits = 40
    prov = array("q")  # (file index << 40) | line, per record
    files = {p: k for k, p in enumerate(inputs)}
    exact_of = array("q")  # exact cluster id (= index of the first occurrence) per record
    ex = None if exact is None else ExactDeduplicator(**exact, num_threads=read.num_threads)
    mhd = None if minhash is None else MinHashDeduplicator(**minhash, num_threads=read.num_threads)  # checks the options first
    survivors = array("q")  # record index of each MinHash input
    with _outputs(inputs, output=output, removed=removed, report=report) as opened:
        out_dir = os.path.dirname(os.path.abspath(output))
        os.makedirs(out_dir, exist_ok=True)  # as every output's folder is; the spill folder goes there
        with tempfile.TemporaryDirectory(prefix="qwen25-dedup-", dir=out_dir) as spill:
            mh = None if mhd is None else mhd.stream(mem_budget=mem_budget, spill_dir=spill)
            r1 = _inputs(inputs, read, opened(None), "dedup 1/2")
            for batch in r1.batches():
                start = len(prov)
                prov.extend((files[d.path] << line_bits) | d.line for d in batch)
                texts = [d.text for d in batch]
                if ex is not None:
                    ids = ex.add(texts)
                    exact_of.extend(ids.tolist())
                    keep = np.flatnonzero(ids == np.arange(start, start + len(batch))).tolist()
                else:
                    keep = list(range(len(batch)))
                if mh is not None and keep:
                    mh.add([texts[k] for k in keep])
                survivors.extend(start + k for k in keep)
            near = mh.finish() if mh is not None else np.arange(len(survivors))
        surv = np.frombuffer(survivors, dtype=np.int64) if len(survivors) else np.zeros(0, np.int64)
        near_of = np.arange(len(prov), dtype=np.int64)  # the kept representative of each record
        near_of[surv] = surv[near]

        def where(i: int) -> str:
            return f"{inputs[prov[i] >> line_bits]}:{prov[i] & ((1 << line_bits) - 1)}"

        out, rem = opened(output), opened(removed)
        why: Counter[str] = Counter()
        i = 0
        for d in _inputs(inputs, read, rem, "dedup 2/2"):
            if i >= len(prov):
                i += 1
                break
            if ex is not None and exact_of[i] != i:
                why["exact_dedup"] += 1
                rem.write({"file": d.path, "line": d.line, "stage": "exact_dedup", "reason": f"duplicate_of {where(exact_of[i])}"})
            elif near_of[i] != i:
                why["minhash_dedup"] += 1
                rem.write({"file": d.path, "line": d.line, "stage": "minhash_dedup", "reason": f"near_duplicate_of {where(int(near_of[i]))}"})
            else:
                out.write(d.rec)
            i += 1
        if i != len(prov):
            from ..errors import Qwen25IOError

            raise Qwen25IOError(f"the inputs changed while dedup ran ({len(prov)} records, then {i})")
        out.close()
        rem.close()
    counts = {"records": len(prov) + r1.bad, "kept": out.n, "bad_lines": r1.bad, "removed": why, "damaged": r1.damaged}
    if report:
        from .pipeline.files import write_json

        reps, sizes = np.unique(near_of[surv], return_counts=True)
        rep = {
            "records": len(prov), "bad_lines": r1.bad, "damaged": r1.damaged, "kept": out.n, "removed": dict(why),
            "config": {"exact": exact, "minhash": minhash},
            "exact_clusters": [{"first": where(f), "size": n} for f, n in (ex.cluster_sizes() if ex is not None else [])],
            "near_clusters": [{"first": where(int(f)), "size": int(n)} for f, n in zip(reps, sizes) if n > 1],
        }  # fmt: skip
        write_json(report, rep, indent=1)
    return counts


def _labelled(inputs: list[str], label_field: str, read: ReadOptions, desc: str) -> tuple[list[str], list[str], int]:
    texts: list[str] = []
    labels: list[str] = []
    reader = _inputs(inputs, read, None, desc, label_field=label_field)
    for d in reader:
        texts.append(d.text)
        labels.append(d.rec[label_field])
    return texts, labels, reader.bad


@_takes_paths
def train_classifier_job(
    inputs: list[str], output: str, *, label_field: str = "domain", options: dict[str, Any] | None = None,
    read: ReadOptions = ReadOptions(),
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """Train a :class:`~qwen25.data.classify.DomainClassifier` (``options``: its training keywords)
    on the labelled records of ``inputs`` and save it to ``output``. Returns the classifier and
    ``{"records", "labels": Counter, "bad_lines"}``."""
    from .classify import DomainClassifier

    distinct_outputs(inputs, model=output)  # the model file must not replace the training records
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)  # as every output's folder is
    texts, labels, bad = _labelled(inputs, label_field, read, "read")
    if not texts:
        raise Qwen25ValueError("no labelled records to train on")
    clf = DomainClassifier.train(texts, labels, num_threads=read.num_threads, **(options or {}))
    clf.save(output)
    return clf, {"records": len(texts), "labels": Counter(labels), "bad_lines": bad}


def evaluate_classifier_job(clf: Any, inputs: list[str], *, label_field: str = "domain", read: ReadOptions = ReadOptions()) -> dict[str, Any]:
    """Accuracy of ``clf`` on the labelled records of ``inputs``: ``{"accuracy", "records"}``."""
    texts, labels, _ = _labelled(as_paths(inputs), label_field, read, "valid")
    pred = clf.predict(texts)
    acc = sum(p == g for p, g in zip(pred, labels)) / max(len(labels), 1)
    return {"accuracy": acc, "records": len(labels)}


@_takes_paths
def classify_job(
    inputs: list[str], output: str, *, model: str, removed: str | None = None, label_field: str = "domain",
    scores: bool = False, read: ReadOptions = ReadOptions(),
) -> dict[str, Any]:  # fmt: skip
    """Label every record of ``inputs`` with the :class:`~qwen25.data.classify.DomainClassifier`
    saved at ``model`` (``label_field``; with ``scores``, also ``{label: probability}`` in
    ``<label_field>_scores``). Returns ``{"records", "labels": Counter, "bad_lines"}``."""
    from .classify import DomainClassifier

    for name, field in (("label_field", label_field), ("the scores field (label_field + '_scores')",
                                                        f"{label_field}_scores" if scores else None)):  # fmt: skip
        if field == read.text_field:  # the label would replace every document's text
            raise Qwen25ValueError(f"{name} {field!r} is the text field: it would replace every text")
    clf = DomainClassifier.load(model, num_threads=read.num_threads)
    labels_ = clf.labels
    with _outputs(inputs, output=output, removed=removed) as opened:
        out, rem = opened(output), opened(removed)
        reader = _inputs(inputs, read, rem, "classify")
        n_by: Counter[str] = Counter()
        for batch in reader.batches():
            proba = clf.predict_proba([d.text for d in batch])
            for d, p in zip(batch, proba):
                k = int(p.argmax())
                rec = {**d.rec, label_field: labels_[k]}
                if scores:
                    rec[f"{label_field}_scores"] = {lab: round(float(x), 6) for lab, x in zip(labels_, p)}
                out.write(rec)
                n_by[labels_[k]] += 1
        out.close()
        rem.close()
    return {"records": out.n, "labels": n_by, "bad_lines": reader.bad, "damaged": reader.damaged}


@_takes_paths
def score_job(
    inputs: list[str], output: str, *, model: str, removed: str | None = None, dimensions: dict[str, str] | None = None,
    scores_field: str = "scores", max_doc_tokens: int = 2048, device: str | None = None, dtype: str | None = None,
    read: ReadOptions = ReadOptions(),
) -> dict[str, Any]:  # fmt: skip
    """Rate every record of ``inputs`` with the chat model in the HF folder ``model``
    (:class:`~qwen25.data.classify.LMScorer`, on ``dimensions``, default: quality and
    educational_value), writing ``{dimension: score}`` to ``scores_field``. ``device``: default
    cuda if available, else cpu. Returns ``{"records", "dimensions", "bad_lines"}``."""
    import torch

    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer
    from .classify import LMScorer

    distinct_outputs(inputs, output=output, removed=removed)  # before the model is loaded
    if scores_field == read.text_field:  # the scores would replace every document's text
        raise Qwen25ValueError(f"scores_field {scores_field!r} is the text field: it would replace every text")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    lm = Qwen2ForCausalLM.from_pretrained(model, dtype=dtype, device=device).eval()
    try:
        tok = Tokenizer.from_pretrained(model)
    except FileNotFoundError:
        tok = Tokenizer.qwen25()
    scorer = LMScorer(lm, tok, dimensions=dimensions, max_doc_tokens=max_doc_tokens, batch_size=min(read.batch_size, 64))
    with _outputs() as opened:
        out, rem = opened(output), opened(removed)
        reader = _inputs(inputs, read, rem, "score")
        for batch in reader.batches():
            rows = scorer.score([d.text for d in batch])
            for doc, row in zip(batch, rows):
                out.write({**doc.rec, scores_field: {d: round(float(x), 6) for d, x in zip(scorer.dimensions, row)}})
        out.close()
        rem.close()
    return {"records": out.n, "dimensions": scorer.dimensions, "bad_lines": reader.bad, "damaged": reader.damaged}


@_takes_paths
def pack_job(
    inputs: list[str], output: str, *, removed: str | None = None, seq_len: int = 4096, seqs_per_shard: int = 16384,
    read: ReadOptions = ReadOptions(),
) -> dict[str, Any]:  # fmt: skip
    """Tokenize ``inputs`` and pack them into uint32 shards in the folder ``output``
    (:class:`~qwen25.data.pack.TokenPacker`). Returns the packer's counts plus
    ``bad_lines_skipped``. The pack is built in ``output/.tmp-pack`` and moved into ``output``
    when complete (:func:`_install_pack`), so a job that fails leaves ``output`` as it was (no
    shard of the failed job, no temporary; a folder it made is removed again) and a finished one
    leaves no shard of an earlier pack behind."""
    import shutil

    from .pack import TokenPacker

    final = os.path.abspath(output)
    if os.path.exists(final) and not os.path.isdir(final):
        raise Qwen25ValueError(f"{output}: is a file; data pack writes a folder (shards, docs.idx, manifest.json)")
    made = not os.path.exists(final)
    tmp = os.path.join(final, _PACK_TMP)
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed earlier job left
    ok = False
    try:
        with _outputs(inputs, output=output, removed=removed) as opened:
            rem = opened(removed)
            reader = _inputs(inputs, read, rem, "pack")
            with TokenPacker(tmp, seq_len=seq_len, seqs_per_shard=seqs_per_shard, num_threads=read.num_threads) as p:
                for batch in reader.batches():
                    p.add([d.text for d in batch], source=[os.path.basename(d.path) for d in batch])
            counts = p.finish()["counts"]
            rem.close()
            _install_pack(tmp, final)
        ok = True
    except OSError as e:  # a full disk: named by the file of the output folder, not its temporary
        from .pipeline.files import blame_output

        name = e.filename if isinstance(e.filename, str) else ""
        if not name.startswith(tmp + os.sep):
            raise
        raise blame_output(OSError(e.errno, e.strerror or str(e), os.path.join(final, name[len(tmp) + 1 :]))) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if made and not ok:
            try:
                os.rmdir(final)  # the folder this job made, empty again
            except OSError:
                pass
    return {**counts, "bad_lines_skipped": reader.bad, "damaged": reader.damaged}


_PACK_TMP = ".tmp-pack"  # the pack being built, inside the output folder
_PACK_FILE = re.compile(r"shard_\d+\.bin|docs\.idx|manifest\.json")


def _install_pack(tmp: str, final: str) -> None:
    """Move the finished pack in ``tmp`` (inside ``final``) into ``final``: the packed files of
    ``final`` (``manifest.json`` first, so no reader sees a manifest over a half-replaced folder;
    every shard, stale ones included) go, then the new ones come in (``manifest.json`` last).
    Other files in ``final`` stay."""
    from .pack import MANIFEST

    old = sorted((n for n in os.listdir(final) if _PACK_FILE.fullmatch(n)), key=lambda n: n != MANIFEST)
    for n in old:
        os.remove(os.path.join(final, n))
    for n in sorted(os.listdir(tmp), key=lambda n: n == MANIFEST):
        os.replace(os.path.join(tmp, n), os.path.join(final, n))
