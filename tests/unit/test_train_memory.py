"""The computed memory model (qwen25.train.memory): its parameter terms against the parameters of
the real torch module, and the table's answers against the estimate they come from."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from qwen25.model import Qwen2ForCausalLM, Qwen25Config  # noqa: E402
from qwen25.train.memory import estimate_memory, format_memory_table, memory_table  # noqa: E402


@pytest.mark.parametrize("preset", ["0.5B", "7B", "moe-a2.7b"])
def test_sharded_state_counts_the_real_parameters(preset: str) -> None:
    cfg = Qwen25Config.from_preset(preset)
    with torch.device("meta"):
        n = sum(p.numel() for p in Qwen2ForCausalLM(cfg).parameters())  # tied weights counted once
    est = estimate_memory(cfg, 4096, 1, world=8)
    assert est.states == pytest.approx(16 * n / 8)  # fp32 weight + grad + two AdamW moments, sharded


def test_terms_move_the_way_they_should() -> None:
    cfg = Qwen25Config.from_preset("1.5B")
    a = estimate_memory(cfg, 32768, 1)
    assert estimate_memory(cfg, 32768, 1, activation_checkpointing=False).activations > 5 * a.activations
    assert estimate_memory(cfg, 32768, 1, fused_loss=False).loss > 10 * a.loss
    assert estimate_memory(cfg, 32768, 2).activations == pytest.approx(2 * a.activations)
    assert estimate_memory(cfg, 32768, 1, world=16).states == pytest.approx(a.states / 2)
    assert a.mask == 32768 * 32768  # one byte per (query, key) of the packed-row mask


def test_table_rows_are_the_largest_that_fit() -> None:
    seqs = (4096, 8192, 16384, 32768, 65536, 131072, 262144)
    rows = memory_table(("0.5B", "14B"), (80.0, 141.0), seq_lens=seqs)
    assert len(rows) == 4
    for r in rows:
        cfg = Qwen25Config.from_preset(r["preset"])
        cap = r["gpu_gb"] * 1e9
        t = r["longest_seq_len"]
        if t is not None:
            assert estimate_memory(cfg, t, 1).total <= cap
            if t != seqs[-1]:
                assert estimate_memory(cfg, seqs[seqs.index(t) + 1], 1).total > cap
        m = r["micro_batch_at_4k"]
        if m:
            assert estimate_memory(cfg, 4096, m).total <= cap < estimate_memory(cfg, 4096, 2 * m).total
    assert format_memory_table(rows).count("\n") == 5
