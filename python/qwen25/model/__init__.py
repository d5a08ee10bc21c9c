"""The Qwen2.5 model in PyTorch (dense and MoE). Importing this package imports torch.

``Qwen25Config`` (presets, config.json), ``Qwen2ForCausalLM`` (forward, loss, HF checkpoints,
KV-cache generation), ``generate``/``stream_text`` (generation helpers).
"""

from __future__ import annotations

from .._extras import require

require("torch", "qwen25.model")  # before the first `import torch`: a missing torch names its extra

from .checkpoint import CheckpointError
from .config import PRESETS, DualChunkAttention, Qwen25Config, RopeScaling
from .generation import generate, stream_text
from .qwen2 import CausalLMOutput, KVCache, Qwen2ForCausalLM, apply_rope, prefill, rms_norm, swiglu

__all__ = ["Qwen25Config", "RopeScaling", "DualChunkAttention", "PRESETS", "Qwen2ForCausalLM", "CausalLMOutput", "KVCache",
           "CheckpointError", "generate", "stream_text", "prefill", "rms_norm", "apply_rope", "swiglu"]
