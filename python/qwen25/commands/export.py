"""``qwen25 export CHECKPOINT OUT``: a training checkpoint (``OUT/checkpoints/step-N``) as an HF
folder (config.json + safetensors) that transformers and ``Qwen2ForCausalLM.from_pretrained`` load."""

from __future__ import annotations

import argparse

HELP = "Export a training checkpoint (checkpoints/step-N) as a Hugging Face model folder."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a checkpoint folder written by qwen25 pretrain (…/checkpoints/step-N)")
    p.add_argument("out", help="the HF folder to write (must not exist or be empty)")
    p.add_argument("--dtype", default=None, help="weights dtype, e.g. bfloat16 (default: float32, as trained)")


def run(args: argparse.Namespace) -> int:
    from ..train import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out, dtype=args.dtype)
    print(f"wrote {out}")
    return 0
