"""The reward model and DPO against TRL and transformers (the independent references), fp32, CPU.

* Reward loss: TRL's ``RewardTrainer.compute_loss`` on a transformers ``Qwen2ForSequenceClassification``
  and the same batch = our ``reward_loss`` on our ``RewardModel`` loaded from that model's folder,
  with and without ``center_rewards_coefficient``; and transformers loads our checkpoint back with
  equal rewards.
* DPO: TRL's ``DPOTrainer`` (sigmoid loss, a separate reference model) on a tiny random
  transformers model: its loss and gradients on one batch = ours on the same token ids, with our
  reference log-probs from our copy of the reference.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from qwen25.model import Qwen2ForCausalLM  # noqa: E402
from qwen25.rl import RewardModel, dpo_loss, reward_loss  # noqa: E402
from qwen25.rl.dpo import sequence_logps  # noqa: E402
from qwen25.rl.prefdata import Pair, collate  # noqa: E402
from tests.conftest import QWEN25_DATA, build_hf_qwen25  # noqa: E402

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()

TINY = dict(vocab_size=151936, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=256, rope_theta=10000.0, tie_word_embeddings=True,
            pad_token_id=151643)


def hf_tokenizer():  # type: ignore[no-untyped-def]
    cfg = json.loads((QWEN25_DATA / "tokenizer_config.json").read_text(encoding="utf-8"))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=build_hf_qwen25(), eos_token="<|im_end|>",
                                                pad_token="<|endoftext|>", chat_template=cfg["chat_template"])


def rm_batch(seed: int = 0):  # type: ignore[no-untyped-def]
    """4 chosen rows then 4 rejected rows, right-padded with the pad id (absent from the content)."""
    g = torch.Generator().manual_seed(seed)
    lens = [9, 14, 6, 11, 12, 5, 14, 8]
    ids = torch.full((8, 14), 151643, dtype=torch.long)
    am = torch.zeros(8, 14, dtype=torch.long)
    for i, n in enumerate(lens):
        ids[i, :n] = torch.randint(0, 151000, (n,), generator=g)
        am[i, :n] = 1
    return ids, am


def trl_reward_loss(model, inputs, coef):  # type: ignore[no-untyped-def]
    """TRL's RewardTrainer.compute_loss, called on a stand-in for the trainer's own state."""
    acc = SimpleNamespace(gather_for_metrics=lambda x: x, gather=lambda x: x)
    me = SimpleNamespace(model=model, accelerator=acc, args=SimpleNamespace(center_rewards_coefficient=coef),
                         _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0,
                         _tp_size=1)
    return trl.RewardTrainer.compute_loss(me, model, dict(inputs))


@pytest.fixture(scope="module")
def hf_rm(tmp_path_factory):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = transformers.Qwen2ForSequenceClassification(transformers.Qwen2Config(num_labels=1, **TINY)).float()
    with torch.no_grad():
        model.score.weight.normal_(0, 0.5)  # rewards well apart, so the loss and gradients are not flat
    path = tmp_path_factory.mktemp("hf_rm")
    model.save_pretrained(path)
    return model, path


@pytest.mark.parametrize("coef", [None, 0.01])
def test_reward_loss_and_grads_equal_trl(hf_rm, coef):  # type: ignore[no-untyped-def]
    hf, path = hf_rm
    ours = RewardModel.from_pretrained(path, dtype=torch.float32).train()
    hf.train()
    ids, am = rm_batch()
    hf.zero_grad()
    ref = trl_reward_loss(hf, {"input_ids": ids, "attention_mask": am}, coef)
    ref.backward()
    r = ours(ids, am)
    c, j = r.chunk(2)
    loss = reward_loss(c, j, center_rewards_coefficient=coef)
    loss.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    hf_grads = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        hname = "score.weight" if name == "lm_head.weight" else name
        torch.testing.assert_close(p.grad, hf_grads[hname].grad, rtol=1e-4, atol=1e-6, msg=name)


def test_reward_margin_is_trls_formula(hf_rm):  # type: ignore[no-untyped-def]
    c, j = torch.tensor([1.0, -0.5, 2.0]), torch.tensor([0.2, 0.3, 2.5])
    margin = torch.tensor([0.5, 0.0, 1.0])
    expected = -torch.nn.functional.logsigmoid(c - j - margin).mean() + 0.1 * torch.mean((c + j) ** 2)
    torch.testing.assert_close(reward_loss(c, j, margin=margin, center_rewards_coefficient=0.1), expected)


def test_transformers_loads_our_reward_checkpoint(tmp_path):  # type: ignore[no-untyped-def]
    from qwen25.model import Qwen25Config

    cfg = Qwen25Config(**{k: v for k, v in TINY.items()}, torch_dtype="float32")
    ours = RewardModel.from_causal_lm(Qwen2ForCausalLM.from_config(cfg, seed=3), seed=4).eval()
    ours.save_pretrained(tmp_path / "rm")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").float().eval()
    assert type(hf).__name__ == "Qwen2ForSequenceClassification" and hf.config.num_labels == 1
    ids, am = rm_batch(1)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, am), hf(input_ids=ids, attention_mask=am).logits[:, 0], rtol=1e-5,
                                   atol=1e-6)
    back = RewardModel.from_pretrained(tmp_path / "rm")
    with torch.no_grad():
        assert torch.equal(back(ids, am), ours(ids, am))


def test_reward_reads_the_mask_not_the_pad_token(hf_rm):  # type: ignore[no-untyped-def]
    """<|endoftext|> (the pad id) inside real content: the reward is still the unpadded row's."""
    _, path = hf_rm
    ours = RewardModel.from_pretrained(path).eval()
    row = torch.tensor([[5, 151643, 7, 9, 151643]])  # ends in the pad id, which is real here
    padded = torch.cat([row, torch.full((1, 3), 151643)], 1)
    am = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    with torch.no_grad():
        alone = ours(row, torch.ones_like(row))
        torch.testing.assert_close(ours(padded, am), alone)
        torch.testing.assert_close(ours(padded, lengths=torch.tensor([5])), alone)


# ------------------------------------------------------------------------------------- DPO
RECORDS = [
    {"prompt": [{"role": "user", "content": f"What is {a} plus {b}?"}],
     "chosen": [{"role": "assistant", "content": f"{a} plus {b} is {a + b}."}],
     "rejected": [{"role": "assistant", "content": f"I think it is {a * b + 1}, or maybe not."}]}
    for a, b in [(2, 3), (10, 7), (4, 4), (31, 12)]
]


def test_dpo_loss_and_grads_equal_trl(tmp_path):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    policy = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**TINY)).float()
    torch.manual_seed(1)
    reference = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**TINY)).float()
    policy.save_pretrained(tmp_path / "policy")
    reference.save_pretrained(tmp_path / "ref")
    args = trl.DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, beta=0.1,
                         loss_type=["sigmoid"], report_to=[], use_cpu=True, max_length=None, bf16=False)
    trainer = trl.DPOTrainer(model=policy, ref_model=reference, args=args,
                             train_dataset=datasets.Dataset.from_list(RECORDS), processing_class=hf_tokenizer())
    examples = [trainer.train_dataset[i] for i in range(4)]
    batch = trainer.data_collator(examples)
    trainer.model.train()
    trainer.model.zero_grad()
    ref_loss = trainer.compute_loss(trainer.model, batch)
    ref_loss.backward()

    ours = Qwen2ForCausalLM.from_pretrained(tmp_path / "policy", dtype=torch.float32).train()
    our_ref = Qwen2ForCausalLM.from_pretrained(tmp_path / "ref", dtype=torch.float32).eval()
    pairs = [Pair(tuple(e["prompt_ids"]), tuple(e["chosen_ids"]), tuple(e["rejected_ids"]), i + 1)
             for i, e in enumerate(examples)]
    mb = collate(pairs, list(range(4)), left=True)
    with torch.no_grad():
        rc, rr = sequence_logps(our_ref, mb.input_ids, mb.attention_mask, mb.completion_mask).chunk(2)
    pc, pr = sequence_logps(ours, mb.input_ids, mb.attention_mask, mb.completion_mask).chunk(2)
    losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta=0.1)
    loss = losses.mean()
    loss.backward()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert abs(float(loss.detach()) - 0.693147) > 1e-4  # a real loss, not the policy = reference value
    theirs = dict(trainer.model.named_parameters())
    for name, p in ours.named_parameters():
        g = theirs[name].grad
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-7, msg=name)
