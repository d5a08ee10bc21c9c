"""The Qwen2.5 model in PyTorch (dense and MoE). Importing this package imports torch.

``Qwen25Config`` (presets, config.json), ``Qwen2ForCausalLM`` (forward, loss, KV-cache
generation, HF checkpoints).
"""

from __future__ import annotations

from .config import PRESETS, Qwen25Config, RopeScaling

__all__ = ["Qwen25Config", "RopeScaling", "PRESETS"]
