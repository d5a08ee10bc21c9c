"""MinHash signatures (datatrove's shingling, the default) of two builds of qwen25, interleaved:
the installed one ("new") and one unpacked from a wheel into a folder ("old"), each run in its
own process on the same texts and threads, with the signatures of both asserted equal.

    python benches/bench_minhash_ab.py --old OLD_DIR --texts texts.json [--threads 2] [--rounds 5]

OLD_DIR holds an unpacked wheel (its `qwen25/` folder); texts.json is a JSON list of strings, or a
.jsonl file with a "text" field. Each process times `MinHashDeduplicator(num_threads=T)
.signatures` over the texts in batches of 1,000 (wall clock and process CPU time, median of
--repeat calls); the table gives, per build, the median over the rounds and the range.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import hashlib, json, statistics, sys, time
path, threads, repeat, flag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if path.endswith(".jsonl"):
    texts = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
else:
    texts = json.load(open(path, encoding="utf-8"))
import qwen25
from qwen25.data import MinHashDeduplicator
kw = {} if flag == "default" else {"datatrove_words": False}
d = MinHashDeduplicator(num_threads=threads, **kw)
B = 1000
def run():
    h = hashlib.blake2b(digest_size=16)
    for i in range(0, len(texts), B):
        h.update(memoryview(d.signatures(texts[i : i + B])).cast("B"))
    return h.hexdigest()
digest = run()  # warm up (and the output to compare)
wall, cpu = [], []
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    assert run() == digest
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
print(json.dumps({"wall": statistics.median(wall), "cpu": statistics.median(cpu), "digest": digest,
                  "module": qwen25.__file__, "mb": sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="folder holding an unpacked wheel of the old build")
    ap.add_argument("--texts", required=True, help="JSON list of texts, or .jsonl with a 'text' field")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="old/new pairs, interleaved")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls per process (median)")
    ap.add_argument("--simple-words", action="store_true", help="datatrove_words=False instead")
    args = ap.parse_args()
    flag = "simple" if args.simple_words else "default"
    res: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for which in ("old", "new") if r % 2 == 0 else ("new", "old"):
            env = dict(os.environ)
            if which == "old":
                env["PYTHONPATH"] = os.pathsep.join(p for p in (args.old, env.get("PYTHONPATH")) if p)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, args.texts, str(args.threads), str(args.repeat), flag],
                env=env, check=True, capture_output=True, text=True,
            ).stdout
            res[which].append(json.loads(out.strip().splitlines()[-1]))
            print(which, res[which][-1], flush=True)
    digests = {x["digest"] for v in res.values() for x in v}
    assert len(digests) == 1, f"the builds' signatures differ: {digests}"
    assert res["old"][0]["module"] != res["new"][0]["module"], "both runs imported the same build"
    mb = res["new"][0]["mb"]
    print(f"\n{mb:,.1f} MB, {args.threads} threads, {flag} shingling, signatures equal ({digests.pop()})")
    print("| build | wall s (range) | MB/s wall | CPU s (range) |")
    print("|---|---|---|---|")
    for which in ("old", "new"):
        w = [x["wall"] for x in res[which]]
        c = [x["cpu"] for x in res[which]]
        print(f"| {which} | {statistics.median(w):.3f} ({min(w):.3f}-{max(w):.3f}) | {mb / statistics.median(w):,.0f} "
              f"| {statistics.median(c):.3f} ({min(c):.3f}-{max(c):.3f}) |")
    w_old = statistics.median(x["wall"] for x in res["old"])
    w_new = statistics.median(x["wall"] for x in res["new"])
    c_old = statistics.median(x["cpu"] for x in res["old"])
    c_new = statistics.median(x["cpu"] for x in res["new"])
    print(f"speed-up: {w_old / w_new:.2f}x wall, {c_old / c_new:.2f}x CPU")


if __name__ == "__main__":
    main()
