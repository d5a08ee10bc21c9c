"""The per-batch workers, the same code under both engines: every per-document step (quality
filters, exact-dedup hashes, MinHash signatures, decontamination, scoring, classification,
tokenization) is a pure function of one batch of documents (read and parsed by the driver's
native record reader). ``engine = "local"`` runs them in this process; ``engine = "ray"`` runs the same classes
as Ray Data actors over Arrow batches (:func:`qwen25.data.distributed.ray_map_ordered`)."""

from __future__ import annotations

import json
from typing import Any

from .config import DecontaminateSection
from .report import Status

__all__ = ["NearWorker", "ScanWorker", "decontam_plan"]


# ---- per-batch workers (the same code under both engines) --------------------------------------
#
# A worker is built once from a JSON-able spec and called on batches given as columns
# (``{name: [values]}``, one row per task), returning columns; SCHEMA names the Arrow type of
# each output column for the Ray engine.


class ScanWorker:
    """Filter the documents of one input batch; hash the survivors (exact hash, MinHash signature).

    Task columns (one row a batch, read and parsed by the native record reader on the driver:
    bad lines never reach a worker): ``file`` (index into ``spec["files"]``), ``line`` (each
    document's line number), ``text``, ``id`` (each document's id as JSON, or None). One output
    row per document, ``status`` ``ok`` or ``filter`` (``reason`` says which filter)."""

    SCHEMA = {
        "file": "int64", "line": "int64", "status": "string", "reason": "string", "id": "string",
        "domain": "string", "text": "string", "chars": "int64", "hash": "binary", "sig": "binary",
        "ntok": "int64", "tokens": "binary", "stats": "string",
    }  # fmt: skip

    def __init__(self, spec: dict[str, Any]) -> None:
        from ... import _native
        from ...tokenizer import Tokenizer
        from ..filters import DomainFilters, FilterConfig

        self.spec = spec
        self.tok = Tokenizer.qwen25()
        self.nt = spec["num_threads"]
        self.filters = None
        f = spec["filter"]
        if f is not None:
            default = FilterConfig.from_dict(f["default"])
            doms = {d: FilterConfig.from_dict(v) for d, v in f["domains"].items()}
            self.filters = DomainFilters(doms, default, num_threads=self.nt)
        self.exact = spec["exact"]
        mh = spec["minhash"]
        self.hasher = _native.MinHasher(**mh) if mh is not None else None

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        from ... import _native

        out: dict[str, list[Any]] = {k: [] for k in self.SCHEMA}
        ok_rows: list[int] = []
        ok_texts: list[str] = []
        ok_domains: list[str] = []
        for fi, lines, texts, ids in zip(batch["file"], batch["line"], batch["text"], batch["id"]):
            domain = self.spec["sources"][self.spec["files"][fi]][2]
            n = len(out["line"])
            ok_rows.extend(range(n, n + len(texts)))
            ok_texts.extend(texts)
            ok_domains.extend([domain] * len(texts))
            out["file"].extend([fi] * len(texts))
            out["line"].extend(lines)
            out["status"].extend([Status.OK.value] * len(texts))
            out["id"].extend(ids if ids is not None else [None] * len(texts))
            out["domain"].extend([domain] * len(texts))
            out["text"].extend(texts)
            out["chars"].extend(map(len, texts))
            for key in ("reason", "hash", "sig", "tokens", "stats"):
                out[key].extend([None] * len(texts))
            out["ntok"].extend([-1] * len(texts))
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
                    if self.spec["filter_stats_all"]:
                        out["stats"][row] = json.dumps(r.stats)
                    if r.text is not None:
                        changed.append(row)
                else:
                    out["status"][row], out["reason"][row], out["text"][row] = Status.FILTER.value, f"{r.filter}:{r.reason}", None
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

    def _encode(self, texts: list[str]) -> list[memoryview]:
        """uint32 ids of each text as ``encode_ordinary`` gives them (what packing stores), as
        little-endian bytes: views of the batch's one array (no copy until they are written)."""
        if not texts:
            return []
        import numpy as np

        ids, offsets = self.tok.encode_batch(texts, allowed_special=set(), num_threads=self.nt, flat=True)
        raw = np.ascontiguousarray(ids, dtype="<u4").data.cast("B")
        at = (offsets * 4).tolist()
        return [raw[at[j] : at[j + 1]] for j in range(len(texts))]


def decontam_plan(cfg: DecontaminateSection) -> tuple[bool, str]:
    """(whether the stage runs, its report note): ``Decontaminator(**options).check(texts)``
    gives one witness (truthy) or None per text; without a configured test set it is skipped."""
    if not cfg.enabled:
        return False, "disabled"
    if "test_set" not in cfg.options:
        return False, "skipped: no test_set in [decontaminate] options"
    return True, "ran Decontaminator.check"


class NearWorker:
    """Decontaminate, score and classify the MinHash survivors of stage 1.

    Task columns (one row a batch of stage 1, read by the driver from stage1.jsonl and stage1.text):
    ``text`` (each document's text; empty for a MinHash duplicate), ``keep`` (one byte per
    document: 1 when it is its MinHash cluster's first), ``domain`` (each document's domain).
    One output row per document, ``status`` one of ``ok`` (with ``domain`` after
    classification), ``minhash``, ``decontaminate`` or ``score`` (``reason`` says why)."""

    SCHEMA = {"domain": "string", "status": "string", "reason": "string", "scores": "string"}

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.nt = spec["num_threads"]
        self.decon = None
        if spec["decontaminate"]:
            import qwen25.data as qd  # looked up when used, so a stand-in can replace it

            self.decon = qd.Decontaminator(**spec["decontaminate_options"]).check
        self.clf = None
        if spec["classify_model"] is not None:
            from ..classify import DomainClassifier

            self.clf = DomainClassifier.load(spec["classify_model"], num_threads=self.nt)
        self.scorer = None
        sc = spec["score"]  # a ScoreSection as a dict, or None
        if sc is not None:
            import torch

            from ...model import Qwen2ForCausalLM
            from ...tokenizer import Tokenizer
            from ..classify import LMScorer

            device = sc["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
            model = Qwen2ForCausalLM.from_pretrained(sc["model"], dtype=sc["dtype"], device=device).eval()
            try:
                tok = Tokenizer.from_pretrained(sc["model"])
            except FileNotFoundError:
                tok = Tokenizer.qwen25()
            self.scorer = LMScorer(model, tok, dimensions=sc["dimensions"], max_doc_tokens=sc["max_doc_tokens"],
                                   batch_size=sc["batch_size"])  # fmt: skip
            self.min_scores = dict(sc["min"])

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        texts: list[str] = []
        keeps = bytearray()
        domains: list[str] = []
        for ts, keep, doms in zip(batch["text"], batch["keep"], batch["domain"]):  # one row per task
            texts.extend(ts)
            keeps.extend(keep)
            domains.extend(doms)
        n = len(texts)
        ok, dup = Status.OK.value, Status.MINHASH.value
        out: dict[str, list[Any]] = {"domain": domains, "status": [ok if k else dup for k in keeps],
                                     "reason": [None] * n, "scores": [None] * n}  # fmt: skip
        live = [i for i, k in enumerate(keeps) if k]
        if self.decon is not None and live:
            flags = list(self.decon([texts[i] for i in live], num_threads=self.nt))
            keep_rows = []
            for i, bad in zip(live, flags):
                if bad:
                    out["status"][i] = Status.DECONTAMINATE.value
                    out["reason"][i] = "benchmark_overlap" if bad is True else f"benchmark_overlap: {bad!r}"[:300]
                else:
                    keep_rows.append(i)
            live = keep_rows
        if live and self.scorer is not None:
            keep_rows = []
            dims = self.scorer.dimensions
            for i, row in zip(live, self.scorer.score([texts[i] for i in live])):
                sc = {d: round(float(x), 6) for d, x in zip(dims, row)}
                out["scores"][i] = json.dumps(sc)
                low = [f"{d}={sc[d]:.3f}<{m}" for d, m in self.min_scores.items() if sc[d] < m]
                if low:
                    out["status"][i], out["reason"][i] = Status.SCORE.value, "low_score: " + ", ".join(low)
                else:
                    keep_rows.append(i)
            live = keep_rows
        if live and self.clf is not None:
            for i, lab in zip(live, self.clf.predict([texts[i] for i in live])):
                out["domain"][i] = lab
        return out


