"""The Online Merging Optimizers against a straightforward re-implementation of the paper's
equations written here (per element, float64), and against ``torch.optim.AdamW`` (bitwise).

The only thing shared with the code under test is the documented RNG contract: the DARE mask of
parameter i at step t keeps element j when byte j of ``ceil(n/8)`` int64 words drawn with
``random_(-2**63, 2**63 - 1, generator)`` is below ``k = round(256 p)`` (the realised keep
probability is k/256), the generator seeded by splitmix64 over (seed, t, i) (step 0 is τ's mask);
the seed rule and the mask are re-derived here.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.rl import OnDAREAdamW, OnTIESAdamW  # noqa: E402
from qwen25.rl import omo  # noqa: E402

M64 = (1 << 64) - 1


def splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def ref_seed(seed: int, step: int, index: int) -> int:
    return splitmix(splitmix(splitmix(seed) ^ step) ^ index) & ((1 << 63) - 1)


def ref_mask(x, p, seed, step, index):  # type: ignore[no-untyped-def]
    """(mask / realised p): the mask already divided by the keep probability it realises."""
    g = torch.Generator().manual_seed(ref_seed(seed, step, index))
    words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64).random_(-(2**63), 2**63 - 1, generator=g)
    k = round(256 * p)
    kept = [b < k for b in words.numpy().tobytes()[: x.numel()]]  # bytes in memory order, one per element
    return torch.tensor(kept, dtype=x.dtype).view(x.shape) * (256 / k)


def ref_topk_mask(x, density):  # type: ignore[no-untyped-def]
    if density >= 1:
        return torch.ones_like(x)
    k = int(density * x.numel())
    order = torch.argsort(x.reshape(-1).abs(), descending=True)[:k]
    m = torch.zeros(x.numel(), dtype=x.dtype)
    m[order] = 1
    return m.view_as(x)


class Reference:
    """The equations, one parameter at a time."""

    def __init__(self, params, sft, base, *, kind, lr, betas, eps, wd, keep, alpha, rescale, clip, k, seed):  # type: ignore[no-untyped-def]
        self.p = [x.clone() for x in params]
        self.kind, self.lr, self.b1, self.b2, self.eps, self.wd = kind, lr, betas[0], betas[1], eps, wd
        self.keep, self.alpha, self.rescale, self.clip, self.k, self.seed = keep, alpha, rescale, clip, k, seed
        self.m = [torch.zeros_like(x) for x in params]
        self.v = [torch.zeros_like(x) for x in params]
        self.pending = [torch.zeros_like(x) for x in params]
        self.t = 0
        self.tau = []
        for i, (s, b) in enumerate(zip(sft, base)):
            tau = s.double() - b.double()
            if kind == "dare":
                if keep < 1:
                    tau = tau * ref_mask(tau, keep, seed, 0, i)
            else:
                tau = self.trim(tau)
            if clip is not None:
                tau = tau.clamp(-clip, clip)
            self.tau.append(tau)

    def trim(self, x):  # type: ignore[no-untyped-def]
        if self.keep >= 1:
            return x
        y = x * ref_topk_mask(x, self.keep)
        if self.rescale and x.abs().sum() >= 1e-8 and y.abs().sum() > 0:
            y = y * (x.abs().sum() / y.abs().sum())
        return y

    def step(self, grads):  # type: ignore[no-untyped-def]
        self.t += 1
        t = self.t
        for i, g in enumerate(grads):
            p = self.p[i] * (1 - self.lr * self.wd)
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            mhat = self.m[i] / (1 - self.b1 ** t)
            vhat = self.v[i] / (1 - self.b2 ** t)
            delta = -self.lr * mhat / (vhat.sqrt() + self.eps)
            if self.k > 1:
                if t % self.k:
                    self.p[i] = p + delta
                    self.pending[i] = self.pending[i] + delta
                    continue
                p = p - self.pending[i]
                delta = delta + self.pending[i]
                self.pending[i] = torch.zeros_like(p)
            if self.kind == "dare":
                d = delta * ref_mask(delta, self.keep, self.seed, t, i) if self.keep < 1 else delta
                if self.rescale and delta.abs().sum() >= 1e-8 and d.abs().sum() > 0:
                    d = d * (delta.abs().sum() / d.abs().sum())
                if self.clip is not None:
                    d = d.clamp(-self.clip, self.clip)
                self.p[i] = p + self.alpha * self.tau[i] + (1 - self.alpha) * d
            else:
                d = self.trim(delta)
                if self.clip is not None:
                    d = d.clamp(-self.clip, self.clip)
                if self.alpha == 0:
                    self.p[i] = p + d
                    continue
                tau = self.tau[i]
                sign = torch.where(tau + d >= 0, 1.0, -1.0).double()
                self.p[i] = p + self.alpha * tau * (tau.sign() == sign) + (1 - self.alpha) * d * (d.sign() == sign)


SHAPES = [(7, 5), (13,), (4, 3, 2), (1,)]


def problem(seed: int, dtype=torch.float64):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    base = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    sft = [b + 0.05 * torch.randn(b.shape, generator=g, dtype=dtype) for b in base]
    start = [s + 0.01 * torch.randn(s.shape, generator=g, dtype=dtype) for s in sft]
    grads = [[torch.randn(s, generator=g, dtype=dtype) for s in SHAPES] for _ in range(6)]
    return base, sft, start, grads


def run_ours(cls, start, sft, base, grads, **kw):  # type: ignore[no-untyped-def]
    params = [torch.nn.Parameter(x.clone()) for x in start]
    opt = cls(params, sft_params=sft, base_params=base, **kw)
    history = []
    for gs in grads:
        for p, gr in zip(params, gs):
            p.grad = gr.clone()
        opt.step()
        history.append([p.detach().clone() for p in params])
    return history, opt


SETTINGS = [
    dict(keep=0.5, alpha=0.1, rescale=False, clip=None, k=1, wd=0.0),
    dict(keep=0.3, alpha=0.01, rescale=True, clip=None, k=1, wd=0.1),
    dict(keep=0.7, alpha=0.2, rescale=True, clip=0.002, k=1, wd=0.0),
    dict(keep=0.5, alpha=0.1, rescale=False, clip=None, k=3, wd=0.05),
    dict(keep=1.0, alpha=0.3, rescale=False, clip=None, k=1, wd=0.0),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
@pytest.mark.parametrize("kind", ["dare", "ties"])
def test_steps_equal_the_equations(kind, setting, seed):  # type: ignore[no-untyped-def]
    base, sft, start, grads = problem(seed)
    lr, betas, eps = 1e-2, (0.9, 0.99), 1e-8
    ref = Reference(start, sft, base, kind=kind, lr=lr, betas=betas, eps=eps, wd=setting["wd"], keep=setting["keep"],
                    alpha=setting["alpha"], rescale=setting["rescale"], clip=setting["clip"], k=setting["k"], seed=seed)
    cls, name = (OnDAREAdamW, "reserve_p") if kind == "dare" else (OnTIESAdamW, "density")
    hist, _ = run_ours(cls, start, sft, base, grads, lr=lr, betas=betas, eps=eps, weight_decay=setting["wd"],
                       alpha=setting["alpha"], rescale=setting["rescale"], clip_val=setting["clip"],
                       merge_every=setting["k"], seed=seed, **{name: setting["keep"]})
    for step, gs in enumerate(grads):
        ref.step(gs)
        for i, (a, b) in enumerate(zip(hist[step], ref.p)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda m: f"step {step + 1} param {i}: {m}")
    moved = sum(float((a - s).abs().sum()) for a, s in zip(hist[-1], start))
    assert moved > 0


@pytest.mark.parametrize("cls,name", [(OnDAREAdamW, "reserve_p"), (OnTIESAdamW, "density")])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_alpha0_p1_is_torch_adamw_exactly(cls, name, wd):  # type: ignore[no-untyped-def]
    base, sft, start, grads = problem(5, dtype=torch.float32)
    ours, _ = run_ours(cls, start, sft, base, grads, lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=wd,
                       alpha=0.0, **{name: 1.0})
    for foreach in (False, None):
        params = [torch.nn.Parameter(x.clone()) for x in start]
        adam = torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=wd, foreach=foreach)
        for step, gs in enumerate(grads):
            for p, gr in zip(params, gs):
                p.grad = gr.clone()
            adam.step()
            for i, (a, p) in enumerate(zip(ours[step], params)):
                assert torch.equal(a, p.detach()), f"foreach={foreach} step {step + 1} param {i}"


def test_merge_every_k_updates_every_parameter_between_merges():
    """The authors' code returns after the first parameter on in-between steps; here the first
    step (in-between, k=2) is an AdamW step for every parameter, and step 2 merges."""
    base, sft, start, grads = problem(3)
    hist, _ = run_ours(OnDAREAdamW, start, sft, base, grads[:2], lr=1e-2, reserve_p=0.5, alpha=0.1, merge_every=2)
    params = [torch.nn.Parameter(x.clone()) for x in start]
    adam = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    for p, gr in zip(params, grads[0]):
        p.grad = gr.clone()
    adam.step()
    for i, (a, s, p) in enumerate(zip(hist[0], start, params)):
        assert not torch.equal(a, s), f"parameter {i} was not updated on the in-between step"
        torch.testing.assert_close(a, p.detach(), rtol=1e-12, atol=1e-14)
    # step 2 is a merge step: it differs from plain AdamW (DARE + τ)
    for p, gr in zip(params, grads[1]):
        p.grad = gr.clone()
    adam.step()
    assert any(not torch.allclose(a, p.detach()) for a, p in zip(hist[1], params))


def test_deterministic_under_a_seed_and_resumable():
    base, sft, start, grads = problem(4, dtype=torch.float32)
    kw = dict(lr=1e-2, reserve_p=0.4, alpha=0.05, rescale=True, merge_every=2)
    a, _ = run_ours(OnDAREAdamW, start, sft, base, grads, seed=7, **kw)
    b, _ = run_ours(OnDAREAdamW, start, sft, base, grads, seed=7, **kw)
    c, _ = run_ours(OnDAREAdamW, start, sft, base, grads, seed=8, **kw)
    assert all(torch.equal(x, y) for x, y in zip(a[-1], b[-1]))
    assert any(not torch.equal(x, y) for x, y in zip(a[-1], c[-1]))
    # three steps, then the state dict into a fresh optimizer, three more: the same as six in one go
    params = [torch.nn.Parameter(x.clone()) for x in start]
    opt = OnDAREAdamW(params, sft_params=sft, base_params=base, seed=7, **kw)
    for gs in grads[:3]:
        for p, gr in zip(params, gs):
            p.grad = gr.clone()
        opt.step()
    sd = opt.state_dict()
    params2 = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt2 = OnDAREAdamW(params2, sft_params=sft, base_params=base, seed=7, **kw)
    opt2.load_state_dict(sd)
    for gs in grads[3:]:
        for p, gr in zip(params2, gs):
            p.grad = gr.clone()
        opt2.step()
    assert all(torch.equal(x, y.detach()) for x, y in zip(a[-1], params2))


def test_dare_keeps_about_p_and_rescales_by_1_over_p():
    x = torch.ones(200_000)
    y = x.clone()
    opt = OnDAREAdamW([torch.nn.Parameter(torch.zeros(1))], sft_params=[torch.zeros(1)], base_params=[torch.zeros(1)],
                      lr=1.0, reserve_p=0.3)
    opt._dare(y, 1, 0)
    kept = float((y != 0).float().mean())
    p = round(256 * 0.3) / 256  # the keep probability realised at 1/256 resolution: 0.30078...
    assert abs(kept - p) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / p))
    assert math.isclose(float(y.mean()), 1.0, rel_tol=0.02)
    # every byte position of the 64-bit draws is used without bias
    for j in range(8):
        assert abs(float((y[j::8] != 0).float().mean()) - p) < 0.01
    with pytest.raises(Qwen25ValueError, match="1/512"):
        OnDAREAdamW([torch.nn.Parameter(torch.zeros(1))], sft_params=[torch.zeros(1)], base_params=[torch.zeros(1)],
                    lr=1.0, reserve_p=0.001)


def test_tau_is_fp32_for_bf16_parameters():
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))
    sft = [torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.bfloat16)]
    base = [torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.bfloat16)]
    opt = OnDAREAdamW([p], sft_params=sft, base_params=base, lr=1e-3, reserve_p=1.0)
    assert opt.state[p]["tau"].dtype == torch.float32
    assert torch.equal(opt.state[p]["tau"], torch.tensor([0.5, 1.5, 2.5, 3.5]))


def test_bad_inputs_name_what_is_wrong():
    p = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    good = [torch.zeros(3), torch.zeros(2, 2)]
    with pytest.raises(Qwen25ValueError, match="parameter 1 has shape"):
        OnDAREAdamW(p, sft_params=[torch.zeros(3), torch.zeros(4)], base_params=good, lr=1e-3)
    with pytest.raises(Qwen25ValueError, match="2 parameters but 1 sft_params"):
        OnDAREAdamW(p, sft_params=good[:1], base_params=good, lr=1e-3)
    with pytest.raises(Qwen25ValueError, match="reserve_p"):
        OnDAREAdamW(p, sft_params=good, base_params=good, lr=1e-3, reserve_p=0.0)
    with pytest.raises(Qwen25ValueError, match="density"):
        OnTIESAdamW(p, sft_params=good, base_params=good, lr=1e-3, density=1.5)
    with pytest.raises(Qwen25ValueError, match="merge_every"):
        OnDAREAdamW(p, sft_params=good, base_params=good, lr=1e-3, merge_every=0)
    with pytest.raises(TypeError, match="sft_params"):
        OnDAREAdamW(p, sft_params=torch.zeros(3), base_params=good, lr=1e-3)


def test_modules_as_sft_and_base():
    torch.manual_seed(0)
    model, sft, base = (torch.nn.Linear(4, 3) for _ in range(3))
    opt = OnDAREAdamW(model.parameters(), sft_params=sft, base_params=base, lr=1e-3, reserve_p=1.0)
    for p, s, b in zip(model.parameters(), sft.parameters(), base.parameters()):
        assert torch.equal(opt.state[p]["tau"], (s - b).detach())
    assert omo.dare_seed(3, 4, 5) == ref_seed(3, 4, 5)
