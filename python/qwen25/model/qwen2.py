"""Qwen2 / Qwen2.5 decoder in PyTorch: dense and mixture-of-experts, one file.

It computes what transformers' ``Qwen2ForCausalLM`` and ``Qwen2MoeForCausalLM`` compute:

* pre-norm decoder layers: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``;
* RMSNorm normalising in fp32 and casting back before the weight multiply;
* grouped-query attention (KV head j serves query heads j*g .. j*g+g-1), q/k/v with bias, o_proj
  without, RoPE in the rotate-half layout with fp32 angles (optionally YaRN-scaled);
* SwiGLU MLP; tied or untied ``lm_head``;
* MoE layers: fp32 softmax router, top-k, optional renormalisation, fine-grained experts plus a
  sigmoid-gated shared expert, and the Switch load-balancing loss.

The memory-bound ops are the module-level functions ``rms_norm``, ``apply_rope`` and ``swiglu``.
For CUDA tensors they dispatch to the fused kernels of ``qwen25.kernels`` when CuPy is importable
(``QWEN25_KERNELS=0`` disables that, and so does ``torch.compile`` tracing); everywhere else they
run the eager PyTorch code below, which is the reference. The blocks look them up at call time, so
they can also be replaced by assignment. With labels on CUDA the loss is the kernels' fused
cross-entropy (``fused_loss`` chooses explicitly; on the CPU it bounds the loss's memory).

With ``config.dual_chunk_attention_config`` set, attention is Dual Chunk Attention
(``dca.dual_chunk_attention``) in prefill and in KV-cache decoding: the cache then holds un-rotated
keys, which DCA rotates at their in-chunk positions; ``prefill`` runs long prompts in pieces.
Parameter names are transformers' except the experts, which are stacked per layer
(``experts.gate_proj`` is [E, I, H]); ``checkpoint.py`` maps names both ways.

Shapes: B batch, T new tokens, S keys (past + new), H hidden, nh/nkv query/KV heads, D head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import Qwen25ValueError
from .config import DualChunkAttention, Qwen25Config
from .dca import dual_chunk_attention

__all__ = ["Qwen2ForCausalLM", "CausalLMOutput", "KVCache", "rms_norm", "apply_rope", "swiglu",
           "rope_inv_freq", "load_balancing_loss", "prefill", "kernels_for"]


# ----------------------------------------------------------------------------- memory-bound ops
def _is_cuda(t: torch.Tensor) -> bool:
    return t.is_cuda


def kernels_for(t: torch.Tensor) -> Any:
    """The ``qwen25.kernels`` module when ``t`` is a CUDA tensor and the kernels are usable (CuPy
    importable, ``QWEN25_KERNELS`` not 0, not tracing under torch.compile), else None."""
    if not _is_cuda(t) or torch.compiler.is_compiling():
        return None
    from .. import kernels

    return kernels if kernels.available() else None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm as transformers computes it: normalise in fp32, cast back, then scale."""
    k = kernels_for(x)
    if k is not None:
        out: torch.Tensor = k.rms_norm(x, weight, eps)
        return out
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate-half RoPE. q: [B, nh, T, D], k: [B, nkv, T, D], cos/sin: [B or 1, T, D].
    Use the returned tensors: on the kernel path q and k are rotated in place."""
    kern = kernels_for(q)
    if kern is not None:
        rq, rk = kern.apply_rope(q, k, cos, sin)
        return rq, rk
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SiLU(gate) * up."""
    k = kernels_for(gate)
    if k is not None:
        out: torch.Tensor = k.swiglu(gate, up)
        return out
    return F.silu(gate) * up


# ----------------------------------------------------------------------------------- RoPE
def rope_inv_freq(config: Qwen25Config, device: torch.device | str | None = None) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (fp32, [D/2]) and the cos/sin scale (YaRN's attention factor, else 1).

    YaRN follows transformers' ``_compute_yarn_parameters``: interpolate the low frequencies by
    ``factor``, keep the high ones, ramp linearly between the dimensions where a wavelength makes
    beta_fast (32) and beta_slow (1) turns over original_max_position_embeddings."""
    # Computed on the CPU (as transformers does at init) and then moved, so every device uses the
    # same frequencies to the last bit.
    base, dim = config.rope_theta, config.head_dim_
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim)
    inv_freq = 1.0 / pos_freqs
    s = config.rope_scaling
    if s is None:
        return inv_freq.to(device), 1.0
    factor = s.factor

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if s.attention_factor is not None:
        attention_factor = s.attention_factor
    elif s.mscale and s.mscale_all_dim:
        attention_factor = mscale(factor, s.mscale) / mscale(factor, s.mscale_all_dim)
    else:
        attention_factor = mscale(factor)
    beta_fast = s.beta_fast or 32
    beta_slow = s.beta_slow or 1
    orig = s.original_max_position_embeddings

    def correction_dim(num_rotations: float) -> float:
        return (dim * math.log(orig / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if s.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid a division by zero
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp  # 1 keeps the original frequency, 0 interpolates it fully
    inv_freq = (inv_freq / factor) * (1 - extrapolation) + inv_freq * extrapolation
    return inv_freq.to(device), float(attention_factor)


class RotaryEmbedding(nn.Module):
    """cos/sin of the RoPE angles. The fp32 inverse frequencies are a plain attribute, not a
    buffer, so ``model.to(bfloat16)`` cannot round them; they follow the positions' device."""

    def __init__(self, config: Qwen25Config, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.inv_freq, self.attention_scaling = rope_inv_freq(config, device)

    def forward(self, dtype: torch.dtype, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inv_freq.device != position_ids.device:
            self.inv_freq = self.inv_freq.to(position_ids.device)
        # angles in fp32: [B, T, 1] * [D/2] -> [B, T, D/2] -> [B, T, D]
        freqs = position_ids[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling
        return cos.to(dtype), sin.to(dtype)


# ------------------------------------------------------------------------------------ KV cache
class KVCache:
    """A static, pre-allocated KV cache: [layers, B, nkv, max_len, D] for keys and values.

    ``length`` is the number of positions written; ``key_mask`` ([B, max_len] bool, or None when no
    row is padded) marks which cached positions are real tokens (left padding is False);
    ``next_position`` ([B]) is each row's next RoPE position."""

    def __init__(self, config: Qwen25Config, batch_size: int, max_len: int, *, dtype: torch.dtype,
                 device: torch.device | str) -> None:
        shape = (config.num_hidden_layers, batch_size, config.num_key_value_heads, max_len, config.head_dim_)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0
        self.key_mask: torch.Tensor | None = None
        self.next_position = torch.zeros(batch_size, dtype=torch.long, device=device)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k/v ([B, nkv, T, D]) after the current length; return all keys/values so far."""
        start, end = self.length, self.length + k.shape[2]
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


# ----------------------------------------------------------------------- dual chunk attention
@dataclass
class _DCAStep:
    """What every layer's Dual Chunk Attention needs for one forward call."""

    config: DualChunkAttention
    cos: torch.Tensor  # [P, D] fp32 rotate-half tables by position (YaRN folded in)
    sin: torch.Tensor
    past: int  # cached positions before this call
    seq_len: int  # L of the logit scale (all slots, padding included)
    pads: list[int] | None  # left padding of each row, None when no row is padded

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [B, nh, T, D] un-rotated new queries; k, v [B, nkv, S, D] un-rotated keys of all slots."""
        c = self.config
        kw: dict[str, Any] = dict(chunk_size=c.chunk_size, local_size=c.local_size,
                                  original_max_position_embeddings=c.original_max_position_embeddings,
                                  cos=self.cos, sin=self.sin)
        t = q.shape[2]
        if self.pads is None:
            return dual_chunk_attention(q, k, v, positions=torch.arange(self.past, self.past + t),
                                        seq_len=self.seq_len, **kw)
        out = torch.zeros(q.shape, dtype=v.dtype, device=v.device)  # padding queries get zeros
        for i, n in enumerate(self.pads):  # each row on its own real tokens (slots n ..)
            lo = max(n - self.past, 0)  # the first new query that is a real token
            if lo >= t:
                continue
            pos = torch.arange(self.past + lo - n, self.past + t - n)
            out[i:i + 1, :, lo:] = dual_chunk_attention(q[i:i + 1, :, lo:], k[i:i + 1, :, n:], v[i:i + 1, :, n:],
                                                        positions=pos, seq_len=self.seq_len - n, **kw)
        return out


# --------------------------------------------------------------------------------- the blocks
class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, config: Qwen25Config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.nh, self.nkv, self.d = config.num_attention_heads, config.num_key_value_heads, config.head_dim_
        h = config.hidden_size
        self.q_proj = nn.Linear(h, self.nh * self.d, bias=config.qkv_bias)
        self.k_proj = nn.Linear(h, self.nkv * self.d, bias=config.qkv_bias)
        self.v_proj = nn.Linear(h, self.nkv * self.d, bias=config.qkv_bias)
        self.o_proj = nn.Linear(self.nh * self.d, h, bias=False)
        self.dropout = config.attention_dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                is_causal: bool, cache: KVCache | None, dca: _DCAStep | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        # [B, T, nh*D] -> [B, T, nh, D] -> [B, nh, T, D]
        q = self.q_proj(x).view(b, t, self.nh, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.nkv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.nkv, self.d).transpose(1, 2)
        if dca is not None:  # DCA rotates q and k itself; the cache keeps un-rotated keys
            if cache is not None:
                k, v = cache.update(self.layer_idx, k, v)  # [B, nkv, S, D]
            y = dca.attend(q, k, v)
            return self.o_proj(y.transpose(1, 2).reshape(b, t, self.nh * self.d))
        q, k = apply_rope(q, k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # [B, nkv, S, D]
        # GQA: SDPA repeats each KV head for its g = nh/nkv query heads (j*g .. j*g+g-1).
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.nh != self.nkv,
        )
        # [B, nh, T, D] -> [B, T, nh*D]
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.nh * self.d))


class MLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))


class Experts(nn.Module):
    """E SwiGLU experts with stacked weights: gate/up [E, I, H], down [E, H, I]."""

    def __init__(self, num_experts: int, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.gate_proj = nn.Parameter(torch.empty(num_experts, intermediate_size, hidden_size))
        self.up_proj = nn.Parameter(torch.empty(num_experts, intermediate_size, hidden_size))
        self.down_proj = nn.Parameter(torch.empty(num_experts, hidden_size, intermediate_size))

    def forward(self, x: torch.Tensor, top_idx: torch.Tensor, top_w: torch.Tensor) -> torch.Tensor:
        """x: [N, H]; top_idx/top_w: [N, k]. Grouped: the N*k (token, expert) pairs are sorted by
        expert so each expert runs one matmul over its contiguous slice of tokens."""
        n, k = top_idx.shape
        flat = top_idx.reshape(-1)  # [N*k]
        order = flat.argsort(stable=True)
        token = order // k  # the token each sorted pair belongs to
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()
        xs = x[token]  # [N*k, H], grouped by expert
        ys = torch.empty_like(xs)
        start = 0
        for e, c in enumerate(counts):
            if c == 0:
                continue
            xe = xs[start:start + c]
            ys[start:start + c] = swiglu(xe @ self.gate_proj[e].t(), xe @ self.up_proj[e].t()) @ self.down_proj[e].t()
            start += c
        ys = ys * top_w.reshape(-1)[order, None]
        # Undo the sort and sum each token's k expert outputs in a fixed order (no atomics, so
        # the result is the same on every run and device).
        out = torch.empty_like(ys)
        out[order] = ys
        return out.view(n, k, -1).sum(dim=1)


class SparseMoE(nn.Module):
    def __init__(self, config: Qwen25Config) -> None:
        super().__init__()
        h = config.hidden_size
        self.top_k, self.norm_topk_prob = config.num_experts_per_tok, config.norm_topk_prob
        self.gate = nn.Linear(h, config.num_experts, bias=False)  # the router
        self.experts = Experts(config.num_experts, h, config.moe_intermediate_size)
        self.shared_expert: MLP | None = None
        self.shared_expert_gate: nn.Linear | None = None
        if config.shared_expert_intermediate_size:
            self.shared_expert = MLP(h, config.shared_expert_intermediate_size)
            self.shared_expert_gate = nn.Linear(h, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, h = x.shape
        flat = x.reshape(b * t, h)
        router_logits = self.gate(flat)  # [N, E]
        probs = F.softmax(router_logits, dim=-1, dtype=torch.float32)
        top_w, top_idx = torch.topk(probs, self.top_k, dim=-1)
        if self.norm_topk_prob:
            top_w = top_w / top_w.sum(dim=-1, keepdim=True)
        out = self.experts(flat, top_idx, top_w.to(router_logits.dtype))
        if self.shared_expert is not None and self.shared_expert_gate is not None:
            out = out + torch.sigmoid(self.shared_expert_gate(flat)) * self.shared_expert(flat)
        return out.view(b, t, h), router_logits


class DecoderLayer(nn.Module):
    def __init__(self, config: Qwen25Config, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = Attention(config, layer_idx)
        self.mlp: nn.Module = (SparseMoE(config) if config.is_moe_layer(layer_idx)
                               else MLP(config.hidden_size, config.intermediate_size))
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                is_causal: bool, cache: KVCache | None, dca: _DCAStep | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, is_causal, cache, dca)
        h = self.post_attention_layernorm(x)
        router_logits = None
        if isinstance(self.mlp, SparseMoE):
            h, router_logits = self.mlp(h)
        else:
            h = self.mlp(h)
        return x + h, router_logits


class Qwen2Model(nn.Module):
    def __init__(self, config: Qwen25Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


# --------------------------------------------------------------------------------- masks
def document_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Document index of each token of a packed row: a new document starts wherever the position
    does not follow the previous one by +1 (as packing resets positions to 0). [B, T] -> [B, T]."""
    prev = torch.cat([position_ids[:, :1] - 1, position_ids[:, :-1]], dim=1)
    return (position_ids != prev + 1).cumsum(-1)


def attention_mask_for(t: int, past: int, key_mask: torch.Tensor | None, doc_ids: torch.Tensor | None,
                       device: torch.device) -> tuple[torch.Tensor | None, bool]:
    """The boolean SDPA mask ([B or 1, 1, T, past+T], True = attend) or (None, is_causal).

    Causal over positions, keys that are padding hidden, and (packed rows) keys of another
    document hidden. Every query may always see its own key, so a padding query has one key to
    attend to and no row of the softmax is empty (no NaN)."""
    s = past + t
    if key_mask is None and doc_ids is None:
        if t == 1:
            return None, False
        if past == 0:
            return None, True
    q_pos = torch.arange(past, s, device=device)[:, None]
    k_pos = torch.arange(s, device=device)[None, :]
    allowed = (k_pos <= q_pos)[None]  # [1, T, S]
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, :s]
    if doc_ids is not None:
        allowed = allowed & (doc_ids[:, :, None] == doc_ids[:, None, :])
    allowed = allowed | (k_pos == q_pos)[None]
    return allowed[:, None], False


# ----------------------------------------------------------------------------- losses
def load_balancing_loss(router_logits: list[torch.Tensor], num_experts: int, top_k: int,
                        attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Switch-Transformer load balancing: num_experts * sum_e f_e * P_e, where over all MoE layers
    and non-padding tokens f_e is the fraction of top-k assignments to expert e and P_e the mean
    router probability of e."""
    device = router_logits[0].device
    counts = torch.zeros(num_experts, dtype=torch.float32, device=device)
    prob_sum = torch.zeros(num_experts, dtype=torch.float32, device=device)
    rows = torch.zeros((), dtype=torch.float32, device=device)
    w = None if attention_mask is None else attention_mask.reshape(-1).to(device=device, dtype=torch.float32)
    for logits in router_logits:
        probs = F.softmax(logits.float(), dim=-1)  # [N, E]
        _, chosen = torch.topk(probs, top_k, dim=-1)
        ones = torch.ones(chosen.numel(), dtype=torch.float32, device=device) if w is None else w.repeat_interleave(top_k)
        counts = counts.scatter_add(0, chosen.reshape(-1), ones)
        prob_sum = prob_sum + (probs.sum(0) if w is None else (probs * w[:, None]).sum(0))
        rows = rows + (probs.shape[0] if w is None else w.sum())
    return num_experts * torch.sum((counts / rows) * (prob_sum / rows))


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in fp32; label -100 is ignored. labels are not pre-shifted."""
    shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), shifted.reshape(-1).to(logits.device),
                           ignore_index=-100)


# --------------------------------------------------------------------------------- the model
@dataclass
class CausalLMOutput:
    logits: torch.Tensor  # [B, T, V] (or the last logits_to_keep positions; [B, 0, V] if not returned)
    loss: torch.Tensor | None = None  # CE (+ router_aux_loss_coef * aux_loss for MoE)
    aux_loss: torch.Tensor | None = None  # MoE load-balancing loss, unweighted
    router_logits: tuple[torch.Tensor, ...] | None = None


class Qwen2ForCausalLM(nn.Module):
    """A Qwen2 / Qwen2.5 causal LM (dense or MoE, per ``config.num_experts``)."""

    def __init__(self, config: Qwen25Config) -> None:
        super().__init__()
        self.config = config
        self.model = Qwen2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary_emb = RotaryEmbedding(config)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        if config.use_sliding_window:
            raise Qwen25ValueError("use_sliding_window=True is not supported (no Qwen2.5 checkpoint uses it)")
        self._dca_tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _dca_step(self, past: int, t: int, seq_len: int | None, key_mask: torch.Tensor | None,
                  position_ids: torch.Tensor, doc_ids: torch.Tensor | None, device: torch.device) -> _DCAStep:
        dc = self.config.dual_chunk_attention_config
        assert dc is not None
        if doc_ids is not None:
            raise Qwen25ValueError("packed rows (position_ids restarting inside a row) are not supported with "
                                   "dual chunk attention")
        pads = None
        expected = torch.arange(past, past + t, device=device)[None]  # [1, T] positions of the new tokens
        real = None
        if key_mask is not None:
            n = (~key_mask).sum(-1)  # [B] padding slots per row
            if not torch.equal(key_mask, torch.arange(key_mask.shape[1], device=device)[None] >= n[:, None]):
                raise Qwen25ValueError("dual chunk attention supports left padding only: every row's attention_mask "
                                       "must be zeros then ones")
            pads = n.tolist()
            expected = expected - n[:, None]
            real = expected >= 0
        ok = position_ids == expected if real is None else (position_ids == expected) | ~real
        if not bool(ok.all()):
            raise Qwen25ValueError("dual chunk attention needs the default positions (each row's real tokens at 0, 1, "
                                   "2, ...); position_ids differ")
        # rotary tables by position, up to chunk_size (the largest position DCA uses), cached per device
        tables = self._dca_tables.get(device)
        if tables is None:
            pos = torch.arange(dc.chunk_size + 1, device=device)[None]
            cos, sin = self.rotary_emb(torch.float32, pos)
            tables = self._dca_tables[device] = (cos[0], sin[0])
        return _DCAStep(config=dc, cos=tables[0], sin=tables[1], past=past,
                        seq_len=past + t if seq_len is None else seq_len, pads=pads)

    # ---------------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: Qwen25Config | str, *, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, seed: int | None = None) -> Qwen2ForCausalLM:
        """A randomly initialised model (normal(0, initializer_range) weights, zero biases, unit norms)."""
        if isinstance(config, str):
            config = Qwen25Config.from_preset(config)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        model = cls(config)
        std = config.initializer_range
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif name.endswith(".bias"):
                    p.zero_()
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) * std)
        return model.to(device=device, dtype=dtype)

    @classmethod
    def from_pretrained(cls, directory: Any, dtype: torch.dtype | str | None = None,
                        device: torch.device | str | None = None) -> Qwen2ForCausalLM:
        """Load an HF-layout checkpoint (config.json + safetensors, sharded or not).

        ``dtype=None`` keeps the checkpoint's dtype (config ``torch_dtype``/``dtype``)."""
        from .checkpoint import load_pretrained

        return load_pretrained(cls, directory, dtype=dtype, device=device)

    def save_pretrained(self, directory: Any, *, max_shard_size: int | str = "5GB",
                        dtype: torch.dtype | None = None) -> None:
        """Write config.json and safetensors in the HF layout (no lm_head.weight when tied,
        per-expert MoE keys, sharded with model.safetensors.index.json past max_shard_size)."""
        from .checkpoint import save_pretrained

        save_pretrained(self, directory, max_shard_size=max_shard_size, dtype=dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -------------------------------------------------------------------------- forward
    def _check_ids(self, input_ids: torch.Tensor) -> None:
        if input_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise TypeError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
        if input_ids.numel() == 0:
            raise Qwen25ValueError("input_ids is empty")
        lo, hi = int(input_ids.min()), int(input_ids.max())
        v = self.config.vocab_size
        if lo < 0 or hi >= v:
            bad = lo if lo < 0 else hi
            where = (input_ids == bad).nonzero()[0].tolist()
            raise Qwen25ValueError(f"token id {bad} at position {tuple(where)} is out of range for vocab_size {v}")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None, *,
                cache: KVCache | None = None, logits_to_keep: int = 0, fused_loss: bool | None = None,
                return_logits: bool = True, dca_seq_len: int | None = None) -> CausalLMOutput:
        """Logits for ``input_ids`` [B, T] (and the loss when ``labels`` are given).

        * ``attention_mask`` [B, T] (or [B, past+T] with a cache): 1 for tokens, 0 for padding.
          Without ``position_ids`` the positions then count real tokens only, so a left-padded row
          gets the positions (and logits) it would have unpadded.
        * ``position_ids`` [B, T]: explicit positions. Without a cache, a position that does not
          follow its predecessor by +1 starts a new document (packed rows): attention stays within
          documents.
        * ``cache``: a ``KVCache`` to read and extend (generation).
        * ``logits_to_keep``: if > 0, only the last that many positions get logits.
        * ``fused_loss``: compute the loss with ``qwen25.kernels.fused_cross_entropy`` (the CUDA
          kernel, or on the CPU its chunked fallback), which never holds fp32 logits for the whole
          sequence. None (default): on for CUDA tensors when the kernels are available.
        * ``return_logits``: False skips the lm_head when only the loss is wanted (fused loss):
          ``logits`` is then an empty [B, 0, V] tensor.
        * ``dca_seq_len``: with dual chunk attention, the length L of its logit scale (default the
          keys so far, past + T, as vLLM); ``prefill`` passes the whole prompt's length so that a
          prompt run in pieces gives the same result as in one go.
        """
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        if input_ids.dim() != 2:
            raise Qwen25ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
        checking = not torch.compiler.is_compiling()  # the checks read values back to the host
        if checking:
            self._check_ids(input_ids)
        b, t = input_ids.shape
        if labels is not None and (logits_to_keep or labels.shape != input_ids.shape):
            raise Qwen25ValueError(f"labels {tuple(labels.shape)} must have the shape of input_ids {(b, t)}, "
                                   "with every position's logits kept")
        device = input_ids.device
        past = cache.length if cache is not None else 0
        if cache is not None and past + t > cache.max_len:
            raise Qwen25ValueError(f"KV cache holds {cache.max_len} positions; {past} + {t} do not fit")

        key_mask = None
        if attention_mask is not None:
            if attention_mask.shape not in ((b, t), (b, past + t)):
                raise Qwen25ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match "
                                       f"input_ids {(b, t)} (past {past})")
            am = attention_mask.to(device=device, dtype=torch.bool)
            if am.shape[1] == t and past:
                prev = cache.key_mask[:, :past] if cache is not None and cache.key_mask is not None else \
                    torch.ones(b, past, dtype=torch.bool, device=device)
                am = torch.cat([prev, am], dim=1)
            if not bool(am.all()):
                key_mask = am
        elif cache is not None and cache.key_mask is not None:
            key_mask = torch.cat([cache.key_mask[:, :past], torch.ones(b, t, dtype=torch.bool, device=device)], 1)
        if cache is not None and key_mask is not None:
            if cache.key_mask is None:
                cache.key_mask = torch.ones(b, cache.max_len, dtype=torch.bool, device=device)
            cache.key_mask[:, : past + t] = key_mask

        doc_ids = None
        implicit_positions = position_ids is None and cache is not None
        if position_ids is None:
            if cache is not None:
                if key_mask is not None:
                    position_ids = (cache.next_position[:, None] + key_mask[:, past:].long().cumsum(-1) - 1).clamp(min=0)
                else:
                    position_ids = cache.next_position[:, None] + torch.arange(t, device=device)[None]
            elif key_mask is not None:
                position_ids = (key_mask.long().cumsum(-1) - 1).clamp(min=0)
            else:
                position_ids = torch.arange(t, device=device)[None].expand(b, t)
        else:
            position_ids = position_ids.to(device)
            if position_ids.dim() == 1:
                position_ids = position_ids[None]
            if position_ids.shape[-1] != t:
                raise Qwen25ValueError(f"position_ids shape {tuple(position_ids.shape)} does not match input_ids {(b, t)}")
            position_ids = position_ids.expand(b, t)
            if cache is None:
                docs = document_ids(position_ids)
                if bool((docs[:, -1] > 0).any()):
                    doc_ids = docs
        max_pos = int(position_ids.max()) if checking else 0
        dca = None
        if self.config.dual_chunk_attention_config is not None:
            # positions stay below chunk_size inside DCA: no length limit from RoPE
            dca = self._dca_step(past, t, dca_seq_len, key_mask, position_ids, doc_ids, device)
        elif max_pos >= self.config.max_positions:
            hint = "" if self.config.rope_scaling else " (set rope_scaling, e.g. YaRN, to go further)"
            raise Qwen25ValueError(f"position {max_pos} is past the {self.config.max_positions} positions this "
                                   f"model supports{hint}")
        if cache is not None:
            if implicit_positions and key_mask is not None:  # a piece that is all padding moves no row on
                cache.next_position = cache.next_position + key_mask[:, past:].long().sum(-1)
            else:
                cache.next_position = position_ids[:, -1] + 1

        mask, is_causal = (None, False) if dca is not None else attention_mask_for(t, past, key_mask, doc_ids, device)
        x = self.model.embed_tokens(input_ids)
        cos, sin = self.rotary_emb(x.dtype, position_ids)
        router_logits: list[torch.Tensor] = []
        for layer in self.model.layers:
            x, rl = layer(x, cos, sin, mask, is_causal, cache, dca)
            if rl is not None:
                router_logits.append(rl)
        if cache is not None:
            cache.length = past + t
        x = self.model.norm(x)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        if fused_loss is None:
            fused_loss = labels is not None and kernels_for(x) is not None
        if return_logits or labels is None or not fused_loss:
            logits = self.lm_head(x)
        else:
            logits = x.new_empty(b, 0, self.config.vocab_size)

        out = CausalLMOutput(logits=logits)
        if router_logits:
            out.router_logits = tuple(router_logits)
        if labels is not None:
            if fused_loss:
                from .. import kernels

                shifted = F.pad(labels, (0, 1), value=-100)[:, 1:].to(x.device)
                out.loss = kernels.fused_cross_entropy(x, self.lm_head.weight, shifted, ignore_index=-100)
            else:
                out.loss = causal_lm_loss(logits, labels)
            if router_logits:
                pad_mask = attention_mask if attention_mask is not None and attention_mask.shape == (b, t) else None
                out.aux_loss = load_balancing_loss(router_logits, self.config.num_experts,
                                                   self.config.num_experts_per_tok, pad_mask)
                out.loss = out.loss + self.config.router_aux_loss_coef * out.aux_loss.to(out.loss.device)
        return out

    # ------------------------------------------------------------------------- generation
    def generate(self, input_ids: Any, max_new_tokens: int = 32, do_sample: bool = False, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0, repetition_penalty: float = 1.0,
                 stop: Any = None, seed: int | None = None, **kwargs: Any) -> torch.Tensor:
        """Prompt + new ids, [B, T + n]. See ``qwen25.model.generation.generate`` for every option."""
        from .generation import generate

        return generate(self, input_ids, max_new_tokens=max_new_tokens, do_sample=do_sample,
                        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                        repetition_penalty=repetition_penalty, stop=stop, seed=seed, **kwargs)


# --------------------------------------------------------------------------------- prefill
@torch.no_grad()
def prefill(model: Qwen2ForCausalLM, input_ids: torch.Tensor, cache: KVCache, *, chunk_size: int | None = None,
            attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Run a prompt ``input_ids`` [B, T] into ``cache`` in pieces of ``chunk_size`` tokens (default:
    all at once) and return the last position's logits [B, V].

    Memory then grows with ``chunk_size`` (activations, logits of one position) plus the cache,
    linearly in T. With dual chunk attention the logit scale uses the whole prompt's length, so
    the result does not depend on the chunking; ``attention_mask`` [B, T] marks left padding."""
    if input_ids.dim() != 2:
        raise Qwen25ValueError(f"prefill: input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
    b, t = input_ids.shape
    if chunk_size is None:
        chunk_size = t
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise Qwen25ValueError(f"prefill: chunk_size must be a positive int, got {chunk_size!r}")
    if attention_mask is not None and tuple(attention_mask.shape) != (b, t):
        raise Qwen25ValueError(f"prefill: attention_mask shape {tuple(attention_mask.shape)} is not {(b, t)}")
    total = cache.length + t
    logits = None
    for a in range(0, t, chunk_size):
        e = min(t, a + chunk_size)
        am = None if attention_mask is None else attention_mask[:, a:e]
        logits = model(input_ids[:, a:e], attention_mask=am, cache=cache, logits_to_keep=1, dca_seq_len=total).logits
    assert logits is not None
    return logits[:, -1]
