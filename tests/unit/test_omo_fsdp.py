"""The Online Merging Optimizers under FSDP2: two gloo ranks on the CPU (``torchrun``), a tiny
transformers ``Qwen2ForCausalLM`` loaded into ours and sharded with ``fully_shard``, ``sft_params``
and ``base_params`` given as DTensors sharded like the parameters (so τ is sharded).

Every step's gathered parameters are checked against independent references computed here in one
process on the whole tensors, with the gradients that FSDP2 really produced (gathered each step):

* α = 0 and p = 1 (and TIES density 1): ``torch.optim.AdamW``;
* α > 0, p = 1: the paper's equations (θ ← θ(1 − lr·wd) + α τ + (1 − α) δ), in float64;
* p < 1 (DARE): the same with the masks re-derived from the documented contract (per parameter,
  blocks of ``DARE_BLOCK`` elements of the whole tensor; made small here, so shards start inside
  blocks and span several), i.e. the sharded masks do not depend on the shard layout; the keep
  fraction is p' = round(256p)/256; every rank's shard is updated;
* TIES: magnitude top-k over the whole parameter tensor (as the paper: per parameter tensor), sign
  election and the merge, in float64.

The vocabulary (131 rows) does not split evenly, so one rank holds a shorter shard. Last, DPO with
OnDARE and OnTIES (τ ≠ 0) on two ranks takes the one-process run's steps, end to end.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from qwen25.rl import OnDAREAdamW, OnTIESAdamW  # noqa: E402
from qwen25.rl import omo  # noqa: E402
from tests.unit.test_rl_omo import ref_seed as whole_seed  # noqa: E402
from tests.unit.test_rl_omo import splitmix  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(vocab_size=131, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rope_theta=10000.0, tie_word_embeddings=True)
BLOCK = 256  # DARE_BLOCK in the workers and the reference: shards start inside blocks and span several
STEPS = 3
LR = 1e-3

# name -> (kind, options); wd, eps and the rest are the same in the worker and the reference
SETTINGS: dict[str, tuple[str, dict]] = {
    "adamw_dare": ("dare", dict(reserve_p=1.0, alpha=0.0, weight_decay=0.1)),
    "adamw_ties": ("ties", dict(density=1.0, alpha=0.0, weight_decay=0.1)),
    "dare_p1": ("dare", dict(reserve_p=1.0, alpha=0.1, weight_decay=0.01)),
    "dare_fast": ("dare", dict(reserve_p=0.5, alpha=0.0)),
    "dare_rescale": ("dare", dict(reserve_p=0.3, alpha=0.05, rescale=True, weight_decay=0.01)),
    "dare_clip_k2": ("dare", dict(reserve_p=0.6, alpha=0.05, clip_val=5e-4, merge_every=2, seed=7)),
    "ties": ("ties", dict(density=0.3, alpha=0.1, eps=1e-3)),
    "ties_rescale": ("ties", dict(density=0.5, alpha=0.05, rescale=True, clip_val=2e-3, eps=1e-3, weight_decay=0.01)),
}


# ----------------------------------------------------------------------------- the worker
def _worker(problem: str, out: str) -> None:  # pragma: no cover - runs under torchrun
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import distribute_tensor

    from qwen25.model import Qwen2ForCausalLM
    from qwen25.train.parallel import apply_fsdp

    omo.DARE_BLOCK = BLOCK
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    prob = torch.load(problem, weights_only=True)
    results: dict[str, dict] = {}
    for name, (kind, opts) in SETTINGS.items():
        model = Qwen2ForCausalLM.from_pretrained(prob["folder"], dtype=torch.float32).train()
        with torch.no_grad():
            for p, s in zip(model.parameters(), prob["start"]):
                p.copy_(s)
        apply_fsdp(model, mesh, param_dtype=torch.float32)
        params = list(model.parameters())
        assert all(type(p).__name__ == "DTensor" or hasattr(p, "device_mesh") for p in params)
        sft = [distribute_tensor(s, mesh, p.placements) for s, p in zip(prob["sft"], params)]
        base = [distribute_tensor(b, mesh, p.placements) for b, p in zip(prob["base"], params)]
        cls = OnDAREAdamW if kind == "dare" else OnTIESAdamW
        opt = cls(params, sft_params=sft, base_params=base, lr=LR, **opts)
        assert all(hasattr(opt.state[p]["tau"], "device_mesh") for p in params)  # τ is sharded
        before = [p.to_local().detach().clone() for p in params]
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        grads, history = [], []
        for _ in range(STEPS):
            ids = torch.randint(0, TINY["vocab_size"], (2, 12), generator=g)
            logits = model(ids).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
            loss.backward()
            grads.append([p.grad.full_tensor().clone() for p in params])
            opt.step()
            opt.zero_grad(set_to_none=True)
            history.append([p.detach().full_tensor().clone() for p in params])
        changed = [float((p.to_local().detach() - b).abs().max()) if b.numel() else None
                   for p, b in zip(params, before)]
        results[name] = {"grads": grads, "history": history, "changed": changed,
                         "local_numel": [p.to_local().numel() for p in params]}
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


# -------------------------------------------------------------------------- the references
def ref_seed(seed: int, step: int, index: int, block: int) -> int:
    """The single-process seed rule (test_rl_omo's re-derivation), then one more splitmix per block."""
    s = whole_seed(seed, step, index)
    return s if block == 0 else splitmix(s ^ block) & ((1 << 63) - 1)


def ref_keep(shape, p: float, seed: int, step: int, index: int, block: int = BLOCK) -> torch.Tensor:
    """The documented DARE mask of a whole tensor, divided by the realised keep probability."""
    n = math.prod(shape)
    parts = []
    for b in range(-(-n // block)):
        m = min(block, n - b * block)
        gen = torch.Generator().manual_seed(ref_seed(seed, step, index, b))
        words = torch.empty((m + 7) // 8, dtype=torch.int64).random_(-(2**63), 2**63 - 1, generator=gen)
        parts.append(np.frombuffer(words.numpy().tobytes(), dtype=np.uint8)[:m])
    k = round(256 * p)
    kept = np.concatenate(parts) < k
    return torch.from_numpy(kept.astype(np.float64)).view(shape) * (256 / k)


def ref_topk(x: torch.Tensor, density: float) -> torch.Tensor:
    if density >= 1:
        return x
    k = int(density * x.numel())
    m = torch.zeros(x.numel(), dtype=x.dtype)
    m[torch.argsort(x.reshape(-1).abs(), descending=True)[:k]] = 1
    return x * m.view_as(x)


def reference(kind: str, opts: dict, start, sft, base, grads) -> list[list[torch.Tensor]]:
    """The paper's equations on whole tensors, one parameter at a time, in float64."""
    lr, wd, eps = LR, opts.get("weight_decay", 0.0), opts.get("eps", 1e-8)
    b1, b2 = 0.9, 0.999
    keep = opts.get("reserve_p", opts.get("density", 1.0))
    alpha, rescale, clip, k, seed = (opts.get("alpha", 0.0), opts.get("rescale", False), opts.get("clip_val"),
                                     opts.get("merge_every", 1), opts.get("seed", 0))

    def l1_like(y, x):  # rescale y to x's L1 norm
        if rescale and x.abs().sum() >= 1e-8 and y.abs().sum() > 0:
            return y * (x.abs().sum() / y.abs().sum())
        return y

    def trim(x, step, i):
        if kind == "dare":
            return l1_like(x * ref_keep(x.shape, keep, seed, step, i), x) if keep < 1 else x
        return l1_like(ref_topk(x, keep), x)

    params = [s.double().clone() for s in start]
    taus = []
    for i, (s, b) in enumerate(zip(sft, base)):
        t = s.double() - b.double()
        t = t * ref_keep(t.shape, keep, seed, 0, i) if kind == "dare" and keep < 1 else (
            ref_topk(t, keep) if kind == "ties" else t)
        taus.append(t.clamp(-clip, clip) if clip is not None else t)
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    pending = [torch.zeros_like(p) for p in params]
    out = []
    for t, gs in enumerate(grads, 1):
        for i, g in enumerate(gs):
            g = g.double()
            p = params[i] * (1 - lr * wd)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            delta = -lr * (m[i] / (1 - b1 ** t)) / ((v[i] / (1 - b2 ** t)).sqrt() + eps)
            if k > 1:
                if t % k:
                    params[i] = p + delta
                    pending[i] = pending[i] + delta
                    continue
                p, delta, pending[i] = p - pending[i], delta + pending[i], torch.zeros_like(p)
            d = trim(delta, t, i)
            if clip is not None:
                d = d.clamp(-clip, clip)
            if kind == "dare":
                params[i] = p + alpha * taus[i] + (1 - alpha) * d
            elif alpha == 0:
                params[i] = p + d
            else:
                tau = taus[i]
                sign = torch.where(tau + d >= 0, 1.0, -1.0).double()
                params[i] = p + alpha * tau * (tau.sign() == sign) + (1 - alpha) * d * (d.sign() == sign)
        out.append([p.clone() for p in params])
    return out


def torch_adamw(opts: dict, start, grads) -> list[list[torch.Tensor]]:
    params = [torch.nn.Parameter(s.clone()) for s in start]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=opts.get("weight_decay", 0.0), foreach=False)
    out = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()
        out.append([p.detach().clone() for p in params])
    return out


# ------------------------------------------------------------------------------ the test
@pytest.fixture(scope="module")
def runs(tmp_path_factory):  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    from qwen25.model import Qwen2ForCausalLM

    tmp = tmp_path_factory.mktemp("omo_fsdp")
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**TINY)).float().save_pretrained(tmp / "hf")
    ours = Qwen2ForCausalLM.from_pretrained(tmp / "hf", dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    base = [p.detach().clone() for p in ours.parameters()]
    sft = [b + 0.05 * torch.randn(b.shape, generator=g) for b in base]
    start = [s + 0.01 * torch.randn(s.shape, generator=g) for s in sft]
    torch.save({"folder": str(tmp / "hf"), "base": base, "sft": sft, "start": start}, tmp / "problem.pt")
    code = ("import sys; from tests.unit.test_omo_fsdp import _worker; _worker(sys.argv[1], sys.argv[2])")
    script = tmp / "run_worker.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{code}\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
           str(tmp / "problem.pt"), str(tmp)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-4000:]
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return {"base": base, "sft": sft, "start": start, "ranks": ranks}


def _close(got, want, atol=1e-7, rtol=1e-6):  # type: ignore[no-untyped-def]
    for step, (a, b) in enumerate(zip(got, want), 1):
        for i, (x, y) in enumerate(zip(a, b)):
            torch.testing.assert_close(x.double(), y.double(), atol=atol, rtol=rtol,
                                       msg=lambda s, step=step, i=i: f"step {step}, parameter {i}: {s}")


@pytest.mark.parametrize("name", ["adamw_dare", "adamw_ties"])
def test_alpha0_p1_is_torch_adamw(runs, name):  # type: ignore[no-untyped-def]
    r = runs["ranks"][0][name]
    want = torch_adamw(SETTINGS[name][1], runs["start"], r["grads"])
    for a, b in zip(r["history"], want):
        for x, y in zip(a, b):
            assert torch.equal(x, y), float((x - y).abs().max())


@pytest.mark.parametrize("name", [n for n in SETTINGS if not n.startswith("adamw")])
def test_sharded_steps_equal_the_equations_on_whole_tensors(runs, name):  # type: ignore[no-untyped-def]
    kind, opts = SETTINGS[name]
    r = runs["ranks"][0][name]
    assert torch.equal(torch.stack([torch.cat([g.reshape(-1) for g in gs]) for gs in r["grads"]]),
                       torch.stack([torch.cat([g.reshape(-1) for g in gs]) for gs in runs["ranks"][1][name]["grads"]]))
    want = reference(kind, opts, runs["start"], runs["sft"], runs["base"], r["grads"])
    _close(r["history"], want)


@pytest.mark.parametrize("name", [n for n in SETTINGS if not n.startswith("adamw")])
def test_every_rank_updates_its_shard(runs, name):  # type: ignore[no-untyped-def]
    for rank, res in enumerate(runs["ranks"]):
        assert all(n > 0 for n in res[name]["local_numel"])  # really sharded: each rank holds a part
        for i, c in enumerate(res[name]["changed"]):
            assert c is not None and c > 0, (rank, i)
    # and the shards differ in size where the rows do not split evenly (131 rows: 66 + 65)
    assert runs["ranks"][0][name]["local_numel"][0] != runs["ranks"][1][name]["local_numel"][0]


def test_dare_keep_fraction_and_layout_independence(runs):  # type: ignore[no-untyped-def]
    """With α = 0 the change of a step is the kept update alone: the kept share is p' = 128/256;
    and one process with the same gradients (any layout) takes the very same steps."""
    r = runs["ranks"][0]["dare_fast"]
    prev = runs["start"]
    for now in r["history"]:
        moved = sum(int((a != b).sum()) for a, b in zip(now, prev))
        total = sum(a.numel() for a in now)
        assert abs(moved / total - 0.5) < 0.02, moved / total
        prev = now
    old = omo.DARE_BLOCK
    omo.DARE_BLOCK = BLOCK
    try:
        params = [torch.nn.Parameter(s.clone()) for s in runs["start"]]
        opt = OnDAREAdamW(params, sft_params=runs["sft"], base_params=runs["base"], lr=LR,
                          **SETTINGS["dare_fast"][1])
        for gs, want in zip(r["grads"], r["history"]):
            for p, g in zip(params, gs):
                p.grad = g.clone()
            opt.step()
            for p, w in zip(params, want):
                assert torch.equal(p.detach(), w)
    finally:
        omo.DARE_BLOCK = old


def test_block_contract_on_a_flat_range():
    """A shard's bytes are the whole tensor's bytes at its place, across block boundaries."""
    x = torch.empty(3000)
    old = omo.DARE_BLOCK
    omo.DARE_BLOCK = 256
    try:
        whole = omo._dare_bytes(x, 5, 3, 2)
        want = ref_keep((3000,), 0.5, 5, 3, 2, block=256) > 0
        assert torch.equal(whole < 128, want)
        for a, b in [(0, 100), (100, 700), (1000, 1024), (2999, 3000), (700, 3000)]:
            part = omo._dare_bytes(x[a:b], 5, 3, 2, start=a, total=3000)
            assert torch.equal(part, whole[a:b]), (a, b)
    finally:
        omo.DARE_BLOCK = old
    # one block (the default size): the contract of a whole tensor is unchanged
    assert omo.dare_seed(5, 3, 2) == ref_seed(5, 3, 2, 0)
    assert torch.equal(omo.dare_mask(x, 0.5, 5, 3, 2)[0] > 0, ref_keep((3000,), 0.5, 5, 3, 2, block=1 << 20) > 0)


# ------------------------------------------------------------ OMO inside DPO, end to end
DPO_OPTS = {"omo-dare": {"reserve_p": 0.5, "alpha": 0.1}, "omo-ties": {"density": 0.4, "alpha": 0.1}}


def _dpo_config(data: str, base: str, optimizer: str):  # type: ignore[no-untyped-def]
    from tests.unit.test_rl_dpo import tiny_config

    method = {"beta": 0.1, "optimizer": optimizer, "base_model": base, "epochs": 1.0, **DPO_OPTS[optimizer]}
    return tiny_config(data, lr=1e-2, method=method)


def _dpo_run(data: str, base: str, optimizer: str) -> dict:  # type: ignore[no-untyped-def]
    from qwen25.rl.dpo import train_dpo

    tr, recs = train_dpo(_dpo_config(data, base, optimizer), progress=False, verbose=False)
    sd = tr.model.state_dict()
    params = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone() for k, v in sd.items()}
    return {"records": recs, "world": tr.dist.world_size, "params": params}


def _dpo_worker(data: str, base: str, out: str) -> None:  # pragma: no cover - runs under torchrun
    import torch.distributed as dist

    dist.init_process_group("gloo")
    res = {name: _dpo_run(data, base, name) for name in DPO_OPTS}
    torch.save(res, os.path.join(out, f"dpo-rank{dist.get_rank()}.pt"))
    dist.barrier()
    dist.destroy_process_group()


def test_dpo_with_omo_on_two_ranks_equals_one_process(tmp_path):  # type: ignore[no-untyped-def]
    """DPO with OnDARE / OnTIES (τ ≠ 0: a separate base model) on two FSDP2 ranks takes the
    one-process run's steps: the same loss at every step (which depends on every earlier merge)
    and the same final weights."""
    from qwen25.model import Qwen2ForCausalLM
    from qwen25.train.trainer import model_config
    from tests.unit.test_rl_dpo import toy_pairs

    data = toy_pairs(tmp_path / "pairs.jsonl", 32, seed=3)
    base = tmp_path / "base"
    Qwen2ForCausalLM.from_config(model_config(_dpo_config(data, "", "omo-dare")), dtype=torch.float32,
                                 seed=11).save_pretrained(base)
    script = tmp_path / "run_worker.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
                      "from tests.unit.test_omo_fsdp import _dpo_worker; _dpo_worker(*sys.argv[1:4])\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), data,
           str(base), str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-4000:]
    two = torch.load(tmp_path / "dpo-rank0.pt", weights_only=False)
    for name in DPO_OPTS:
        one = _dpo_run(data, str(base), name)
        got = two[name]
        assert one["world"] == 1 and got["world"] == 2
        assert len(one["records"]) == len(got["records"]) == 4
        for a, b in zip(got["records"], one["records"]):
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7), (name, b["step"])
            assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5, abs=1e-7), (name, b["step"])
        assert one["records"][-1]["loss"] != one["records"][0]["loss"]
        for k, v in one["params"].items():
            if k.endswith("k_proj.bias"):  # a zero gradient in exact arithmetic: Adam scales its noise to ±lr
                continue
            torch.testing.assert_close(got["params"][k], v, rtol=1e-5, atol=1e-6,
                                       msg=lambda m, k=k, name=name: f"{name} {k}: {m}")
