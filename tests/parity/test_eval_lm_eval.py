"""qwen25.eval.multiple_choice against lm-evaluation-harness's ``hf`` backend: the same tiny
checkpoint (written by our save_pretrained, with the Qwen2.5 vocabulary files the repository ships,
so lm-eval loads transformers' own Qwen2 model and tokenizer), the same items given to lm-eval as a
local custom task; per-item log-likelihoods, acc and acc_norm must agree."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

from qwen25.eval import multiple_choice  # noqa: E402
from qwen25.model import Qwen2ForCausalLM, Qwen25Config  # noqa: E402
from qwen25.tokenizer import Tokenizer  # noqa: E402
from tests.conftest import QWEN25_DATA  # noqa: E402

ITEMS = [
    {"question": "What is the capital of France?", "choices": ["Paris", "Lyon", "Marseille", "Nice"], "answer": 0},
    {"question": "Which number is prime? ", "choices": ["4", "6", "7", "9"], "answer": 2},  # trailing space
    {"question": "The opposite of hot is", "choices": ["cold as ice in the far north", "warm", "boiling water",
                                                        "a very long and winding answer about temperatures"],
     "answer": 0},
    {"question": "Pick the colour.", "choices": ["blue", "chair", "running quickly", "seven"], "answer": 0},
    {"question": "Quelle est la couleur du ciel ? Réponse en français, s'il vous plaît.",
     "choices": ["bleu", "vert", "rouge et noir", "jaune"], "answer": 0},
    {"question": "2 + 2 =", "choices": ["4", "22", "5", "four"], "answer": 0},
    {"question": "Which animal barks?\n", "choices": ["dog", "cat", "fish", "bird"], "answer": 0},  # trailing newline
    {"question": "def add(a, b):\n    return", "choices": ["a + b", "a - b", "None", "a * b * 2"], "answer": 0},
    {"question": "Sort: banana, apple, cherry", "choices": ["apple banana cherry", "cherry apple", "banana",
                                                             "apple"], "answer": 0},
    {"question": "日本の首都は", "choices": ["東京", "大阪", "京都", "札幌"], "answer": 0},
]

_MMLU_TEXT = ("{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}"
              "\\nAnswer:")


def _task_yaml(name: str, data: str, text: str, choice: str) -> str:
    return (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
            f"test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{text}\"\n"
            f"doc_to_choice: {choice}\ndoc_to_target: answer\n"
            "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
            "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("lm_eval")
    model_dir = d / "model"
    cfg = Qwen25Config.from_preset("debug", max_position_embeddings=512)
    m = Qwen2ForCausalLM.from_config(cfg, seed=3)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.endswith("norm.weight"):
                p.mul_(20)  # peaked distributions, so the choices' scores differ
    m.save_pretrained(model_dir)
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):  # transformers' Qwen2Tokenizer reads these
        shutil.copy(QWEN25_DATA / f, model_dir / f)
    data = d / "items.jsonl"
    data.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in ITEMS), encoding="utf-8")
    tasks = d / "tasks"
    tasks.mkdir()
    (tasks / "mmlu.yaml").write_text(_task_yaml("q25_mmlu", str(data), _MMLU_TEXT, '["A", "B", "C", "D"]'))
    (tasks / "cloze.yaml").write_text(_task_yaml("q25_cloze", str(data), "{{question}}", '"{{choices}}"'))
    from lm_eval.tasks import TaskManager

    res = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype=float32",
                                  tasks=["q25_mmlu", "q25_cloze"], device="cpu", batch_size=3, log_samples=True,
                                  task_manager=TaskManager(include_path=str(tasks), include_defaults=False))
    return model_dir, res


@pytest.mark.parametrize("fmt, task", [("mmlu", "q25_mmlu"), ("cloze", "q25_cloze")])
def test_multiple_choice_equals_lm_eval_hf(setup, fmt: str, task: str) -> None:  # type: ignore[no-untyped-def]
    model_dir, res = setup
    model = Qwen2ForCausalLM.from_pretrained(model_dir)
    ours = multiple_choice(model, Tokenizer.qwen25(), ITEMS, format=fmt, batch_size=4)
    samples = sorted(res["samples"][task], key=lambda s: s["doc_id"])
    assert len(samples) == len(ITEMS)
    for s, lls in zip(samples, ours["loglikelihoods"]):
        ref = [float(r[0]) for r in s["filtered_resps"]]
        assert lls == pytest.approx(ref, rel=1e-5, abs=1e-4), s["doc_id"]
        assert s["acc"] == ours["correct"][s["doc_id"]] and s["acc_norm"] == ours["correct_norm"][s["doc_id"]]
    agg = res["results"][task]
    assert ours["acc"] == pytest.approx(agg["acc,none"]) and ours["acc_norm"] == pytest.approx(agg["acc_norm,none"])
    # the items are not all alike: the scores must separate the choices
    assert len({round(x, 3) for row in ours["loglikelihoods"] for x in row}) > 20
    if fmt == "cloze":
        assert ours["pred"] != ours["pred_norm"]  # acc_norm's length normalisation changes some picks
