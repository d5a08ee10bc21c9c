"""Multiple-choice scoring throughput: qwen25.eval.multiple_choice against lm-evaluation-harness's
``hf`` backend (HFLM.loglikelihood), on the same CPU model and the same items.

    python benches/bench_eval.py --runs 5 --threads 2 --items 64

One checkpoint (written by our save_pretrained: Qwen2.5's vocabulary, hidden 256, 4 layers, fp32,
random weights) is loaded by both sides; lm-eval loads it with transformers and reads the repository's
vocab.json/merges.txt with transformers' tokenizer. Items are synthetic four-choice questions of 40-
150 tokens. Two formats: ``mmlu`` (one-token continuations " A".." D", where lm-eval's logits cache
already runs one forward per question) and ``cloze`` (multi-token choices). Both sides get the same
(context, continuation) strings, the same batch size and the same torch thread count; lm-eval's
request building (``Instance`` objects) is done before the clock starts, so only its
``loglikelihood`` (tokenizing, batching, forward, log-softmax) is timed, against our
``multiple_choice`` (tokenizing, batching, forward, scoring). Runs alternate between the sides
(qwen25, lm-eval, qwen25, ...) after one warm-up each; the figure is the median. Every run's
log-likelihoods are asserted equal across the sides (rel 1e-4) before any time is reported.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("river mountain engine ledger harvest orbit lantern valley signal copper meadow quarry archive "
         "compass glacier furnace harbor prism tundra beacon canal delta estuary ferry grove inlet marsh").split()


def make_items(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        q = f"Question {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 90))) + "?"
        choices = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) for _ in range(4)]
        items.append({"question": q, "choices": choices, "answer": rng.randrange(4)})
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--formats", default="mmlu,cloze")
    args = ap.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from qwen25.eval import mc_prompt, multiple_choice
    from qwen25.model import Qwen2ForCausalLM, Qwen25Config
    from qwen25.tokenizer import Tokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    cfg = Qwen25Config.from_preset("debug", hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    Qwen2ForCausalLM.from_config(cfg, seed=0).save_pretrained(tmp / "model")
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(ROOT / "rust/qwen25-core/data/qwen25" / f, tmp / "model" / f)
    ours_model = Qwen2ForCausalLM.from_pretrained(tmp / "model")
    tok = Tokenizer.qwen25()
    lm = HFLM(pretrained=str(tmp / "model"), dtype="float32", device="cpu", batch_size=args.batch_size)
    items = make_items(args.items)
    print(f"model: hidden 256, 4 layers, vocab {cfg.vocab_size}, fp32 ({ours_model.num_parameters() / 1e6:.1f}M "
          f"params); {len(items)} items x 4 choices; batch size {args.batch_size}; torch threads {args.threads}; "
          f"{args.runs} interleaved runs after a warm-up; torch {torch.__version__}, transformers "
          f"{transformers.__version__}")
    print(f"{'format':<8}{'qwen25 items/s':>16}{'lm-eval items/s':>17}{'ratio':>8}")
    for fmt in args.formats.split(","):
        reqs = []
        for i, it in enumerate(items):
            ctx, conts, _ = mc_prompt(it["question"], it["choices"], fmt)
            reqs += [Instance("loglikelihood", it, (ctx, c), j, (f"bench_{fmt}", i, 1)) for j, c in enumerate(conts)]

        def run_ours() -> list[list[float]]:
            r = multiple_choice(ours_model, tok, items, format=fmt, batch_size=args.batch_size)
            return r["loglikelihoods"]

        def run_peer() -> list[list[float]]:
            out = lm.loglikelihood(reqs, disable_tqdm=True)
            lls = [o[0] for o in out]
            return [lls[4 * i:4 * i + 4] for i in range(len(items))]

        times: dict[str, list[float]] = {"qwen25": [], "lm-eval": []}
        a, b = run_ours(), run_peer()  # warm-up, and the outputs compared
        for x, y in zip(a, b):
            for u, v in zip(x, y):
                assert abs(u - v) <= 1e-4 * max(1.0, abs(v)), (fmt, u, v)
        for _ in range(args.runs):
            for name, fn in (("qwen25", run_ours), ("lm-eval", run_peer)):
                t = time.perf_counter()
                got = fn()
                times[name].append(time.perf_counter() - t)
                for x, y in zip(got, a):
                    assert all(abs(u - v) <= 1e-4 * max(1.0, abs(v)) for u, v in zip(x, y))
        ours_t, peer_t = statistics.median(times["qwen25"]), statistics.median(times["lm-eval"])
        print(f"{fmt:<8}{len(items) / ours_t:>16.1f}{len(items) / peer_t:>17.1f}{peer_t / ours_t:>7.2f}x")
        print(f"         medians {ours_t:.3f} s vs {peer_t:.3f} s; all runs qwen25 "
              f"{[round(x, 3) for x in times['qwen25']]}, lm-eval {[round(x, 3) for x in times['lm-eval']]}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
