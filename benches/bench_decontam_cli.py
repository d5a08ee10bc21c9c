"""`qwen25 decontaminate` end to end against the engine alone, on a corpus of real files, on the
same threads: how much of `Decontaminator.check`'s speed the job keeps after reading, parsing,
hashing, writing and compressing.

    python benches/bench_decontam_cli.py --mb 250 --shards 8 --threads 2 --repeat 5

The corpus is real text on this machine: the sources (.py/.pyi) and docs (.md/.rst/.txt) of the
packages in this interpreter's site-packages, one file per record (``{"id", "path", "text"}``),
sampled under --seed until --mb megabytes of JSONL, split into --shards shards, written once plain
and once gzip-compressed (level 6). The test set is HumanEval (bundled), `qwen` mode; every
--plant-every-th file gets a HumanEval item (prompt + solution) appended, so that both sides have
records to remove.

Per round (rounds interleaved, --repeat of them): the engine alone, ``Decontaminator.check`` over
the already-parsed texts in batches of 2,048 (the job's batch size); the job on the plain shards;
the job on the gzip shards with the defaults (``clean/`` reuses the input's deflate blocks that no
dropped line touches; the rest, and ``removed/``, at gzip level 6); the same with ``--recompress``
(every output compressed whole at level 6, the job's behaviour before block reuse); optionally
(--level1) ``--recompress --compress-level 1``. The gzip rows also give the size of ``clean/``. MB/s is of uncompressed JSONL, wall clock, medians; CPU s is the
process's user + system CPU time over the same span (the checks below excluded), which the load of
a shared machine changes less than the wall clock. Checked every
round: the job removes exactly the records the engine flags, and its clean + removed outputs hold
every input line byte for byte (the gzip outputs decompressed).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path

from qwen25.data import Decontaminator, benchmarks
from qwen25.data.decontam_job import run_job

SUFFIXES = (".py", ".pyi", ".md", ".rst", ".txt")


def corpus(mb: float, seed: int) -> list[dict[str, str]]:
    files = []
    for root in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        for dp, dns, fns in os.walk(root):
            dns.sort()
            files.extend(os.path.join(dp, f) for f in sorted(fns) if f.endswith(SUFFIXES))
    random.Random(seed).shuffle(files)
    out, total = [], 0
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError):
            continue
        if not text.strip() or len(text) > 2_000_000:
            continue
        rec = {"id": f"doc-{len(out)}", "path": os.path.relpath(f, os.path.dirname(os.path.dirname(f))), "text": text}
        out.append(rec)
        total += len(json.dumps(rec)) + 1
        if total >= mb * 1e6:
            break
    return out


def cpu_s() -> float:
    """User + system CPU seconds of this process, all its threads (the job's and the engine's)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def split_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=250.0, help="uncompressed corpus size")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plant-every", type=int, default=400)
    ap.add_argument("--level1", action="store_true", help="also time the gzip job at --compress-level 1")
    args = ap.parse_args()
    recs = corpus(args.mb, args.seed)
    items = [x["text"] for x in benchmarks.load("humaneval")]
    for i in range(0, len(recs), args.plant_every):
        recs[i]["text"] += "\n\n" + items[(i // args.plant_every) % len(items)]
    tmp = Path(tempfile.mkdtemp(prefix="qwen25-bench-"))
    try:
        (tmp / "plain").mkdir()
        (tmp / "gz").mkdir()
        lines = [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in recs]
        per = -(-len(lines) // args.shards)
        total = 0
        for s in range(args.shards):
            data = b"".join(lines[s * per : (s + 1) * per])
            total += len(data)
            (tmp / "plain" / f"shard{s:02d}.jsonl").write_bytes(data)
            (tmp / "gz" / f"shard{s:02d}.jsonl.gz").write_bytes(gzip.compress(data, 6))
        texts = [r["text"] for r in recs]
        mb = total / 1e6
        gz_mb = sum(p.stat().st_size for p in (tmp / "gz").iterdir()) / 1e6
        d = Decontaminator(items, mode="qwen")
        print(f"corpus: {len(recs)} real files from site-packages, {mb:.1f} MB of JSONL in {args.shards} shards "
              f"({gz_mb:.1f} MB gzipped); test: HumanEval, {len(items)} items; threads {args.threads}", flush=True)
        kinds = {"engine (Decontaminator.check)": None, "job, plain JSONL": "plain",
                 "job, gzip in+out (default: blocks reused, level 6)": "gz",
                 "job, gzip in+out, --recompress (level 6)": "gz6"}  # fmt: skip
        if args.level1:
            kinds["job, gzip in+out, --recompress --compress-level 1"] = "gz1"
        clean_mb: dict[str, float] = {}
        res: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        want_hits: set[int] | None = None
        for r in range(args.repeat):
            for name, kind in kinds.items():
                c0 = cpu_s()
                t0 = time.perf_counter()
                if kind is None:
                    hits = []
                    for k in range(0, len(texts), 2048):
                        hits.extend(d.check(texts[k : k + 2048], num_threads=args.threads))
                    dt = time.perf_counter() - t0
                    got = {i for i, h in enumerate(hits) if h is not None}
                    assert want_hits is None or got == want_hits
                    want_hits = got
                else:
                    sub = "plain" if kind == "plain" else "gz"
                    out = tmp / f"out-{kind}-{r}"
                    rep = run_job(train=[str(tmp / sub / "*")], tests=["humaneval"], out=str(out), progress=False,
                                  num_threads=args.threads, compress_level=1 if kind == "gz1" else 6,
                                  recompress=kind in ("gz1", "gz6"))  # fmt: skip
                    dt = time.perf_counter() - t0
                    v0 = cpu_s()
                    # the job removes what the engine flags, and keeps every line byte for byte
                    removed = {s * per + e["line"] - 1 for e in rep["removed"]
                               for s in [int(e["shard"][5:7])]}  # fmt: skip
                    assert want_hits is not None and removed == want_hits, (len(removed), len(want_hits))
                    for s in range(args.shards):
                        name_s = f"shard{s:02d}.jsonl" + ("" if kind == "plain" else ".gz")
                        rd = (lambda p: p.read_bytes()) if kind == "plain" else (lambda p: gzip.decompress(p.read_bytes()))
                        back = split_lines(rd(out / "clean" / name_s)) + split_lines(rd(out / "removed" / name_s))
                        assert sorted(back) == sorted(lines[s * per : (s + 1) * per])
                    clean_mb[name] = sum(p.stat().st_size for p in (out / "clean").iterdir()) / 1e6
                    shutil.rmtree(out)
                    verify = cpu_s() - v0
                res[name].append(mb / dt)
                cpu[name].append(cpu_s() - c0 - (verify if kind is not None else 0.0))
                print(f"  round {r + 1}: {name}: {mb / dt:.1f} MB/s, {cpu[name][-1]:.1f} CPU s", flush=True)
        eng = statistics.median(res["engine (Decontaminator.check)"])
        eng_cpu = statistics.median(cpu["engine (Decontaminator.check)"])
        print("\n| what | MB/s (median; runs) | vs engine | CPU s (median) | engine CPU / this CPU |")
        print("|---|---|---|---|---|")
        for k, v in res.items():
            m, c = statistics.median(v), statistics.median(cpu[k])
            print(f"| {k} | {m:.1f} ({', '.join(f'{x:.1f}' for x in v)}) | {m / eng:.2f}x | {c:.1f} | {eng_cpu / c:.2f} |")
        print(f"\n{len(want_hits or ())} records removed by both the engine and every job run")
        print(f"input: {gz_mb:.1f} MB gzipped; clean/ written: " + ", ".join(f"{k}: {v:.1f} MB" for k, v in clean_mb.items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
