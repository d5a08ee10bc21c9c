"""DPO training throughput against TRL's DPOTrainer, and the Online Merging Optimizer's step time
against torch.optim.AdamW.

    python benches/bench_dpo.py dpo --runs 5 --threads 2 --steps 4
    python benches/bench_dpo.py omo --runs 5 --threads 2 --shape 0.5B

dpo: the debug model shape (Qwen2.5's vocabulary), the same random weights on both sides, the same
pairs as token ids (TRL tokenizes the text with its chat template; we train on exactly its ids),
8 pairs per step, reference log-probs precomputed on both sides (not timed), fp32, the same torch
thread count. Timed: the training loop only. Tokens: real tokens of the chosen and rejected
sequences. The first step's losses are asserted equal (policy = reference: ln 2 on both sides).

omo: one optimizer step over parameters of a model shape (random fp32 tensors, random gradients),
OnDAREAdamW (reserve_p 0.5, alpha 1e-4, masks drawn on the fly) vs torch.optim.AdamW (its default
CPU path), median of interleaved runs after a warm-up step each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        a, b = 3 * i + 1, 7 * i % 50
        out.append({"prompt": [{"role": "user", "content": f"Please compute {a} plus {b} and explain the steps."}],
                    "chosen": [{"role": "assistant", "content": f"We add {a} and {b}: the sum is {a + b}."}],
                    "rejected": [{"role": "assistant", "content": f"The answer is {a * b}, I guess, since {a} times {b}."}]})
    return out


def bench_dpo(args: argparse.Namespace) -> None:
    import datasets
    import transformers
    import trl

    from qwen25.model import Qwen2ForCausalLM
    from qwen25.rl.dpo import DPOTrainer, recipe
    from qwen25.train import override
    from tests.parity.test_rl_trl import hf_tokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    pairs_per_step = 8
    n = pairs_per_step * args.steps
    tmp = Path(tempfile.mkdtemp(prefix="bench-dpo-"))
    Qwen2ForCausalLM.from_config("debug", dtype=torch.float32, seed=0).save_pretrained(tmp / "model")
    tok = hf_tokenizer()
    recs = _records(n)

    def trl_trainer() -> trl.DPOTrainer:
        model = transformers.AutoModelForCausalLM.from_pretrained(tmp / "model", dtype=torch.float32)
        cfg = trl.DPOConfig(output_dir=str(tmp / "trl"), per_device_train_batch_size=pairs_per_step, beta=0.1,
                            loss_type=["sigmoid"], report_to=[], use_cpu=True, max_length=None, bf16=False,
                            precompute_ref_log_probs=True, learning_rate=1e-3, lr_scheduler_type="constant",
                            num_train_epochs=1, logging_steps=1, save_strategy="no", dataloader_num_workers=0,
                            disable_tqdm=True, seed=0)
        return trl.DPOTrainer(model=model, args=cfg, train_dataset=datasets.Dataset.from_list(recs), processing_class=tok)

    t = trl_trainer()
    ds = t.train_dataset
    ids_path = tmp / "pairs.jsonl"
    with open(ids_path, "w", encoding="utf-8") as f:
        for e in ds:
            f.write(json.dumps({"prompt_ids": e["prompt_ids"], "chosen_ids": e["chosen_ids"],
                                "rejected_ids": e["rejected_ids"]}) + "\n")
    tokens = sum(2 * len(e["prompt_ids"]) + len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in ds)
    del t

    def ours() -> tuple[float, float]:
        cfg = override(recipe("debug"), {"init_from": str(tmp / "model"), "model": str(tmp / "model"),
                                         "stages.0.data": str(ids_path), "stages.0.steps": args.steps,
                                         "micro_batch_size": pairs_per_step, "shuffle": False,
                                         "method.optimizer": "adamw"})
        tr = DPOTrainer(cfg, out_dir=None, verbose=False, progress=False)
        tr.setup()  # model, optimizer, reference log-probs: not timed
        t0 = time.perf_counter()
        recs_ = tr.fit()
        return time.perf_counter() - t0, recs_[0]["loss"]

    def theirs() -> tuple[float, float]:
        tr = trl_trainer()  # precomputes the reference log-probs: not timed
        t0 = time.perf_counter()
        out = tr.train()
        dt = time.perf_counter() - t0
        first = next(h["loss"] for h in tr.state.log_history if "loss" in h)
        del out
        return dt, first

    rows: dict[str, list[float]] = {"qwen25": [], "trl": []}
    for _ in range(args.runs):
        for name, fn in (("qwen25", ours), ("trl", theirs)):
            dt, first = fn()
            assert abs(first - 0.693147) < 1e-3, (name, first)  # step 1: policy = reference on both sides
            rows[name].append(tokens / dt)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"DPO debug shape, {n} pairs in {args.steps} steps of {pairs_per_step}, {tokens} tokens, "
          f"{args.threads} thread(s), median of {args.runs} interleaved runs")
    for k, v in med.items():
        print(f"  {k:7s} {v:10.1f} tokens/s  (runs: {', '.join(f'{x:.0f}' for x in rows[k])})")
    print(f"  ratio qwen25 / trl: {med['qwen25'] / med['trl']:.2f}x")


def bench_omo(args: argparse.Namespace) -> None:
    from qwen25.model import Qwen25Config
    from qwen25.model.qwen2 import Qwen2ForCausalLM
    from qwen25.rl import OnDAREAdamW

    torch.set_num_threads(args.threads)
    cfg = Qwen25Config.from_preset(args.shape)
    with torch.device("meta"):
        shapes = [tuple(p.shape) for p in Qwen2ForCausalLM(cfg).parameters()]
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=g) * 0.02) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    numel = sum(p.numel() for p in params)
    base = [p.detach() for p in params]  # tau = 0 costs the same as any tau
    omo = OnDAREAdamW(params, sft_params=base, base_params=base, lr=1e-5, reserve_p=0.5, alpha=1e-4)
    adam = torch.optim.AdamW(params, lr=1e-5)
    times: dict[str, list[float]] = {"OnDAREAdamW": [], "AdamW": []}
    for opt in (omo, adam):
        opt.step()  # warm-up: state allocation
    for _ in range(args.runs):
        for name, opt in (("OnDAREAdamW", omo), ("AdamW", adam)):
            t0 = time.perf_counter()
            opt.step()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"optimizer step, {args.shape} shape ({numel / 1e6:.0f}M parameters, fp32), {args.threads} thread(s), "
          f"median of {args.runs} interleaved runs")
    for k, v in med.items():
        print(f"  {k:12s} {v * 1000:9.1f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in times[k])})")
    print(f"  ratio OnDAREAdamW / AdamW: {med['OnDAREAdamW'] / med['AdamW']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["dpo", "omo"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--shape", default="0.5B")
    args = ap.parse_args()
    (bench_dpo if args.what == "dpo" else bench_omo)(args)


if __name__ == "__main__":
    main()
