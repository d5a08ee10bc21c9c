"""Dual Chunk Attention on CUDA tensors equals the same call on the CPU (fp32 and bf16).
Skipped without a CUDA GPU."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)

from qwen25.model.dca import dual_chunk_attention  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_equals_cpu(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    t, cs, ls, d = 300, 64, 8, 64
    q = torch.randn(2, 8, t, d, generator=g).to(dtype)
    k = torch.randn(2, 2, t, d, generator=g).to(dtype)
    v = torch.randn(2, 2, t, d, generator=g).to(dtype)
    ang = torch.outer(torch.arange(cs + 1, dtype=torch.float32), 1e4 ** (-torch.arange(0, d, 2) / d))
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    kw = dict(chunk_size=cs, local_size=ls, original_max_position_embeddings=128, positions=torch.arange(t),
              block_size=48)
    cpu = dual_chunk_attention(q, k, v, cos=cos, sin=sin, **kw)
    gpu = dual_chunk_attention(q.cuda(), k.cuda(), v.cuda(), cos=cos.cuda(), sin=sin.cuda(),
                               **{**kw, "positions": torch.arange(t, device="cuda")})
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1.6e-2, atol=1.6e-2)
    torch.testing.assert_close(gpu.cpu(), cpu, **tol)
