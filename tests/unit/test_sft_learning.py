"""A tiny model learns a toy chat task through the SFT path (data, masks, packing, Trainer), on
the CPU in seconds: "Which word is second: a, b, c?" -> "b", with 12 words. Held-out questions
use word triples that never occur in training; exact-answer accuracy goes from chance (the
untrained model: at most 1 in 12 by luck; picking any listed word: 1 in 3) to above 0.6."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from qwen25.model.generation import generate  # noqa: E402
from qwen25.train import override  # noqa: E402
from qwen25.train.debug_data import _SplitMix64  # noqa: E402
from qwen25.train.sft import DEBUG_WORDS, Prepared, debug_chat_tokenizer, recipe, sft_trainer_class, tokenize_chat  # noqa: E402

WORDS = DEBUG_WORDS[:12]
THRESHOLD = 0.6


def conversation(a: str, b: str, c: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Which word is second: {a}, {b}, {c}?"},
            {"role": "assistant", "content": b}]


def split() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    r = _SplitMix64(2024)
    triples = [(a, b, c) for a in WORDS for b in WORDS for c in WORDS]
    for i in range(len(triples) - 1, 0, -1):  # Fisher-Yates with the fixed generator
        j = r.below(i + 1)
        triples[i], triples[j] = triples[j], triples[i]
    return triples[:400], triples[400:500]


def accuracy(model, tok, held) -> float:  # type: ignore[no-untyped-def]
    prompts = [tok.apply_chat_template(conversation(*t)[:-1], add_generation_prompt=True) for t in held]
    im_end = tok.token_to_id("<|im_end|>")
    with torch.no_grad():
        out = generate(model.eval(), prompts, max_new_tokens=4, eos_token_id=im_end, pad_token_id=0)
    start = max(len(p) for p in prompts)
    right = 0
    for t, row in zip(held, out.tolist()):
        new = row[start:]
        new = new[:new.index(im_end)] if im_end in new else new
        right += tok.decode(new).strip() == t[1]
    return right / len(held)


def test_tiny_model_learns_a_toy_chat_task(tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, held = split()
    assert not set(train) & set(held)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread is far faster than two spinning
    try:
        tok = debug_chat_tokenizer(tmp_path)
        cfg = override(recipe("debug"), {"stages.0.seq_len": 128, "global_batch_tokens": 512, "micro_batch_size": 4,
                                         "lr": 1e-2, "warmup_steps": 5, "stages.0.data": "<memory>"})
        data = tokenize_chat(tok, [[{"messages": conversation(*t)} for t in train]], max_len=128)
        assert data.report["kept"] == 400
        steps = 260
        cfg = override(cfg, {"stages.0.steps": steps})
        trainer = sft_trainer_class()(Prepared(cfg, tok, [data], {}), out_dir=None, progress=False, verbose=False)
        trainer.setup()
        assert trainer.model is not None
        before = accuracy(trainer.model, tok, held)
        trainer.model.train()
        records = trainer.fit()
        after = accuracy(trainer.model, tok, held)
    finally:
        torch.set_num_threads(threads)
    assert len(records) == steps
    assert before <= 1 / 12 + 0.05
    assert records[-1]["loss"] < records[0]["loss"] / 4
    print("accuracy before", before, "after", after)
    assert after > THRESHOLD, (before, after)
