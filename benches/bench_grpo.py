"""GRPO benchmarks (issue 14), on the CPU.

  rollout   sampled rollouts: our batched KV-cache engine (``LocalRollouts``, which also records every
            token's log-prob) against transformers ``generate`` (do_sample, the same temperature,
            top-k off, top-p 1) on the same model files, the same prompts, the same thread count.
            The global RNG of transformers and our generator get the same seed, so both draw the
            same tokens: asserted equal in every run. Interleaved runs, medians, tokens/s.
  memory    peak memory of the GRPO loss's log-probs (forward + backward) on the full vocabulary:
            ours (``grpo.linear_logps``: row chunks through the fused cross-entropy's chunk op)
            against the naive path (fp32 logits of every token, log_softmax, gather), each run in a
            fresh process, peak = VmHWM after the loss minus VmRSS before it (the peak is reset
            through /proc/self/clear_refs first). Values and gradients asserted equal where both
            run. The naive path at B = 16, T = 2048 needs far more memory than this machine has: it
            is measured at smaller B and extrapolated linearly (its memory is a sum of [B*T, V]
            tensors), which the table says. Ours at B = 16 is measured (one run: a run takes
            minutes on the CPU, and its peak does not vary).
  learn     a toy verifiable task: "a+b=" with a, b in 0..4 on a character vocabulary of 16 tokens,
            reward 1 when the completion's leading number is a+b (exact). A random debug-shape
            policy trained by GRPOTrainer; mean reward of the first and last episodes, per seed.

  python benches/bench_grpo.py rollout [--layers 2 --queries 2 --group 8 --prompt 32 --new 32 --repeats 5]
  python benches/bench_grpo.py memory [--batch 16 --seq 2048 --naive-batches 1,2 --repeats 5 --target-repeats 1]
  python benches/bench_grpo.py learn [--seeds 5 --episodes 300 --toy-queries 16 --toy-new 2 --lr 1e-3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings


# ------------------------------------------------------------------------------------ rollout
def bench_rollout(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore")
    import torch
    import transformers

    from qwen25.model import Qwen2ForCausalLM, Qwen25Config
    from qwen25.rl.rollouts import LocalRollouts, SamplingParams

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    cfg = Qwen25Config.from_preset(args.preset, num_hidden_layers=args.layers, torch_dtype="float32")
    tmp = tempfile.mkdtemp()
    Qwen2ForCausalLM.from_config(cfg, seed=0).save_pretrained(tmp)
    ours = Qwen2ForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 150000, (args.prompt,), generator=g).tolist() for _ in range(args.queries)]
    stops = [151645, 151643]
    engine = LocalRollouts(ours, stop_token_ids=stops, pad_token_id=151643)
    ids = torch.tensor([p for p in prompts for _ in range(args.group)])
    rows = len(ids)
    print(f"{args.preset} shape, {args.layers} layers ({cfg.num_parameters() / 1e6:.0f}M params, vocab "
          f"{cfg.vocab_size}), {args.queries} prompts x {args.group} samples = {rows} rows, prompt {args.prompt}, "
          f"{args.new} new tokens, temperature {args.temperature}, threads={args.threads}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")

    def run_ours(seed: int) -> tuple[float, list[list[int]]]:
        t0 = time.perf_counter()
        out = engine.generate(prompts, args.group, SamplingParams(max_new_tokens=args.new, temperature=args.temperature,
                                                                  seed=seed))
        return time.perf_counter() - t0, [list(c.token_ids) for c in out]

    def run_hf(seed: int) -> tuple[float, list[list[int]]]:
        torch.manual_seed(seed)  # transformers samples with the global generator
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=args.temperature,
                              top_k=0, top_p=1.0, max_new_tokens=args.new, eos_token_id=stops, pad_token_id=151643)
        dt = time.perf_counter() - t0
        toks = []
        for row in out[:, args.prompt:].tolist():  # cut each row after its first stop token
            cut = next((k + 1 for k, t in enumerate(row) if t in stops), len(row))
            toks.append(row[:cut])
        return dt, toks

    run_ours(0), run_hf(0)  # warm-up
    t_ours, t_hf, tokens = [], [], []
    for r in range(args.repeats):
        seed = 100 + r
        a, ta = run_ours(seed)
        b, tb = run_hf(seed)
        assert ta == tb, f"run {r}: the two samplers drew different tokens"
        t_ours.append(a)
        t_hf.append(b)
        tokens.append(sum(len(t) for t in ta))
    n = statistics.median(tokens)
    mo, mh = statistics.median(t_ours), statistics.median(t_hf)
    print("| engine | median s | new tokens/s | runs (s) |")
    print("|---|---|---|---|")
    print(f"| qwen25 LocalRollouts (tokens + log-probs) | {mo:.3f} | {n / mo:.1f} | "
          f"{', '.join(f'{x:.2f}' for x in t_ours)} |")
    print(f"| transformers generate (tokens only) | {mh:.3f} | {n / mh:.1f} | {', '.join(f'{x:.2f}' for x in t_hf)} |")
    print(f"ratio (ours tokens/s / transformers tokens/s): {mh / mo:.2f}x; tokens equal in all {args.repeats} runs; "
          f"new tokens per run: {sorted(set(tokens))}")


# ------------------------------------------------------------------------------------- memory
_MEM_CHILD = r"""
import json, sys, torch
torch.set_num_threads(int(sys.argv[5]))
from qwen25.rl.grpo import linear_logps
path, b, t, v, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 151936, 896
torch.manual_seed(0)
n = b * t
hidden = (torch.randn(n, h) * 0.5).requires_grad_(True)
weight = (torch.randn(v, h) * 0.02).requires_grad_(True)
targets = torch.randint(0, v, (n,))
upstream = torch.randn(n)  # a per-token gradient, as the GRPO loss gives

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

def naive():
    logits = hidden @ weight.T  # [N, V] fp32
    return torch.log_softmax(logits.float(), -1).gather(1, targets[:, None])[:, 0]

def ours():
    return linear_logps(hidden, weight, targets, chunk_size=int(sys.argv[6]))

fn = {"naive": naive, "ours": ours}[sys.argv[4]]
open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
before = status("VmRSS")
lp = fn()
(lp * upstream).sum().backward()
peak = status("VmHWM") - before
out = {"peak": peak, "logps": lp.detach()[:4096].tolist(), "gh": hidden.grad[:64].flatten().tolist(),
       "gw": weight.grad[targets[:64]].flatten().tolist()}
json.dump(out, open(path, "w"))
"""


def bench_memory(args: argparse.Namespace) -> None:
    import numpy as np

    def measure(kind: str, b: int) -> dict:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            path = f.name
        subprocess.run([sys.executable, "-c", _MEM_CHILD, path, str(b), str(args.seq), kind, str(args.threads),
                        str(args.chunk)], check=True)
        with open(path, encoding="utf-8") as f:
            res = json.load(f)
        os.unlink(path)
        return res

    gib = 2.0 ** 30
    naive_at = [int(x) for x in args.naive_batches.split(",")]
    print(f"T = {args.seq}, V = 151936, H = 896 (0.5B), fp32, chunk {args.chunk} rows; forward + backward of the "
          f"token log-probs with a per-token upstream gradient; B in {naive_at}: {args.repeats} interleaved runs of "
          f"each path, median; B = {args.batch}: ours only, {args.target_repeats} run(s)", flush=True)
    rows = []
    for b in naive_at:
        ours_runs, naive_runs = [], []
        for _ in range(args.repeats):  # interleaved
            o = measure("ours", b)
            nv = measure("naive", b)
            ours_runs.append(o["peak"])
            naive_runs.append(nv["peak"])
            np.testing.assert_allclose(o["logps"], nv["logps"], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(o["gh"], nv["gh"], rtol=1e-3, atol=1e-6)
            np.testing.assert_allclose(o["gw"], nv["gw"], rtol=1e-3, atol=1e-6)
        rows.append((b, statistics.median(ours_runs), statistics.median(naive_runs)))
        print(f"B = {b}: ours {[round(x / gib, 3) for x in ours_runs]} GiB, naive "
              f"{[round(x / gib, 3) for x in naive_runs]} GiB", flush=True)
    target = [measure("ours", args.batch)["peak"] for _ in range(args.target_repeats)]
    print(f"B = {args.batch}: ours {[round(x / gib, 3) for x in target]} GiB", flush=True)
    (b1, _, m1), (b2, _, m2) = rows[0], rows[-1]
    slope = (m2 - m1) / (b2 - b1) if b2 != b1 else m1 / b1
    intercept = m1 - slope * b1
    print("| B x T | ours peak (GiB) | naive peak (GiB) | ours / naive |")
    print("|---|---|---|---|")
    for b, o, nv in rows:
        print(f"| {b} x {args.seq} | {o / gib:.2f} | {nv / gib:.2f} (measured) | {o / nv:.3f} |")
    est = intercept + slope * args.batch
    o = statistics.median(target)
    print(f"| {args.batch} x {args.seq} | {o / gib:.2f} | {est / gib:.1f} (extrapolated: {intercept / gib:.2f} + "
          f"{slope / gib:.2f} x B GiB, from B = {b1}, {b2}) | {o / est:.3f} |")
    v = 151936
    print(f"for scale: one fp32 [B*T, V] tensor at B = {args.batch} is {args.batch * args.seq * v * 4 / gib:.1f} GiB; "
          f"log-probs and gradients asserted equal (rtol 1e-4 / 1e-3) in every run where both paths ran")


# -------------------------------------------------------------------------------------- learn
CHARS = "0123456789+="
EOS, PAD = 12, 13


class CharTokenizer:
    """The toy task's vocabulary: digits, '+', '=', an end token (12) and a pad token (13)."""

    pad_token_id = PAD

    def encode(self, text: str) -> list[int]:
        return [CHARS.index(c) for c in text]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:  # type: ignore[no-untyped-def]
        return "".join(CHARS[i] if i < len(CHARS) else ("" if skip_special_tokens else f"<{i}>") for i in ids)

    def token_to_id(self, token: str) -> int | None:
        return None


def leading_number_reward(records, texts, completions):  # type: ignore[no-untyped-def]
    out = []
    for rec, c in zip(records, completions):
        digits = ""
        for t in c.token_ids:
            if t > 9:
                break
            digits += str(t)
        out.append(1.0 if digits == str(rec["answer"]) else 0.0)
    return out


def bench_learn(args: argparse.Namespace) -> None:
    import torch

    from qwen25.rl.grpo import prepare_config, train_grpo
    from qwen25.rl.rewards import RewardFunction
    from qwen25.train import Stage, TrainConfig

    torch.set_num_threads(args.threads)
    tok = CharTokenizer()
    folder = tempfile.mkdtemp()
    prompts = os.path.join(folder, "arith.jsonl")
    with open(prompts, "w", encoding="utf-8") as f:
        for a in range(5):
            for b in range(5):
                f.write(json.dumps({"prompt_ids": tok.encode(f"{a}+{b}="), "answer": a + b, "id": f"{a}+{b}"}) + "\n")
    print(f"toy task: 25 prompts 'a+b=' (a, b in 0..4), vocabulary 16, up to {args.toy_new} new tokens, "
          f"{args.toy_queries} queries x 8 samples per episode in {args.steps_per_episode} steps, {args.episodes} "
          f"episodes, lr {args.lr}, beta {args.beta}, model: debug shape (2 layers, hidden 64), random init, "
          f"threads={args.threads}")
    print("| seed | mean reward, first 5 episodes | mean reward, last 5 episodes | frac_reward_zero_std, last 5 | "
          "wall s |")
    print("|---|---|---|---|---|")
    firsts, lasts, curves = [], [], []
    for seed in range(args.seeds):
        rows = args.toy_queries * 8 // args.steps_per_episode
        cfg = TrainConfig(
            name="arith", model="debug", model_overrides={"vocab_size": 16}, seed=seed,
            stages=(Stage(name="grpo", data=(prompts,), seq_len=16, steps=1),), global_batch_tokens=rows * 16,
            micro_batch_size=rows, lr=args.lr, schedule="constant", weight_decay=0.0, device="cpu", precision="fp32",
            method={"num_generations": 8, "queries_per_episode": args.toy_queries, "episodes": args.episodes,
                    "max_prompt_length": 4, "max_completion_length": args.toy_new, "beta": args.beta, "rewards": {},
                    "stop_token_ids": [EOS], "log_completions": False})
        t0 = time.perf_counter()
        _, recs = train_grpo(prepare_config(cfg), tokenizer=tok, progress=False, verbose=False,
                             reward_functions=[RewardFunction("exact", leading_number_reward)])
        dt = time.perf_counter() - t0
        by_ep: dict[int, dict] = {}
        for r in recs:
            by_ep.setdefault(r["episode"], r)
        eps = [by_ep[e] for e in sorted(by_ep)]
        first = statistics.fmean(r["reward"] for r in eps[:5])
        last = statistics.fmean(r["reward"] for r in eps[-5:])
        zero = statistics.fmean(r["frac_reward_zero_std"] for r in eps[-5:])
        firsts.append(first)
        lasts.append(last)
        window = max(1, len(eps) // 6)
        curves.append([statistics.fmean(r["reward"] for r in eps[k:k + window]) for k in range(0, len(eps), window)])
        print(f"| {seed} | {first:.3f} | {last:.3f} | {zero:.2f} | {dt:.1f} |")
    print(f"median over {args.seeds} seeds: first {statistics.median(firsts):.3f} -> last "
          f"{statistics.median(lasts):.3f}; rose in {sum(b > a for a, b in zip(firsts, lasts))}/{args.seeds} seeds")
    window = max(1, args.episodes // 6)
    print(f"mean reward per window of {window} episodes (median over seeds): " + ", ".join(
        f"{k * window}-{k * window + window - 1}: {statistics.median(c[k] for c in curves):.3f}"
        for k in range(min(len(c) for c in curves))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["rollout", "memory", "learn"])
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default 2; 1 for learn, whose tiny matmuls only lose to thread hand-offs)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--preset", default="0.5B")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--naive-batches", default="1,2")
    ap.add_argument("--target-repeats", type=int, default=1,
                    help="runs of ours at --batch (peak memory does not vary between runs; each takes minutes)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--toy-queries", type=int, default=16)
    ap.add_argument("--toy-new", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--steps-per-episode", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=0.0)
    args = ap.parse_args()
    if args.threads is None:
        args.threads = 1 if args.what == "learn" else 2
    {"rollout": bench_rollout, "memory": bench_memory, "learn": bench_learn}[args.what](args)


if __name__ == "__main__":
    main()
