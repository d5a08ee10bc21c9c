"""qwen25.Tokenizer side by side with tiktoken and HF tokenizers, in one process, on one corpus.

    python benches/bench_tokenizer.py            # full run (~2 minutes)
    python benches/bench_tokenizer.py --quick    # smaller corpus, fewer repeats

tiktoken is built in-process from the same vocabulary, merges-as-ranks, regex and control tokens
(no download); HF tokenizers is the Qwen2TokenizerFast pipeline built from the same files. The
corpus mixes English prose (pydoc topics), real source code (the standard library), and
multilingual text (Faker's locale data, 24 languages). Prints a markdown table of medians and
ratios; the figures recorded in benches/RESULTS.md come from here.
"""

from __future__ import annotations

import argparse
import base64
import glob
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import build_hf_qwen25, build_tiktoken_qwen25  # noqa: E402

import qwen25  # noqa: E402

LOCALES = ["zh_CN", "zh_TW", "ja_JP", "ko_KR", "ru_RU", "uk_UA", "ar_AA", "he_IL", "hi_IN", "th_TH", "el_GR",
           "hy_AM", "fa_IR", "bn_BD", "ta_IN", "de_DE", "fr_FR", "es_ES", "pl_PL", "vi_VN", "tr_TR", "cs_CZ"]


def corpus(mb: float) -> list[str]:
    """Documents: about 40% code, 40% English prose, 20% multilingual, shuffled."""
    target = int(mb * 1e6)
    rng = random.Random(0)
    docs: list[str] = []
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    size = 0
    for f in files:
        if size >= 0.4 * target:
            break
        with open(f, encoding="utf-8", errors="replace") as fh:
            t = fh.read()
        docs.append(t)
        size += len(t.encode())
    from pydoc_data.topics import topics

    prose = list(topics.values())
    size = 0
    while size < 0.4 * target:
        t = rng.choice(prose)
        docs.append(t)
        size += len(t.encode())
    import faker

    size = 0
    fakers = [faker.Faker(loc) for loc in LOCALES]
    for i, f in enumerate(fakers):
        f.seed_instance(i)
    while size < 0.2 * target:
        f = rng.choice(fakers)
        t = "\n".join(f.text(600) for _ in range(4))
        docs.append(t)
        size += len(t.encode())
    rng.shuffle(docs)
    return docs


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def rss_of(code: str) -> float:
    """Resident memory (MB) of a fresh interpreter after running ``code``, minus before it."""
    prog = (
        "import os, sys\n"
        "def rss():\n"
        "    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e6\n"
        "import qwen25\n"
        "a = rss()\n" + code + "\nprint(rss() - a)\n"
    )
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=8.0, help="corpus size in MB")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.mb, args.repeats = 2.0, 3

    docs = corpus(args.mb)
    nbytes = sum(len(d.encode()) for d in docs)
    ours = qwen25.Tokenizer.qwen25()
    tk = build_tiktoken_qwen25()
    hf = build_hf_qwen25()
    rows: list[tuple[str, str, str, str]] = []

    # correctness first: same ids as the reference on the whole corpus
    ref = [e.ids for e in hf.encode_batch(docs)]
    assert ours.encode_batch(docs) == ref, "ids differ from HF tokenizers"
    n_tok = sum(map(len, ref))
    tk_same = sum(a == b for a, b in zip(tk.encode_batch(docs, num_threads=1, allowed_special="all"), ref))

    print(f"corpus ready: {len(docs)} documents, {nbytes / 1e6:.2f} MB", flush=True)

    def mbps(t: float) -> str:
        return f"{nbytes / t / 1e6:.2f} MB/s"

    t_ours = median_time(lambda: [ours.encode(d) for d in docs], args.repeats)
    t_tk = median_time(lambda: [tk.encode(d, allowed_special="all") for d in docs], args.repeats)
    t_hf = median_time(lambda: [hf.encode(d) for d in docs], max(1, args.repeats // 2))
    rows.append(("encode, 1 thread", mbps(t_ours), f"tiktoken {mbps(t_tk)}", f"**{t_tk / t_ours:.2f}x** tiktoken"))
    rows.append(("encode, 1 thread", mbps(t_ours), f"HF tokenizers {mbps(t_hf)}", f"**{t_hf / t_ours:.2f}x** HF"))

    # 1 and 2 threads interleaved, best of 9 each: the shared machine's interference only slows runs down
    f1, f2 = [], []
    for _ in range(9):
        f1.append(median_time(lambda: ours.encode_batch(docs, num_threads=1, flat=True), 1))
        f2.append(median_time(lambda: ours.encode_batch(docs, num_threads=2, flat=True), 1))
    t_f1, t_f2 = min(f1), min(f2)
    print(f"flat 1 thread {sorted(f1)}\nflat 2 threads {sorted(f2)}", flush=True)
    rows.append(("encode_batch(flat=True), 2 threads (best of 9, interleaved)", mbps(t_f2),
                 f"ours, 1 thread {mbps(t_f1)}", f"**{t_f1 / t_f2:.2f}x** own 1-thread; medians "
                 f"{statistics.median(f1) / statistics.median(f2):.2f}x"))
    t_b1 = median_time(lambda: ours.encode_batch(docs, num_threads=1), args.repeats)
    t_b2 = median_time(lambda: ours.encode_batch(docs, num_threads=2), args.repeats)
    rows.append(("encode_batch (lists), 2 threads", mbps(t_b2), f"ours, 1 thread {mbps(t_b1)}",
                 f"**{t_b1 / t_b2:.2f}x** own 1-thread (building the Python lists is serial)"))
    t_tkb = median_time(lambda: tk.encode_batch(docs, num_threads=2, allowed_special="all"), args.repeats)
    rows.append(("encode_batch, 2 threads", mbps(t_b2), f"tiktoken 2 threads {mbps(t_tkb)}", f"{t_tkb / t_b2:.2f}x tiktoken"))

    t_dec = median_time(lambda: [ours.decode(ids) for ids in ref], args.repeats)
    t_dec_hf = median_time(lambda: [hf.decode(ids, skip_special_tokens=False) for ids in ref], args.repeats)
    t_dec_tk = median_time(lambda: [tk.decode(ids) for ids in ref], args.repeats)
    rows.append(("decode", mbps(t_dec), f"HF tokenizers {mbps(t_dec_hf)}", f"**{t_dec_hf / t_dec:.2f}x** HF"))
    rows.append(("decode", mbps(t_dec), f"tiktoken {mbps(t_dec_tk)}", f"{t_dec_tk / t_dec:.2f}x tiktoken"))

    # worst cases: runs with no split point; linear time = constant time per byte across sizes
    rng = random.Random(1)
    makers = {
        "letters": lambda n: "a" * n,
        "CJK": lambda n: "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(n // 3)),
        "base64": lambda n: base64.b64encode(rng.randbytes(n * 3 // 4)).decode(),
        "spaces": lambda n: " " * n,
    }
    for name, make in makers.items():
        # ours: time per byte at 1 MB over time per byte at 250 KB (1.0 = linear)
        per_byte = []
        for n in (250_000, 1_000_000):
            s = make(n)
            per_byte.append(median_time(lambda: ours.encode(s), 3) / len(s.encode()))
        # tiktoken is quadratic on a run without split points, so it is compared at 40 KB
        small = make(40_000)
        t_o = median_time(lambda: ours.encode(small), 5)
        try:
            t_t = median_time(lambda: tk.encode(small), 1)
            tiny = make(10_000)
            t_t10 = median_time(lambda: tk.encode(tiny), 1)
            peer = f"tiktoken {t_t * 1e3:.1f} ms (40 KB/10 KB time: {t_t / t_t10:.1f}x)"
            ratio = f"**{t_t / t_o:.1f}x** tiktoken at 40 KB"
        except ValueError as e:
            peer, ratio = f"tiktoken fails: {str(e)[:60]}", "-"
        print(name, per_byte, peer, flush=True)
        rows.append((f"worst case: {name}, no split point", f"1 MB in {per_byte[1] * 1e6 * 1e3:.0f} ms; 40 KB in {t_o * 1e3:.2f} ms",
                     peer, f"{ratio}; ours time/byte 1 MB vs 250 KB: {per_byte[1] / per_byte[0]:.2f}"))

    loads = []
    for _ in range(10):
        t = time.perf_counter()
        qwen25._native.Tokenizer.qwen25()
        loads.append(time.perf_counter() - t)
    rows.append(("load Tokenizer.qwen25()", f"{statistics.median(loads) * 1e3:.0f} ms", "target < 150 ms", ""))
    mem = rss_of("t = qwen25.Tokenizer.qwen25()\nt.encode_batch(['hello world ' * 1000, '你好' * 1000])")
    mem_tk = rss_of("sys.path.insert(0, %r)\nfrom tests.conftest import build_tiktoken_qwen25\nt = build_tiktoken_qwen25()\n"
                    "t.encode('hello world ' * 1000)" % str(ROOT))
    rows.append(("RSS of a loaded tokenizer", f"{mem:.0f} MB", f"tiktoken {mem_tk:.0f} MB", "target < 100 MB"))

    print(f"\ncorpus: {len(docs)} documents, {nbytes / 1e6:.2f} MB, {n_tok} tokens; ids identical to HF tokenizers: yes; "
          f"tiktoken identical on {tk_same}/{len(docs)} documents\n")
    print("| what | qwen25 | peer | ratio |")
    print("|---|---:|---:|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
