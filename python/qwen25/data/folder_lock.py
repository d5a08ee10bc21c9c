"""One run at a time per output folder: ``OUT/.lock``, held by ``qwen25 decontaminate`` and
``qwen25 data run`` while they work on ``OUT``.

The lock is a file created with ``O_EXCL`` holding ``{"pid", "host", "started", "run_id"}``. A second
run on the same folder fails at once with :class:`~qwen25.errors.Qwen25IOError` naming the lock and
the run that holds it. A lock whose pid is not running on this host (a run that was killed) is stale:
it is removed, with a note, and the new run goes on. A lock held from another host is never taken
over (its pid cannot be checked from here)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..errors import Qwen25IOError

__all__ = ["LOCK_NAME", "FolderLock"]

LOCK_NAME = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


class FolderLock:
    """``out/.lock`` for the run ``run_id``; ``job`` names it in the error a second run gets
    (``another {job} holds this output folder``). ``log`` prints a note (the removal of a stale
    lock), which is also appended to ``notes``. ``release()`` removes the lock if it is still this
    run's (and never raises)."""

    def __init__(self, out: str, run_id: str, log: Callable[[str], None], notes: list[str], *, job: str) -> None:
        self.path = os.path.join(out, LOCK_NAME)
        self.run_id = run_id
        self.host = socket.gethostname()
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        body = json.dumps({"pid": os.getpid(), "host": self.host, "started": started, "run_id": run_id})
        for attempt in (0, 1):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = self._read()
                pid, host = held.get("pid"), held.get("host")
                if attempt == 0 and host == self.host and isinstance(pid, int) and not _pid_alive(pid):
                    os.remove(self.path)
                    note = f"removed the stale lock {self.path} of pid {pid}, which is not running on {host}"
                    notes.append(note)
                    log(f"note: {note}")
                    continue
                if not held:
                    raise Qwen25IOError(
                        f"{self.path}: the output folder is locked by a run whose lock cannot be read; if no "
                        f"run is using {out}, remove {self.path} and rerun"
                    ) from None
                state = "is still running" if host == self.host else f"runs on host {host}, not this one ({self.host})"
                raise Qwen25IOError(
                    f"{self.path}: another {job} holds this output folder (pid {pid} on {host}, "
                    f"started {held.get('started')}; pid {pid} {state}); wait for it, or if that run is gone, "
                    f"remove {self.path} and rerun"
                ) from None
            except OSError as e:  # a read-only or full disk
                raise Qwen25IOError(f"{self.path}: cannot be created ({e.strerror or e})") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body + "\n")
            return

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                v = json.load(f)
            return v if isinstance(v, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._read().get("run_id") == self.run_id:
            try:
                os.remove(self.path)
            except OSError:  # the run's own error (a disk gone read-only) says more; the lock left
                pass  # behind is stale once this process ends, and the next run removes it
