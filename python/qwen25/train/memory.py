"""A computed (not measured) model of training memory per GPU, and the table of what fits.

Per GPU, with FSDP over ``world`` GPUs, bf16 compute and fp32 master weights (bytes):

* sharded state: parameters P x (4 fp32 weights + 4 fp32 gradients + 8 AdamW moments) / world;
* gathered bf16 weights: two decoder blocks at a time (the one running and the prefetched one),
  plus the root group (embeddings, final norm, lm_head) with its unsharded fp32 gradient;
* activations kept for the backward pass, per token and block, in bf16 (SDPA's memory-efficient
  kernel, so no T x T scores): both RMSNorms (fp32 input and bf16 output, 6h each), the q/k/v
  input (2h), rotated q, k and v (2(h + 2 kv)), the attention output (2h), the MLP input (2h) and
  gate, up, SiLU(gate) and their product (8 I). With activation checkpointing only each block's
  input (2h) is kept, plus one block's full set while it is recomputed;
* the packed-row attention mask the model builds: T x T booleans per row;
* the loss: the fused cross-entropy holds fp32 logits and their gradient for 2,048 tokens at a
  time (2 x 2048 x V x 4); without it, bf16 logits, their fp32 copy and gradient (10 T V);
* a reserve: 1 GiB for the CUDA context plus 10% for the allocator's fragmentation.

It is a model: compare it with ``torch.cuda.max_memory_allocated`` (the ``memory_gib`` metric)
before trusting it near the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MemoryEstimate", "estimate_memory", "memory_table", "format_memory_table"]

GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    states: float
    gathered: float
    activations: float
    mask: float
    loss: float
    reserve: float

    @property
    def total(self) -> float:
        return self.states + self.gathered + self.activations + self.mask + self.loss + self.reserve

    def gib(self) -> dict[str, float]:
        return {k: round(getattr(self, k) / GIB, 2) for k in
                ("states", "gathered", "activations", "mask", "loss", "reserve", "total")}


def estimate_memory(config: Any, seq_len: int, micro_batch: int = 1, *, world: int = 8,
                    activation_checkpointing: bool = True, fused_loss: bool = True) -> MemoryEstimate:
    """Bytes per GPU for one training micro-batch of ``micro_batch`` rows of ``seq_len`` tokens of
    the model ``config`` (a Qwen25Config) under FSDP over ``world`` GPUs (see the module docstring)."""
    h, inter, layers, v = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    if config.is_moe:  # activated experts and the shared expert, per token
        inter = config.num_experts_per_tok * config.moe_intermediate_size + config.shared_expert_intermediate_size
    kv = config.num_key_value_heads * config.head_dim_
    p_total = config.num_parameters()
    p_root = v * h * (1 if config.tie_word_embeddings else 2) + h
    p_block = (p_total - p_root) / layers
    states = 16.0 * p_total / world
    gathered = 2 * 2.0 * p_block + 2.0 * p_root + 4.0 * p_root
    tokens = seq_len * micro_batch
    per_block_token = 20 * h + 4 * kv + 8 * inter
    if activation_checkpointing:
        activations = tokens * (layers * 2 * h + per_block_token)
    else:
        activations = tokens * layers * per_block_token
    activations += tokens * 6 * h  # embeddings output and the final norm
    mask = float(micro_batch) * seq_len * seq_len
    loss = 2 * min(2048, tokens) * v * 4.0 if fused_loss else 10.0 * tokens * v
    subtotal = states + gathered + activations + mask + loss
    return MemoryEstimate(states, gathered, activations, mask, loss, GIB + 0.1 * subtotal)


def memory_table(presets: tuple[str, ...] = ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"),
                 budgets_gb: tuple[float, ...] = (80.0, 141.0), *, world: int = 8,
                 seq_lens: tuple[int, ...] = (4096, 8192, 16384, 32768, 65536, 131072, 262144),
                 activation_checkpointing: bool = True) -> list[dict[str, Any]]:
    """Per preset and GPU memory (GB = 1e9 bytes, as sold): the longest ``seq_lens`` entry that fits
    one row, and the largest power-of-two micro-batch at 4,096 and at 32,768 tokens."""
    from ..model.config import Qwen25Config

    rows = []
    for name in presets:
        cfg = Qwen25Config.from_preset(name)
        for budget in budgets_gb:
            cap = budget * 1e9

            def fits(t: int, m: int) -> bool:
                est = estimate_memory(cfg, t, m, world=world, activation_checkpointing=activation_checkpointing)
                return est.total <= cap

            longest = max((t for t in seq_lens if fits(t, 1)), default=None)

            def largest_mb(t: int) -> int:
                m = 0
                while fits(t, 2 * m if m else 1):
                    m = 2 * m if m else 1
                    if m >= 1024:
                        break
                return m

            rows.append({"preset": name, "gpu_gb": budget, "world": world,
                         "longest_seq_len": longest, "micro_batch_at_4k": largest_mb(4096),
                         "micro_batch_at_32k": largest_mb(32768),
                         "gib_at_4k_mb1": estimate_memory(cfg, 4096, 1, world=world,
                                                          activation_checkpointing=activation_checkpointing).gib()["total"]})
    return rows


def format_memory_table(rows: list[dict[str, Any]]) -> str:
    head = "| preset | GPU | longest seq_len (micro-batch 1) | micro-batch at 4k | micro-batch at 32k | GiB at 4k x1 |"
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['gpu_gb']:.0f} GB | {r['longest_seq_len'] or 'none'} | "
                     f"{r['micro_batch_at_4k']} | {r['micro_batch_at_32k']} | {r['gib_at_4k_mb1']} |")
    return "\n".join(lines)
