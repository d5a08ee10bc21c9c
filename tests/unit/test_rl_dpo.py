"""DPO and the reward model on the training loop: the worked value, the known traps (policy =
reference gives exactly ln 2 and zero rewards; the cached reference log-probs are really used; one
<|im_end|>; no BOS), learning on a toy task, resume, bad inputs and the CLI.

Oracles: the closed form of the loss (math), transformers' chat template and HF ``tokenizers``
for the token ids, and the test's own toy task for learning."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from qwen25.errors import FormatError, Qwen25ValueError  # noqa: E402
from qwen25.rl import dpo_loss  # noqa: E402
from qwen25.rl.dpo import DPOTrainer, prepare_config, train_dpo  # noqa: E402
from qwen25.rl.prefdata import read_pairs, tokenize_pair  # noqa: E402
from qwen25.train import Stage, TrainConfig  # noqa: E402

V = 32


def toy_pairs(path, n: int, seed: int) -> str:  # type: ignore[no-untyped-def]
    """Prompt: 3-6 random tokens from 4..31. Chosen: the prompt's first token three times;
    rejected: three other random tokens. A model can learn to prefer the copy."""
    g = torch.Generator().manual_seed(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            k = int(torch.randint(3, 7, (1,), generator=g))
            prompt = torch.randint(4, V, (k,), generator=g).tolist()
            rej = [int(x) for x in torch.randint(4, V, (3,), generator=g) if int(x) != prompt[0]] or [1]
            f.write(json.dumps({"prompt_ids": prompt, "chosen_ids": [prompt[0]] * 3, "rejected_ids": rej}) + "\n")
    return str(path)


def tiny_config(data: str, *, steps: int = 1, lr: float = 1e-2, method=None, **over) -> TrainConfig:  # type: ignore[no-untyped-def]
    kw = dict(name="t", model="debug", model_overrides={"vocab_size": V, "hidden_size": 32, "intermediate_size": 64},
              stages=(Stage(name="dpo", data=(data,), seq_len=16, steps=steps),), global_batch_tokens=8 * 16,
              micro_batch_size=4, lr=lr, schedule="constant", weight_decay=0.0, device="cpu", precision="fp32",
              method=method if method is not None else {"beta": 0.1, "optimizer": "adamw"})
    kw.update(over)
    return TrainConfig(**kw)


def test_worked_value():
    losses, c, r = dpo_loss(torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]),
                            torch.tensor([-11.5]), beta=0.1)
    assert math.isclose(float(losses[0]), 0.620957, abs_tol=5e-7)
    assert math.isclose(float(losses[0]), math.log1p(math.exp(-0.1 * 1.5)), rel_tol=1e-6)
    assert math.isclose(float(c[0]), 0.1, rel_tol=1e-6) and math.isclose(float(r[0]), -0.05, rel_tol=1e-6)
    ipo, _, _ = dpo_loss(torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.5]),
                         beta=0.1, loss_type="ipo")
    assert math.isclose(float(ipo[0]), (1.5 - 5.0) ** 2, rel_tol=1e-6)
    with pytest.raises(Qwen25ValueError, match="loss_type"):
        dpo_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), loss_type="hinge")


def test_policy_equal_to_reference_gives_exactly_ln2_and_zero_rewards(tmp_path):  # type: ignore[no-untyped-def]
    data = toy_pairs(tmp_path / "p.jsonl", 16, 0)
    for optimizer in ("adamw", "omo-dare"):
        trainer = DPOTrainer(tiny_config(data, steps=1, method={"optimizer": optimizer}), out_dir=None, verbose=False)
        (rec,) = trainer.fit()
        assert rec["loss"] == float(torch.tensor(math.log(2.0), dtype=torch.float32))
        assert rec["rewards_chosen"] == 0.0 and rec["rewards_rejected"] == 0.0 and rec["rewards_accuracy"] == 0.0


def test_cached_reference_logps_are_really_used(tmp_path):  # type: ignore[no-untyped-def]
    data = toy_pairs(tmp_path / "p.jsonl", 8, 1)
    cache = tmp_path / "cache"
    method = {"optimizer": "adamw", "ref_cache": str(cache)}
    first = DPOTrainer(tiny_config(data, method=method), out_dir=None, verbose=False)
    first.setup()
    assert first.ref_source.startswith("computed")
    (f,) = list(cache.iterdir())
    blob = torch.load(f, weights_only=True)
    blob["chosen"] = blob["chosen"] + 1.0  # the reference now "likes" every chosen answer more
    torch.save(blob, f)
    second = DPOTrainer(tiny_config(data, method=method), out_dir=None, verbose=False)
    (rec,) = second.fit()
    assert second.ref_source.startswith("reused")
    # the policy equals the true reference, so h = -1 for every pair: loss = -log sigmoid(-0.1)
    assert math.isclose(rec["loss"], math.log1p(math.exp(0.1)), rel_tol=1e-6)
    assert math.isclose(rec["rewards_chosen"], -0.1, rel_tol=1e-5)


def test_learns_the_toy_preference(tmp_path):  # type: ignore[no-untyped-def]
    train = toy_pairs(tmp_path / "train.jsonl", 64, 2)
    held = toy_pairs(tmp_path / "held.jsonl", 32, 3)
    cfg = tiny_config(train, lr=3e-3, method={"optimizer": "omo-dare", "reserve_p": 0.9, "alpha": 0.0, "epochs": 4,
                                              "eval_data": held})
    trainer, records = train_dpo(cfg, data=train, out_dir=None, verbose=False)
    assert len(records) == 32  # 4 epochs of 64 pairs, 8 per step
    ev = trainer.evaluate(held)
    assert ev["eval_rewards_accuracy"] >= 0.85, ev
    assert ev["eval_loss"] < 0.6
    assert records[-1]["eval_rewards_accuracy"] == ev["eval_rewards_accuracy"]


def test_resume_continues_exactly(tmp_path):  # type: ignore[no-untyped-def]
    data = toy_pairs(tmp_path / "p.jsonl", 24, 4)
    cfg = tiny_config(data, steps=4, method={"optimizer": "omo-dare", "reserve_p": 0.7, "alpha": 0.0, "merge_every": 2})
    whole = DPOTrainer(cfg, out_dir=tmp_path / "a", verbose=False).fit()
    DPOTrainer(cfg, out_dir=tmp_path / "b", verbose=False).fit(stop_at_step=2)
    rest = DPOTrainer(cfg, out_dir=tmp_path / "b", verbose=False)
    tail = rest.fit()
    assert rest.ref_source.startswith("reused")
    assert [r["loss"] for r in tail] == [r["loss"] for r in whole[2:]]


def test_text_pairs_one_im_end_no_bos(qwen25_data_dir):  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    from qwen25 import Tokenizer
    from tests.conftest import build_hf_qwen25

    cfg = json.loads((qwen25_data_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=build_hf_qwen25(), eos_token="<|im_end|>",
                                              chat_template=cfg["chat_template"])
    tok = Tokenizer.qwen25()
    rec = {"prompt": "What is 2 plus 3?", "chosen": "2 plus 3 is 5.<|im_end|>", "rejected": "It is 6."}
    p, c, r = tokenize_pair(rec, tok)
    end = hf.convert_tokens_to_ids("<|im_end|>")
    want_p = hf.apply_chat_template([{"role": "user", "content": "What is 2 plus 3?"}], add_generation_prompt=True,
                                    tokenize=True)
    want_p = want_p["input_ids"] if isinstance(want_p, dict) or hasattr(want_p, "keys") else want_p
    assert list(p) == list(want_p)
    assert list(c) == hf.encode("2 plus 3 is 5.", add_special_tokens=False) + [end]
    assert list(r) == hf.encode("It is 6.", add_special_tokens=False) + [end]
    assert c.count(end) == 1
    assert p[0] == hf.convert_tokens_to_ids("<|im_start|>")  # no BOS before the template
    assert 151643 not in p  # <|endoftext|> is never prepended
    conv = {"prompt": [{"role": "user", "content": "What is 2 plus 3?"}],
            "chosen": [{"role": "assistant", "content": "2 plus 3 is 5."}], "rejected": "It is 6."}
    assert tokenize_pair(conv, tok) == (p, c, r)


def test_bad_pairs_name_file_and_line(tmp_path):  # type: ignore[no-untyped-def]
    good = json.dumps({"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_ids": [4]})
    cases = [
        ("{not json", "malformed JSON"),
        (json.dumps({"prompt_ids": [1], "chosen_ids": [3]}), "missing"),
        (json.dumps({"prompt_ids": [1], "chosen_ids": [], "rejected_ids": [4]}), "empty completion"),
        (json.dumps({"prompt_ids": [1], "chosen_ids": [99], "rejected_ids": [4]}), "outside the model's vocabulary"),
        (json.dumps({"prompt_ids": list(range(20)), "chosen_ids": [3], "rejected_ids": [4]}), "no room"),
        (json.dumps({"prompt": 3, "chosen": "a", "rejected": "b"}), "'prompt' must be"),
    ]
    for bad, msg in cases:
        path = tmp_path / "bad.jsonl"
        path.write_text(good + "\n\n" + bad + "\n", encoding="utf-8")
        with pytest.raises(FormatError, match=msg) as e:
            read_pairs(path, max_length=16, vocab_size=V)
        assert f"{path}:3" in str(e.value) and e.value.line == 3
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"prompt_ids": [1] * 10, "chosen_ids": [3] * 10, "rejected_ids": [4]}) + "\n")
    ps = read_pairs(path, max_length=16, vocab_size=V)
    assert ps.truncated == 1 and len(ps.pairs[0].chosen) == 6
    with pytest.raises(Qwen25ValueError, match="unknown DPO settings"):
        prepare_config(tiny_config(str(path), method={"betta": 0.2}))


def test_reward_model_trains_and_reports_accuracy(tmp_path):  # type: ignore[no-untyped-def]
    from qwen25.rl.reward import RewardModel, train_reward_model

    train = toy_pairs(tmp_path / "train.jsonl", 64, 5)
    held = toy_pairs(tmp_path / "held.jsonl", 32, 6)
    cfg = tiny_config(train, lr=1e-2, method={"epochs": 6, "eval_data": held, "center_rewards_coefficient": 0.01})
    trainer, records = train_reward_model(cfg, data=train, out_dir=str(tmp_path / "rm"), verbose=False)
    assert records[-1]["eval_accuracy"] >= 0.75, records[-1]  # chance is 0.5
    rm = RewardModel.from_pretrained(tmp_path / "rm" / "final")
    ids = torch.tensor([[5, 6, 7, 5, 5, 5]])
    with torch.no_grad():
        assert torch.equal(rm(ids, torch.ones_like(ids)), trainer.model.eval()(ids, torch.ones_like(ids)))


def test_cli_dpo_and_rm(tmp_path, capsys):  # type: ignore[no-untyped-def]
    from qwen25.cli import main

    data = toy_pairs(tmp_path / "p.jsonl", 8, 7)
    common = ["--data", data, "--set", "model.vocab_size=32", "--set", "stages.0.seq_len=16",
              "--set", "global_batch_tokens=64", "--no-progress"]
    assert main(["dpo", "--recipe", "debug", *common, "--out", str(tmp_path / "d")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps_run"] == 2 and out["reference"].startswith("computed")
    first = json.loads((tmp_path / "d" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert (tmp_path / "d" / "final" / "config.json").is_file()
    assert main(["rm", "--recipe", "debug", *common, "--out", str(tmp_path / "r")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps_run"] == 2
    arch = json.loads((tmp_path / "r" / "final" / "config.json").read_text())["architectures"]
    assert arch == ["Qwen2ForSequenceClassification"]
    assert main(["dpo", "--recipe", "nope", "--data", data, "--out", str(tmp_path / "x")]) == 1
    assert "unknown DPO recipe 'nope'" in capsys.readouterr().err
