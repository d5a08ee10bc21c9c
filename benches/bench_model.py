"""CPU model benchmark: qwen25.model against transformers in the same process, same weights,
same dtype, same thread count.

  forward   logits of [batch, seq] tokens (no grad), fp32 and bf16
  generate  greedy new tokens/s from a prompt (KV cache), ours .generate vs transformers .generate

The model is a slice of a preset (default: the 0.5B shape with 2 layers, full vocabulary) with
random weights. Prints medians and the ratio ours/transformers (> 1 means we are faster).

  python benches/bench_model.py [--preset 0.5B] [--layers 2] [--seq 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="0.5B")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--overhead", action="store_true",
                    help="also time greedy generation on the tiny 'debug' preset, where per-step overhead dominates")
    ap.add_argument("--only-overhead", action="store_true")
    args = ap.parse_args()

    warnings.filterwarnings("ignore")
    import torch
    import transformers

    from qwen25.model import Qwen25Config, Qwen2ForCausalLM

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    cfg = Qwen25Config.from_preset(args.preset, num_hidden_layers=args.layers, torch_dtype="float32")
    print(f"{args.preset} shape, {args.layers} layers ({cfg.num_parameters() / 1e6:.0f}M params), "
          f"threads={args.threads}, torch {torch.__version__}, transformers {transformers.__version__}")
    tmp = tempfile.mkdtemp()
    Qwen2ForCausalLM.from_config(cfg, seed=0).save_pretrained(tmp)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=g)
    prompt = torch.randint(0, cfg.vocab_size, (1, args.prompt), generator=g)

    def timed(fn, repeats):  # type: ignore[no-untyped-def]
        fn()  # warm-up
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    print("| what | dtype | ours (median s) | transformers (median s) | ratio (transformers/ours) | ratio of best runs |")
    print("|---|---|---|---|---|---|")
    for dname in ([] if args.only_overhead else args.dtypes.split(",")):
        dtype = getattr(torch, dname)
        ours = Qwen2ForCausalLM.from_pretrained(tmp, dtype=dtype).eval()
        hf = transformers.AutoModelForCausalLM.from_pretrained(tmp, dtype=dtype).eval()
        with torch.inference_mode():
            a, b = ours(x).logits, hf(x).logits
            diff = (a.float() - b.float()).abs().max().item()
            # interleave the two so machine noise hits both alike
            t_ours, t_hf = [], []
            for _ in range(args.repeats):
                t_ours += timed(lambda: ours(x), 1)
                t_hf += timed(lambda: hf(x), 1)
            mo, mh = statistics.median(t_ours), statistics.median(t_hf)
            print(f"| forward [{args.batch}x{args.seq}] | {dname} | {mo:.4f} | {mh:.4f} | {mh / mo:.2f}x |"
                  f" {min(t_hf) / min(t_ours):.2f}x | <!-- max |logit diff| {diff:.2e} -->")
            n = args.new_tokens
            go = ours.generate(prompt, max_new_tokens=n, eos_token_id=None)
            gh = hf.generate(prompt, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
            same = go.tolist() == gh.tolist()
            t_ours, t_hf = [], []
            for _ in range(max(2, args.repeats // 2)):
                t_ours += timed(lambda: ours.generate(prompt, max_new_tokens=n, eos_token_id=None), 1)
                t_hf += timed(lambda: hf.generate(prompt, max_new_tokens=n, do_sample=False, eos_token_id=None,
                                                  pad_token_id=0), 1)
            mo, mh = statistics.median(t_ours), statistics.median(t_hf)
            print(f"| greedy generate {n} tok, prompt {args.prompt} (tok/s) | {dname} | {n / mo:.1f} tok/s | "
                  f"{n / mh:.1f} tok/s | {mh / mo:.2f}x | {min(t_hf) / min(t_ours):.2f}x | <!-- same tokens: {same} -->")

    if args.overhead or args.only_overhead:
        small = tempfile.mkdtemp()
        Qwen2ForCausalLM.from_config("debug", seed=0).save_pretrained(small)
        ours = Qwen2ForCausalLM.from_pretrained(small).eval()
        hf = transformers.AutoModelForCausalLM.from_pretrained(small).eval()
        n = 64
        with torch.inference_mode():
            t_ours, t_hf = [], []
            for _ in range(args.repeats):
                t_ours += timed(lambda: ours.generate(prompt, max_new_tokens=n, eos_token_id=None), 1)
                t_hf += timed(lambda: hf.generate(prompt, max_new_tokens=n, do_sample=False, eos_token_id=None,
                                                  pad_token_id=0), 1)
        mo, mh = statistics.median(t_ours), statistics.median(t_hf)
        print(f"| greedy generate {n} tok, 'debug' preset (overhead-bound) | float32 | {n / mo:.1f} tok/s | "
              f"{n / mh:.1f} tok/s | {mh / mo:.2f}x |")


if __name__ == "__main__":
    main()
