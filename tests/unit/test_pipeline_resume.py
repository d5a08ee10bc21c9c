"""Reruns of `qwen25 data run`: a phase is redone exactly when what it depends on changed or its
outputs are gone; nothing of an earlier or interrupted run leaks into the new outputs; bad
configuration values fail before any reading, naming the file and key."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from qwen25.data.pipeline import run_pipeline
from qwen25.errors import Qwen25FileNotFoundError, Qwen25ValueError
from tests.unit.test_pipeline import CONFIG, read_jsonl, write_corpus


def ran(capsys) -> list[str]:
    err = capsys.readouterr().err
    return [p for p in ("scan", "near_dedup", "mix_pack") if f"{p}: already done" not in err]


def test_a_phase_reruns_when_its_inputs_change(tmp_path, capsys):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0))
    run_pipeline(cfg)
    capsys.readouterr()
    run_pipeline(cfg)
    assert ran(capsys) == []
    cfg.write_text(CONFIG.format(max_repeat=2.0))  # [mix] only: the mix reruns, the scan does not
    run_pipeline(cfg)
    assert ran(capsys) == ["mix_pack"]
    cfg.write_text(CONFIG.format(max_repeat=2.0) + '\n[decontaminate]\nenabled = false\n')
    run_pipeline(cfg)
    assert ran(capsys) == ["near_dedup", "mix_pack"]
    (tmp_path / "out" / "stage1.tok").unlink()  # an output gone: its phase and what follows rerun
    run_pipeline(cfg)
    assert ran(capsys) == ["scan", "near_dedup", "mix_pack"]
    with open(tmp_path / "code" / "c.jsonl", "a") as f:  # an input changed
        f.write(json.dumps({"id": "c99", "text": read_jsonl(tmp_path / "code" / "c.jsonl")[0]["text"] + " More."}) + "\n")
    run_pipeline(cfg)
    assert ran(capsys) == ["scan", "near_dedup", "mix_pack"]


def test_no_stale_shards_or_copies(tmp_path):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    small = CONFIG.format(max_repeat=1.0)
    cfg.write_text(small)
    run_pipeline(cfg, progress=False)
    many = len(list((tmp_path / "out" / "packed").glob("shard_*.bin")))
    cfg.write_text(small.replace("seq_len = 64", "seq_len = 4096"))
    run_pipeline(cfg, progress=False)
    shards = sorted(p.name for p in (tmp_path / "out" / "packed").glob("shard_*.bin"))
    manifest = json.loads((tmp_path / "out" / "packed" / "manifest.json").read_text())
    assert many > 1 and shards == [s["file"] for s in manifest["shards"]]
    # a copy an interrupted run left behind is never read: the real (gzip) file is
    data = (tmp_path / "web" / "a.jsonl").read_bytes()
    (tmp_path / "web" / "a.jsonl").unlink()
    (tmp_path / "web" / "a.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "out" / "plain").mkdir()
    (tmp_path / "out" / "plain" / "00000.jsonl").write_bytes((tmp_path / "web" / "b.jsonl").read_bytes())
    cfg.write_text(small.replace('"web/*.jsonl"', '"web/*.jsonl*"'))
    rep = run_pipeline(cfg, progress=False)
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl") + read_jsonl(tmp_path / "out" / "removed.jsonl")
    ids = {r.get("id") for r in kept if r["file"] == "web/a.jsonl.gz"}
    assert ids == {f"w{i}" for i in range(20)} and rep["documents_in"] == 45


@pytest.mark.parametrize(
    "edit,match",
    [
        (("batch_size = 7", 'batch_size = "abc"'), r"\[pipeline\]: batch_size must be int"),
        (("seq_len = 64", 'seq_len = "big"'), r"\[pack\]: seq_len must be int"),
        (('mode = "smooth"', 'mode = "rnd"'), r"\[mix\]: mode must be"),
        (("max_repeat = 1.0", "max_repeat = 0"), r"\[mix\]: max_repeat must be > 0"),
        (("weights = { web = 0.75, code = 0.25 }", "weights = { web = 0.75, kode = 0.25 }"), r"unknown domain\(s\) \['kode'\]"),
        (("weights = { web = 0.75, code = 0.25 }", "weights = 5"), r"weights must be a table"),
        (('paths = ["web/*.jsonl"]', "paths = []"), r"paths must be a glob or a non-empty list"),
        (("mem_budget = 2000", "mem_budget = 2000\nbands = 20"), r"\[dedup\]"),
        (("c4 = false", 'c4 = false\nfineweb = { line_punct_thr = "x" }'), r"\[filter.default\].*line_punct_thr"),
    ],
)
def test_bad_values_fail_before_reading(tmp_path, edit, match):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0).replace(*edit))
    with pytest.raises(Qwen25ValueError, match=match) as e:
        run_pipeline(cfg, progress=False)
    assert str(cfg) in str(e.value)
    assert not (tmp_path / "out").exists()  # nothing was read or written


def test_test_set_path_is_relative_to_the_toml(tmp_path, monkeypatch):
    write_corpus(tmp_path)
    item = "a held-out test item about the orchards of the northern valley and the apples they grow each year"
    (tmp_path / "bench.jsonl").write_text(json.dumps({"text": item}) + "\n")
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0) + '\n[decontaminate]\noptions = { test_set = "bench.jsonl" }\n')
    monkeypatch.chdir("/")
    rep = run_pipeline(cfg, progress=False)
    assert rep["decontaminate"].startswith("ran")
    cfg.write_text(CONFIG.format(max_repeat=1.0) + '\n[decontaminate]\noptions = { test_set = "nope.jsonl" }\n')
    with pytest.raises(Qwen25FileNotFoundError, match="nope.jsonl"):
        run_pipeline(cfg, progress=False)


def test_domain_filter_table_overrides_the_default_key_by_key(tmp_path):
    web, code = write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    # the default drops gopher_repetition; the code domain only changes a gopher_quality threshold
    text = CONFIG.format(max_repeat=1.0).replace("c4 = false", "c4 = false\ngopher_repetition = false")
    text += "\n[filter.domains.code.gopher_quality]\nmin_doc_words = 100000\n"
    cfg.write_text(text)
    run_pipeline(cfg, progress=False)
    removed = read_jsonl(tmp_path / "out" / "removed.jsonl")
    code_filtered = [r for r in removed if r["stage"] == "filter" and r["source"] == "code"]
    assert len(code_filtered) == len(code) and all(r["reason"].startswith("gopher_quality") for r in code_filtered)
    # web keeps the default: the short document is dropped by gopher_quality, not gopher_repetition
    assert [r["reason"].split(":")[0] for r in removed if r["stage"] == "filter" and r["source"] == "web"] == ["gopher_quality"]


@pytest.mark.parametrize("lowercase,near_dup", [(True, True), (False, False)])
def test_minhash_normalisation_is_configurable(tmp_path, lowercase, near_dup):
    web, _ = write_corpus(tmp_path)
    with open(tmp_path / "web" / "b.jsonl", "a") as f:  # an upper-cased copy: the same shingles only once lowercased
        f.write(json.dumps({"id": "upper", "text": web[2]["text"].upper()}) + "\n")
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0).replace("[dedup]", f"[dedup]\nminhash_lowercase = {str(lowercase).lower()}")
                   .replace("c4 = false", "c4 = false\ngopher_quality = false\ngopher_repetition = false\nfineweb = false"))  # fmt: skip
    run_pipeline(cfg, progress=False)
    why = {r.get("id"): r["stage"] for r in read_jsonl(tmp_path / "out" / "removed.jsonl")}
    assert (why.get("upper") == "minhash_dedup") is near_dup


@pytest.mark.parametrize(
    "option,match",
    [
        ('field = "content"', r"options\.field is not a Decontaminator option.*text_field"),
        ("num_threads = 2", r"options\.num_threads is not a Decontaminator option.*\[pipeline\] num_threads"),
        ("ngrams = 13", r"unknown option options\.ngrams \(known: \[.*'ngram'"),
    ],
)
def test_decontaminate_options_are_checked_against_the_decontaminator_before_reading(tmp_path, option, match):
    """Options that Decontaminator.__init__ does not take used to pass validation and die with a
    TypeError after the scan; now they fail first, naming the file and the key."""
    import inspect

    from qwen25.data import Decontaminator

    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0) + f'\n[decontaminate]\noptions = {{ test_set = "humaneval", {option} }}\n')
    key = option.split(" ")[0]
    assert key not in inspect.signature(Decontaminator.__init__).parameters  # the independent fact
    with pytest.raises(Qwen25ValueError, match=match) as e:
        run_pipeline(cfg, progress=False)
    assert str(cfg) in str(e.value) and "[decontaminate]" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_every_decontaminator_keyword_is_a_valid_option(tmp_path):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    opts = 'test_set = "humaneval", mode = "ngram", ngram = 8, lcs_min = 13, lcs_ratio = 0.6'
    cfg.write_text(CONFIG.format(max_repeat=1.0) + f"\n[decontaminate]\noptions = {{ {opts} }}\n")
    rep = run_pipeline(cfg, progress=False)
    assert rep["decontaminate"].startswith("ran")


def _first_run(tmp_path, capsys):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0))
    run_pipeline(cfg)
    out = tmp_path / "out"
    snapshot = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "state.json"}
    capsys.readouterr()
    return cfg, out, snapshot


def test_a_removed_shard_redoes_the_packing(tmp_path, capsys):
    cfg, out, snap = _first_run(tmp_path, capsys)
    shard = out / "packed" / "shard_00000.bin"
    assert shard.exists()
    shard.unlink()
    run_pipeline(cfg)
    assert ran(capsys) == ["mix_pack"]
    assert shard.read_bytes() == snap[shard.relative_to(out)]


def test_a_truncated_output_redoes_its_phase(tmp_path, capsys):
    cfg, out, snap = _first_run(tmp_path, capsys)
    kept = out / "kept.jsonl"
    kept.write_bytes(kept.read_bytes()[:100])  # truncated, still there
    run_pipeline(cfg)
    assert ran(capsys) == ["mix_pack"]
    assert kept.read_bytes() == snap[kept.relative_to(out)]
    # an intermediate file edited in place, same size: its phase and the later ones run again
    stage1 = out / "stage1.jsonl"
    data = bytearray(stage1.read_bytes())
    data[10:14] = b"XXXX" if data[10:14] != b"XXXX" else b"YYYY"
    stage1.write_bytes(bytes(data))
    run_pipeline(cfg)
    assert ran(capsys) == ["scan", "near_dedup", "mix_pack"]
    assert stage1.read_bytes() == snap[stage1.relative_to(out)]


@pytest.mark.parametrize("name", ["stage1.text", "stage1.text.len"])
def test_an_edited_stage1_text_redoes_every_phase(tmp_path, capsys, name):
    """The stage-1 texts (UTF-8 back to back, their byte lengths beside) are a scan output: an
    edit of the same size is seen, the scan and what follows rerun, and every file comes out as
    the first run wrote it."""
    cfg, out, snap = _first_run(tmp_path, capsys)
    f = out / name
    data = bytearray(f.read_bytes())
    assert len(data) >= 8
    data[0] ^= 1  # a one-bit edit: a text's first letter, or its length, changed
    f.write_bytes(bytes(data))
    run_pipeline(cfg)
    assert ran(capsys) == ["scan", "near_dedup", "mix_pack"]
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "state.json"]
    now = {p.relative_to(out): p.read_bytes() for p in files}
    assert now == snap


def test_an_input_edited_to_the_same_size_with_its_mtime_restored_is_noticed(tmp_path, capsys):
    import os

    cfg, out, _ = _first_run(tmp_path, capsys)
    src = tmp_path / "code" / "c.jsonl"
    st = os.stat(src)
    text = src.read_text()
    assert "document c3 " in text
    edited = text.replace("document c3 ", "document c9 ", 1)
    assert len(edited.encode()) == st.st_size
    src.write_text(edited)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(src).st_mtime_ns == st.st_mtime_ns and os.stat(src).st_size == st.st_size
    run_pipeline(cfg)
    assert ran(capsys) == ["scan", "near_dedup", "mix_pack"]
    kept = read_jsonl(out / "kept.jsonl")
    # the stage-1 texts: UTF-8 back to back in stage1.text, each one's byte length in stage1.text.len
    blob, lens = (out / "stage1.text").read_bytes(), (out / "stage1.text.len").read_bytes()
    sizes = [int.from_bytes(lens[i : i + 8], "little") for i in range(0, len(lens), 8)]
    starts = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    texts = [blob[a:b].decode() for a, b in zip(starts, starts[1:])]
    assert len(texts) == len((out / "stage1.jsonl").read_text().splitlines()) and starts[-1] == len(blob)
    assert any("document c9 " in t for t in texts) and not any("document c3 " in t for t in texts)
    assert kept


needs_dev_full = pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="no /dev/full")


@needs_dev_full
def test_a_full_disk_is_blamed_on_the_output_and_leaves_no_tmp(tmp_path):
    """Writes to /dev/full fail with ENOSPC, as on a full disk: the error names the output being
    written, not the input, and no temporary file stays behind (the atomic writer writes NAME
    as .tmp-NAME beside it)."""
    import errno
    import os

    from qwen25.errors import Qwen25IOError

    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0))
    out = tmp_path / "out"
    out.mkdir()
    os.symlink("/dev/full", out / ".tmp-stage1.jsonl")
    with pytest.raises(Qwen25IOError) as e:
        run_pipeline(cfg, progress=False)
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC and "stage1.jsonl" in msg and "cannot be written" in msg and ".jsonl:" not in msg
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


@needs_dev_full
def test_a_compressed_input_is_never_written_out_decompressed_and_a_full_disk_blames_the_output(tmp_path):
    """A .gz input is decompressed in memory by the record reader: no decompressed copy (no
    OUT/plain, no file holding an input line) is written; a full disk while it is read is blamed
    on the output being written, not on the input."""
    import errno
    import os

    from qwen25.errors import Qwen25IOError

    write_corpus(tmp_path)
    data = (tmp_path / "web" / "a.jsonl").read_bytes()
    (tmp_path / "web" / "a.jsonl").unlink()
    (tmp_path / "web" / "a.jsonl.gz").write_bytes(gzip.compress(data))
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0).replace('"web/*.jsonl"', '"web/*.jsonl*"'))
    run_pipeline(cfg, progress=False)
    out = tmp_path / "out"
    assert not (out / "plain").exists()
    first_line = data.split(b"\n")[0]
    assert not [p for p in out.rglob("*") if p.is_file() and first_line in p.read_bytes()]
    shutil.rmtree(out)
    out.mkdir()
    os.symlink("/dev/full", out / ".tmp-stage1.jsonl")
    with pytest.raises(Qwen25IOError) as e:
        run_pipeline(cfg, progress=False)
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC and "stage1.jsonl" in msg and "a.jsonl.gz" not in msg and "cannot be read" not in msg
    assert not (out / ".tmp-stage1.jsonl").is_symlink()  # the half-written file is removed


@pytest.mark.parametrize("change", [{"version": 4}, {"digest_algorithm": "blake2b-128"}, None])
def test_a_state_of_another_version_or_digest_is_redone_with_a_note(tmp_path, capsys, change):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0))
    run_pipeline(cfg)
    capsys.readouterr()
    sp = tmp_path / "out" / "state.json"
    st = json.loads(sp.read_text())
    sp.write_text(json.dumps({**st, **change}) if change else "{not json")
    run_pipeline(cfg, progress=False)  # the note is not progress: it is said without it too
    err = capsys.readouterr().err
    assert f"qwen25 data: note: {'state.json is from another version' if change else 'state.json cannot be read'}" in err
    sp.write_text(json.dumps({**st, **change}) if change else "{not json")
    run_pipeline(cfg)
    err = capsys.readouterr().err
    assert [p for p in ("scan", "near_dedup", "mix_pack") if f"{p}: already done" not in err] == [
        "scan", "near_dedup", "mix_pack"]
    want = "state.json is from another version" if change else "state.json cannot be read"
    assert f"qwen25 data: note: {want}" in err and "every phase is redone" in err
    run_pipeline(cfg)  # the new state is trusted again: no note, nothing redone
    err = capsys.readouterr().err
    assert "note:" not in err and ran_none(err)


def ran_none(err: str) -> bool:
    return all(f"{p}: already done" in err for p in ("scan", "near_dedup", "mix_pack"))


# -- one run at a time per output folder (OUT/.lock, shared with decontaminate) -------------------
def _lock_file(out, pid: int, host: str):
    import json as _json

    out.mkdir(parents=True, exist_ok=True)
    p = out / ".lock"
    p.write_text(_json.dumps({"pid": pid, "host": host, "started": "2024-01-01T00:00:00+00:00", "run_id": "x"}))
    return p


def test_a_second_data_run_on_the_same_output_is_refused(tmp_path, capsys):
    """A live run's lock (this process: alive) stops a second run before it touches the folder; a
    lock of a run that is gone is removed with a note; the lock is held during the run and removed
    after it, also when the run fails."""
    import os
    import socket
    import subprocess
    import sys

    import qwen25.data.pipeline.job as job
    from qwen25.cli import main
    from qwen25.errors import Qwen25IOError

    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0))
    out = tmp_path / "out"
    lock = _lock_file(out, os.getpid(), socket.gethostname())
    with pytest.raises(Qwen25IOError, match="another data run holds"):
        run_pipeline(cfg, progress=False)
    assert main(["data", "run", str(cfg), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{lock}: another data run holds this output folder (pid {os.getpid()}" in err and "Traceback" not in err
    assert lock.exists() and sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_file(out, dead.pid, socket.gethostname())
    seen = []
    real = job.scan

    def spy(ctx):
        seen.append(json.loads((out / ".lock").read_text())["pid"])
        return real(ctx)

    job._RUN["scan"] = spy
    try:
        run_pipeline(cfg)
    finally:
        job._RUN["scan"] = real
    assert seen == [os.getpid()]  # this run's lock while it worked
    assert f"removed the stale lock {lock} of pid {dead.pid}" in capsys.readouterr().err
    assert not lock.exists()
    (tmp_path / "code" / "c.jsonl").write_text("{not json\n")
    with pytest.raises(Exception):  # a failed run lets go of the folder too
        run_pipeline(cfg, progress=False)
    assert not lock.exists()
