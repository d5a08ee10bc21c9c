"""`qwen25 decontaminate` reruns without fear: a shard is resumed only when its input and the
options that change results are unchanged (else redone, saying why); the output folder holds only
the current run's shards; the report names the run and its inputs' fingerprints (checked with
xxhash and os.stat directly); a lock file stops two runs on one folder and goes away at the end,
also on error."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

from qwen25.cli import main
from qwen25.data.decontam_job import run_job

RND = random.Random(11)


def _words(n: int, alpha: str = "abcdefghijklmnopqrstuvwxyz") -> str:
    return " ".join("".join(RND.choice(alpha) for _ in range(RND.randrange(3, 9))) for _ in range(n))


ITEMS = [_words(40) for _ in range(3)]
PLAIN = [_words(20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(30)]


def _corpus(tmp: Path, shards: dict[str, list[str]]) -> None:
    for name, texts in shards.items():
        p = tmp / "corpus" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (tmp / "tests.jsonl").write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(ITEMS)))


def _default_shards() -> dict[str, list[str]]:
    return {
        "a.jsonl": [PLAIN[0], f"{PLAIN[1]} {ITEMS[0]}", PLAIN[2]],
        "b.jsonl": [PLAIN[3], PLAIN[4]],
        "sub/c.jsonl": [f"{ITEMS[1]} {PLAIN[5]}", PLAIN[6], f"{ITEMS[2]}"],
    }


def _cli(tmp: Path, capsys: pytest.CaptureFixture[str], *args: str, out: str = "out") -> tuple[int, str, str]:
    rc = main(["decontaminate", "--train", str(tmp / "corpus" / "**" / "*.jsonl"), "--test", str(tmp / "tests.jsonl"),
               "--out", str(tmp / out), "--no-progress", *args])
    o = capsys.readouterr()
    return rc, o.out, o.err


def _report(tmp: Path, out: str = "out") -> dict:
    return json.loads((tmp / out / "report.json").read_text())


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)).replace(os.sep, "/") for p in root.rglob("*") if p.is_file())


def _redone(rep: dict) -> dict[str, str | None]:
    return {s["shard"]: (None if s["resumed"] else s.get("redone", "new")) for s in rep["shards"]}


def test_rerun_resumes_and_the_report_names_the_run(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    rc, out, err = _cli(tmp_path, capsys)
    assert rc == 0, err
    rep = _report(tmp_path)
    assert _redone(rep) == {"a.jsonl": "new", "b.jsonl": "new", "sub/c.jsonl": "new"}
    run = rep["run"]
    assert run["id"] and run["started"] <= run["finished"]
    assert run["options"]["window"] == "auto" and run["options"]["batch_size"] == 2048
    for inp in run["inputs"]:
        p = tmp_path / "corpus" / inp["shard"]
        assert inp["size"] == p.stat().st_size and inp["mtime_ns"] == p.stat().st_mtime_ns
        assert inp["digest"] == xxhash.xxh3_128(p.read_bytes()).hexdigest()
        assert inp["digest_algorithm"] == "xxh3-128"
    before = {f: (tmp_path / "out" / f).read_bytes() for f in _files(tmp_path / "out") if f != "report.json"}
    rc, out, err = _cli(tmp_path, capsys, "--batch-size", "1", "--num-threads", "1")  # no decision changes
    assert rc == 0, err
    rep2 = _report(tmp_path)
    assert _redone(rep2) == {"a.jsonl": None, "b.jsonl": None, "sub/c.jsonl": None}
    assert rep2["run"]["id"] != run["id"]
    assert rep2["removed"] == rep["removed"] and rep2["counts"] == rep["counts"]
    assert {f: (tmp_path / "out" / f).read_bytes() for f in before} == before
    assert "3 resumed" in out


def test_changed_input_redoes_its_shard_only(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    assert _cli(tmp_path, capsys)[0] == 0
    a, b = tmp_path / "corpus" / "a.jsonl", tmp_path / "corpus" / "b.jsonl"
    # same size, same mtime, other bytes: only the content hash can tell
    st = a.stat()
    data = a.read_bytes()
    swapped = data.replace(PLAIN[0].encode(), PLAIN[0].upper().swapcase().encode()[::-1], 1)
    assert len(swapped) == len(data) and swapped != data
    a.write_bytes(swapped)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    # b: touched only (its bytes unchanged, its mtime not)
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))
    rc, out, err = _cli(tmp_path, capsys)
    assert rc == 0, err
    red = _redone(_report(tmp_path))
    assert red["a.jsonl"] == "the input's content changed (its xxh3-128 digest differs)"
    assert red["b.jsonl"].startswith("the input's modification time changed")
    assert red["sub/c.jsonl"] is None
    assert "shard a.jsonl: redone: the input's content changed" in err + out
    assert (tmp_path / "out" / "clean" / "a.jsonl").read_bytes().startswith(swapped.splitlines(True)[0])
    # a size change
    with open(b, "a") as f:
        f.write(json.dumps({"text": ITEMS[2]}) + "\n")
    rc, out, err = _cli(tmp_path, capsys)
    rep = _report(tmp_path)
    assert _redone(rep)["b.jsonl"].startswith("the input's size changed")
    assert [r["shard"] for r in rep["removed"]].count("b.jsonl") == 1


@pytest.mark.parametrize("args,key", [
    (["--skip-bad"], "skip_bad"),
    (["--encoding-errors", "replace"], "encoding_errors"),
    (["--field", "body"], "field"),
    (["--mode", "lcs"], "mode"),
    (["--ngram", "8"], "ngram"),
    (["--lcs-min", "20"], "lcs_min"),
    (["--lcs-ratio", "0.7"], "lcs_ratio"),
    (["--window", "none"], "window"),
    (["--window", "64"], "window"),
])
def test_changed_options_redo_every_shard_saying_which(tmp_path, capsys, args, key):
    shards = _default_shards()
    _corpus(tmp_path, shards)
    if key == "field":  # the same texts under another field
        for name, texts in shards.items():
            (tmp_path / "corpus" / name).write_text("".join(json.dumps({"text": t, "body": t}) + "\n" for t in texts))
    assert _cli(tmp_path, capsys)[0] == 0
    rc, out, err = _cli(tmp_path, capsys, *args)
    assert rc == 0, err
    red = _redone(_report(tmp_path))
    assert all(v is not None and v.startswith("the options changed (") and f"{key}: " in v for v in red.values()), red
    assert f"redone: the options changed ({key}: " in out


def test_changed_test_set_redoes_every_shard(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    assert _cli(tmp_path, capsys)[0] == 0
    t = tmp_path / "tests.jsonl"
    t.write_text(t.read_text().replace(ITEMS[2], ITEMS[2][::-1]))
    rc, out, err = _cli(tmp_path, capsys)
    assert rc == 0, err
    rep = _report(tmp_path)
    assert set(_redone(rep).values()) == {"the options changed (the test items)"}
    assert rep["counts"]["removed"] == 2  # ITEMS[2] reversed no longer matches the third shard's record


def test_missing_output_redoes_the_shard(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    assert _cli(tmp_path, capsys)[0] == 0
    (tmp_path / "out" / "removed" / "sub" / "c.jsonl").unlink()
    assert _cli(tmp_path, capsys)[0] == 0
    red = _redone(_report(tmp_path))
    assert red == {"a.jsonl": None, "b.jsonl": None, "sub/c.jsonl": "its output removed/sub/c.jsonl is missing or changed"}
    assert (tmp_path / "out" / "removed" / "sub" / "c.jsonl").read_text().count("\n") == 2


def test_the_folder_holds_only_this_runs_shards(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    (tmp_path / "corpus" / "bad.jsonl").write_text('{"text": "x"}\n{oops\n')
    assert _cli(tmp_path, capsys, "--skip-bad")[0] == 0
    assert "bad/bad.jsonl.jsonl" in _files(tmp_path / "out")
    (tmp_path / "corpus" / "bad.jsonl").unlink()
    (tmp_path / "corpus" / "sub" / "c.jsonl").unlink()
    (tmp_path / "out" / "clean" / ".tmp-a.jsonl").write_text("left by a killed run")
    rc, out, err = _cli(tmp_path, capsys, "--skip-bad")
    assert rc == 0, err
    rep = _report(tmp_path)
    gone = ["bad/bad.jsonl.jsonl", "clean/.tmp-a.jsonl", "clean/bad.jsonl", "clean/sub/c.jsonl", "removed/bad.jsonl",
            "removed/sub/c.jsonl", ".state/bad.jsonl.json", ".state/sub/c.jsonl.json"]
    assert rep["stale_removed"] == sorted(gone)
    assert _files(tmp_path / "out") == sorted([
        ".state/a.jsonl.json", ".state/b.jsonl.json", "clean/a.jsonl", "clean/b.jsonl", "removed/a.jsonl",
        "removed/b.jsonl", "report.json"])
    assert not (tmp_path / "out" / "clean" / "sub").exists()
    assert "removed 8 file(s) of shards not in this run's input" in out


def test_a_failed_run_leaves_no_report_of_an_earlier_run(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    assert _cli(tmp_path, capsys)[0] == 0
    (tmp_path / "corpus" / "z.jsonl").write_text("{oops\n")
    rc, _, err = _cli(tmp_path, capsys)
    assert rc == 1 and "z.jsonl:1: malformed JSON" in err
    assert not (tmp_path / "out" / "report.json").exists()
    assert not (tmp_path / "out" / ".lock").exists()
    assert not (tmp_path / "out" / ".state" / "z.jsonl.json").exists()


# -- the lock ------------------------------------------------------------------------------------
def _lock(tmp: Path, pid: int, host: str) -> Path:
    p = tmp / "out" / ".lock"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"pid": pid, "host": host, "started": "2024-01-01T00:00:00+00:00", "run_id": "x"}))
    return p


def test_a_live_lock_stops_a_second_run(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    lock = _lock(tmp_path, os.getpid(), socket.gethostname())  # this very process: alive
    rc, _, err = _cli(tmp_path, capsys)
    assert rc == 1 and "Traceback" not in err
    line = err.strip()
    assert len(line.splitlines()) == 1
    assert f"{lock}: another decontaminate run holds this output folder (pid {os.getpid()}" in line
    assert f"remove {lock} and rerun" in line
    assert lock.exists()  # not ours to remove
    assert not (tmp_path / "out" / "clean").exists()


def test_a_lock_from_another_host_is_not_broken(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    lock = _lock(tmp_path, 1, "some-other-host.invalid")
    rc, _, err = _cli(tmp_path, capsys)
    assert rc == 1
    assert "runs on host some-other-host.invalid, not this one" in err and f"remove {lock}" in err
    assert lock.exists()


def test_a_stale_local_lock_is_broken_with_a_note(tmp_path, capsys):
    _corpus(tmp_path, _default_shards())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = _lock(tmp_path, dead.pid, socket.gethostname())
    rc, out, err = _cli(tmp_path, capsys)
    assert rc == 0, err
    assert f"removed the stale lock {lock} of pid {dead.pid}" in err
    assert any(f"pid {dead.pid}" in n for n in _report(tmp_path)["notes"])
    assert not lock.exists()


def test_the_lock_is_held_during_the_run_and_removed_after(tmp_path, monkeypatch):
    _corpus(tmp_path, _default_shards())
    import qwen25.data.decontam_job as job

    seen = []
    real = job._process_jsonl

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        held = json.loads((tmp_path / "out" / ".lock").read_text())
        seen.append((held["pid"], held["host"]))
        return real(*a, **k)

    monkeypatch.setattr(job, "_process_jsonl", spy)
    rep = run_job(train=[str(tmp_path / "corpus" / "**" / "*.jsonl")], tests=[str(tmp_path / "tests.jsonl")],
                  out=str(tmp_path / "out"), progress=False, log=lambda s: None)
    assert seen == [(os.getpid(), socket.gethostname())] * 3
    assert not (tmp_path / "out" / ".lock").exists()
    assert rep["counts"]["removed"] == 3


def test_the_next_shard_is_opened_ahead_and_every_reader_is_closed(tmp_path, monkeypatch):
    """A shard's reader is opened while the shard before it is judged (its reading overlaps), only
    for shards that are redone, and every reader opened is closed, also when a shard fails."""
    import qwen25.data.decontam_job as job

    shards = {"a.jsonl": [PLAIN[0], PLAIN[1]], "b.jsonl": [PLAIN[2]], "c.jsonl": [PLAIN[3]], "d.jsonl": [PLAIN[4]]}
    _corpus(tmp_path, shards)
    events: list[tuple[str, str]] = []
    real_open, real_proc = job._open_jsonl, job._process_jsonl

    class Spy:
        def __init__(self, r, name):  # type: ignore[no-untyped-def]
            self.r, self.name = r, name

        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(self.r)

        def __getattr__(self, k):  # type: ignore[no-untyped-def]
            return getattr(self.r, k)

        def close(self):  # type: ignore[no-untyped-def]
            events.append(("close", self.name))
            self.r.close()

    def spy_open(path, opts):  # type: ignore[no-untyped-def]
        events.append(("open", os.path.basename(path)))
        r, before = real_open(path, opts)
        return Spy(r, os.path.basename(path)), before

    def spy_proc(d, path, *a):  # type: ignore[no-untyped-def]
        events.append(("judge", os.path.basename(path)))
        return real_proc(d, path, *a)

    monkeypatch.setattr(job, "_open_jsonl", spy_open)
    monkeypatch.setattr(job, "_process_jsonl", spy_proc)
    kw = dict(train=[str(tmp_path / "corpus" / "*.jsonl")], tests=[str(tmp_path / "tests.jsonl")],
              out=str(tmp_path / "out"), progress=False, log=lambda s: None)
    run_job(**kw)
    assert [e for e in events if e[0] != "close"] == [
        ("open", "a.jsonl"), ("open", "b.jsonl"), ("judge", "a.jsonl"), ("open", "c.jsonl"), ("judge", "b.jsonl"),
        ("open", "d.jsonl"), ("judge", "c.jsonl"), ("judge", "d.jsonl")]
    assert sorted(n for e, n in events if e == "close") == sorted(shards)
    # a rerun with b.jsonl changed: only b is redone, so only b is opened
    events.clear()
    (tmp_path / "corpus" / "b.jsonl").write_text(json.dumps({"text": PLAIN[5]}) + "\n")
    run_job(**kw)
    assert events == [("open", "b.jsonl"), ("judge", "b.jsonl"), ("close", "b.jsonl")]
    # b.jsonl bad: the run fails in b while c's reader is open ahead; both are closed
    events.clear()
    for name in ("a.jsonl", "c.jsonl"):
        (tmp_path / "corpus" / name).write_text(json.dumps({"text": PLAIN[6] + name}) + "\n")
    (tmp_path / "corpus" / "b.jsonl").write_text("{not json\n")
    with pytest.raises(Exception, match="b.jsonl:1"):
        run_job(**kw)
    assert ("open", "c.jsonl") in events and sorted(n for e, n in events if e == "close") == ["a.jsonl", "b.jsonl", "c.jsonl"]
