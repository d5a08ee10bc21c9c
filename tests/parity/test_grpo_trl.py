"""The GRPO loss and its gradients against TRL's ``GRPOTrainer.compute_loss`` (the independent
reference), fp32 on the CPU, for every loss type.

One tiny random transformers ``Qwen2ForCausalLM`` is saved and loaded by both sides (TRL builds
its policy and reference from the folder; we load it into ``qwen25.model``). The batch is made by
hand: left-padded prompts, right-padded completions (one really ends in ``<|endoftext|>``, which
is also the pad id), advantages, old and reference log-probs away from the current ones so that
ratios are clipped on both sides and the KL is not zero. Our log-probs come from
``grpo.token_logps`` (chunked, through the fused cross-entropy's chunk op) at the same temperature.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from qwen25.model import Qwen2ForCausalLM  # noqa: E402
from qwen25.rl.grpo import grpo_loss, token_logps  # noqa: E402
from tests.parity.test_rl_trl import TINY, hf_tokenizer  # noqa: E402

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()

PAD = 151643  # <|endoftext|>: Qwen's pad id, and a real stop token
TEMPERATURE = 0.7
MAX_COMPLETION = 6


@pytest.fixture(scope="module")
def folder(tmp_path_factory):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**TINY)).float()
    with torch.no_grad():  # logits well spread, so ratios and log-probs are not flat
        model.model.embed_tokens.weight.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("grpo_policy")
    model.save_pretrained(path)
    return path


def make_batch():  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(5)
    prompt_lens, completion_lens = [5, 3, 5, 4], [6, 2, 4, 6]
    p, c = max(prompt_lens), MAX_COMPLETION
    prompt_ids = torch.full((4, p), PAD, dtype=torch.long)
    prompt_mask = torch.zeros(4, p, dtype=torch.long)
    completion_ids = torch.full((4, c), PAD, dtype=torch.long)
    completion_mask = torch.zeros(4, c, dtype=torch.long)
    for i, (n, m) in enumerate(zip(prompt_lens, completion_lens)):
        prompt_ids[i, p - n:] = torch.randint(0, 151000, (n,), generator=g)
        prompt_mask[i, p - n:] = 1
        completion_ids[i, :m] = torch.randint(0, 151000, (m,), generator=g)
        completion_mask[i, :m] = 1
    completion_ids[2, 3] = PAD  # row 2 really ends in <|endoftext|>: that token is in its mask
    advantages = torch.tensor([1.2, -0.7, 0.4, -1.5])
    return prompt_ids, prompt_mask, completion_ids, completion_mask, advantages


def trl_loss(trainer, inputs):  # type: ignore[no-untyped-def]
    trainer.model.train()
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(inputs))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


@pytest.fixture(scope="module")
def ours_model(folder):  # type: ignore[no-untyped-def]
    return Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32).train()


@pytest.fixture(scope="module")
def trl_trainer(folder, tmp_path_factory):  # type: ignore[no-untyped-def]
    args = trl.GRPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), per_device_train_batch_size=4,
                          num_generations=4, beta=0.04, loss_type="grpo", epsilon=0.2, epsilon_high=None,
                          max_completion_length=MAX_COMPLETION, temperature=TEMPERATURE, use_cpu=True, report_to=[],
                          bf16=False)
    trainer = trl.GRPOTrainer(model=str(folder), reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                              args=args, train_dataset=datasets.Dataset.from_list([{"prompt": "hi"}] * 4),
                              processing_class=hf_tokenizer())
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which is not running
    return trainer


def configure(trainer, loss_type, beta, epsilon_high, correct):  # type: ignore[no-untyped-def]
    """Set what GRPOConfig would have set (compute_loss reads these attributes), so that one TRL
    trainer serves every case. The reference log-probs come in the inputs: no reference model is
    used by compute_loss."""
    trainer.loss_type, trainer.beta = loss_type, beta
    trainer.epsilon_low, trainer.epsilon_high = 0.2, 0.2 if epsilon_high is None else epsilon_high
    trainer.args.use_bias_correction_kl = correct
    assert trainer.max_completion_length == MAX_COMPLETION and trainer.args.delta is None
    return trainer


@pytest.mark.parametrize("loss_type,beta,epsilon_high,correct", [
    ("grpo", 0.04, None, True), ("bnpo", 0.04, 0.28, True), ("dr_grpo", 0.1, None, True), ("dapo", 0.0, 0.28, True),
    ("grpo", 0.1, 0.28, False), ("dapo", 0.04, None, False)])
def test_loss_and_grads_equal_trl(ours_model, trl_trainer, loss_type, beta, epsilon_high, correct):  # type: ignore[no-untyped-def]
    prompt_ids, prompt_mask, completion_ids, completion_mask, advantages = make_batch()
    ids = torch.cat([prompt_ids, completion_ids], 1)
    am = torch.cat([prompt_mask, completion_mask], 1)
    ours = ours_model
    with torch.no_grad():
        current = token_logps(ours, ids, am, MAX_COMPLETION, completion_mask=completion_mask, temperature=TEMPERATURE)
    g = torch.Generator().manual_seed(9)
    old = (current + torch.randn(current.shape, generator=g) * 0.3) * completion_mask
    ref = (current + torch.randn(current.shape, generator=g) * 0.3) * completion_mask
    inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
              "completion_mask": completion_mask, "advantages": advantages, "old_per_token_logps": old,
              "ref_per_token_logps": ref, "num_items_in_batch": completion_mask.sum().float()}
    trainer = configure(trl_trainer, loss_type, beta, epsilon_high, correct)
    want, want_grads = trl_loss(trainer, inputs)

    ours.zero_grad()
    logps = token_logps(ours, ids, am, MAX_COMPLETION, completion_mask=completion_mask, temperature=TEMPERATURE,
                        chunk_size=5)
    loss = grpo_loss(logps, old, ref if beta else None, advantages, completion_mask, epsilon=0.2,
                     epsilon_high=epsilon_high, beta=beta, loss_type=loss_type, max_completion_length=MAX_COMPLETION,
                     kl_bias_correction=correct)
    loss.backward()
    torch.testing.assert_close(loss.detach(), want, rtol=1e-5, atol=1e-7)
    assert abs(float(want)) > 1e-3  # a real loss, not a degenerate zero
    ratio = torch.exp(logps.detach() - old)[completion_mask.bool()]
    assert bool((ratio > 1.2).any()) and bool((ratio < 0.8).any())  # clipping is exercised on both sides
    for name, p in ours.named_parameters():  # fp32 sums in another order: tolerance relative to the gradient's scale
        w = want_grads[name]
        assert float(w.abs().max()) > 0, name
        torch.testing.assert_close(p.grad, w, rtol=1e-4, atol=1e-4 * float(w.abs().max()),
                                   msg=lambda m, name=name: f"{name}: {m}")
