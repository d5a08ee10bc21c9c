"""`qwen25 data run` with engine "local" and engine "ray" (a local Ray) on the same synthetic
corpus and configuration (filters, exact + MinHash dedup, HumanEval decontamination, token mix,
packing); prints wall time per engine and their ratio, and checks the outputs are identical.

    python benches/bench_pipeline_engines.py --docs 20000 --repeat 3 --ray-cpus 2
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

VOCAB = (
    "town founded farmers hills river market square fair music food autumn children swim mill bridge "
    "visitors bread bakery winter streets quiet snow library maps roads centuries church garden school "
    "teacher doctor harbour boats fishermen weather summer festival dancing painter museum station"
).split()
STOP = "the of and to with that have be".split()

CONFIG = """
[pipeline]
output = "out"
batch_size = 1000
engine = "{engine}"

[[sources]]
name = "web"
paths = ["web/*.jsonl"]

[[sources]]
name = "code"
paths = ["code/*.jsonl"]

[filter.default]
c4 = false

[decontaminate]
options = {{ test_set = "humaneval" }}

[mix]
weights = {{ web = 0.7, code = 0.3 }}
max_repeat = 2.0

[pack]
seq_len = 2048
"""


def doc(rng: random.Random, i: int) -> str:
    lines = []
    for _ in range(rng.randint(6, 14)):
        words = [rng.choice(VOCAB) if rng.random() < 0.7 else rng.choice(STOP) for _ in range(rng.randint(10, 20))]
        lines.append(" ".join(words).capitalize() + ".")
    return "\n".join(lines) + f"\nThis is document {i}."


def write_corpus(root: Path, n: int) -> int:
    rng = random.Random(0)
    texts = [doc(rng, i) for i in range(n)]
    for i in range(0, n, 20):  # 5% exact duplicates
        texts[i] = texts[(i * 7) % n]
    nbytes = 0
    for name, part in (("web", texts[: n * 3 // 4]), ("code", texts[n * 3 // 4 :])):
        (root / name).mkdir()
        for k in range(4):
            lines = "".join(json.dumps({"text": t}) + "\n" for t in part[k::4])
            (root / name / f"{k}.jsonl").write_text(lines)
            nbytes += len(lines.encode())
    return nbytes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ray-cpus", type=int, default=2)
    a = ap.parse_args()
    import ray

    from qwen25.data.pipeline import run_pipeline

    root = Path(tempfile.mkdtemp(prefix="qwen25-engines-"))
    nbytes = write_corpus(root, a.docs)
    ray.init(num_cpus=a.ray_cpus, include_dashboard=False, log_to_driver=False)
    times: dict[str, list[float]] = {"local": [], "ray": []}
    outs: dict[str, bytes] = {}
    try:
        for _ in range(a.repeat):
            for engine in ("local", "ray"):  # interleaved: the machine's load drifts
                (root / "pipeline.toml").write_text(CONFIG.format(engine=engine))
                shutil.rmtree(root / "out", ignore_errors=True)
                t0 = time.perf_counter()
                rep = run_pipeline(root / "pipeline.toml", progress=False)
                times[engine].append(time.perf_counter() - t0)
                outs[engine] = (root / "out" / "kept.jsonl").read_bytes() + (root / "out" / "removed.jsonl").read_bytes()
                outs[engine] += b"".join(p.read_bytes() for p in sorted((root / "out" / "packed").iterdir()))
        assert outs["local"] == outs["ray"], "engines disagree"
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    med = {e: statistics.median(v) for e, v in times.items()}
    print(f"corpus: {a.docs} documents, {nbytes / 1e6:.1f} MB; packed {rep['pack']['document_tokens']} tokens")
    print("| engine | wall s (median of %d) | docs/s | MB/s |" % a.repeat)
    print("|---|---:|---:|---:|")
    for e in ("local", "ray"):
        print(f"| {e} | {med[e]:.2f} | {a.docs / med[e]:,.0f} | {nbytes / 1e6 / med[e]:.2f} |")
    print(f"ray / local wall time: {med['ray'] / med['local']:.2f}x (outputs identical)")


if __name__ == "__main__":
    main()
