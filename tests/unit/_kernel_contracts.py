"""A torch transliteration of what each CUDA kernel computes (the formulas in the comments of
``kernels/cuda/*.cu``, with the same fp32 math and the same points of rounding to the input
dtype), exposing the ``ops`` contract of ``qwen25.kernels._autograd``.

It lets the CPU tests drive the autograd Functions and the kernel branch of the public functions
without a GPU, and checks that the kernels' formulas (notably the backward formulas) agree with
the eager fallbacks. Whether the CUDA code implements these formulas is checked by tests/gpu/.
"""

from __future__ import annotations

import torch


def _r(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round an fp32 tensor to dtype and back (round_to<T> in common.cuh)."""
    return x.to(dtype).float()


class ContractOps:
    calls: list[str] = []

    @classmethod
    def _log(cls, name: str) -> None:
        cls.calls.append(name)

    # rmsnorm.cu
    @classmethod
    def rmsnorm_fwd(cls, x, w, eps):
        cls._log("rmsnorm_fwd")
        assert x.is_contiguous() and x.dim() == 2
        xf = x.float()
        r = torch.rsqrt((xf * xf).sum(-1) / x.shape[1] + eps)
        h = _r(xf * r[:, None], x.dtype)
        return (w.float() * h).to(x.dtype), r

    @classmethod
    def rmsnorm_bwd(cls, dy, x, w, rstd):
        cls._log("rmsnorm_bwd")
        xh = x.float() * rstd[:, None]
        d = dy.float()
        g = _r(d * w.float(), x.dtype)
        dot = (g * xh).sum(-1, keepdim=True) / x.shape[1]
        dx = (rstd[:, None] * (g - xh * dot)).to(x.dtype)
        dw = _r(d * _r(xh, x.dtype), x.dtype).sum(0)
        return dx, dw

    # rope.cu (in place)
    @classmethod
    def rope_(cls, x, cos, sin, backward):
        cls._log("rope_bwd" if backward else "rope_fwd")
        assert x.stride(-1) == 1 and cos.is_contiguous() and sin.is_contiguous()
        dt = x.dtype
        half = x.shape[-1] // 2
        c = cos.float()[:, None]  # [Bc, 1, S, D]
        s = sin.float()[:, None]
        a, b = x[..., :half].float(), x[..., half:].float()
        if backward:
            lo = _r(a * c[..., :half], dt) + _r(b * s[..., half:], dt)
            hi = _r(b * c[..., half:], dt) - _r(a * s[..., :half], dt)
        else:
            lo = _r(a * c[..., :half], dt) - _r(b * s[..., :half], dt)
            hi = _r(b * c[..., half:], dt) + _r(a * s[..., half:], dt)
        x[..., :half] = lo.to(dt)
        x[..., half:] = hi.to(dt)

    # swiglu.cu
    @classmethod
    def swiglu_fwd(cls, gate, up):
        cls._log("swiglu_fwd")
        g = gate.float()
        s = _r(g * torch.sigmoid(g), gate.dtype)
        return (s * up.float()).to(gate.dtype)

    @classmethod
    def swiglu_bwd(cls, dout, gate, up):
        cls._log("swiglu_bwd")
        dt = gate.dtype
        d, g = dout.float(), gate.float()
        sg = torch.sigmoid(g)
        s = _r(g * sg, dt)
        ds = _r(d * up.float(), dt)
        return (ds * sg * (1 + g * (1 - sg))).to(dt), (d * s).to(dt)

    # moe.cu
    @classmethod
    def moe_gather(cls, src, src_row, scale):
        cls._log("moe_gather")
        rows = src.index_select(0, src_row)
        if scale is None:
            return rows.clone()
        return (rows.float() * scale.float()[:, None]).to(src.dtype)

    @classmethod
    def moe_combine(cls, src, pos, scale, top_k):
        cls._log("moe_combine")
        tokens = pos.numel() // top_k
        acc = torch.zeros(tokens, src.shape[1], dtype=torch.float32)
        for k in range(top_k):  # fp32 sum in k order, as the kernel
            p = pos.view(tokens, top_k)[:, k]
            v = src.index_select(0, p).float()
            acc += v if scale is None else v * scale.view(tokens, top_k)[:, k, None]
        return acc.to(src.dtype)

    @classmethod
    def moe_scale_grad(cls, dout, src, pos, top_k):
        cls._log("moe_scale_grad")
        tokens = dout.shape[0]
        a = dout.float().repeat_interleave(top_k, dim=0)
        return (a * src.index_select(0, pos).float()).sum(-1)

    # cross_entropy.cu (in place)
    @classmethod
    def ce_rows_(cls, logits, labels, ignore_index, write_grad):
        cls._log("ce_rows")
        lf = logits.float()
        m = lf.max(-1, keepdim=True).values
        lse = (m + (lf - m).exp().sum(-1, keepdim=True).log()).squeeze(-1)
        ignored = labels == ignore_index
        safe = torch.where(ignored, 0, labels)
        loss = torch.where(ignored, 0.0, lse - lf.gather(1, safe[:, None]).squeeze(1))
        if write_grad:
            g = (lf - lse[:, None]).exp()
            onehot = torch.zeros_like(g).scatter_(1, safe[:, None], 1.0)
            g = torch.where(ignored[:, None], 0.0, g - onehot)
            logits.copy_(g.to(logits.dtype))
        return loss
