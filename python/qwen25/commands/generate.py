"""``qwen25 generate``: one chat-templated completion, streamed to stdout."""

from __future__ import annotations

import argparse
import sys

from ..errors import Qwen25ValueError
from ._gen_common import add_model_arguments, load, respond

HELP = "Generate a reply to one prompt with a Qwen2.5 checkpoint (chat template, streamed)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", default=None, help="the user message (default: read stdin)")
    add_model_arguments(p)


def run(args: argparse.Namespace) -> int:
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if not prompt.strip():
        raise Qwen25ValueError("empty prompt")
    model, tok = load(args)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": prompt}]
    respond(model, tok, messages, args)
    return 0
