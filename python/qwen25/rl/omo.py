"""The Online Merging Optimizers (Lu et al., 2024, arXiv 2405.17931): AdamW whose every update is
merged with the SFT task vector, to keep what SFT taught while aligning (the "alignment tax").

With τ = θ_SFT − θ_base (in fp32) and δ the AdamW update of a step (δ = −lr · m̂ / (√v̂ + ε)):

* ``OnDAREAdamW``: δ' = DARE_p(δ) = δ ⊙ Bernoulli(p) / p, a fresh mask every step, drawn on the
  fly from the step's seed (nothing is stored; see :func:`dare_mask`: p is realised at 1/256
  resolution, p' = round(256·p)/256, and the kept entries are scaled by 1/p', so δ' stays
  unbiased); optionally rescaled to δ's L1 norm
  (``rescale``) and clipped to ±``clip_val``. τ' = clip(DARE_p(τ)), drawn once (as the authors'
  code does). θ ← θ + α·τ' + (1 − α)·δ'.
* ``OnTIESAdamW``: δ' = the top ``density`` share of δ by magnitude (rescaled to δ's L1 norm with
  ``rescale``); τ' the same trim of τ, once. TIES sign election: the sign of τ' + δ' per element;
  entries of τ' and δ' of the other sign are dropped; θ ← θ + α·τ'' + (1 − α)·δ''. (Unweighted
  election, as TIES and the authors' code: τ usually decides, steering δ towards SFT's direction.)
  With α = 0, τ takes no part, in the election either.
* Weight decay is decoupled and applied first, as ``torch.optim.AdamW`` does: θ ← θ·(1 − lr·wd).
* ``merge_every = k``: the steps in between are plain AdamW steps for *every* parameter (their
  updates are summed); every k-th step takes them back and merges their sum with its own update.
  (The authors' code returns from ``step()`` after the first parameter on those in-between steps,
  so every other parameter is left unchanged there; this one does not.)

With α = 0 and p = 1 (or density 1), and no rescale or clipping, a step is ``torch.optim.AdamW``'s,
operation for operation, so the results are bitwise equal.

Determinism: the DARE masks come from generators seeded by (``seed``, step, parameter index) and
the element's place in the *whole* tensor (blocks of :data:`DARE_BLOCK` elements, see
:func:`dare_mask`), so a run is the same under a seed, after a resume and on any number of ranks.

FSDP2: the parameters are DTensors. τ is sharded like its parameter (``sft_params`` and
``base_params`` may be whole tensors or DTensors of any layout) and every rank updates its own
shard. Every step gives the single-process result on the gathered tensors: a shard draws the mask
bytes of its own place in the whole tensor (only the blocks it overlaps), the L1 norms of
``rescale`` are summed over the shards, and TIES' magnitude top-k is taken over the whole
parameter (its magnitudes are gathered for that; ``torch.topk`` on the gathered tensor picks
among equal magnitudes exactly as in one process).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from ..errors import Qwen25ValueError

__all__ = ["OnDAREAdamW", "OnTIESAdamW", "DARE_BLOCK", "dare_generator", "dare_mask", "magnitude_mask"]

_MIX = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + _MIX) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


DARE_BLOCK = 1 << 20
"""Elements per DARE mask block: element j of a parameter (in the flat, row-major order of the whole
tensor) takes its byte from block ``j // DARE_BLOCK``, so a shard draws only the blocks it overlaps."""


def dare_seed(seed: int, step: int, index: int, block: int = 0) -> int:
    """The generator seed of block ``block`` of parameter ``index``'s DARE mask at ``step`` (step 0:
    τ's mask). Block 0's seed is splitmix64 over (seed, step, index); block b > 0 mixes b in once more."""
    s = _splitmix(_splitmix(_splitmix(seed & _M64) ^ step) ^ index) & ((1 << 63) - 1)
    return s if block == 0 else _splitmix(s ^ block) & ((1 << 63) - 1)


def dare_generator(seed: int, step: int, index: int, device: torch.device, block: int = 0) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(dare_seed(seed, step, index, block))
    return g


def dare_mask(x: torch.Tensor, p: float, seed: int, step: int, index: int) -> tuple[torch.Tensor, float]:
    """DARE's keep mask for ``x`` (1.0 kept, 0.0 dropped, ``x``'s dtype and shape) and the keep
    probability it realises.

    The contract (tests re-derive it): the flat tensor is cut into blocks of :data:`DARE_BLOCK`
    elements; for block b of m elements, the generator seeded by ``dare_seed(seed, step, index, b)``
    fills ``ceil(m / 8)`` int64 words with ``random_(-2**63, 2**63 - 1)``; their bytes, in memory
    order, are one uniform byte per element, and element j is kept when its byte is below
    ``k = round(256 * p)``, so the realised probability is ``k / 256``. (A tensor of up to
    DARE_BLOCK elements is one block.) One 64-bit draw covers eight elements: a Bernoulli draw per
    element costs several times more than the AdamW step.
    """
    k = round(256 * p)
    mask = torch.empty_like(x)
    torch.lt(_dare_bytes(x, seed, step, index), k, out=mask)
    return mask, k / 256


def _dare_bytes(x: torch.Tensor, seed: int, step: int, index: int, start: int = 0,
                total: int | None = None) -> torch.Tensor:
    """One uniform byte per element of ``x`` (uint8, ``x``'s shape), as :func:`dare_mask` draws
    them, for ``x`` the flat range ``[start, start + x.numel())`` of a whole tensor of ``total``
    elements (default: ``x`` is the whole tensor). Only the blocks that the range overlaps are drawn."""
    n = x.numel()
    total = n if total is None else total
    if n == 0:
        return torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    first, last = start // DARE_BLOCK, (start + n - 1) // DARE_BLOCK
    lo = first * DARE_BLOCK
    covered = min(total, (last + 1) * DARE_BLOCK) - lo  # whole blocks, as each is defined
    words = torch.empty((covered + 7) // 8, dtype=torch.int64, device=x.device)
    per = DARE_BLOCK // 8
    for b in range(first, last + 1):
        a = (b - first) * per
        e = min(words.numel(), a + per)
        words[a:e].random_(-(2**63), 2**63 - 1, generator=dare_generator(seed, step, index, x.device, b))
    return words.view(torch.uint8)[start - lo:start - lo + n].view(x.shape)


def magnitude_mask(x: torch.Tensor, density: float) -> torch.Tensor:
    """1.0 where ``x`` is among its ``int(density * numel)`` largest magnitudes, else 0.0 (ties
    broken by ``torch.topk``). density >= 1 keeps everything; a count below 1 keeps nothing."""
    if density >= 1:
        return torch.ones_like(x)
    k = int(density * x.numel())
    mask = torch.zeros(x.numel(), dtype=x.dtype, device=x.device)
    if k >= 1:
        idx = torch.topk(x.reshape(-1).abs(), k, sorted=False).indices
        mask[idx] = 1.0
    return mask.view_as(x)


def _local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of a DTensor (FSDP2), or the tensor itself."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def _like_param(p: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """``full`` (a whole tensor) laid out as ``p``: sharded the same way when ``p`` is a DTensor."""
    mesh = getattr(p, "device_mesh", None)
    if mesh is not None:
        from torch.distributed.tensor import DTensor, distribute_tensor

        if isinstance(full, DTensor):
            return full.redistribute(mesh, p.placements)
        return distribute_tensor(full.to(_local(p).device), mesh, p.placements)
    return full.to(p.device)


class _Layout:
    """Where a DTensor's local shard sits in its whole tensor (the optimizer works on shards)."""

    def __init__(self, p: Any) -> None:
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

        self.mesh, self.placements = p.device_mesh, tuple(p.placements)
        self.shape, self.stride = tuple(p.shape), tuple(p.stride())
        local_shape, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
        self.local_shape, self.offset = tuple(local_shape), tuple(offset)
        self.total = math.prod(self.shape)
        # a shard whose every dimension but the first is whole is a flat range of the whole tensor
        whole = all(a == b for a, b in zip(self.local_shape[1:], self.shape[1:]))
        self.start: int | None = None
        if whole:
            self.start = (self.offset[0] * math.prod(self.shape[1:])) if self.shape else 0

    def dtensor(self, local: torch.Tensor) -> Any:
        from torch.distributed.tensor import DTensor

        return DTensor.from_local(local, self.mesh, self.placements, run_check=False, shape=torch.Size(self.shape),
                                  stride=self.stride)

    def full(self, local: torch.Tensor) -> torch.Tensor:
        """The whole tensor (gathered from every rank's shard)."""
        out: torch.Tensor = self.dtensor(local).full_tensor()
        return out

    def local_of(self, full: torch.Tensor) -> torch.Tensor:
        """This rank's shard of a whole tensor."""
        return full[tuple(slice(o, o + n) for o, n in zip(self.offset, self.local_shape))]

    def l1(self, local: torch.Tensor) -> torch.Tensor:
        """The L1 norm of the whole tensor (the shards' norms summed)."""
        out: torch.Tensor = torch.linalg.vector_norm(self.dtensor(local), 1).full_tensor()
        return out


class _OnlineMergingAdamW(torch.optim.Optimizer):
    _sparsity_name = "reserve_p"

    def __init__(self, params: Iterable[Any], *, sft_params: Any, base_params: Any, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 sparsity: float, alpha: float, rescale: bool, clip_val: float | None, merge_every: int,
                 seed: int) -> None:
        name = self._sparsity_name
        for what, v, ok in (("lr", lr, lr >= 0), ("eps", eps, eps >= 0), ("weight_decay", weight_decay, weight_decay >= 0),
                            ("betas[0]", betas[0], 0 <= betas[0] < 1), ("betas[1]", betas[1], 0 <= betas[1] < 1),
                            (name, sparsity, 0 < sparsity <= 1), ("alpha", alpha, 0 <= alpha <= 1)):
            if what == "reserve_p" and isinstance(v, (int, float)) and 0 < v < 1 / 512:
                raise Qwen25ValueError(f"{type(self).__name__}: reserve_p {v!r} is below 1/512 (DARE masks are "
                                       "drawn at 1/256 resolution)")
            if not (isinstance(v, (int, float)) and math.isfinite(v) and ok):
                raise Qwen25ValueError(f"{type(self).__name__}: invalid {what} {v!r}")
        if clip_val is not None and not clip_val > 0:
            raise Qwen25ValueError(f"{type(self).__name__}: clip_val must be positive or None, got {clip_val!r}")
        if not (isinstance(merge_every, int) and merge_every >= 1):
            raise Qwen25ValueError(f"{type(self).__name__}: merge_every must be an int >= 1, got {merge_every!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.sparsity, self.alpha, self.rescale, self.clip_val = float(sparsity), float(alpha), bool(rescale), clip_val
        self.merge_every, self.seed = merge_every, int(seed)
        plist = [p for g in self.param_groups for p in g["params"]]
        sft, base = self._tensors(sft_params, "sft_params"), self._tensors(base_params, "base_params")
        if not (len(sft) == len(base) == len(plist)):
            raise Qwen25ValueError(f"{type(self).__name__}: {len(plist)} parameters but {len(sft)} sft_params and "
                                   f"{len(base)} base_params (give them in the parameters' order)")
        self._index = {id(p): i for i, p in enumerate(plist)}
        # FSDP2: where each parameter's shard sits in the whole tensor (None: a plain tensor)
        self._layouts = [_Layout(p) if getattr(p, "device_mesh", None) is not None else None for p in plist]
        with torch.no_grad():
            for i, (p, s, b) in enumerate(zip(plist, sft, base)):
                if tuple(s.shape) != tuple(p.shape) or tuple(b.shape) != tuple(p.shape):
                    raise Qwen25ValueError(f"{type(self).__name__}: parameter {i} has shape {tuple(p.shape)}, but its "
                                           f"sft_params entry {tuple(s.shape)} and base_params entry {tuple(b.shape)}")
                dt = torch.promote_types(torch.promote_types(s.dtype, b.dtype), torch.float32)  # fp32 at least
                tau = _like_param(p, s.detach().to(dt)) - _like_param(p, b.detach().to(dt))
                st = self.state[p]
                st["tau"] = self._trim_tau(_local(tau), i)  # fp32, whatever the parameter's dtype
                if hasattr(tau, "device_mesh"):  # keep the DTensor wrapper for checkpoints
                    from torch.distributed.tensor import DTensor

                    st["tau"] = DTensor.from_local(st["tau"], tau.device_mesh, tau.placements, run_check=False)
                # the whole state now, so a checkpoint template (DCP's get_state_dict) has every key
                st["step"] = torch.tensor(0.0)
                st["exp_avg"] = torch.zeros_like(p)
                st["exp_avg_sq"] = torch.zeros_like(p)
                if merge_every > 1:
                    st["pending"] = torch.zeros_like(p)

    @staticmethod
    def _tensors(x: Any, what: str) -> list[torch.Tensor]:
        if isinstance(x, torch.nn.Module):
            return [p for p in x.parameters()]
        if isinstance(x, torch.Tensor) or not isinstance(x, (Sequence, Iterable)):
            raise TypeError(f"{what} must be a sequence of tensors (in the parameters' order) or an nn.Module, "
                            f"got {type(x).__name__}")
        out = list(x)
        for i, t in enumerate(out):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{what}[{i}] is a {type(t).__name__}, not a tensor")
        return out

    # the variant: how τ and δ are trimmed and merged
    def _trim_tau(self, tau: torch.Tensor, index: int) -> torch.Tensor:
        raise NotImplementedError

    def _merge(self, p: torch.Tensor, tau: torch.Tensor, delta: torch.Tensor, step: int, index: int) -> None:
        raise NotImplementedError

    def _l1(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """The L1 norm of parameter ``index``'s whole tensor, given ``x``, this rank's part of it."""
        layout = self._layouts[index]
        return layout.l1(x) if layout is not None else torch.linalg.vector_norm(x, 1)

    def _l1_rescale(self, trimmed: torch.Tensor, org: torch.Tensor, index: int) -> None:
        new = self._l1(trimmed, index)
        if float(org) >= 1e-8 and float(new) > 0:
            trimmed.mul_(org / new)

    def _dare_bytes(self, x: torch.Tensor, step: int, index: int) -> torch.Tensor:
        """The DARE mask bytes of ``x``, parameter ``index``'s local shard (or whole tensor), drawn
        for its place in the whole tensor."""
        layout = self._layouts[index]
        if layout is None:
            return _dare_bytes(x, self.seed, step, index)
        if layout.start is not None:
            return _dare_bytes(x, self.seed, step, index, layout.start, layout.total)
        # a shard that is not a flat range of the whole tensor: draw the whole mask, keep ours
        whole = torch.empty(layout.shape, dtype=x.dtype, device=x.device)
        return layout.local_of(_dare_bytes(whole, self.seed, step, index))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                i = self._index[id(p)]
                param, grad = _local(p), _local(p.grad)
                if grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                st = self.state[p]
                if "step" not in st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                    if self.merge_every > 1:
                        st["pending"] = torch.zeros_like(p)
                exp_avg, exp_avg_sq = _local(st["exp_avg"]), _local(st["exp_avg_sq"])
                st["step"] += 1
                step = int(st["step"].item())
                # AdamW, as torch.optim.AdamW's single-tensor path
                if wd != 0:
                    param.mul_(1 - lr * wd)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = lr / (1 - beta1 ** step)
                denom = (exp_avg_sq.sqrt() / (1 - beta2 ** step) ** 0.5).add_(eps)
                tau = _local(st["tau"])
                if self.merge_every > 1:
                    pending = _local(st["pending"])
                    if step % self.merge_every:  # an in-between step: plain AdamW, the update kept aside
                        delta = exp_avg / denom
                        delta.mul_(-step_size)
                        param.add_(delta)
                        pending.add_(delta)
                        continue  # on to the next parameter (the authors' code returns here)
                    delta = exp_avg / denom
                    delta.mul_(-step_size)
                    param.sub_(pending)
                    delta.add_(pending)
                    pending.zero_()
                    self._merge(param, tau, delta, step, i)
                    continue
                if self._plain():
                    param.addcdiv_(exp_avg, denom, value=-step_size * (1 - self.alpha))
                    if self.alpha:
                        param.add_(tau, alpha=self.alpha)
                    continue
                self._merge_fast(param, tau, exp_avg, denom, step_size, step, i)
        return loss

    def _plain(self) -> bool:
        return self.sparsity >= 1 and not self.rescale and self.clip_val is None

    def _merge_fast(self, param: torch.Tensor, tau: torch.Tensor, exp_avg: torch.Tensor, denom: torch.Tensor,
                    step_size: float, step: int, index: int) -> None:
        delta = exp_avg / denom
        delta.mul_(-step_size)
        self._merge(param, tau, delta, step, index)


class OnDAREAdamW(_OnlineMergingAdamW):
    """AdamW with online DARE merging of the SFT task vector; a drop-in for ``torch.optim.AdamW``
    (see the module docstring for the equations).

    * ``sft_params``, ``base_params``: the SFT and base models' tensors in the order of ``params``
      (or the two ``nn.Module`` s when ``params`` is ``model.parameters()``).
    * ``reserve_p``: DARE's keep probability p; ``alpha``: the weight of τ in each merge;
      ``rescale``: rescale the kept update to the update's L1 norm; ``clip_val``: clip the merged
      update (and τ') to ±clip_val (None: no clipping); ``merge_every``: merge every k steps;
      ``seed``: the masks' seed. The defaults are ours (the paper sweeps them), not a recipe."""

    _sparsity_name = "reserve_p"

    def __init__(self, params: Iterable[Any], *, sft_params: Any, base_params: Any, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 reserve_p: float = 0.5, alpha: float = 1e-4, rescale: bool = False, clip_val: float | None = None,
                 merge_every: int = 1, seed: int = 0) -> None:
        super().__init__(params, sft_params=sft_params, base_params=base_params, lr=lr, betas=betas, eps=eps,
                         weight_decay=weight_decay, sparsity=reserve_p, alpha=alpha, rescale=rescale,
                         clip_val=clip_val, merge_every=merge_every, seed=seed)

    def _dare(self, x: torch.Tensor, step: int, index: int) -> None:
        """x ← x ⊙ Bernoulli(p) / p, in place, with the (step, index) mask."""
        if self.sparsity >= 1:
            return
        k = round(256 * self.sparsity)
        x.mul_(self._dare_bytes(x, step, index) < k).mul_(256 / k)

    def _trim_tau(self, tau: torch.Tensor, index: int) -> torch.Tensor:
        self._dare(tau, 0, index)
        if self.clip_val is not None:
            tau.clamp_(-self.clip_val, self.clip_val)
        return tau

    def _merge(self, param: torch.Tensor, tau: torch.Tensor, delta: torch.Tensor, step: int, index: int) -> None:
        org = self._l1(delta, index) if self.rescale else None
        self._dare(delta, step, index)
        if org is not None:
            self._l1_rescale(delta, org, index)
        if self.clip_val is not None:
            delta.clamp_(-self.clip_val, self.clip_val)
        if self.alpha:
            param.add_(tau, alpha=self.alpha)
        param.add_(delta, alpha=1 - self.alpha)

    def _merge_fast(self, param: torch.Tensor, tau: torch.Tensor, exp_avg: torch.Tensor, denom: torch.Tensor,
                    step_size: float, step: int, index: int) -> None:
        if self.rescale or self.clip_val is not None:  # these need the update itself
            return super()._merge_fast(param, tau, exp_avg, denom, step_size, step, index)
        # δ' = DARE(-step_size · m / denom): dropped entries get an infinite denominator (m / inf = 0,
        # signs and NaNs as m * 0 would give), so the mask costs one byte per element and no extra
        # pass over the floats
        k = round(256 * self.sparsity)
        denom.masked_fill_(self._dare_bytes(exp_avg, step, index) >= k, math.inf)
        param.addcdiv_(exp_avg, denom, value=-step_size * (1 - self.alpha) / (k / 256))
        if self.alpha:
            param.add_(tau, alpha=self.alpha)


class OnTIESAdamW(_OnlineMergingAdamW):
    """AdamW with online TIES merging of the SFT task vector (magnitude trim with ``density``, sign
    election, merge); the other options as :class:`OnDAREAdamW`. The top-k trim is exact (a
    ``topk`` per parameter and step), so it costs more than DARE on big tensors; under FSDP2 each
    rank gathers the whole parameter for it (the top-k is over the parameter tensor, as the paper's,
    not over a shard), one parameter at a time."""

    _sparsity_name = "density"

    def __init__(self, params: Iterable[Any], *, sft_params: Any, base_params: Any, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 density: float = 0.5, alpha: float = 1e-4, rescale: bool = False, clip_val: float | None = None,
                 merge_every: int = 1, seed: int = 0) -> None:
        super().__init__(params, sft_params=sft_params, base_params=base_params, lr=lr, betas=betas, eps=eps,
                         weight_decay=weight_decay, sparsity=density, alpha=alpha, rescale=rescale,
                         clip_val=clip_val, merge_every=merge_every, seed=seed)

    def _trim(self, x: torch.Tensor, index: int) -> None:
        """Keep the top ``density`` share of the whole parameter's magnitudes (a shard: gathered)."""
        if self.sparsity >= 1:
            return
        org = self._l1(x, index) if self.rescale else None
        layout = self._layouts[index]
        if layout is None:
            x.mul_(magnitude_mask(x, self.sparsity))
        else:
            x.mul_(layout.local_of(magnitude_mask(layout.full(x), self.sparsity)))
        if org is not None:
            self._l1_rescale(x, org, index)

    def _trim_tau(self, tau: torch.Tensor, index: int) -> torch.Tensor:
        self._trim(tau, index)
        if self.clip_val is not None:
            tau.clamp_(-self.clip_val, self.clip_val)
        return tau

    def _plain(self) -> bool:
        return super()._plain() and self.alpha == 0  # sign election drops entries whenever τ takes part

    def _merge(self, param: torch.Tensor, tau: torch.Tensor, delta: torch.Tensor, step: int, index: int) -> None:
        self._trim(delta, index)
        if self.clip_val is not None:
            delta.clamp_(-self.clip_val, self.clip_val)
        if not self.alpha:  # τ takes no part: no election either
            param.add_(delta)
            return
        elected = torch.where(tau + delta >= 0, 1.0, -1.0).to(delta.dtype)  # the sign of the sum; 0 counts as +
        param.add_(tau * (torch.sign(tau) == elected), alpha=self.alpha)
        param.add_(delta * (torch.sign(delta) == elected), alpha=1 - self.alpha)
