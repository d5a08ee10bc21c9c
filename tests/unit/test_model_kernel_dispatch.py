"""The model's memory-bound ops dispatch to qwen25.kernels for CUDA tensors when the kernels are
available, and stay eager on the CPU; the fused cross-entropy loss equals F.cross_entropy on
materialised logits (independent reference), loss and gradients. No GPU needed: CUDA-ness and
availability are monkeypatched, and the kernels' functions (which fall back for CPU tensors) are
wrapped to record that they were called."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import qwen25.kernels as K  # noqa: E402
from qwen25.model import Qwen2ForCausalLM, Qwen25Config  # noqa: E402
from qwen25.model import qwen2  # noqa: E402

CFG = Qwen25Config(num_hidden_layers=2, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=300, max_position_embeddings=64, torch_dtype="float32")


def _spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"rms_norm": 0, "apply_rope": 0, "swiglu": 0, "fused_cross_entropy": 0}
    for name in calls:
        real = getattr(K, name)

        def wrapped(*a, _real=real, _name=name, **kw):  # type: ignore[no-untyped-def]
            calls[_name] += 1
            return _real(*a, **kw)

        monkeypatch.setattr(K, name, wrapped)
    return calls


def _model_and_ids() -> tuple[Qwen2ForCausalLM, torch.Tensor]:
    m = Qwen2ForCausalLM.from_config(CFG, seed=0)
    return m, torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))


def test_cpu_tensors_stay_eager_even_when_kernels_are_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(K, "available", lambda: True)
    calls = _spy(monkeypatch)
    m, ids = _model_and_ids()
    m(ids, labels=ids)
    assert calls == {"rms_norm": 0, "apply_rope": 0, "swiglu": 0, "fused_cross_entropy": 0}
    assert qwen2.kernels_for(torch.zeros(1)) is None


def test_cuda_tensors_use_the_kernels_and_logits_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    m, ids = _model_and_ids()
    eager = m(ids, labels=ids)
    monkeypatch.setattr(qwen2, "_is_cuda", lambda t: True)
    monkeypatch.setattr(K, "available", lambda: True)
    calls = _spy(monkeypatch)
    out = m(ids, labels=ids)
    # 2 layers: 2 norms each + the final norm; one rope and one swiglu per layer; one fused loss
    assert calls == {"rms_norm": 5, "apply_rope": 2, "swiglu": 2, "fused_cross_entropy": 1}
    torch.testing.assert_close(out.logits, eager.logits, rtol=0, atol=0)
    torch.testing.assert_close(out.loss, eager.loss, rtol=1e-6, atol=1e-6)


def test_qwen25_kernels_0_disables_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qwen2, "_is_cuda", lambda t: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(K._cupy_state, "status", (True, ""))
    assert qwen2.kernels_for(torch.zeros(1)) is K
    monkeypatch.setenv("QWEN25_KERNELS", "0")
    assert qwen2.kernels_for(torch.zeros(1)) is None
    monkeypatch.delenv("QWEN25_KERNELS")
    monkeypatch.setitem(K._cupy_state, "status", (False, "no cupy"))
    assert qwen2.kernels_for(torch.zeros(1)) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_loss_on_cpu_equals_cross_entropy_on_logits(dtype: torch.dtype) -> None:
    m, ids = _model_and_ids()
    m = m.to(dtype)
    labels = ids.clone()
    labels[0, :4] = -100
    fused = m(ids, labels=labels, fused_loss=True, return_logits=False)
    assert fused.logits.shape == (2, 0, 300)
    (g_fused,) = torch.autograd.grad(fused.loss, m.model.layers[0].mlp.up_proj.weight)
    logits = m(ids).logits
    ref = F.cross_entropy(logits[:, :-1].float().reshape(-1, 300), labels[:, 1:].reshape(-1), ignore_index=-100)
    (g_ref,) = torch.autograd.grad(ref, m.model.layers[0].mlp.up_proj.weight)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(fused.loss, ref, **tol)
    torch.testing.assert_close(g_fused, g_ref, **tol)
