"""Reward components against hand labels (math answers, DAPO's length rule worked by hand), real
programs in the sandbox, and the reward model against transformers' Qwen2ForSequenceClassification
loading the same folder and scoring each completion alone (the independent reference)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.rl.rewards import (  # noqa: E402
    CompositeReward,
    RewardFunction,
    build_rewards,
    code_execution,
    format_reward,
    length_penalty,
    math_correctness,
    per_sample,
)
from qwen25.rl.rollouts import Completion  # noqa: E402


def comp(n_tokens: int = 3, prompt=(1, 2), tokens=None) -> Completion:  # type: ignore[no-untyped-def]
    toks = tuple(tokens) if tokens is not None else tuple(range(5, 5 + n_tokens))
    return Completion(0, 0, tuple(prompt), toks, tuple(-1.0 for _ in toks), "stop")


MATH = [  # (record, completion text, hand label)
    ({"answer": "7"}, "3 + 4 is \\boxed{7}.", 1.0),
    ({"answer": "7"}, "She has 3 + 4 = 7 apples.\n#### 7", 1.0),
    ({"answer": "7"}, "\\boxed{8}", 0.0),
    ({"answer": "7"}, "the answer is 7", 0.0),  # no boxed answer and no ####: nothing to compare
    ({"answer": "\\frac{1}{2}"}, "so it is \\boxed{0.5}", 1.0),
    ({"answer": "1000"}, "#### 1,000", 1.0),
    ({"id": "code-1", "tests": "assert True"}, "\\boxed{7}", None),  # not a math prompt
]


def test_math_correctness_hand_labels():
    for record, text, label in MATH:
        assert math_correctness(record, text) == label, (record, text)


def test_code_execution_runs_programs_in_the_sandbox():
    fn = code_execution(timeout=3.0, workers=2)
    records = [{"tests": "assert add(2, 3) == 5"}] * 3 + [{"answer": "5"}]
    texts = ["Here:\n```python\ndef add(a, b):\n    return a + b\n```\n",
             "```python\ndef add(a, b):\n    return a - b\n```",
             "```python\ndef add(a, b):\n    while True:\n        pass\n```",
             "\\boxed{5}"]
    assert fn(records, texts, [comp()] * 4) == [1.0, 0.0, 0.0, None]


def test_format_and_length_rules():
    fmt = format_reward()
    assert fmt([{}, {}], ["x \\boxed{3}", "x 3"], [comp(), comp()]) == [1.0, 0.0]
    rule = length_penalty(10, 4)  # free up to 6 tokens, -1 from 10 on
    lens = [1, 6, 7, 8, 10, 11]
    want = [0.0, 0.0, -0.25, -0.5, -1.0, -1.0]  # (6 - L) / 4 between 6 and 10
    got = rule([{}] * 6, [""] * 6, [comp(n) for n in lens])
    assert got == pytest.approx(want)
    with pytest.raises(Qwen25ValueError, match="cache"):
        length_penalty(10, 11)
    with pytest.raises(Qwen25ValueError, match="bad pattern"):
        format_reward("(")


def test_composite_weights_not_applicable_and_metrics():
    def half(records, texts, completions):  # type: ignore[no-untyped-def]
        return [0.5 if r.get("answer") is None else None for r in records]

    reward = CompositeReward([RewardFunction("math", per_sample(math_correctness), 2.0),
                              RewardFunction("other", half, -1.0)])
    records = [{"answer": "7"}, {"answer": "7"}, {"id": 3}]
    texts = ["\\boxed{7}", "\\boxed{6}", "hello"]
    total, parts = reward(records, texts, [comp()] * 3)
    assert total.tolist() == [2.0, 0.0, -0.5]
    assert parts["math"][:2].tolist() == [1.0, 0.0] and math.isnan(float(parts["math"][2]))
    assert math.isnan(float(parts["other"][0])) and float(parts["other"][2]) == 0.5
    m = CompositeReward.metrics(total, parts)
    assert m["reward"] == pytest.approx(0.5) and m["unscored"] == 0.0
    assert m["rewards/math/mean"] == 0.5 and m["rewards/math/applied"] == pytest.approx(2 / 3)
    assert m["rewards/other/mean"] == 0.5 and m["rewards/other/applied"] == pytest.approx(1 / 3)
    # a completion no component applies to has no reward, and is counted
    only_math = CompositeReward([RewardFunction("math", per_sample(math_correctness))])
    total, parts = only_math([{"id": 1}, {"answer": "1"}], ["x", "\\boxed{1}"], [comp(), comp()])
    assert math.isnan(float(total[0])) and float(total[1]) == 1.0
    assert CompositeReward.metrics(total, parts)["unscored"] == 1.0


def test_composite_bad_values_name_the_reward_and_the_prompt():
    def wrong_count(records, texts, completions):  # type: ignore[no-untyped-def]
        return [1.0]

    def not_number(records, texts, completions):  # type: ignore[no-untyped-def]
        return ["high"] * len(texts)

    def infinite(records, texts, completions):  # type: ignore[no-untyped-def]
        return [0.0, math.inf]

    recs = [{"_where": "p.jsonl:1"}, {"_where": "p.jsonl:2"}]
    with pytest.raises(Qwen25ValueError, match="'short' returned 1 values for 2"):
        CompositeReward([RewardFunction("short", wrong_count)])(recs, ["a", "b"], [comp(), comp()])
    with pytest.raises(Qwen25ValueError, match="'words' gave 'high' for completion 0 \\(prompt p.jsonl:1\\)"):
        CompositeReward([RewardFunction("words", not_number)])(recs, ["a", "b"], [comp(), comp()])
    with pytest.raises(Qwen25ValueError, match="completion 1 \\(prompt p.jsonl:2\\).*finite"):
        CompositeReward([RewardFunction("inf", infinite)])(recs, ["a", "b"], [comp(), comp()])
    with pytest.raises(Qwen25ValueError, match="repeat"):
        CompositeReward([RewardFunction("a", wrong_count), RewardFunction("a", infinite)])
    with pytest.raises(Qwen25ValueError, match="weight"):
        RewardFunction("a", wrong_count, float("nan"))


def test_build_rewards_from_config():
    r = build_rewards({"math": 1.0, "format": {"weight": 0.1, "pattern": "####"}, "length": {"cache": 2}},
                      max_completion_length=4)
    assert r.names == ["math", "format", "length"]
    total, parts = r([{"answer": "3"}], ["#### 3"], [comp(2)])  # 2 tokens: within max 4 - cache 2
    assert parts["length"].tolist() == [0.0] and float(total[0]) == pytest.approx(1.1)
    with pytest.raises(Qwen25ValueError, match="unknown reward 'truth'"):
        build_rewards({"truth": 1.0})
    with pytest.raises(Qwen25ValueError, match=r"rewards.format: unknown options \['regex'\]"):
        build_rewards({"format": {"regex": "x"}})
    with pytest.raises(Qwen25ValueError, match="rewards.length: needs cache"):
        build_rewards({"length": 1.0}, max_completion_length=8)
    with pytest.raises(Qwen25ValueError, match="reward_model: needs path"):
        build_rewards({"reward_model": 1.0})


def test_reward_model_component_equals_transformers_sequence_classifier(tmp_path):
    transformers = pytest.importorskip("transformers")
    from qwen25.model import Qwen2ForCausalLM, Qwen25Config
    from qwen25.rl import RewardModel

    cfg = Qwen25Config.from_preset("debug", vocab_size=64, hidden_size=16, intermediate_size=32)
    rm = RewardModel.from_causal_lm(Qwen2ForCausalLM.from_config(cfg, seed=1), seed=2)
    with torch.no_grad():
        rm.score.weight.normal_(0, 1.0)
    rm.save_pretrained(tmp_path / "rm")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").float().eval()
    g = torch.Generator().manual_seed(0)
    comps = [comp(prompt=torch.randint(0, 60, (int(p),), generator=g).tolist(),
                  tokens=torch.randint(0, 60, (int(n),), generator=g).tolist())
             for p, n in [(3, 5), (6, 1), (2, 8), (4, 4), (5, 2)]]
    reward = build_rewards({"reward_model": {"path": str(tmp_path / "rm"), "batch_size": 2}}, pad_token_id=63)
    total, parts = reward([{}] * 5, [""] * 5, comps)
    with torch.no_grad():
        want = [float(hf(input_ids=torch.tensor([list(c.prompt_ids) + list(c.token_ids)])).logits[0, 0])
                for c in comps]
    assert parts["reward_model"].tolist() == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert len(set(round(x, 4) for x in want)) == 5  # distinct scores: the right position is read
