"""Pairs and prompts files are read by the one record reader everywhere, compressed ones too:
sizing a run (``prepare_config``) counts the same records in ``.jsonl`` and ``.jsonl.gz``, and
whether a file needs a tokenizer comes from its first record."""

from __future__ import annotations

import gzip
import json

import pytest

from qwen25.cli import main
from qwen25.errors import Qwen25FileNotFoundError
from qwen25.rl import dpo, reward
from qwen25.rl.prefdata import count_records, holds_text

TEXT = [{"prompt": f"q{i}", "chosen": "yes", "rejected": "no"} for i in range(13)]
IDS = [{"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_ids": [4]} for _ in range(5)]


def _write(path, recs, blank_every: int = 4) -> str:  # type: ignore[no-untyped-def]
    lines = []
    for i, r in enumerate(recs):
        lines.append(json.dumps(r))
        if i % blank_every == 0:
            lines.append("   ")  # blank lines are not records
    data = ("\n".join(lines) + "\n").encode()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("name", ["p.jsonl", "p.jsonl.gz"])
def test_count_records_counts_what_python_counts(tmp_path, name) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path / name, TEXT)
    raw = gzip.decompress(open(path, "rb").read()) if name.endswith(".gz") else open(path, "rb").read()
    assert count_records(path) == sum(1 for line in raw.decode().splitlines() if line.strip()) == len(TEXT)


def test_a_missing_file_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Qwen25FileNotFoundError, match="pairs file .*nope.jsonl does not exist"):
        count_records(str(tmp_path / "nope.jsonl"))


@pytest.mark.parametrize("module", [dpo, reward])
def test_prepare_config_sizes_a_gzipped_file_as_the_plain_one(tmp_path, module) -> None:  # type: ignore[no-untyped-def]
    plain = _write(tmp_path / "p.jsonl", TEXT)
    packed = _write(tmp_path / "p.jsonl.gz", TEXT)
    cfg = module.recipe("debug")
    a, b = module.prepare_config(cfg, plain), module.prepare_config(cfg, packed)
    assert a.stages[0].steps == b.stages[0].steps and b.stages[0].data == (packed,)


def test_holds_text_reads_the_first_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert holds_text(_write(tmp_path / "t.jsonl.gz", TEXT))
    assert not holds_text(_write(tmp_path / "i.jsonl.gz", IDS))
    assert not holds_text(_write(tmp_path / "i.jsonl", IDS))
    # a text that mentions prompt_ids is still text
    assert holds_text(_write(tmp_path / "m.jsonl", [{"prompt": '"prompt_ids"', "chosen": "a", "rejected": "b"}]))
    assert holds_text(str(tmp_path / "missing.jsonl"))
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert holds_text(str(tmp_path / "empty.jsonl"))


def test_dpo_print_config_on_a_gzipped_pairs_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path / "p.jsonl.gz", TEXT)
    assert main(["dpo", "--recipe", "debug", "--data", path, "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["stages"][0]["data"] == [path]
