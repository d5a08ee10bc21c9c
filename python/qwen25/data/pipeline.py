"""The pipeline job behind ``qwen25 data run pipeline.toml``:
read -> filter -> exact dedup -> MinHash dedup -> decontaminate -> classify -> mix -> pack.

Nothing is lost: every input record ends either in the packed output (listed, with its
provenance and packed document index, in ``kept.jsonl``) or in ``removed.jsonl`` with the stage
and reason that removed it; ``report.json`` holds the per-stage, per-domain counts and the test
suite checks that they add up. Every file is written as ``NAME.tmp`` and renamed when complete;
``state.json`` records the finished phases, so a rerun with the same configuration resumes after
the last finished phase (a changed configuration starts over).

A configuration (paths are relative to the TOML file)::

    [pipeline]
    output = "out"            # folder for everything below
    batch_size = 1000
    num_threads = 2           # optional; default QWEN25_NUM_THREADS or all cores
    on_bad_line = "error"     # or "skip": a bad line goes to removed.jsonl (stage "read")

    [[sources]]
    name = "web"
    paths = ["data/web/*.jsonl"]
    text_field = "text"       # default "text"
    id_field = "id"           # optional
    domain = "web"            # default: the source name

    [filter]                  # thresholds: see qwen25.data.filters (false disables a filter)
    enabled = true
    default = { fineweb = { new_line_ratio = 0.3 } }
    [filter.domains.code]
    gopher_quality = false

    [dedup]
    exact = true              # xxh3-128, first occurrence kept
    exact_lowercase = false   # (and exact_strip_punct, exact_collapse_ws)
    minhash = true            # FineWeb defaults
    num_perm = 112
    bands = 14
    rows = 8
    ngram = 5
    seed = 1
    mem_budget = 1073741824

    [decontaminate]           # qwen25.data.Decontaminator(**options).check(texts); skipped (and
    enabled = true            # reported) when no test_set is configured
    options = { test_set = "humaneval" }   # a benchmark name, a JSONL path, or a list of texts

    [classify]
    model = "domain.bin"      # optional DomainClassifier file: its label becomes the domain

    [mix]                     # optional: per-domain target proportions (by documents)
    weights = { web = 0.7, code = 0.3 }
    max_repeat = 1.0          # > 1 repeats small domains (repeats are listed in kept.jsonl)
    total_docs = 1000         # default: the most documents that meet the weights within the cap
    seed = 0
    mode = "smooth"           # or "random"

    [pack]
    seq_len = 4096
    seqs_per_shard = 16384
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

__all__ = ["Pipeline", "load_config", "run_pipeline"]

PHASES = ("scan", "near_dedup", "mix_pack")


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


def _read_jsonl(path: str) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _bar(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


class Pipeline:
    def __init__(self, cfg: dict[str, Any], *, progress: bool = True) -> None:
        self.cfg = cfg
        where = cfg.get("_path", "pipeline config")
        self.where = where
        base = os.path.dirname(where) if os.path.isfile(where) else os.getcwd()
        top = {"pipeline", "sources", "filter", "dedup", "decontaminate", "classify", "mix", "pack", "_path"}
        bad = sorted(set(cfg) - top)
        if bad:
            raise Qwen25ValueError(f"{where}: unknown section(s) {bad} (known: {sorted(top - {'_path'})})")
        p = _section(cfg, "pipeline", {"output", "batch_size", "num_threads", "on_bad_line"}, where)
        if "output" not in p:
            raise Qwen25ValueError(f"{where}: [pipeline] needs output = \"folder\"")
        self.out = os.path.join(base, p["output"])
        self.batch_size = int(p.get("batch_size", 1000))
        self.num_threads = p.get("num_threads")
        self.on_bad_line = p.get("on_bad_line", "error")
        if self.on_bad_line not in ("error", "skip"):
            raise Qwen25ValueError(f"{where}: on_bad_line must be 'error' or 'skip'")
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
            files: list[str] = []
            for pat in [s["paths"]] if isinstance(s["paths"], str) else s["paths"]:
                hits = sorted(glob.glob(os.path.join(base, pat)))
                if not hits:
                    raise Qwen25FileNotFoundError(2, f"source {s['name']!r}: no file matches", os.path.join(base, pat))
                files += hits
            self.sources.append(Source(s["name"], files, s.get("text_field", "text"), s.get("id_field"), s.get("domain", s["name"])))
        self.filter_cfg = _section(cfg, "filter", {"enabled", "default", "domains"}, where)
        self.dedup_cfg = _section(
            cfg, "dedup",
            {"exact", "exact_lowercase", "exact_strip_punct", "exact_collapse_ws", "minhash", "num_perm", "bands", "rows", "ngram", "seed", "mem_budget"},
            where,
        )  # fmt: skip
        self.decon_cfg = _section(cfg, "decontaminate", {"enabled", "options"}, where)
        self.classify_cfg = _section(cfg, "classify", {"model"}, where)
        if "model" in self.classify_cfg:
            self.classify_cfg["model"] = os.path.join(base, self.classify_cfg["model"])
        self.mix_cfg = _section(cfg, "mix", {"weights", "max_repeat", "seed", "mode", "total_docs"}, where)
        self.pack_cfg = _section(cfg, "pack", {"seq_len", "seqs_per_shard"}, where)
        self._build_filters()

    # ---- helpers ---------------------------------------------------------------------------

    def _build_filters(self) -> None:
        from .filters import DomainFilters, FilterConfig

        self.filters = None
        if self.filter_cfg.get("enabled", True):
            default = FilterConfig.from_dict(self.filter_cfg.get("default", {}), where=f"{self.where} [filter.default]")
            doms = {
                d: FilterConfig.from_dict(v, where=f"{self.where} [filter.domains.{d}]")
                for d, v in self.filter_cfg.get("domains", {}).items()
            }
            self.filters = DomainFilters(doms, default, num_threads=self.num_threads)

    def _fingerprint(self) -> str:
        cfg = {k: v for k, v in self.cfg.items() if k != "_path"}
        files = [(f, os.path.getsize(f), os.path.getmtime(f)) for s in self.sources for f in s.files]
        return hashlib.sha256(json.dumps([cfg, files], sort_keys=True, default=str).encode()).hexdigest()

    def _p(self, name: str) -> str:
        return os.path.join(self.out, name)

    def _state(self) -> dict[str, Any]:
        try:
            with open(self._p("state.json"), encoding="utf-8") as f:
                st: dict[str, Any] = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {"fingerprint": None, "done": []}
        return st

    def _save_state(self, st: dict[str, Any]) -> None:
        tmp = self._p("state.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(st, f)
        os.replace(tmp, self._p("state.json"))

    def _records(self, removed: _Writer, stats: dict[str, Counter]) -> Iterator[tuple[dict[str, Any], str, str]]:
        for s in self.sources:
            for path in s.files:
                rel = os.path.relpath(path, os.path.dirname(self.where) if os.path.isfile(self.where) else os.getcwd())
                with open(path, encoding="utf-8", errors="strict") as f:
                    lineno = 0
                    while True:
                        lineno += 1
                        try:
                            line = f.readline()
                        except UnicodeDecodeError as e:
                            raise FormatError(f"{path}:{lineno}: not UTF-8 ({e.reason})", path, lineno) from None
                        if not line:
                            break
                        if not line.strip():
                            continue  # blank lines are not records
                        prov = {"source": s.name, "file": rel, "line": lineno}
                        stats["read"]["in"] += 1
                        try:
                            rec = json.loads(line)
                            if not isinstance(rec, dict):
                                raise ValueError("a record must be a JSON object")
                            text = rec.get(s.text_field)
                            if not isinstance(text, str):
                                raise ValueError(f"field {s.text_field!r} is missing or not a string")
                        except ValueError as e:
                            if self.on_bad_line == "error":
                                raise FormatError(f"{path}:{lineno}: {e}", path, lineno) from None
                            removed.write({**prov, "stage": "read", "reason": f"bad_line: {e}"})
                            stats["removed:read"]["bad_line"] += 1
                            continue
                        if s.id_field is not None and s.id_field in rec:
                            prov["id"] = rec[s.id_field]
                        yield prov, text, s.domain

    # ---- phases ----------------------------------------------------------------------------

    def _scan(self, report: dict[str, Any]) -> None:
        """read -> filter -> exact dedup -> MinHash signatures; survivors to stage1.jsonl."""
        from .dedup import ExactDeduplicator, MinHashDeduplicator

        d = self.dedup_cfg
        stats: dict[str, Counter] = defaultdict(Counter)
        removed = _Writer(self._p("removed.scan.jsonl"))
        stage1 = _Writer(self._p("stage1.jsonl"))
        exact = (
            ExactDeduplicator(
                lowercase=d.get("exact_lowercase", False), strip_punct=d.get("exact_strip_punct", False),
                collapse_ws=d.get("exact_collapse_ws", False), num_threads=self.num_threads,
            )
            if d.get("exact", True) else None
        )  # fmt: skip
        mh = None
        if d.get("minhash", True):
            mhd = MinHashDeduplicator(
                d.get("num_perm", 112), d.get("bands", 14), d.get("rows", 8), d.get("ngram", 5), d.get("seed", 1),
                num_threads=self.num_threads,
            )  # fmt: skip
            mh = mhd.stream(mem_budget=int(d.get("mem_budget", 1 << 30)), spill_dir=self.out)
        exact_prov: list[str] = []
        bar = _bar(None, "read+filter+dedup", self.progress)

        def flush(batch: list[tuple[dict[str, Any], str, str]]) -> None:
            if not batch:
                return
            texts = [t for _, t, _ in batch]
            domains = [dm for _, _, dm in batch]
            for dm, t in zip(domains, texts):
                stats[f"domain_in:{dm}"]["docs"] += 1
                stats[f"domain_in:{dm}"]["chars"] += len(t)
            if self.filters is not None:
                res = self.filters.apply(texts, domains)
                keep = []
                for (prov, t, dm), r in zip(batch, res):
                    if r.keep:
                        keep.append((prov, r.final_text(t), dm))
                    else:
                        removed.write({**prov, "domain": dm, "stage": "filter", "reason": f"{r.filter}:{r.reason}"})
                        stats["removed:filter"][f"{r.filter}:{r.reason}"] += 1
                batch = keep
            if exact is not None and batch:
                start = exact.n_docs
                ids = exact.add([t for _, t, _ in batch])
                keep = []
                for k, ((prov, t, dm), cid) in enumerate(zip(batch, ids.tolist())):
                    exact_prov.append(f"{prov['file']}:{prov['line']}")
                    if cid == start + k:
                        keep.append((prov, t, dm))
                    else:
                        removed.write({**prov, "domain": dm, "stage": "exact_dedup", "reason": f"duplicate_of {exact_prov[cid]}"})
                        stats["removed:exact_dedup"]["exact_duplicate"] += 1
                batch = keep
            if mh is not None and batch:
                mh.add([t for _, t, _ in batch])
            for prov, t, dm in batch:
                stage1.write({"prov": prov, "text": t, "domain": dm})
            bar.update(len(texts))

        batch: list[tuple[dict[str, Any], str, str]] = []
        try:
            for item in self._records(removed, stats):
                batch.append(item)
                if len(batch) >= self.batch_size:
                    flush(batch)
                    batch = []
            flush(batch)
        finally:
            bar.close()
        import numpy as np

        ids = mh.finish() if mh is not None else np.arange(stage1.n, dtype=np.int64)
        np.save(self._p("minhash_clusters.npy.tmp.npy"), ids)
        os.replace(self._p("minhash_clusters.npy.tmp.npy"), self._p("minhash_clusters.npy"))
        removed.close()
        stage1.close()
        report["scan"] = {k: dict(v) for k, v in stats.items()}

    def _decontaminator(self) -> Any:
        # qwen25.data.Decontaminator (the decontamination engine). Without a configured test set
        # the stage is skipped and the report says so.
        if not self.decon_cfg.get("enabled", True):
            return None, "disabled"
        if "test_set" not in self.decon_cfg.get("options", {}):
            return None, "skipped: no test_set in [decontaminate] options"
        try:
            import qwen25.data as qd

            cls = qd.Decontaminator
        except (ImportError, AttributeError):
            return None, "skipped: qwen25.data.Decontaminator is not available"
        dc = cls(**self.decon_cfg.get("options", {}))
        # Decontaminator.check(texts) -> one witness (truthy) or None per text
        for meth in ("check", "contaminated", "is_contaminated"):
            if hasattr(dc, meth):
                return getattr(dc, meth), f"ran Decontaminator.{meth}"
        return None, "skipped: Decontaminator has no check() method"

    def _near_dedup(self, report: dict[str, Any]) -> None:
        """MinHash keep flags, decontaminate, classify; survivors to stage2/<domain>.jsonl."""
        import numpy as np

        ids = np.load(self._p("minhash_clusters.npy"))
        removed = _Writer(self._p("removed.near.jsonl"))
        os.makedirs(self._p("stage2"), exist_ok=True)
        writers: dict[str, _Writer] = {}
        stats: dict[str, Counter] = defaultdict(Counter)
        decon, decon_note = self._decontaminator()
        clf = None
        if "model" in self.classify_cfg:
            from .classify import DomainClassifier

            clf = DomainClassifier.load(self.classify_cfg["model"], num_threads=self.num_threads)
        provs: list[str] = []
        bar = _bar(len(ids), "near-dedup+decontam+classify", self.progress)

        def flush(batch: list[dict[str, Any]]) -> None:
            if not batch:
                return
            if decon is not None:
                flags = list(decon([r["text"] for r in batch]))
                keep = []
                for r, bad in zip(batch, flags):
                    if bad:
                        why = "benchmark_overlap" if bad is True else f"benchmark_overlap: {bad!r}"[:300]
                        removed.write({**r["prov"], "domain": r["domain"], "stage": "decontaminate", "reason": why})
                        stats["removed:decontaminate"]["benchmark_overlap"] += 1
                    else:
                        keep.append(r)
                batch = keep
            if clf is not None and batch:
                for r, lab in zip(batch, clf.predict([r["text"] for r in batch])):
                    r["domain"] = lab
            for r in batch:
                w = writers.get(r["domain"])
                if w is None:
                    w = writers[r["domain"]] = _Writer(self._p(os.path.join("stage2", f"{len(writers):04d}.jsonl")))
                    w.domain = r["domain"]  # type: ignore[attr-defined]
                w.write(r)
            bar.update(len(batch))

        batch: list[dict[str, Any]] = []
        for i, r in enumerate(_read_jsonl(self._p("stage1.jsonl"))):
            provs.append(f"{r['prov']['file']}:{r['prov']['line']}")
            if ids[i] != i:
                removed.write({**r["prov"], "domain": r["domain"], "stage": "minhash_dedup", "reason": f"near_duplicate_of {provs[ids[i]]}"})
                stats["removed:minhash_dedup"]["near_duplicate"] += 1
                bar.update(1)
                continue
            batch.append(r)
            if len(batch) >= self.batch_size:
                flush(batch)
                batch = []
        flush(batch)
        bar.close()
        for w in writers.values():
            w.close()
        removed.close()
        index = {w.domain: {"file": os.path.basename(w.path), "docs": w.n} for w in writers.values()}  # type: ignore[attr-defined]
        with open(self._p("stage2/index.json.tmp"), "w", encoding="utf-8") as f:
            json.dump(index, f)
        os.replace(self._p("stage2/index.json.tmp"), self._p("stage2/index.json"))
        report["near_dedup"] = {k: dict(v) for k, v in stats.items()}
        report["decontaminate"] = decon_note
        report["classify"] = "DomainClassifier" if clf is not None else "source domains"

    def _mix_pack(self, report: dict[str, Any]) -> None:
        from .mix import WeightedInterleaver, weights_from_proportions
        from .pack import TokenPacker

        with open(self._p("stage2/index.json"), encoding="utf-8") as f:
            index = json.load(f)
        sizes = {d: v["docs"] for d, v in index.items()}
        weights = self.mix_cfg.get("weights")
        max_repeat = float(self.mix_cfg.get("max_repeat", 1.0))
        if weights:
            unknown = sorted(set(weights) - set(sizes))
            if unknown:
                print(f"qwen25 data: note: mix weights name domains with no documents: {unknown}", file=sys.stderr)
            have = {d: sizes.get(d, 0) for d in weights}
            total = self.mix_cfg.get("total_docs")
            if total is None:  # the largest output that meets the proportions within the repeat cap
                wsum = sum(weights.values())
                total = min((max_repeat * have[d] / (w / wsum) for d, w in weights.items() if w > 0), default=0)
            plan = weights_from_proportions(have, weights, total_tokens=float(total), max_repeat=max_repeat)
            quota = {d: int(round(plan.tokens[d])) for d in weights}
        else:
            quota = dict(sizes)
        for d in sizes:
            quota.setdefault(d, 0)
        live = {d: q for d, q in quota.items() if q > 0}
        kept = _Writer(self._p("kept.jsonl"))
        removed = _Writer(self._p("removed.mix.jsonl"))
        stats: dict[str, Counter] = defaultdict(Counter)
        pk = self.pack_cfg
        packer = TokenPacker(
            self._p("packed"), seq_len=int(pk.get("seq_len", 4096)), seqs_per_shard=int(pk.get("seqs_per_shard", 16384)),
            seed=self.mix_cfg.get("seed", 0), num_threads=self.num_threads,
            extra={"pipeline": os.path.basename(self.where)},
        )  # fmt: skip

        def reader(d: str) -> Iterator[tuple[int, dict[str, Any]]]:
            rep = 0
            while True:
                n = 0
                for r in _read_jsonl(self._p(os.path.join("stage2", index[d]["file"]))):
                    n += 1
                    yield rep, r
                rep += 1
                if n == 0:
                    return

        iters = {d: reader(d) for d in live}
        taken: Counter[str] = Counter()
        it = WeightedInterleaver(live, seed=int(self.mix_cfg.get("seed", 0)), mode=self.mix_cfg.get("mode", "smooth")) if live else None
        out: list[tuple[int, dict[str, Any]]] = []
        n_doc = 0
        bar = _bar(sum(live.values()), "mix+pack", self.progress)

        def flush() -> None:
            nonlocal n_doc
            if not out:
                return
            packer.add([r["text"] for _, r in out], source=[r["domain"] for _, r in out])
            for rep, r in out:
                kept.write({**r["prov"], "domain": r["domain"], "doc": n_doc, "repeat": rep})
                n_doc += 1
                key = f"domain_out:{r['domain']}"
                stats[key]["docs" if rep == 0 else "repeats"] += 1
                stats[key]["chars"] += len(r["text"])
            bar.update(len(out))
            out.clear()

        while it is not None and live:
            d = it.next()
            if d not in live:
                continue
            out.append(next(iters[d]))
            taken[d] += 1
            if taken[d] >= live[d]:
                del live[d]
                if live:
                    it = WeightedInterleaver(live, seed=int(self.mix_cfg.get("seed", 0)) + len(taken), mode=it.mode)
            if len(out) >= self.batch_size:
                flush()
        flush()
        bar.close()
        # documents a down-sampled domain did not reach
        for d, v in index.items():
            skip = min(taken[d], v["docs"])
            for k, r in enumerate(_read_jsonl(self._p(os.path.join("stage2", v["file"])))):
                if k >= skip:
                    removed.write({**r["prov"], "domain": d, "stage": "mix", "reason": "downsampled"})
                    stats["removed:mix"]["downsampled"] += 1
        manifest = packer.finish()
        kept.close()
        removed.close()
        report["mix"] = {"quota": quota, "taken": dict(taken), **{k: dict(v) for k, v in stats.items()}}
        report["pack"] = {**manifest["counts"], "tokens_by_domain": {s["name"]: s["tokens"] for s in manifest["sources"]}}

    # ---- run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        os.makedirs(self.out, exist_ok=True)
        fp = self._fingerprint()
        st = self._state()
        if st.get("fingerprint") != fp:
            st = {"fingerprint": fp, "done": [], "report": {}}
        report: dict[str, Any] = st.setdefault("report", {})
        for phase in PHASES:
            if phase in st["done"]:
                if self.progress:
                    print(f"qwen25 data: {phase}: already done, resuming after it", file=sys.stderr)
                continue
            getattr(self, f"_{phase}")(report)
            st["done"].append(phase)
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
        n_in = scan.get("read", {}).get("in", 0)
        n_removed = sum(sum(v.values()) for v in removed.values())
        n_kept = sum(v.get("docs", 0) for k, v in mix.items() if k.startswith("domain_out:"))
        n_repeats = sum(v.get("repeats", 0) for k, v in mix.items() if k.startswith("domain_out:"))
        return {
            "documents_in": n_in,
            "documents_removed": n_removed,
            "documents_packed": n_kept,  # distinct records; repeats counted apart
            "removed_by_stage": removed,
            "domains_in": {k.split(":", 1)[1]: v for k, v in scan.items() if k.startswith("domain_in:")},
            "domains_out": {k.split(":", 1)[1]: v for k, v in mix.items() if k.startswith("domain_out:")},
            "mix": {"quota": mix.get("quota", {}), "taken": mix.get("taken", {})},
            "repeats": n_repeats,
            "decontaminate": r.get("decontaminate"),
            "classify": r.get("classify"),
            "pack": r.get("pack", {}),
        }


def run_pipeline(path: str | os.PathLike[str], *, progress: bool = True) -> dict[str, Any]:
    """Run the pipeline described by a TOML file; returns the final report."""
    return Pipeline(load_config(path), progress=progress).run()


def format_report(rep: dict[str, Any]) -> str:
    lines = [
        f"documents in:      {rep['documents_in']}",
        f"documents removed: {rep['documents_removed']}",
        f"documents packed:  {rep['documents_packed']} (+{rep['repeats']} repeats)",
        "removed by stage:",
    ]
    for stage, reasons in rep["removed_by_stage"].items():
        lines.append(f"  {stage:<14} {sum(reasons.values()):>8}")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:8]:
            lines.append(f"      {reason:<40} {n:>8}")
    lines.append("domains (docs in -> packed):")
    for d in sorted(set(rep["domains_in"]) | set(rep["domains_out"])):
        a = rep["domains_in"].get(d, {}).get("docs", 0)
        b = rep["domains_out"].get(d, {}).get("docs", 0)
        toks = rep.get("pack", {}).get("tokens_by_domain", {}).get(d, 0)
        lines.append(f"  {d:<20} {a:>8} -> {b:>8}  ({toks} tokens)")
    pk = rep.get("pack", {})
    if pk:
        lines.append(
            f"packed: {pk.get('sequences', 0)} sequences, {pk.get('tokens', 0)} tokens "
            f"({pk.get('document_tokens', 0)} document tokens, {pk.get('padding', 0)} padding)"
        )
    lines.append(f"decontaminate: {rep.get('decontaminate')}")
    return "\n".join(lines)
