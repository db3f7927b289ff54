"""The watchdog's process control: which signal a child gets, and when it is killed."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.ops.process import Child, Ended

posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


class FakePopen:
    """Records what was sent; exits ``exits_after`` polls after a polite signal (never, if None)."""

    pid = 4242

    def __init__(self, exits_after: int | None) -> None:
        self.sent: list[Any] = []
        self.exits_after = exits_after
        self.polls_since_signal: int | None = None
        self.returncode: int | None = None

    def send_signal(self, sig: int) -> None:
        self.sent.append(sig)
        if self.polls_since_signal is None:
            self.polls_since_signal = 0

    def kill(self) -> None:
        self.sent.append("kill")
        self.returncode = -9

    def poll(self) -> int | None:
        if self.returncode is None and self.polls_since_signal is not None and self.exits_after is not None:
            self.polls_since_signal += 1
            if self.polls_since_signal > self.exits_after:
                self.returncode = 0
        return self.returncode

    def wait(self) -> int:
        assert self.returncode is not None
        return self.returncode


def _child(fake: FakePopen) -> Child:
    return Child(fake)  # type: ignore[arg-type]


@posix
@pytest.mark.parametrize(("hangup", "first"), [(False, signal.SIGTERM), (True, signal.SIGHUP)])
def test_a_polite_stop_is_sigterm_or_the_hangup_passed_on_then_sigcont(hangup: bool, first: int) -> None:
    fake = FakePopen(exits_after=2)
    assert _child(fake).end(5.0, hangup=hangup, poll_s=0.001) is Ended.EXITED
    assert fake.sent == [first, signal.SIGCONT]  # SIGCONT: a stopped child could not act on it


def test_a_second_stop_request_kills_at_once() -> None:
    fake = FakePopen(exits_after=None)
    requests = iter([False, False, True])
    assert _child(fake).end(60.0, escalate=lambda: next(requests), poll_s=0.001) is Ended.ESCALATED
    assert fake.sent[-1] == "kill"


def test_a_child_that_ignores_the_polite_stop_is_killed_after_the_grace() -> None:
    fake = FakePopen(exits_after=None)
    assert _child(fake).end(0.05, poll_s=0.001) is Ended.TIMED_OUT
    assert fake.sent[-1] == "kill" and fake.sent.count("kill") == 1


def test_signalling_a_child_that_is_gone_is_quiet() -> None:
    class Gone(FakePopen):
        def send_signal(self, sig: int) -> None:
            raise ProcessLookupError(3, "No such process")

        def kill(self) -> None:
            raise ProcessLookupError(3, "No such process")

    child = _child(Gone(exits_after=0))
    child.polite_stop()
    child.kill()


@posix
def test_the_hangup_reaches_a_real_child_in_its_own_process_group(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = ("import signal, sys, time, pathlib\n"
              "signal.signal(signal.SIGHUP, lambda *a: sys.exit(42))\n"
              f"pathlib.Path({str(ready)!r}).write_text('x')\n"
              "time.sleep(30)\n")
    child = Child.spawn([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.getpgid(child.pid) == child.pid  # its own group: a terminal's signals do not reach it
        assert child.end(20.0, hangup=True) is Ended.EXITED
        assert child.wait() == 42
    finally:
        child.kill()
        child.wait()
