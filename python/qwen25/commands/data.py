"""``qwen25 data``: the pre-training data pipeline and its stages.

    qwen25 data run pipeline.toml            the whole job (see qwen25.data.pipeline)
    qwen25 data filter IN.jsonl... -o OUT.jsonl [--removed R.jsonl]
    qwen25 data dedup IN.jsonl... -o OUT.jsonl [--removed R.jsonl] [--no-exact] [--no-minhash]
    qwen25 data pack IN.jsonl... -o DIR [--seq-len N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

HELP = "Pre-training data pipeline: filter, dedup, decontaminate, mix and pack JSONL corpora."


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="STAGE", required=True)
    r = sub.add_parser("run", help="run a pipeline.toml")
    r.add_argument("config", help="pipeline TOML file")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--engine", choices=("local", "ray"), default=None, help="override [pipeline] engine (local or ray)")
    for name, help_text in (("filter", "quality filters"), ("dedup", "exact + MinHash dedup"), ("pack", "tokenize and pack")):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("inputs", nargs="+", help="JSONL files")
        s.add_argument("-o", "--output", required=True, help="output JSONL (pack: output folder)")
        s.add_argument("--text-field", default="text")
        s.add_argument("--num-threads", type=int, default=None)
        s.add_argument("--batch-size", type=int, default=1000)
        if name != "pack":
            s.add_argument("--removed", help="JSONL of removed records with stage and reason")
        if name == "dedup":
            s.add_argument("--no-exact", action="store_true")
            s.add_argument("--no-minhash", action="store_true")
        if name == "pack":
            s.add_argument("--seq-len", type=int, default=4096)
            s.add_argument("--seqs-per-shard", type=int, default=16384)


def _records(paths: list[str], field: str) -> Iterator[tuple[str, int, dict[str, Any]]]:
    from ..errors import FormatError

    for path in paths:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise FormatError(f"{path}:{i}: {e.msg}", path, i) from None
                if not isinstance(rec, dict) or not isinstance(rec.get(field), str):
                    raise FormatError(f"{path}:{i}: no string field {field!r}", path, i)
                yield path, i, rec


def _batches(it: Iterator[Any], n: int) -> Iterator[list[Any]]:
    b: list[Any] = []
    for x in it:
        b.append(x)
        if len(b) >= n:
            yield b
            b = []
    if b:
        yield b


class _Out:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.f = open(path + ".tmp", "w", encoding="utf-8") if path else None

    def write(self, obj: dict[str, Any]) -> None:
        if self.f:
            self.f.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self.f and self.path:
            self.f.close()
            os.replace(self.path + ".tmp", self.path)


def _run_filter(a: argparse.Namespace) -> int:
    from ..data.filters import QualityFilter

    f = QualityFilter(num_threads=a.num_threads)
    out, rem = _Out(a.output), _Out(a.removed)
    n = k = 0
    for batch in _batches(_records(a.inputs, a.text_field), a.batch_size):
        for (path, line, rec), r in zip(batch, f.apply([rec[a.text_field] for _, _, rec in batch])):
            n += 1
            if r.keep:
                k += 1
                out.write({**rec, a.text_field: r.final_text(rec[a.text_field])})
            else:
                rem.write({"file": path, "line": line, "stage": "filter", "reason": f"{r.filter}:{r.reason}"})
    out.close()
    rem.close()
    print(f"filter: {n} in, {k} kept, {n - k} removed", file=sys.stderr)
    return 0


def _run_dedup(a: argparse.Namespace) -> int:
    from ..data.dedup import ExactDeduplicator, MinHashDeduplicator

    recs = list(_records(a.inputs, a.text_field))
    texts = [r[a.text_field] for _, _, r in recs]
    keep = [True] * len(texts)
    reason: list[str | None] = [None] * len(texts)
    if not a.no_exact:
        ids = ExactDeduplicator(num_threads=a.num_threads).cluster(texts)
        for i, c in enumerate(ids.tolist()):
            if c != i:
                keep[i], reason[i] = False, f"exact_dedup:duplicate_of {recs[c][0]}:{recs[c][1]}"
    if not a.no_minhash:
        idx = [i for i in range(len(texts)) if keep[i]]
        ids = MinHashDeduplicator(num_threads=a.num_threads).cluster([texts[i] for i in idx])
        for j, c in enumerate(ids.tolist()):
            if c != j:
                i, root = idx[j], idx[c]
                keep[i], reason[i] = False, f"minhash_dedup:near_duplicate_of {recs[root][0]}:{recs[root][1]}"
    out, rem = _Out(a.output), _Out(a.removed)
    for (path, line, rec), k, why in zip(recs, keep, reason):
        if k:
            out.write(rec)
        else:
            stage, _, r = (why or "").partition(":")
            rem.write({"file": path, "line": line, "stage": stage, "reason": r})
    out.close()
    rem.close()
    print(f"dedup: {len(texts)} in, {sum(keep)} kept", file=sys.stderr)
    return 0


def _run_pack(a: argparse.Namespace) -> int:
    from ..data.pack import TokenPacker

    with TokenPacker(a.output, seq_len=a.seq_len, seqs_per_shard=a.seqs_per_shard, num_threads=a.num_threads) as p:
        for batch in _batches(_records(a.inputs, a.text_field), a.batch_size):
            p.add([r[a.text_field] for _, _, r in batch], source=[os.path.basename(path) for path, _, _ in batch])
    print(json.dumps(p.finish()["counts"]), file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "run":
        from ..data.pipeline import format_report, run_pipeline

        rep = run_pipeline(args.config, progress=not args.no_progress, engine=args.engine)
        print(format_report(rep))
        return 0
    return {"filter": _run_filter, "dedup": _run_dedup, "pack": _run_pack}[args.data_command](args)
