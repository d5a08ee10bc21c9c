"""Preference pairs: labels from the verifiers against hand-written expectations (a pure-Python
oracle: which response is right is known by construction), no-contrast prompts reported, code
scored in the sandbox, and seeded sampling from a model."""

from __future__ import annotations

import pytest

from qwen25.errors import Qwen25ValueError
from qwen25.rl.pairs import extract_code, make_pairs, sample_responses, score_responses

MATH = [{"id": "a", "prompt": "What is 2+3?", "answer": "5"},
        {"id": "b", "prompt": "What is 10/4?", "answer": "5/2"},
        {"id": "c", "prompt": "What is 1+1?", "answer": "2"}]
RESPONSES = [["So the answer is \\boxed{6}.", "2+3 = \\boxed{5}", "\\boxed{5}"],
             ["\\boxed{2.5}", "\\boxed{3}"],
             ["\\boxed{3}", "\\boxed{4}"]]  # c: both wrong, no contrast


def test_math_pairs_and_no_contrast_reported():
    scores = score_responses(MATH, RESPONSES, "math")
    assert scores == [[0.0, 1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    pairs, report = make_pairs(MATH, RESPONSES, scores, verifier="math")
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("2+3 = \\boxed{5}", "So the answer is \\boxed{6}."),
                                                             ("\\boxed{2.5}", "\\boxed{3}")]
    assert report == {"prompts": 3, "pairs": 2, "no_contrast": 1, "no_contrast_ids": ["c"]}
    prov = pairs[0]["provenance"]
    assert prov["prompt_id"] == "a" and prov["chosen_sample"] == 1 and prov["rejected_sample"] == 0
    assert prov["scores"] == [0.0, 1.0, 1.0] and prov["verifier"] == "math"


def test_code_scored_in_the_sandbox():
    recs = [{"id": "sq", "prompt": "Write sq(x).", "tests": "assert sq(3) == 9\nassert sq(-2) == 4"}]
    good = "Here:\n```python\ndef sq(x):\n    return x * x\n```"
    bad = "```python\ndef sq(x):\n    return 2 * x\n```"
    assert extract_code(good).strip() == "def sq(x):\n    return x * x"
    scores = score_responses(recs, [[bad, good]], "code")
    assert scores == [[0.0, 1.0]]
    pairs, _ = make_pairs(recs, [[bad, good]], scores)
    assert pairs[0]["chosen"] == good


def test_bad_inputs():
    with pytest.raises(Qwen25ValueError, match="unknown verifier"):
        score_responses(MATH, RESPONSES, "vibes")
    with pytest.raises(Qwen25ValueError, match="needs an 'answer'"):
        score_responses([{"prompt": "x"}], [["a", "b"]], "math")
    with pytest.raises(Qwen25ValueError, match="prompt 0"):
        make_pairs(MATH[:1], [["only one"]], [[1.0]])


def test_sampling_is_seeded_and_gives_k_responses():
    torch = pytest.importorskip("torch")
    from qwen25 import Tokenizer
    from qwen25.model import Qwen2ForCausalLM

    model = Qwen2ForCausalLM.from_config("debug", dtype=torch.float32, seed=0)
    tok = Tokenizer.qwen25()
    a = sample_responses(model, tok, MATH[:2], k=3, max_new_tokens=5, seed=1)
    b = sample_responses(model, tok, MATH[:2], k=3, max_new_tokens=5, seed=1)
    assert a == b and [len(x) for x in a] == [3, 3]
    assert len({r for rs in a for r in rs}) > 1  # sampled, not greedy
    with pytest.raises(Qwen25ValueError, match="k must be"):
        sample_responses(model, tok, MATH[:1], k=1)
