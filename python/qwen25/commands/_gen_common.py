"""Arguments and helpers shared by ``qwen25 generate`` and ``qwen25 chat``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError


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


def check_device(device: str | None) -> None:
    """Raise :class:`Qwen25ValueError` (naming ``--device``) for a device this machine does not
    have: a malformed name, CUDA without a CUDA device, or ``cuda:N`` past the last one."""
    if device is None or device == "cpu":
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise Qwen25ValueError(f"--device {device}: not a device name (cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise Qwen25ValueError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= n:
            raise Qwen25ValueError(f"--device {device}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise Qwen25ValueError(f"--device {device}: MPS is not available on this machine (use --device cpu)")


def utf8_text(data: bytes | str, source: str) -> str:
    """``data`` as text, or :class:`FormatError` naming ``source`` and the first byte that is not
    UTF-8. A str is a command-line argument: Python passes undecodable bytes on as surrogate
    escapes (PEP 383), which are turned back into the bytes to find the offset."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{source}: not valid UTF-8 (byte {e.start}: 0x{raw[e.start]:02x})", source) from None
    except UnicodeEncodeError:  # pragma: no cover - a surrogate that is not an escape
        raise FormatError(f"{source}: not valid Unicode (a lone surrogate)", source) from None


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    from ..tokenizer import Tokenizer
    from ..model import Qwen2ForCausalLM

    if not os.path.isdir(args.model):
        raise Qwen25FileNotFoundError(f"--model {args.model}: no such folder")
    check_device(args.device)
    if args.system is not None:
        args.system = utf8_text(args.system, "the --system argument")
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
