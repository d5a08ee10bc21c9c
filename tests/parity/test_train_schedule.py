"""The lr schedules against transformers' own schedulers (the independent reference): step s of
ours is transformers' LambdaLR after s ``scheduler.step()`` calls."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.train import lr_factor  # noqa: E402


def _hf_factors(make, total: int) -> list[float]:  # type: ignore[no-untyped-def]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(total):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("total,warmup,min_ratio", [(50, 10, 0.1), (20, 0, 0.0), (7, 7, 0.05), (30, 1, 0.3)])
def test_cosine_matches_transformers(total: int, warmup: int, min_ratio: float) -> None:
    ref = _hf_factors(lambda o: transformers.get_cosine_with_min_lr_schedule_with_warmup(
        o, num_warmup_steps=warmup, num_training_steps=total, min_lr_rate=min_ratio), total)
    ours = [lr_factor(s, total=total, warmup=warmup, kind="cosine", min_ratio=min_ratio) for s in range(1, total + 1)]
    assert ours == pytest.approx(ref, abs=1e-12)
    if warmup < total:
        assert ours[-1] == pytest.approx(min_ratio)  # the last step ends the decay


@pytest.mark.parametrize("decay", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("total,warmup,fraction,min_ratio", [(50, 5, 0.2, 0.0), (40, 0, 0.5, 0.1), (10, 2, 0.0, 0.0)])
def test_wsd_matches_transformers(decay: str, total: int, warmup: int, fraction: float, min_ratio: float) -> None:
    n_decay = round(fraction * total)
    ref = _hf_factors(lambda o: transformers.get_wsd_schedule(
        o, num_warmup_steps=warmup, num_decay_steps=n_decay, num_stable_steps=total - warmup - n_decay,
        decay_type=decay, min_lr_ratio=min_ratio), total)
    ours = [lr_factor(s, total=total, warmup=warmup, kind="wsd", min_ratio=min_ratio, decay_fraction=fraction,
                      decay=decay) for s in range(1, total + 1)]
    assert ours == pytest.approx(ref, abs=1e-12)


def test_constant_matches_transformers() -> None:
    ref = _hf_factors(lambda o: transformers.get_constant_schedule_with_warmup(o, num_warmup_steps=4), 12)
    assert [lr_factor(s, total=12, warmup=4, kind="constant") for s in range(1, 13)] == pytest.approx(ref)


def test_bad_schedule_inputs() -> None:
    with pytest.raises(Qwen25ValueError, match="step 0 outside 1..5"):
        lr_factor(0, total=5, warmup=0)
    with pytest.raises(Qwen25ValueError, match="unknown kind 'step'"):
        lr_factor(1, total=5, warmup=0, kind="step")
