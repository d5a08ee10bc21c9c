"""Memory of a long decontamination stream: `Decontaminator.filter` over a synthetic corpus of
--gb gigabytes (records generated on the fly, never held), RSS sampled every 0.5 s.

    python benches/bench_decontam_stream.py --gb 5 --test-items 50000

The corpus cycles through a pool of generated records with a fresh random cut per record, so it
costs no memory of its own; the test index is built from --test-items synthetic items plus
HumanEval. Prints RSS after the index is built, the maximum over the first and the last quarter
of the stream, and the throughput.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decontam import make_text, make_vocab, rss  # noqa: E402

from qwen25.data import Decontaminator, benchmarks  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=5.0)
    ap.add_argument("--test-items", type=int, default=50_000)
    ap.add_argument("--mode", default="qwen")
    args = ap.parse_args()
    rnd = random.Random(0)
    vocab = make_vocab(rnd, 20_000)
    cum = []
    acc = 0.0
    for i in range(len(vocab)):
        acc += 1.0 / (i + 1)
        cum.append(acc)
    test = [make_text(rnd, vocab, cum, rnd.randrange(30, 200)) for _ in range(args.test_items)]
    test += [x["text"] for x in benchmarks.load("humaneval")]
    d = Decontaminator(test, mode=args.mode)
    base = rss()
    pool = [make_text(rnd, vocab, cum, rnd.randrange(50, 600)) for _ in range(4000)]
    planted = [x["text"] for x in benchmarks.load("humaneval")[:20]]
    target = int(args.gb * 1e9)
    produced = {"bytes": 0, "records": 0}

    def records():  # generated lazily; nothing is kept
        i = 0
        while produced["bytes"] < target:
            t = pool[rnd.randrange(len(pool))]
            cut = rnd.randrange(len(t) // 2)
            text = t[cut:] + " " + t[:cut]
            if i % 100_000 == 0:
                text = text + "\n" + planted[(i // 100_000) % len(planted)]
            produced["bytes"] += len(text.encode())
            produced["records"] += 1
            i += 1
            yield {"text": text, "i": i}

    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((produced["bytes"], rss()))
            time.sleep(0.5)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    clean, removed = d.filter(records(), batch_size=4096)
    # Consume the clean stream; the removed records (rare) wait in the filter's buffer until the
    # end. (Pulling from the removed iterator while it is empty would read ahead and buffer clean
    # records instead: consume the stream that is large.)
    n_clean = sum(1 for _ in clean)
    n_removed = sum(1 for _ in removed)
    dt = time.perf_counter() - t0
    stop.set()
    th.join()
    q = max(1, len(samples) // 4)
    first = max(r for _, r in samples[:q])
    last = max(r for _, r in samples[-q:])
    print(f"mode={args.mode}, test items={len(test)}, stream {produced['bytes'] / 1e9:.2f} GB in "
          f"{produced['records']} records, {dt:.0f} s ({produced['bytes'] / dt / 1e6:.1f} MB/s)")
    print(f"records: {n_clean} clean + {n_removed} removed = {n_clean + n_removed} (generated {produced['records']})")
    print(f"RSS: after index {base / 2**20:.0f} MiB; max over first quarter {first / 2**20:.0f} MiB; "
          f"max over last quarter {last / 2**20:.0f} MiB; overall max {max(r for _, r in samples) / 2**20:.0f} MiB")
    return 0 if n_clean + n_removed == produced["records"] else 1


if __name__ == "__main__":
    sys.exit(main())
