"""Named training recipes: functions returning a complete :class:`TrainConfig`.

    >>> from qwen25.train import recipes
    >>> recipes.names()
    ['debug', '0.5b', '1.5b', 'long-context', 'turbo']
    >>> recipes.get("debug").total_steps()
    200

The Qwen2.5 report does not publish its peak learning rates or batch sizes (it fits them with
scaling laws). The GPU recipes take theirs from DeepSeek LLM's published laws,
lr = 0.3118 C^-0.125 and batch = 0.2920 C^0.3271 tokens, at C = M D, where M is the non-embedding
FLOPs per token (72 L h^2 + 6 L T h) and D the recipe's token budget; each recipe's comment gives
the numbers. Data folders are relative paths to the phases ``qwen25 data run`` writes; point
them elsewhere with ``--set stages.N.data=PATH``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import Qwen25ValueError
from .config import BUILTIN_DEBUG_DATA, Stage, TrainConfig

__all__ = ["get", "names", "pick", "RECIPES"]


def debug() -> TrainConfig:
    """CPU, a couple of minutes: the ``debug`` model shape (2 layers, hidden 64) with a 512-token
    vocabulary, on the built-in synthetic corpus packed at 128 tokens; 200 steps of 2,048 tokens."""
    return TrainConfig(
        name="debug",
        model="debug",
        model_overrides={"vocab_size": 512},  # the debug corpus's BPE (qwen25.train.debug_data)
        stages=(Stage(name="main", data=(BUILTIN_DEBUG_DATA,), seq_len=128, steps=200),),
        global_batch_tokens=2048,  # 16 rows of 128
        micro_batch_size=8,
        lr=3e-3,
        min_lr_ratio=0.1,
        warmup_steps=20,
        weight_decay=0.1,
        beta2=0.95,
        checkpoint_every=100,
        keep_last=2,
        device="cpu",
        precision="fp32",
    )


def qwen25_0_5b() -> TrainConfig:
    """Qwen2.5-0.5B from scratch on one GPU node: 100B tokens at 4,096. DeepSeek's laws at
    M = 1.92e9 FLOPs/token, D = 1e11 (C = 1.9e20) give lr 9.1e-4 and a batch of 1.26M tokens;
    rounded to 2^20 tokens (256 rows)."""
    return TrainConfig(
        name="0.5b",
        model="0.5B",
        stages=(Stage(name="main", data=("data/packed/main",), seq_len=4096, tokens=100_000_000_000),),
        global_batch_tokens=1 << 20,
        micro_batch_size=8,
        lr=9e-4,
        min_lr_ratio=0.1,
        warmup_steps=2000,
        weight_decay=0.1,
        checkpoint_every=1000,
        keep_last=3,
        log_every=10,
    )


def qwen25_1_5b() -> TrainConfig:
    """Qwen2.5-1.5B from scratch: 200B tokens at 4,096. DeepSeek's laws at M = 5.81e9, D = 2e11
    (C = 1.2e21) give lr 7.3e-4 and a batch of 2.27M tokens; rounded to 2^21 (512 rows)."""
    return TrainConfig(
        name="1.5b",
        model="1.5B",
        stages=(Stage(name="main", data=("data/packed/main",), seq_len=4096, tokens=200_000_000_000),),
        global_batch_tokens=1 << 21,
        micro_batch_size=4,
        lr=7e-4,
        min_lr_ratio=0.1,
        warmup_steps=2000,
        weight_decay=0.1,
        checkpoint_every=1000,
        keep_last=3,
        log_every=10,
    )


def long_context() -> TrainConfig:
    """The Qwen2.5 report's context extension with ABF: pre-training at 4,096 tokens with RoPE base
    10,000, then a final stage at 32,768 with base 1,000,000. The same 2^20-token batch (256 rows,
    then 32). Token budgets: 100B, then 5B (the report gives no figure for the final stage)."""
    return TrainConfig(
        name="long-context",
        model="0.5B",
        stages=(
            Stage(name="4k", data=("data/packed/main",), seq_len=4096, rope_theta=10_000.0,
                  tokens=100_000_000_000),
            Stage(name="32k", data=("data/packed/long_context_32768",), seq_len=32768, rope_theta=1_000_000.0,
                  tokens=5_000_000_000, micro_batch_size=1),
        ),
        global_batch_tokens=1 << 20,
        micro_batch_size=8,
        lr=9e-4,
        min_lr_ratio=0.1,
        warmup_steps=2000,
        weight_decay=0.1,
        checkpoint_every=1000,
        log_every=10,
    )


def turbo() -> TrainConfig:
    """Qwen2.5-Turbo's progressive context extension: four stages at 32,768, 65,536, 131,072 and
    262,144 tokens, RoPE base 10,000,000 throughout, each stage's rows 40% from documents of the
    stage's full length and 60% from shorter ones (two packed folders per stage, weights 0.4 /
    0.6). It continues a trained model: set ``init_from`` to its HF folder (and ``model`` to the
    same folder or its preset). Batch 2^21 tokens (8 rows at 256k); 5B tokens per stage (the
    report gives no figure); lr 1e-5, as for continued training."""
    stages = []
    for length in (32768, 65536, 131072, 262144):
        k = length // 1024
        stages.append(Stage(name=f"{k}k", data=(f"data/packed/turbo_{k}k_long", f"data/packed/turbo_{k}k_short"),
                            weights=(0.4, 0.6), seq_len=length, rope_theta=10_000_000.0, tokens=5_000_000_000))
    return TrainConfig(
        name="turbo",
        model="0.5B",
        stages=tuple(stages),
        global_batch_tokens=1 << 21,
        micro_batch_size=1,
        lr=1e-5,
        min_lr_ratio=0.1,
        warmup_steps=100,
        weight_decay=0.1,
        checkpoint_every=500,
        activation_checkpointing=True,
        log_every=10,
    )


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "debug": debug,
    "0.5b": qwen25_0_5b,
    "1.5b": qwen25_1_5b,
    "long-context": long_context,
    "turbo": turbo,
}


def names() -> list[str]:
    return list(RECIPES)


def get(name: str) -> TrainConfig:
    """The recipe ``name`` as a full TrainConfig. Unknown names raise, listing the known ones."""
    return pick(RECIPES, name)


def pick(table: Mapping[str, Callable[[], TrainConfig]], name: str, kind: str = "") -> TrainConfig:
    """``table[name]()``: the recipe ``name`` of a recipe table (pre-training's, SFT's, DPO's ...);
    an unknown name raises, naming the ``kind`` of recipe and listing the known ones."""
    fn = table.get(name)
    if fn is None:
        what = f"{kind} recipe" if kind else "recipe"
        raise Qwen25ValueError(f"unknown {what} {name!r}; known recipes: {', '.join(table)}")
    return fn()
