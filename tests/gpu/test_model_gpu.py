"""The model on a CUDA GPU against its CPU run (the oracle); skipped without a GPU."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from qwen25.model import Qwen25Config, Qwen2ForCausalLM  # noqa: E402

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_on_and_off_agree(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    import qwen25.kernels as K

    if not K.available():
        pytest.skip(f"kernels unavailable: {K.unavailable_reason()}")
    cfg = Qwen25Config.from_preset("debug", vocab_size=1000)
    m = Qwen2ForCausalLM.from_config(cfg, seed=0).to(device="cuda", dtype=dtype)
    x = torch.randint(0, 1000, (2, 65), device="cuda", generator=torch.Generator(device="cuda").manual_seed(0))
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("QWEN25_KERNELS", flag)
        out = m(x, labels=x)
        (g,) = torch.autograd.grad(out.loss, m.model.layers[0].self_attn.q_proj.weight)
        results.append((out.logits.float(), out.loss.float(), g.float()))
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=0.05, rtol=0.05)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, **tol)
