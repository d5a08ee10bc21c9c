"""`qwen25 data run` of two builds of qwen25 on the same corpora, interleaved: the installed one
("new") and another unpacked into a folder ("old"), each run a fresh process, medians. The outputs
that users read (``kept.jsonl``, ``removed.jsonl``, ``report.json``, the packed shards) are
asserted byte-identical between the two.

    git worktree add /tmp/old REV && (cd /tmp/old && maturin build --release -o /tmp/old-wheel)
    python -m zipfile -e /tmp/old-wheel/qwen25-*.whl /tmp/old-pkg
    python benches/ab_data_run.py --old /tmp/old-pkg --repeat 5 DIR [DIR ...]

Each DIR is a corpus folder that ``bench_data_run.py --keep DIR`` built (it holds
``pipeline.toml``); ``--threads`` threads on both sides.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUN = ("import sys, qwen25; side = sys.argv.pop(1); "
       "assert (sys.argv[1] in qwen25.__file__) == (side == 'old'), qwen25.__file__; sys.argv.pop(1); "
       "from qwen25.cli import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip


def run(root: Path, side: str, old: str, threads: int) -> float:
    shutil.rmtree(root / "out", ignore_errors=True)
    env = {**os.environ, "QWEN25_NUM_THREADS": str(threads)}
    if side == "old":
        env["PYTHONPATH"] = old  # ahead of the installed (editable) package on sys.path
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", RUN, side, old, "data", "run", str(root / "pipeline.toml"), "--no-progress"],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{side} data run failed on {root}:\n{p.stderr}")
    return dt


def outputs(out: Path) -> list[Path]:
    files = [out / n for n in ("kept.jsonl", "removed.jsonl", "report.json")]
    return files + sorted((out / "packed").iterdir())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--old", required=True, help="folder holding the other build's unpacked qwen25 package")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    times: dict[tuple[Path, str], list[float]] = {}
    for _ in range(a.repeat):
        for root in a.roots:
            for side in ("old", "new"):
                times.setdefault((root, side), []).append(run(root, side, a.old, a.threads))
                if side == "old":
                    shutil.rmtree(root / "out.old", ignore_errors=True)
                    shutil.copytree(root / "out", root / "out.old")
            assert sorted(os.listdir(root / "out" / "packed")) == sorted(os.listdir(root / "out.old" / "packed"))
            for f in outputs(root / "out"):
                g = root / "out.old" / f.relative_to(root / "out")
                assert filecmp.cmp(f, g, shallow=False), f"{f} differs between the builds"
    print("| corpus | old s (median; runs) | new s (median; runs) | old / new |")
    print("|---|---|---|---:|")
    for root in a.roots:
        o, n = times[root, "old"], times[root, "new"]
        mo, mn = statistics.median(o), statistics.median(n)
        print(f"| {root.name} | {mo:.2f} ({', '.join(f'{x:.2f}' for x in o)}) | {mn:.2f} ({', '.join(f'{x:.2f}' for x in n)}) "
              f"| {mo / mn:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
