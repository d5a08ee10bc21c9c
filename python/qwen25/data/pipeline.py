"""The pipeline job behind ``qwen25 data run pipeline.toml``:
read + tokenize -> filter -> exact dedup -> MinHash dedup -> decontaminate -> score -> classify -> mix
-> pack.

Nothing is lost: every input record ends either in the packed output (listed, with its
provenance and packed document index, in ``kept.jsonl``) or in ``removed.jsonl`` with the stage
and reason that removed it; ``report.json`` holds the per-stage, per-domain counts and the test
suite checks that they add up. Every file is written as ``NAME.tmp`` and renamed when complete;
``state.json`` records the finished phases with a fingerprint of what each depends on, so a
rerun resumes after the last finished phase whose inputs, configuration and outputs are
unchanged: editing ``[mix]`` reruns only the mix and packing, editing ``[decontaminate]`` the
near-dedup phase and what follows (the engine keys below count nowhere: they do not change the
results). A phase whose outputs went missing is redone.

Engines. Every per-document step (JSON parsing and validation, quality filters, exact-dedup
hashes, MinHash signatures, decontamination, classification, tokenization) is a pure function
of one batch of lines (:class:`ScanWorker`, :class:`NearWorker`). ``engine = "local"`` runs
them in this process; ``engine = "ray"`` runs the same classes as Ray Data actors over Arrow
batches (:func:`qwen25.data.distributed.ray_map_ordered`). The global steps stay on the driver
and consume the batches in input order either way: exact-dedup decisions, MinHash-LSH
clustering (the spilling clusterer), the mix order and the packed shards. So both engines write
byte-identical ``kept.jsonl``, ``removed.jsonl``, ``report.json`` (apart from its ``engine``
field) and ``packed/`` (tested on a local Ray). Under Ray, workers read the input files and
``stage1.jsonl`` themselves (by byte ranges), so these paths must be the same on every node (a
shared filesystem); the driver writes every output.

Every document is tokenized once, when it is read (in :class:`ScanWorker`, the Qwen2.5
tokenizer's ``encode_ordinary``, what the packer stores; re-encoded only when C4 removes lines).
So ``report.json`` ``stages`` gives, for every stage and per domain, the documents and tokens
that went in, came out and were removed (plus the tokens of lines C4 removed, and the mix's
repeats), and the stages chain: what leaves one enters the next (tested against HF tokenizers).
The ids of the survivors travel beside the text (``stage1.tok``, then per domain
``stage2/NNNN.tok``, uint32, with per-document lengths in ``.len``, uint64) to the packer.

Mixing is by tokens (as Qwen2.5 mixes). The token quota of each domain comes from
:func:`qwen25.data.mix.weights_from_proportions` over the domains' token counts (within
``max_repeat`` epochs); :func:`qwen25.data.mix.docs_for_token_quota` turns it into a number of
documents (in order, cycling for repeats; the document crossing the quota is taken when at
least half of it fits), and the packer writes the stored ids (no second tokenization).
``unit = "docs"`` keeps the old document proportions.

A configuration (paths are relative to the TOML file)::

    [pipeline]
    output = "out"            # folder for everything below
    batch_size = 1000         # input lines per batch (results never depend on it)
    num_threads = 2           # optional Rust threads per batch; default QWEN25_NUM_THREADS or
                              # all cores (local), 1 per actor (ray)
    on_bad_line = "error"     # or "skip": a bad line goes to removed.jsonl (stage "read")
    engine = "local"          # or "ray" (also: qwen25 data run pipeline.toml --engine ray)
    ray_address = "auto"      # optional: ray.init(address=...) when Ray is not started yet
    concurrency = 4           # optional: actors per stage under Ray (default: the cluster's CPUs)

    [[sources]]
    name = "web"
    paths = ["data/web/*.jsonl"]   # JSONL; .jsonl.gz / .jsonl.zst and .parquet are decompressed
                                   # (converted) once to OUT/plain/ and read from there
    text_field = "text"       # default "text"
    id_field = "id"           # optional
    domain = "web"            # default: the source name

    [filter]                  # thresholds: see qwen25.data.filters (false disables a filter)
    enabled = true            # a filtered document's removed.jsonl entry carries its statistics;
    stats = "removed"         # "all": every document's, kept.jsonl and every removed list too
    default = { fineweb = { new_line_ratio = 0.3 } }
    [filter.domains.code]     # overrides the default key by key: other filters and thresholds
    gopher_quality = false    # stay as in [filter.default]

    [dedup]
    exact = true              # xxh3-128, first occurrence kept
    exact_lowercase = false   # (and exact_strip_punct, exact_collapse_ws)
    minhash = true            # FineWeb defaults (minhash_lowercase, minhash_strip_punct and
                              # minhash_collapse_ws, all true, set its normalisation)
    num_perm = 112
    bands = 14
    rows = 8
    ngram = 5
    seed = 1
    mem_budget = 1073741824

    [decontaminate]           # qwen25.data.Decontaminator(**options).check(texts); skipped (and
    enabled = true            # reported) when no test_set is configured
    options = { test_set = "humaneval" }   # a benchmark name, a JSONL path, or a list of texts

    [score]                   # optional: model-based quality scoring (qwen25.data.LMScorer), as
    model = "Qwen2.5-7B-Instruct"   # Qwen2.5 rated data with Qwen2-Instruct: a chat checkpoint
    dimensions = { quality = "overall quality", educational_value = "educational value" }
    min = { quality = 2.5 }   # drop (stage "score") a document rated under this; scores go to
    max_doc_tokens = 2048     # kept.jsonl either way
    batch_size = 8
    device = "cuda"           # default: cuda when available, else cpu
    dtype = "bfloat16"        # default: the checkpoint's

    [classify]
    model = "domain.bin"      # optional DomainClassifier file: its label becomes the domain

    [mix]                     # optional: per-domain target proportions (domains: the sources'
    weights = { web = 0.7, code = 0.3 }   # or the classifier's labels; a domain without documents
                              # leaves its share to the others, with a note)
    # temperature = 2.0       # instead of weights: p ~ size^(1/T)
    unit = "tokens"           # proportions of tokens (default) or "docs" (of documents)
    max_repeat = 1.0          # > 1 repeats small domains (repeats are listed in kept.jsonl)
    total_tokens = 1000000    # unit "tokens"; default: the most tokens that meet the weights
                              # within the repeat cap
    # total_docs = 1000       # unit "docs"; default likewise, in documents
    seed = 0
    mode = "smooth"           # or "random"

    # Phases (optional; instead of weights/temperature/total in [mix]): each packs its own mix
    # to its own sequence length into packed/<name>/; kept.jsonl rows name their phase, and
    # `repeat` counts a document's placements before this one, over all phases. max_repeat caps
    # each phase on its own. A document no phase takes is removed ("mix", "downsampled"; or
    # "not_in_mix" when no phase draws on its domain).
    # [[mix.phases]]
    # name = "general"
    # weights = { web = 0.7, code = 0.3 }
    # seq_len = 4096
    # [[mix.phases]]
    # name = "long_32k"       # Qwen2.5-Turbo: 40% of tokens from documents of >= seq_len
    # seq_len = 32768         # tokens, 60% from shorter ones, each part split by weights
    # long_share = 0.4
    # long_min = 32768        # default: seq_len (no document that long: an error)
    # max_repeat = 2.0        # default: [mix] max_repeat
    # total_tokens = 1000000  # default: the most that meets the shares within max_repeat

    [pack]
    seq_len = 4096
    seqs_per_shard = 16384

Line numbers count ``\\n``-terminated lines (blank lines count as lines but are not records).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

__all__ = ["NearWorker", "Pipeline", "ScanWorker", "load_config", "run_pipeline"]

PHASES = ("scan", "near_dedup", "mix_pack")
ENGINES = ("local", "ray")
# How the job runs, not what it computes: left out of the resume fingerprint.
_EXEC_KEYS = ("engine", "ray_address", "concurrency", "num_threads", "batch_size")


def _tomllib() -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef,unused-ignore]
    return tomllib


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a pipeline TOML; syntax errors raise FormatError naming file:line."""
    import re

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise Qwen25FileNotFoundError(2, "no such pipeline file", path) from None
    try:
        cfg = _tomllib().loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise FormatError(f"{path}:0: not UTF-8 ({e})", path, 0) from None
    except Exception as e:  # tomllib.TOMLDecodeError
        m = re.search(r"line (\d+)", str(e))
        line = int(m.group(1)) if m else 0
        raise FormatError(f"{path}:{line}: {e}", path, line) from None
    cfg["_path"] = os.path.abspath(path)
    return cfg


def _section(cfg: dict[str, Any], name: str, known: set[str], where: str) -> dict[str, Any]:
    sec = cfg.get(name, {})
    if not isinstance(sec, dict):
        raise Qwen25ValueError(f"{where}: [{name}] must be a table")
    bad = sorted(set(sec) - known)
    if bad:
        raise Qwen25ValueError(f"{where}: unknown key(s) {bad} in [{name}] (known: {sorted(known)})")
    return sec


def _typed(sec: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None, *,
           minimum: float | None = None) -> Any:
    """``sec[key]`` checked against ``kind`` (and ``minimum``); errors name the file and key."""
    v = sec.get(key, default)
    if v is None:
        return v
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(v, kinds) and not (isinstance(v, bool) and bool not in kinds)
    if float in kinds and isinstance(v, int) and not isinstance(v, bool):
        ok, v = True, float(v)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise Qwen25ValueError(f"{where}: {key} must be {names}, got {v!r}")
    if minimum is not None and v < minimum:
        raise Qwen25ValueError(f"{where}: {key} must be >= {minimum}, got {v!r}")
    return v


@dataclass
class Source:
    name: str
    files: list[str]
    text_field: str
    id_field: str | None
    domain: str


class _Writer:
    """JSONL written to NAME.tmp and renamed by close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.f = open(path + ".tmp", "w", encoding="utf-8")
        self.n = 0

    def write(self, obj: dict[str, Any]) -> None:
        self.f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.n += 1

    def close(self) -> None:
        self.f.close()
        os.replace(self.path + ".tmp", self.path)


class _TokenWriter:
    """A domain's token ids (``.tok``, uint32) and per-document lengths (``.len``, uint64),
    written as .tmp and renamed by close()."""

    def __init__(self, stem: str) -> None:
        self.stem = stem
        self.tok = open(stem + ".tok.tmp", "wb")
        self.len = open(stem + ".len.tmp", "wb")
        self.tokens = 0

    def write(self, ids: bytes) -> None:
        self.tok.write(ids)
        n = len(ids) // 4
        self.len.write(n.to_bytes(8, "little"))
        self.tokens += n

    def close(self) -> None:
        for f, ext in ((self.tok, ".tok"), (self.len, ".len")):
            f.close()
            os.replace(self.stem + ext + ".tmp", self.stem + ext)


STAGES = ("read", "filter", "exact_dedup", "minhash_dedup", "decontaminate", "score", "classify", "mix")
_FLOW_KEYS = ("in_docs", "in_tokens", "out_docs", "out_tokens", "removed_docs", "removed_tokens", "repeat_docs", "repeat_tokens")


def _flow(stats: dict[str, Counter], stage: str, domain: str, tokens: int, out: bool, *,
          out_tokens: int | None = None, out_domain: str | None = None) -> None:
    """Count one document into ``stage`` (its domain and tokens going in) and, when ``out``, out
    of it (tokens and domain coming out, the same unless given). Kept in the phase reports as
    ``flow:STAGE:DOMAIN`` counters of in_docs, in_tokens, out_docs, out_tokens, removed_docs,
    removed_tokens."""
    c = stats[f"flow:{stage}:{domain}"]
    c["in_docs"] += 1
    c["in_tokens"] += tokens
    if not out:
        c["removed_docs"] += 1
        c["removed_tokens"] += tokens
    else:
        o = stats[f"flow:{stage}:{domain if out_domain is None else out_domain}"]
        o["out_docs"] += 1
        o["out_tokens"] += tokens if out_tokens is None else out_tokens


def _stats_of(raw: str | None) -> dict[str, Any]:
    """``{"stats": {...}}`` from a worker's JSON statistics column, or nothing."""
    return {"stats": json.loads(raw)} if raw is not None else {}


def _cluster_summary(sizes: list[int], firsts: list[tuple[str, int]]) -> dict[str, Any]:
    """Duplicate clusters (two members or more): how many, the documents they remove, a size
    histogram, and the largest ten by their first (kept) document."""
    hist = Counter(sizes)
    top = sorted(firsts, key=lambda x: -x[1])[:10]
    return {
        "clusters": len(sizes),
        "duplicates_removed": sum(sizes) - len(sizes),
        "size_histogram": {str(k): v for k, v in sorted(hist.items())},
        "largest": [{"first": f, "size": n} for f, n in top],
    }


def _read_jsonl(path: str) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _bar(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def line_chunks(path: str, lines_per_chunk: int) -> Iterator[tuple[int, int, int]]:
    """``(byte start, byte end, first line number)`` of consecutive runs of ``lines_per_chunk``
    ``\\n``-terminated lines of ``path`` (the last run may be shorter or unterminated)."""
    import numpy as np

    size = os.path.getsize(path)
    start, line, pos, count = 0, 1, 0, 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 24)
            if not block:
                break
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            k = lines_per_chunk - count - 1  # the line end that completes the current run
            while k < len(ends):
                end = pos + int(ends[k]) + 1
                yield start, end, line
                line += lines_per_chunk
                start = end
                k += lines_per_chunk
            count = (count + len(ends)) % lines_per_chunk
            pos += len(block)
    if start < size:
        yield start, size, line


def _chunk_lines(path: str, start: int, end: int) -> list[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


# ---- per-batch workers (the same code under both engines) --------------------------------------
#
# A worker is built once from a JSON-able spec and called on batches given as columns
# (``{name: [values]}``, one row per task), returning columns; SCHEMA names the Arrow type of
# each output column for the Ray engine.


class ScanWorker:
    """Parse, validate and filter lines; hash the survivors (exact hash, MinHash signature).

    Task columns: ``file`` (index into ``spec["files"]``), ``start``/``end`` (bytes), ``line``
    (first line number). One output row per non-blank line, ``status`` one of ``ok``, ``bad``
    (JSON or field error; ``reason`` says which), ``utf8`` (not UTF-8) or ``filter``."""

    SCHEMA = {
        "file": "int64", "line": "int64", "status": "string", "reason": "string", "id": "string",
        "domain": "string", "text": "string", "chars": "int64", "hash": "binary", "sig": "binary",
        "ntok": "int64", "tokens": "binary", "stats": "string",
    }  # fmt: skip

    def __init__(self, spec: dict[str, Any]) -> None:
        from .. import _native
        from ..tokenizer import Tokenizer
        from .filters import DomainFilters, FilterConfig

        self.spec = spec
        self.tok = Tokenizer.qwen25()
        self.nt = spec["num_threads"]
        self.filters = None
        f = spec["filter"]
        if f is not None:
            default = FilterConfig.from_dict(f.get("default", {}))
            doms = {d: FilterConfig.from_dict(v) for d, v in f.get("domains", {}).items()}
            self.filters = DomainFilters(doms, default, num_threads=self.nt)
        self.exact = spec["exact"]
        mh = spec["minhash"]
        self.hasher = _native.MinHasher(**mh) if mh is not None else None

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        from .. import _native

        out: dict[str, list[Any]] = {k: [] for k in self.SCHEMA}
        ok_rows: list[int] = []
        ok_texts: list[str] = []
        ok_domains: list[str] = []
        for fi, start, end, first in zip(batch["file"], batch["start"], batch["end"], batch["line"]):
            path, src = self.spec["files"][fi]
            text_field, id_field, domain = self.spec["sources"][src]
            for k, raw in enumerate(_chunk_lines(path, start, end)):
                status, reason, rid, text = "ok", None, None, None
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    status, reason = "utf8", e.reason
                else:
                    if not line.strip():
                        continue  # blank lines are not records
                    try:
                        rec = json.loads(line)
                        if not isinstance(rec, dict):
                            raise ValueError("a record must be a JSON object")
                        text = rec.get(text_field)
                        if not isinstance(text, str):
                            raise ValueError(f"field {text_field!r} is missing or not a string")
                        if "\\u" in line:  # a \uXXXX escape can make a lone surrogate: not UTF-8
                            try:
                                json.dumps(rec, ensure_ascii=False).encode("utf-8")
                            except UnicodeEncodeError:
                                raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff): not encodable as UTF-8") from None
                    except ValueError as e:
                        status, reason, text = "bad", str(e), None
                    else:
                        if id_field is not None and id_field in rec:
                            rid = json.dumps(rec[id_field], ensure_ascii=False)
                if status == "ok":
                    ok_rows.append(len(out["line"]))
                    ok_texts.append(text)  # type: ignore[arg-type]
                    ok_domains.append(domain)
                for key, v in (("file", fi), ("line", first + k), ("status", status), ("reason", reason), ("id", rid),
                               ("domain", domain), ("text", text), ("chars", len(text) if text is not None else -1),
                               ("hash", None), ("sig", None), ("ntok", -1), ("tokens", None), ("stats", None)):  # fmt: skip
                    out[key].append(v)
        # every parsed document is tokenized here, once: its token count enters the report at
        # every stage, and the ids of the survivors travel to the packer (no second tokenization)
        ids = self._encode(ok_texts)
        for row, b in zip(ok_rows, ids):
            out["ntok"][row] = len(b) // 4
            out["tokens"][row] = b
        if self.filters is not None and ok_texts:
            keep_rows, keep_texts, changed = [], [], []
            for row, t, r in zip(ok_rows, ok_texts, self.filters.apply(ok_texts, ok_domains)):
                if r.keep:
                    keep_rows.append(row)
                    keep_texts.append(r.final_text(t))
                    out["text"][row] = keep_texts[-1]
                    if self.spec.get("filter_stats_all"):
                        out["stats"][row] = json.dumps(r.stats)
                    if r.text is not None:
                        changed.append(row)
                else:
                    out["status"][row], out["reason"][row], out["text"][row] = "filter", f"{r.filter}:{r.reason}", None
                    out["tokens"][row] = None
                    out["stats"][row] = json.dumps(r.stats)  # the statistics behind the decision
            for row, b in zip(changed, self._encode([out["text"][row] for row in changed])):
                out["tokens"][row] = b  # lines removed by C4: the ids of the text that goes on
            ok_rows, ok_texts = keep_rows, keep_texts
        if self.exact is not None and ok_texts:
            ex = self.exact
            buf = _native.exact_hashes(ok_texts, ex["lowercase"], ex["strip_punct"], ex["collapse_ws"], self.nt)
            for j, row in enumerate(ok_rows):
                out["hash"][row] = bytes(buf[16 * j : 16 * j + 16])
        if self.hasher is not None and ok_texts:
            sig = self.hasher.signatures(ok_texts, self.nt)
            w = len(sig) // len(ok_texts)
            for j, row in enumerate(ok_rows):
                out["sig"][row] = bytes(sig[w * j : w * j + w])
        return out

    def _encode(self, texts: list[str]) -> list[bytes]:
        """uint32 ids of each text as ``encode_ordinary`` gives them (what packing stores)."""
        if not texts:
            return []
        ids, offsets = self.tok.encode_batch(texts, allowed_special=set(), num_threads=self.nt, flat=True)
        raw = ids.astype("<u4", copy=False).tobytes()
        return [raw[4 * int(offsets[j]) : 4 * int(offsets[j + 1])] for j in range(len(texts))]


def _decontam_plan(cfg: dict[str, Any]) -> tuple[str | None, str]:
    """(method name, report note): qwen25.data.Decontaminator(**options).METHOD(texts) gives one
    witness (truthy) or None per text; without a configured test set the stage is skipped."""
    if not cfg.get("enabled", True):
        return None, "disabled"
    if "test_set" not in cfg.get("options", {}):
        return None, "skipped: no test_set in [decontaminate] options"
    try:
        import qwen25.data as qd

        cls = qd.Decontaminator
    except (ImportError, AttributeError):
        return None, "skipped: qwen25.data.Decontaminator is not available"
    for meth in ("check", "contaminated", "is_contaminated"):
        if hasattr(cls, meth):
            return meth, f"ran Decontaminator.{meth}"
    return None, "skipped: Decontaminator has no check() method"


# What [decontaminate] options cannot hold, and why (everything else is a keyword of
# Decontaminator.__init__, read from its signature so the two cannot drift apart).
_DECONTAM_NOT_OPTIONS = {
    "field": "the pipeline passes each source's text_field text; set text_field in [[sources]]",
    "num_threads": "set [pipeline] num_threads (the decontamination check uses it)",
    "tokenizer": "the Qwen2.5 tokenizer is used; it cannot be given in TOML",
}


def _check_decontam_options(opts: dict[str, Any], where: str) -> None:
    """Every key of ``[decontaminate] options`` must be a keyword that
    ``Decontaminator.__init__`` takes (checked before any reading, naming the file and key)."""
    import inspect

    from .decontam import Decontaminator

    params = inspect.signature(Decontaminator.__init__).parameters
    known = sorted(n for n, p in params.items() if n != "self" and n not in _DECONTAM_NOT_OPTIONS
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))  # fmt: skip
    for key in sorted(opts):
        if key in _DECONTAM_NOT_OPTIONS:
            raise Qwen25ValueError(f"{where}: options.{key} is not a Decontaminator option: {_DECONTAM_NOT_OPTIONS[key]}")
        if key not in known:
            raise Qwen25ValueError(f"{where}: unknown option options.{key} (known: {known})")


class NearWorker:
    """Decontaminate and classify the MinHash survivors of ``stage1.jsonl``.

    Task columns: ``start``/``end`` (bytes of stage1.jsonl), ``keep`` (one byte per line: 1 when
    the line is its MinHash cluster's first). One output row per line, ``status`` one of
    ``ok`` (with ``text`` and ``domain`` after classification), ``minhash`` or ``decontaminate``;
    ``src_domain`` is the domain before classification."""

    SCHEMA = {"prov": "string", "src_domain": "string", "domain": "string", "text": "string", "status": "string",
              "reason": "string", "stats": "string", "scores": "string"}  # fmt: skip

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.nt = spec["num_threads"]
        self.decon = None
        meth = spec["decontaminate_method"]
        if meth is not None:
            import qwen25.data as qd

            self.decon = getattr(qd.Decontaminator(**spec["decontaminate_options"]), meth)
        self.clf = None
        if spec["classify_model"] is not None:
            from .classify import DomainClassifier

            self.clf = DomainClassifier.load(spec["classify_model"], num_threads=self.nt)
        self.scorer = None
        sc = spec.get("score")
        if sc is not None:
            import torch

            from ..model import Qwen2ForCausalLM
            from ..tokenizer import Tokenizer
            from .classify import LMScorer

            device = sc.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
            model = Qwen2ForCausalLM.from_pretrained(sc["model"], dtype=sc.get("dtype"), device=device).eval()
            try:
                tok = Tokenizer.from_pretrained(sc["model"])
            except FileNotFoundError:
                tok = Tokenizer.qwen25()
            self.scorer = LMScorer(model, tok, dimensions=sc.get("dimensions"), max_doc_tokens=int(sc.get("max_doc_tokens", 2048)),
                                   batch_size=int(sc.get("batch_size", 8)))  # fmt: skip
            self.min_scores = dict(sc.get("min", {}))

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {k: [] for k in self.SCHEMA}
        live: list[int] = []
        for start, end, keep in zip(batch["start"], batch["end"], batch["keep"]):
            for raw, k in zip(_chunk_lines(self.spec["stage1"], start, end), keep):
                r = json.loads(raw)
                out["prov"].append(json.dumps(r["prov"], ensure_ascii=False))
                out["src_domain"].append(r["domain"])
                out["domain"].append(r["domain"])
                out["reason"].append(None)
                out["stats"].append(json.dumps(r["stats"]) if "stats" in r else None)
                out["scores"].append(None)
                if k:
                    live.append(len(out["text"]))
                    out["text"].append(r["text"])
                    out["status"].append("ok")
                else:
                    out["text"].append(None)
                    out["status"].append("minhash")
        if self.decon is not None and live:
            flags = list(self.decon([out["text"][i] for i in live], num_threads=self.nt))
            keep_rows = []
            for i, bad in zip(live, flags):
                if bad:
                    out["status"][i] = "decontaminate"
                    out["reason"][i] = "benchmark_overlap" if bad is True else f"benchmark_overlap: {bad!r}"[:300]
                    out["text"][i] = None
                else:
                    keep_rows.append(i)
            live = keep_rows
        if live and self.scorer is not None:
            keep_rows = []
            dims = self.scorer.dimensions
            for i, row in zip(live, self.scorer.score([out["text"][i] for i in live])):
                sc = {d: round(float(x), 6) for d, x in zip(dims, row)}
                out["scores"][i] = json.dumps(sc)
                low = [f"{d}={sc[d]:.3f}<{m}" for d, m in self.min_scores.items() if sc[d] < m]
                if low:
                    out["status"][i], out["reason"][i], out["text"][i] = "score", "low_score: " + ", ".join(low), None
                else:
                    keep_rows.append(i)
            live = keep_rows
        if live and self.clf is not None:
            for i, lab in zip(live, self.clf.predict([out["text"][i] for i in live])):
                out["domain"][i] = lab
        return out


class Pipeline:
    def __init__(self, cfg: dict[str, Any], *, progress: bool = True, engine: str | None = None) -> None:
        self.cfg = cfg
        where = cfg.get("_path", "pipeline config")
        self.where = where
        base = os.path.dirname(where) if os.path.isfile(where) else os.getcwd()
        top = {"pipeline", "sources", "filter", "dedup", "decontaminate", "score", "classify", "mix", "pack", "_path"}
        bad = sorted(set(cfg) - top)
        if bad:
            raise Qwen25ValueError(f"{where}: unknown section(s) {bad} (known: {sorted(top - {'_path'})})")
        p = _section(cfg, "pipeline", {"output", "batch_size", "num_threads", "on_bad_line", *_EXEC_KEYS}, where)
        if "output" not in p:
            raise Qwen25ValueError(f"{where}: [pipeline] needs output = \"folder\"")
        if not isinstance(p["output"], str) or not p["output"]:
            raise Qwen25ValueError(f"{where}: [pipeline] output must be a folder name, got {p['output']!r}")
        self.out = os.path.join(base, p["output"])
        self.batch_size = _typed(p, "batch_size", int, f"{where} [pipeline]", 1000, minimum=1)
        self.num_threads = _typed(p, "num_threads", int, f"{where} [pipeline]", minimum=1)
        self.on_bad_line = p.get("on_bad_line", "error")
        if self.on_bad_line not in ("error", "skip"):
            raise Qwen25ValueError(f"{where}: on_bad_line must be 'error' or 'skip'")
        self.engine = engine if engine is not None else p.get("engine", "local")
        if self.engine not in ENGINES:
            raise Qwen25ValueError(f"{where}: engine must be one of {list(ENGINES)}, got {self.engine!r}")
        if self.engine == "ray":
            import importlib.util

            missing = [m for m in ("ray", "pyarrow") if importlib.util.find_spec(m) is None]
            if missing:
                raise Qwen25ValueError(f"{where}: engine 'ray' needs {missing}: pip install 'ray[data]' pyarrow")
        self.ray_address = p.get("ray_address")
        self.concurrency = p.get("concurrency")
        if self.concurrency is not None and (not isinstance(self.concurrency, int) or self.concurrency < 1):
            raise Qwen25ValueError(f"{where}: concurrency must be an int >= 1, got {self.concurrency!r}")
        self.progress = progress
        srcs = cfg.get("sources")
        if not isinstance(srcs, list) or not srcs:
            raise Qwen25ValueError(f"{where}: needs at least one [[sources]] table")
        self.sources: list[Source] = []
        for i, s in enumerate(srcs):
            known = {"name", "paths", "text_field", "id_field", "domain"}
            bad = sorted(set(s) - known)
            if bad or "name" not in s or "paths" not in s:
                raise Qwen25ValueError(f"{where}: sources[{i}] needs name and paths (unknown keys: {bad})")
            pats = [s["paths"]] if isinstance(s["paths"], str) else s["paths"]
            if not isinstance(pats, list) or not pats or not all(isinstance(x, str) and x for x in pats):
                raise Qwen25ValueError(f"{where}: sources[{i}] paths must be a glob or a non-empty list of globs, got {s['paths']!r}")
            for key in ("name", "text_field", "id_field", "domain"):
                if key in s and (not isinstance(s[key], str) or not s[key]):
                    raise Qwen25ValueError(f"{where}: sources[{i}] {key} must be a non-empty string, got {s[key]!r}")
            files: list[str] = []
            for pat in pats:
                hits = sorted(glob.glob(os.path.join(base, pat)))
                if not hits:
                    raise Qwen25FileNotFoundError(2, f"source {s['name']!r}: no file matches", os.path.join(base, pat))
                files += hits
            self.sources.append(Source(s["name"], files, s.get("text_field", "text"), s.get("id_field"), s.get("domain", s["name"])))
        self.filter_cfg = _section(cfg, "filter", {"enabled", "default", "domains", "stats"}, where)
        if self.filter_cfg.get("stats", "removed") not in ("removed", "all"):
            raise Qwen25ValueError(f"{where} [filter]: stats must be 'removed' or 'all', got {self.filter_cfg['stats']!r}")
        self.dedup_cfg = _section(
            cfg, "dedup",
            {"exact", "exact_lowercase", "exact_strip_punct", "exact_collapse_ws", "minhash", "minhash_lowercase",
             "minhash_strip_punct", "minhash_collapse_ws", "num_perm", "bands", "rows", "ngram", "seed", "mem_budget"},
            where,
        )  # fmt: skip
        for key, lo in (("num_perm", 1), ("bands", 1), ("rows", 1), ("ngram", 1), ("seed", 0), ("mem_budget", 1)):
            _typed(self.dedup_cfg, key, int, f"{where} [dedup]", minimum=lo)
        for key in ("exact", "minhash", "exact_lowercase", "exact_strip_punct", "exact_collapse_ws",
                    "minhash_lowercase", "minhash_strip_punct", "minhash_collapse_ws"):  # fmt: skip
            _typed(self.dedup_cfg, key, bool, f"{where} [dedup]")
        if self.dedup_cfg.get("minhash", True):
            from .dedup import MinHashDeduplicator

            d = self.dedup_cfg
            try:  # bands x rows must equal num_perm, and so on: checked here, not after reading
                MinHashDeduplicator(d.get("num_perm", 112), d.get("bands", 14), d.get("rows", 8), d.get("ngram", 5), d.get("seed", 1))
            except Qwen25ValueError as e:
                raise Qwen25ValueError(f"{where} [dedup]: {e}") from None
        self.decon_cfg = _section(cfg, "decontaminate", {"enabled", "options"}, where)
        opts = self.decon_cfg.get("options", {})
        if not isinstance(opts, dict):
            raise Qwen25ValueError(f"{where} [decontaminate]: options must be a table, got {opts!r}")
        ts = opts.get("test_set")
        if isinstance(ts, str) and self.decon_cfg.get("enabled", True):
            from . import benchmarks

            if ts.lower() not in benchmarks.names():  # a file: relative to the TOML, like every path here
                path = os.path.join(base, ts)
                if not os.path.exists(path):
                    raise Qwen25FileNotFoundError(2, f"[decontaminate] test_set is neither a benchmark ({', '.join(benchmarks.names())}) nor a file", path)
                self.decon_cfg = {**self.decon_cfg, "options": {**opts, "test_set": path}}
        _check_decontam_options(opts, f"{where} [decontaminate]")
        self.score_cfg = _section(cfg, "score", {"model", "dimensions", "min", "max_doc_tokens", "batch_size", "device", "dtype"}, where)
        if self.score_cfg:
            sw = f"{where} [score]"
            if not isinstance(self.score_cfg.get("model"), str):
                raise Qwen25ValueError(f"{sw}: needs model = \"checkpoint folder\"")
            mpath = os.path.join(base, self.score_cfg["model"])
            if not os.path.isfile(os.path.join(mpath, "config.json")):
                raise Qwen25FileNotFoundError(2, "[score] model is not a checkpoint folder (no config.json)", mpath)
            dims = self.score_cfg.get("dimensions")
            if dims is not None and (not isinstance(dims, dict) or not dims or not all(isinstance(v, str) for v in dims.values())):
                raise Qwen25ValueError(f"{sw}: dimensions must be a table of name = \"what is rated\"")
            from .classify import LM_DIMENSIONS

            names = set(dims or LM_DIMENSIONS)
            mins = self.score_cfg.get("min", {})
            if not isinstance(mins, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in mins.values()):
                raise Qwen25ValueError(f"{sw}: min must be a table of dimension = number")
            if set(mins) - names:
                raise Qwen25ValueError(f"{sw}: min names unknown dimension(s) {sorted(set(mins) - names)} (dimensions: {sorted(names)})")
            for key in ("max_doc_tokens", "batch_size"):
                _typed(self.score_cfg, key, int, sw, minimum=1)
            self.score_cfg = {**self.score_cfg, "model": mpath}
        self.classify_cfg = _section(cfg, "classify", {"model"}, where)
        if "model" in self.classify_cfg:
            self.classify_cfg["model"] = os.path.join(base, self.classify_cfg["model"])
        self.mix_cfg = _section(
            cfg, "mix", {"weights", "max_repeat", "seed", "mode", "total_docs", "total_tokens", "unit", "phases", "temperature"}, where
        )
        unit = self.mix_cfg.get("unit", "tokens")
        if unit not in ("tokens", "docs"):
            raise Qwen25ValueError(f"{where}: [mix] unit must be 'tokens' or 'docs', got {unit!r}")
        other = "total_docs" if unit == "tokens" else "total_tokens"
        if other in self.mix_cfg:
            raise Qwen25ValueError(f"{where}: [mix] {other} needs unit = {'docs' if unit == 'tokens' else 'tokens'!r}")
        mw = f"{where} [mix]"
        if self.mix_cfg.get("mode", "smooth") not in ("smooth", "random"):
            raise Qwen25ValueError(f"{mw}: mode must be 'smooth' or 'random', got {self.mix_cfg['mode']!r}")
        _typed(self.mix_cfg, "seed", int, mw, minimum=0)
        _typed(self.mix_cfg, "max_repeat", float, mw)
        if self.mix_cfg.get("max_repeat", 1.0) <= 0:
            raise Qwen25ValueError(f"{mw}: max_repeat must be > 0, got {self.mix_cfg['max_repeat']!r}")
        _typed(self.mix_cfg, "total_tokens", float, mw, minimum=0)
        _typed(self.mix_cfg, "total_docs", float, mw, minimum=0)
        _typed(self.mix_cfg, "temperature", float, mw)
        self._check_weights(self.mix_cfg.get("weights"), mw)
        if self.mix_cfg.get("phases") and (set(self.mix_cfg) & {"weights", "total_tokens", "total_docs", "temperature"}):
            raise Qwen25ValueError(f"{mw}: with [[mix.phases]], give weights, totals and temperature per phase, not in [mix]")
        if "weights" in self.mix_cfg and "temperature" in self.mix_cfg:
            raise Qwen25ValueError(f"{mw}: give weights or temperature, not both")
        self.pack_cfg = _section(cfg, "pack", {"seq_len", "seqs_per_shard"}, where)
        _typed(self.pack_cfg, "seq_len", int, f"{where} [pack]", minimum=1)
        _typed(self.pack_cfg, "seqs_per_shard", int, f"{where} [pack]", minimum=1)
        self._parse_phases()
        self._check_filters()
        self._check_domains()

    # ---- helpers ---------------------------------------------------------------------------

    def _filter_tables(self) -> dict[str, Any]:
        """``{"default": table, "domains": {domain: table}}``: a domain's table overrides the
        default key by key (``gopher_quality = false`` drops that filter; a table changes only
        the thresholds it names)."""
        default = self.filter_cfg.get("default", {})
        doms = {}
        for d, v in self.filter_cfg.get("domains", {}).items():
            merged = dict(default)
            for k, val in v.items():
                base = merged.get(k)
                merged[k] = {**base, **val} if isinstance(base, dict) and isinstance(val, dict) else val
            doms[d] = merged
        return {"default": default, "domains": doms}

    def _check_filters(self) -> None:
        """Build the filter configurations once here, Rust side included, so that errors name
        the TOML file and come before any reading."""
        from .. import _native
        from .filters import FilterConfig

        if not self.filter_cfg.get("enabled", True):
            return
        for k in ("default", "domains"):
            if not isinstance(self.filter_cfg.get(k, {}), dict):
                raise Qwen25ValueError(f"{self.where}: [filter.{k}] must be a table")
        tables = self._filter_tables()
        for name, table in [("default", tables["default"])] + [(f"domains.{d}", t) for d, t in tables["domains"].items()]:
            where = f"{self.where} [filter.{name}]"
            cfg = FilterConfig.from_dict(table, where=where)
            try:
                _native.QualityFilters(cfg.to_json())
            except (ValueError, TypeError) as e:
                raise Qwen25ValueError(f"{where}: {e}") from None

    def _check_weights(self, w: Any, where: str) -> None:
        if w is None:
            return
        if not isinstance(w, dict) or not w:
            raise Qwen25ValueError(f"{where}: weights must be a table of domain = number, got {w!r}")
        for k, v in w.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise Qwen25ValueError(f"{where}: weight of {k!r} must be a number >= 0, got {v!r}")
        if sum(w.values()) <= 0:
            raise Qwen25ValueError(f"{where}: weights sum to 0")

    def _check_domains(self) -> None:
        """Weights must name domains that can exist: a source's domain or a classifier label."""
        known = {s.domain for s in self.sources}
        if "model" in self.classify_cfg:
            from .classify import DomainClassifier

            try:
                known = set(DomainClassifier.load(self.classify_cfg["model"]).labels)
            except OSError as e:
                raise Qwen25FileNotFoundError(2, f"[classify] model cannot be read ({e})", self.classify_cfg["model"]) from None
        tables = [("[mix]", self.mix_cfg.get("weights"))] + [(f"[[mix.phases]] {p.name!r}", p.weights) for p in self._phase_list]
        for what, w in tables:
            unknown = sorted(set(w or {}) - known)
            if unknown:
                raise Qwen25ValueError(f"{self.where} {what}: weights name unknown domain(s) {unknown} (domains: {sorted(known)})")

    def _threads(self) -> int | None:
        if self.num_threads is not None:
            return int(self.num_threads)
        return 1 if self.engine == "ray" else None

    def _fingerprints(self) -> dict[str, str]:
        """One fingerprint per phase, of what its results depend on (and of the phase before):
        scan on the sources, their files, on_bad_line, [filter] and [dedup]; near_dedup also on
        [decontaminate] and [classify] (with the model file); mix_pack also on [mix] and [pack].
        So a change to [mix] reruns only the mix; engine, threads and batch size count nowhere
        (they do not change results)."""

        def h(*parts: Any) -> str:
            return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

        files = [(f, os.path.getsize(f), os.path.getmtime(f)) for s in self.sources for f in s.files]
        pl = {k: v for k, v in self.cfg.get("pipeline", {}).items() if k not in _EXEC_KEYS and k != "output"}
        scan = h(self.cfg.get("sources"), files, pl, self.cfg.get("filter"), self.cfg.get("dedup"))
        model = self.classify_cfg.get("model")
        mfile = (os.path.getsize(model), os.path.getmtime(model)) if model and os.path.exists(model) else None
        near = h(scan, self.cfg.get("decontaminate"), self.cfg.get("classify"), mfile, self.cfg.get("score"),
                 self._model_stamp(self.score_cfg.get("model")))
        return {"scan": scan, "near_dedup": near, "mix_pack": h(near, self.cfg.get("mix"), self.cfg.get("pack"))}

    @staticmethod
    def _model_stamp(path: str | None) -> Any:
        """(name, size, mtime) of a checkpoint folder's files, so a changed model reruns."""
        if not path or not os.path.isdir(path):
            return None
        return sorted((f, os.path.getsize(os.path.join(path, f)), os.path.getmtime(os.path.join(path, f))) for f in os.listdir(path))

    def _outputs_ok(self, phase: str) -> bool:
        """Whether a finished phase's outputs are still there (a rerun redoes it otherwise)."""
        need = {
            "scan": ["stage1.jsonl", "stage1.tok", "stage1.len", "minhash_clusters.npy", "removed.scan.jsonl"],
            "near_dedup": ["stage2/index.json", "removed.near.jsonl"],
            "mix_pack": ["kept.jsonl", "removed.mix.jsonl"],
        }[phase]
        if not all(os.path.exists(self._p(n)) for n in need):
            return False
        if phase == "near_dedup":
            try:
                with open(self._p("stage2/index.json"), encoding="utf-8") as f:
                    index = json.load(f)
            except (OSError, ValueError):
                return False
            return all(os.path.exists(self._p(os.path.join("stage2", v[k]))) for v in index.values() for k in ("file", "tok", "len"))
        if phase == "mix_pack":
            named = bool(self._phases()[0].name)
            dirs = [os.path.join("packed", p.name) for p in self._phases()] if named else ["packed"]
            return all(os.path.exists(self._p(os.path.join(d, "manifest.json"))) for d in dirs)
        return True

    def _p(self, name: str) -> str:
        return os.path.join(self.out, name)

    def _state(self) -> dict[str, Any]:
        try:
            with open(self._p("state.json"), encoding="utf-8") as f:
                st: dict[str, Any] = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {"done": [], "fingerprints": {}}
        return st

    def _save_state(self, st: dict[str, Any]) -> None:
        tmp = self._p("state.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(st, f)
        os.replace(tmp, self._p("state.json"))

    def _execute(self, worker: type, spec: dict[str, Any], tasks: list[dict[str, Any]]) -> Iterator[dict[str, list[Any]]]:
        """Run ``worker(spec)`` over ``tasks`` (one row each); yield its output columns in task order."""
        if self.engine == "ray":
            from .distributed import ray_map_ordered

            yield from ray_map_ordered(worker, spec, tasks, concurrency=self.concurrency, address=self.ray_address)
            return
        w = worker(spec)
        for t in tasks:
            yield w({k: [v] for k, v in t.items()})

    def _plain(self, path: str, k: int) -> str:
        """A path the workers can read by byte ranges: ``path`` itself when it is plain JSONL;
        for ``.gz`` / ``.zst`` JSONL a decompressed copy, for Parquet a JSONL copy (one line per
        row, so ``line`` is the row number + 1), under ``OUT/plain/`` (written once, then
        renamed; removed when the scan is done). Errors still name the original file."""
        from .records import file_kind, open_binary

        low = path.lower()
        kind = file_kind(path) if low.endswith((".gz", ".zst", ".parquet")) else "jsonl"
        if kind == "jsonl" and not low.endswith((".gz", ".zst")):
            return path
        os.makedirs(self._p("plain"), exist_ok=True)
        dst = self._p(os.path.join("plain", f"{k:05d}.jsonl"))
        total = os.path.getsize(path)
        bar = _bar(None, f"decompress {os.path.basename(path)}" if kind == "jsonl" else f"read {os.path.basename(path)}",
                   self.progress and total > (8 << 20))  # fmt: skip
        try:
            with open(dst + ".tmp", "wb") as out:
                if kind == "parquet":
                    from .records import iter_parquet

                    for row in iter_parquet(path):
                        out.write(json.dumps(row, ensure_ascii=False, default=str).encode() + b"\n")
                        bar.update(1)
                else:
                    with open_binary(path) as f:
                        while chunk := f.read(1 << 22):
                            out.write(chunk)
                            bar.update(1)
        except Exception as e:  # gzip, zstandard and pyarrow each raise their own errors
            raise FormatError(f"{path}:0: cannot be read as {'Parquet' if kind == 'parquet' else 'compressed JSONL'} ({e})",
                              path, 0) from None  # fmt: skip
        finally:
            bar.close()
        os.replace(dst + ".tmp", dst)
        return dst

    def _files(self) -> list[tuple[str, int]]:
        return [(path, si) for si, s in enumerate(self.sources) for path in s.files]

    # ---- phases ----------------------------------------------------------------------------

    def _scan(self, report: dict[str, Any]) -> None:
        """read -> filter -> exact dedup -> MinHash signatures; survivors to stage1.jsonl."""
        import numpy as np

        from .dedup import ExactDeduplicator, MinHashDeduplicator

        d = self.dedup_cfg
        nt = self._threads()
        ex_cfg = {"lowercase": d.get("exact_lowercase", False), "strip_punct": d.get("exact_strip_punct", False),
                  "collapse_ws": d.get("exact_collapse_ws", False)}  # fmt: skip
        exact = ExactDeduplicator(**ex_cfg, num_threads=nt) if d.get("exact", True) else None
        mh = mhd = None
        if d.get("minhash", True):
            mhd = MinHashDeduplicator(
                d.get("num_perm", 112), d.get("bands", 14), d.get("rows", 8), d.get("ngram", 5), d.get("seed", 1),
                lowercase=d.get("minhash_lowercase", True), strip_punct=d.get("minhash_strip_punct", True),
                collapse_ws=d.get("minhash_collapse_ws", True), num_threads=nt,
            )  # fmt: skip
            mh = mhd.stream(mem_budget=int(d.get("mem_budget", 1 << 30)), spill_dir=self.out)
        files = self._files()
        import shutil

        shutil.rmtree(self._p("plain"), ignore_errors=True)  # copies an interrupted run left: never reused
        readable = [(self._plain(path, k), src) for k, (path, src) in enumerate(files)]
        spec = {
            "files": readable,
            "sources": [(s.text_field, s.id_field, s.domain) for s in self.sources],
            "filter": self._filter_tables() if self.filter_cfg.get("enabled", True) else None,
            "filter_stats_all": self.filter_cfg.get("stats", "removed") == "all",
            "exact": ex_cfg if exact is not None else None,
            "minhash": (
                {"num_perm": mhd.num_perm, "bands": mhd.bands, "rows": mhd.rows, "ngram": mhd.ngram, "seed": mhd.seed,
                 "lowercase": mhd.lowercase, "strip_punct": mhd.strip_punct, "collapse_ws": mhd.collapse_ws}
                if mhd is not None else None
            ),
            "num_threads": nt,
        }  # fmt: skip
        tasks = [
            {"file": fi, "start": a, "end": b, "line": first}
            for fi, (path, _) in enumerate(readable)
            for a, b, first in line_chunks(path, self.batch_size)
        ]
        base = os.path.dirname(self.where) if os.path.isfile(self.where) else os.getcwd()
        rels = [os.path.relpath(path, base) for path, _ in files]
        stats: dict[str, Counter] = defaultdict(Counter)
        removed = _Writer(self._p("removed.scan.jsonl"))
        stage1 = _Writer(self._p("stage1.jsonl"))
        stage1_tokens = _TokenWriter(self._p("stage1"))
        from array import array

        exact_prov = array("q")  # (file index << 40) | line of each exact-dedup input: 8 bytes a document
        bar = _bar(None, "read+filter+dedup", self.progress)
        try:
            for cols in self._execute(ScanWorker, spec, tasks):
                st = cols["status"]
                ok = [k for k, s in enumerate(st) if s == "ok"]
                ex_ids: dict[int, int] = {}
                if exact is not None and ok:
                    start = exact.n_docs
                    ids = exact.add_hashes(b"".join(cols["hash"][k] for k in ok)).tolist()
                    ex_ids = {k: (c if c != start + j else -1) for j, (k, c) in enumerate(zip(ok, ids))}
                sigs: list[bytes] = []
                for k, status in enumerate(st):
                    fi, line = cols["file"][k], cols["line"][k]
                    path = files[fi][0]
                    prov: dict[str, Any] = {"source": self.sources[files[fi][1]].name, "file": rels[fi], "line": line}
                    stats["read"]["in"] += 1
                    dm = cols["domain"][k]
                    if status in ("bad", "utf8"):
                        why = cols["reason"][k] if status == "bad" else f"not UTF-8 ({cols['reason'][k]})"
                        if self.on_bad_line == "error":
                            raise FormatError(f"{path}:{line}: {why}", path, line)
                        removed.write({**prov, "stage": "read", "reason": f"bad_line: {why}"})
                        stats["removed:read"]["bad_line"] += 1
                        _flow(stats, "read", dm, 0, False)  # a bad line has no text to count
                        continue
                    if cols["id"][k] is not None:
                        prov["id"] = json.loads(cols["id"][k])
                    ntok = int(cols["ntok"][k])
                    _flow(stats, "read", dm, ntok, True)
                    stats[f"domain_in:{dm}"]["docs"] += 1
                    stats[f"domain_in:{dm}"]["chars"] += cols["chars"][k]
                    stats[f"domain_in:{dm}"]["tokens"] += ntok
                    if status == "filter":
                        removed.write({**prov, "domain": dm, "stage": "filter", "reason": cols["reason"][k],
                                       **_stats_of(cols["stats"][k])})  # fmt: skip
                        stats["removed:filter"][cols["reason"][k]] += 1
                        _flow(stats, "filter", dm, ntok, False)
                        continue
                    ntok_out = len(cols["tokens"][k]) // 4  # C4 may have removed lines
                    _flow(stats, "filter", dm, ntok, True, out_tokens=ntok_out)
                    if exact is not None:
                        exact_prov.append((fi << 40) | line)
                        cid = ex_ids[k]
                        if cid >= 0:
                            first = exact_prov[cid]
                            removed.write({**prov, "domain": dm, "stage": "exact_dedup",
                                           "reason": f"duplicate_of {rels[first >> 40]}:{first & ((1 << 40) - 1)}",
                                           **_stats_of(cols["stats"][k])})  # fmt: skip
                            stats["removed:exact_dedup"]["exact_duplicate"] += 1
                            _flow(stats, "exact_dedup", dm, ntok_out, False)
                            continue
                    _flow(stats, "exact_dedup", dm, ntok_out, True)
                    if mh is not None:
                        sigs.append(cols["sig"][k])
                    stage1.write({"prov": prov, "text": cols["text"][k], "domain": dm, **_stats_of(cols["stats"][k])})
                    stage1_tokens.write(cols["tokens"][k])
                if mh is not None and mhd is not None and sigs:
                    mh.add_signatures(np.frombuffer(b"".join(sigs), dtype="<u4").reshape(-1, mhd.num_perm))
                bar.update(len(st))
        finally:
            bar.close()
        ids = mh.finish() if mh is not None else np.arange(stage1.n, dtype=np.int64)
        np.save(self._p("minhash_clusters.npy.tmp.npy"), ids)
        os.replace(self._p("minhash_clusters.npy.tmp.npy"), self._p("minhash_clusters.npy"))
        removed.close()
        stage1.close()
        stage1_tokens.close()
        report["scan"] = {k: dict(v) for k, v in stats.items()}
        if exact is not None:
            sizes = exact.cluster_sizes()
            report["scan"]["clusters"] = _cluster_summary(
                [n for _, n in sizes], [(f"{rels[exact_prov[f] >> 40]}:{exact_prov[f] & ((1 << 40) - 1)}", n) for f, n in sizes]
            )
        shutil.rmtree(self._p("plain"), ignore_errors=True)  # the decompressed copies are done with

    def _near_dedup(self, report: dict[str, Any]) -> None:
        """MinHash keep flags, decontaminate, classify, tokenize; survivors to
        stage2/NNNN.jsonl with their token ids in stage2/NNNN.tok (lengths in NNNN.len)."""
        import numpy as np

        ids = np.load(self._p("minhash_clusters.npy"))
        keep = (ids == np.arange(len(ids))).astype(np.uint8)
        removed = _Writer(self._p("removed.near.jsonl"))
        os.makedirs(self._p("stage2"), exist_ok=True)
        writers: dict[str, tuple[_Writer, _TokenWriter]] = {}
        stats: dict[str, Counter] = defaultdict(Counter)
        meth, decon_note = _decontam_plan(self.decon_cfg)
        spec = {
            "stage1": self._p("stage1.jsonl"),
            "decontaminate_method": meth,
            "decontaminate_options": self.decon_cfg.get("options", {}),
            "classify_model": self.classify_cfg.get("model"),
            "score": self.score_cfg or None,
            "num_threads": self._threads(),
        }
        tasks = []
        i = 0
        for a, b, first in line_chunks(spec["stage1"], self.batch_size):
            n = min(self.batch_size, len(ids) - (first - 1))
            tasks.append({"start": a, "end": b, "keep": keep[first - 1 : first - 1 + n].tobytes()})
        from array import array

        provs = array("q")  # (file index << 40) | line of each stage-1 record: 8 bytes a document
        file_index: dict[str, int] = {}
        file_names: list[str] = []
        lens = np.fromfile(self._p("stage1.len"), dtype="<u8").astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lens)])
        if len(lens) != len(ids):
            raise Qwen25ValueError(f"{self._p('stage1.len')}: {len(lens)} documents, {len(ids)} expected")
        toks = np.memmap(self._p("stage1.tok"), dtype="<u4", mode="r") if starts[-1] else np.zeros(0, "<u4")
        bar = _bar(len(ids), "near-dedup+decontam+classify", self.progress)
        for cols in self._execute(NearWorker, spec, tasks):
            for k, status in enumerate(cols["status"]):
                prov = json.loads(cols["prov"][k])
                fk = file_index.get(prov["file"])
                if fk is None:
                    fk = file_index[prov["file"]] = len(file_names)
                    file_names.append(prov["file"])
                provs.append((fk << 40) | prov["line"])
                dm, src = cols["domain"][k], cols["src_domain"][k]
                n = int(lens[i])
                _flow(stats, "minhash_dedup", src, n, status != "minhash")
                if status == "minhash":
                    first = provs[ids[i]]
                    removed.write({**prov, "domain": dm, "stage": "minhash_dedup",
                                   "reason": f"near_duplicate_of {file_names[first >> 40]}:{first & ((1 << 40) - 1)}",
                                   **_stats_of(cols["stats"][k])})  # fmt: skip
                    stats["removed:minhash_dedup"]["near_duplicate"] += 1
                    i += 1
                    continue
                _flow(stats, "decontaminate", src, n, status != "decontaminate")
                scores = {"scores": json.loads(cols["scores"][k])} if cols["scores"][k] is not None else {}
                if status == "decontaminate":
                    removed.write({**prov, "domain": dm, "stage": "decontaminate", "reason": cols["reason"][k],
                                   **_stats_of(cols["stats"][k])})  # fmt: skip
                    stats["removed:decontaminate"]["benchmark_overlap"] += 1
                    i += 1
                    continue
                _flow(stats, "score", src, n, status != "score")
                if status == "score":
                    removed.write({**prov, "domain": dm, "stage": "score", "reason": cols["reason"][k], **scores,
                                   **_stats_of(cols["stats"][k])})  # fmt: skip
                    stats["removed:score"]["low_score"] += 1
                else:
                    _flow(stats, "classify", src, n, True, out_domain=dm)
                    w = writers.get(dm)
                    if w is None:
                        stem = self._p(os.path.join("stage2", f"{len(writers):04d}"))
                        w = writers[dm] = (_Writer(stem + ".jsonl"), _TokenWriter(stem))
                    w[0].write({"prov": prov, "text": cols["text"][k], "domain": dm, **scores, **_stats_of(cols["stats"][k])})
                    w[1].write(toks[starts[i] : starts[i + 1]].tobytes())
                i += 1
            bar.update(len(cols["status"]))
        bar.close()
        if i != len(ids):
            raise Qwen25ValueError(f"{spec['stage1']}: {i} records read back, {len(ids)} expected (changed during the run?)")
        for jw, tw in writers.values():
            jw.close()
            tw.close()
        removed.close()
        index = {
            dm: {"file": os.path.basename(jw.path), "docs": jw.n, "tokens": tw.tokens,
                 "tok": os.path.basename(tw.stem) + ".tok", "len": os.path.basename(tw.stem) + ".len"}
            for dm, (jw, tw) in writers.items()
        }  # fmt: skip
        with open(self._p("stage2/index.json.tmp"), "w", encoding="utf-8") as f:
            json.dump(index, f)
        os.replace(self._p("stage2/index.json.tmp"), self._p("stage2/index.json"))
        report["near_dedup"] = {k: dict(v) for k, v in stats.items()}
        if self.dedup_cfg.get("minhash", True):
            reps, counts = np.unique(ids, return_counts=True)
            big = [(int(r), int(c)) for r, c in zip(reps, counts) if c > 1]
            report["near_dedup"]["clusters"] = _cluster_summary(
                [c for _, c in big], [(f"{file_names[provs[r] >> 40]}:{provs[r] & ((1 << 40) - 1)}", c) for r, c in big]
            )
        report["decontaminate"] = decon_note
        report["classify"] = "DomainClassifier" if spec["classify_model"] is not None else "source domains"
        report["score"] = f"LMScorer ({self.score_cfg['model']})" if self.score_cfg else "off"

    def _phases(self) -> list[Any]:
        """The mix's phases: ``[[mix.phases]]`` tables in order, or ``[mix]`` itself as one
        unnamed phase (packed to ``packed/``, as without phases)."""
        from .mix import Phase

        m, pk = self.mix_cfg, self.pack_cfg
        unit = m.get("unit", "tokens")
        total_key = "total_tokens" if unit == "tokens" else "total_docs"
        if not m.get("phases"):
            w = m.get("weights") or None
            t = m.get("temperature")
            # without weights or a temperature every document is taken once, whatever max_repeat says
            return [Phase("", w, m.get(total_key), {}, seq_len=int(pk.get("seq_len", 4096)),
                          max_repeat=float(m.get("max_repeat", 1.0)) if (w or t) else 1.0, temperature=t)]  # fmt: skip
        return list(self._phase_list)

    def _parse_phases(self) -> None:
        from .mix import Phase

        self._phase_list: list[Any] = []
        raw = self.mix_cfg.get("phases")
        if raw is None:
            return
        if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
            raise Qwen25ValueError(f"{self.where}: [[mix.phases]] must be tables")
        unit = self.mix_cfg.get("unit", "tokens")
        total_key = "total_tokens" if unit == "tokens" else "total_docs"
        known = {"name", "weights", "temperature", total_key, "max_repeat", "seq_len", "long_share", "long_min"}
        names: set[str] = set()
        for i, ph in enumerate(raw):
            where = f"{self.where}: [[mix.phases]] #{i + 1}"
            bad = sorted(set(ph) - known)
            if bad:
                raise Qwen25ValueError(f"{where}: unknown key(s) {bad} (known: {sorted(known)})")
            name = ph.get("name")
            if not isinstance(name, str) or not name or name in names or "/" in name or os.sep in name or name.startswith("."):
                raise Qwen25ValueError(f"{where}: needs a unique name usable as a folder name, got {name!r}")
            where = f"{self.where}: [[mix.phases]] {name!r}"
            names.add(name)
            self._check_weights(ph.get("weights"), where)
            if "weights" in ph and "temperature" in ph:
                raise Qwen25ValueError(f"{where}: give weights or temperature, not both")
            try:
                self._phase_list.append(Phase(
                    name, ph.get("weights"), _typed(ph, total_key, float, where, minimum=0), {},
                    seq_len=_typed(ph, "seq_len", int, where, self.pack_cfg.get("seq_len", 4096), minimum=1),
                    long_share=_typed(ph, "long_share", float, where), long_min=_typed(ph, "long_min", int, where, minimum=1),
                    max_repeat=_typed(ph, "max_repeat", float, where, self.mix_cfg.get("max_repeat", 1.0)),
                    temperature=_typed(ph, "temperature", float, where),
                ))  # fmt: skip
            except Qwen25ValueError as e:
                raise Qwen25ValueError(f"{where}: {e}") from None

    def _mix_pack(self, report: dict[str, Any]) -> None:
        """Each phase: plan pools, interleave their documents, pack the stored ids. A document
        no phase takes is removed ("mix", "downsampled"); ``repeat`` in kept.jsonl counts the
        document's earlier placements."""
        import numpy as np

        from .mix import plan_phase, schedule
        from .pack import TokenPacker

        with open(self._p("stage2/index.json"), encoding="utf-8") as f:
            index = json.load(f)

        def stage2(name: str) -> str:
            return self._p(os.path.join("stage2", name))

        lengths = {d: np.fromfile(stage2(v["len"]), dtype="<u8").astype(np.int64) for d, v in index.items()}
        starts = {d: np.concatenate([[0], np.cumsum(n)]) for d, n in lengths.items()}
        tokens = {  # memory-mapped: the token ids stay on disk until packed
            d: np.memmap(stage2(v["tok"]), dtype="<u4", mode="r") if v["tokens"] else np.zeros(0, "<u4")
            for d, v in index.items()
        }
        unit = self.mix_cfg.get("unit", "tokens")
        seed, mode = int(self.mix_cfg.get("seed", 0)), self.mix_cfg.get("mode", "smooth")
        placed = {d: np.zeros(len(n), dtype=np.int64) for d, n in lengths.items()}  # placements per document
        kept = _Writer(self._p("kept.jsonl"))
        removed = _Writer(self._p("removed.mix.jsonl"))
        stats: dict[str, Counter] = defaultdict(Counter)
        phases = self._phases()
        named = bool(phases[0].name)
        import shutil

        shutil.rmtree(self._p("packed"), ignore_errors=True)  # no shard of an earlier run stays beside the new ones
        phase_reports: dict[str, Any] = {}
        drawn: set[str] = set()  # domains some phase takes documents from
        pack_reports: dict[str, Any] = {}
        for ph in phases:
            n_doc = 0  # document index within this phase's packed folder
            pools, _, notes = plan_phase(ph, lengths, unit=unit, max_repeat=float(ph.max_repeat or 1.0))
            if ph.long_share and not any(p.long and p.size > 0 for p in pools):
                raise Qwen25ValueError(
                    f"{self.where}: phase {ph.name!r} asks for long_share = {ph.long_share} but no document kept has "
                    f"{ph.long_min or ph.seq_len} tokens or more; lower long_min or add long documents "
                    "(the finished phases are kept: a rerun resumes here)"
                )
            for note in notes:
                print(f"qwen25 data: note: {note}", file=sys.stderr)
            by_name = {p.name: p for p in pools}
            drawn.update(p.domain for p in pools if p.docs > 0)
            live = {p.name: p.docs for p in pools if p.docs > 0 and p.domain in index and len(p.index)}
            pk = self.pack_cfg
            packer = TokenPacker(
                self._p(os.path.join("packed", ph.name) if named else "packed"), seq_len=int(ph.seq_len or 4096),
                seqs_per_shard=int(pk.get("seqs_per_shard", 16384)), seed=seed, num_threads=self.num_threads,
                extra={"pipeline": os.path.basename(self.where), **({"phase": ph.name} if named else {})},
            )  # fmt: skip

            def reader(pool: Any) -> Iterator[tuple[int, dict[str, Any]]]:
                mask = np.zeros(len(lengths[pool.domain]), dtype=bool)
                mask[pool.index] = True
                while True:
                    for k, r in enumerate(_read_jsonl(stage2(index[pool.domain]["file"]))):
                        if mask[k]:
                            yield k, r

            iters = {n: reader(by_name[n]) for n in live}
            taken: Counter[str] = Counter()
            taken_tokens: Counter[str] = Counter()
            out: list[tuple[str, int, dict[str, Any]]] = []
            bar = _bar(sum(live.values()), f"mix+pack {ph.name}".strip(), self.progress)

            def flush() -> None:
                nonlocal n_doc
                if not out:
                    return
                parts = [tokens[by_name[n].domain][starts[by_name[n].domain][k] : starts[by_name[n].domain][k + 1]]
                         for n, k, _ in out]  # fmt: skip
                lens = np.array([len(p) for p in parts], dtype=np.int64)
                flat = np.concatenate(parts) if parts else np.zeros(0, "<u4")
                packer.add_token_arrays(flat, lens, [r["domain"] for _, _, r in out])
                for (n, k, r), m in zip(out, lens.tolist()):
                    d = by_name[n].domain
                    rep = int(placed[d][k])
                    placed[d][k] += 1
                    row = {**r["prov"], "domain": r["domain"], "doc": n_doc, "repeat": rep,
                           **{key: r[key] for key in ("scores", "stats") if key in r}}  # fmt: skip
                    kept.write({**row, "phase": ph.name} if named else row)
                    n_doc += 1
                    key = f"domain_out:{r['domain']}"
                    stats[key]["docs" if rep == 0 else "repeats"] += 1
                    stats[key]["chars"] += len(r["text"])
                    stats[key]["tokens"] += m
                    taken_tokens[n] += m
                bar.update(len(out))
                out.clear()

            for n in schedule(live, seed=seed, mode=mode):
                out.append((n, *next(iters[n])))
                taken[n] += 1
                if len(out) >= self.batch_size:
                    flush()
            flush()
            bar.close()
            manifest = packer.finish()
            phase_reports[ph.name] = {
                "seq_len": ph.seq_len,
                "long_share": ph.long_share,
                "long_min": (ph.long_min or ph.seq_len) if ph.long_share is not None else None,
                "quota": {
                    p.name: {"docs": p.docs, "tokens": round(p.quota, 3) if unit == "tokens"
                             else float(_tokens_of(lengths.get(p.domain, np.zeros(0, np.int64))[p.index], p.docs)),
                             "target": round(p.target, 6)}
                    for p in pools
                },  # fmt: skip
                "taken": {p.name: {"docs": taken[p.name], "tokens": taken_tokens[p.name]} for p in pools},
                "notes": notes,
            }
            pack_reports[ph.name] = {**manifest["counts"], "tokens_by_domain": {s["name"]: s["tokens"] for s in manifest["sources"]}}
        # documents no phase took: "downsampled", or "not_in_mix" when no phase draws on the domain
        for d, v in index.items():
            used = placed[d] > 0
            why = "downsampled" if d in drawn else "not_in_mix"
            for k, r in enumerate(_read_jsonl(stage2(v["file"]))):
                if not used[k]:
                    removed.write({**r["prov"], "domain": d, "stage": "mix", "reason": why,
                                   **({"stats": r["stats"]} if "stats" in r else {})})  # fmt: skip
                    stats["removed:mix"][why] += 1
            n_used, n_placed = int(used.sum()), int(placed[d].sum())
            used_tok = int(lengths[d][used].sum())
            placed_tok = int((lengths[d] * placed[d]).sum())
            stats[f"flow:mix:{d}"].update({
                "in_docs": v["docs"], "in_tokens": v["tokens"], "out_docs": n_placed, "out_tokens": placed_tok,
                "removed_docs": v["docs"] - n_used, "removed_tokens": v["tokens"] - used_tok,
                "repeat_docs": n_placed - n_used, "repeat_tokens": placed_tok - used_tok,
            })  # fmt: skip
        kept.close()
        removed.close()
        if named:
            report["mix"] = {"unit": unit, "phases": phase_reports, **{k: dict(v) for k, v in stats.items()}}
            tot: Counter[str] = Counter()
            by_dom: Counter[str] = Counter()
            for pr in pack_reports.values():
                tot.update({k: v for k, v in pr.items() if isinstance(v, int)})
                by_dom.update(pr["tokens_by_domain"])
            report["pack"] = {**tot, "tokens_by_domain": dict(by_dom), "phases": pack_reports}
        else:
            one = phase_reports[""]
            report["mix"] = {
                "unit": unit,
                "quota": {n: {"docs": q["docs"], "tokens": q["tokens"]} for n, q in sorted(one["quota"].items())},
                "taken": dict(sorted(one["taken"].items())),
                **{k: dict(v) for k, v in stats.items()},
            }
            report["pack"] = pack_reports[""]

    # ---- run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        os.makedirs(self.out, exist_ok=True)
        fps = self._fingerprints()
        st = self._state()
        done, old = list(st.get("done", [])), dict(st.get("fingerprints", {}))
        report: dict[str, Any] = dict(st.get("report", {}))
        st = {"done": [], "fingerprints": {}, "report": report}
        redo = False  # once a phase runs, every later one runs too
        for phase in PHASES:
            if not redo and phase in done and old.get(phase) == fps[phase] and self._outputs_ok(phase):
                if self.progress:
                    print(f"qwen25 data: {phase}: already done, resuming after it", file=sys.stderr)
                st["done"].append(phase)
                st["fingerprints"][phase] = fps[phase]
                continue
            redo = True
            getattr(self, f"_{phase}")(report)
            st["done"].append(phase)
            st["fingerprints"][phase] = fps[phase]
            self._save_state(st)
        # one removed list, in stage order
        w = _Writer(self._p("removed.jsonl"))
        for part in ("removed.scan.jsonl", "removed.near.jsonl", "removed.mix.jsonl"):
            for r in _read_jsonl(self._p(part)):
                w.write(r)
        w.close()
        final = self._final_report(report)
        tmp = self._p("report.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(final, f, indent=2, sort_keys=True)
        os.replace(tmp, self._p("report.json"))
        return final

    def _final_report(self, r: dict[str, Any]) -> dict[str, Any]:
        scan, near, mix = r.get("scan", {}), r.get("near_dedup", {}), r.get("mix", {})
        removed: dict[str, dict[str, int]] = {}
        for part in (scan, near, mix):
            for k, v in part.items():
                if k.startswith("removed:"):
                    removed[k.split(":", 1)[1]] = v
        stages: dict[str, Any] = {}
        for st in STAGES:
            doms: dict[str, dict[str, int]] = {}
            for part in (scan, near, mix):
                for k, v in part.items():
                    if k.startswith(f"flow:{st}:"):
                        doms[k.split(":", 2)[2]] = {
                            c: int(v.get(c, 0)) for c in _FLOW_KEYS if c in v or not c.startswith("repeat")
                        }
            tot = {c: sum(dv.get(c, 0) for dv in doms.values()) for c in _FLOW_KEYS}
            stages[st] = {
                "in": {"docs": tot["in_docs"], "tokens": tot["in_tokens"]},
                "out": {"docs": tot["out_docs"], "tokens": tot["out_tokens"]},
                "removed": {"docs": tot["removed_docs"], "tokens": tot["removed_tokens"]},  # whole documents
                **({"repeats": {"docs": tot["repeat_docs"], "tokens": tot["repeat_tokens"]}} if st == "mix" else {}),
                # tokens taken out of documents that go on (C4's line removal)
                **({"trimmed_tokens": tot["in_tokens"] - tot["removed_tokens"] - tot["out_tokens"]} if st == "filter" else {}),
                "domains": dict(sorted(doms.items())),
            }
        n_in = scan.get("read", {}).get("in", 0)
        n_removed = sum(sum(v.values()) for v in removed.values())
        n_kept = sum(v.get("docs", 0) for k, v in mix.items() if k.startswith("domain_out:"))
        n_repeats = sum(v.get("repeats", 0) for k, v in mix.items() if k.startswith("domain_out:"))
        return {
            "engine": self.engine,
            "documents_in": n_in,
            "documents_removed": n_removed,
            "documents_packed": n_kept,  # distinct records; repeats counted apart
            "removed_by_stage": removed,
            "stages": stages,  # documents and tokens in and out of each stage, per domain
            "clusters": {"exact": scan.get("clusters"), "near": near.get("clusters")},
            "domains_in": {k.split(":", 1)[1]: v for k, v in scan.items() if k.startswith("domain_in:")},
            "domains_out": {k.split(":", 1)[1]: v for k, v in mix.items() if k.startswith("domain_out:")},
            "mix": (
                {"unit": mix.get("unit"), "phases": mix["phases"]} if "phases" in mix
                else {"unit": mix.get("unit"), "quota": mix.get("quota", {}), "taken": mix.get("taken", {})}
            ),  # fmt: skip
            "repeats": n_repeats,
            "decontaminate": r.get("decontaminate"),
            "classify": r.get("classify"),
            "score": r.get("score"),
            "pack": r.get("pack", {}),
        }


def _tokens_of(lengths: Any, n_docs: int) -> int:
    """Tokens in the first ``n_docs`` documents taken in order, cycling through ``lengths``."""
    if lengths is None or len(lengths) == 0 or n_docs <= 0:
        return 0
    full, part = divmod(n_docs, len(lengths))
    return int(full * int(lengths.sum()) + int(lengths[:part].sum()))


def run_pipeline(path: str | os.PathLike[str], *, progress: bool = True, engine: str | None = None) -> dict[str, Any]:
    """Run the pipeline described by a TOML file; returns the final report. ``engine``
    ("local" or "ray") overrides ``[pipeline] engine``."""
    return Pipeline(load_config(path), progress=progress, engine=engine).run()


def format_report(rep: dict[str, Any]) -> str:
    lines = [
        f"documents in:      {rep['documents_in']}",
        f"documents removed: {rep['documents_removed']}",
        f"documents packed:  {rep['documents_packed']} (+{rep['repeats']} repeats)",
        "removed by stage:",
    ]
    for stage, reasons in sorted(rep["removed_by_stage"].items(), key=lambda kv: STAGES.index(kv[0]) if kv[0] in STAGES else 0):
        lines.append(f"  {stage:<14} {sum(reasons.values()):>8}")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:8]:
            lines.append(f"      {reason:<40} {n:>8}")
    if rep.get("stages"):
        lines.append(f"{'stage':<15} {'docs in':>9} {'out':>9} {'removed':>9} {'tokens in':>12} {'out':>12} {'removed':>12}")
        for name in sorted(rep["stages"], key=lambda n: STAGES.index(n) if n in STAGES else len(STAGES)):
            v = rep["stages"][name]
            lines.append(
                f"  {name:<13} {v['in']['docs']:>9} {v['out']['docs']:>9} {v['removed']['docs']:>9} "
                f"{v['in']['tokens']:>12} {v['out']['tokens']:>12} {v['removed']['tokens']:>12}"
                + (f"  (+{v['repeats']['docs']} repeated docs)" if v.get("repeats", {}).get("docs") else "")
                + (f"  ({v['trimmed_tokens']} tokens of removed lines)" if v.get("trimmed_tokens") else "")
            )
    lines.append("domains (docs in -> packed):")
    for d in sorted(set(rep["domains_in"]) | set(rep["domains_out"])):
        a = rep["domains_in"].get(d, {}).get("docs", 0)
        b = rep["domains_out"].get(d, {}).get("docs", 0)
        toks = rep.get("pack", {}).get("tokens_by_domain", {}).get(d, 0)
        lines.append(f"  {d:<20} {a:>8} -> {b:>8}  ({toks} tokens)")
    mix = rep.get("mix", {})
    if mix.get("quota"):
        lines.append(f"mix quota -> taken (by {mix.get('unit')}):")
        for d, q in mix["quota"].items():
            t = mix.get("taken", {}).get(d, {})
            lines.append(
                f"  {d:<20} {q.get('tokens', 0):>12.0f} tokens / {q.get('docs', 0):>8} docs"
                f" -> {t.get('tokens', 0):>12} tokens / {t.get('docs', 0):>8} docs"
            )
    for name, ph in mix.get("phases", {}).items():
        lines.append(f"phase {name} (seq_len {ph['seq_len']}"
                     + (f", {ph['long_share']:.0%} from documents >= {ph['long_min']} tokens" if ph.get("long_share") is not None else "")
                     + f"): quota -> taken (by {mix.get('unit')}):")  # fmt: skip
        for pool, q in ph["quota"].items():
            t = ph["taken"].get(pool, {})
            lines.append(f"  {pool:<20} {q['tokens']:>12.0f} tokens / {q['docs']:>8} docs -> {t.get('tokens', 0):>12} tokens / {t.get('docs', 0):>8} docs")
        for note in ph.get("notes", []):
            lines.append(f"  note: {note}")
    pk = rep.get("pack", {})
    if pk:
        lines.append(
            f"packed: {pk.get('sequences', 0)} sequences, {pk.get('tokens', 0)} tokens "
            f"({pk.get('document_tokens', 0)} document tokens, {pk.get('padding', 0)} padding)"
        )
    lines.append(f"engine: {rep.get('engine', 'local')}; decontaminate: {rep.get('decontaminate')}")
    return "\n".join(lines)
