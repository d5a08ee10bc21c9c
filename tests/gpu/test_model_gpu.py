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
