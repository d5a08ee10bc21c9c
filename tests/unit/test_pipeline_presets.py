"""Per-domain filter presets: the "code" preset keeps real code that the prose ("web") filters
remove, its code rules are BigCode's (checked against a straightforward re-implementation of
bigcode-dataset's ``add_stats`` / ``basic_filters``), a domain selects a preset in TOML, and a
stage that removes more than 90% of a domain is flagged in the report and the summary."""

from __future__ import annotations

import importlib
import inspect
import json

import pytest

from qwen25.cli import main
from qwen25.data.filters import CodeConfig, FilterConfig, QualityFilter, preset
from qwen25.data.pipeline import run_pipeline
from qwen25.errors import Qwen25ValueError
from tests.unit.test_pipeline import read_jsonl

MODULES = ("argparse", "json.decoder", "json.encoder", "textwrap", "string", "csv", "difflib", "pathlib", "shlex",
           "fractions", "heapq", "bisect", "dataclasses", "functools", "contextlib", "tokenize", "calendar",
           "configparser", "ipaddress", "statistics", "colorsys", "fnmatch", "gettext", "glob", "queue")  # fmt: skip


def stdlib_sources() -> list[str]:
    """Real Python files: the installed standard library's sources."""
    out = []
    for name in MODULES:
        path = inspect.getsourcefile(importlib.import_module(name))
        assert path is not None
        with open(path, encoding="utf-8") as f:
            out.append(f.read())
    return out


def bigcode_keep(text: str, line_max: int = 1000, line_mean: float = 100, alpha_frac: float = 0.25) -> bool:
    """bigcode-dataset preprocessing/filtering.py: add_stats + basic_filters, re-written."""
    lengths = [len(line) for line in text.splitlines()]
    alnum = sum(c.isalnum() for c in text) / len(text)
    mean = sum(lengths) / len(lengths)
    return not (max(lengths) > line_max or mean > line_mean or alnum < alpha_frac)


def test_code_rules_decide_as_bigcode():
    texts = stdlib_sources()
    texts += [
        "x = 1\n" + "y = '" + "a" * 1200 + "'\n",  # one line over 1000
        "\n".join("z" * 150 for _ in range(10)),  # mean line length 150
        "{}[]();\n" * 40 + "ab = 1\n",  # few alphanumeric characters
        "def f(x):\n    return x + 1\n",
    ]
    only_code = FilterConfig(gopher_repetition=None, gopher_quality=None, c4=None, fineweb=None, code=CodeConfig())
    res = QualityFilter(only_code).apply(texts)
    assert [r.keep for r in res] == [bigcode_keep(t) for t in texts]
    assert [r.reason for r in res[-4:]] == ["code_max_line_length", "code_mean_line_length", "code_alnum_fraction", None]
    lengths = [len(line) for line in texts[0].splitlines()]
    assert res[0].stats["code.max_line_length"] == max(lengths)
    assert res[0].stats["code.mean_line_length"] == pytest.approx(sum(lengths) / len(lengths))
    # thresholds are options, None switches a check off
    loose = FilterConfig.from_dict({"gopher_repetition": False, "gopher_quality": False, "c4": False, "fineweb": False,
                                    "code": {"max_line_length": 5000, "max_mean_line_length": None}})  # fmt: skip
    assert [r.keep for r in QualityFilter(loose).apply(texts[-4:])] == [True, True, False, True]


def test_web_removes_most_real_code_and_code_keeps_most():
    texts = stdlib_sources()
    web = QualityFilter(preset("web")).apply(texts)
    code = QualityFilter(preset("code")).apply(texts)
    assert sum(not r.keep for r in web) / len(texts) > 0.9
    assert sum(r.keep for r in code) / len(texts) >= 0.9
    assert preset("web") == FilterConfig()  # web is the default


def write_code_corpus(tmp_path) -> int:
    (tmp_path / "code").mkdir()
    texts = stdlib_sources()
    with open(tmp_path / "code" / "py.jsonl", "w", encoding="utf-8") as f:
        for name, t in zip(MODULES, texts):
            f.write(json.dumps({"id": name, "text": t}) + "\n")
    return len(texts)


CONFIG = """
[pipeline]
output = "out"

[[sources]]
name = "code"
paths = ["code/*.jsonl"]
id_field = "id"
{extra}
[pack]
seq_len = 2048
"""


def test_a_domain_selects_a_preset_and_heavy_removal_is_flagged(tmp_path, capsys):
    n = write_code_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(extra=""))  # the default filters: web
    assert main(["data", "run", str(cfg), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    gone = rep["stages"]["filter"]["domains"]["code"]["removed_docs"]
    assert gone / n > 0.9
    assert len(rep["warnings"]) == 1 and "stage filter" in rep["warnings"][0] and "'code'" in rep["warnings"][0]
    assert "WARNING: stage filter removed" in printed
    cfg.write_text(CONFIG.format(extra='[filter.domains.code]\npreset = "code"\n'))
    rep = run_pipeline(cfg, progress=False)
    assert rep["stages"]["filter"]["domains"]["code"]["removed_docs"] / n <= 0.1
    assert rep["warnings"] == []
    kept = {r["id"] for r in read_jsonl(tmp_path / "out" / "kept.jsonl")}
    assert len(kept) >= 0.9 * n
    # a preset's keys can be overridden key by key
    cfg.write_text(CONFIG.format(extra='[filter.domains.code]\npreset = "code"\ncode = { max_line_length = 10 }\n'))
    rep = run_pipeline(cfg, progress=False)
    assert rep["removed_by_stage"]["filter"] == {"code:code_max_line_length": n}


def test_an_unknown_preset_names_file_and_table(tmp_path):
    write_code_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(extra='[filter.domains.code]\npreset = "kode"\n'))
    with pytest.raises(Qwen25ValueError, match=r"\[filter.domains.code\]: preset: unknown filter preset 'kode' \(known: code, web\)") as e:
        run_pipeline(cfg, progress=False)
    assert str(cfg) in str(e.value)
