"""The GRPO trainer on the training loop: it learns a toy reward, trains each episode's queries in
descending order of reward variance (checked from its own sample log with Python's statistics),
normalises over the whole step whatever the micro-batches, starts each episode at ratio 1 and KL 0,
counts zero-variance groups, resumes exactly (mid-episode too), and names bad prompt lines.

The model is the debug shape with a 16-token vocabulary; prompts are token ids; rewards are
functions of the sampled tokens, so every expected value comes from the test, not from the code."""

from __future__ import annotations

import json
import statistics

import pytest

torch = pytest.importorskip("torch")

from qwen25.errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError  # noqa: E402
from qwen25.rl.grpo import GRPOTrainer, prepare_config, read_prompts, train_grpo  # noqa: E402
from qwen25.rl.rewards import RewardFunction  # noqa: E402
from qwen25.rl.rollouts import LocalRollouts  # noqa: E402
from qwen25.train import Stage, TrainConfig  # noqa: E402

V = 16
STOP = 2


def prompts_file(path, n: int = 8) -> str:  # type: ignore[no-untyped-def]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"prompt_ids": [3 + i % 5, 4 + i % 7, 5], "id": f"p{i}"}) + "\n")
    return str(path)


def config(data: str, **method) -> TrainConfig:  # type: ignore[no-untyped-def]
    m = {"num_generations": 8, "queries_per_episode": 4, "episodes": 2, "max_prompt_length": 8,
         "max_completion_length": 4, "beta": 0.0, "rewards": {}, "stop_token_ids": [STOP]}
    rows = method.pop("rows", 16)
    micro = method.pop("micro", 8)
    lr = method.pop("lr", 1e-2)
    m.update(method)
    return TrainConfig(name="t", model="debug", model_overrides={"vocab_size": V, "hidden_size": 32,
                                                                 "intermediate_size": 64},
                       stages=(Stage(name="grpo", data=(data,), seq_len=16, steps=1),), global_batch_tokens=rows * 16,
                       micro_batch_size=micro, lr=lr, schedule="constant", weight_decay=0.0, device="cpu",
                       precision="fp32", method=m)


def first_is_7(records, texts, completions):  # type: ignore[no-untyped-def]
    return [1.0 if c.token_ids[0] == 7 else 0.0 for c in completions]


def graded(records, texts, completions):  # type: ignore[no-untyped-def]
    """Rewards whose spread differs by prompt: the variance order is not the prompt order."""
    out = []
    for r, c in zip(records, completions):
        k = int(r["id"][1:])
        out.append(float(c.token_ids[0] % 3) * (k % 4))
    return out


def run(data: str, out=None, fns=(first_is_7,), **kw):  # type: ignore[no-untyped-def]
    trainer_kw = {k: kw.pop(k) for k in ("resume", "stop_at_step") if k in kw}
    stop = trainer_kw.pop("stop_at_step", None)
    cfg = prepare_config(config(data, **kw))
    tr = GRPOTrainer(cfg, out_dir=out, progress=False, verbose=False,
                     reward_functions=[RewardFunction(f.__name__, f) for f in fns], **trainer_kw)
    return tr, tr.fit(stop_at_step=stop)


def test_learns_the_toy_reward(tmp_path):
    _, recs = run(prompts_file(tmp_path / "p.jsonl"), episodes=14)
    first = statistics.fmean(r["reward"] for r in recs[:4])
    last = statistics.fmean(r["reward"] for r in recs[-4:])
    assert first < 0.3 and last > first + 0.4, (first, last)


def test_queries_are_trained_in_descending_variance(tmp_path):
    data = prompts_file(tmp_path / "p.jsonl")
    out = tmp_path / "run"
    _, recs = run(data, out, fns=(graded,), queries_per_episode=8, rows=16, episodes=2)
    assert [r["minibatch"] for r in recs] == [0, 1, 2, 3] * 2
    for e in range(2):
        samples = [json.loads(line) for line in (out / "rollouts" / f"episode-{e}.jsonl").read_text().splitlines()]
        by_query: dict[int, list[dict]] = {}
        for s in samples:
            by_query.setdefault(s["sample"] // 8, []).append(s)
        var = {q: statistics.variance([s["reward"] for s in ss]) for q, ss in by_query.items()}
        step_of = {q: ss[0]["minibatch"] for q, ss in by_query.items()}
        assert all(s["minibatch"] == step_of[q] for q, ss in by_query.items() for s in ss)  # a query stays whole
        per_step = [[var[q] for q in var if step_of[q] == j] for j in range(4)]
        assert all(len(v) == 2 for v in per_step)
        for j in range(3):  # every query of step j varies at least as much as every query of step j + 1
            assert min(per_step[j]) >= max(per_step[j + 1]), per_step
        assert len({round(v, 9) for v in var.values()}) > 2  # a real ordering, not all ties
        logged = [r["minibatch_reward_variance"] for r in recs if r["episode"] == e]
        assert logged == pytest.approx([statistics.fmean(v) for v in per_step])


def test_step_gradient_does_not_depend_on_micro_batches(tmp_path):
    data = prompts_file(tmp_path / "p.jsonl")
    grads = []
    for micro in (16, 8, 4):
        cfg = prepare_config(config(data, micro=micro, loss_type="bnpo", beta=0.04))
        tr = GRPOTrainer(cfg, progress=False, verbose=False, reward_functions=[RewardFunction("g", graded)])
        tr.setup()
        res = tr.forward_backward(1)
        assert len(res["micro"]) == 16 // micro
        grads.append({n: p.grad.clone() for n, p in tr.model.named_parameters()})
    for other in grads[1:]:
        for name, g in grads[0].items():
            assert float(g.abs().max()) > 0
            torch.testing.assert_close(other[name], g, rtol=1e-5, atol=1e-6 * float(g.abs().max()))


def test_episode_starts_at_ratio_one_and_kl_zero_and_iterations_reuse_it(tmp_path):
    data = prompts_file(tmp_path / "p.jsonl")
    _, recs = run(data, num_iterations=2, beta=0.04, episodes=1)
    assert [(r["iteration"], r["minibatch"]) for r in recs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert recs[0]["ratio_mean"] == 1.0 and recs[0]["kl"] == 0.0  # policy = sampler = reference, bit for bit
    assert recs[0]["sampler_logp_diff_max"] < 1e-5  # the sampler's log-probs are the trainer's
    assert recs[2]["ratio_mean"] != 1.0 and recs[2]["kl"] > 0  # the second pass sees the moved policy
    assert len({r["reward"] for r in recs}) == 1  # one rollout for all four steps


def test_zero_variance_groups_are_counted(tmp_path):
    def constant(records, texts, completions):  # type: ignore[no-untyped-def]
        return [1.0] * len(completions)

    _, recs = run(prompts_file(tmp_path / "p.jsonl"), fns=(constant,), episodes=1)
    assert all(r["frac_reward_zero_std"] == 1.0 and r["zero_std_groups"] == 4 for r in recs)
    assert all(r["loss"] == 0.0 for r in recs)


def test_truncated_completions_can_be_masked(tmp_path):
    data = prompts_file(tmp_path / "p.jsonl")
    # no stop token can be sampled: every completion is cut at 4 tokens
    _, recs = run(data, stop_token_ids=[], mask_truncated_completions=True, episodes=1)
    assert all(r["clipped_ratio"] == 1.0 and r["completion_tokens"] == 0 and r["loss"] == 0.0 for r in recs)
    _, recs = run(data, stop_token_ids=[], episodes=1)
    assert all(r["completion_tokens"] == 16 * 4 for r in recs)


def test_resume_mid_episode_is_exact(tmp_path):
    data = prompts_file(tmp_path / "p.jsonl")
    _, straight = run(data, tmp_path / "a", episodes=3)
    _, first = run(data, tmp_path / "b", episodes=3, stop_at_step=3)  # episode 1, after its first step
    ckpt = tmp_path / "b" / "checkpoints" / "step-3"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["data"]["buffer"]["file"] == "rollouts/episode-1.pt"
    tr, rest = run(data, tmp_path / "b", episodes=3)
    assert [r["step"] for r in rest] == [4, 5, 6]
    keys = ("loss", "reward", "grad_norm", "ratio_mean", "minibatch_reward_variance")
    assert [[r[k] for k in keys] for r in first + rest] == [[r[k] for k in keys] for r in straight]
    a = GRPOTrainer(prepare_config(config(data, episodes=3)), out_dir=tmp_path / "a", progress=False, verbose=False,
                    reward_functions=[RewardFunction("f", first_is_7)])
    a.setup()
    for (n, p), q in zip(a.model.named_parameters(), tr.model.parameters()):
        assert torch.equal(p, q), n
    # a doctored episode file is refused, naming it
    b2 = tmp_path / "c"
    run(data, b2, episodes=3, stop_at_step=3)
    path = b2 / "rollouts" / "episode-1.pt"
    blob = torch.load(path, weights_only=False)
    blob["advantages"] = blob["advantages"] * 2
    torch.save(blob, path)
    with pytest.raises(FormatError, match="episode-1.pt is not the file the checkpoint recorded"):
        run(data, b2, episodes=3)


def test_custom_rollout_engine_sees_only_the_protocol(tmp_path):
    calls = []

    class Counting:
        def __init__(self, inner):  # type: ignore[no-untyped-def]
            self.inner = inner

        def generate(self, prompts, n, sampling):  # type: ignore[no-untyped-def]
            calls.append(("generate", len(prompts), n, sampling.seed))
            return self.inner.generate(prompts, n, sampling)

        def update_weights(self, state_dict):  # type: ignore[no-untyped-def]
            calls.append(("update", len(state_dict)))

    data = prompts_file(tmp_path / "p.jsonl")
    cfg = prepare_config(config(data, episodes=2))
    tr = GRPOTrainer(cfg, progress=False, verbose=False, reward_functions=[RewardFunction("f", first_is_7)])
    tr.setup()
    tr._engine = Counting(LocalRollouts(tr.model, stop_token_ids=[STOP], pad_token_id=0))
    tr.fit()
    kinds = [c[0] for c in calls]
    assert kinds == ["update", "generate", "update", "generate"]
    assert calls[1][1:3] == (4, 8) and calls[1][3] != calls[3][3]  # a new seed each episode


def test_bad_prompt_files_name_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    cases = [
        ('{"prompt_ids": [1, 2]}\n{"prompt_ids": [1, 2\n', "bad.jsonl:2: malformed JSON"),
        ('\n{"text": "hi"}\n', "bad.jsonl:2: needs 'prompt'"),
        ('{"prompt_ids": [1, 99]}\n', "bad.jsonl:1: token id 99 is outside"),
        ('{"prompt_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n', "bad.jsonl:1: the prompt has 9 tokens, more than"),
        ('{"prompt_ids": []}\n', "bad.jsonl:1: the prompt is empty"),
        ('[1, 2]\n', "bad.jsonl:1: a record must be a JSON object"),
        ('{"prompt": [{"role": "user"}]}\n', "bad.jsonl:1: 'prompt' must be a string or a list"),
        ('\n\n', "no prompts"),
    ]
    for text, msg in cases:
        p.write_text(text)
        with pytest.raises(FormatError, match=msg.replace("(", r"\(")):
            from qwen25 import Tokenizer

            read_prompts(p, Tokenizer.qwen25(), max_prompt_length=8, vocab_size=V)
    with pytest.raises(Qwen25FileNotFoundError, match="does not exist"):
        read_prompts(tmp_path / "missing.jsonl", None, max_prompt_length=8)
    p.write_text('{"prompt_ids": [1, 99]}\n')
    with pytest.raises(FormatError, match="bad.jsonl:1"):  # through the trainer, before the model is built
        run(str(p), episodes=1)


def test_text_prompts_use_the_chat_template(tmp_path):
    from qwen25 import Tokenizer

    tok = Tokenizer.qwen25()
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"prompt": "What is 2+2?", "answer": "4"}) + "\n"
                 + json.dumps({"prompt": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Hi"}]}) + "\n")
    ps = read_prompts(p, tok, max_prompt_length=64)
    assert ps.ids[0] == tuple(tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                                      add_generation_prompt=True))
    assert tok.decode(list(ps.ids[1])).endswith("<|im_start|>assistant\n")
    assert ps.records[0]["answer"] == "4" and ps.records[0]["_where"].endswith("t.jsonl:1")
    with pytest.raises(FormatError, match="t.jsonl:2: without the chat template 'prompt' must be a string"):
        read_prompts(p, tok, max_prompt_length=64, chat_template=False)
    p.write_text(json.dumps({"prompt": "2+2="}) + "\n")
    assert read_prompts(p, tok, max_prompt_length=64, chat_template=False).ids == [tuple(tok.encode("2+2="))]


def test_bad_settings(tmp_path):
    data = prompts_file(tmp_path / "p.jsonl")
    with pytest.raises(Qwen25ValueError, match=r"unknown GRPO settings \['beta2'\]"):
        GRPOTrainer(config(data, beta2=0.1))
    fns = [RewardFunction("f", first_is_7)]
    with pytest.raises(Qwen25ValueError, match="whole queries of 8 samples"):
        GRPOTrainer(config(data, rows=12, micro=4), reward_functions=fns)
    with pytest.raises(Qwen25ValueError, match="do not split into steps"):
        GRPOTrainer(config(data, queries_per_episode=3), reward_functions=fns)
    with pytest.raises(Qwen25ValueError, match="exceed the stage's seq_len"):
        GRPOTrainer(config(data, max_completion_length=12), reward_functions=fns)
    with pytest.raises(Qwen25ValueError, match="GRPO needs rewards"):
        GRPOTrainer(config(data))
    with pytest.raises(Qwen25ValueError, match="loss_type"):
        GRPOTrainer(config(data, loss_type="ppo"), reward_functions=[RewardFunction("f", first_is_7)])


def test_train_grpo_writes_the_final_model(tmp_path):
    data = prompts_file(tmp_path / "p.jsonl")
    tr, recs = train_grpo(config(data, episodes=1), out_dir=str(tmp_path / "o"), progress=False, verbose=False,
                          reward_functions=[RewardFunction("f", first_is_7)])
    assert len(recs) == 2 and (tmp_path / "o" / "final" / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "o" / "rollouts").iterdir()) == ["episode-0.jsonl"]  # .pt pruned
    lines = (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    assert {"reward", "rewards/f/mean", "frac_reward_zero_std", "clip_ratio/region_mean", "completion_length",
            "rollout_tokens_per_s", "episode"} <= set(rec)
