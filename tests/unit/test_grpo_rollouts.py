"""Rollout engines: the recorded log-probs are log_softmax(logits / T) of the sampled tokens as
transformers' own Qwen2 model computes them on the whole sequence (the independent reference);
completions end at their stop token (kept) and their masks come from lengths, never token values;
the sampled frequencies follow softmax(logits / T); the Ray adapter on a local Ray gives exactly
what the local engine gives, before and after a weight update."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.model import Qwen2ForCausalLM  # noqa: E402
from qwen25.rl.rollouts import (  # noqa: E402
    Completion,
    LocalRollouts,
    RolloutEngine,
    SamplingParams,
    collate_completions,
    shard_seed,
)

transformers.logging.set_verbosity_error()
V = 24
STOP = 3


@pytest.fixture(scope="module")
def models(tmp_path_factory):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                   tie_word_embeddings=True)
    hf = transformers.Qwen2ForCausalLM(cfg).float().eval()  # near-uniform: rows stop at different steps
    path = tmp_path_factory.mktemp("rollout_model")
    hf.save_pretrained(path)
    return hf, Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32), path


PROMPTS = [[5, 9, 11, 2], [7], [12, 4, 4], [20, 1, 8, 6, 17, 9]]


def test_logps_are_log_softmax_of_transformers_logits_and_completions_end_at_stop(models):
    hf, ours, _ = models
    engine = LocalRollouts(ours, stop_token_ids=[STOP], pad_token_id=0)
    assert isinstance(engine, RolloutEngine)
    sp = SamplingParams(max_new_tokens=12, temperature=0.8, seed=3)
    out = engine.generate(PROMPTS, 3, sp)
    assert len(out) == 12
    assert [(c.prompt_index, c.sample_index) for c in out] == [(i, j) for i in range(4) for j in range(3)]
    reasons = {c.finish_reason for c in out}
    assert reasons == {"stop", "length"}  # both kinds occur in this batch
    for c in out:
        assert c.prompt_ids == tuple(PROMPTS[c.prompt_index])
        assert len(c.token_ids) == len(c.logps) >= 1
        if c.finish_reason == "stop":
            assert c.token_ids[-1] == STOP and STOP not in c.token_ids[:-1]
        else:
            assert len(c.token_ids) == 12 and STOP not in c.token_ids
        full = torch.tensor([list(c.prompt_ids) + list(c.token_ids)])
        with torch.no_grad():
            logits = hf(input_ids=full).logits[0, len(c.prompt_ids) - 1:-1].float() / 0.8
        want = torch.log_softmax(logits, -1).gather(1, torch.tensor(c.token_ids)[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(c.logps), want, rtol=1e-5, atol=2e-5)


def test_sampling_runs_the_model_without_autograd(models):
    _, ours, _ = models
    seen: list[bool] = []
    was = ours.training
    hook = ours.register_forward_hook(lambda *_: seen.append(torch.is_grad_enabled()))
    try:
        assert torch.is_grad_enabled()
        LocalRollouts(ours, stop_token_ids=[STOP], pad_token_id=0).generate(PROMPTS, 2, SamplingParams(max_new_tokens=4))
    finally:
        hook.remove()
    assert len(seen) >= 2 and not any(seen)  # the prefill and every decoding step
    assert torch.is_grad_enabled() and ours.training == was  # as they were before


def test_same_seed_same_rollouts_other_seed_other_rollouts(models):
    _, ours, _ = models
    engine = LocalRollouts(ours, stop_token_ids=[STOP], pad_token_id=0)
    a = engine.generate(PROMPTS, 2, SamplingParams(max_new_tokens=8, seed=11))
    b = engine.generate(PROMPTS, 2, SamplingParams(max_new_tokens=8, seed=11))
    c = engine.generate(PROMPTS, 2, SamplingParams(max_new_tokens=8, seed=12))
    assert a == b
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    # batches of 3 rows instead of one batch of 8: still every row ends at its own stop token
    small = LocalRollouts(ours, stop_token_ids=[STOP], pad_token_id=0, batch_size=3).generate(
        PROMPTS, 2, SamplingParams(max_new_tokens=8, seed=11))
    assert all(x.finish_reason == "length" or x.token_ids[-1] == STOP for x in small)


def test_sampled_frequencies_follow_softmax_of_logits_over_temperature(models):
    _, _, path = models
    hf = transformers.Qwen2ForCausalLM.from_pretrained(path).float().eval()
    ours = Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():  # logits x 6: a peaked distribution, far from its temperature-1.7 version
        hf.model.norm.weight.mul_(6.0)
        ours.model.norm.weight.mul_(6.0)
    n, temperature = 4000, 1.7
    out = LocalRollouts(ours, stop_token_ids=[], pad_token_id=0).generate(
        [[5, 9]], n, SamplingParams(max_new_tokens=1, temperature=temperature, seed=0))
    counts = torch.bincount(torch.tensor([c.token_ids[0] for c in out]), minlength=V).double()
    with torch.no_grad():
        logits = hf(input_ids=torch.tensor([[5, 9]])).logits[0, -1].double()
    p = torch.softmax(logits / temperature, -1)
    # every count within 5 binomial standard deviations (a fixed seed: the test cannot flake)
    sd = torch.sqrt(n * p * (1 - p))
    assert bool(((counts - n * p).abs() <= 5 * sd + 1).all())
    assert float((counts / n - p).abs().sum()) < 0.05  # total variation distance (x2)
    assert float((torch.softmax(logits, -1) - p).abs().sum()) > 0.3  # temperature 1 would have failed
    assert float(p.max()) < 0.5  # and the draws are spread over many tokens
    # and the recorded log-prob is that distribution's
    c = out[0]
    assert c.logps[0] == pytest.approx(math.log(float(p[c.token_ids[0]])), abs=1e-5)


def test_top_k_samples_inside_the_filter_but_records_full_logps(models):
    hf, ours, _ = models
    out = LocalRollouts(ours, stop_token_ids=[], pad_token_id=0).generate(
        [[5, 9]], 200, SamplingParams(max_new_tokens=1, top_k=2, seed=1))
    with torch.no_grad():
        logits = hf(input_ids=torch.tensor([[5, 9]])).logits[0, -1].float()
    top2 = set(torch.topk(logits, 2).indices.tolist())
    assert {c.token_ids[0] for c in out} <= top2
    lp = torch.log_softmax(logits, -1)
    for c in out[:5]:
        assert c.logps[0] == pytest.approx(float(lp[c.token_ids[0]]), abs=1e-5)


def test_masks_come_from_lengths_and_keep_a_real_endoftext():
    pad = 151643  # <|endoftext|>: Qwen's pad id and a stop token
    comps = [
        Completion(0, 0, (1, 2, 3), (10, 11, pad), (-1.0, -2.0, -0.5), "stop"),  # really ends in <|endoftext|>
        Completion(0, 1, (1, 2, 3), (pad, 12), (-0.1, -0.2), "length"),  # <|endoftext|> as content, then cut
        Completion(1, 0, (4,), (13, 151645), (-0.3, -0.4), "stop"),
    ]
    b = collate_completions(comps, pad)
    assert b.completion_mask.tolist() == [[1, 1, 1], [1, 1, 0], [1, 1, 0]]
    assert b.completion_ids.tolist() == [[10, 11, pad], [pad, 12, pad], [13, 151645, pad]]
    assert b.prompt_mask.tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 1]]
    assert b.prompt_ids[2].tolist() == [pad, pad, 4]
    assert b.sampler_logps[0].tolist() == [-1.0, -2.0, -0.5]
    assert b.truncated.tolist() == [False, True, False]
    # a token-value rule (mask = ids != pad) would drop row 0's real last token and row 1's first
    assert (b.completion_ids != pad).long().tolist() != b.completion_mask.tolist()
    masked = collate_completions(comps, pad, mask_truncated=True)
    assert masked.completion_mask.tolist() == [[1, 1, 1], [0, 0, 0], [1, 1, 0]]
    assert collate_completions(comps, pad, completion_length=5).completion_ids.shape == (3, 5)
    with pytest.raises(Qwen25ValueError, match="completion 0: 3 tokens but 2"):
        collate_completions([Completion(0, 0, (1,), (1, 2, 3), (0.0, 0.0), "stop")], pad)


def test_bad_requests(models):
    _, ours, _ = models
    engine = LocalRollouts(ours, stop_token_ids=[STOP], pad_token_id=0)
    with pytest.raises(Qwen25ValueError, match="prompt 1 has token id 99"):
        engine.generate([[1, 2], [3, 99]], 2, SamplingParams(max_new_tokens=2))
    with pytest.raises(Qwen25ValueError, match="prompt 0 is empty"):
        engine.generate([[]], 2, SamplingParams(max_new_tokens=2))
    with pytest.raises(Qwen25ValueError, match="n must be"):
        engine.generate([[1]], 0, SamplingParams(max_new_tokens=2))
    with pytest.raises(Qwen25ValueError, match="positions"):
        engine.generate([[1] * 100], 1, SamplingParams(max_new_tokens=64))
    with pytest.raises(TypeError, match="SamplingParams"):
        engine.generate([[1]], 1, {"max_new_tokens": 2})  # type: ignore[arg-type]
    for bad in ({"temperature": 0.0}, {"top_p": 0.0}, {"top_k": -1}, {"max_new_tokens": 0}):
        with pytest.raises(Qwen25ValueError, match=next(iter(bad))):
            SamplingParams(**bad)


def test_ray_adapter_matches_the_local_engine(models, local_ray):
    from qwen25.rl.rollouts import RayRollouts

    _, ours, path = models
    sp = SamplingParams(max_new_tokens=6, temperature=0.9, seed=5)
    engine = RayRollouts(ours, num_workers=2, stop_token_ids=[STOP], pad_token_id=0)
    assert isinstance(engine, RolloutEngine)
    try:
        got = engine.generate(PROMPTS, 2, sp)
        local = LocalRollouts(ours, stop_token_ids=[STOP], pad_token_id=0)
        first = local.generate(PROMPTS[:2], 2, sp)  # shard 0 keeps the seed: one worker = the local engine
        second = local.generate(PROMPTS[2:], 2, SamplingParams(max_new_tokens=6, temperature=0.9,
                                                               seed=shard_seed(5, 1)))
        want = first + [Completion(c.prompt_index + 2, c.sample_index, c.prompt_ids, c.token_ids, c.logps,
                                   c.finish_reason) for c in second]
        assert got == want
        # new weights reach the workers
        moved = Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in moved.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
        engine.update_weights(moved.state_dict())
        after = engine.generate(PROMPTS, 2, sp)
        want_after = LocalRollouts(moved, stop_token_ids=[STOP], pad_token_id=0).generate(PROMPTS[:2], 2, sp)
        assert after[:4] == want_after
        assert after[:4] != got[:4]
    finally:
        engine.shutdown()
