"""What a run counts and reports: the stages and document statuses as enums, the per-phase
:class:`Tally` (kept in ``state.json`` so a resumed run reports the phases it skipped), the
final ``report.json`` and the summary ``qwen25 data run`` prints."""

from __future__ import annotations

from collections import Counter, defaultdict
from enum import Enum
from typing import Any

__all__ = ["Flow", "STAGES", "Stage", "Status", "Tally", "final_report", "format_report"]


class Stage(str, Enum):
    """The stages a document passes, in order (``removed.jsonl`` ``stage`` values)."""

    READ = "read"
    FILTER = "filter"
    EXACT_DEDUP = "exact_dedup"
    MINHASH_DEDUP = "minhash_dedup"
    DECONTAMINATE = "decontaminate"
    SCORE = "score"
    CLASSIFY = "classify"
    MIX = "mix"

    def __str__(self) -> str:
        return self.value


STAGES = tuple(s.value for s in Stage)


class Status(str, Enum):
    """A worker's verdict on one line (the ``status`` column; Arrow carries the value)."""

    OK = "ok"
    BAD = "bad"  # JSON or field error
    UTF8 = "utf8"  # not UTF-8
    FILTER = "filter"
    MINHASH = "minhash"
    DECONTAMINATE = "decontaminate"
    SCORE = "score"

    def __str__(self) -> str:
        return self.value


class Flow(str, Enum):
    """The counters of one stage and domain."""

    IN_DOCS = "in_docs"
    IN_TOKENS = "in_tokens"
    OUT_DOCS = "out_docs"
    OUT_TOKENS = "out_tokens"
    REMOVED_DOCS = "removed_docs"
    REMOVED_TOKENS = "removed_tokens"
    REPEAT_DOCS = "repeat_docs"
    REPEAT_TOKENS = "repeat_tokens"


class Tally:
    """One phase's counts: documents read, the flow through each stage per domain, the removal
    reasons per stage, and the documents, characters and tokens per domain in and out."""

    def __init__(self) -> None:
        self.read_in = 0
        self.flow: dict[tuple[Stage, str], Counter[Flow]] = defaultdict(Counter)
        self.removed: dict[Stage, Counter[str]] = defaultdict(Counter)
        self.domain_in: dict[str, Counter[str]] = defaultdict(Counter)
        self.domain_out: dict[str, Counter[str]] = defaultdict(Counter)

    def pass_(self, stage: Stage, domain: str, tokens: int, out: bool, *, out_tokens: int | None = None,
              out_domain: str | None = None) -> None:  # fmt: skip
        """Count one document into ``stage`` (its domain and tokens going in) and, when ``out``,
        out of it (tokens and domain coming out, the same unless given)."""
        if out:
            self.add(stage, domain, 1, tokens, out_tokens=out_tokens, out_domain=out_domain)
        else:
            self.add(stage, domain, 1, tokens, removed=1, removed_tokens=tokens)

    def add(self, stage: Stage, domain: str, docs: int, tokens: int, *, removed: int = 0,
            removed_tokens: int = 0, out_tokens: int | None = None, out_domain: str | None = None) -> None:
        """Count ``docs`` documents of ``domain`` (``tokens`` going in) into ``stage``: ``removed``
        of them (``removed_tokens``) removed, the rest out (``out_tokens``, by default the tokens
        not removed; ``out_domain``, by default ``domain``). The same counts as ``docs`` calls of
        :meth:`pass_`, in one (the phases count a batch at a time)."""
        if docs <= 0:
            return
        c = self.flow[stage, domain]
        c[Flow.IN_DOCS] += docs
        c[Flow.IN_TOKENS] += tokens
        if removed:
            c[Flow.REMOVED_DOCS] += removed
            c[Flow.REMOVED_TOKENS] += removed_tokens
        if docs > removed:
            o = self.flow[stage, domain if out_domain is None else out_domain]
            o[Flow.OUT_DOCS] += docs - removed
            o[Flow.OUT_TOKENS] += tokens - removed_tokens if out_tokens is None else out_tokens

    def to_json(self) -> dict[str, Any]:
        flow: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
        for (st, d), c in self.flow.items():
            flow[st.value][d] = {k.value: int(v) for k, v in c.items()}
        return {
            "read_in": self.read_in,
            "flow": dict(flow),
            "removed": {st.value: dict(c) for st, c in self.removed.items()},
            "domain_in": {d: dict(c) for d, c in self.domain_in.items()},
            "domain_out": {d: dict(c) for d, c in self.domain_out.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tally:
        t = cls()
        t.read_in = int(d.get("read_in", 0))
        for st, doms in d.get("flow", {}).items():
            for dom, c in doms.items():
                t.flow[Stage(st), dom] = Counter({Flow(k): v for k, v in c.items()})
        for st, c in d.get("removed", {}).items():
            t.removed[Stage(st)] = Counter(c)
        t.domain_in.update({k: Counter(v) for k, v in d.get("domain_in", {}).items()})
        t.domain_out.update({k: Counter(v) for k, v in d.get("domain_out", {}).items()})
        return t

    def merge(self, other: Tally) -> None:
        self.read_in += other.read_in
        for k, f in other.flow.items():
            self.flow[k].update(f)
        for st, r in other.removed.items():
            self.removed[st].update(r)
        for d, c in other.domain_in.items():
            self.domain_in[d].update(c)
        for d, c in other.domain_out.items():
            self.domain_out[d].update(c)


def cluster_summary(sizes: list[int], firsts: list[tuple[str, int]]) -> dict[str, Any]:
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


# A stage that removes more than this share of a domain's documents is flagged.
HEAVY_REMOVAL = 0.9


def heavy_removals(stages: dict[str, Any]) -> list[str]:
    """Warnings for every stage that removed more than 90% of a domain's documents (the
    default prose filters remove nearly all code, for instance)."""
    out = []
    for st in STAGES:
        if st == Stage.MIX.value:
            continue  # the mix removes by design (downsampling)
        for d, v in stages.get(st, {}).get("domains", {}).items():
            n, gone = v.get("in_docs", 0), v.get("removed_docs", 0)
            if n and gone / n > HEAVY_REMOVAL:
                out.append(f"stage {st} removed {gone} of {n} documents ({gone / n:.1%}) of domain {d!r}"
                           + (" (the filter preset may not suit it: [filter.domains." + d + "] preset)"
                              if st == Stage.FILTER.value else ""))  # fmt: skip
    return out


def final_report(engine: str, parts: dict[str, Any], *, stop_after: str | None = None) -> dict[str, Any]:
    """``report.json`` from the phases' parts (``scan``, ``near_dedup``, ``mix``: a tally
    each, with ``clusters``, ``mix`` and ``pack`` extras)."""
    tally = Tally()
    for ph in ("scan", "near_dedup", "mix_pack"):
        if ph in parts:
            tally.merge(Tally.from_json(parts[ph]["tally"]))
    stages: dict[str, Any] = {}
    for st in Stage:
        doms: dict[str, dict[str, int]] = {}
        for (s, d), c in tally.flow.items():
            if s is st:
                doms[d] = {f.value: int(c.get(f, 0)) for f in Flow if f in c or not f.value.startswith("repeat")}
        tot = {f: sum(dv.get(f.value, 0) for dv in doms.values()) for f in Flow}
        stages[st.value] = {
            "in": {"docs": tot[Flow.IN_DOCS], "tokens": tot[Flow.IN_TOKENS]},
            "out": {"docs": tot[Flow.OUT_DOCS], "tokens": tot[Flow.OUT_TOKENS]},
            "removed": {"docs": tot[Flow.REMOVED_DOCS], "tokens": tot[Flow.REMOVED_TOKENS]},  # whole documents
            **({"repeats": {"docs": tot[Flow.REPEAT_DOCS], "tokens": tot[Flow.REPEAT_TOKENS]}} if st is Stage.MIX else {}),
            # tokens taken out of documents that go on (C4's line removal)
            **({"trimmed_tokens": tot[Flow.IN_TOKENS] - tot[Flow.REMOVED_TOKENS] - tot[Flow.OUT_TOKENS]}
               if st is Stage.FILTER else {}),  # fmt: skip
            "domains": dict(sorted(doms.items())),
        }
    removed = {st.value: dict(c) for st, c in sorted(tally.removed.items(), key=lambda kv: STAGES.index(kv[0].value))}
    scan, near, mix = parts.get("scan", {}), parts.get("near_dedup", {}), parts.get("mix_pack", {})
    mx = mix.get("mix", {})
    rep = {
        "engine": engine,
        "documents_in": tally.read_in,
        "documents_removed": sum(sum(v.values()) for v in removed.values()),
        "documents_packed": sum(v.get("docs", 0) for v in tally.domain_out.values()),  # distinct records
        "removed_by_stage": removed,
        "stages": stages,  # documents and tokens in and out of each stage, per domain
        "clusters": {"exact": scan.get("clusters"), "near": near.get("clusters")},
        "domains_in": {d: dict(c) for d, c in sorted(tally.domain_in.items())},
        "domains_out": {d: dict(c) for d, c in sorted(tally.domain_out.items())},
        "mix": (
            {"unit": mx.get("unit"), "phases": mx["phases"]} if "phases" in mx
            else {"unit": mx.get("unit"), "quota": mx.get("quota", {}), "taken": mx.get("taken", {}),
                  "notes": mx.get("notes", [])}
        ),  # fmt: skip
        "repeats": sum(v.get("repeats", 0) for v in tally.domain_out.values()),
        "decontaminate": near.get("decontaminate"),
        "classify": near.get("classify"),
        "score": near.get("score"),
        "pack": mix.get("pack", {}),
        "damaged": scan.get("damaged", []),  # truncated/corrupt compressed inputs read with on_bad_line = "skip"
        "warnings": [f"{d['file']}:{d['line']}: {d['reason']}; the records before the damage went on (on_bad_line = \"skip\")"
                     for d in scan.get("damaged", [])] + heavy_removals(stages),  # fmt: skip
    }
    if stop_after is not None:
        rep["stopped_after"] = stop_after
        rep["documents_packed"] = 0  # nothing is packed; the survivors are counted in rep["survivors"]
    return rep


def format_report(rep: dict[str, Any]) -> str:
    """The summary ``qwen25 data run`` prints."""
    lines = [f"documents in:      {rep['documents_in']}", f"documents removed: {rep['documents_removed']}"]
    if rep.get("stopped_after"):
        sv = rep.get("survivors", {})
        lines.append(f"stopped after {rep['stopped_after']}: {sv.get('docs', 0)} documents in {sv.get('file', 'survivors.jsonl')}")
    else:
        lines.append(f"documents packed:  {rep['documents_packed']} (+{rep['repeats']} repeats)")
    lines.append("removed by stage:")
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
    stop = rep.get("stopped_after")
    if stop is None:
        lines.append("domains (docs in -> packed):")
        outs = {d: (v.get("docs", 0), rep.get("pack", {}).get("tokens_by_domain", {}).get(d, 0))
                for d, v in rep["domains_out"].items()}  # fmt: skip
    elif stop == Stage.MIX.value:  # the mix's documents (distinct), unpacked
        lines.append("domains (docs in -> survivors):")
        outs = {d: (v.get("docs", 0), v.get("tokens", 0)) for d, v in rep["domains_out"].items()}
    else:  # what left the near-dedup phase (its later stages are off under a stop)
        lines.append("domains (docs in -> survivors):")
        last = rep.get("stages", {}).get(Stage.CLASSIFY.value, {}).get("domains", {})
        outs = {d: (v.get("out_docs", 0), v.get("out_tokens", 0)) for d, v in last.items()}
    for d in sorted(set(rep["domains_in"]) | set(outs)):
        a = rep["domains_in"].get(d, {}).get("docs", 0)
        b, toks = outs.get(d, (0, 0))
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
        for note in mix.get("notes", []):
            lines.append(f"  note: {note}")
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
    for w in rep.get("warnings", []):
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)
