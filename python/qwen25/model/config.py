"""Model configuration: a frozen keyword-only dataclass, named presets, and the HF ``config.json``
reader/writer.

The presets are data. Each names the Hugging Face ``config.json`` it was taken from; every preset
uses rope_theta 1e6, SiLU and q/k/v biases, as in the released Qwen2.5 / Qwen1.5-MoE / Qwen2-MoE
files.

``config.json`` is read in both spellings transformers has used:

* released checkpoints: top-level ``rope_theta``, ``rope_scaling`` with ``type`` or ``rope_type``,
  ``torch_dtype``;
* transformers v5: ``rope_parameters`` (holding ``rope_theta`` and the scaling keys) and ``dtype``.

Every field comes from the file; a field the file lacks takes transformers' default for it (as
transformers itself does), and keys we do not model are kept in ``extra`` and written back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

__all__ = ["Qwen25Config", "RopeScaling", "DualChunkAttention", "PRESETS"]


@dataclass(frozen=True, kw_only=True)
class RopeScaling:
    """RoPE scaling. Only ``"yarn"`` is implemented (the one the Qwen2.5 model cards use)."""

    rope_type: str = "yarn"
    factor: float = 4.0
    original_max_position_embeddings: int = 32768
    beta_fast: float | None = None  # None -> 32, as in transformers
    beta_slow: float | None = None  # None -> 1
    attention_factor: float | None = None  # None -> 0.1 ln(factor) + 1
    truncate: bool = True
    mscale: float | None = None
    mscale_all_dim: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "rope_type": self.rope_type,
            "factor": self.factor,
            "original_max_position_embeddings": self.original_max_position_embeddings,
        }
        for k in ("beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if not self.truncate:
            d["truncate"] = False
        return d


_ROPE_SCALING_KEYS = {f.name for f in dataclasses.fields(RopeScaling)}


@dataclass(frozen=True, kw_only=True)
class DualChunkAttention:
    """Dual Chunk Attention at inference (``dual_chunk_attention_config`` in ``config.json``; the
    Qwen2.5-7B/14B-Instruct-1M files use chunk_size 262144, local_size 8192,
    original_max_position_embeddings 262144). Chunks hold ``chunk_size - local_size`` positions;
    ``original_max_position_embeddings > 0`` turns on the logit scale
    ``max(1, 0.1 ln(L / original_max_position_embeddings) + 1)``. Keys of the object we do not
    model (vLLM's sparse-attention settings) are kept in ``extra`` and written back."""

    chunk_size: int
    local_size: int
    original_max_position_embeddings: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("chunk_size", "local_size", "original_max_position_embeddings"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise Qwen25ValueError(f"dual_chunk_attention_config: {name} must be an int, got {v!r}")
        if not 0 <= self.local_size < self.chunk_size:
            raise Qwen25ValueError(f"dual_chunk_attention_config: need 0 <= local_size < chunk_size, got local_size "
                                   f"{self.local_size}, chunk_size {self.chunk_size}")
        if self.original_max_position_embeddings < 0:
            raise Qwen25ValueError("dual_chunk_attention_config: original_max_position_embeddings must be >= 0, "
                                   f"got {self.original_max_position_embeddings}")

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.extra)
        d.update(chunk_size=self.chunk_size, local_size=self.local_size,
                 original_max_position_embeddings=self.original_max_position_embeddings)
        return d

    @classmethod
    def from_dict(cls, d: Any, path: str = "config.json") -> DualChunkAttention:
        if not isinstance(d, dict):
            raise FormatError(f"{path}: dual_chunk_attention_config must be an object or null", path)
        d = dict(d)
        missing = [k for k in ("chunk_size", "local_size") if k not in d]
        if missing:
            raise FormatError(f"{path}: dual_chunk_attention_config lacks {missing}", path)
        try:
            return cls(chunk_size=d.pop("chunk_size"), local_size=d.pop("local_size"),
                       original_max_position_embeddings=d.pop("original_max_position_embeddings", 0), extra=d)
        except Qwen25ValueError as e:
            raise FormatError(f"{path}: {e}", path) from None


def _rope_scaling_from_dict(d: dict[str, Any], path: str) -> RopeScaling | None:
    d = dict(d)
    kind = d.pop("rope_type", None) or d.pop("type", None) or "default"
    d.pop("type", None)
    d.pop("rope_theta", None)
    if kind == "default":
        return None
    if kind != "yarn":
        raise FormatError(f"{path}: rope scaling type {kind!r} is not supported (only 'yarn')", path)
    unknown = sorted(set(d) - _ROPE_SCALING_KEYS)
    if unknown:
        raise FormatError(f"{path}: unknown rope scaling keys {unknown}", path)
    if "factor" not in d or "original_max_position_embeddings" not in d:
        raise FormatError(f"{path}: yarn rope scaling needs 'factor' and 'original_max_position_embeddings'", path)
    d["factor"] = float(d["factor"])
    d["original_max_position_embeddings"] = int(d["original_max_position_embeddings"])
    return RopeScaling(rope_type="yarn", **d)


@dataclass(frozen=True, kw_only=True)
class Qwen25Config:
    """The shape and numerics of a Qwen2 / Qwen2-MoE decoder. ``num_experts == 0`` is dense."""

    vocab_size: int = 151936
    hidden_size: int = 896
    intermediate_size: int = 4864
    num_hidden_layers: int = 24
    num_attention_heads: int = 14
    num_key_value_heads: int = 2
    head_dim: int | None = None  # None -> hidden_size // num_attention_heads
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    rope_scaling: RopeScaling | None = None
    tie_word_embeddings: bool = True
    qkv_bias: bool = True
    attention_dropout: float = 0.0
    use_sliding_window: bool = False
    sliding_window: int | None = None
    max_window_layers: int = 28
    initializer_range: float = 0.02
    use_cache: bool = True
    bos_token_id: int | None = 151643
    eos_token_id: int | tuple[int, ...] | None = 151645
    pad_token_id: int | None = None
    torch_dtype: str | None = "bfloat16"
    # Mixture of experts (Qwen2MoeConfig); num_experts == 0 means a dense model.
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    norm_topk_prob: bool = False
    decoder_sparse_step: int = 1
    mlp_only_layers: tuple[int, ...] = ()
    router_aux_loss_coef: float = 0.001
    output_router_logits: bool = False
    # Dual Chunk Attention at inference (None: standard causal attention); see with_dca().
    dual_chunk_attention_config: DualChunkAttention | None = None
    # keys of config.json we do not model, kept verbatim for the round trip
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        def bad(msg: str) -> Qwen25ValueError:
            return Qwen25ValueError(f"Qwen25Config: {msg}")

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "max_position_embeddings"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise bad(f"{name} must be a positive int, got {v!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise bad(f"num_attention_heads ({self.num_attention_heads}) is not a multiple of "
                      f"num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise bad(f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                      f"({self.num_attention_heads}); give head_dim")
        if self.head_dim_ % 2:
            raise bad(f"head_dim must be even for RoPE, got {self.head_dim_}")
        if self.hidden_act != "silu":
            raise bad(f"hidden_act {self.hidden_act!r} is not supported (only 'silu')")
        if self.num_experts < 0:
            raise bad(f"num_experts must be >= 0, got {self.num_experts}")
        if self.num_experts:
            if not 0 < self.num_experts_per_tok <= self.num_experts:
                raise bad(f"num_experts_per_tok must be in 1..{self.num_experts}, got {self.num_experts_per_tok}")
            if self.moe_intermediate_size <= 0:
                raise bad("moe_intermediate_size must be positive for an MoE model")
            if self.decoder_sparse_step <= 0:
                raise bad("decoder_sparse_step must be positive")
        if self.rms_norm_eps <= 0:
            raise bad(f"rms_norm_eps must be positive, got {self.rms_norm_eps}")
        if self.rope_theta <= 0:
            raise bad(f"rope_theta must be positive, got {self.rope_theta}")
        if isinstance(self.eos_token_id, list):
            object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))
        if isinstance(self.mlp_only_layers, list):
            object.__setattr__(self, "mlp_only_layers", tuple(self.mlp_only_layers))
        if isinstance(self.dual_chunk_attention_config, dict):
            object.__setattr__(self, "dual_chunk_attention_config",
                               DualChunkAttention.from_dict(self.dual_chunk_attention_config))

    # ----------------------------------------------------------------------------- derived values
    @property
    def head_dim_(self) -> int:
        """The head dimension actually used."""
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def model_type(self) -> str:
        return "qwen2_moe" if self.is_moe else "qwen2"

    def is_moe_layer(self, layer_idx: int) -> bool:
        """transformers' rule: sparse unless listed in mlp_only_layers, every decoder_sparse_step-th layer."""
        return (
            self.num_experts > 0
            and layer_idx not in self.mlp_only_layers
            and (layer_idx + 1) % self.decoder_sparse_step == 0
        )

    @property
    def max_positions(self) -> int:
        """The longest sequence the positions support: max_position_embeddings, or
        factor x original_max_position_embeddings with YaRN, whichever is larger."""
        if self.rope_scaling is None:
            return self.max_position_embeddings
        s = self.rope_scaling
        return max(self.max_position_embeddings, int(s.factor * s.original_max_position_embeddings))

    @property
    def trained_length(self) -> int:
        """The length the weights were trained on: YaRN's original_max_position_embeddings when
        rope scaling is set, else max_position_embeddings."""
        if self.rope_scaling is not None:
            return self.rope_scaling.original_max_position_embeddings
        return self.max_position_embeddings

    def with_dca(self, chunk_size: int | None = None, local_size: int | None = None,
                 original_max_position_embeddings: int | None = None) -> Qwen25Config:
        """A copy with Dual Chunk Attention enabled. Defaults: chunk_size = the trained length
        (:attr:`trained_length`), local_size = chunk_size // 32 (8192 of 262144, as in the 1M
        models), original_max_position_embeddings = chunk_size (the logit scale grows past it).
        Pass ``original_max_position_embeddings=0`` to switch the logit scale off."""
        cs = self.trained_length if chunk_size is None else chunk_size
        ls = cs // 32 if local_size is None else local_size
        om = cs if original_max_position_embeddings is None else original_max_position_embeddings
        return self.replace(dual_chunk_attention_config=DualChunkAttention(
            chunk_size=cs, local_size=ls, original_max_position_embeddings=om))

    def kv_cache_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """Bytes of KV cache one token takes over all layers (keys and values)."""
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim_ * dtype_bytes

    def eos_ids(self) -> tuple[int, ...]:
        if self.eos_token_id is None:
            return ()
        if isinstance(self.eos_token_id, int):
            return (self.eos_token_id,)
        return tuple(self.eos_token_id)

    def replace(self, **changes: Any) -> Qwen25Config:
        """A copy with some fields changed (e.g. ``rope_theta`` for a run with a larger RoPE base)."""
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------------------- sizes and cost
    def _layer_params(self, layer_idx: int, *, active: bool) -> int:
        h, hd = self.hidden_size, self.head_dim_
        q, kv = self.num_attention_heads * hd, self.num_key_value_heads * hd
        attn = h * q + 2 * h * kv + q * h + (q + 2 * kv if self.qkv_bias else 0)
        norms = 2 * h
        if self.is_moe_layer(layer_idx):
            e = self.num_experts_per_tok if active else self.num_experts
            mlp = h * self.num_experts + e * 3 * h * self.moe_intermediate_size
            if self.shared_expert_intermediate_size:
                mlp += 3 * h * self.shared_expert_intermediate_size + h
        else:
            mlp = 3 * h * self.intermediate_size
        return attn + norms + mlp

    def num_parameters(self, *, active: bool = False, embeddings: bool = True) -> int:
        """The number of parameters. ``active=True`` counts only the experts one token uses (MoE);
        ``embeddings=False`` leaves out the input embedding and an untied lm_head."""
        n = sum(self._layer_params(i, active=active) for i in range(self.num_hidden_layers))
        n += self.hidden_size  # final norm
        if embeddings:
            n += self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return n

    def flops_per_token(self, seq_len: int | None = None, *, training: bool = False) -> int:
        """Matmul FLOPs per token of a forward pass (x3 with ``training=True``: forward + backward).

        2 FLOPs per multiply-add of every weight a token passes through (active experts only, the
        lm_head included, the embedding lookup excluded), plus attention scores and the weighted
        sum: 4 * layers * seq_len * heads * head_dim, the PaLM/Chinchilla convention (no causal
        halving). ``seq_len`` defaults to max_position_embeddings."""
        t = self.max_position_embeddings if seq_len is None else seq_len
        matmul = self.num_parameters(active=True, embeddings=False) - self._norm_and_bias_params()
        matmul += self.vocab_size * self.hidden_size  # lm_head (tied or not, it is a matmul)
        fwd = 2 * matmul + 4 * self.num_hidden_layers * t * self.num_attention_heads * self.head_dim_
        return 3 * fwd if training else fwd

    def _norm_and_bias_params(self) -> int:
        h, hd = self.hidden_size, self.head_dim_
        per_layer = 2 * h + ((self.num_attention_heads + 2 * self.num_key_value_heads) * hd if self.qkv_bias else 0)
        return self.num_hidden_layers * per_layer + h

    # ------------------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Qwen25Config:
        """A named preset (see ``PRESETS``), with optional field overrides. Unknown names raise."""
        if name not in PRESETS:
            raise Qwen25ValueError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides) if overrides else PRESETS[name]

    # ----------------------------------------------------------------------------- config.json
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], path: str = "config.json") -> Qwen25Config:
        """Read a transformers ``config.json`` dict (released or v5 spelling)."""
        if not isinstance(d, dict):
            raise FormatError(f"{path}: expected a JSON object", path)
        d = dict(d)
        model_type = d.pop("model_type", "qwen2")
        if model_type not in ("qwen2", "qwen2_moe"):
            raise FormatError(f"{path}: model_type {model_type!r} is not qwen2 or qwen2_moe", path)
        # RoPE: v5 keeps rope_theta inside rope_parameters; released files have it top-level.
        rope_params = d.pop("rope_parameters", None)
        rope_scaling_d = d.pop("rope_scaling", None)
        rope_theta = d.pop("rope_theta", None)
        if rope_params is not None:
            if not isinstance(rope_params, dict):
                raise FormatError(f"{path}: rope_parameters must be an object", path)
            if "rope_theta" in rope_params:
                rope_theta = rope_params["rope_theta"]
            if rope_scaling_d is None:
                rope_scaling_d = rope_params
        scaling = None
        if rope_scaling_d is not None:
            if not isinstance(rope_scaling_d, dict):
                raise FormatError(f"{path}: rope_scaling must be an object or null", path)
            scaling = _rope_scaling_from_dict(rope_scaling_d, path)
        dca_d = d.pop("dual_chunk_attention_config", None)
        dca = None if dca_d is None else DualChunkAttention.from_dict(dca_d, path)
        dtype = d.pop("dtype", None)
        torch_dtype = d.pop("torch_dtype", None)
        dtype = dtype if dtype is not None else torch_dtype
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "rope_scaling", "rope_theta", "torch_dtype",
                                                             "dual_chunk_attention_config"}
        # transformers' defaults for keys the file may lack (Qwen2Config / Qwen2MoeConfig).
        hf_defaults: dict[str, Any] = dict(
            vocab_size=151936, hidden_size=4096 if model_type == "qwen2" else 2048,
            intermediate_size=22016 if model_type == "qwen2" else 5632,
            num_hidden_layers=32 if model_type == "qwen2" else 24,
            num_attention_heads=32 if model_type == "qwen2" else 16, num_key_value_heads=None,
            head_dim=None, hidden_act="silu", max_position_embeddings=32768, rms_norm_eps=1e-6,
            tie_word_embeddings=False, qkv_bias=True, attention_dropout=0.0, use_sliding_window=False,
            sliding_window=None, max_window_layers=28, initializer_range=0.02, use_cache=True,
            bos_token_id=None, eos_token_id=None, pad_token_id=None,
            num_experts=0, num_experts_per_tok=0, moe_intermediate_size=0, shared_expert_intermediate_size=0,
            norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=(), router_aux_loss_coef=0.001,
            output_router_logits=False,
        )
        if model_type == "qwen2_moe":
            hf_defaults.update(num_experts=60, num_experts_per_tok=4, moe_intermediate_size=1408,
                               shared_expert_intermediate_size=5632)
        kwargs: dict[str, Any] = {}
        for k in names:
            kwargs[k] = d.pop(k) if k in d else hf_defaults[k]
        if kwargs["num_key_value_heads"] is None:
            kwargs["num_key_value_heads"] = kwargs["num_attention_heads"]
        if kwargs["mlp_only_layers"] is None:
            kwargs["mlp_only_layers"] = ()
        if model_type == "qwen2":
            kwargs["num_experts"] = 0
        d.pop("layer_types", None)  # derived from use_sliding_window / max_window_layers
        try:
            return cls(
                rope_theta=float(rope_theta) if rope_theta is not None else 10000.0,
                rope_scaling=scaling, torch_dtype=dtype, dual_chunk_attention_config=dca, extra=d, **kwargs,
            )
        except (TypeError, Qwen25ValueError) as e:
            raise FormatError(f"{path}: {e}", path) from None

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> Qwen25Config:
        """Read ``DIR/config.json`` (or a path to the json file itself)."""
        p = Path(directory)
        if p.is_dir():
            p = p / "config.json"
        if not p.is_file():
            raise Qwen25FileNotFoundError(f"no config.json at {p}")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise FormatError(f"{p}:{e.lineno}: invalid JSON: {e.msg}", str(p), e.lineno) from None
        return cls.from_hf_dict(d, str(p))

    def to_hf_dict(self) -> dict[str, Any]:
        """The ``config.json`` dict. Written in the released spelling (``rope_theta``,
        ``rope_scaling``, ``torch_dtype``), which every transformers version reads."""
        d: dict[str, Any] = dict(self.extra)
        d["architectures"] = ["Qwen2MoeForCausalLM" if self.is_moe else "Qwen2ForCausalLM"]
        d["model_type"] = self.model_type
        skip = {"extra", "rope_scaling", "torch_dtype", "head_dim", "dual_chunk_attention_config"}
        if not self.is_moe:
            skip |= {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
                     "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers", "router_aux_loss_coef",
                     "output_router_logits", "qkv_bias"}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        if self.head_dim is not None:
            d["head_dim"] = self.head_dim
        d["rope_scaling"] = self.rope_scaling.to_dict() if self.rope_scaling else None
        if self.rope_scaling is not None:
            d["rope_scaling"]["type"] = self.rope_scaling.rope_type
        d["torch_dtype"] = self.torch_dtype
        if self.dual_chunk_attention_config is not None:
            d["dual_chunk_attention_config"] = self.dual_chunk_attention_config.to_dict()
        return d

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        p = Path(directory)
        p.mkdir(parents=True, exist_ok=True)
        from ..data.records import write_json

        write_json(p / "config.json", self.to_hf_dict(), indent=2, sort_keys=True)

    def describe(self) -> str:
        n = self.num_parameters()
        act = self.num_parameters(active=True)
        s = f"{n / 1e9:.2f}B params"
        if self.is_moe:
            s += f" ({act / 1e9:.2f}B active)"
        return s + f", {self.flops_per_token(4096) / 1e9:.2f} GFLOPs/token at 4096"


def _dense(layers: int, hidden: int, inter: int, heads: int, kv: int, tied: bool, vocab: int, eps: float,
           max_window_layers: int) -> Qwen25Config:
    return Qwen25Config(
        num_hidden_layers=layers, hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
        num_key_value_heads=kv, tie_word_embeddings=tied, vocab_size=vocab, rms_norm_eps=eps,
        rope_theta=1_000_000.0, max_position_embeddings=32768, sliding_window=32768,
        max_window_layers=max_window_layers,
    )


# Named presets. Source: the config.json of each Hugging Face repository named in the comment
# (the Instruct variants: max_position_embeddings 32768, eos <|im_end|> 151645, bos 151643).
PRESETS: dict[str, Qwen25Config] = {
    "0.5B": _dense(24, 896, 4864, 14, 2, True, 151936, 1e-6, 21),  # Qwen/Qwen2.5-0.5B-Instruct
    "1.5B": _dense(28, 1536, 8960, 12, 2, True, 151936, 1e-6, 21),  # Qwen/Qwen2.5-1.5B-Instruct
    "3B": _dense(36, 2048, 11008, 16, 2, True, 151936, 1e-6, 70),  # Qwen/Qwen2.5-3B-Instruct
    "7B": _dense(28, 3584, 18944, 28, 4, False, 152064, 1e-6, 28),  # Qwen/Qwen2.5-7B-Instruct
    "14B": _dense(48, 5120, 13824, 40, 8, False, 152064, 1e-5, 70),  # Qwen/Qwen2.5-14B-Instruct
    "32B": _dense(64, 5120, 27648, 40, 8, False, 152064, 1e-5, 70),  # Qwen/Qwen2.5-32B-Instruct
    "72B": _dense(80, 8192, 29568, 64, 8, False, 152064, 1e-6, 70),  # Qwen/Qwen2.5-72B-Instruct
    # Qwen/Qwen1.5-MoE-A2.7B: 60 fine-grained experts, top-4, one shared expert of 4x the size
    "moe-a2.7b": Qwen25Config(
        num_hidden_layers=24, hidden_size=2048, intermediate_size=5632, num_attention_heads=16,
        num_key_value_heads=16, tie_word_embeddings=False, vocab_size=151936, rms_norm_eps=1e-6,
        rope_theta=1_000_000.0, max_position_embeddings=8192, num_experts=60, num_experts_per_tok=4,
        moe_intermediate_size=1408, shared_expert_intermediate_size=5632, norm_topk_prob=False,
        decoder_sparse_step=1, router_aux_loss_coef=0.001, sliding_window=32768, max_window_layers=21,
    ),
    # Qwen/Qwen2-57B-A14B: 64 experts, top-8, shared expert 20480
    "moe-57b-a14b": Qwen25Config(
        num_hidden_layers=28, hidden_size=3584, intermediate_size=18944, num_attention_heads=28,
        num_key_value_heads=4, tie_word_embeddings=False, vocab_size=151936, rms_norm_eps=1e-6,
        rope_theta=1_000_000.0, max_position_embeddings=32768, num_experts=64, num_experts_per_tok=8,
        moe_intermediate_size=2560, shared_expert_intermediate_size=20480, norm_topk_prob=False,
        decoder_sparse_step=1, router_aux_loss_coef=0.001, sliding_window=65536, max_window_layers=28,
    ),
    # Tiny shapes for tests and smoke runs; the real vocabulary so the tokenizer works with them.
    "debug": Qwen25Config(
        num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
        tie_word_embeddings=True, vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
        max_position_embeddings=4096, torch_dtype="float32",
    ),
    "debug-moe": Qwen25Config(
        num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
        tie_word_embeddings=False, vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
        max_position_embeddings=4096, torch_dtype="float32", num_experts=8, num_experts_per_tok=2,
        moe_intermediate_size=32, shared_expert_intermediate_size=64,
    ),
}
