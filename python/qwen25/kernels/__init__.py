"""Fused CUDA kernels for the Qwen2.5 block, with eager PyTorch fallbacks.

The public functions take and return torch tensors. For CUDA tensors of dtype fp32 or bf16 they
run the kernels in ``kernels/cuda/*.cu`` (compiled with CuPy on first use, cached per device),
each wrapped in a ``torch.autograd.Function``; everywhere else (CPU tensors, no CuPy, other dtypes,
``QWEN25_KERNELS=0``) they run the eager fallback, which is also the kernels' test oracle.
:func:`available` says whether CUDA tensors would get the kernels, :func:`unavailable_reason` why
not.

    rms_norm(x, weight, eps)
    apply_rope(q, k, cos, sin) -> (q, k)
    swiglu(gate, up)
    moe_permute(hidden, expert_ids, num_experts) -> (permuted, offsets, order)
    moe_unpermute(permuted, order, routing_weights)
    fused_cross_entropy(hidden, lm_head_weight, labels, ignore_index=-100, chunk_size=2048)
"""

from __future__ import annotations

import os
from typing import Any

from .._extras import require

require("torch", "qwen25.kernels")

import torch

from ..errors import Qwen25ValueError
from . import _fallback
from ._autograd import (
    FusedCrossEntropyFn,
    MoePermuteFn,
    MoeUnpermuteFn,
    RMSNormFn,
    RopeFn,
    SwiGLUFn,
)
from ._loader import KernelCompileError

__all__ = [
    "available",
    "unavailable_reason",
    "rms_norm",
    "apply_rope",
    "swiglu",
    "moe_permute",
    "moe_unpermute",
    "fused_cross_entropy",
    "KernelCompileError",
]

_DTYPES = (torch.float32, torch.bfloat16)
_cupy_state: dict[str, Any] = {}


def _enabled() -> bool:
    return os.environ.get("QWEN25_KERNELS", "1").strip() != "0"


def _cupy_status() -> tuple[bool, str]:
    """Whether CuPy imports (cached; ``_reset()`` clears the cache)."""
    if "status" not in _cupy_state:
        try:
            require("cupy", "qwen25.kernels")  # missing: the message names qwen25[cuda12] / [cuda13]

            _cupy_state["status"] = (True, "")
        except Exception as e:  # ImportError, or a CuPy that fails to load its CUDA libraries
            _cupy_state["status"] = (False, f"CuPy is not importable ({type(e).__name__}: {e})")
    status: tuple[bool, str] = _cupy_state["status"]
    return status


def _reset() -> None:
    _cupy_state.clear()


def unavailable_reason() -> str | None:
    """Why CUDA tensors would run the eager fallback, or None when they get the kernels."""
    if not _enabled():
        return "disabled by QWEN25_KERNELS=0"
    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch"
    ok, why = _cupy_status()
    return None if ok else why


def available() -> bool:
    """True when CUDA tensors (fp32/bf16) run the CUDA kernels rather than the eager fallback."""
    return unavailable_reason() is None


def _use_kernels(*tensors: torch.Tensor) -> bool:
    if not _enabled():
        return False
    for t in tensors:
        if not t.is_cuda:
            return False
        if t.is_floating_point() and t.dtype not in _DTYPES:
            return False
    return _cupy_status()[0]


def _ops() -> Any:
    from . import _cupy_ops

    return _cupy_ops


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise Qwen25ValueError(message)


# ---- RMSNorm ---------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen2 RMSNorm over the last dim: ``weight * (x.float() * rsqrt(mean(x^2) + eps)).to(x.dtype)``."""
    _check(weight.dim() == 1 and x.dim() >= 1 and x.shape[-1] == weight.shape[0],
           f"rms_norm: weight of shape {tuple(weight.shape)} does not match x of shape {tuple(x.shape)}")
    if _use_kernels(x, weight) and x.dtype == weight.dtype:
        out: torch.Tensor = RMSNormFn.apply(x, weight, eps, _ops())
        return out
    return _fallback.rms_norm(x, weight, eps)


# ---- RoPE ------------------------------------------------------------------------------------


def _non_overlapping_last_contiguous(t: torch.Tensor) -> bool:
    """True when the kernel may rotate ``t`` in place: the last dim is contiguous and no two
    elements share memory. Sufficient, not necessary: the dims of size > 1, sorted by stride, must
    each step over the whole extent of the previous one, and none may have stride 0 (an expanded
    tensor, e.g. GQA-broadcast keys, whose elements alias: threads would race on them)."""
    if t.stride(-1) != 1:
        return False
    dims = sorted((t.stride(i), t.shape[i]) for i in range(t.dim()) if t.shape[i] > 1)
    if any(stride <= 0 for stride, _ in dims):
        return False
    return all(dims[i + 1][0] >= dims[i][0] * dims[i][1] for i in range(len(dims) - 1))


def _element_range(t: torch.Tensor) -> tuple[int, int]:
    """First and last element offsets (in elements of t's storage) that t can touch."""
    lo = t.storage_offset()
    return lo, lo + sum((n - 1) * s for n, s in zip(t.shape, t.stride()) if n > 0)


def _may_overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """False only when a and b provably share no element (same dtype assumed). Exact for the
    layouts the model makes (q and k as slices of one projection output, or separate tensors);
    otherwise it errs towards True. Proof used: if every dim of both tensors with stride >= P has
    a stride that is a multiple of P, and the smaller strides keep each tensor within one period
    (offset mod P + extent < P), then the element offsets mod P lie in two intervals; disjoint
    intervals mean disjoint elements."""
    if a.numel() == 0 or b.numel() == 0:
        return False
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    (a_lo, a_hi), (b_lo, b_hi) = _element_range(a), _element_range(b)
    if a_hi < b_lo or b_hi < a_lo:
        return False
    periods = {s for t in (a, b) for n, s in zip(t.shape, t.stride()) if n > 1 and s > 0}
    for period in sorted(periods):
        windows = []
        for t in (a, b):
            inner = 0
            ok = True
            for n, s in zip(t.shape, t.stride()):
                if n <= 1:
                    continue
                if s >= period:
                    ok = ok and s % period == 0
                else:
                    inner += (n - 1) * s
            start = t.storage_offset() % period
            if not ok or start + inner >= period:
                break
            windows.append((start, start + inner))
        else:
            (s1, e1), (s2, e2) = windows
            if e1 < s2 or e2 < s1:
                return False
    return True


def _rope_target(t: torch.Tensor) -> torch.Tensor:
    base = t._base if t._base is not None else t
    if t.requires_grad and base.is_leaf:
        return t.clone()  # autograd forbids modifying a leaf that requires grad (or a view of one) in place
    if not _non_overlapping_last_contiguous(t):
        return t.contiguous()
    return t


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate-half RoPE on q [B, Hq, T, D] and k [B, Hk, T, D] with tables cos/sin [B or 1, T, D]
    (YaRN scaling already folded into the tables; they are cast to q's dtype).

    Returns the rotated (q, k). On the kernel path the rotation is done in place: the returned
    tensors are q and k themselves, unless q/k are leaves that require grad (or views of one), have
    a layout the kernel cannot write (stride 0, overlapping elements), or k may share elements with
    q (then rotated copies are returned). Always use the returned tensors."""
    _check(q.dim() == 4 and k.dim() == 4, f"apply_rope: q and k must be [B, H, T, D], got {tuple(q.shape)} and {tuple(k.shape)}")
    b, _, t, d = q.shape
    _check(k.shape[0] == b and k.shape[2] == t and k.shape[3] == d,
           f"apply_rope: k of shape {tuple(k.shape)} does not match q of shape {tuple(q.shape)}")
    _check(d % 2 == 0, f"apply_rope: head dim {d} must be even")
    _check(cos.shape == sin.shape, f"apply_rope: cos {tuple(cos.shape)} and sin {tuple(sin.shape)} differ")
    _check(cos.dim() == 3 and cos.shape[0] in (1, b) and cos.shape[1] == t and cos.shape[2] == d,
           f"apply_rope: cos/sin must be [{b} or 1, {t}, {d}], got {tuple(cos.shape)}")
    _check(q.dtype == k.dtype, f"apply_rope: q is {q.dtype} but k is {k.dtype}")
    cos = cos.to(q.dtype)
    sin = sin.to(q.dtype)
    if _use_kernels(q, k, cos, sin):
        cos, sin, ops = cos.contiguous(), sin.contiguous(), _ops()
        q_t, k_t = _rope_target(q), _rope_target(k)
        if _may_overlap(q_t, k_t):  # apply_rope(q, q): rotating q in place must not rotate k too
            k_t = k_t.clone(memory_format=torch.contiguous_format)
        q_out: torch.Tensor = RopeFn.apply(q_t, cos, sin, ops)
        k_out: torch.Tensor = RopeFn.apply(k_t, cos, sin, ops)
        return q_out, k_out
    return _fallback.apply_rope(q, k, cos, sin)


# ---- SwiGLU ----------------------------------------------------------------------------------


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` (Qwen2's MLP activation), fused."""
    _check(gate.shape == up.shape, f"swiglu: gate {tuple(gate.shape)} and up {tuple(up.shape)} differ")
    if _use_kernels(gate, up) and gate.dtype == up.dtype:
        out: torch.Tensor = SwiGLUFn.apply(gate, up, _ops())
        return out
    return _fallback.swiglu(gate, up)


# ---- MoE permutation -------------------------------------------------------------------------


def moe_permute(
    hidden: torch.Tensor, expert_ids: torch.Tensor, num_experts: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group token rows by expert for a grouped matmul.

    hidden: [N, H]; expert_ids: [N, K] (or [N] for K = 1) integer ids in [0, num_experts).
    Returns ``(permuted [N*K, H], offsets [num_experts + 1] int64, order [N*K] int64)``: the rows
    of expert e are ``permuted[offsets[e]:offsets[e+1]]`` (empty when no token chose e), and
    ``permuted[j] = hidden[order[j] // K]``, with ``order`` the stable sort of the flat ids (so,
    within an expert, rows keep token order). Pass ``order`` to :func:`moe_unpermute`.
    """
    _check(hidden.dim() == 2, f"moe_permute: hidden must be [N, H], got {tuple(hidden.shape)}")
    n = hidden.shape[0]
    _check(not expert_ids.is_floating_point() and not expert_ids.is_complex(),
           f"moe_permute: expert_ids must be integers, got {expert_ids.dtype}")
    _check(expert_ids.dim() in (1, 2) and expert_ids.shape[0] == n,
           f"moe_permute: expert_ids must be [{n}, K] or [{n}], got {tuple(expert_ids.shape)}")
    _check(isinstance(num_experts, int) and num_experts >= 1, f"moe_permute: num_experts must be >= 1, got {num_experts!r}")
    ids = expert_ids.reshape(n, -1) if n > 0 else expert_ids.reshape(0, expert_ids.shape[1] if expert_ids.dim() == 2 else 1)
    top_k = ids.shape[1]
    flat = ids.reshape(-1).to(torch.int64)
    if flat.numel():
        lo, hi = (int(v) for v in torch.aminmax(flat))
        _check(0 <= lo and hi < num_experts,
               f"moe_permute: expert id {lo if lo < 0 else hi} outside [0, {num_experts})")
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=num_experts)
    offsets = torch.zeros(num_experts + 1, dtype=torch.int64, device=flat.device)
    torch.cumsum(counts, 0, out=offsets[1:])
    if _use_kernels(hidden) and flat.numel():
        pos = _fallback.inverse_permutation(order)
        permuted: torch.Tensor = MoePermuteFn.apply(hidden, order, pos, top_k, _ops())
    else:
        permuted = _fallback.moe_rows(hidden, order, top_k)
    return permuted, offsets, order


def moe_unpermute(permuted: torch.Tensor, order: torch.Tensor, routing_weights: torch.Tensor) -> torch.Tensor:
    """Combine expert outputs back per token: ``out[t] = sum_k routing_weights[t, k] * row(t, k)``
    where row(t, k) is the permuted row of token t's k-th expert (``order`` from
    :func:`moe_permute`); summed in fp32, returned in ``permuted``'s dtype. routing_weights:
    [N, K] (or [N] for K = 1)."""
    _check(permuted.dim() == 2, f"moe_unpermute: permuted must be [N*K, H], got {tuple(permuted.shape)}")
    w = routing_weights.reshape(routing_weights.shape[0], -1) if routing_weights.dim() == 1 else routing_weights
    _check(w.dim() == 2, f"moe_unpermute: routing_weights must be [N, K], got {tuple(routing_weights.shape)}")
    n, top_k = w.shape
    _check(order.dim() == 1 and order.numel() == n * top_k == permuted.shape[0],
           f"moe_unpermute: order of {order.numel()} and permuted of {permuted.shape[0]} rows do not match "
           f"routing_weights [{n}, {top_k}]")
    if _use_kernels(permuted, w) and order.numel():
        pos = _fallback.inverse_permutation(order)
        out: torch.Tensor = MoeUnpermuteFn.apply(permuted, w.reshape(-1).float(), order, pos, top_k, _ops())
        return out
    return _fallback.moe_combine(permuted, order, w)


# ---- fused cross-entropy ---------------------------------------------------------------------


def fused_cross_entropy(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    chunk_size: int = 2048,
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ lm_head_weight.T`` against ``labels`` over the tokens whose
    label is not ``ignore_index`` (as ``F.cross_entropy(logits.float(), labels)``), without ever
    materialising the logits of more than ``chunk_size`` tokens. hidden: [..., H]; labels: [...];
    lm_head_weight: [V, H]. Labels are used as given (shift them beforehand for causal LM).

    Under ``torch.autocast`` the matmuls run in autocast's dtype, as ``hidden @ weight.T`` would
    (hidden and weight may then differ in dtype), and the gradients come back in the inputs'
    dtypes. With no valid label the loss is NaN and the gradients zero, as F.cross_entropy's."""
    _check(lm_head_weight.dim() == 2, f"fused_cross_entropy: lm_head_weight must be [V, H], got {tuple(lm_head_weight.shape)}")
    v, h = lm_head_weight.shape
    _check(hidden.shape[-1] == h, f"fused_cross_entropy: hidden {tuple(hidden.shape)} does not match weight [{v}, {h}]")
    compute_dtype = _autocast_dtype(hidden, lm_head_weight)
    _check(compute_dtype is not None or hidden.dtype == lm_head_weight.dtype,
           f"fused_cross_entropy: hidden is {hidden.dtype} but lm_head_weight is {lm_head_weight.dtype}")
    _check(not labels.is_floating_point(), f"fused_cross_entropy: labels must be integers, got {labels.dtype}")
    _check(labels.shape == hidden.shape[:-1],
           f"fused_cross_entropy: labels {tuple(labels.shape)} do not match hidden {tuple(hidden.shape)}")
    _check(isinstance(chunk_size, int) and chunk_size >= 1, f"fused_cross_entropy: chunk_size must be >= 1, got {chunk_size!r}")
    h2 = hidden.reshape(-1, h)  # [N, H]
    lab = labels.reshape(-1).to(torch.int64)
    bad = (lab != ignore_index) & ((lab < 0) | (lab >= v))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise Qwen25ValueError(f"fused_cross_entropy: label {int(lab[i])} at flat position {i} is outside [0, {v})")
    dtype = compute_dtype or hidden.dtype
    kernel = _use_kernels(h2, lm_head_weight) and dtype in _DTYPES
    chunk_op = _ops().ce_rows_ if kernel else _fallback.ce_chunk
    loss: torch.Tensor = FusedCrossEntropyFn.apply(h2, lm_head_weight, lab, int(ignore_index), chunk_size,
                                                   torch.is_grad_enabled(), chunk_op, dtype)
    return loss


def _autocast_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast would run ``hidden @ weight.T`` in, or None outside autocast."""
    device = hidden.device.type
    if not (hidden.is_floating_point() and weight.is_floating_point()) or not torch.is_autocast_enabled(device):
        return None
    dtype: torch.dtype = torch.get_autocast_dtype(device)
    return dtype
