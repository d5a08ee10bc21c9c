"""``torch.autograd.Function`` wrappers of the kernels.

Each Function takes an ``ops`` object as its last argument: the launchers in ``_cupy_ops`` on the
GPU. Keeping it a parameter lets the CPU tests drive every Function (saved tensors, in-place
marking, gradient shapes and dtypes) with a torch stand-in that honours the same contracts.

Contract of ``ops`` (all tensors contiguous unless said otherwise):
  rmsnorm_fwd(x[R, n], w[n], eps) -> (y[R, n], rstd[R] fp32)
  rmsnorm_bwd(dy, x, w, rstd) -> (dx[R, n], dw[n] fp32)
  rope_(x[B, H, S, D] (stride(-1) == 1, non-overlapping), cos[Bc, S, D], sin, backward) -> None, in place
  swiglu_fwd(gate, up) -> out;  swiglu_bwd(dout, gate, up) -> (dgate, dup)
  moe_gather(src[M, n], src_row[J] i64, scale[J] fp32 | None) -> dst[J, n]
  moe_combine(src[J, n], pos[N*K] i64, scale[N*K] fp32 | None, K) -> dst[N, n]
  moe_scale_grad(dout[N, n], src[J, n], pos[N*K] i64, K) -> dscale[N*K] fp32
  ce_rows_(logits[R, V], labels[R] i64, ignore_index, write_grad) -> loss[R] fp32
"""

from __future__ import annotations

from typing import Any, Callable

import torch


class RMSNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float, ops: Any) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).contiguous()  # [R, n]
        w = weight.contiguous()
        y, rstd = ops.rmsnorm_fwd(x2, w, float(eps))
        ctx.save_for_backward(x2, w, rstd)
        ctx.ops = ops
        return y.view(shape)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        x2, w, rstd = ctx.saved_tensors
        dx, dw = ctx.ops.rmsnorm_bwd(dy.reshape(x2.shape).contiguous(), x2, w, rstd)
        return dx.view(dy.shape), dw.to(w.dtype), None, None


class RopeFn(torch.autograd.Function):
    """Rotates x in place (marked dirty and returned). One tensor per call: autograd does not allow
    a Function that modifies a view in place to return more than one tensor, and q and k are
    usually views of one projection output."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, ops: Any) -> torch.Tensor:
        ops.rope_(x, cos, sin, False)
        ctx.mark_dirty(x)
        ctx.save_for_backward(cos, sin)
        ctx.ops = ops
        return x

    @staticmethod
    def backward(ctx: Any, dx: torch.Tensor) -> tuple[Any, ...]:
        cos, sin = ctx.saved_tensors
        dx = dx.clone(memory_format=torch.contiguous_format)  # never modify an incoming gradient
        ctx.ops.rope_(dx, cos, sin, True)
        return dx, None, None, None


class SwiGLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor, ops: Any) -> torch.Tensor:
        gate = gate.contiguous()
        up = up.contiguous()
        ctx.save_for_backward(gate, up)
        ctx.ops = ops
        return ops.swiglu_fwd(gate, up)

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[Any, ...]:
        gate, up = ctx.saved_tensors
        dgate, dup = ctx.ops.swiglu_bwd(dout.contiguous(), gate, up)
        return dgate, dup, None


class MoePermuteFn(torch.autograd.Function):
    """permuted[j] = hidden[order[j] // K]; the backward sums each token's K rows back."""

    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, order: torch.Tensor, pos: torch.Tensor, top_k: int, ops: Any
    ) -> torch.Tensor:
        hidden = hidden.contiguous()
        src_row = torch.div(order, top_k, rounding_mode="floor")
        ctx.save_for_backward(pos)
        ctx.top_k = top_k
        ctx.ops = ops
        return ops.moe_gather(hidden, src_row, None)

    @staticmethod
    def backward(ctx: Any, dperm: torch.Tensor) -> tuple[Any, ...]:
        (pos,) = ctx.saved_tensors
        dhidden = ctx.ops.moe_combine(dperm.contiguous(), pos, None, ctx.top_k)
        return dhidden, None, None, None, None


class MoeUnpermuteFn(torch.autograd.Function):
    """out[t] = sum_k w[t*K + k] * permuted[pos[t*K + k]] (fp32 sum), w flat fp32 [N*K]."""

    @staticmethod
    def forward(
        ctx: Any,
        permuted: torch.Tensor,
        weights: torch.Tensor,
        order: torch.Tensor,
        pos: torch.Tensor,
        top_k: int,
        ops: Any,
    ) -> torch.Tensor:
        permuted = permuted.contiguous()
        weights = weights.contiguous()
        ctx.save_for_backward(permuted, weights, order, pos)
        ctx.top_k = top_k
        ctx.ops = ops
        return ops.moe_combine(permuted, pos, weights, top_k)

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[Any, ...]:
        permuted, weights, order, pos = ctx.saved_tensors
        dout = dout.contiguous()
        src_row = torch.div(order, ctx.top_k, rounding_mode="floor")
        dperm = ctx.ops.moe_gather(dout, src_row, weights.index_select(0, order))
        dweights = ctx.ops.moe_scale_grad(dout, permuted, pos, ctx.top_k)
        return dperm, dweights, None, None, None, None


ChunkOp = Callable[[torch.Tensor, torch.Tensor, int, bool], torch.Tensor]


class FusedCrossEntropyFn(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T`` over the labels that are not ignored, computed
    ``chunk_size`` tokens at a time. Logits exist for one chunk only (in ``dtype``; the chunk op
    reads them in fp32 without an fp32 copy on the GPU). The gradients with respect to hidden and
    weight are accumulated during the forward, while each chunk's logits exist, and only scaled in
    the backward: no recomputation, and no [tokens, vocab] tensor at any time.

    ``dtype`` is the matmuls' dtype: the inputs' own, or autocast's (then hidden and weight are
    cast to it once, as autocast casts them for ``hidden @ weight.T``, and autocast is switched
    off inside so that every matmul, ``out=`` ones included, sees operands of one dtype)."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        labels: torch.Tensor,
        ignore_index: int,
        chunk_size: int,
        grad_enabled: bool,
        chunk_op: ChunkOp,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        n, h = hidden.shape
        v = weight.shape[0]
        # needs_input_grad says True under torch.no_grad() too: the caller passes the grad mode
        need_h = grad_enabled and bool(ctx.needs_input_grad[0])
        need_w = grad_enabled and bool(ctx.needs_input_grad[1])
        write_grad = need_h or need_w
        with torch.autocast(hidden.device.type, enabled=False):
            hid = hidden.to(dtype)  # no copy when the dtype is already right
            wt = weight.to(dtype)
            loss_rows = torch.empty(n, dtype=torch.float32, device=hidden.device)
            grad_h = torch.empty(n, h, dtype=dtype, device=hidden.device) if need_h else None
            grad_w = torch.zeros(v, h, dtype=torch.float32, device=weight.device) if need_w else None
            for start in range(0, n, chunk_size):
                end = min(n, start + chunk_size)
                hc = hid[start:end]
                logits = torch.mm(hc, wt.t())  # [c, V] in dtype
                loss_rows[start:end] = chunk_op(logits, labels[start:end], ignore_index, write_grad)
                # logits now holds d loss_rows / d logits (softmax - onehot) when write_grad
                if grad_h is not None:
                    torch.mm(logits, wt, out=grad_h[start:end])  # [c, V] @ [V, H]
                if grad_w is not None:
                    grad_w.add_(torch.mm(logits.t(), hc))  # [V, c] @ [c, H]
                del logits
        n_valid = (labels != ignore_index).sum()
        ctx.save_for_backward(grad_h, grad_w, n_valid)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        # the mean over the valid tokens, as F.cross_entropy (NaN when there are none)
        return loss_rows.sum() / n_valid

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        grad_h, grad_w, n_valid = ctx.saved_tensors
        # with no valid token every row's gradient is zero: the gradients are zero (as
        # F.cross_entropy's), not 0 * (1/0) = NaN; the loss itself stays NaN (0/0)
        scale = grad_out.float() / n_valid.clamp(min=1)
        dh = (grad_h.float() * scale).to(ctx.dtypes[0]) if grad_h is not None else None
        dw = (grad_w * scale).to(ctx.dtypes[1]) if grad_w is not None else None
        return dh, dw, None, None, None, None, None, None
