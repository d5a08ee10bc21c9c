"""GRPO's pieces against independent oracles: the issue's worked values, pure-Python statistics
and loss formulas (floats and ``math``, no torch), brute-force log_softmax over full logits for
the chunked log-probs, and constructed rewards for the variance order."""

from __future__ import annotations

import math
import random
import statistics

import pytest

torch = pytest.importorskip("torch")

from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.rl.grpo import (  # noqa: E402
    group_advantages,
    grpo_loss,
    k3_kl,
    linear_logps,
    order_by_variance,
    token_logps,
    zero_std_groups,
)


# ------------------------------------------------------------------------------ worked values
def test_worked_values():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)
    assert adv.tolist() == pytest.approx([0.8658754, -0.8658754, -0.8658754, 0.8658754], abs=5e-7)
    kl = k3_kl(torch.tensor([-1.0]), torch.tensor([-1.2]))
    assert float(kl[0]) == pytest.approx(0.0187308, abs=5e-8)
    assert float(k3_kl(torch.tensor([-0.7]), torch.tensor([-0.7]))[0]) == 0.0


# ------------------------------------------------------------------------------ advantages
def py_advantages(rewards: list[float], g: int, scale: str) -> list[float]:
    out = []
    batch_sd = statistics.stdev(rewards)
    for q in range(len(rewards) // g):
        grp = rewards[q * g:(q + 1) * g]
        mu = statistics.fmean(grp)
        sd = {"group": statistics.stdev(grp), "batch": batch_sd, "none": None}[scale]
        out += [(r - mu) / (sd + 1e-4) if sd is not None else r - mu for r in grp]
    return out


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_equal_python_statistics(scale):
    rnd = random.Random(7)
    rewards = [rnd.choice([0.0, 1.0, 0.5, 2.0]) + rnd.random() * (q % 2) for q in range(6) for _ in range(8)]
    got = group_advantages(torch.tensor(rewards, dtype=torch.float64), 8, scale=scale).tolist()
    assert got == pytest.approx(py_advantages(rewards, 8, scale), rel=1e-5, abs=1e-6)


def test_equal_rewards_give_zero_advantages_and_are_counted():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.3, 0.3, 0.3, 0.3])
    adv = group_advantages(r, 4)
    assert adv[:4].tolist() == [0.0] * 4 and adv[8:].tolist() == [0.0] * 4
    assert zero_std_groups(r, 4).tolist() == [True, False, True]


def test_nan_reward_is_left_out_and_gets_zero_advantage():
    r = torch.tensor([1.0, float("nan"), 0.0, 1.0])
    adv = group_advantages(r, 4)
    mu, sd = statistics.fmean([1.0, 0.0, 1.0]), statistics.stdev([1.0, 0.0, 1.0])
    assert adv.tolist() == pytest.approx([(1 - mu) / (sd + 1e-4), 0.0, (0 - mu) / (sd + 1e-4), (1 - mu) / (sd + 1e-4)])


def test_advantages_bad_inputs():
    with pytest.raises(Qwen25ValueError, match="groups of 3"):
        group_advantages(torch.zeros(8), 3)
    with pytest.raises(Qwen25ValueError, match="scale"):
        group_advantages(torch.zeros(8), 4, scale="rank")
    with pytest.raises(Qwen25ValueError, match=r"\[N\]"):
        group_advantages(torch.zeros(2, 4), 4)
    with pytest.raises(Qwen25ValueError, match="group_size"):
        group_advantages(torch.zeros(8), 0)


# ----------------------------------------------------------------------------- variance order
def test_order_by_variance_on_constructed_rewards():
    rewards = torch.tensor([
        [1.0, 1.0, 1.0, 1.0],   # q0: variance 0
        [0.0, 1.0, 0.0, 1.0],   # q1: 1/3
        [0.0, 0.0, 0.0, 1.0],   # q2: 1/4
        [0.0, 4.0, 0.0, 4.0],   # q3: 16/3 (highest)
        [5.0, 5.0, 5.0, 5.0],   # q4: 0, ties with q0: keeps its place after q0
        [1.0, 0.0, 1.0, 0.0],   # q5: 1/3, ties with q1
    ])
    want = sorted(range(6), key=lambda q: (-statistics.variance(rewards[q].tolist()), q))
    assert want == [3, 1, 5, 2, 0, 4]
    assert order_by_variance(rewards).tolist() == want
    assert order_by_variance(rewards).dtype == torch.long


def test_order_by_variance_random_against_python():
    rnd = random.Random(3)
    rows = [[rnd.choice([0.0, 1.0]) * rnd.randint(1, 3) for _ in range(8)] for _ in range(40)]
    want = sorted(range(40), key=lambda q: (-statistics.variance(rows[q]), q))
    assert order_by_variance(torch.tensor(rows)).tolist() == want


def test_order_by_variance_nan_and_shape():
    r = torch.tensor([[1.0, float("nan"), 0.0], [1.0, 1.0, 1.0], [float("nan"), float("nan"), 2.0]])
    assert order_by_variance(r).tolist() == [0, 1, 2]
    with pytest.raises(Qwen25ValueError, match="queries, samples"):
        order_by_variance(torch.zeros(4))


# ---------------------------------------------------------------------------------- the loss
def py_loss(logps, old, ref, adv, mask, *, eps, eps_high, beta, loss_type, max_len=None, correct=True):  # type: ignore[no-untyped-def]
    """TRL's definitions, written out over Python floats."""
    hi = eps if eps_high is None else eps_high
    per = []
    for i in range(len(logps)):
        row = []
        for t in range(len(logps[i])):
            ratio = math.exp(logps[i][t] - old[i][t])
            clipped = min(max(ratio, 1 - eps), 1 + hi)
            v = -min(ratio * adv[i], clipped * adv[i])
            if beta:
                d = ref[i][t] - logps[i][t]
                v += beta * (math.exp(d) - d - 1) * (ratio if correct else 1.0)
            row.append(v)
        per.append(row)
    sums = [sum(v * m for v, m in zip(per[i], mask[i])) for i in range(len(per))]
    counts = [sum(mask[i]) for i in range(len(per))]
    if loss_type == "grpo":
        return sum(s / max(c, 1) for s, c in zip(sums, counts)) / len(per)
    if loss_type in ("bnpo", "dapo"):
        return sum(sums) / max(sum(counts), 1)
    return sum(sums) / (len(per) * max_len)


def loss_batch(seed: int, b: int = 6, t: int = 7):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    old = logps + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3  # ratios inside and outside the clip
    ref = logps + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.2
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    lens = torch.randint(0, t + 1, (b,), generator=g)
    lens[0] = t
    mask = (torch.arange(t)[None] < lens[:, None]).long()
    return logps, old, ref, adv, mask


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("beta,eps_high,correct", [(0.04, None, True), (0.0, 0.28, True), (0.1, 0.3, False)])
def test_loss_equals_python_formula(loss_type, beta, eps_high, correct):
    logps, old, ref, adv, mask = loss_batch(1)
    got = grpo_loss(logps, old, ref if beta else None, adv, mask, epsilon=0.2, epsilon_high=eps_high, beta=beta,
                    loss_type=loss_type, max_completion_length=10, kl_bias_correction=correct)
    want = py_loss(logps.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), eps=0.2,
                   eps_high=eps_high, beta=beta, loss_type=loss_type, max_len=10, correct=correct)
    assert float(got) == pytest.approx(want, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_global_normalisation_does_not_depend_on_the_micro_batches(loss_type):
    """Micro-batches of unequal token counts, given the step's totals, sum to the whole batch's
    loss and gradient (per-micro-batch normalisation would not)."""
    logps, old, ref, adv, mask = loss_batch(2, b=8)
    kw = dict(beta=0.04, loss_type=loss_type, max_completion_length=9)
    whole_in = logps.clone().requires_grad_(True)
    whole = grpo_loss(whole_in, old, ref, adv, mask, **kw)
    whole.backward()
    split_in = logps.clone().requires_grad_(True)
    total = 0.0
    for a, e in ((0, 3), (3, 4), (4, 8)):
        part = grpo_loss(split_in[a:e], old[a:e], ref[a:e], adv[a:e], mask[a:e], num_sequences=8,
                         num_tokens=float(mask.sum()), **kw)
        part.backward()
        total += float(part.detach())
    assert total == pytest.approx(float(whole.detach()), rel=1e-12)
    torch.testing.assert_close(split_in.grad, whole_in.grad, rtol=1e-12, atol=1e-14)
    if loss_type in ("bnpo", "dapo"):  # per-micro-batch means would have given another value
        local = sum(float(grpo_loss(logps[a:e], old[a:e], ref[a:e], adv[a:e], mask[a:e], **kw)) * (e - a) / 8
                    for a, e in ((0, 3), (3, 4), (4, 8)))
        assert abs(local - float(whole.detach())) > 1e-6


def test_padding_never_enters_the_loss():
    logps, old, ref, adv, mask = loss_batch(3)
    poisoned = [x.clone() for x in (logps, old, ref)]
    for x, junk in zip(poisoned, (float("nan"), -1e6, float("inf"))):
        x[mask == 0] = junk  # garbage where the mask is 0
    for lt in ("grpo", "bnpo", "dr_grpo", "dapo"):
        a = grpo_loss(logps, old, ref, adv, mask, loss_type=lt, max_completion_length=7)
        lp = poisoned[0].clone().requires_grad_(True)
        b = grpo_loss(lp, poisoned[1], poisoned[2], adv, mask, loss_type=lt, max_completion_length=7)
        assert float(b.detach()) == pytest.approx(float(a), rel=1e-12), lt
        b.backward()
        assert bool((lp.grad[mask == 0] == 0).all())


def test_loss_on_policy_equals_minus_mean_advantage():
    """old = logps (one iteration): the ratio is 1, so the grpo loss is −mean(A) + β·KL."""
    logps, _, ref, adv, mask = loss_batch(4)
    mask[:, 0] = 1
    got = grpo_loss(logps, logps, ref, adv, mask, beta=0.0)
    assert float(got) == pytest.approx(-float(adv.mean()), rel=1e-12)


def test_loss_bad_inputs():
    logps, old, ref, adv, mask = loss_batch(5)
    with pytest.raises(Qwen25ValueError, match="loss_type"):
        grpo_loss(logps, old, ref, adv, mask, loss_type="ppo")
    with pytest.raises(Qwen25ValueError, match="ref_logps"):
        grpo_loss(logps, old, None, adv, mask, beta=0.04)
    grpo_loss(logps, old, None, adv, mask, beta=0.0)  # no reference needed without the KL
    with pytest.raises(Qwen25ValueError, match="max_completion_length"):
        grpo_loss(logps, old, ref, adv, mask, loss_type="dr_grpo")
    with pytest.raises(Qwen25ValueError, match="advantages"):
        grpo_loss(logps, old, ref, adv[:2], mask)
    with pytest.raises(Qwen25ValueError, match="old_logps"):
        grpo_loss(logps, old[:, :3], ref, adv, mask)
    with pytest.raises(Qwen25ValueError, match="epsilon"):
        grpo_loss(logps, old, ref, adv, mask, epsilon=-0.1)


# --------------------------------------------------------------------- chunked log-probs
def naive_logps(hidden, weight, targets):  # type: ignore[no-untyped-def]
    lp = torch.log_softmax((hidden @ weight.T).float(), dim=-1)
    safe = targets.clamp(min=0)
    out = lp.gather(1, safe[:, None])[:, 0]
    return torch.where(targets == -100, torch.zeros_like(out), out)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_linear_logps_values_and_grads_equal_full_log_softmax(chunk):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(13, 8, generator=g)
    weight = torch.randn(50, 8, generator=g)
    targets = torch.randint(0, 50, (13,), generator=g)
    targets[4] = -100
    up = torch.randn(13, generator=g)  # an arbitrary upstream gradient per row
    h1, w1 = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    h2, w2 = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    got = linear_logps(h1, w1, targets, chunk_size=chunk)
    want = naive_logps(h2, w2, targets)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert float(got[4].detach()) == 0.0
    (got * up).sum().backward()
    (want * up).sum().backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-6)


def test_linear_logps_bad_inputs():
    with pytest.raises(Qwen25ValueError, match="outside"):
        linear_logps(torch.zeros(2, 4), torch.zeros(5, 4), torch.tensor([1, 5]))
    with pytest.raises(Qwen25ValueError, match="do not match"):
        linear_logps(torch.zeros(2, 4), torch.zeros(5, 3), torch.tensor([1, 2]))
    with pytest.raises(Qwen25ValueError, match="chunk_size"):
        linear_logps(torch.zeros(2, 4), torch.zeros(5, 4), torch.tensor([1, 2]), chunk_size=0)


def test_token_logps_equal_log_softmax_of_the_models_logits():
    from qwen25.model import Qwen2ForCausalLM, Qwen25Config

    cfg = Qwen25Config.from_preset("debug", vocab_size=97, hidden_size=32, intermediate_size=64)
    model = Qwen2ForCausalLM.from_config(cfg, seed=0)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 97, (3, 11), generator=g)
    am = torch.ones(3, 11, dtype=torch.long)
    am[1, :3] = 0  # left padding of the prompt
    am[2, -2:] = 0  # right padding of the completion
    cmask = am[:, -5:].clone()
    got = token_logps(model, ids, am, 5, completion_mask=cmask, temperature=0.7, chunk_size=4)
    with torch.no_grad():
        logits = model(ids, attention_mask=am).logits[:, -6:-1].float() / 0.7
        want = torch.log_softmax(logits, -1).gather(-1, ids[:, -5:, None])[..., 0] * cmask
    torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)
    assert bool((got[2, -2:] == 0).all())
    with pytest.raises(Qwen25ValueError, match="logits_to_keep"):
        token_logps(model, ids, am, 11)
    with pytest.raises(Qwen25ValueError, match="temperature"):
        token_logps(model, ids, am, 5, temperature=0.0)
