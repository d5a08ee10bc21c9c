"""The three phases of ``qwen25 data run``, as plain functions of a :class:`RunContext`; each
writes its files (through the atomic writer, renamed when complete) and returns its part of the report
(a :class:`~qwen25.data.pipeline.report.Tally` as JSON, plus extras such as ``clusters``).

- :func:`scan`: read -> filter -> exact dedup -> MinHash signatures; survivors' fields to
  ``stage1.jsonl``, their texts (UTF-8, no JSON) to ``stage1.text`` (byte lengths in
  ``stage1.text.len``), token ids to ``stage1.tok`` (lengths in ``stage1.len``), and the MinHash
  clusters to ``minhash_clusters.npy``;
- :func:`near_dedup`: MinHash keep flags -> decontaminate -> score -> classify; survivors per
  domain to ``stage2/NNNN.jsonl`` (their fields, no text) and ``NNNN.rows`` (their stage-1
  rows), indexed by ``stage2/index.json``;
- :func:`mix_pack`: per mix phase, plan the pools, interleave their documents and pack the
  ids stored in ``stage1.tok``; ``kept.jsonl`` lists what was packed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import FormatError, Qwen25ValueError
from .config import PipelineConfig, filter_tables, mix_phases
from .files import (JsonlWriter, RowWriter, Texts, TextWriter, TokenWriter, dumps, parse_line, read_lines,
                    text_line, write_json, write_npy)
from .files import bar as progress_bar
from .report import Flow, Stage, Status, Tally, cluster_summary
from .workers import NearWorker, ScanWorker, decontam_plan

__all__ = ["RunContext", "mix_pack", "near_dedup", "scan"]

_STATUS = {s.value: s for s in Status}  # a worker's status column back to the enum


@dataclass(frozen=True)
class RunContext:
    """What every phase reads: the checked configuration and how to run."""

    cfg: PipelineConfig
    progress: bool = True

    def p(self, name: str) -> str:
        """A path inside the output folder."""
        return os.path.join(self.cfg.output, name)

    def threads(self) -> int | None:
        if self.cfg.pipeline.num_threads is not None:
            return self.cfg.pipeline.num_threads
        return 1 if self.cfg.pipeline.engine == "ray" else None

    def files(self) -> list[tuple[str, int]]:
        """(path, source index) of every input file, in order."""
        return [(path, si) for si, s in enumerate(self.cfg.sources) for path in s.files]

    def execute(self, worker: type, spec: dict[str, Any], tasks: Iterable[tuple[dict[str, Any], Any]]
                ) -> Iterator[tuple[dict[str, list[Any]], Any]]:  # fmt: skip
        """Run ``worker(spec)`` over ``tasks`` (``(row, side)`` pairs: one row each, and what the
        driver keeps beside it); yield ``(output columns, side)`` in task order. A task with no
        documents (``row["text"]`` empty) is answered here with empty columns. Under Ray the
        tasks go out in windows of 4 per actor (so the driver holds a window, not the corpus)."""
        pl = self.cfg.pipeline
        empty: dict[str, list[Any]] = {k: [] for k in worker.SCHEMA}  # type: ignore[attr-defined]
        if pl.engine == "ray":
            from ..distributed import ray_map_ordered

            window = max(8, 4 * (pl.concurrency or 2))
            pending: list[tuple[dict[str, Any], Any]] = []

            def run() -> Iterator[tuple[dict[str, list[Any]], Any]]:
                live = [row for row, _ in pending if len(row["text"])]
                outs = ray_map_ordered(worker, spec, live, concurrency=pl.concurrency, address=pl.ray_address)
                for row, side in pending:
                    yield (next(outs) if len(row["text"]) else empty), side
                pending.clear()

            for t in tasks:
                pending.append(t)
                if len(pending) >= window:
                    yield from run()
            yield from run()
            return
        # local: the worker runs one task ahead on a helper thread (its engines release the GIL),
        # so the driver's bookkeeping and writes for one batch overlap the engines of the next;
        # results come back in task order, as without it
        from concurrent.futures import ThreadPoolExecutor

        w = worker(spec)

        def call(row: dict[str, Any]) -> dict[str, list[Any]]:
            return w({k: [v] for k, v in row.items()}) if len(row["text"]) else empty

        ex = ThreadPoolExecutor(1, thread_name_prefix="qwen25-data-run")
        it = iter(tasks)
        try:
            ahead: Any = None
            while True:
                try:
                    row, side = next(it)
                except StopIteration:
                    break
                except BaseException:
                    if ahead is not None:  # reading the next batch failed: the batch before is
                        yield ahead[0].result(), ahead[1]  # consumed first (its errors come first)
                    raise
                nxt = (ex.submit(call, row), side)
                if ahead is not None:
                    yield ahead[0].result(), ahead[1]
                ahead = nxt
            if ahead is not None:
                yield ahead[0].result(), ahead[1]
        finally:
            ex.shutdown(wait=True, cancel_futures=True)


def _stats_of(raw: str | None) -> dict[str, Any]:
    """``{"stats": {...}}`` from a worker's JSON statistics column, or nothing."""
    return {"stats": json.loads(raw)} if raw is not None else {}


def _why(why: str) -> str:
    """A bad line's reason as the removed list gives it (the reader's UTF-8 error points at a
    command-line option; the pipeline has none)."""
    if why.startswith("invalid UTF-8"):
        return f"not UTF-8 ({why.split(' (')[0]})"
    return why


def _read(ctx: RunContext, fi: int, path: str, src: Any
          ) -> Iterator[tuple[dict[str, Any], list[tuple[int, str]], tuple[int, str] | None]]:  # fmt: skip
    """The scan's tasks from one input file, with the bad lines beside each: ``({file, line,
    text, id}, [(line, why)], damage)``, ``damage`` the ``(line, why)`` of a truncated or corrupt
    compressed file in the batch that reached it (the records before it are in the batch), else
    None. JSONL (plain, ``.gz``, ``.zst``) is read and parsed by the native
    record reader (:func:`qwen25.data.records.read_batches`: decompressed in memory, never to
    disk); Parquet by pyarrow record batches (``line`` is the row number + 1). A damaged
    Parquet file raises :class:`FormatError` naming it."""
    from ..records import read_batches

    bs = ctx.cfg.pipeline.batch_size
    if path.lower().endswith(".parquet"):
        yield from _read_parquet(fi, path, src, bs)
        return
    reader = read_batches(path, src.text_field, skip_bad=True, batch_size=bs, num_threads=ctx.threads(),
                          extra_field=src.id_field)
    try:
        for b in reader:
            damage = (b.damage[0], b.damage[2]) if b.damage is not None else None
            bad = [(line, _why(why)) for line, _, why, _ in b.bad]
            # the id's JSON text as in the line (the reader's extra field: no line parsed here);
            # whoever uses it json.loads it, which gives the value a parse of the whole line would
            ids = b.extras() if src.id_field is not None else None
            yield {"file": fi, "line": b.lines, "text": b.items(), "id": ids}, bad, damage
    finally:
        reader.close()


def _read_parquet(fi: int, path: str, src: Any, bs: int
                  ) -> Iterator[tuple[dict[str, Any], list[tuple[int, str]], tuple[int, str] | None]]:  # fmt: skip
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise Qwen25ValueError(f"{path}: reading Parquet needs the 'pyarrow' package") from e
    try:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        cols = [c for c in dict.fromkeys((src.text_field, src.id_field)) if c is not None and c in names]
        line = 1
        for rb in pf.iter_batches(batch_size=bs, columns=cols):
            n = rb.num_rows
            texts = rb.column(src.text_field).to_pylist() if src.text_field in cols else [None] * n
            rids = rb.column(src.id_field).to_pylist() if src.id_field in cols else None
            task: dict[str, Any] = {"file": fi, "line": [], "text": [], "id": [] if rids is not None else None}
            bad = []
            for k, t in enumerate(texts):
                if not isinstance(t, str):
                    bad.append((line + k, f"field {src.text_field!r} is missing or not a string"))
                    continue
                task["line"].append(line + k)
                task["text"].append(t)
                if rids is not None:
                    task["id"].append(json.dumps(rids[k], ensure_ascii=False, default=str))
            line += n
            yield task, bad, None
    except (OSError, ValueError) as e:  # pyarrow's errors are OSError / ArrowInvalid (a ValueError)
        if isinstance(e, Qwen25ValueError):
            raise
        raise FormatError(f"{path}:0: cannot be read as Parquet ({e})", path, 0) from None


def _in_line_order(lines: list[int], bad: list[tuple[int, str]]) -> Iterator[tuple[int, int, str | None]]:
    """``(row, line, None)`` for each document and ``(-1, line, why)`` for each bad line, by line."""
    if not bad:
        yield from ((k, line, None) for k, line in enumerate(lines))
        return
    j = 0
    for k, line in enumerate(lines):
        while j < len(bad) and bad[j][0] < line:
            yield -1, bad[j][0], bad[j][1]
            j += 1
        yield k, line, None
    for line, why in bad[j:]:
        yield -1, line, why


def scan(ctx: RunContext) -> dict[str, Any]:
    """read -> filter -> exact dedup -> MinHash signatures; survivors' fields to stage1.jsonl,
    their texts to stage1.text, their ids to stage1.tok."""
    import numpy as np

    from ..dedup import ExactDeduplicator, MinHashDeduplicator

    cfg = ctx.cfg
    d = cfg.dedup
    nt = ctx.threads()
    ex_cfg = {"lowercase": d.exact_lowercase, "strip_punct": d.exact_strip_punct, "collapse_ws": d.exact_collapse_ws}
    exact = ExactDeduplicator(**ex_cfg, num_threads=nt) if d.exact else None
    mh = mhd = None
    if d.minhash:
        mhd = MinHashDeduplicator(
            d.num_perm, d.bands, d.rows, d.ngram, d.seed, lowercase=d.minhash_lowercase,
            strip_punct=d.minhash_strip_punct, collapse_ws=d.minhash_collapse_ws,
            datatrove_words=d.minhash_datatrove_words, sign_short_docs=d.minhash_sign_short_docs,
            num_threads=1,  # the driver's LSH clustering: small, inline (a shared pool would queue it
        )                   # behind the worker's engines running a batch ahead); results never depend on it
        mh = mhd.stream(mem_budget=d.mem_budget, spill_dir=cfg.output)
    files = ctx.files()
    spec = {
        "files": [src for _, src in files],
        "sources": [(s.text_field, s.id_field, s.domain) for s in cfg.sources],
        "filter": filter_tables(cfg.filter, cfg.path) if cfg.filter.enabled else None,
        "filter_stats_all": cfg.filter.stats == "all",
        "exact": ex_cfg if exact is not None else None,
        "minhash": (
            {"num_perm": mhd.num_perm, "bands": mhd.bands, "rows": mhd.rows, "ngram": mhd.ngram, "seed": mhd.seed,
             "lowercase": mhd.lowercase, "strip_punct": mhd.strip_punct, "collapse_ws": mhd.collapse_ws,
             "datatrove_words": mhd.datatrove_words, "sign_short_docs": mhd.sign_short_docs}
            if mhd is not None else None
        ),
        "num_threads": nt,
    }  # fmt: skip
    tasks = ((row, (fi, bad, dmg)) for fi, (path, src) in enumerate(files)
             for row, bad, dmg in _read(ctx, fi, path, cfg.sources[src]))  # fmt: skip
    rels = [os.path.relpath(path, cfg.base) for path, _ in files]
    tally = Tally()
    removed = JsonlWriter(ctx.p("removed.scan.jsonl"))
    stage1 = JsonlWriter(ctx.p("stage1.jsonl"))
    stage1_text = TextWriter(ctx.p("stage1.text"))
    stage1_tokens = TokenWriter(ctx.p("stage1"))
    damaged: list[dict[str, Any]] = []  # truncated or corrupt compressed files (on_bad_line = "skip")
    exact_prov = array("q")  # (file index << 40) | line of each exact-dedup input: 8 bytes a document
    bar = progress_bar(None, "read+filter+dedup", ctx.progress)
    try:
        for cols, (bfi, bad, dmg) in ctx.execute(ScanWorker, spec, tasks):
            if (bad or dmg) and cfg.pipeline.on_bad_line == "error":
                path = files[bfi][0]
                line, why = bad[0] if bad else dmg
                raise FormatError(f"{path}:{line}: {why}", path, line)
            st = [_STATUS[s] for s in cols["status"]]
            ok = [k for k, s in enumerate(st) if s is Status.OK]
            ex_ids: dict[int, int] = {}
            if exact is not None and ok:
                start = exact.n_docs
                ids = exact.add_hashes(b"".join(cols["hash"][k] for k in ok)).tolist()
                ex_ids = {k: (c if c != start + j else -1) for j, (k, c) in enumerate(zip(ok, ids))}
            sigs: list[bytes] = []
            # one batch is one file's, so one source and one domain: its documents are counted
            # here and added to the tally once, after the batch
            src_i = files[bfi][1]
            source, rel, dom = cfg.sources[src_i].name, rels[bfi], cfg.sources[src_i].domain
            # a stage-1 line without statistics, as json.dumps writes it, put together here: the
            # id's JSON text goes in as the reader gave it (parsing it gives the same value)
            head = '{"prov": {"source": %s, "file": %s, "line": ' % (dumps(source), dumps(rel))
            tail = '}, "domain": %s}\n' % dumps(dom)
            n_bad = n_doc = n_chars = tokens = 0  # read
            f_removed = f_removed_tokens = f_out_tokens = 0  # filter
            e_removed = e_removed_tokens = 0  # exact dedup
            s1_lines: list[str] = []  # the survivors' stage-1 lines, texts and token ids: written once a batch
            s1_texts: list[str] = []
            s1_tokens: list[Any] = []
            for k, line, why in _in_line_order(cols["line"], bad):
                prov: dict[str, Any] = {"source": source, "file": rel, "line": line}
                if why is not None:  # a bad line: listed as removed (on_bad_line = "skip")
                    removed.write({**prov, "stage": Stage.READ.value, "reason": f"bad_line: {why}"})
                    n_bad += 1  # no text to count
                    continue
                status = st[k]
                rid = cols["id"][k]  # the id's JSON text: parsed for the lines not put together below
                plain = status is Status.OK and cols["stats"][k] is None and ex_ids.get(k, -1) < 0
                if rid is not None and not plain:
                    prov["id"] = json.loads(rid)
                ntok = int(cols["ntok"][k])
                n_doc += 1
                n_chars += cols["chars"][k]
                tokens += ntok
                if status is Status.FILTER:
                    removed.write({**prov, "domain": dom, "stage": Stage.FILTER.value, "reason": cols["reason"][k],
                                   **_stats_of(cols["stats"][k])})  # fmt: skip
                    tally.removed[Stage.FILTER][cols["reason"][k]] += 1
                    f_removed += 1
                    f_removed_tokens += ntok
                    continue
                ntok_out = len(cols["tokens"][k]) // 4  # C4 may have removed lines
                f_out_tokens += ntok_out
                if exact is not None:
                    exact_prov.append((bfi << 40) | line)
                    cid = ex_ids[k]
                    if cid >= 0:
                        first = exact_prov[cid]
                        removed.write({**prov, "domain": dom, "stage": Stage.EXACT_DEDUP.value,
                                       "reason": f"duplicate_of {rels[first >> 40]}:{first & ((1 << 40) - 1)}",
                                       **_stats_of(cols["stats"][k])})  # fmt: skip
                        e_removed += 1
                        e_removed_tokens += ntok_out
                        continue
                if mh is not None:
                    sigs.append(cols["sig"][k])
                if not plain:  # statistics
                    s1_lines.append(dumps({"prov": prov, "domain": dom, **_stats_of(cols["stats"][k])}) + "\n")
                elif rid is None:
                    s1_lines.append(f"{head}{line}{tail}")
                else:
                    s1_lines.append(f'{head}{line}, "id": {rid}{tail}')
                s1_texts.append(cols["text"][k])
                s1_tokens.append(cols["tokens"][k])
            stage1.write_lines(s1_lines)
            stage1_text.write_many(s1_texts)
            stage1_tokens.write_many(s1_tokens)
            tally.read_in += n_bad + n_doc
            if n_bad:
                tally.removed[Stage.READ]["bad_line"] += n_bad
            if n_doc:
                din = tally.domain_in[dom]
                din["docs"] += n_doc
                din["chars"] += n_chars
                din["tokens"] += tokens
            if e_removed:
                tally.removed[Stage.EXACT_DEDUP]["exact_duplicate"] += e_removed
            tally.add(Stage.READ, dom, n_bad + n_doc, tokens, removed=n_bad)
            tally.add(Stage.FILTER, dom, n_doc, tokens, removed=f_removed, removed_tokens=f_removed_tokens,
                      out_tokens=f_out_tokens)  # fmt: skip
            tally.add(Stage.EXACT_DEDUP, dom, n_doc - f_removed, f_out_tokens, removed=e_removed,
                      removed_tokens=e_removed_tokens)  # fmt: skip
            if dmg is not None:  # on_bad_line = "skip": the records before the damage went on
                removed.write({"source": source, "file": rel, "line": dmg[0], "stage": Stage.READ.value,
                               "reason": f"damaged_file: {dmg[1]}"})  # fmt: skip
                damaged.append({"file": rel, "line": dmg[0], "reason": dmg[1]})
                tally.read_in += 1
                tally.removed[Stage.READ]["damaged_file"] += 1
                tally.pass_(Stage.READ, dom, 0, False)
            if mh is not None and mhd is not None and sigs:
                mh.add_signatures(np.frombuffer(b"".join(sigs), dtype="<u4").reshape(-1, mhd.num_perm))
            bar.update(len(st) + len(bad))
    finally:
        bar.close()
    ids = mh.finish() if mh is not None else np.arange(stage1.n, dtype=np.int64)
    write_npy(ctx.p("minhash_clusters.npy"), ids)
    removed.close()
    stage1.close()
    stage1_text.close()
    stage1_tokens.close()
    part: dict[str, Any] = {"tally": tally.to_json(), "damaged": damaged}
    if exact is not None:
        sizes = exact.cluster_sizes()
        part["clusters"] = cluster_summary(
            [n for _, n in sizes], [(f"{rels[exact_prov[f] >> 40]}:{exact_prov[f] & ((1 << 40) - 1)}", n) for f, n in sizes]
        )
    return part


def near_dedup(ctx: RunContext) -> dict[str, Any]:
    """MinHash keep flags, decontaminate, score, classify; per domain, the survivors' fields to
    stage2/NNNN.jsonl (provenance, domain, characters, scores, statistics, and where the document
    is in stage 1: ``row``, its index, whose token ids are in stage1.tok and text in
    stage1.text) and their rows to NNNN.rows (uint64). stage1.jsonl (the fields) and
    stage1.text are read once; only the MinHash survivors' texts are decoded; no text or token
    id is copied."""
    import numpy as np

    ids = np.load(ctx.p("minhash_clusters.npy"))
    keep = (ids == np.arange(len(ids))).astype(np.uint8)
    removed = JsonlWriter(ctx.p("removed.near.jsonl"))
    os.makedirs(ctx.p("stage2"), exist_ok=True)
    writers: dict[str, tuple[JsonlWriter, RowWriter]] = {}
    dom_tokens: Counter[str] = Counter()
    tally = Tally()
    cfg = ctx.cfg
    run_decon, decon_note = decontam_plan(cfg.decontaminate)
    stage1 = ctx.p("stage1.jsonl")
    stage1_texts = Texts(ctx.p("stage1.text"))
    if len(stage1_texts) != len(ids):
        raise Qwen25ValueError(f"{stage1_texts.path}: {len(stage1_texts)} texts, {len(ids)} expected")
    spec = {
        "decontaminate": run_decon,
        "decontaminate_options": cfg.decontaminate.options,
        "classify_model": cfg.classify.model,
        "score": dataclasses.asdict(cfg.score) if cfg.score is not None else None,
        "num_threads": ctx.threads(),
    }

    def tasks() -> Iterator[tuple[dict[str, Any], Any]]:
        first = 0
        bs = cfg.pipeline.batch_size
        heads: list[dict[str, Any]] = []
        raws: list[bytes] = []
        for raw in read_lines(stage1):
            heads.append(parse_line(raw))
            raws.append(raw)
            if len(heads) == bs:
                yield task(first, heads, raws)
                first += len(heads)
                heads, raws = [], []
        if heads:
            yield task(first, heads, raws)

    def task(first: int, heads: list[dict[str, Any]], raws: list[bytes]) -> tuple[dict[str, Any], Any]:
        n = len(heads)
        if first + n > len(ids):
            raise Qwen25ValueError(f"{stage1}: more than {len(ids)} records (changed during the run?)")
        kb = keep[first : first + n].tobytes()
        blob, at = stage1_texts.blocks(first, n)  # only the survivors' texts are decoded
        texts = [blob[at[j] : at[j + 1]].decode("utf-8") if k else "" for j, k in enumerate(kb)]
        row = {"text": texts, "keep": kb, "domain": [h["domain"] for h in heads]}
        return row, (heads, raws, [len(t) for t in texts])

    provs = array("q")  # (file index << 40) | line of each stage-1 record: 8 bytes a document
    file_index: dict[str, int] = {}
    file_names: list[str] = []
    lens = np.fromfile(ctx.p("stage1.len"), dtype="<u8").astype(np.int64)
    if len(lens) != len(ids):
        raise Qwen25ValueError(f"{ctx.p('stage1.len')}: {len(lens)} documents, {len(ids)} expected")
    bar = progress_bar(len(ids), "near-dedup+decontam+classify", ctx.progress)
    i = 0
    # (source domain, domain out, status) -> [documents, tokens], in the order first met: added to
    # the tally once, after the phase
    flow_counts: dict[tuple[str, str, Status], list[int]] = {}
    for cols, (heads, raws, chars) in ctx.execute(NearWorker, spec, tasks()):
        for k, status in enumerate(_STATUS[s] for s in cols["status"]):
            fields = heads[k]
            prov = fields["prov"]
            stats = {"stats": fields["stats"]} if "stats" in fields else {}
            fk = file_index.get(prov["file"])
            if fk is None:
                fk = file_index[prov["file"]] = len(file_names)
                file_names.append(prov["file"])
            provs.append((fk << 40) | prov["line"])
            dm, src = cols["domain"][k], fields["domain"]
            n = int(lens[i])
            c = flow_counts.get((src, dm, status))
            if c is None:
                flow_counts[src, dm, status] = [1, n]
            else:
                c[0] += 1
                c[1] += n
            if status is Status.MINHASH:
                first = provs[ids[i]]
                removed.write({**prov, "domain": dm, "stage": Stage.MINHASH_DEDUP.value,
                               "reason": f"near_duplicate_of {file_names[first >> 40]}:{first & ((1 << 40) - 1)}",
                               **stats})  # fmt: skip
                tally.removed[Stage.MINHASH_DEDUP]["near_duplicate"] += 1
                i += 1
                continue
            scores = {"scores": json.loads(cols["scores"][k])} if cols["scores"][k] is not None else {}
            if status is Status.DECONTAMINATE:
                removed.write({**prov, "domain": dm, "stage": Stage.DECONTAMINATE.value, "reason": cols["reason"][k],
                               **stats})  # fmt: skip
                tally.removed[Stage.DECONTAMINATE]["benchmark_overlap"] += 1
                i += 1
                continue
            if status is Status.SCORE:
                removed.write({**prov, "domain": dm, "stage": Stage.SCORE.value, "reason": cols["reason"][k], **scores,
                               **stats})  # fmt: skip
                tally.removed[Stage.SCORE]["low_score"] += 1
            else:
                w = writers.get(dm)
                if w is None:
                    stem = ctx.p(os.path.join("stage2", f"{len(writers):04d}"))
                    w = writers[dm] = (JsonlWriter(stem + ".jsonl"), RowWriter(stem + ".rows"))
                raw = raws[k]
                if scores or stats or dm != src or not raw.endswith(b"}\n"):
                    w[0].write({"prov": prov, "domain": dm, "chars": chars[k], "row": i, **scores, **stats})
                else:  # the stage-1 line ({"prov", "domain"}) goes on as it is, with two fields more
                    w[0].write_line(b'%s, "chars": %d, "row": %d}\n' % (raw[:-2], chars[k], i))
                w[1].write(i)
                dom_tokens[dm] += n
            i += 1
        bar.update(len(cols["status"]))
    bar.close()
    stage1_texts.close()
    # each document goes through the stages in order until the one that removed it
    gone = {Status.MINHASH: Stage.MINHASH_DEDUP, Status.DECONTAMINATE: Stage.DECONTAMINATE,
            Status.SCORE: Stage.SCORE}
    for (src, dm, status), (docs, toks) in flow_counts.items():
        for stage in (Stage.MINHASH_DEDUP, Stage.DECONTAMINATE, Stage.SCORE, Stage.CLASSIFY):
            out = gone.get(status) is not stage
            tally.add(stage, src, docs, toks, removed=0 if out else docs, removed_tokens=0 if out else toks,
                      out_domain=dm if stage is Stage.CLASSIFY else None)  # fmt: skip
            if not out:
                break
    if i != len(ids):
        raise Qwen25ValueError(f"{stage1}: {i} records read back, {len(ids)} expected (changed during the run?)")
    for jw, rw in writers.values():
        jw.close()
        rw.close()
    removed.close()
    index = {
        dm: {"file": os.path.basename(jw.path), "rows": os.path.basename(rw.path), "docs": jw.n, "tokens": dom_tokens[dm]}
        for dm, (jw, rw) in writers.items()
    }
    write_json(ctx.p("stage2/index.json"), index)
    part: dict[str, Any] = {"tally": tally.to_json()}
    if cfg.dedup.minhash:
        reps, counts = np.unique(ids, return_counts=True)
        big = [(int(r), int(c)) for r, c in zip(reps, counts) if c > 1]
        part["clusters"] = cluster_summary(
            [c for _, c in big], [(f"{file_names[provs[r] >> 40]}:{provs[r] & ((1 << 40) - 1)}", c) for r, c in big]
        )
    part["decontaminate"] = decon_note
    part["classify"] = "DomainClassifier" if spec["classify_model"] is not None else "source domains"
    part["score"] = f"LMScorer ({cfg.score.model})" if cfg.score is not None else "off"
    return part


def mix_pack(ctx: RunContext) -> dict[str, Any]:
    """Each phase: plan pools, interleave their documents, pack the stored ids. A document
    no phase takes is removed ("mix", "downsampled"); ``repeat`` in kept.jsonl counts the
    document's earlier placements."""
    import numpy as np

    from ..mix import plan_phase, schedule
    from ..pack import TokenPacker

    with open(ctx.p("stage2/index.json"), encoding="utf-8") as f:
        index = json.load(f)

    def stage2(name: str) -> str:
        return ctx.p(os.path.join("stage2", name))

    # every document's token ids stay in stage1.tok (memory-mapped: on disk until packed); a
    # domain's documents are rows of it
    s1_lens = np.fromfile(ctx.p("stage1.len"), dtype="<u8").astype(np.int64)
    s1_starts = np.concatenate([[0], np.cumsum(s1_lens)]).astype(np.int64)
    # (a plain array over the map: slicing a np.memmap costs a microsecond a slice, a document)
    s1_toks = (np.memmap(ctx.p("stage1.tok"), dtype="<u4", mode="r").view(np.ndarray) if s1_starts[-1]
               else np.zeros(0, "<u4"))  # fmt: skip
    rows = {d: np.fromfile(stage2(v["rows"]), dtype="<u8").astype(np.int64) for d, v in index.items()}
    lengths = {d: s1_lens[r] for d, r in rows.items()}
    stage1_text = Texts(ctx.p("stage1.text"))
    cfg = ctx.cfg
    part: dict[str, Any] = {}
    unit, seed, mode = cfg.mix.unit, cfg.mix.seed, cfg.mix.mode
    # placements per document (an array of Python ints: indexed a document at a time)
    placed = {d: array("q", bytes(8 * len(n))) for d, n in lengths.items()}
    pack = cfg.pipeline.stop_after != "mix"  # stopping after the mix: its documents, with their text, unpacked
    kept = JsonlWriter(ctx.p("kept.jsonl" if pack else "survivors.jsonl"))
    removed = JsonlWriter(ctx.p("removed.mix.jsonl"))
    tally = Tally()
    phases = mix_phases(cfg)
    named = bool(phases[0].name)
    import shutil

    shutil.rmtree(ctx.p("packed"), ignore_errors=True)  # no shard of an earlier run stays beside the new ones
    phase_reports: dict[str, Any] = {}
    drawn: set[str] = set()  # domains some phase takes documents from
    pack_reports: dict[str, Any] = {}
    for ph in phases:
        n_doc = 0  # document index within this phase's packed folder
        pools, plan, notes = plan_phase(ph, lengths, unit=unit, max_repeat=float(ph.max_repeat or 1.0))
        if ph.tokens is not None and plan.total_tokens < ph.tokens * (1 - 1e-9):  # a total the data cannot give
            notes.append(f"phase {ph.name!r}: total_{unit} = {ph.tokens:g} cannot be met within max_repeat = "
                         f"{float(ph.max_repeat or 1.0):g} epochs: the mix holds {plan.total_tokens:g} {unit}")  # fmt: skip
        if ph.long_share and not any(p.long and p.size > 0 for p in pools):
            raise Qwen25ValueError(
                f"{cfg.path}: phase {ph.name!r} asks for long_share = {ph.long_share} but no document kept has "
                f"{ph.long_min or ph.seq_len} tokens or more; lower long_min or add long documents "
                "(the finished phases are kept: a rerun resumes here)"
            )
        for note in notes:
            print(f"qwen25 data: note: {note}", file=sys.stderr)
        by_name = {p.name: p for p in pools}
        drawn.update(p.domain for p in pools if p.docs > 0)
        live = {p.name: p.docs for p in pools if p.docs > 0 and p.domain in index and len(p.index)}
        packer = None if not pack else TokenPacker(
            ctx.p(os.path.join("packed", ph.name) if named else "packed"), seq_len=int(ph.seq_len or 4096),
            seqs_per_shard=cfg.pack.seqs_per_shard, seed=seed, num_threads=cfg.pipeline.num_threads,
            extra={"pipeline": os.path.basename(cfg.path), **({"phase": ph.name} if named else {})},
        )  # fmt: skip

        def reader(pool: Any) -> Iterator[tuple[int, dict[str, Any]]]:
            mask = np.zeros(len(lengths[pool.domain]), dtype=bool)
            mask[pool.index] = True
            while True:
                for k, raw in enumerate(read_lines(stage2(index[pool.domain]["file"]))):
                    if mask[k]:  # only the pool's documents are parsed (their fields: no text)
                        yield k, parse_line(raw)

        iters = {n: reader(by_name[n]) for n in live}
        taken: Counter[str] = Counter()
        taken_tokens: Counter[str] = Counter()
        out: list[tuple[str, int, dict[str, Any]]] = []
        bar = progress_bar(sum(live.values()), f"mix+pack {ph.name}".strip(), ctx.progress)

        def flush() -> None:
            nonlocal n_doc
            if not out:
                return
            rows_out = np.fromiter((r["row"] for _, _, r in out), dtype=np.int64, count=len(out))
            lens = s1_lens[rows_out]
            if (rows_out[1:] - rows_out[:-1] == 1).all():  # consecutive rows: one slice of stage1.tok
                flat = s1_toks[s1_starts[rows_out[0]] : s1_starts[rows_out[-1] + 1]]
            else:
                flat = np.concatenate([s1_toks[s1_starts[r] : s1_starts[r + 1]] for r in rows_out.tolist()])
            if packer is not None:
                packer.add_token_arrays(flat, lens, [r["domain"] for _, _, r in out])
            for (n, k, r), m in zip(out, lens.tolist()):
                d = by_name[n].domain
                rep = placed[d][k]
                placed[d][k] = rep + 1
                row = {**r["prov"], "domain": r["domain"], "doc": n_doc, "repeat": rep}
                if "scores" in r:
                    row["scores"] = r["scores"]
                if "stats" in r:
                    row["stats"] = r["stats"]
                if named:
                    row["phase"] = ph.name
                if packer is not None:
                    kept.write(row)
                else:
                    kept.write_line(text_line(row, stage1_text.json(r["row"])))
                n_doc += 1
                c = tally.domain_out[r["domain"]]
                c["docs" if rep == 0 else "repeats"] += 1
                c["chars"] += r["chars"]
                c["tokens"] += m
                taken_tokens[n] += m
            bar.update(len(out))
            out.clear()

        for n in schedule(live, seed=seed, mode=mode):
            out.append((n, *next(iters[n])))
            taken[n] += 1
            if len(out) >= cfg.pipeline.batch_size:
                flush()
        flush()
        bar.close()
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
        if packer is not None:
            manifest = packer.finish()
            pack_reports[ph.name] = {**manifest["counts"], "tokens_by_domain": {s["name"]: s["tokens"] for s in manifest["sources"]}}
    # documents no phase took: "downsampled", or "not_in_mix" when no phase draws on the domain
    for d, v in index.items():
        times = np.frombuffer(placed[d], dtype=np.int64)
        used = times > 0
        why = "downsampled" if d in drawn else "not_in_mix"
        for k, raw in enumerate(read_lines(stage2(v["file"])) if not used.all() else ()):  # only to list the unused
            if not used[k]:
                r = parse_line(raw)
                removed.write({**r["prov"], "domain": d, "stage": Stage.MIX.value, "reason": why,
                               **({"stats": r["stats"]} if "stats" in r else {})})  # fmt: skip
                tally.removed[Stage.MIX][why] += 1
        n_used, n_placed = int(used.sum()), int(times.sum())
        used_tok = int(lengths[d][used].sum())
        placed_tok = int((lengths[d] * times).sum())
        tally.flow[Stage.MIX, d].update({
            Flow.IN_DOCS: v["docs"], Flow.IN_TOKENS: v["tokens"], Flow.OUT_DOCS: n_placed, Flow.OUT_TOKENS: placed_tok,
            Flow.REMOVED_DOCS: v["docs"] - n_used, Flow.REMOVED_TOKENS: v["tokens"] - used_tok,
            Flow.REPEAT_DOCS: n_placed - n_used, Flow.REPEAT_TOKENS: placed_tok - used_tok,
        })  # fmt: skip
    kept.close()
    removed.close()
    stage1_text.close()
    if named:
        part["mix"] = {"unit": unit, "phases": phase_reports}
        tot: Counter[str] = Counter()
        by_dom: Counter[str] = Counter()
        for pr in pack_reports.values():
            tot.update({k: v for k, v in pr.items() if isinstance(v, int)})
            by_dom.update(pr["tokens_by_domain"])
        part["pack"] = {**tot, "tokens_by_domain": dict(by_dom), "phases": pack_reports}
    else:
        one = phase_reports[""]
        part["mix"] = {
            "unit": unit,
            "quota": {n: {"docs": q["docs"], "tokens": q["tokens"]} for n, q in sorted(one["quota"].items())},
            "taken": dict(sorted(one["taken"].items())),
            "notes": one["notes"],
        }
        part["pack"] = pack_reports.get("", {})
    if not pack:
        part["pack"] = {}
        part["survivors"] = kept.n  # the lines of survivors.jsonl (the report's survivors.docs)
    part["tally"] = tally.to_json()
    return part


def _tokens_of(lengths: Any, n_docs: int) -> int:
    """Tokens in the first ``n_docs`` documents taken in order, cycling through ``lengths``."""
    if lengths is None or len(lengths) == 0 or n_docs <= 0:
        return 0
    full, part = divmod(n_docs, len(lengths))
    return int(full * int(lengths.sum()) + int(lengths[:part].sum()))

