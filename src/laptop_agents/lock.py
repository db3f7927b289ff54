"""One session per workspace.

Two sessions on one workspace would share ``state.db`` and the kill file, and
could place the same order twice. So a session holds ``<workspace>/lock`` for
its whole life.

Why an OS file lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows)
and not only a PID file created with ``O_CREAT|O_EXCL``:

* the kernel drops the lock the instant its process dies, even on SIGKILL or
  a power-cut-free crash, so a *stale* lock can never block a start and taking
  it over is simply acquiring it: there is no "check the PID, then delete the
  file, then create it" sequence in which two starters can both win;
* deciding staleness from a PID alone is a guess (PIDs are recycled); the OS
  lock is the authority, and the PID/create-time record written inside the
  file is only for humans and for :meth:`WorkspaceLock.holder`, which checks
  the PID *and* the process create time so a recycled PID is not mistaken for
  the holder.

The file is never deleted (deleting a locked file lets a late opener lock the
orphaned inode while a third process locks a new file: two winners). On
release it is emptied instead; a file that still names a dead process is what
a crashed or killed session leaves behind and is reported as stale.

On Windows ``msvcrt.locking`` is a mandatory byte-range lock, so the lock is
taken on one byte far past the end of the record: other processes can still
read who holds it.

Limits: like every advisory lock this does not work across hosts on a network
file system; the workspace is expected to be a local directory.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import psutil

from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.exit_codes import ExitCode
from laptop_agents.logs import scrub
from laptop_agents.wallclock import now_ms

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

# Windows: the locked byte lies far beyond any record we write.
_WIN_LOCK_OFFSET = 1 << 30
# A reader may see the file between the holder's truncate and write.
_READ_RETRIES = 20
_READ_RETRY_SLEEP_S = 0.01
_CREATE_TIME_TOLERANCE_S = 1.0


class AlreadyRunningError(LaptopAgentsError):
    """Another live process holds the workspace lock (exit code ALREADY_RUNNING)."""

    exit_code: ClassVar[int] = ExitCode.ALREADY_RUNNING

    def __init__(self, path: Path, holder: dict[str, Any] | None, what: str = "session") -> None:
        self.path = path
        self.holder = holder
        self.pid: int | None = holder.get("pid") if holder else None
        if self.pid is not None:
            since = holder.get("started_at", "?") if holder else "?"
            who = f"pid {self.pid}, started {since}"
        else:
            who = "pid unknown"
        super().__init__(
            f"another {what} is already running on this workspace ({who}); lock file {path} "
            f"- stop it with `laptop-agents stop` or use another --workspace"
        )


def process_create_time(pid: int) -> float | None:
    """The process start time psutil reports, or None if there is no such process."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return None


def pid_alive(pid: int, create_time: float | None = None) -> bool:
    """True if ``pid`` runs and (when given) started at ``create_time``.

    The create-time comparison is what tells a recycled PID from the holder.
    A process we may not inspect (AccessDenied) is assumed alive: refusing
    too much is safer than letting a second session start.
    """
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is None:
            return True
        return abs(proc.create_time() - create_time) <= _CREATE_TIME_TOLERANCE_S
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _try_os_lock(fd: int) -> bool:
    """Take the OS lock without waiting; False if another holder has it."""
    if sys.platform == "win32":
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True
    else:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:  # BlockingIOError (EWOULDBLOCK); some systems say EACCES
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True


def _os_unlock(fd: int) -> None:
    if sys.platform == "win32":
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _read_record(path: Path, *, expect_holder: bool = False) -> dict[str, Any] | None:
    """The holder record in the file, or None if the file is missing or empty.

    With ``expect_holder`` (we just failed to take the lock, so someone holds
    it) an empty or half-written file means we caught the holder between its
    truncate and its write: look again briefly before giving up.
    """
    tries = _READ_RETRIES if expect_holder else 1
    for attempt in range(tries):
        if attempt:
            time.sleep(_READ_RETRY_SLEEP_S)
        try:
            text = path.read_bytes().decode("utf-8", errors="replace").strip()
        except FileNotFoundError:
            return None
        except PermissionError:
            continue
        if not text:
            if expect_holder:
                continue
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    return {"pid": None, "unreadable": True}


def _with_liveness(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    pid = record.get("pid")
    host = record.get("host")
    if not isinstance(pid, int):
        out["alive"] = None
    elif host and host != socket.gethostname():
        out["alive"] = None  # another machine's PID cannot be checked from here
    else:
        ct = record.get("create_time")
        out["alive"] = pid_alive(pid, float(ct) if isinstance(ct, int | float) else None)
    return out


class WorkspaceLock:
    """The single-instance lock of one workspace.

    ``acquire()`` either returns (the lock is ours until ``release()`` or
    process death) or raises :class:`AlreadyRunningError`. There is
    deliberately no ``__del__``: an object dropped without ``release()``
    keeps the lock until the process exits, which is the safe failure. It returns the
    record of a previous holder that died without releasing (a stale lock that
    was taken over), so the caller can log it, or None.
    """

    def __init__(self, path: Path, what: str = "session") -> None:
        self.path = Path(path)
        self.what = what  # named in the refusal message
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> dict[str, Any] | None:
        if self._fd is not None:
            raise RuntimeError(f"workspace lock {self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o644)
        try:
            if not _try_os_lock(fd):
                record = _read_record(self.path, expect_holder=True)
                raise AlreadyRunningError(self.path, _with_liveness(record) if record else None, self.what)
            previous = self._read_fd(fd)
            self._write_record(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.took_over = _with_liveness(previous) if previous else None
        return self.took_over

    def release(self) -> None:
        """Empty the record and drop the lock; a no-op if not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass  # a full disk must not keep the lock: the OS lock is what counts
            _os_unlock(fd)
        finally:
            os.close(fd)

    def in_use(self) -> bool:
        """True if another process holds the lock now (a live session or watchdog).

        The OS lock is the authority: it is probed without waiting and given
        back at once, and the record is neither written nor created. Only when
        the file cannot be opened for that (a read-only workspace) does the
        holder record's live-PID check decide; a holder whose liveness cannot
        be told counts as running, the safe side for ``stop``.
        """
        flags = os.O_RDWR | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return False
        except OSError:
            record = self.holder()
            return record is not None and record.get("alive") is not False and record.get("pid") is not None
        try:
            if _try_os_lock(fd):
                _os_unlock(fd)
                return False
            return True
        finally:
            os.close(fd)

    def holder(self) -> dict[str, Any] | None:
        """Who holds (or last held) the lock: the record plus ``alive``.

        ``alive`` is True for a running holder, False for a stale record left
        by a process that died (or whose PID now belongs to another process),
        None when it cannot be told (unreadable record, other host).
        Returns None when no record exists (never locked, or released cleanly).
        """
        record = _read_record(self.path)
        return _with_liveness(record) if record is not None else None

    def _read_fd(self, fd: int) -> dict[str, Any] | None:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", errors="replace").strip()
        if not text:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {"pid": None, "unreadable": True}
        return data if isinstance(data, dict) else {"pid": None, "unreadable": True}

    def _write_record(self, fd: int) -> None:
        pid = os.getpid()
        started = now_ms()
        record = {
            "pid": pid,
            "create_time": process_create_time(pid),
            "host": socket.gethostname(),
            "started_at": ms_to_iso(started, "seconds"),
            "started_ms": started,
            "argv": scrub(" ".join(sys.argv)),
            "workspace": str(self.path.parent),
        }
        data = (json.dumps(record) + "\n").encode("utf-8")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
        os.fsync(fd)

    def __enter__(self) -> WorkspaceLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
