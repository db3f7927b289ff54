"""The watchdog against a small deterministic child process (tests/ops/child_script.py):
the real processes, signals and files. Every rule is also a row of the
millisecond table in tests/ops/test_restart_policy.py.

Timings are only asserted as causality and "at least the delay"; never as
upper bounds on speed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from laptop_agents.ops.restart_policy import describe_exit
from laptop_agents.ops.watchdog import Watchdog, WatchdogOptions, WatchdogResult
from laptop_agents.workspace import Workspace

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the child script uses POSIX signals")

CHILD = Path(__file__).with_name("child_script.py")
SLACK = 0.05  # timestamp rounding between processes


# Hang timeouts stay >= 2 s wherever a healthy child follows: a loaded CI box
# can take a second to start an interpreter, which must not look like a hang.


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.ws = Workspace(tmp_path / "ws").ensure()
        self.logfile = tmp_path / "child.log"
        self.lines: list[str] = []

    def watchdog(self, plan: str, **opts: float) -> Watchdog:
        options = WatchdogOptions(**{"restart_delay": 0.2, "hang_timeout": 30.0,
                                     "poll_interval": 0.05, **opts})  # type: ignore[arg-type]
        cmd = [sys.executable, str(CHILD), str(self.ws.root), str(self.logfile), plan]
        return Watchdog(cmd, self.ws, options, echo=self.lines.append)

    def run(self, plan: str, **opts: float) -> WatchdogResult:
        return self.watchdog(plan, **opts).run()

    def events(self) -> list[tuple[str, int, float, str]]:
        if not self.logfile.exists():
            return []
        out = []
        for line in self.logfile.read_text().splitlines():
            event, pid, ts, behaviour = line.split()
            out.append((event, int(pid), float(ts), behaviour))
        return out

    def starts(self) -> list[tuple[int, float]]:
        return [(pid, ts) for event, pid, ts, _ in self.events() if event == "start"]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_clean_exit_is_not_restarted(h: Harness) -> None:
    result = h.run("exit:0")
    assert (result.exit_code, result.reason, result.starts) == (0, "clean_exit", 1)
    assert len(h.starts()) == 1
    assert any("not restarting" in line for line in h.lines)


@pytest.mark.parametrize("code", [ExitCode.CONFIG_ERROR, ExitCode.PREFLIGHT_FAILED,
                                  ExitCode.ALREADY_RUNNING, ExitCode.STORE_CORRUPT, ExitCode.BAD_INPUT,
                                  ExitCode.DISK_FULL])
def test_non_restartable_exit_is_passed_through(h: Harness, code: int) -> None:
    result = h.run(f"exit:{int(code)}")
    assert (result.exit_code, result.reason, result.starts) == (int(code), "not_restartable", 1)


def test_restartable_exits_are_restarted_after_the_delay_with_backoff(h: Harness) -> None:
    result = h.run("exit:1,exit:4,exit:6,exit:5,exit:0", restart_delay=0.2, max_delay=0.5)
    assert (result.exit_code, result.reason, result.starts) == (0, "clean_exit", 5)
    assert result.delays == [0.2, 0.4, 0.5, 0.5]  # doubled per failure in a row, capped
    events = h.events()
    exits = [ts for event, _, ts, _ in events if event == "exit"]
    starts = [ts for _, ts in h.starts()]
    assert len(starts) == 5
    for exit_ts, next_start, delay in zip(exits, starts[1:], result.delays, strict=False):
        assert next_start - exit_ts >= delay - SLACK
    reasons = [line for line in h.lines if "restarting in" in line]
    assert len(reasons) == 4
    assert "crash" in reasons[0] and "stale_data" in reasons[1]


def test_sigkilled_session_is_restarted(h: Harness) -> None:
    result = h.run("sigkill,exit:0")
    assert result.starts == 2 and result.exit_code == 0
    assert result.outcomes[0].exit_code == -signal.SIGKILL
    assert "SIGKILL" in describe_exit(result.outcomes[0].exit_code)
    pids = [pid for pid, _ in h.starts()]
    assert pids[0] != pids[1]


def test_hung_session_is_killed_and_restarted(h: Harness) -> None:
    # Killed outright, never asked politely: a graceful stop would flatten the
    # position that the crash-only restart is meant to resume.
    started = time.time()
    result = h.run("hang,exit:0", hang_timeout=2.0)
    assert result.starts == 2 and result.exit_code == 0
    first = result.outcomes[0]
    assert first.hung and first.exit_code == -signal.SIGKILL
    events = h.events()
    assert [e[0] for e in events] == ["start", "start", "exit"]
    assert events[1][2] - started >= 2.0 - SLACK  # not before the heartbeat was older than the timeout
    assert any("is hung" in line for line in h.lines)


def test_hung_session_ignoring_sigterm_is_killed(h: Harness) -> None:
    result = h.run("stubborn,exit:0", hang_timeout=2.0)
    assert result.starts == 2
    assert result.outcomes[0].hung and result.outcomes[0].exit_code == -signal.SIGKILL
    assert any("killing it" in line for line in h.lines)


@pytest.mark.parametrize(("stop_reason", "why", "code", "starts"), [
    ("kill_switch", "kill_switch", 0, 1),
    ("duration", "clean_exit", 0, 1),
    ("store_corrupt", "not_restartable", int(ExitCode.STORE_CORRUPT), 1),
    ("stale_data", "clean_exit", 0, 2),  # meant to be restarted: it is, and the next one exits 0
])
def test_hang_while_stopping_follows_the_recorded_reason(
    h: Harness, stop_reason: str, why: str, code: int, starts: int
) -> None:
    result = h.run(f"endhang:{stop_reason},exit:0", hang_timeout=2.0)
    assert (result.reason, result.starts, result.exit_code) == (why, starts, code)
    assert result.outcomes[0].hung


def test_old_heartbeat_of_a_previous_session_does_not_count(h: Harness) -> None:
    old = {"ts_ms": int((time.time() - 3600) * 1000), "pid": 1, "status": "running"}
    h.ws.heartbeat.write_text(json.dumps(old))
    result = h.run("nobeat:1.0:0", hang_timeout=3.0)
    assert (result.reason, result.starts) == ("clean_exit", 1)
    assert not result.outcomes[0].hung


def test_session_that_never_heartbeats_is_hung_after_the_timeout(h: Harness) -> None:
    result = h.run("nobeat:30:0,exit:0", hang_timeout=2.0)
    assert result.outcomes[0].hung and result.starts == 2


def test_gives_up_after_max_restarts_per_hour(h: Harness) -> None:
    result = h.run("exit:1", restart_delay=0.05, max_restarts_per_hour=2)
    assert (result.reason, result.starts, result.exit_code) == ("give_up", 3, 1)
    assert any("giving up" in line and "--max-restarts-per-hour 2" in line for line in h.lines)


def test_zero_restarts_per_hour_never_restarts(h: Harness) -> None:
    result = h.run("exit:4", max_restarts_per_hour=0)
    assert (result.reason, result.starts, result.exit_code) == ("give_up", 1, 4)


def test_give_up_after_a_hang_is_non_zero(h: Harness) -> None:
    result = h.run("hang", hang_timeout=0.5, max_restarts_per_hour=0)
    assert result.reason == "give_up" and result.exit_code == ExitCode.CRASH


def test_backoff_resets_after_a_stable_run(h: Harness) -> None:
    result = h.run("exit:1,exit:1,runfor:1.0:1,exit:0", restart_delay=0.1, stable_after=0.8)
    assert result.starts == 4
    assert result.delays == [0.1, 0.2, 0.1]


def test_pending_kill_file_stops_restarts(h: Harness) -> None:
    result = h.run("killfile:1,exit:0")
    assert (result.reason, result.starts, result.exit_code) == ("kill_file", 1, 1)
    assert h.ws.kill_file.exists()  # left for the session and `status` to see


def test_kill_file_during_the_restart_delay_stops_restarts(h: Harness) -> None:
    wd = h.watchdog("exit:1,exit:0", restart_delay=5.0)
    timer = threading.Timer(1.0, lambda: h.ws.kill_file.write_text("stop\n"))
    timer.start()
    try:
        result = wd.run()
    finally:
        timer.cancel()
    assert (result.reason, result.starts) == ("kill_file", 1)


def _when_started(h: Harness, n: int, action: object) -> threading.Thread:
    def go() -> None:
        deadline = time.monotonic() + 20
        while len(h.starts()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        action()  # type: ignore[operator]

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_stop_request_forwards_sigterm_and_waits(h: Harness) -> None:
    wd = h.watchdog("run")
    _when_started(h, 1, wd.request_stop)
    result = wd.run()
    assert (result.reason, result.starts, result.exit_code) == ("watchdog_stop", 1, 0)
    assert [e[0] for e in h.events()] == ["start", "term"]


def test_stop_request_during_the_restart_delay(h: Harness) -> None:
    wd = h.watchdog("exit:1,exit:0", restart_delay=30.0)
    threading.Timer(1.5, wd.request_stop).start()
    result = wd.run()
    assert (result.reason, result.starts) == ("watchdog_stop", 1)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_to_the_watchdog_is_forwarded(h: Harness) -> None:
    wd = h.watchdog("run")
    before = signal.getsignal(signal.SIGTERM)
    _when_started(h, 1, lambda: os.kill(os.getpid(), signal.SIGTERM))
    result = wd.run(install_signals=True)
    assert (result.reason, result.exit_code) == ("watchdog_stop", 0)
    assert [e[0] for e in h.events()] == ["start", "term"]
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
