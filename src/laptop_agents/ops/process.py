"""Process control for the watchdog: start, signal, kill and wait for a child,
and route the watchdog's own stop signals -- the POSIX and Windows paths in one place.

The child runs in a process group of its own. On POSIX a terminal's Ctrl+C
(SIGINT to the foreground group) then reaches only the watchdog, which
forwards exactly one polite stop (no double signal); closing the terminal
hangs up the watchdog, which passes a SIGHUP on so the session stops as its
own hang-up would stop it. On Windows ``CREATE_NEW_PROCESS_GROUP`` lets
``CTRL_BREAK_EVENT`` address the child alone (the session treats SIGBREAK as
a graceful stop).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from enum import Enum
from types import FrameType
from typing import Any

from laptop_agents.interrupts import detach_from_terminal, terminal_fds


class Ended(Enum):
    """How :meth:`Child.end` finished."""

    EXITED = "exited"  # it stopped within the grace period
    ESCALATED = "escalated"  # a second stop request: killed without waiting longer
    TIMED_OUT = "timed_out"  # it did not stop within the grace period: killed


class Child:
    """One session process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @classmethod
    def spawn(cls, command: Sequence[str], env: dict[str, str] | None = None) -> Child:
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["process_group"] = 0
        return cls(subprocess.Popen(list(command), env=env, **kwargs))

    @property
    def pid(self) -> int:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.poll() is None

    def wait(self) -> int:
        """Its exit code (negative: the signal that killed it)."""
        return self._proc.wait()

    def polite_stop(self, *, hangup: bool = False) -> None:
        """Ask it to shut down gracefully (SIGTERM, or SIGHUP for a hang-up; CTRL_BREAK on Windows)."""
        try:
            if sys.platform == "win32":
                self._proc.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                self._proc.send_signal(signal.SIGHUP if hangup else signal.SIGTERM)
                # A stopped (SIGSTOP/SIGTSTP) child would keep the SIGTERM pending
                # forever; let it run so its graceful shutdown can happen.
                self._proc.send_signal(signal.SIGCONT)
        except OSError:  # it is gone already
            pass

    def kill(self) -> None:
        """Kill it outright (SIGKILL / TerminateProcess), as a crash."""
        try:
            self._proc.kill()
        except OSError:
            pass

    def end(self, grace: float, *, hangup: bool = False, escalate: Callable[[], bool] = lambda: False,
            poll_s: float = 0.05) -> Ended:
        """A polite stop, up to ``grace`` seconds (or until ``escalate()``) for it to exit, then a kill."""
        self.polite_stop(hangup=hangup)
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline:
            if escalate():
                self.kill()
                return Ended.ESCALATED
            time.sleep(poll_s)
        if self.running():
            self.kill()
            return Ended.TIMED_OUT
        return Ended.EXITED


def install_stop_handlers(on_stop: Callable[[bool], None]) -> Callable[[], None]:
    """Route SIGINT/SIGTERM (and SIGBREAK on Windows, SIGHUP on POSIX) to
    ``on_stop(hangup)``; returns a function that restores the previous handlers.

    On a hang-up the terminal is gone: the watchdog detaches from it first so
    that nothing it writes later fails on a dead terminal.
    """
    tty_fds = terminal_fds()
    sighup = getattr(signal, "SIGHUP", None)

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == sighup:
            detach_from_terminal(tty_fds)
        on_stop(signum == sighup)

    signums = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        signums.append(signal.SIGBREAK)
    if sighup is not None:
        signums.append(sighup)
    previous = {signum: signal.signal(signum, handler) for signum in signums}

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore
