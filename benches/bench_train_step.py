"""Training-step throughput and MFU of the 0.5B and 1.5B presets in bf16, with and without the
CUDA kernels (``qwen25.kernels``: RMSNorm, RoPE, SwiGLU and the fused cross-entropy), on one GPU.

    python benches/bench_train_step.py [--presets 0.5B 1.5B] [--batch 2] [--seq 4096] [--steps 10]

Random weights, random tokens, AdamW; each configuration runs ``--warmup`` steps (the kernels
compile on first use) and then ``--steps`` timed steps (forward + backward + optimizer), reporting
the median step time, tokens/s, MFU = tokens/s x flops_per_token(seq, training=True) / peak and
the peak memory. Peak: H200 bf16 dense, 989 TFLOP/s (``--peak-tflops`` for other GPUs). The two
modes run the same model in the same process, switched by ``QWEN25_KERNELS``. Without a CUDA GPU it
prints why and exits 0 (so it can sit in scripts run anywhere).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _build(preset: str, seed: int):  # type: ignore[no-untyped-def]
    import torch

    from qwen25.model import Qwen2ForCausalLM, Qwen25Config

    cfg = Qwen25Config.from_preset(preset)
    torch.manual_seed(seed)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # initialised on the GPU (same scheme as from_config, faster than a CPU init)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, cfg.initializer_range)
    return cfg, model.to(torch.bfloat16).train()


def run_one(preset: str, kernels: bool, a: argparse.Namespace) -> dict[str, float] | str:
    import torch

    os.environ["QWEN25_KERNELS"] = "1" if kernels else "0"
    import qwen25.kernels as K

    if kernels and not K.available():
        return f"kernels unavailable: {K.unavailable_reason()}"
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    try:
        cfg, model = _build(preset, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
        g = torch.Generator(device="cuda").manual_seed(0)
        ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device="cuda", generator=g)
        times = []
        for i in range(a.warmup + a.steps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(ids, labels=ids, fused_loss=kernels, return_logits=not kernels)
            assert out.loss is not None
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        loss = float(out.loss)
    except torch.OutOfMemoryError:
        return "out of memory"
    finally:
        model = opt = None  # noqa: F841
        torch.cuda.empty_cache()
    dt = statistics.median(times)
    tok_s = a.batch * a.seq / dt
    mfu = tok_s * cfg.flops_per_token(a.seq, training=True) / (a.peak_tflops * 1e12)
    return dict(step_s=dt, tok_s=tok_s, mfu=mfu, peak_gib=torch.cuda.max_memory_allocated() / 2**30, loss=loss)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=["0.5B", "1.5B"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H200: 989)")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("bench_train_step: torch is not installed; skipped")
        return 0
    if not torch.cuda.is_available():
        print("bench_train_step: no CUDA GPU; skipped")
        return 0
    print(f"training step, bf16, AdamW, {torch.cuda.get_device_name()}, batch {a.batch} x seq {a.seq}, "
          f"median of {a.steps} steps after {a.warmup} warm-up; MFU against {a.peak_tflops:g} TFLOP/s")
    print("| preset | kernels | step (ms) | tokens/s | MFU | peak memory (GiB) | loss |")
    print("|---|---|---|---|---|---|---|")
    for preset in a.presets:
        base = None
        for kernels in (False, True):
            r = run_one(preset, kernels, a)
            mode = "ours" if kernels else "eager"
            if isinstance(r, str):
                print(f"| {preset} | {mode} | {r} | | | | |", flush=True)
                continue
            ratio = "" if base is None else f" ({r['tok_s'] / base:.2f}x)"
            base = base or r["tok_s"]
            print(f"| {preset} | {mode} | {r['step_s'] * 1e3:.1f} | {r['tok_s']:,.0f}{ratio} | {r['mfu']:.1%} | "
                  f"{r['peak_gib']:.1f} | {r['loss']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
