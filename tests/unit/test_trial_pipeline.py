"""Hostile-input trial of ``qwen25 data run``: configurations that used to fail late or read the
wrong files. Each expectation is checked against an independent reference (Python's ``glob``
and ``json``, the files on disk), not against the run's own counts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from qwen25.data.pipeline import run_pipeline
from qwen25.errors import Qwen25Error


def _docs(n: int, start: int = 0) -> str:
    return "".join(
        json.dumps({"id": i, "text": f"Document {i} tells of rivers. The bridges cross them. Towns grow along them."}) + "\n"
        for i in range(start, start + n)
    )


def _toml(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "pipeline.toml"
    p.write_text(body)
    return p


def test_an_input_inside_the_output_folder_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "in.jsonl").write_text(_docs(5))
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "out/*.jsonl"\n')
    with pytest.raises(Qwen25Error, match=r"pipeline\.toml: sources\[0\].*in\.jsonl is inside the output folder"):
        run_pipeline(cfg, progress=False)
    assert os.listdir(out) == ["in.jsonl"]


_TEST_ITEM = "def add(a, b):\n    # add two numbers and return the sum of both of them to the caller\n    return a + b\n"


@pytest.mark.parametrize(
    "key,value",
    [("ngram", "x"), ("ngram", -3), ("ngram", True), ("lcs_min", 0), ("lcs_ratio", 2), ("lcs_ratio", "x"),
     ("window", 0), ("window", "none"), ("mode", "zz")],
)  # fmt: skip
def test_bad_decontaminate_option_values_fail_before_the_scan_naming_the_toml(tmp_path: Path, key: str, value: object) -> None:
    from qwen25.data.decontam import Decontaminator

    with pytest.raises((ValueError, TypeError)):  # the reference: what Decontaminator itself refuses
        Decontaminator([_TEST_ITEM], **{key: value})
    (tmp_path / "in.jsonl").write_text(_docs(5))
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": _TEST_ITEM}) + "\n")
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n'
                f'[decontaminate]\noptions = {{ test_set = "test.jsonl", {key} = {json.dumps(value)} }}\n')  # fmt: skip
    with pytest.raises(Qwen25Error, match=rf"pipeline\.toml \[decontaminate\]: options\.{key} "):
        run_pipeline(cfg, progress=False)
    assert not (tmp_path / "out").exists()  # refused before the scan phase wrote anything


def test_window_with_another_mode_fails_before_the_scan(tmp_path: Path) -> None:
    from qwen25.data.decontam import Decontaminator

    with pytest.raises(ValueError):
        Decontaminator([_TEST_ITEM], mode="ngram", ngram=3, window=5)
    (tmp_path / "in.jsonl").write_text(_docs(5))
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": _TEST_ITEM}) + "\n")
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n'
                '[decontaminate]\noptions = { test_set = "test.jsonl", mode = "ngram", ngram = 3, window = 5 }\n')  # fmt: skip
    with pytest.raises(Qwen25Error, match=r"options\.window applies to mode"):
        run_pipeline(cfg, progress=False)
    assert not (tmp_path / "out").exists()


def test_prefilter_must_be_a_toml_boolean(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(_docs(5))
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n'
                '[decontaminate]\noptions = { test_set = "humaneval", prefilter = "no" }\n')  # fmt: skip
    with pytest.raises(Qwen25Error, match=r"options\.prefilter must be bool, got 'no'"):  # "no" would be truthy
        run_pipeline(cfg, progress=False)


def _tree_of_inputs(tmp_path: Path) -> None:
    for rel, start in (("data/top.jsonl", 0), ("data/sub/mid.jsonl", 100), ("data/sub/deep/low.jsonl", 200)):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(_docs(4, start))


def _read_ids(out: Path) -> list[tuple[str, int]]:
    """(file, line) of every input record the run accounts for: survivors and removed entries."""
    rows = [json.loads(x) for name in ("survivors.jsonl", "removed.jsonl") for x in (out / name).read_text().splitlines()]
    return sorted((r["file"], r["line"]) for r in rows)


def test_paths_globs_span_folders_skip_folders_and_read_a_file_once(tmp_path: Path) -> None:
    import glob

    _tree_of_inputs(tmp_path)
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\nstop_after = "filter"\n[[sources]]\nname = "web"\n'
                'paths = ["data/**/*.jsonl", "data/*", "data/top.jsonl"]\n[filter]\nenabled = false\n')  # fmt: skip
    rep = run_pipeline(cfg, progress=False)
    want = {os.path.relpath(p, tmp_path) for p in glob.glob(str(tmp_path / "data/**/*.jsonl"), recursive=True)}
    assert len(want) == 3
    expected = sorted((f, n) for f in want for n in range(1, 5))  # each file's 4 lines, once
    assert _read_ids(tmp_path / "out") == expected
    assert rep["documents_in"] == len(expected)


@pytest.mark.parametrize(
    "sources,match",
    [
        ('[[sources]]\nname = "a"\npaths = "data/top.jsonl"\n[[sources]]\nname = "b"\npaths = "data/*.jsonl"\n',
         r"sources\[1\] \('b'\): .*top\.jsonl is also a file of sources\[0\] \('a'\)"),
        ('[[sources]]\nname = "a"\npaths = "data/top.jsonl"\n[[sources]]\nname = "a"\npaths = "data/sub/*.jsonl"\n',
         r"sources\[1\] name 'a' is also the name of sources\[0\]"),
        ('[[sources]]\nname = "a"\npaths = "data/sub"\n', r"sources\[0\] \('a'\): .*sub is a folder"),
        ('[[sources]]\nname = "a"\npaths = "data/su*"\n', r"sources\[0\] \('a'\): matches only folders"),
    ],
    ids=["file-in-two-sources", "two-sources-one-name", "a-folder", "only-folders"],
)  # fmt: skip
def test_ambiguous_sources_are_refused_naming_the_toml(tmp_path: Path, sources: str, match: str) -> None:
    _tree_of_inputs(tmp_path)
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n' + sources)
    with pytest.raises(Qwen25Error, match=match):
        run_pipeline(cfg, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stop", ["dedup", "mix"])
def test_a_stopped_run_reports_nothing_packed_and_its_survivors_per_domain(tmp_path: Path, stop: str) -> None:
    import collections
    import re

    from qwen25.data.pipeline import format_report

    (tmp_path / "a.jsonl").write_text(_docs(6))
    (tmp_path / "b.jsonl").write_text(_docs(3, 50))
    cfg = _toml(tmp_path, f'[pipeline]\noutput = "out"\nstop_after = "{stop}"\n[[sources]]\nname = "a"\npaths = "a.jsonl"\n'
                '[[sources]]\nname = "b"\npaths = "b.jsonl"\n[filter]\nenabled = false\n'
                '[dedup]\nminhash = false\n')  # fmt: skip
    rep = run_pipeline(cfg, progress=False)
    assert rep["documents_packed"] == 0 and not (tmp_path / "out" / "packed").exists()
    surv = [json.loads(x) for x in (tmp_path / "out" / "survivors.jsonl").read_text().splitlines()]
    want = collections.Counter(r["domain"] for r in surv)
    text = format_report(rep)
    assert "documents packed" not in text and "domains (docs in -> survivors):" in text
    got = {m[1]: int(m[2]) for m in re.finditer(r"^  (\w+) +\d+ -> +(\d+)", text, re.M)}
    assert got == dict(want) == {"a": 6, "b": 3}


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["outputs"].update(scan="x"),
        lambda s: s["outputs"].update(scan={"stage1.tok": [1]}),
        lambda s: s.update(report={"scan": {"tally": 5}}),
        lambda s: s.update(done=["zz"]),
        lambda s: s.update(fingerprints=[1]),
    ],
    ids=["outputs-str", "outputs-short", "report-tally", "done-unknown", "fingerprints-list"],
)
def test_a_malformed_state_json_is_redone_from_scratch_not_a_traceback(tmp_path: Path, edit: Any) -> None:
    (tmp_path / "in.jsonl").write_text(_docs(8))
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n'
                '[filter]\nenabled = false\n[pack]\nseq_len = 32\n')  # fmt: skip
    run_pipeline(cfg, progress=False)
    out = tmp_path / "out"
    first = {n: (out / n).read_bytes() for n in ("kept.jsonl", "removed.jsonl")}
    state = json.loads((out / "state.json").read_text())
    edit(state)
    (out / "state.json").write_text(json.dumps(state))
    rep = run_pipeline(cfg, progress=False)
    assert {n: (out / n).read_bytes() for n in first} == first
    assert rep["documents_in"] == 8 == len((tmp_path / "in.jsonl").read_text().splitlines())


def test_an_output_folder_that_cannot_be_written_is_a_qwen25_error_naming_it(tmp_path: Path, monkeypatch: Any) -> None:
    import errno

    from qwen25.errors import Qwen25IOError

    (tmp_path / "in.jsonl").write_text(_docs(4))
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n'
                '[filter]\nenabled = false\n[pack]\nseq_len = 32\n')  # fmt: skip
    real_makedirs, real_remove = os.makedirs, os.remove

    def read_only(real: Any) -> Any:  # os.makedirs / os.remove on a read-only file system (root ignores chmod)
        def call(path: Any, *a: Any, **k: Any) -> Any:
            if os.fspath(path).startswith(str(tmp_path / "out")):
                raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
            return real(path, *a, **k)

        return call

    monkeypatch.setattr(os, "makedirs", read_only(real_makedirs))
    with pytest.raises(Qwen25IOError, match=r"cannot be written \(Read-only file system\): '.*out'"):
        run_pipeline(cfg, progress=False)
    monkeypatch.setattr(os, "makedirs", real_makedirs)
    run_pipeline(cfg, progress=False)  # a full run: kept.jsonl is there
    monkeypatch.setattr(os, "remove", read_only(real_remove))
    with pytest.raises(Qwen25IOError, match=r"cannot be removed \(Read-only file system\): '.*kept\.jsonl'"):
        run_pipeline(cfg, progress=False, stop_after="dedup")  # which removes the full run's kept.jsonl


@pytest.mark.parametrize(
    "mix,match",
    [
        ("temperature = -1", r"temperature must be > 0"),
        ("max_repeat = nan\nweights = { web = 1 }", r"max_repeat must be > 0, got nan"),
        ("weights = { web = inf }", r"weight of 'web' must be a finite number"),
        ("total_tokens = nan", r"tokens must be a finite number >= 0, got nan"),
    ],
)
def test_bad_mix_values_fail_before_reading_naming_the_toml(tmp_path: Path, mix: str, match: str) -> None:
    (tmp_path / "in.jsonl").write_text(_docs(4))
    cfg = _toml(tmp_path, f'[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n[mix]\n{mix}\n')
    with pytest.raises(Qwen25Error, match=rf"pipeline\.toml \[mix\]: {match}"):
        run_pipeline(cfg, progress=False)
    assert not (tmp_path / "out").exists()  # refused before the scan phase


def test_a_full_disk_while_packing_names_the_shard_and_leaves_no_temporary(tmp_path: Path, monkeypatch: Any) -> None:
    import errno

    from qwen25.data.pack import TokenPacker
    from qwen25.errors import Qwen25IOError

    def full(self: Any, *a: Any, **k: Any) -> None:  # what the native packer raises on a full disk
        open(os.path.join(self.out_dir, "shard_00000.bin.tmp"), "wb").close()
        raise OSError(errno.ENOSPC, "No space left on device (os error 28)", os.path.join(self.out_dir, "shard_00000.bin.tmp"))

    monkeypatch.setattr(TokenPacker, "add_token_arrays", full)
    (tmp_path / "in.jsonl").write_text(_docs(4))
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n'
                '[filter]\nenabled = false\n[pack]\nseq_len = 32\n')  # fmt: skip
    with pytest.raises(Qwen25IOError, match=r"cannot be written \(No space left on device") as e:
        run_pipeline(cfg, progress=False)
    assert e.value.filename == str(tmp_path / "out" / "packed" / "shard_00000.bin")
    left = [n for d, _, ns in os.walk(tmp_path / "out") for n in ns if "tmp" in n]
    assert left == []


@pytest.mark.parametrize("n", [0, 100000])
def test_pipeline_num_threads_out_of_range_fails_naming_the_toml(tmp_path: Path, n: int) -> None:
    (tmp_path / "in.jsonl").write_text(_docs(2))
    cfg = _toml(tmp_path, f'[pipeline]\noutput = "out"\nnum_threads = {n}\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n')
    with pytest.raises(Qwen25Error, match=r"pipeline\.toml \[pipeline\]: num_threads must be"):
        run_pipeline(cfg, progress=False)
    assert not (tmp_path / "out").exists()


def test_python_api_odd_arguments_are_qwen25_errors(tmp_path: Path) -> None:
    from qwen25.data.pipeline import Pipeline

    with pytest.raises(Qwen25Error, match="cannot read the pipeline file"):
        run_pipeline(tmp_path, progress=False)  # a folder, not a TOML
    for bad in ([1, 2], None, "pipeline.toml"):
        with pytest.raises(TypeError, match="a pipeline config must be a table") as e:
            Pipeline(bad)  # type: ignore[arg-type]
        assert isinstance(e.value, Qwen25Error)


def test_editing_the_test_set_file_redoes_decontamination(tmp_path: Path) -> None:
    import random

    rng = random.Random(0)
    words = "river bridge town bank stone field market road hill forest lake mill church school harbour".split()
    docs = [" ".join(rng.choice(words) for _ in range(40)) + "." for _ in range(4)]  # no 13-gram in common
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(docs)))
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"text": "zebra xylophone quantum " * 8}) + "\n")
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\nstop_after = "decontaminate"\n[[sources]]\nname = "web"\n'
                'paths = "in.jsonl"\n[filter]\nenabled = false\n[decontaminate]\noptions = { test_set = "test.jsonl" }\n')  # fmt: skip
    assert run_pipeline(cfg, progress=False)["survivors"]["docs"] == 4
    test.write_text(json.dumps({"text": docs[2]}) + "\n")  # now record 2 is in the test set
    run_pipeline(cfg, progress=False)
    removed = [json.loads(x) for x in (tmp_path / "out" / "removed.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["line"]) for r in removed] == [("decontaminate", 3)]


def test_touching_an_input_redoes_nothing_editing_it_redoes_the_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(_docs(4))
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n'
                '[filter]\nenabled = false\n[pack]\nseq_len = 32\n')  # fmt: skip
    run_pipeline(cfg)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))  # same bytes, a new mtime
    capsys.readouterr()
    run_pipeline(cfg)
    assert capsys.readouterr().err.count("already done") == 3  # the README: inputs compared by content
    src.write_text(_docs(4).replace("rivers", "RIVERS", 1))  # same size, new content
    os.utime(src, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))
    run_pipeline(cfg)
    assert "already done" not in capsys.readouterr().err


@pytest.mark.parametrize("phases", [False, True])
def test_an_endless_mix_is_refused_and_an_unmet_total_is_a_note(tmp_path: Path, phases: bool) -> None:
    from qwen25.data.pipeline import format_report

    (tmp_path / "in.jsonl").write_text(_docs(5))
    head = '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n[filter]\nenabled = false\n' \
           '[dedup]\nminhash = false\n'  # fmt: skip
    mix = '[[mix.phases]]\nname = "a"\nweights = { web = 1 }\n' if phases else "[mix]\nweights = { web = 1 }\n"
    cfg = _toml(tmp_path, head + mix + "max_repeat = inf\n")
    with pytest.raises(Qwen25Error, match=r"max_repeat = inf needs total_tokens"):
        run_pipeline(cfg, progress=False)
    assert not (tmp_path / "out").exists()
    cfg = _toml(tmp_path, head + mix + "total_tokens = 1e12\n")
    rep = run_pipeline(cfg, progress=False)
    notes = rep["mix"]["phases"]["a"]["notes"] if phases else rep["mix"]["notes"]
    kept = [json.loads(x) for x in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()]
    assert len(kept) == 5  # one epoch of every document: the most max_repeat = 1 allows
    assert any("total_tokens = 1e+12 cannot be met within max_repeat = 1 epochs" in n for n in notes), notes
    assert "cannot be met" in format_report(rep)


def test_a_misspelt_filter_domain_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(_docs(2))
    body = '[pipeline]\noutput = "out"\n[[sources]]\nname = "code"\npaths = "in.jsonl"\n[filter.domains.{}]\npreset = "code"\n'
    with pytest.raises(Qwen25Error, match=r"\[filter.domains\]: \['cdoe'\] name\(s\) no source's domain \(domains: \['code'\]\)"):
        run_pipeline(_toml(tmp_path, body.format("cdoe")), progress=False)
    assert not (tmp_path / "out").exists()
    assert run_pipeline(_toml(tmp_path, body.format("code")), progress=False)["documents_in"] == 2


def test_a_tilde_in_toml_paths_is_the_home_folder(tmp_path: Path, monkeypatch: Any) -> None:
    home = tmp_path / "home"
    (home / "d").mkdir(parents=True)
    (home / "d" / "in.jsonl").write_text(_docs(3))
    monkeypatch.setenv("HOME", str(home))
    proj = tmp_path / "proj"
    proj.mkdir()
    cfg = proj / "pipeline.toml"
    cfg.write_text('[pipeline]\noutput = "~/out"\nstop_after = "filter"\n[[sources]]\nname = "web"\npaths = "~/d/*.jsonl"\n'
                   '[filter]\nenabled = false\n')  # fmt: skip
    rep = run_pipeline(cfg, progress=False)
    assert rep["documents_in"] == 3 and (home / "out" / "survivors.jsonl").is_file()
    assert os.listdir(proj) == ["pipeline.toml"]  # no folder named "~" beside the TOML


def test_an_output_that_is_a_file_is_refused_naming_the_toml(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(_docs(2))
    (tmp_path / "out").write_text("a file")
    cfg = _toml(tmp_path, '[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n')
    with pytest.raises(Qwen25Error, match=r"pipeline\.toml \[pipeline\]: output 'out' is a file"):
        run_pipeline(cfg, progress=False)
    assert (tmp_path / "out").read_text() == "a file"
