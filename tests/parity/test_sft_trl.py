"""SFT against TRL and transformers, the independent references:

* ids and assistant masks: transformers' ``apply_chat_template(..., return_assistant_tokens_mask=True)``
  with TRL's Qwen2.5 training template (``trl.chat_template_utils.get_training_chat_template``),
  on the real Qwen2.5 tokenizer files;
* labels and loss: TRL ``SFTTrainer`` with ``assistant_only_loss=True`` (its tokenized dataset, and
  ``compute_loss`` on a padded batch of the same conversations), with a tiny random transformers
  model loaded into ours; our loss comes from our packed rows through our Trainer, so packed and
  unpacked batches are compared too;
* packing: ``trl.pack_dataset(..., strategy="bfd")`` on the same lengths.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

import qwen25  # noqa: E402
from qwen25.train import Stage, TrainConfig  # noqa: E402
from qwen25.train.sft import Prepared, build_example, pack_bfd, render_pieces, sft_trainer_class, tokenize_chat  # noqa: E402

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather «now» & <here>",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}

PLAIN: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3"},
     {"role": "assistant", "content": "6."}],
    [{"role": "user", "content": "Tell me about 🦀 and 你好.\n\nTwo lines."},
     {"role": "assistant", "content": "\n\n  Crabs: 🦀!\n你好 means hello.  "}],
    [{"role": "user", "content": "spaces at the end   "}, {"role": "assistant", "content": "   leading spaces"},
     {"role": "user", "content": "x"}, {"role": "assistant", "content": ""}],
    [{"role": "user", "content": "write code"},
     {"role": "assistant", "content": "```python\ndef f(x):\n    return x + 1\n```\n"}],
    [{"role": "system", "content": "sys"}, {"role": "user", "content": "a"}, {"role": "system", "content": "late system"},
     {"role": "assistant", "content": "b<|im_end|> literal"}],
]
WITH_TOOLS: list[tuple[list[dict[str, Any]], Any]] = [
    ([{"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": "", "tool_calls": [
          {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "content": '{"temp": 21}'},
      {"role": "assistant", "content": "It is 21°C."}], [WEATHER]),
    ([{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Oslo and Rome?"},
      {"role": "assistant", "content": "Checking both.", "tool_calls": [
          {"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
          {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
      {"role": "tool", "content": "cold"}, {"role": "tool", "content": "warm"},
      {"role": "assistant", "content": "Oslo is cold, Rome warm."}], [WEATHER]),
    ([{"role": "user", "content": "no tools used"}, {"role": "assistant", "content": "fine"}], [WEATHER]),
]


@pytest.fixture(scope="module")
def hf_tok(qwen25_data_dir: Path):  # type: ignore[no-untyped-def]
    return transformers.AutoTokenizer.from_pretrained(str(qwen25_data_dir))


@pytest.fixture(scope="module")
def ours() -> qwen25.Tokenizer:
    return qwen25.Tokenizer.qwen25()


@pytest.mark.parametrize("k", range(len(PLAIN) + len(WITH_TOOLS)))
def test_ids_and_masks_equal_trl_training_template(k: int, hf_tok, ours) -> None:  # type: ignore[no-untyped-def]
    from trl.chat_template_utils import get_training_chat_template

    msgs, tools = (PLAIN[k], None) if k < len(PLAIN) else WITH_TOOLS[k - len(PLAIN)]
    template = get_training_chat_template(hf_tok)
    assert template is not None  # TRL recognises the Qwen2.5 template
    out = hf_tok.apply_chat_template(msgs, tools=tools, chat_template=template, tokenize=True, return_dict=True,
                                     return_assistant_tokens_mask=True)
    expected = [t if m else -100 for t, m in zip(out["input_ids"], out["assistant_masks"])]
    ids, labels = build_example(ours, msgs, tools)
    assert ids == list(out["input_ids"])
    assert labels == expected
    # the pieces render exactly what the chat template renders (both the package's and transformers')
    text = hf_tok.apply_chat_template(msgs, tools=tools, tokenize=False)
    assert "".join(t for t, _ in render_pieces(msgs, tools)) == text == ours.apply_chat_template(
        msgs, tools=tools, tokenize=False)


TINY = dict(vocab_size=151936, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=True)


def test_labels_and_loss_equal_trl_sft_trainer(tmp_path: Path, hf_tok, ours) -> None:  # type: ignore[no-untyped-def]
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    hf_model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**TINY))
    with torch.no_grad():
        hf_model.lm_head.weight.mul_(20.0)  # logits far from uniform, so the loss depends on every label
    folder = tmp_path / "hf"
    hf_model.save_pretrained(folder)
    convs = [{"messages": m} for m in PLAIN]
    args = SFTConfig(output_dir=str(tmp_path / "trl"), assistant_only_loss=True, per_device_train_batch_size=len(convs),
                     report_to=[], max_length=None, use_cpu=True, packing=False, dataloader_drop_last=False)
    trainer = SFTTrainer(model=hf_model, args=args, train_dataset=datasets.Dataset.from_list(convs),
                         processing_class=hf_tok)
    # labels: TRL's tokenized dataset, row by row
    for row, m in zip(trainer.train_dataset, PLAIN):
        ids, labels = build_example(ours, m)
        assert ids == row["input_ids"] and labels == row["labels"]
    # loss: TRL's compute_loss on one padded batch of every conversation
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == len(convs)
    hf_model.train()
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(hf_model, dict(batch)))

    # ours: the same conversations packed into rows of 128 (several per row), through our Trainer
    data = tokenize_chat(ours, [convs], max_len=128)
    rows = len(pack_bfd(data.lengths().tolist(), 128))
    assert rows < len(convs)  # packed: rows hold several conversations
    cfg = TrainConfig(name="parity", model=str(folder), init_from=str(folder),
                      stages=(Stage(name="sft", data=("<memory>",), seq_len=128, steps=1),),
                      global_batch_tokens=rows * 128, micro_batch_size=1, shuffle=False, device="cpu",
                      precision="fp32", lr=1e-3, method={"objective": "sft"})
    ours_trainer = sft_trainer_class()(Prepared(cfg, ours, [data], {}), out_dir=None, progress=False, verbose=False)
    ours_trainer.setup()
    res = ours_trainer.forward_backward(1)
    assert sorted(i for _, i in res["rows"]) == list(range(rows))  # the step read every row once
    assert res["n_global"] == sum(sum(1 for x in build_example(ours, m)[1] if x != -100) for m in PLAIN)
    assert res["ce_total"] / res["n_global"] == pytest.approx(trl_loss, rel=1e-5, abs=1e-5)


def test_pack_bfd_equals_trl_pack_dataset() -> None:
    from trl import pack_dataset

    rng = random.Random(0)
    for trial in range(25):
        seq_len = rng.choice([1, 7, 16, 64, 100])
        n = rng.randint(1, 150)
        hi = rng.choice([seq_len, max(1, seq_len // 3)])  # many ties, or many small items
        lengths = [rng.randint(1, hi) for _ in range(n)]
        ds = datasets.Dataset.from_dict({"input_ids": [[i] * n_i for i, n_i in enumerate(lengths)]})
        packed = pack_dataset(ds, seq_len, strategy="bfd")
        expected = []
        for row in packed["input_ids"]:  # each item's tokens are its index: read the rows back
            members: list[int] = []
            for x in row:
                if not members or members[-1] != x:
                    members.append(x)
            expected.append(members)
        assert pack_bfd(lengths, seq_len) == expected, (trial, seq_len, lengths)


def test_pack_bfd_equals_trl_on_many_items() -> None:
    """TRL packs each ``datasets.map`` batch (1,000 rows by default) on its own; with the whole
    dataset in one batch its rows equal ours, past 1,000 items too."""
    from trl import pack_dataset

    rng = random.Random(1)
    for seq_len, lo, hi in ((4096, 50, 1000), (64, 1, 64)):
        lengths = [rng.randint(lo, hi) for _ in range(3000)]
        ds = datasets.Dataset.from_dict({"input_ids": [[i] * n_i for i, n_i in enumerate(lengths)]})
        packed = pack_dataset(ds, seq_len, strategy="bfd", map_kwargs={"batch_size": len(lengths)})
        expected = [list(dict.fromkeys(row)) for row in packed["input_ids"]]
        assert pack_bfd(lengths, seq_len) == expected
