"""`qwen25 data run` end to end (exact + MinHash dedup, HumanEval decontamination, packing; no
quality filters) against the tokenizer's own ``encode_batch`` on the same corpus and threads
(issue 16 target: >= 0.4x), plus the peak RSS of ``data run`` over a long stream.

    python benches/bench_data_run.py --mb 150 --shards 8 --threads 2 --repeat 5
    python benches/bench_data_run.py --rss 1000,3000 --mb 150      # peak RSS, fresh processes
    python benches/bench_data_run.py --phases 3 --keep DIR         # where data run's time goes
    python benches/bench_data_run.py --doc-chars 2500 --keep DIR2  # web-page-sized documents

The corpus is real text: ``.py``/``.pyi``/``.md``/``.rst``/``.txt`` files of the packages in this
interpreter's site-packages (the builder of ``bench_decontam_cli.py``), one file per record
``{"id", "path", "text"}``, split into ``--shards`` ``.jsonl.gz`` shards (gzip level 6).

Throughput: MB of uncompressed JSONL per wall second. Each repeat runs, interleaved, (a) the
Qwen2.5 tokenizer's ``encode_batch`` (``flat=True``, ``allowed_special=set()``, the call the
pipeline makes) over the already-parsed texts in batches of the pipeline's ``batch_size``,
(b) ``qwen25 data run`` in a fresh subprocess (import and tokenizer load counted) on the gzip
shards and (c) "engines": the native calls data run cannot avoid, in process on the parsed texts
(``encode_batch`` + ``Decontaminator.check`` + ``MinHashDeduplicator.signatures``), the floor of
its time. All use ``--threads`` threads. Medians of ``--repeat`` runs; the token count the
pipeline reads is asserted equal to the tokenizer's.

Phases (``--phases N``): ``data run`` in N fresh processes, each phase's wall seconds (scan: read,
tokenize, exact + MinHash signatures; near_dedup: LSH keep flags, decontaminate; mix_pack), the
time before the first phase (interpreter start, imports, configuration, input digests) and
after the last (removed list, report), medians.

Peak RSS: the ``.jsonl.gz`` shards repeated (each copy its own file with a distinct ``id`` line
prefix so exact dedup keeps nothing twice; the copies are exact duplicates by text, so the
dedup index, not the kept set, grows) until ``--rss`` MB of uncompressed JSONL, ``data run`` in a
fresh process, its ``ru_maxrss`` read with ``os.wait4``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

CONFIG = """
[pipeline]
output = "out"
batch_size = {batch}
num_threads = {threads}

[[sources]]
name = "code"
paths = ["shards/*.jsonl.gz"]
id_field = "id"

[filter]
enabled = false

[dedup]
exact = true
minhash = true

[decontaminate]
options = {{ test_set = "humaneval" }}

[pack]
seq_len = 2048
"""


def run_pipeline(root: Path, threads: int) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``qwen25 data run`` in a fresh process."""
    shutil.rmtree(root / "out", ignore_errors=True)
    env = {**os.environ, "QWEN25_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", "import sys; from qwen25.cli import main; sys.exit(main())", "data", "run", str(root / "pipeline.toml"), "--no-progress"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    err = p.stderr.read().decode() if p.stderr else ""
    if status != 0:
        raise SystemExit(f"data run failed ({status}):\n{err}")
    return dt, ru.ru_maxrss


# data run with each phase timed (wrapping the job's phase table; the phases themselves unchanged)
PHASE_SHIM = """
import json, sys, time
t_start = float(sys.argv.pop(1))
import qwen25.data.pipeline.job as job
T = {}
for name, f in list(job._RUN.items()):
    def timed(ctx, f=f, name=name):
        t = time.perf_counter()
        try:
            return f(ctx)
        finally:
            T[name] = time.perf_counter() - t
            T.setdefault("first_start", t)
            T["last_end"] = time.perf_counter()
    job._RUN[name] = timed
from qwen25.cli import main
rc = main(sys.argv[1:])
t_end = time.perf_counter()
T["before"] = T.pop("first_start") - t_start
T["after"] = t_end - T.pop("last_end")
print("PHASES " + json.dumps(T), file=sys.stderr)
sys.exit(rc)
"""


def phases(root: Path, threads: int, n: int) -> int:
    env = {**os.environ, "QWEN25_NUM_THREADS": str(threads)}
    rows: dict[str, list[float]] = {}
    for _ in range(n):
        shutil.rmtree(root / "out", ignore_errors=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-c", PHASE_SHIM, repr(t0), "data", "run", str(root / "pipeline.toml"), "--no-progress"]
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        total = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"data run failed:\n{p.stderr}")
        t = json.loads(p.stderr.split("PHASES ", 1)[1].splitlines()[0])
        parts = {"before": t["before"], **{k: t[k] for k in ("scan", "near_dedup", "mix_pack")}}
        for k, v in {**parts, "after": t["after"], "total": total}.items():
            rows.setdefault(k, []).append(v)
    print(f"| part of data run | wall s (median of {n}) |")
    print("|---|---:|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(v):.2f} |")
    return 0


def main() -> int:
    from bench_decontam_cli import corpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=150)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rss", default="", help="comma-separated stream sizes in MB: peak RSS runs instead")
    ap.add_argument("--keep", default=None, help="folder to build the corpus in and keep (reused when present)")
    ap.add_argument("--phases", type=int, default=0, help="N: time data run's phases in N fresh processes instead")
    ap.add_argument("--doc-chars", type=int, default=0,
                    help="N: cut each file into documents of at most N characters (web-page sizes; more "
                         "documents for the same bytes, so the per-document costs show)")  # fmt: skip
    a = ap.parse_args()

    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="qwen25-datarun-"))
    shards = root / "shards"
    try:
        if not (root / "texts.json").exists():
            recs = corpus(a.mb, a.seed)
            if a.doc_chars > 0:
                recs = [{"id": f"{r['id']}#{j}", "path": r["path"], "text": r["text"][i : i + a.doc_chars]}
                        for r in recs for j, i in enumerate(range(0, len(r["text"]), a.doc_chars))]  # fmt: skip
            lines = [(json.dumps(r, ensure_ascii=False) + "\n").encode() for r in recs]
            shards.mkdir(parents=True, exist_ok=True)
            per = -(-len(lines) // a.shards)
            for s in range(a.shards):
                (shards / f"shard{s:02d}.jsonl.gz").write_bytes(gzip.compress(b"".join(lines[s * per : (s + 1) * per]), 6))
            (root / "texts.json").write_text(json.dumps([r["text"] for r in recs]))
            (root / "nbytes").write_text(str(sum(map(len, lines))))
        texts = json.loads((root / "texts.json").read_text())
        nbytes = int((root / "nbytes").read_text())
        (root / "pipeline.toml").write_text(CONFIG.format(batch=a.batch, threads=a.threads))
        gz = sum(p.stat().st_size for p in shards.iterdir())
        what = f"pieces of at most {a.doc_chars} characters of real files" if a.doc_chars > 0 else "real files"
        print(f"corpus: {len(texts)} documents ({what} from site-packages), {nbytes / 1e6:.1f} MB of JSONL "
              f"({gz / 1e6:.1f} MB as {a.shards} .jsonl.gz shards); threads {a.threads}, batch {a.batch}")  # fmt: skip
        if a.rss:
            return rss(root, a, nbytes)
        if a.phases:
            return phases(root, a.threads, a.phases)

        from qwen25 import Tokenizer
        from qwen25.data import Decontaminator, MinHashDeduplicator

        tok = Tokenizer.qwen25()
        decon = Decontaminator(test_set="humaneval")
        mh = MinHashDeduplicator(num_threads=a.threads)
        times: dict[str, list[float]] = {"encode_batch": [], "data run": [], "engines": []}
        tokens = 0
        for r in range(a.repeat):
            t0 = time.perf_counter()
            tokens = 0
            for i in range(0, len(texts), a.batch):
                ids, _ = tok.encode_batch(texts[i : i + a.batch], allowed_special=set(), num_threads=a.threads, flat=True)
                tokens += len(ids)
            times["encode_batch"].append(time.perf_counter() - t0)
            dt, _ = run_pipeline(root, a.threads)
            times["data run"].append(dt)
            # the engines data run cannot avoid, in process on the same texts and batches: encode,
            # Decontaminator.check, MinHash signatures (its floor, before any I/O or bookkeeping)
            t0 = time.perf_counter()
            for i in range(0, len(texts), a.batch):
                chunk = texts[i : i + a.batch]
                tok.encode_batch(chunk, allowed_special=set(), num_threads=a.threads, flat=True)
                decon.check(chunk, num_threads=a.threads)
                mh.signatures(chunk)
            times["engines"].append(time.perf_counter() - t0)
            print(f"  run {r + 1}: encode_batch {times['encode_batch'][-1]:.2f}s, data run {dt:.2f}s, "
                  f"engines {times['engines'][-1]:.2f}s", flush=True)  # fmt: skip
        rep = json.loads((root / "out" / "report.json").read_text())
        packed_in = rep["stages"]["read"]["out"]["tokens"] if "stages" in rep else None
        if packed_in is not None:
            assert packed_in == tokens, f"the pipeline read {packed_in} tokens, encode_batch gave {tokens}"
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| what | wall s (median of {a.repeat}) | MB/s |")
        print("|---|---:|---:|")
        for k in times:
            print(f"| {k} | {med[k]:.2f} | {nbytes / 1e6 / med[k]:.1f} |")
        print(f"data run / encode_batch throughput: {med['encode_batch'] / med['data run']:.2f}x "
              f"(tokens read by the pipeline = encode_batch's: {tokens})")  # fmt: skip
        print(f"engine floor (encode + check + MinHash signatures, in process): {med['encode_batch'] / med['engines']:.2f}x "
              f"encode_batch's throughput; data run reaches {med['engines'] / med['data run']:.2f}x of that floor")  # fmt: skip
        return 0
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


def rss(root: Path, a: argparse.Namespace, nbytes: int) -> int:
    src = sorted((root / "shards").iterdir())
    print("| stream MB (JSONL) | shards | wall s | MB/s | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|")
    for mb in (float(x) for x in a.rss.split(",")):
        big = root / f"rss{int(mb)}"
        shutil.rmtree(big, ignore_errors=True)
        (big / "shards").mkdir(parents=True)
        copies = max(1, round(mb * 1e6 / nbytes))
        for c in range(copies):
            for p in src:
                os.link(p, big / "shards" / f"c{c:03d}-{p.name}")  # the same bytes: exact duplicates
        (big / "pipeline.toml").write_text((root / "pipeline.toml").read_text())
        dt, kib = run_pipeline(big, a.threads)
        total = copies * nbytes
        print(f"| {total / 1e6:,.0f} | {copies * len(src)} | {dt:.1f} | {total / 1e6 / dt:.1f} | {kib / 1024:,.0f} |", flush=True)
        shutil.rmtree(big, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
