"""GRPO on two gloo ranks (``torchrun``, FSDP2 on the CPU) equals one process on the same rollouts.

The rollouts are fixed: an engine whose completions depend only on (prompt, sample index), so the
two-rank run (each rank samples half of an episode's queries) and the one-process run see the very
same episode. Rewards differ in spread by prompt, so the variance order interleaves the two ranks'
queries. Each optimizer step's gathered gradients, the logged loss and metrics, and the parameters
after the run must equal the one-process run's, for every loss type (the normalisers are the whole
step's, over micro-batches and ranks), with several steps per episode (old log-probs), a second
iteration over an episode, and the KL to a reference model (sharded too).

A run stopped mid-episode on two ranks resumes in one process and ends where the uninterrupted
one-process run ends. A last run uses the default local sampler on two ranks (a replica per rank):
every rank holds the same gathered episode, the ranks sampled different shares, and the policy
written at the end (gathered, by rank 0) is the trained one."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from qwen25.rl.grpo import GRPOTrainer, prepare_config, train_grpo  # noqa: E402
from qwen25.rl.rewards import RewardFunction  # noqa: E402
from qwen25.rl.rollouts import Completion  # noqa: E402
from qwen25.train import Stage, TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
V = 16
STOP = 2

# name -> method overrides
RUNS: dict[str, dict] = {
    "dapo": {"loss_type": "dapo", "num_iterations": 2},
    "grpo": {"loss_type": "grpo"},
    "bnpo": {"loss_type": "bnpo", "scale_rewards": "batch", "epsilon_high": 0.28},
    "dr_grpo": {"loss_type": "dr_grpo", "beta": 0.0},
}


def prompts_file(path) -> str:  # type: ignore[no-untyped-def]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(8):
            f.write(json.dumps({"prompt_ids": [3 + i % 5, 4 + i % 7, 5], "id": f"p{i}"}) + "\n")
    return str(path)


def config(data: str, rows: int = 8, **method) -> TrainConfig:  # type: ignore[no-untyped-def]
    """4 queries x 4 samples per episode, 2 steps of 8 samples each (2 queries), micro-batches of 2
    (on two ranks: 4 samples, 2 micro-batches per rank and step), 2 episodes."""
    m = {"num_generations": 4, "queries_per_episode": 4, "episodes": 2, "max_prompt_length": 8,
         "max_completion_length": 5, "beta": 0.04, "rewards": {}, "stop_token_ids": [STOP], "log_completions": False}
    m.update(method)
    return prepare_config(TrainConfig(
        name="t", model="debug", model_overrides={"vocab_size": V, "hidden_size": 32, "intermediate_size": 64},
        stages=(Stage(name="grpo", data=(data,), seq_len=16, steps=1),), global_batch_tokens=rows * 16,
        micro_batch_size=2, lr=1e-2, schedule="constant", weight_decay=0.0, clip_grad_norm=0.0, device="cpu",
        precision="fp32", method=m))


class FixedRollouts:
    """Completions that depend only on the prompt and the sample index (lengths 1..5, some ending
    in the stop token, some cut at the limit), with made-up sampler log-probs."""

    def update_weights(self, state_dict) -> None:  # type: ignore[no-untyped-def]
        pass

    def generate(self, prompts, n, sampling):  # type: ignore[no-untyped-def]
        out = []
        for i, p in enumerate(prompts):
            for j in range(n):
                rng = random.Random(f"{tuple(p)}|{j}")
                k = rng.randint(1, sampling.max_new_tokens)
                toks = [rng.randrange(3, V) for _ in range(k)]
                stop = k < sampling.max_new_tokens or rng.random() < 0.5
                if stop:
                    toks[-1] = STOP
                out.append(Completion(i, j, tuple(p), tuple(toks), tuple(-1.0 for _ in toks),
                                      "stop" if stop else "length"))
        return out


def graded(records, texts, completions):  # type: ignore[no-untyped-def]
    """Rewards whose spread differs by prompt (prompt p{k}: scale k % 4)."""
    return [float(c.token_ids[0] % 3) * (int(r["id"][1:]) % 4) for r, c in zip(records, completions)]


def run_one(data: str, name: str, out=None, stop=None) -> dict:  # type: ignore[no-untyped-def]
    """Fit one configuration; return the per-step gathered gradients, the records and the final
    (gathered) parameters. Runs the same in one process and on every rank of a torchrun launch."""
    tr = GRPOTrainer(config(data, **RUNS[name]), out_dir=out, progress=False, verbose=False,
                     rollout_engine=FixedRollouts(), reward_functions=[RewardFunction("graded", graded)])
    tr.setup()
    opt = tr.optimizer
    grads: list[list[torch.Tensor]] = []
    inner = opt.step

    def step(*a, **k):  # type: ignore[no-untyped-def]
        ps = [p for g in opt.param_groups for p in g["params"]]
        grads.append([(p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).detach().clone()
                      for p in ps])
        return inner(*a, **k)

    opt.step = step
    recs = tr.fit(stop_at_step=stop)
    sd = tr.model.state_dict()
    params = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone() for k, v in sd.items()}
    ep = tr.data.episode
    return {"grads": grads, "records": recs, "params": params, "queries": ep.queries, "order": ep.order,
            "rewards": ep.rewards.tolist(), "completions": ep.batch.completion_ids.tolist(),
            "world": tr.dist.world_size}


def _worker(data: str, out: str) -> None:  # pragma: no cover - runs under torchrun
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    results = {name: run_one(data, name) for name in RUNS}
    # stopped (and checkpointed) inside the second episode's second iteration
    results["stopped"] = run_one(data, "dapo", out=os.path.join(out, "stopped"), stop=7)
    # the default sampler: a whole replica per rank, each rank its own queries and seed
    tr, recs = train_grpo(config(data, loss_type="dapo", episodes=1), out_dir=os.path.join(out, "local"),
                          progress=False, verbose=False, reward_functions=[RewardFunction("graded", graded)])
    ep = tr.data.episode
    results["local_engine"] = {"records": recs, "completion_ids": ep.batch.completion_ids,
                               "mask": ep.batch.completion_mask, "sampler": ep.batch.sampler_logps,
                               "old": ep.old_logps,
                               "params": {k: v.full_tensor() for k, v in tr.model.state_dict().items()}}
    # an episode's queries must split over the ranks: 3 queries (1 per step of 4 samples) on 2 ranks
    try:
        GRPOTrainer(config(data, rows=4, queries_per_episode=3), progress=False, verbose=False, rollout_engine=FixedRollouts(),
                    reward_functions=[RewardFunction("graded", graded)]).setup()
        results["uneven"] = None
    except Exception as e:  # noqa: BLE001 - the test checks the type and message
        results["uneven"] = (type(e).__name__, str(e))
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("grpo_dist")
    data = prompts_file(tmp / "p.jsonl")
    script = tmp / "run_worker.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
                      "from tests.unit.test_grpo_dist import _worker; _worker(sys.argv[1], sys.argv[2])\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), data,
           str(tmp)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-4000:]
    return data, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)], tmp


SAME = ("loss", "completion_tokens", "samples", "minibatch_reward_variance", "reward", "frac_reward_zero_std",
        "clip_ratio/low_mean", "clip_ratio/high_mean", "ratio_mean", "kl", "grad_norm", "episode", "minibatch",
        "iteration")


@pytest.mark.parametrize("name", list(RUNS))
def test_two_ranks_equal_one_process(two, name):  # type: ignore[no-untyped-def]
    data, ranks, _ = two
    one = run_one(data, name)
    assert one["world"] == 1
    for r, res in enumerate(ranks):
        got = res[name]
        assert got["world"] == 2
        assert got["queries"] == one["queries"] and got["completions"] == one["completions"]
        assert len(got["grads"]) == len(one["grads"]) == len(one["records"]) >= 4
        for step, (ga, gb) in enumerate(zip(got["grads"], one["grads"]), 1):
            for i, (a, b) in enumerate(zip(ga, gb)):
                assert float(b.abs().max()) > 0 or i == 0  # the step really moves (the embedding may not)
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7,
                                           msg=lambda m, step=step, i=i, r=r: f"rank {r} step {step} grad {i}: {m}")
        for a, b in zip(got["records"], one["records"]):
            for key in SAME:
                if key in b:
                    assert key in a, key
                    if isinstance(b[key], float):
                        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (key, a["step"])
                    else:
                        assert a[key] == b[key], (key, a["step"])
        for k, v in one["params"].items():
            if k.endswith("k_proj.bias"):
                # its gradient is 0 in exact arithmetic (a shift of all of a query's scores leaves the
                # softmax unchanged): the computed one is rounding noise, which Adam scales up to ±lr
                continue
            torch.testing.assert_close(got["params"][k], v, rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_variance_order_spans_both_ranks(two):  # type: ignore[no-untyped-def]
    """The episode's queries are trained in descending variance over the whole episode (checked with
    Python's statistics): the first step takes the top two wherever they were sampled, here one
    from each rank's half (rank 0 sampled queries 0-1 of the episode, rank 1 queries 2-3)."""
    import statistics

    _, ranks, tmp = two
    for res in ranks:
        got = res["grpo"]
        g = 4
        var = [statistics.variance(got["rewards"][q * g:(q + 1) * g]) for q in range(len(got["queries"]))]
        want = sorted(range(len(var)), key=lambda q: -var[q])  # stable: ties keep the query order
        assert got["order"] == want, var
        assert {q // 2 for q in got["order"][:2]} == {0, 1}, var


def test_local_sampler_on_two_ranks(two):  # type: ignore[no-untyped-def]
    _, ranks, tmp = two
    a, b = ranks[0]["local_engine"], ranks[1]["local_engine"]
    # every rank holds the whole episode (gathered), the same on both
    for key in ("completion_ids", "mask", "sampler", "old"):
        assert torch.equal(a[key], b[key]), key
    # the two halves were sampled by different ranks with different seeds: they differ
    n = a["completion_ids"].shape[0] // 2
    assert not torch.equal(a["completion_ids"][:n], a["completion_ids"][n:])
    # old log-probs (computed in shares by the ranks, then summed) match the sampler's
    m = a["mask"].bool()
    assert float((a["old"] - a["sampler"]).abs()[m].max()) < 1e-4
    for ra, rb in zip(a["records"], b["records"]):
        assert ra["loss"] == rb["loss"] and ra["grad_norm"] == rb["grad_norm"]
        assert torch.isfinite(torch.tensor(ra["loss"]))
    # the policy written at the end (gathered, by rank 0) is the trained one
    from qwen25.model import Qwen2ForCausalLM

    final = Qwen2ForCausalLM.from_pretrained(tmp / "local" / "final", dtype=torch.float32).state_dict()
    for k, v in a["params"].items():
        assert torch.equal(final[k], v), k


def test_two_rank_checkpoint_resumes_in_one_process(two):  # type: ignore[no-untyped-def]
    """Stopped mid-episode on two ranks (a shard per rank, the episode file from rank 0), the run
    resumes in one process and ends where the uninterrupted one-process run ends."""
    data, _, tmp = two
    assert sorted(p.name for p in (tmp / "stopped" / "checkpoints" / "step-7").glob("*.distcp")) == \
        ["__0_0.distcp", "__1_0.distcp"]
    rest = run_one(data, "dapo", out=tmp / "stopped")
    one = run_one(data, "dapo")
    assert [r["step"] for r in rest["records"]] == [8]
    assert rest["records"][0]["loss"] == pytest.approx(one["records"][-1]["loss"], rel=1e-5, abs=1e-7)
    for k, v in one["params"].items():
        if not k.endswith("k_proj.bias"):  # see above
            torch.testing.assert_close(rest["params"][k], v, rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_queries_that_do_not_split_over_the_ranks_are_an_error(two):  # type: ignore[no-untyped-def]
    _, ranks, _ = two
    for res in ranks:
        assert res["uneven"] is not None
        kind, msg = res["uneven"]
        assert kind == "Qwen25ValueError" and "3 queries" in msg and "2 ranks" in msg, msg
