"""Friction in the standalone ``qwen25 data`` stages (issue 16, items 6 and 7): a filter config
shaped like the pipeline's ``[filter.default]``, globbed inputs, a dedup that would do nothing,
truncated ``.gz`` inputs and the UTF-8 error's advice. Counts are checked against Python's own
``gzip``/``glob`` reading the same files."""

from __future__ import annotations

import glob
import gzip
import json
import random
import zlib
from pathlib import Path

import pytest

from qwen25.cli import main

WORDS = "river market bread winter garden music story harbour lantern orchard the and of".split()


def docs_of(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    # one sentence each: C4 drops them by default (fewer than 5 sentences)
    return [{"id": f"{seed}-{i}", "text": " ".join(rng.choice(WORDS) for _ in range(80)) + "."} for i in range(n)]


def write(path: Path, recs: list[dict[str, object]]) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in recs).encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def read_ids(path: Path) -> list[object]:
    return [json.loads(x)["id"] for x in path.read_text().splitlines()]


def one_line_error(capsys) -> str:  # type: ignore[no-untyped-def]
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


# -- data filter --config shaped like [filter.default] --------------------------------------------

def test_filter_config_shaped_like_the_pipeline_table(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = write(tmp_path / "in.jsonl", docs_of(4, 1))
    out = tmp_path / "o.jsonl"
    base = ["data", "filter", str(src), "-o", str(out), "--no-progress"]
    assert main(base) == 0 and read_ids(out) == []  # the published C4 rule: >= 5 sentences
    for name, text in (
        ("pipeline.toml", "[filter.default]\nc4 = { min_num_sentences = 1 }\ngopher_repetition = false\n"),
        ("inline.toml", "[filter]\ndefault = { c4 = { min_num_sentences = 1 }, gopher_repetition = false }\n"),
        ("bare.toml", "[c4]\nmin_num_sentences = 1\n[gopher_repetition]\ndup_line_frac = 1.0\n"),
        ("pipeline.json", json.dumps({"filter": {"default": {"c4": {"min_num_sentences": 1}, "gopher_repetition": False}}})),
    ):
        (tmp_path / name).write_text(text)
        assert main([*base, "--config", str(tmp_path / name)]) == 0, (name, capsys.readouterr().err)
        assert read_ids(out) == ["1-0", "1-1", "1-2", "1-3"], name
    capsys.readouterr()
    # what the standalone stage cannot honour is an error naming the file and the key
    for name, text, what in (
        ("domains.toml", "[filter.default]\nc4 = false\n[filter.domains.code]\nc4 = false\n", "domains"),
        ("enabled.toml", "[filter]\nenabled = false\n", "enabled"),
        ("typo.toml", "[filter.defaults]\nc4 = false\n", "defaults"),
        ("bad.toml", "[filter.default]\nc5 = false\n", "c5"),
    ):
        (tmp_path / name).write_text(text)
        assert main([*base, "--config", str(tmp_path / name)]) == 1, name
        err = one_line_error(capsys)
        assert name in err and what in err, (name, err)


# -- globbed inputs -----------------------------------------------------------------------------------

def test_inputs_are_globbed_like_toml_paths(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "web").mkdir()
    for k in (2, 0, 1):
        # letters, not digits: MinHash maps every number to 0, as datatrove does
        write(tmp_path / "web" / f"part-{k}.jsonl", [{"id": f"p{k}-{i}", "text": f"doc {'abc'[k]} {'xyz'[i]} " * 20} for i in range(3)])
    write(tmp_path / "odd[1].jsonl", [{"id": "odd", "text": "a literal name with brackets " * 5}])
    pattern = str(tmp_path / "web" / "*.jsonl")
    files = sorted(glob.glob(pattern))  # the reference: what a [[sources]] paths entry matches
    expected = [json.loads(x)["id"] for f in files for x in Path(f).read_text().splitlines()] + ["odd"]
    out = tmp_path / "o.jsonl"
    assert main(["data", "dedup", pattern, str(tmp_path / "odd[1].jsonl"), "-o", str(out), "--no-progress"]) == 0
    assert read_ids(out) == expected
    assert main(["data", "pack", pattern, "-o", str(tmp_path / "packed"), "--seq-len", "16", "--no-progress"]) == 0
    capsys.readouterr()
    for stage in (["filter"], ["dedup"], ["pack"], ["classify", "predict", "--model", str(tmp_path / "m.bin")]):
        missing = str(tmp_path / "nothing-*.jsonl")
        assert main(["data", *stage, pattern, missing, "-o", str(tmp_path / "x"), "--no-progress"]) == 1, stage
        err = one_line_error(capsys)
        assert missing in err and "no file matches" in err, err


# -- dedup that does nothing --------------------------------------------------------------------------

def test_dedup_with_both_methods_off_is_an_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = write(tmp_path / "in.jsonl", docs_of(3, 2))
    out = tmp_path / "o.jsonl"
    assert main(["data", "dedup", str(src), "-o", str(out), "--no-exact", "--no-minhash", "--no-progress"]) == 1
    err = one_line_error(capsys)
    assert "--no-exact" in err and "--no-minhash" in err
    assert not out.exists() and not Path(str(out) + ".tmp").exists()


@pytest.mark.parametrize("flag,kept", [("--no-minhash-sign-short-docs", 3), ("--minhash-sign-short-docs", 2)])
def test_dedup_short_docs_flag(tmp_path: Path, flag: str, kept: int) -> None:
    # datatrove leaves a text under --ngram words unsigned (never a near duplicate); the flag signs it
    from qwen25.data.dedup import MinHashDeduplicator

    texts = ["red green blue", "red green blue", " ".join(f"w{i} x{i}" for i in range(40))]
    src = write(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "o.jsonl"
    assert main(["data", "dedup", str(src), "-o", str(out), "--no-exact", flag, "--no-progress"]) == 0
    got = [json.loads(x)["text"] for x in out.read_text().splitlines()]
    ref = MinHashDeduplicator(sign_short_docs=flag == "--minhash-sign-short-docs").deduplicate(texts).tolist()
    assert got == [t for t, k in zip(texts, ref) if k] and len(got) == kept


# -- truncated .gz ------------------------------------------------------------------------------------

def complete_records(path: Path, lines: list[bytes]) -> int:
    """The independent count: how many of the written lines fit whole in what zlib can inflate
    from the truncated file."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    prefix = d.decompress(path.read_bytes())
    assert not d.eof, f"{path} is not truncated"
    n, end = 0, 0
    for ln in lines:
        end += len(ln)
        if end > len(prefix):
            break
        n += 1
    return n


def good_and_truncated(tmp: Path) -> tuple[list[dict[str, object]], Path, list[dict[str, object]], Path, int]:
    """A whole ``a.jsonl.gz`` of 50 records and ``b.jsonl.gz``, 3,000 records cut at half its
    compressed bytes: ``(good records, a, b's records, b, how many of b's records zlib inflates
    whole)``."""
    good_recs = docs_of(50, 3)
    good = write(tmp / "a.jsonl.gz", good_recs)
    recs = docs_of(3000, 4)
    lines = [(json.dumps(r) + "\n").encode() for r in recs]
    full = gzip.compress(b"".join(lines))
    bad = tmp / "b.jsonl.gz"
    bad.write_bytes(full[: len(full) // 2])
    n = complete_records(bad, lines)
    assert 0 < n < 3000
    return good_recs, good, recs, bad, n


@pytest.mark.parametrize("stage", ["filter", "dedup", "pack"])
def test_truncated_gzip_is_a_one_line_error_naming_the_file(tmp_path: Path, capsys, stage: str) -> None:  # type: ignore[no-untyped-def]
    _, good, _, bad, n = good_and_truncated(tmp_path)
    out = tmp_path / "out"
    assert main(["data", stage, str(good), str(bad), "-o", str(out), "--no-progress"]) == 1
    err = one_line_error(capsys)
    assert f"{bad}: truncated after {n} records" in err, err
    assert str(good) + ":" not in err
    assert not Path(str(out) + ".tmp").exists()


@pytest.mark.parametrize("stage", ["filter", "dedup", "pack"])
def test_truncated_gzip_with_skip_bad_keeps_the_records_before_the_damage(tmp_path: Path, capsys, stage: str) -> None:  # type: ignore[no-untyped-def]
    """As ``qwen25 decontaminate --skip-bad`` and ``tokenize --skip-bad``: the records zlib can
    inflate whole go on, the damage is one entry of the removed list (stage read, at the line where
    it starts) and a warning; every other record is in the output or the removed list."""
    good_recs, good, recs, bad, n = good_and_truncated(tmp_path)
    out, removed = tmp_path / "out", tmp_path / "removed.jsonl"
    cfg = tmp_path / "keep_all.toml"  # the default C4 rule would drop these one-sentence docs
    cfg.write_text("[c4]\nmin_num_sentences = 1\n[gopher_repetition]\ndup_line_frac = 1.0\n")
    extra = ["--config", str(cfg)] if stage == "filter" else []
    assert main(["data", stage, str(good), str(bad), "-o", str(out), "--removed", str(removed), "--no-progress",
                 "--skip-bad", *extra]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"warning: {bad}: truncated after {n} records" in err, err
    gone = [json.loads(x) for x in removed.read_text().splitlines()]
    assert [(r["file"], r["line"], r["stage"]) for r in gone if r["stage"] == "read"] == [(str(bad), n + 1, "read")]
    assert next(r["reason"] for r in gone if r["stage"] == "read").startswith(f"damaged_file: truncated after {n} records")
    want = [r["id"] for r in good_recs] + [r["id"] for r in recs[:n]]
    if stage == "pack":
        assert json.loads(err.splitlines()[-1])["documents"] == len(want)
        return
    by_line = {(str(good), i + 1): r["id"] for i, r in enumerate(good_recs)}
    by_line |= {(str(bad), i + 1): r["id"] for i, r in enumerate(recs[:n])}
    dropped = [by_line[(r["file"], r["line"])] for r in gone if r["stage"] != "read"]
    assert sorted(read_ids(out) + dropped) == sorted(want)  # every record before the damage, once


def test_corrupt_gzip_names_the_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "plain.jsonl.gz"
    bad.write_bytes(b'{"text": "not gzip at all"}\n')
    with pytest.raises(OSError):  # the reference refuses it too
        gzip.decompress(bad.read_bytes())
    assert main(["data", "filter", str(bad), "-o", str(tmp_path / "o.jsonl"), "--no-progress"]) == 1
    err = one_line_error(capsys)
    assert str(bad) in err and "gzip" in err


# -- the UTF-8 error's advice -------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["filter", "dedup", "pack"])
def test_utf8_error_suggests_only_options_the_stage_has(tmp_path: Path, capsys, stage: str) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "fine fine fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(UnicodeDecodeError):
        src.read_bytes().decode("utf-8")
    out = tmp_path / "out"
    assert main(["data", stage, str(src), "-o", str(out), "--no-progress"]) == 1
    err = one_line_error(capsys)
    assert f"{src}:2:" in err and "UTF-8" in err and "replace" not in err and "--skip-bad" in err, err
    rem = tmp_path / "removed.jsonl"
    assert main(["data", stage, str(src), "-o", str(out), "--no-progress", "--skip-bad", "--removed", str(rem)]) == 0
    (entry,) = [e for e in map(json.loads, rem.read_text().splitlines()) if e["stage"] == "read"]
    assert entry["line"] == 2 and "UTF-8" in entry["reason"] and "replace" not in entry["reason"]


def test_truncated_gzip_in_data_mix_with_skip_bad(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """data mix as the other stages: the records zlib inflates whole are mixed, the damage is one
    removed entry (stage read, damaged_file) and a note."""
    good_recs, good, recs, bad, n = good_and_truncated(tmp_path)
    out, removed = tmp_path / "m.jsonl", tmp_path / "removed.jsonl"
    assert main(["data", "mix", "--source", f"a={good}", "--source", f"b={bad}", "--unit", "docs", "-o", str(out),
                 "--removed", str(removed), "--skip-bad", "--no-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"{bad}: truncated after {n} records" in err, err
    gone = [json.loads(x) for x in removed.read_text().splitlines()]
    read = [(r["file"], r["line"], r["reason"].split(":")[0]) for r in gone if r["stage"] == "read"]
    assert read == [(str(bad), n + 1, "damaged_file")]
    by_line = {(str(good), i + 1): r["id"] for i, r in enumerate(good_recs)}
    by_line |= {(str(bad), i + 1): r["id"] for i, r in enumerate(recs[:n])}
    dropped = [by_line[(r["file"], r["line"])] for r in gone if r["stage"] != "read"]
    assert sorted(set(read_ids(out)) | set(dropped)) == sorted(by_line.values())  # every record before the damage
