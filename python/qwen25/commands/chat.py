"""``qwen25 chat``: an interactive multi-turn chat (``/reset`` clears the history, ``/exit`` or
end of input quits)."""

from __future__ import annotations

import argparse
import sys

from ._gen_common import add_model_arguments, load, respond

HELP = "Chat with a Qwen2.5 checkpoint in the terminal (chat template, streamed replies)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)


def run(args: argparse.Namespace) -> int:
    model, tok = load(args)
    system = [{"role": "system", "content": args.system}] if args.system else []
    messages = list(system)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            sys.stdout.write(">>> ")
            sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if text.strip() == "/exit":
            break
        if text.strip() == "/reset":
            messages = list(system)
            continue
        if not text.strip():
            continue
        messages.append({"role": "user", "content": text})
        reply = respond(model, tok, messages, args)
        messages.append({"role": "assistant", "content": reply})
    return 0
