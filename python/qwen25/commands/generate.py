"""``qwen25 generate``: one chat-templated completion, streamed to stdout."""

from __future__ import annotations

import argparse
import sys

from ..errors import Qwen25Error, Qwen25ValueError
from ._gen_common import add_model_arguments, check_device, load, respond, utf8_text

HELP = "Generate a reply to one prompt with a Qwen2.5 checkpoint (chat template, streamed)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", default=None, help="the user message (default: --prompt-file, else read stdin)")
    p.add_argument("--prompt-file", metavar="FILE", default=None, help="read the user message from this UTF-8 file")
    add_model_arguments(p)


def _usage_error(message: str) -> int:
    print(f"qwen25 generate: error: {message}", file=sys.stderr)
    return 2


def _read_prompt(args: argparse.Namespace) -> str:
    """The prompt from the argument, --prompt-file or stdin; bytes that are not UTF-8 are a
    :class:`FormatError` naming the source and the byte."""
    if args.prompt is not None:
        return utf8_text(args.prompt, "the prompt argument")
    if args.prompt_file is not None:
        with open(args.prompt_file, "rb") as f:
            return utf8_text(f.read(), args.prompt_file)
    buf = getattr(sys.stdin, "buffer", None)
    return utf8_text(buf.read(), "the prompt on stdin") if buf is not None else sys.stdin.read()


def run(args: argparse.Namespace) -> int:
    if args.prompt is not None and args.prompt_file is not None:
        return _usage_error("give the prompt as an argument or as --prompt-file, not both")
    try:  # a usage error (exit 2), found before the prompt is read or the model loaded
        check_device(args.device)
    except Qwen25Error as e:
        return _usage_error(str(e))
    prompt = _read_prompt(args)
    if not prompt.strip():
        raise Qwen25ValueError("empty prompt")
    model, tok = load(args)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": prompt}]
    respond(model, tok, messages, args)
    return 0
