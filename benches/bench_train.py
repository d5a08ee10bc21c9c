"""Pre-training throughput on the CPU: ``qwen25.train.Trainer`` vs the same loop over transformers'
Qwen2ForCausalLM, and the computed memory-model table.

    python benches/bench_train.py [--shapes debug 0.5b-2l] [--runs 5] [--threads 1] [--memory-table]

Each run is a fresh process (so its peak RSS is its own): ``ours`` runs ``Trainer(config).fit()``;
``hf`` runs a plain loop over transformers' model from the same initial weights (saved once by
transformers, loaded by both), on the same rows (built by the same reader before its clock starts:
the peer is timed on compute alone), with the same loss (cross-entropy summed over the step's target
tokens, divided by their count), ``torch.optim.AdamW`` with the same decay groups and lr,
``clip_grad_norm_(1.0)``. Both use ``torch.set_num_threads(--threads)``, fp32, SDPA attention, packed
rows with position_ids. Runs alternate ours / hf; the first step of each run is warm-up and not
timed; tokens/s = tokens of the timed steps / their wall time (each side's steps timed the same
way: ours is ``Trainer.train_step``, data loading included). Also printed: the median of the
per-pair ratios, the best run of each side, and tokens per CPU-second of the process (less
sensitive to other jobs on a shared machine). The per-step losses of the two sides
are asserted equal (within 1e-4) in every run.

Shapes:

* ``debug``: the debug recipe (2 layers, hidden 64, vocab 512; 16 rows of 128 tokens per step, in
  micro-batches of 8) on its synthetic corpus;
* ``0.5b-2l``: the 0.5B preset's shape cut to 2 layers (hidden 896, full 151,936 vocabulary,
  tied), one row of 256 tokens per step, on the same corpus tokenized with the Qwen2.5 tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = {
    "debug": dict(steps=16, seq_len=128, rows=16, micro=8, model="debug", overrides={"vocab_size": 512}, qwen_tok=False),
    "0.5b-2l": dict(steps=4, seq_len=256, rows=1, micro=1, model="0.5B", overrides={"num_hidden_layers": 2},
                    qwen_tok=True),
}


def _prepare(shape: str, root: str) -> tuple[str, str]:
    """Packed data and transformers-saved initial weights for ``shape`` under ``root``."""
    import torch
    import transformers

    from qwen25.data import TokenPacker
    from qwen25.model import Qwen25Config
    from qwen25.train.debug_data import prepare_debug_data, synthetic_documents

    s = SHAPES[shape]
    if s["qwen_tok"]:
        data = os.path.join(root, "data")
        with TokenPacker(data, seq_len=s["seq_len"]) as p:  # the Qwen2.5 tokenizer
            p.add(synthetic_documents(400))
    else:
        data = prepare_debug_data(root, s["seq_len"])
    cfg = Qwen25Config.from_preset(s["model"]).replace(**s["overrides"], torch_dtype="float32")
    hf_cfg = transformers.Qwen2Config(**{k: v for k, v in cfg.to_hf_dict().items()
                                         if k not in ("architectures", "model_type")})
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(hf_cfg)
    init = os.path.join(root, "init")
    model.save_pretrained(init)
    return data, init


def _config(shape: str, data: str, init: str):  # type: ignore[no-untyped-def]
    from qwen25.train import Stage, TrainConfig

    s = SHAPES[shape]
    return TrainConfig(name=f"bench-{shape}", model=init, init_from=init,
                       stages=(Stage(name="main", data=(data,), seq_len=s["seq_len"], steps=s["steps"]),),
                       global_batch_tokens=s["rows"] * s["seq_len"], micro_batch_size=s["micro"], lr=1e-3,
                       warmup_steps=1, shuffle=False, device="cpu", precision="fp32", fused_loss=False)


def worker(side: str, shape: str, data: str, init: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from qwen25.train import Trainer

    cfg = _config(shape, data, init)
    if side == "ours":
        trainer = Trainer(cfg, verbose=False, progress=False)
        trainer.setup()
        losses, timed, cpu = [], 0.0, 0.0
        for i in range(1, cfg.total_steps() + 1):  # what fit() runs, timed here like the peer
            t0, c0 = time.perf_counter(), time.process_time()
            losses.append(trainer.train_step(i)["loss"])
            if i > 1:
                timed += time.perf_counter() - t0
                cpu += time.process_time() - c0
    else:
        import torch.nn.functional as F
        import transformers

        from qwen25.train.data import StageData
        from qwen25.train.schedule import lr_factor

        transformers.logging.set_verbosity_error()
        hf = transformers.Qwen2ForCausalLM.from_pretrained(init, dtype=torch.float32, attn_implementation="sdpa")
        hf.train()
        decay, no_decay = [], []
        for n, p in hf.named_parameters():
            (no_decay if n.endswith("norm.weight") or n.endswith(".bias") or "embed_tokens" in n else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                                betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
        stage = cfg.stages[0]
        reader = StageData(stage, 0, seed=cfg.seed, shuffle=False, vocab_size=hf.config.vocab_size)
        steps = [reader.micro_batches(reader.take_step(cfg.rows_per_step(stage)), cfg.micro_batch_size)
                 for _ in range(cfg.total_steps())]  # all rows made before the clock starts
        losses, timed, cpu = [], 0.0, 0.0
        for i, micro in enumerate(steps, start=1):
            t0, c0 = time.perf_counter(), time.process_time()
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(i, total=cfg.total_steps(), warmup=cfg.warmup_steps,
                                             min_ratio=cfg.min_lr_ratio)
            n = sum(mb.n_targets for mb in micro)
            total = 0.0
            for mb in micro:
                logits = hf(input_ids=mb.input_ids, position_ids=mb.position_ids, use_cache=False).logits
                ce = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                     mb.labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
                (ce / n).backward()
                total += float(ce.detach())
            torch.nn.utils.clip_grad_norm_(hf.parameters(), cfg.clip_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i > 1:
                timed += time.perf_counter() - t0
                cpu += time.process_time() - c0
            losses.append(total / n)
    tokens = (cfg.total_steps() - 1) * cfg.global_batch_tokens
    return {"side": side, "tokens_per_s": tokens / timed, "tokens_per_cpu_s": tokens / cpu, "losses": losses,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--runs", type=int, default=5, help="runs per side, interleaved (default 5)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads on both sides (default 1: on a shared machine, 2+ threads spin while waiting)")
    ap.add_argument("--memory-table", action="store_true", help="also print the computed memory-model table")
    ap.add_argument("--worker", nargs=5, metavar=("SIDE", "SHAPE", "DATA", "INIT", "THREADS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        side, shape, data, init, threads = a.worker
        print(json.dumps(worker(side, shape, data, init, int(threads))))
        return 0
    print(f"torch threads {a.threads}; {a.runs} interleaved runs per side; load average {os.getloadavg()[0]:.1f}")
    print("| shape | tokens/step | ours tok/s | transformers tok/s | ratio | ours peak RSS | transformers peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for shape in a.shapes:
        with tempfile.TemporaryDirectory(prefix="bench-train-") as root:
            data, init = _prepare(shape, root)
            res: dict[str, list[dict]] = {"ours": [], "hf": []}
            for _ in range(a.runs):
                for side in ("ours", "hf"):
                    out = subprocess.run([sys.executable, __file__, "--worker", side, shape, data, init, str(a.threads)],
                                         capture_output=True, text=True, check=True)
                    res[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
                for x, y in zip(res["ours"][-1]["losses"], res["hf"][-1]["losses"]):
                    assert abs(x - y) < 1e-4, (shape, res["ours"][-1]["losses"], res["hf"][-1]["losses"])
            med = {s: statistics.median(r["tokens_per_s"] for r in res[s]) for s in res}
            cpu = {s: statistics.median(r["tokens_per_cpu_s"] for r in res[s]) for s in res}
            best = {s: max(r["tokens_per_s"] for r in res[s]) for s in res}
            pair = statistics.median(o["tokens_per_s"] / h["tokens_per_s"] for o, h in zip(res["ours"], res["hf"]))
            rss = {s: statistics.median(r["peak_rss_mib"] for r in res[s]) for s in res}
            s = SHAPES[shape]
            print(f"| {shape} | {s['rows'] * s['seq_len']} | {med['ours']:.0f} | {med['hf']:.0f} | "
                  f"{med['ours'] / med['hf']:.2f}x | {rss['ours']:.0f} MiB | {rss['hf']:.0f} MiB |", flush=True)
            print(f"  median of per-pair ratios {pair:.2f}x; best runs {best['ours']:.0f} vs {best['hf']:.0f} tok/s "
                  f"({best['ours'] / best['hf']:.2f}x); per CPU-second {cpu['ours']:.0f} vs {cpu['hf']:.0f} "
                  f"({cpu['ours'] / cpu['hf']:.2f}x)", flush=True)
            print(f"  losses equal within 1e-4 in all {a.runs} run pairs; per-run tok/s ours "
                  f"{[round(r['tokens_per_s']) for r in res['ours']]}, transformers "
                  f"{[round(r['tokens_per_s']) for r in res['hf']]}", flush=True)
    if a.memory_table:
        from qwen25.train.memory import format_memory_table, memory_table

        print("\nComputed memory model (qwen25.train.memory; FSDP over 8 GPUs, bf16, AdamW, activation "
              "checkpointing, fused loss; not measured):")
        print(format_memory_table(memory_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
