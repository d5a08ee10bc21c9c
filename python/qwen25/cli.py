"""The ``qwen25`` command line. Each subcommand lives in ``qwen25/commands/<name>.py`` and
defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when
used, so ``qwen25 --help`` stays fast. Add a subcommand with one line in ``SUBCOMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from .errors import Qwen25Error

SUBCOMMANDS: dict[str, str] = {
    "tokenize": "Tokenize a JSONL corpus into a flat uint32 token file plus an offsets index.",
    "demo": "Run the main job on the embedded defaults.",
    "generate": "Generate a reply to one prompt with a Qwen2.5 checkpoint (chat template, streamed).",
    "chat": "Chat with a Qwen2.5 checkpoint in the terminal (chat template, streamed replies).",
    "decontaminate": "Remove training records contaminated by benchmarks (Qwen n-gram + LCS rule).",
    "data": "Pre-training data: `data run` (filter, dedup, decontaminate, classify, score, mix, pack) and the stages alone.",
    "pretrain": "Pre-train a model with a named recipe (checkpoints, exact resume, FSDP2 under torchrun).",
    "export": "Export a training checkpoint (checkpoints/step-N) as a Hugging Face model folder.",
    "sft": "Supervised fine-tuning on chat data (assistant-only loss, BFD packing, the report's recipe).",
    "scaling": "Scaling laws: fit optimal lr/batch and L(N, D) to a sweep, predict, compare MoE, run a debug sweep.",
    "rm": "Train a reward model on preference pairs (saved as transformers' Qwen2ForSequenceClassification).",
    "dpo": "DPO on preference pairs (the report's recipe: 1 epoch, lr 7e-7, the Online Merging Optimizer).",
    "grpo": "Online RL with GRPO on prompts (8 samples per query, variance-ordered queries, verifiable rewards).",
    "eval": "Evaluate a checkpoint (multiple choice, GSM8K, HumanEval pass@k, IFEval subset, perplexity, passkey).",
}


def _module(name: str) -> Any:
    return importlib.import_module(f"qwen25.commands.{name.replace('-', '_')}")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen25", description="Toolkit for Qwen2.5-class language models.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if wanted == name:  # only import the module that runs
            _module(name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_module(args.command).run(args) or 0)
    except (Qwen25Error, OSError) as e:
        print(f"qwen25 {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"qwen25 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
