"""Rejection sampling (qwen25.train.rejection) and back-translation (qwen25.train.backtranslate).

The keep/drop decisions are checked against hand-labelled candidates (math answers judged by
hand; code that is right, wrong or hostile by construction); the generation path runs the real
KV-cache ``generate`` of a tiny random model, and the scoring path the real ``LMScorer``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import qwen25  # noqa: E402
from qwen25.data.classify import CallableScorer, LMScorer  # noqa: E402
from qwen25.errors import FormatError, Qwen25ValueError  # noqa: E402
from qwen25.train.backtranslate import PAIR_DIMENSIONS, backtranslate  # noqa: E402
from qwen25.train.rejection import (extract_code, generate_candidates, read_tasks, rejection_sample,  # noqa: E402
                                    verify_response)

@pytest.fixture(autouse=True, scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """One torch thread: on a shared 2-core machine two spinning OpenMP threads are far slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


MATH = {"id": "gsm-1", "messages": [{"role": "user", "content": "What is 3/4 of 8? Put the answer in \\boxed{}."}],
        "answer": "6"}
CODE = {"id": "he-1", "messages": [{"role": "user", "content": "Write add(a, b)."}],
        "tests": "def check(f):\n    assert f(2, 3) == 5\n    assert f(-1, 1) == 0\n", "entry_point": "add"}

# (task, response, passes?) -- labelled by hand
LABELLED: list[tuple[dict[str, Any], str, bool]] = [
    (MATH, "3/4 of 8 is 8 * 3 / 4 = 6, so \\boxed{6}.", True),
    (MATH, "It is \\boxed{6.0}", True),
    (MATH, "It is \\boxed{\\frac{12}{2}}", True),
    (MATH, "Half of 8 is 4.\n#### 4", False),
    (MATH, "The answer is 6.", False),  # no \boxed{} nor ####: not checkable
    (CODE, "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.", True),
    (CODE, "def add(a, b):\n    return a + b\n", True),
    (CODE, "```python\ndef add(a, b):\n    return a - b\n```", False),
    (CODE, "```python\ndef add(a, b):\n    while True:\n        pass\n```", False),
    (CODE, "```python\nimport sys\ndef add(a, b):\n    return a + b\nsys.exit(0)\n```", False),
    (CODE, "```python\nimport os\nos.kill(os.getppid(), 9)\ndef add(a, b):\n    return a + b\n```", False),
]


@pytest.mark.parametrize("k", range(len(LABELLED)))
def test_verifiers_agree_with_hand_labels(k: int) -> None:
    task, response, expected = LABELLED[k]
    v = verify_response(task, response, timeout=2.0)
    assert v.passed is expected, v


def test_extract_code() -> None:
    assert extract_code("a\n```python\nx = 1\n```\nb\n```py\ny = 2\n```") == "y = 2\n"
    assert extract_code("no fence") == "no fence"


def test_rejection_sample_keeps_exactly_the_passing_candidates() -> None:
    math_resps = [r for t, r, _ in LABELLED if t is MATH]
    code_resps = [r for t, r, _ in LABELLED if t is CODE][:5]
    unsolvable = {"id": "none", "messages": [{"role": "user", "content": "?"}], "answer": "7"}
    k = 5
    recorded = {0: math_resps, 1: code_resps, 2: ["\\boxed{8}"] * k}

    def candidates(prompts: list[Any]) -> list[list[str]]:
        assert prompts == [MATH["messages"], CODE["messages"], unsolvable["messages"]]
        return [recorded[i] for i in range(3)]

    kept, report = rejection_sample(None, None, [MATH, CODE, unsolvable], k=k, candidates=candidates,
                                    timeout=2.0, model_name="tiny")
    expected = [(t["id"], r) for t, r, ok in LABELLED if ok and (t is MATH or r in code_resps)]
    assert [(x["provenance"]["source"], x["messages"][-1]["content"]) for x in kept] == expected
    for x in kept:
        assert x["messages"][:-1] == (MATH if x["provenance"]["source"] == "gsm-1" else CODE)["messages"]
        assert x["messages"][-1]["role"] == "assistant"
        p = x["provenance"]
        assert p["model"] == "tiny" and p["k"] == k and p["verifier"] in ("math", "code")
        assert recorded[0 if p["verifier"] == "math" else 1][p["sample"]] == x["messages"][-1]["content"]
    assert report["prompts"] == 3 and report["candidates"] == 15 and report["kept"] == len(expected)
    assert report["unsolved"] == ["none"]
    assert report["by_verifier"]["math"]["candidates"] == 10 and report["by_verifier"]["code"]["passed"] == 2
    first, _ = rejection_sample(None, None, [MATH, CODE, unsolvable], k=k, candidates=candidates, keep="first",
                                timeout=2.0)
    assert [x["provenance"]["sample"] for x in first] == [0, 0]


def test_bad_tasks_are_named(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(MATH) + "\n" + json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(FormatError, match="tasks.jsonl:2: .*exactly one of 'answer'"):
        read_tasks(path)
    path.write_text(json.dumps(MATH) + "\n")
    assert read_tasks(path) == [(f"{path}:1", MATH)]
    with pytest.raises(Qwen25ValueError, match="keep"):
        rejection_sample(None, None, [MATH], keep="best", candidates=lambda p: [["x"]])


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    from qwen25.model import Qwen2ForCausalLM, Qwen25Config

    cfg = Qwen25Config.from_preset("debug").replace(torch_dtype="float32")
    return Qwen2ForCausalLM.from_config(cfg, dtype=torch.float32, seed=0).eval(), qwen25.Tokenizer.qwen25()


def test_generation_path_with_the_real_model(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    prompts = [MATH["messages"], CODE["messages"]]
    a = generate_candidates(model, tok, prompts, k=3, max_new_tokens=6, seed=1, batch_size=4)
    b = generate_candidates(model, tok, prompts, k=3, max_new_tokens=6, seed=1, batch_size=4)
    c = generate_candidates(model, tok, prompts, k=3, max_new_tokens=6, seed=2, batch_size=4)
    assert a == b != c  # reproducible under a seed
    assert [len(x) for x in a] == [3, 3] and len(set(a[0] + a[1])) > 1  # sampled: the candidates differ
    assert all("<|im_end|>" not in text and "<|im_start|>" not in text for row in a for text in row)
    # a random model solves nothing: every candidate is checked and rejected, nothing is lost
    kept, report = rejection_sample(model, tok, [MATH, CODE], k=3, max_new_tokens=6, seed=1, timeout=2.0)
    assert kept == [] and report["candidates"] == 6 and report["unsolved"] == ["gsm-1", "he-1"]


# ----------------------------------------------------------------------------- back-translation
DOCS = [
    {"id": "short", "text": "Too short."},
    {"id": "ok-1", "text": "Photosynthesis turns light into chemical energy. " * 20},
    {"id": "ok-2", "text": "Rivers carve valleys over millions of years. " * 20},
    {"id": "long", "text": "word " * 2000},
    {"id": "empty-q", "text": "Gravity pulls masses toward each other. " * 20},
    {"id": "copy-q", "text": "Volcanoes form where magma reaches the surface of the earth. " * 20},
    {"id": "low", "text": "Bread rises because yeast makes carbon dioxide gas. " * 20},
]
QUERIES = {"ok-1": "Explain photosynthesis.\n\nExtra paragraph ignored.", "ok-2": "How are river valleys formed?",
           "empty-q": "   ", "copy-q": "Volcanoes form where magma reaches the surface of the earth.",
           "low": "Why does bread rise?"}


def test_backtranslation_constraints_scores_and_report(tok: qwen25.Tokenizer) -> None:
    def queries(texts: list[str]) -> list[str]:
        by_text = {d["text"]: d["id"] for d in DOCS}
        return [QUERIES[by_text[t]] for t in texts]

    def rate(texts: list[str]) -> list[float]:  # a judge that dislikes the bread pair
        return [1.0 if "bread" in t.lower() else 4.5 for t in texts]

    scorer = CallableScorer(rate, ["pair_quality"])
    pairs, report = backtranslate(DOCS, tokenizer=tok, queries=queries, scorer=scorer, min_score=3.0,
                                  min_response_tokens=50, max_response_tokens=1000, max_query_tokens=32)
    assert [p["provenance"]["source"] for p in pairs] == ["ok-1", "ok-2"]
    assert pairs[0]["messages"] == [{"role": "user", "content": "Explain photosynthesis."},
                                    {"role": "assistant", "content": DOCS[1]["text"]}]
    p = pairs[1]["provenance"]
    assert p["score"] == 4.5 and p["response_tokens"] == len(tok.encode(DOCS[2]["text"]))
    assert p["query_tokens"] == len(tok.encode("How are river valleys formed?"))
    assert report["documents"] == 7 and report["kept"] + report["dropped"] == 7
    assert {d["source"]: d["reason"] for d in report["dropped_documents"]} == {
        "short": "response too short", "long": "response too long", "empty-q": "empty query",
        "copy-q": "query copies the document", "low": "low score"}
    _, rep2 = backtranslate(DOCS[1:3], tokenizer=tok, queries=lambda ts: ["word " * 40] * len(ts),
                            min_response_tokens=50, max_query_tokens=32)
    assert rep2["dropped_by_reason"] == {"query too long": 2}


@pytest.fixture(scope="module")
def tok() -> qwen25.Tokenizer:
    return qwen25.Tokenizer.qwen25()


def test_backtranslation_with_a_real_model_and_lm_scorer(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    scorer = LMScorer(model, tok, dimensions=PAIR_DIMENSIONS, max_doc_tokens=64, batch_size=2)
    pairs, report = backtranslate(DOCS[1:3], tokenizer=tok, model=model, scorer=scorer, min_score=0.0,
                                  min_response_tokens=10, max_query_tokens=8, model_name="debug")
    assert report["kept"] + report["dropped"] == 2
    for p in pairs:  # the random model's query went through the chat model and the judge rated the pair
        assert 0.0 <= p["provenance"]["score"] <= 5.0 and p["provenance"]["dimensions"] == ["pair_quality"]
        assert p["messages"][1]["content"] in (DOCS[1]["text"], DOCS[2]["text"])
    assert set(report["dropped_by_reason"]) <= {"empty query", "query too long"}
