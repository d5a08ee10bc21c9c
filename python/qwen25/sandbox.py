"""Run untrusted Python code: a subprocess jail for execution feedback (rejection sampling, RL
rewards, code evaluation).

    >>> from qwen25.sandbox import run_python, run_tests
    >>> run_python("print(1 + 1)").stdout                                        # doctest: +SKIP
    '2\\n'
    >>> run_tests("def add(a, b):\\n    return a + b", "assert add(2, 3) == 5").passed  # doctest: +SKIP
    True

Each run gets, on Linux:

* its own session and process group, and new PID and network namespaces where the kernel allows
  them (``unshare``; with a user namespace when not root). The code runs three processes below
  the one ``subprocess`` starts: a namespace init, a supervisor that is the code's parent, and the
  code itself. When the init ends, the kernel kills everything left in the namespace, so
  background children, fork bombs and processes that ``setsid()`` away die with the run; processes
  outside the namespace (the caller) cannot be seen or signalled. No network: only a loopback
  interface that is down.
* privileges dropped when the caller is root: a fresh unprivileged uid/gid per run (no
  supplementary groups), so the code cannot write the caller's files (only its temporary working
  directory, which it owns) nor signal the caller's processes; ``RLIMIT_NPROC`` then counts
  exactly this run's processes. The interpreter must be reachable by that uid: the current one
  if it is, else a system ``python3`` (``python=`` chooses).
* Landlock where the kernel has it (5.13+): nothing may be created, written, truncated, renamed
  or removed outside the working directory (``/dev/null`` aside), whoever owns it, so even
  world-writable places (``/tmp``, ``/dev/shm``) and, without root, the caller's own files are
  out of reach. Reading is not restricted.
* resource limits: ``RLIMIT_AS`` (``memory_mb``), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``,
  ``RLIMIT_NPROC``, no core files; a wall-clock ``timeout`` after which the whole process group is
  killed (and, without namespaces, every process of the run's uid); stdout and stderr are kept up
  to ``max_output_bytes`` each (the rest is read and discarded, so a flood cannot stall or fill
  the caller).
* a temporary working directory (``HOME`` and ``TMPDIR`` too), removed afterwards; a minimal
  environment; ``python -I -S -B`` (no site-packages: the standard library only).

``SandboxResult.isolation`` says which of these the run got (``"uid+pidns+netns+landlock"`` when
root, ``"userns+pidns+netns+landlock"`` when not). Without root the code runs as the caller's uid
inside a user namespace: it still cannot see or signal the caller, nor reach the network, and
Landlock keeps it off the caller's files; without Landlock it could write what the caller can
write. Without namespaces (other platforms, locked-down containers) only the process group, the
limits, Landlock and the uid (when root) remain; ``require_isolation=True`` refuses such runs.

``status`` is ``"ok"`` only when the code ran to its end: an exception or ``sys.exit(...)`` (any
code, 0 included) is ``"error"``, and so is an ``os._exit`` before the end (the supervisor waits
for a completion note the code's wrapper writes after the last statement). A ``MemoryError`` is
``"memory"``, the time limit ``"timeout"``, a signal ``"killed"``. This guards against code that
stops early; it is not a defence against code that reads the wrapper's memory to forge the note.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from .errors import Qwen25ValueError

__all__ = ["SandboxResult", "run_python", "run_tests", "STATUSES", "isolation_available"]

STATUSES = ("ok", "error", "timeout", "memory", "killed")

# exit codes the wrapper, the supervisor and the init pass up (a signal s becomes 64 + s)
_EXC, _SYSEXIT, _MEMORY, _EARLY = 10, 11, 12, 13
_SIG_BASE = 64

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run did. ``status`` is one of :data:`STATUSES`; ``seconds`` is wall time;
    ``detail`` says why a run that is not ``"ok"`` failed; ``truncated`` is True when output past
    ``max_output_bytes`` was dropped; ``isolation`` names the barriers the run had."""

    status: str
    stdout: str
    stderr: str
    seconds: float
    detail: str = ""
    returncode: int | None = None
    truncated: bool = False
    isolation: str = ""
    run_id: str = ""  # the run's QWEN25_SANDBOX_RUN environment value (find its processes by it)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def passed(self) -> bool:
        """For :func:`run_tests`: the code and its tests ran to the end without an error."""
        return self.status == "ok"


# ------------------------------------------------------------------------------ the runner
# Run by the sandbox's interpreter as ``python -I -S -B -c _RUNNER``; argv[1] is the code file.
# It is the process subprocess starts (outside the new PID namespace, whose first process is its
# child): outer -> init (PID 1 of the namespace) -> supervisor -> code.
_RUNNER = r"""
import os, sys
SIG = 64
def code_of(st):
    if os.WIFSIGNALED(st):
        return SIG + os.WTERMSIG(st)
    return os.WEXITSTATUS(st) if os.WIFEXITED(st) else 1
path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    source = f.read()
sys.argv = [path]
init = os.fork()
if init:
    _, st = os.waitpid(init, 0)
    os._exit(code_of(st))
sup = os.fork()
if sup:
    while True:  # PID 1 reaps every orphan until the supervisor ends
        pid, st = os.wait()
        if pid == sup:
            os._exit(code_of(st))
r, w = os.pipe()
user = os.fork()
if user:
    os.close(w)
    _, st = os.waitpid(user, 0)
    done = os.read(r, 1) == b"1"
    c = code_of(st)
    os._exit(13 if c == 0 and not done else c)
os.close(r)
import builtins, traceback
if os.environ.get("QWEN25_SANDBOX_GUARD") == "1":
    import _posixsubprocess
    def disabled(name):
        def f(*a, **k):
            raise PermissionError("%s is disabled in the sandbox (guard=True)" % name)
        return f
    for name in ("system", "popen", "fork", "forkpty", "kill", "killpg", "execv", "execve", "execl", "execle",
                 "execlp", "execlpe", "execvp", "execvpe", "spawnv", "spawnve", "spawnl", "spawnle", "spawnlp",
                 "spawnlpe", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "putenv", "unsetenv",
                 "setsid", "setpgid"):
        if hasattr(os, name):
            setattr(os, name, disabled("os." + name))
    _posixsubprocess.fork_exec = disabled("subprocess")
try:
    code = compile(source, path, "exec")
    g = {"__name__": "__main__", "__file__": path, "__builtins__": builtins}
    del source
    exec(code, g)
except MemoryError as e:
    try:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # from the code's frame on
    except BaseException:
        pass
    status = 12
except SystemExit as e:
    try:
        sys.stderr.write("sandbox: the code called sys.exit(%r) before its end\n" % (e.code,))
    except BaseException:
        pass
    status = 11
except BaseException as e:
    try:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
    except BaseException:
        pass
    status = 10
else:
    status = 0
try:
    sys.stdout.flush()
    sys.stderr.flush()
except BaseException:
    status = status or 10
if status == 0:
    os.write(w, b"1")
os._exit(status)
"""


# ---------------------------------------------------------------------------- the platform
@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - no libc
        return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _ns_flags() -> int:
    flags = _CLONE_NEWPID | _CLONE_NEWNET
    return flags if _is_root() else flags | _CLONE_NEWUSER


@functools.lru_cache(maxsize=1)
def isolation_available() -> bool:
    """Whether this process may create the PID and network namespaces the sandbox asks for."""
    if _libc() is None:
        return False
    try:
        r = subprocess.run(["true"], preexec_fn=_unshare_or_fail, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def _unshare_or_fail() -> None:  # runs in the forked child
    libc = _libc()
    if libc is None or libc.unshare(_ns_flags()) != 0:
        os._exit(97)


# Landlock (Linux 5.13+): the code may write only inside its working directory (and /dev/null).
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LL_WRITE_FILE, _LL_REMOVE_DIR, _LL_REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
_LL_MAKE = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
_LL_REFER, _LL_TRUNCATE = 1 << 13, 1 << 14
_PR_SET_NO_NEW_PRIVS = 38


@functools.lru_cache(maxsize=1)
def _landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none). x86-64 and arm64 share the syscall numbers."""
    libc = _libc()
    if libc is None or os.uname().machine not in ("x86_64", "aarch64"):
        return 0
    v = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(v) if v > 0 else 0


def _landlock_writes_only_in(work: str) -> Callable[[], None] | None:
    """A function for the child (before exec) that forbids writing outside ``work``: creating,
    removing, renaming, linking, truncating or opening for writing anywhere else (reads are not
    restricted). None when the kernel has no Landlock."""
    abi = _landlock_abi()
    if abi < 1:
        return None
    libc = _libc()
    handled = _LL_WRITE_FILE | _LL_REMOVE_DIR | _LL_REMOVE_FILE | _LL_MAKE
    if abi >= 2:
        handled |= _LL_REFER
    if abi >= 3:
        handled |= _LL_TRUNCATE
    ruleset_attr = ctypes.c_uint64(handled)  # struct landlock_ruleset_attr's first field (size 8)
    dir_rule = (ctypes.c_uint64 * 2)()  # struct landlock_path_beneath_attr, packed: u64 access, s32 fd
    file_rule = (ctypes.c_uint64 * 2)()
    file_access = _LL_WRITE_FILE | (_LL_TRUNCATE if abi >= 3 else 0)
    flags = os.O_PATH | os.O_CLOEXEC

    def apply() -> None:  # in the child
        ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(ruleset_attr), ctypes.c_size_t(8),
                               ctypes.c_uint32(0))
        if ruleset < 0:
            os._exit(99)
        for path, access, rule in ((work, handled, dir_rule), ("/dev/null", file_access, file_rule)):
            fd = os.open(path, flags)
            ctypes.memmove(ctypes.addressof(rule), ctypes.byref(ctypes.c_uint64(access)), 8)
            ctypes.memmove(ctypes.addressof(rule) + 8, ctypes.byref(ctypes.c_int32(fd)), 4)
            if libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                            ctypes.c_uint32(0)) != 0:
                os._exit(99)
            os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
                libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            os._exit(99)
        os.close(ruleset)

    return apply


def _candidate_pythons() -> list[str]:
    out = [sys.executable, getattr(sys, "_base_executable", "") or ""]
    for name in ("python3", "python"):
        for d in ("/usr/bin", "/usr/local/bin", "/bin"):
            out.append(os.path.join(d, name))
    seen, uniq = set(), []
    for p in out:
        if p and p not in seen and os.path.isfile(p):
            seen.add(p)
            uniq.append(p)
    return uniq


@functools.lru_cache(maxsize=4)
def _python_for(uid: int | None) -> str:
    """The first interpreter that runs as ``uid`` (None: as the caller)."""
    probe_uid = uid
    for exe in _candidate_pythons():
        def drop() -> None:
            if probe_uid is not None:
                os.setgroups([])
                os.setgid(probe_uid)
                os.setuid(probe_uid)
        try:
            r = subprocess.run([exe, "-I", "-S", "-B", "-c", "import sys; assert sys.version_info >= (3, 8)"],
                               preexec_fn=drop, capture_output=True, timeout=30, cwd="/")
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return exe
    who = f"uid {uid}" if uid is not None else "this user"
    raise Qwen25ValueError(f"sandbox: no Python interpreter can run as {who} (tried {_candidate_pythons()}); "
                           "pass python= an interpreter every user may execute")


def _probe_uid() -> int:
    return 0x7FFF0000  # fixed, never used by a run (runs pick random uids below it)


def _new_uid() -> int:
    return 0x10000000 + secrets.randbelow(0x60000000)


# ---------------------------------------------------------------------------------- run
def _validate(code: Any, timeout: Any, memory_mb: Any, stdin: Any, max_output_bytes: Any) -> None:
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout <= 86400):
        raise Qwen25ValueError(f"timeout must be a number of seconds in (0, 86400], got {timeout!r}")
    if not (isinstance(memory_mb, int) and not isinstance(memory_mb, bool) and memory_mb >= 32):
        raise Qwen25ValueError(f"memory_mb must be an int >= 32, got {memory_mb!r}")
    if stdin is not None and not isinstance(stdin, (str, bytes)):
        raise TypeError(f"stdin must be str, bytes or None, not {type(stdin).__name__}")
    if not (isinstance(max_output_bytes, int) and max_output_bytes >= 0):
        raise Qwen25ValueError(f"max_output_bytes must be an int >= 0, got {max_output_bytes!r}")


def _pids_of(uid: int) -> list[int]:
    """Live processes (not zombies) whose real uid is ``uid``, from /proc (empty without /proc)."""
    pids = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as f:
                zombie = False
                for line in f:
                    if line.startswith("State:"):
                        zombie = line.split()[1] in ("Z", "X")  # dead, waiting to be reaped
                    elif line.startswith("Uid:"):
                        if int(line.split()[1]) == uid and not zombie:
                            pids.append(int(name))
                        break
        except (OSError, ValueError):
            continue
    return pids


def _kill_uid(uid: int) -> int:
    """SIGKILL every live process whose real uid is ``uid`` (root only); returns how many were found."""
    found = 0
    for _ in range(50):
        pids = _pids_of(uid)
        if not pids:
            return found
        found += len(pids)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
    return found


def run_python(code: str, *, timeout: float = 10.0, memory_mb: int = 512, stdin: str | bytes | None = None,
               max_output_bytes: int = 1 << 20, cpu_seconds: int | None = None, max_processes: int = 64,
               max_file_mb: int = 64, guard: bool = True, python: str | None = None,
               require_isolation: bool = False) -> SandboxResult:
    """Run ``code`` (a Python program) in the sandbox and return what happened (see the module
    docstring). Never raises for anything the code does; raises for bad arguments only.

    ``timeout``: wall-clock seconds; ``memory_mb``: the address-space limit of every process of the
    run; ``stdin``: the program's standard input; ``cpu_seconds``: RLIMIT_CPU (default: the
    timeout rounded up, plus 2); ``max_processes``: RLIMIT_NPROC for the run's own uid (without
    root: the caller's processes plus this many);
    ``guard``: replace the process functions (``os.system``, ``os.fork``, ``os.kill``, ``os.exec*``,
    ``subprocess``, ...) with ones that raise ``PermissionError``, as HumanEval's harness does, so
    code that reaches for them fails at once (a first line only: the kernel barriers above are
    what contain code that gets around it); ``python``: the interpreter (default: the current one
    when the run's user may execute it, else a system ``python3``)."""
    _validate(code, timeout, memory_mb, stdin, max_output_bytes)
    if os.name != "posix":  # pragma: no cover - the CI runs on Linux
        raise Qwen25ValueError("the sandbox needs a POSIX system (Linux for namespaces)")
    root = _is_root()
    uid = _new_uid() if root else None
    namespaces = isolation_available()
    if require_isolation and not (namespaces and root):
        raise Qwen25ValueError("sandbox: require_isolation=True, but this process cannot drop privileges "
                               f"(root: {root}) or create namespaces (available: {namespaces})")
    exe = python or _python_for(_probe_uid() if root else None)
    isolation = "+".join(x for x in (("uid" if root else ("userns" if namespaces else "")),
                                     "pidns" if namespaces else "", "netns" if namespaces else "",
                                     "landlock" if _landlock_abi() >= 1 else "") if x) or "rlimits"
    cpu = cpu_seconds if cpu_seconds is not None else int(timeout) + 2
    token = secrets.token_hex(8)
    work = tempfile.mkdtemp(prefix="qwen25-sandbox-")
    try:
        main = os.path.join(work, "main.py")
        with open(main, "w", encoding="utf-8") as f:
            f.write(code)
        stdin_path = os.path.join(work, ".stdin")
        data = stdin.encode("utf-8") if isinstance(stdin, str) else (stdin or b"")
        with open(stdin_path, "wb") as fb:
            fb.write(data)
        if uid is not None:
            for p in (work, main, stdin_path):
                os.chown(p, uid, uid)
        os.chmod(work, 0o700)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
               "QWEN25_SANDBOX_RUN": token, "QWEN25_SANDBOX_GUARD": "1" if guard else "0"}
        import resource

        limits = [(resource.RLIMIT_AS, memory_mb << 20), (resource.RLIMIT_CPU, cpu),
                  (resource.RLIMIT_FSIZE, max_file_mb << 20), (resource.RLIMIT_CORE, 0)]
        if uid is not None:
            limits.append((resource.RLIMIT_NPROC, max_processes))
        elif hasattr(os, "getuid"):  # the caller's uid: its processes count too, so allow them plus ours
            limits.append((resource.RLIMIT_NPROC, len(_pids_of(os.getuid())) + max_processes))
        libc = _libc()
        flags = _ns_flags()

        landlock = _landlock_writes_only_in(work)

        def preexec() -> None:  # in the child, before exec: no allocation-heavy work here
            if namespaces and libc.unshare(flags) != 0:
                os._exit(98)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            for res, value in limits:
                resource.setrlimit(res, (value, value))
            if landlock is not None:
                landlock()

        t0 = time.perf_counter()
        with open(stdin_path, "rb") as stdin_f:
            proc = subprocess.Popen([exe, "-I", "-S", "-B", "-c", _RUNNER, main], cwd=work, env=env,
                                    stdin=stdin_f, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, preexec_fn=preexec, close_fds=True)
        out, err, timed_out, truncated = _collect(proc, t0 + float(timeout), max_output_bytes, uid)
        seconds = time.perf_counter() - t0
        rc = proc.returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    status, detail = _status(rc, timed_out, timeout, stderr)
    return SandboxResult(status=status, stdout=stdout, stderr=stderr, seconds=seconds, detail=detail,
                         returncode=rc, truncated=truncated, isolation=isolation, run_id=token)


def _collect(proc: subprocess.Popen[bytes], deadline: float, limit: int, uid: int | None
             ) -> tuple[bytes, bytes, bool, bool]:
    """Read stdout/stderr (keeping ``limit`` bytes of each) until the process ends or the deadline;
    then kill the group (and the uid's processes) and reap."""
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    truncated = False
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    timed_out = False
    exited_at: float | None = None
    try:
        while sel.get_map():
            now = time.perf_counter()
            if exited_at is None:
                if now >= deadline:
                    timed_out = True
                    break
                try:  # has the outer process ended? (not reaped: its pid keeps naming the group)
                    if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                        exited_at = now
                        _kill_group(proc.pid, uid)  # stragglers may hold the pipes open
                except ChildProcessError:  # pragma: no cover - reaped elsewhere
                    exited_at = now
            elif now - exited_at > 1.0:
                break
            for key, _ in sel.select(0.02):
                fd = int(key.fd)
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    continue
                room = limit - len(bufs[fd])
                if room > 0:
                    bufs[fd] += chunk[:room]
                if len(chunk) > max(room, 0):
                    truncated = True
    finally:
        sel.close()
        _kill_group(proc.pid, uid)
        proc.wait()
        _kill_group(proc.pid, uid, group=False)
        proc.stdout.close()
        proc.stderr.close()
    return bytes(bufs[out_fd]), bytes(bufs[err_fd]), timed_out, truncated


def _kill_group(pgid: int, uid: int | None, group: bool = True) -> None:
    if group:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    if uid is not None:
        _kill_uid(uid)


def _status(rc: int | None, timed_out: bool, timeout: float, stderr: str) -> tuple[str, str]:
    if timed_out:
        return "timeout", f"still running after {timeout:g} s: the process group was killed"
    if rc is None:  # pragma: no cover - always reaped
        return "killed", "no exit status"
    if rc < 0:
        sig = -rc
        return "killed", f"the sandbox process died of signal {_signame(sig)}"
    if rc == 0:
        return "ok", ""
    if rc == _EXC:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "an exception"
        return "error", last
    if rc == _SYSEXIT:
        return "error", "the code called sys.exit() before its end"
    if rc == _MEMORY:
        return "memory", "MemoryError: the address-space limit was reached"
    if rc == _EARLY:
        return "error", "the code ended its process (os._exit) before its last statement"
    if rc == 98:
        return "error", "the sandbox could not create its namespaces"
    if rc == 99:
        return "error", "the sandbox could not apply its Landlock rules"
    if rc > _SIG_BASE:
        sig = rc - _SIG_BASE
        if sig == signal.SIGXCPU:
            return "timeout", "the CPU-time limit (RLIMIT_CPU) was reached"
        return "killed", f"a sandbox process died of signal {_signame(sig)}"
    return "error", f"exit status {rc}"


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def run_tests(code: str, tests: str, *, entry_point: str | None = None, timeout: float = 10.0,
              memory_mb: int = 512, **kwargs: Any) -> SandboxResult:
    """Run ``code`` followed by ``tests`` (asserts, or a HumanEval-style ``check(candidate)``
    function called on ``entry_point``) in one sandboxed program. ``result.passed`` is True only
    when everything ran to its end."""
    if not isinstance(tests, str):
        raise TypeError(f"tests must be a str, not {type(tests).__name__}")
    if entry_point is not None and not (isinstance(entry_point, str) and entry_point.isidentifier()):
        raise Qwen25ValueError(f"entry_point must be a Python identifier, got {entry_point!r}")
    program = code.rstrip("\n") + "\n\n\n" + tests.rstrip("\n") + "\n"
    if entry_point is not None:
        program += f"\n\ncheck({entry_point})\n"
    return run_python(program, timeout=timeout, memory_mb=memory_mb, **kwargs)
