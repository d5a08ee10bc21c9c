"""qwen25.train_bpe against HF tokenizers' BpeTrainer, in one process, on the same corpus.

Both learn a byte-level BPE with the same pre-tokenization (NFC, the Qwen2 split pattern, the
256-symbol byte-level alphabet), the same vocabulary size, special tokens and min_frequency; the
script also checks that both learned the same merges. The corpus is built at run time:

- code: the Python standard library's own ``.py`` files (sorted by path);
- English prose: the Python reference documentation shipped in ``pydoc_data.topics``;
- multilingual: the standard library's CJK test texts (``test/cjkencodings/*-utf8.txt``) and the
  first article of the Universal Declaration of Human Rights in 14 languages, repeated in a seeded
  shuffled order (a small real sample; this machine holds no larger multilingual corpus).

Usage: python benches/bench_train_bpe.py [--mb 8] [--vocab-size 32000] [--repeats 3]
Prints medians of ``--repeats`` runs and the ratios (HF time / our time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sysconfig
import time
from collections.abc import Callable
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import hf_train_qwen2_bpe  # noqa: E402  (the HF reference pipeline, shared with the tests)

UDHR1 = [
    "All human beings are born free and equal in dignity and rights. They are endowed with reason and conscience and should act towards one another in a spirit of brotherhood.",
    "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。",
    "Все люди рождаются свободными и равными в своем достоинстве и правах. Они наделены разумом и совестью и должны поступать в отношении друг друга в духе братства.",
    "Tous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont doués de raison et de conscience et doivent agir les uns envers les autres dans un esprit de fraternité.",
    "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und Gewissen begabt und sollen einander im Geist der Brüderlichkeit begegnen.",
    "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。人間は、理性と良心とを授けられており、互いに同胞の精神をもって行動しなければならない。",
    "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다. 인간은 천부적으로 이성과 양심을 부여받았으며 서로 형제애의 정신으로 행동하여야 한다.",
    "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا وعليهم أن يعامل بعضهم بعضًا بروح الإخاء.",
    "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है। उन्हें बुद्धि और अन्तरात्मा की देन प्राप्त है और परस्पर उन्हें भाईचारे के भाव से बर्ताव करना चाहिए।",
    "Todos los seres humanos nacen libres e iguales en dignidad y derechos y, dotados como están de razón y conciencia, deben comportarse fraternalmente los unos con los otros.",
    "Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα. Είναι προικισμένοι με λογική και συνείδηση, και οφείλουν να συμπεριφέρονται μεταξύ τους με πνεύμα αδελφοσύνης.",
    "Tất cả mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm và quyền lợi. Mọi con người đều được tạo hóa ban cho lý trí và lương tâm và cần phải đối xử với nhau trong tình bằng hữu.",
    "มนุษย์ทั้งหลายเกิดมามีอิสระและเสมอภาคกันในเกียรติศักด์และสิทธิ ต่างมีเหตุผลและมโนธรรม และควรปฏิบัติต่อกันด้วยเจตนารมณ์แห่งภราดรภาพ",
    "Tüm insanlar hür, haysiyet ve haklar bakımından eşit doğarlar. Akıl ve vicdana sahiptirler ve birbirlerine karşı kardeşlik zihniyeti ile hareket etmelidirler.",
]

def build_corpus(mb: float) -> tuple[list[str], dict[str, int]]:
    """About `mb` MB of UTF-8: 70% code, 20% prose, 10% multilingual."""
    budget = int(mb * 1e6)
    lib = Path(sysconfig.get_paths()["stdlib"])
    code: list[str] = []
    size = 0
    for p in sorted(lib.rglob("*.py")):
        if size >= 0.7 * budget:
            break
        try:
            t = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        code.append(t)
        size += len(t.encode())
    prose: list[str] = []
    size = 0
    from pydoc_data.topics import topics

    items = sorted(topics.items())
    while size < 0.2 * budget:
        for _, v in items:
            prose.append(v)
            size += len(v.encode())
            if size >= 0.2 * budget:
                break
    samples = list(UDHR1)
    for p in sorted((lib / "test" / "cjkencodings").glob("*-utf8.txt")):
        samples.append(p.read_text(encoding="utf-8"))
    rng = random.Random(0)
    multi: list[str] = []
    size = 0
    while size < 0.1 * budget:
        doc = "\n".join(rng.sample(samples, 5))
        multi.append(doc)
        size += len(doc.encode())
    texts = code + prose + multi
    rng.shuffle(texts)
    parts = {k: sum(len(t.encode()) for t in v) for k, v in (("code", code), ("prose", prose), ("multilingual", multi))}
    return texts, parts


def hf_train(texts: list[str], vocab_size: int, min_frequency: int) -> Any:
    return hf_train_qwen2_bpe(texts, vocab_size, ["<|endoftext|>"], min_frequency)


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=8.0, help="corpus size in MB (default 8)")
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--min-frequency", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worst-case", action="store_true",
                    help="instead: one pre-token with no split point (100k random CJK chars), vocab 2000")
    args = ap.parse_args()
    if args.worst_case:
        worst_case()
        return

    import tempfile

    import tokenizers

    import qwen25
    from qwen25 import _native

    texts, parts = build_corpus(args.mb)
    total = sum(parts.values())
    cores = _native.effective_threads()
    print(f"corpus: {total / 1e6:.2f} MB in {len(texts)} texts "
          + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in parts.items()))
    print(f"vocab_size={args.vocab_size} min_frequency={args.min_frequency} repeats={args.repeats} "
          f"threads available={cores} tokenizers {tokenizers.__version__}")

    def ours(n: int | None) -> Callable[[], Any]:
        return lambda: qwen25.train_bpe(texts, args.vocab_size, min_frequency=args.min_frequency, num_threads=n)

    t_hf, hf = median_time(lambda: hf_train(texts, args.vocab_size, args.min_frequency), args.repeats)
    t_all, tok = median_time(ours(None), args.repeats)
    t_one, _ = median_time(ours(1), args.repeats)

    # where our time goes (all threads): counting pre-tokens vs the merge loop
    def phases() -> tuple[float, float]:
        tr = _native.BpeTrainer(["<|endoftext|>"])
        t0 = time.perf_counter()
        for i in range(0, len(texts), 256):
            tr.feed(texts[i:i + 256])
        t1 = time.perf_counter()
        tr.train(args.vocab_size, args.min_frequency)
        return t1 - t0, time.perf_counter() - t1

    count_s, merge_s = phases()

    with tempfile.TemporaryDirectory() as d:
        tok.save_pretrained(d)
        ours_merges = json.loads((Path(d) / "tokenizer.json").read_text(encoding="utf-8"))["model"]["merges"]
    hf_merges = [m.split(" ") if isinstance(m, str) else m for m in json.loads(hf.to_str())["model"]["merges"]]
    same = ours_merges == hf_merges

    print()
    print(f"{'trainer':<34}{'median s':>10}{'MB/s':>8}{'HF / this':>11}")
    rows = [
        (f"HF BpeTrainer ({cores} threads)", t_hf),
        (f"qwen25.train_bpe ({cores} threads)", t_all),
        ("qwen25.train_bpe (1 thread)", t_one),
    ]
    for name, t in rows:
        print(f"{name:<34}{t:>10.3f}{total / 1e6 / t:>8.2f}{t_hf / t:>10.2f}x")
    print(f"\nours ({cores} threads): counting {count_s:.3f} s, merge loop {merge_s:.3f} s")
    print(f"merges: ours {len(ours_merges)}, HF {len(hf_merges)}, identical: {same}")
    if not same:
        raise SystemExit("the learned merges differ from HF's")


def worst_case() -> None:
    """A single 300 KB pre-token: every merge rescans it (both trainers are linear per merge)."""
    import qwen25

    rng = random.Random(0)
    text = "".join(chr(0x4E00 + rng.randrange(300)) for _ in range(100_000))
    t0 = time.perf_counter()
    tok = qwen25.train_bpe([text], 2000, num_threads=1)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    hf_train([text], 2000, 2)
    t_hf = time.perf_counter() - t0
    print(f"one 100k-char CJK pre-token, vocab 2000 ({tok.vocab_size - 257} merges)")
    print(f"HF BpeTrainer {t_hf:.2f} s, qwen25.train_bpe (1 thread) {t_ours:.2f} s, HF / ours {t_hf / t_ours:.1f}x")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    main()
