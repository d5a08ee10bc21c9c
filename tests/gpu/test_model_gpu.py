"""The model on a CUDA GPU against its CPU run (the oracle), and with the kernels on against off;
skipped without a GPU. On a GPU machine, kernels that are unavailable (no CuPy) fail the kernel
tests here rather than skip them.

QWEN25_GPU_TESTS_ON_CPU=1 runs the kernels-on/off tests on the CPU with the host-built kernels
(tests/gpu/conftest.py), to check the tests themselves."""

from __future__ import annotations

import os
from typing import Any

import pytest

torch = pytest.importorskip("torch")
ON_CPU = os.environ.get("QWEN25_GPU_TESTS_ON_CPU") == "1"
if not ON_CPU and not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
DEV = "cpu" if ON_CPU else "cuda"
needs_cuda = pytest.mark.skipif(ON_CPU, reason="compares CUDA with the CPU")

from qwen25.model import Qwen25Config, Qwen2ForCausalLM  # noqa: E402

pytestmark = pytest.mark.gpu


@needs_cuda
@pytest.mark.parametrize("preset", ["debug", "debug-moe"])
@torch.no_grad()
def test_cuda_matches_cpu(tmp_path, preset: str) -> None:
    cfg = Qwen25Config.from_preset(preset, vocab_size=1000)
    Qwen2ForCausalLM.from_config(cfg, seed=0).save_pretrained(tmp_path)
    cpu = Qwen2ForCausalLM.from_pretrained(tmp_path)
    gpu = Qwen2ForCausalLM.from_pretrained(tmp_path, device="cuda")
    x = torch.randint(0, 1000, (2, 33), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(x)
    mask[1, :5] = 0
    ref = cpu(x, attention_mask=mask).logits
    got = gpu(x.cuda(), attention_mask=mask.cuda()).logits.cpu()
    torch.testing.assert_close(got[0], ref[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got[1, 5:], ref[1, 5:], atol=1e-4, rtol=1e-4)
    out = gpu.generate([[1, 2, 3], [4, 5]], max_new_tokens=8, eos_token_id=None)
    assert out.shape == (2, 11) and out.device.type == "cuda"


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dca_model_cuda_matches_cpu(dtype: torch.dtype) -> None:
    from qwen25.model import KVCache, prefill

    cfg = Qwen25Config.from_preset("debug", vocab_size=1000, max_position_embeddings=64).with_dca(chunk_size=32, local_size=4)
    cpu = Qwen2ForCausalLM.from_config(cfg, seed=0).to(dtype)
    gpu = Qwen2ForCausalLM.from_config(cfg, seed=0).to(device="cuda", dtype=dtype)
    x = torch.randint(0, 1000, (2, 300), generator=torch.Generator().manual_seed(0))
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=0.1, rtol=0.05)
    with torch.no_grad():
        torch.testing.assert_close(gpu(x.cuda()).logits.float().cpu(), cpu(x).logits.float(), **tol)
    cache = KVCache(cfg, 2, 300, dtype=dtype, device="cuda")
    last = prefill(gpu, x.cuda(), cache, chunk_size=70)
    torch.testing.assert_close(last.float().cpu(), cpu(x).logits[:, -1].float().detach(), **tol)


def _close(got: torch.Tensor, ref: torch.Tensor, rel: float, what: str) -> None:
    """|got - ref| <= rel * (|ref| + max|ref|): relative to the values and to the tensor's scale, so
    a gradient of zeros (or one off by a factor) fails whatever its magnitude."""
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    scale = float(ref.float().abs().max())
    assert scale > 0, f"{what}: the reference is all zeros"
    torch.testing.assert_close(got.float(), ref.float(), rtol=rel, atol=rel * scale, msg=lambda m: f"{what}: {m}")


@pytest.fixture
def kernels_available(monkeypatch: pytest.MonkeyPatch, kernel_backend: Any) -> None:
    import qwen25.kernels as K
    from qwen25.model import qwen2

    monkeypatch.delenv("QWEN25_KERNELS", raising=False)
    K._reset()
    if ON_CPU:
        monkeypatch.setattr(qwen2, "_is_cuda", lambda t: True)  # the model dispatches as for CUDA tensors
    if not K.available():
        pytest.fail(f"kernels unavailable on a GPU machine: {K.unavailable_reason()}")


def _on_off(m: Any, run: Any, monkeypatch: pytest.MonkeyPatch) -> list[list[torch.Tensor]]:
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("QWEN25_KERNELS", flag)
        results.append(run(m))
    monkeypatch.delenv("QWEN25_KERNELS")
    return results


# rel: fp32 the kernels' own rounding only; bf16 two bf16 ulps (2^-7), the fused loss's gradient
# being rounded to bf16 before its 1/N scale rather than after
@pytest.mark.parametrize("dtype,rel", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
def test_kernels_on_and_off_agree(monkeypatch: pytest.MonkeyPatch, kernels_available: None, dtype: torch.dtype,
                                  rel: float) -> None:
    cfg = Qwen25Config.from_preset("debug", vocab_size=1000)
    m = Qwen2ForCausalLM.from_config(cfg, seed=0).to(device=DEV, dtype=dtype)
    x = torch.randint(0, 1000, (2, 65), generator=torch.Generator().manual_seed(0)).to(DEV)
    params = {"q_proj": m.model.layers[0].self_attn.q_proj.weight, "up_proj": m.model.layers[-1].mlp.up_proj.weight,
              "norm": m.model.norm.weight, "lm_head": m.lm_head.weight}

    def run(model: Any) -> list[torch.Tensor]:
        out = model(x, labels=x)
        grads = torch.autograd.grad(out.loss, list(params.values()))
        return [out.logits.detach(), out.loss.detach(), *grads]

    names = ["logits", "loss", *params]
    for name, a, b in zip(names, *_on_off(m, run, monkeypatch)):
        _close(a, b, rel, f"{dtype} {name}, kernels on vs off")


def test_kernels_on_under_autocast_with_fp32_weights(monkeypatch: pytest.MonkeyPatch, kernels_available: None) -> None:
    """How training runs: fp32 parameters, bf16 autocast; the kernels' fused loss is on by default
    on CUDA. It raised before (issue 17); now it equals the eager run under the same autocast."""
    cfg = Qwen25Config.from_preset("debug", vocab_size=1000)
    m = Qwen2ForCausalLM.from_config(cfg, seed=0).to(DEV)
    x = torch.randint(0, 1000, (2, 65), generator=torch.Generator().manual_seed(1)).to(DEV)
    params = [m.model.layers[0].self_attn.q_proj.weight, m.model.layers[0].mlp.down_proj.weight, m.lm_head.weight]

    def run(model: Any) -> list[torch.Tensor]:
        with torch.autocast(DEV, dtype=torch.bfloat16):
            out = model(x, labels=x)
        return [out.loss.detach(), *torch.autograd.grad(out.loss, params)]

    for i, (a, b) in enumerate(zip(*_on_off(m, run, monkeypatch))):
        assert a.dtype == torch.float32
        _close(a, b, 3e-2, f"autocast output {i}, kernels on vs off")
