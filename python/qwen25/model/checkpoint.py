"""HF checkpoints: the one adapter between transformers' parameter names and ours, both ways.

On disk (transformers' layout): ``config.json`` plus ``model.safetensors``, or shards
``model-0000i-of-0000n.safetensors`` listed in ``model.safetensors.index.json``. Names are
transformers' except that our MoE experts are stacked per layer: on disk each expert has its own
``mlp.experts.{e}.{gate,up,down}_proj.weight``; in memory ``mlp.experts.{gate,up,down}_proj`` is
[E, out, in]. A tied model writes no ``lm_head.weight``.

Loading builds the model on the meta device, then reads each tensor once from the memory-mapped
files and assigns it, so the peak is one copy of the weights, not two.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from .config import Qwen25Config

if TYPE_CHECKING:
    from .qwen2 import Qwen2ForCausalLM

__all__ = ["load_pretrained", "save_pretrained", "save_safetensors", "to_hf_state_dict", "CheckpointError"]

_EXPERT = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
# transformers v5 keeps fused experts in memory; accept them on disk too.
_FUSED = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(gate_up_proj|down_proj)$")

_DTYPES = {"float32": torch.float32, "float": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "half": torch.float16, "float64": torch.float64}


class CheckpointError(FormatError):
    """A checkpoint whose tensors do not fit the model. Lists every missing, unexpected and
    mis-shaped key (``missing``, ``unexpected``, ``mismatched`` attributes too)."""

    def __init__(self, path: str, missing: list[str], unexpected: list[str],
                 mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        lines = [f"{path}: checkpoint does not match the model config"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): " + ", ".join(unexpected))
        if mismatched:
            lines.append(f"  mis-shaped keys ({len(mismatched)}): " + ", ".join(
                f"{k} (file {list(got)}, model {list(want)})" for k, got, want in mismatched))
        super().__init__("\n".join(lines), path)
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched


def resolve_dtype(dtype: torch.dtype | str | None, config: Qwen25Config) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype if dtype not in (None, "auto") else (config.torch_dtype or "float32")
    name = str(name).removeprefix("torch.")
    if name not in _DTYPES:
        raise Qwen25ValueError(f"unknown dtype {name!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def _weight_files(d: Path) -> list[Path]:
    index = d / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise FormatError(f"{index}: not a safetensors index ({e})", str(index)) from None
        files = sorted({d / f for f in weight_map.values()})
        for f in files:
            if not f.is_file():
                raise Qwen25FileNotFoundError(f"{index} lists {f.name}, which does not exist")
        return files
    single = d / "model.safetensors"
    if single.is_file():
        return [single]
    raise Qwen25FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {d}")


def _expected_shapes(config: Qwen25Config) -> dict[str, tuple[int, ...]]:
    """HF key -> shape, for this config (what the files must hold)."""
    from .qwen2 import Qwen2ForCausalLM

    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    return {k: tuple(v.shape) for k, v in to_hf_state_dict(model).items()}


def load_pretrained(cls: type[Qwen2ForCausalLM], directory: Any, *, dtype: torch.dtype | str | None = None,
                    device: torch.device | str | None = None) -> Qwen2ForCausalLM:
    from safetensors import safe_open

    from .qwen2 import RotaryEmbedding

    d = Path(directory)
    if not d.is_dir():
        raise Qwen25FileNotFoundError(f"checkpoint folder {d} does not exist")
    config = Qwen25Config.from_pretrained(d)
    target = resolve_dtype(dtype, config)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    files = _weight_files(d)

    # Headers only: which file holds which key, and its shape (no tensor data is read here).
    where: dict[str, Path] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt", device="cpu") as h:
                for k in h.keys():
                    where[k] = f
                    shapes[k] = tuple(h.get_slice(k).get_shape())
        except Exception as e:  # safetensors raises its own error types
            raise FormatError(f"{f}: not a readable safetensors file ({e})", str(f)) from None

    # Translate fused v5 expert tensors into per-expert names' expectations.
    expected = _expected_shapes(config)
    fused = {k for k in shapes if _FUSED.match(k)}
    for k in fused:
        prefix, kind = _FUSED.match(k).groups()  # type: ignore[union-attr]
        for j in range(config.num_experts):
            names = ["gate_proj", "up_proj"] if kind == "gate_up_proj" else ["down_proj"]
            for n in names:
                shapes.setdefault(f"{prefix}.{j}.{n}.weight", ())  # checked below on the fused tensor
    missing = sorted(k for k in expected if k not in shapes)
    tied_extra = {"lm_head.weight"} if config.tie_word_embeddings else set()
    unexpected = sorted(k for k in shapes if k not in expected and k not in tied_extra and k not in fused)
    mismatched = [(k, shapes[k], expected[k]) for k in sorted(expected)
                  if k in shapes and shapes[k] != () and shapes[k] != expected[k]]
    for k in sorted(fused):
        prefix, kind = _FUSED.match(k).groups()  # type: ignore[union-attr]
        e0 = expected.get(f"{prefix}.0.{'gate_proj' if kind == 'gate_up_proj' else 'down_proj'}.weight")
        if e0 is None:
            unexpected.append(k)
            continue
        want = (config.num_experts, 2 * e0[0], e0[1]) if kind == "gate_up_proj" else (config.num_experts, *e0)
        if shapes[k] != want:
            mismatched.append((k, shapes[k], want))
    if missing or unexpected or mismatched:
        raise CheckpointError(str(d), missing, unexpected, mismatched)

    with torch.device("meta"):
        model = cls(config)
    # Allocate the stacked experts, then read file by file, closing each memory map before the
    # next: each tensor is copied once into a fresh (64-byte aligned) tensor, so the peak is the
    # model plus the mapped pages of one shard, and results do not depend on where a tensor sat in
    # the file.
    ours: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        if ".mlp.experts." in k:
            ours[k] = torch.empty(v.shape, dtype=target, device=dev)
    by_file: dict[Path, list[str]] = defaultdict(list)
    for k, f in where.items():
        if k in expected or k in fused:
            by_file[f].append(k)
    inter = config.moe_intermediate_size
    progress: Any = files
    if len(files) > 1:
        from tqdm.auto import tqdm

        progress = tqdm(files, desc="loading shards", unit="shard", disable=None)  # None: off without a tty
    for f in progress:
        with safe_open(str(f), framework="pt", device="cpu") as h:
            for k in by_file[f]:
                src = h.get_tensor(k)
                m = _EXPERT.match(k)
                if m:
                    ours[f"{m.group(1)}.{m.group(3)}"][int(m.group(2))].copy_(src)
                elif k in fused:
                    prefix, kind = _FUSED.match(k).groups()  # type: ignore[union-attr]
                    if kind == "gate_up_proj":
                        ours[f"{prefix}.gate_proj"].copy_(src[:, :inter])
                        ours[f"{prefix}.up_proj"].copy_(src[:, inter:])
                    else:
                        ours[f"{prefix}.down_proj"].copy_(src)
                elif not (k == "lm_head.weight" and config.tie_word_embeddings):
                    ours[k] = torch.empty(src.shape, dtype=target, device=dev)
                    ours[k].copy_(src)
                del src
    if config.tie_word_embeddings:
        ours["lm_head.weight"] = ours["model.embed_tokens.weight"]
    model.load_state_dict(ours, strict=True, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.rotary_emb = RotaryEmbedding(config, dev)
    return model.eval()


def to_hf_state_dict(model: Qwen2ForCausalLM) -> dict[str, torch.Tensor]:
    """Our parameters under transformers' on-disk names (per-expert keys; no lm_head when tied).
    The tensors are views of the model's parameters, not copies."""
    out: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        if ".mlp.experts." in k:
            prefix, kind = k.rsplit(".", 1)
            for e in range(v.shape[0]):
                out[f"{prefix}.{e}.{kind}.weight"] = v[e]
        else:
            out[k] = v
    return out


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB)?\s*", size, re.IGNORECASE)
    if not m:
        raise Qwen25ValueError(f"bad shard size {size!r}; use bytes or e.g. '5GB'")
    unit = (m.group(2) or "B").upper()
    mult = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    return int(float(m.group(1)) * mult[unit])


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """``safetensors`` ``save_file`` (metadata format "pt", as transformers writes) to ``path``
    through ``path.tmp``, so a reader never sees half a file."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


def save_pretrained(model: Qwen2ForCausalLM, directory: Any, *, max_shard_size: int | str = "5GB",
                    dtype: torch.dtype | None = None) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    limit = _parse_size(max_shard_size)
    tensors = to_hf_state_dict(model)
    saved_dtype = dtype or next(iter(tensors.values())).dtype
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(tensors):
        n = tensors[k].numel() * saved_dtype.itemsize
        if shards[-1] and size + n > limit:
            shards.append({})
            size = 0
        shards[-1][k] = tensors[k]
        size += n
    for stale in list(d.glob("model*.safetensors")) + [d / "model.safetensors.index.json"]:
        if stale.exists():
            stale.unlink()
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        # expert slices are views of one stacked tensor: safetensors wants separate storage
        out = {k: v.detach().to(device="cpu", dtype=saved_dtype).clone() if _EXPERT.match(k)
               else v.detach().to(device="cpu", dtype=saved_dtype).contiguous() for k, v in shard.items()}
        save_safetensors(out, d / name)
        del out
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() * saved_dtype.itemsize for t in tensors.values())},
            "weight_map": {k: name for name, shard in zip(names, shards) for k in shard},
        }
        from ..data.records import write_json

        write_json(d / "model.safetensors.index.json", index, indent=2, sort_keys=True)
    dtype_name = str(saved_dtype).removeprefix("torch.")
    model.config.replace(torch_dtype=dtype_name).save_pretrained(d)
