"""Arguments and helpers shared by ``qwen25 generate`` and ``qwen25 chat``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import Qwen25FileNotFoundError


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="HF-layout checkpoint folder (config.json + safetensors)")
    p.add_argument("--tokenizer", metavar="DIR", default=None,
                   help="tokenizer folder (default: the model folder if it has tokenizer files, else the built-in Qwen2.5 tokenizer)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the checkpoint's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu)")
    p.add_argument("--system", default=None, help="system prompt (default: the chat template's)")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop when this text appears (repeatable)")


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    from ..tokenizer import Tokenizer
    from ..model import Qwen2ForCausalLM

    if not os.path.isdir(args.model):
        raise Qwen25FileNotFoundError(f"--model {args.model}: no such folder")
    tdir = args.tokenizer
    if tdir is None and any(os.path.isfile(os.path.join(args.model, f)) for f in ("tokenizer.json", "vocab.json")):
        tdir = args.model
    tok = Tokenizer.from_pretrained(tdir) if tdir else Tokenizer.qwen25()
    model = Qwen2ForCausalLM.from_pretrained(args.model, dtype=args.dtype, device=args.device)
    return model, tok


def stop_ids(tok: Any, model: Any) -> list[int]:
    ids = list(model.config.eos_ids())
    for name in ("<|im_end|>", "<|endoftext|>"):
        i = tok.token_to_id(name)
        if i is not None and i not in ids:
            ids.append(i)
    return ids


def respond(model: Any, tok: Any, messages: list[dict[str, str]], args: argparse.Namespace) -> str:
    """Stream the assistant's reply to stdout; return its text."""
    from ..model import stream_text

    prompt = tok.apply_chat_template(messages, add_generation_prompt=True)
    pieces = []
    for piece in stream_text(
        model, tok, prompt, max_new_tokens=args.max_new_tokens, do_sample=args.do_sample,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
        repetition_penalty=args.repetition_penalty, seed=args.seed, eos_token_id=stop_ids(tok, model),
        stop_strings=args.stop,
    ):
        sys.stdout.write(piece)
        sys.stdout.flush()
        pieces.append(piece)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(pieces)
