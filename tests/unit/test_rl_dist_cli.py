"""``qwen25 dpo``, ``qwen25 rm`` and ``qwen25 grpo`` on two gloo ranks (``torchrun``, FSDP2 on the CPU).

One launch runs the three commands (through ``qwen25.cli.main``, each rank's stdout captured):
only rank 0 prints the JSON summary, and each run's ``OUT/final`` (gathered, written by rank 0) is
a folder that transformers loads. The DPO and reward-model trainers are deterministic given the
seed and split each step's pairs over the ranks, so the two-rank ``final/`` must hold the weights
of a one-process run on the same data (compared as transformers loads them). GRPO's local
sampler draws each rank's share with its own seed, so its two-rank run is not the one-process run:
tests/unit/test_grpo_dist.py checks its weights on fixed rollouts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from tests.unit.test_rl_dpo import toy_pairs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LR = 1e-3  # the debug recipes' (DPO and reward model)
# the debug recipes on a tiny model: 24 pairs = 3 steps of 8 pairs, micro-batches of 2 (2 per rank on two ranks)
TINY = ["--set", "model.vocab_size=32", "--set", "model.hidden_size=32", "--set", "model.intermediate_size=64",
        "--set", "stages.0.seq_len=16", "--set", "global_batch_tokens=128", "--set", "micro_batch_size=2",
        "--no-progress"]
GRPO = ["--set", "method.num_generations=4", "--set", "method.queries_per_episode=4", "--set", "method.episodes=1",
        "--set", "method.max_prompt_length=8", "--set", "method.max_completion_length=6",
        "--set", 'method.rewards={"length": {"cache": 2}}', "--set", "method.log_completions=false",
        "--set", "method.stop_token_ids=[2]"]


def argv(cmd: str, tmp: Path, out: Path) -> list[str]:
    if cmd == "grpo":
        return ["grpo", "--recipe", "debug", "--prompts", str(tmp / "prompts.jsonl"), *TINY, *GRPO, "--out", str(out)]
    return [cmd, "--recipe", "debug", "--data", str(tmp / "pairs.jsonl"), *TINY, "--out", str(out)]


def run_cli(args: list[str]) -> str:
    """``qwen25 ARGS`` in this process; its stdout."""
    from qwen25 import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(args) == 0
    return buf.getvalue()


def _worker(tmp: str) -> None:  # pragma: no cover - runs under torchrun
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    for cmd in ("dpo", "rm", "grpo"):
        out = run_cli(argv(cmd, Path(tmp), Path(tmp) / "two" / cmd))
        Path(tmp, f"{cmd}-stdout-rank{rank}.txt").write_text(out, encoding="utf-8")
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("rl_dist_cli")
    toy_pairs(tmp / "pairs.jsonl", 24, seed=5)
    with open(tmp / "prompts.jsonl", "w", encoding="utf-8") as f:
        for i in range(8):
            f.write(json.dumps({"prompt_ids": [3 + i % 5, 4 + i % 7, 5]}) + "\n")
    script = tmp / "run_worker.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
                      "from tests.unit.test_rl_dist_cli import _worker; _worker(sys.argv[1])\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), str(tmp)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-4000:]
    return tmp


def one_summary(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


@pytest.mark.parametrize("cmd", ["dpo", "rm", "grpo"])
def test_only_rank_0_prints_the_summary(two, cmd):  # type: ignore[no-untyped-def]
    s = one_summary((two / f"{cmd}-stdout-rank0.txt").read_text(encoding="utf-8"))
    assert s["steps_run"] == s["step"] == (2 if cmd == "grpo" else 3) and s["out"] == str(two / "two" / cmd)
    assert (two / f"{cmd}-stdout-rank1.txt").read_text(encoding="utf-8") == ""


def hf_weights(path: Path, auto) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    model, info = auto.from_pretrained(path, dtype=torch.float32, output_loading_info=True)
    assert not any(info.values()), info  # nothing missing, unexpected or mismatched
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_grpo_two_rank_final_loads_in_transformers(two):  # type: ignore[no-untyped-def]
    """The policy written at the end of the two-rank GRPO run (gathered, by rank 0) is a whole
    model: transformers loads every weight and gives our model's logits from the same folder."""
    from qwen25.model import Qwen2ForCausalLM

    path = two / "two" / "grpo" / "final"
    hf_weights(path, transformers.AutoModelForCausalLM)
    hf = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ours = Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = torch.tensor([[3, 4, 5, 9, 2, 7]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(ids).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cmd", ["dpo", "rm"])
def test_two_rank_final_equals_one_process(two, tmp_path, cmd):  # type: ignore[no-untyped-def]
    """``final/`` of the two-rank run loads in transformers and holds the one-process run's weights,
    which training moved away from the start."""
    auto = transformers.AutoModelForCausalLM if cmd == "dpo" else transformers.AutoModelForSequenceClassification
    one_summary(run_cli(argv(cmd, two, tmp_path / "one")))
    got = hf_weights(two / "two" / cmd / "final", auto)
    want = hf_weights(tmp_path / "one" / "final", auto)
    assert sorted(got) == sorted(want)
    start = initial_weights(cmd, two)
    moved = 0
    for k, v in want.items():
        if k.endswith("k_proj.bias"):
            # its gradient is 0 in exact arithmetic (a shift of all of a query's scores leaves the
            # softmax unchanged): the computed one is rounding noise, which Adam scales up to about
            # ±lr per step, differently for another reduction order (3 steps)
            torch.testing.assert_close(got[k], v, rtol=0, atol=3.5 * LR, msg=lambda m, k=k: f"{k}: {m}")
            continue
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
        moved += int(not torch.allclose(v, start[k], rtol=0, atol=1e-5))
    assert moved >= len(want) // 2, (moved, len(want))


def initial_weights(cmd: str, tmp: Path) -> dict[str, torch.Tensor]:
    """The run's starting weights in transformers' names (the trainer's seeded initialisation)."""
    from qwen25.train import apply_overrides

    if cmd == "dpo":
        from qwen25.rl import dpo as mod
        trainer_cls = mod.DPOTrainer
    else:
        from qwen25.rl import reward as mod
        trainer_cls = mod.RewardTrainer
    sets = [a for a in TINY if a.startswith(("model.", "stages.", "global_", "micro_"))]
    cfg = mod.prepare_config(apply_overrides(mod.recipe("debug"), sets), str(tmp / "pairs.jsonl"))
    tr = trainer_cls(cfg, out_dir=None, verbose=False, progress=False)
    tr.setup()
    try:
        sd = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
    finally:
        tr.close()
    names = {"lm_head.weight": "score.weight"} if cmd == "rm" else {}
    return {names.get(k, k): v for k, v in sd.items()}
