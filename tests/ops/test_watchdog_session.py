"""The watchdog CLI supervising the real session (``python -m laptop_agents run``).

Each test starts ``laptop-agents watchdog`` as a process on its own tmp
workspace, drives the session with real signals and files, and reads what the
session left: heartbeat, state store, run directories, exit codes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from laptop_agents.config import load_config
from laptop_agents.exit_codes import ExitCode
from laptop_agents.lock import WorkspaceLock
from laptop_agents.ops.killswitch import request_stop

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals (SIGKILL/SIGSTOP)")

HEARTBEAT_S = 1.0
RUN_ARGS = ["--source", "mock", "--speed", "300", "--duration", "100000", "--stale-timeout", "30"]


class WatchdogProc:
    def __init__(self, ws: Path, tmp: Path, wd_args: list[str], run_args: list[str],
                 env: dict[str, str] | None = None) -> None:
        self.ws = ws
        self.out = tmp / "watchdog.out"
        full_env = {**os.environ, "LA_SYSTEM__HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S), **(env or {})}
        full_env.pop("LAPTOP_AGENTS_WORKSPACE", None)
        cmd = [sys.executable, "-m", "laptop_agents", "watchdog", "--workspace", str(ws), *wd_args, "--", *run_args]
        with self.out.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env)

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.text().splitlines() if line.startswith("watchdog:") and needle in line]

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise AssertionError(f"watchdog did not end:\n{self.text()}") from None

    def kill_all(self) -> None:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for p in [*children]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def heartbeat(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.ws / "heartbeat.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def wait_heartbeat(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30,
                       poll: float = 0.01) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hb = self.heartbeat()
            if hb is not None and pred(hb):
                return hb
            if self.proc.poll() is not None:
                raise AssertionError(f"watchdog ended early ({self.proc.returncode}):\n{self.text()}")
            time.sleep(poll)
        raise AssertionError(f"no heartbeat matched within {timeout} s; last {self.heartbeat()}\n{self.text()}")

    def child_of_watchdog(self, pid: int) -> bool:
        try:
            return psutil.Process(pid).ppid() == self.proc.pid
        except psutil.NoSuchProcess:
            return False


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def started(tmp_path: Path, ws: Path) -> Any:
    procs: list[WatchdogProc] = []

    def start(wd_args: list[str], run_args: list[str] = RUN_ARGS, env: dict[str, str] | None = None) -> WatchdogProc:
        wp = WatchdogProc(ws, tmp_path, wd_args, run_args, env)
        procs.append(wp)
        return wp

    yield start
    for wp in procs:
        wp.kill_all()


def _store_status(ws: Path) -> dict[str, Any]:
    """The account as the state store holds it (the store API, as a restart reads it)."""
    from laptop_agents.store import StateStore
    from laptop_agents.strategy import build_strategy

    config = load_config("paper", {}).config
    with StateStore(ws / "state.db") as store:
        engine = store.load_engine(config, build_strategy(config))
        assert engine is not None
        return engine.status().to_dict()


def _resume_records(ws: Path, pid: int) -> list[dict[str, Any]]:
    """The "resuming" log records of the session with ``pid`` (logs/system.jsonl)."""
    out = []
    for line in (ws / "logs" / "system.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("pid") == pid and str(rec.get("message", "")).startswith("resuming from the state store"):
            out.append(rec)
    return out


def _has_exposure(hb: dict[str, Any]) -> bool:
    pos = hb.get("position") or {}
    return hb.get("status") == "running" and (bool(pos.get("qty")) or bool(hb.get("working_orders")))


def test_sigkilled_session_resumes_from_the_store_and_kill_switch_ends_it(started: Any, ws: Path) -> None:
    wd = started(["--restart-delay", "2", "--hang-timeout", "20"])
    first = wd.wait_heartbeat(_has_exposure)
    pid1 = first["pid"]
    assert wd.child_of_watchdog(pid1)

    os.kill(pid1, signal.SIGKILL)
    killed_at = time.time()
    psutil.Process(pid1).wait(timeout=10) if psutil.pid_exists(pid1) else None
    stored = _store_status(ws)  # the restart delay leaves time to read what was committed

    # The restarted session's first heartbeats (before its first candle) show what it loaded.
    resumed = wd.wait_heartbeat(lambda hb: hb.get("pid") != pid1 and hb.get("candles") == 0, timeout=30)
    assert resumed["ts_ms"] / 1000.0 - killed_at >= 2.0 - 0.05  # at least the restart delay
    assert wd.child_of_watchdog(resumed["pid"])
    assert resumed["position"] == stored["position"]
    assert resumed["working_orders"] == len(stored["working_orders"])
    assert resumed["equity"] == pytest.approx(stored["equity"])
    assert resumed["last_candle_ts"] == stored["last_candle_ts"]
    assert bool(stored["position"]["qty"]) or stored["working_orders"]  # there was something to resume

    wd.wait_heartbeat(lambda hb: hb.get("pid") == resumed["pid"] and (hb.get("candles") or 0) > 0)
    request_stop(ws / "kill.txt", "test stop")
    assert wd.wait() == 0
    assert len(wd.lines("started session pid")) == 2
    restart = wd.lines("restarting in")
    assert len(restart) == 1 and "SIGKILL" in restart[0]
    assert wd.lines("ended cleanly (exit 0); not restarting")
    final = wd.heartbeat()
    assert final is not None and final["status"] == "stopped" and final["reason"] == "kill_switch"
    assert not (ws / "kill.txt").exists()  # consumed by the session after its shutdown


def test_hung_session_is_restarted_with_its_position_kept(started: Any, ws: Path) -> None:
    """A hang is treated like a crash: the child is killed outright and resumes
    from the store. A polite SIGTERM would run the kill-switch path and flatten
    the position the restart is meant to keep."""
    wd = started(["--restart-delay", "0.5", "--hang-timeout", "4"])
    first = wd.wait_heartbeat(lambda hb: _has_exposure(hb) and (hb.get("candles") or 0) > 0)
    pid1 = first["pid"]
    os.kill(pid1, signal.SIGSTOP)  # frozen: no heartbeat, no exit
    frozen_at = time.time()
    stored = _store_status(ws)  # what the frozen session last committed: what the restart must resume
    assert bool(stored["position"]["qty"]) or stored["working_orders"]
    second = wd.wait_heartbeat(lambda hb: hb.get("pid") not in (None, pid1), timeout=40)
    # The restarted session says what it resumed (the heartbeat may already be a few candles on).
    resumed = _resume_records(ws, second["pid"])
    assert len(resumed) == 1, resumed
    fields = resumed[0]["fields"]
    assert fields["position"] == stored["position"]  # not flattened by the hang, the kill or the restart
    assert fields["working_orders"] == len(stored["working_orders"])
    assert fields["last_candle_ts"] == stored["last_candle_ts"]
    assert second["ts_ms"] / 1000.0 - frozen_at >= 4.0 - HEARTBEAT_S  # not before the hang timeout
    assert not psutil.pid_exists(pid1) or psutil.Process(pid1).status() == psutil.STATUS_ZOMBIE
    hung = wd.lines("is hung")
    assert len(hung) == 1 and str(pid1) in hung[0]
    assert "hung" in wd.lines("restarting in")[0]
    request_stop(ws / "kill.txt", "test stop")
    assert wd.wait() == 0
    assert len(wd.lines("started session pid")) == 2


def test_suspend_is_not_mistaken_for_a_hang_and_sigint_stops_everything(started: Any, ws: Path) -> None:
    wd = started(["--restart-delay", "0.5", "--hang-timeout", "3"])
    first = wd.wait_heartbeat(lambda hb: hb.get("status") == "running" and (hb.get("candles") or 0) > 0)
    pid1 = first["pid"]
    # Freeze both, as a laptop's sleep does, for longer than the hang timeout.
    os.kill(wd.proc.pid, signal.SIGSTOP)
    os.kill(pid1, signal.SIGSTOP)
    time.sleep(5)
    os.kill(wd.proc.pid, signal.SIGCONT)  # the watchdog wakes first: the worst case
    time.sleep(0.3)
    os.kill(pid1, signal.SIGCONT)
    time.sleep(2 * HEARTBEAT_S + 1)
    hb = wd.heartbeat()
    assert hb is not None and hb["pid"] == pid1 and hb["status"] == "running", wd.text()
    assert not wd.lines("is hung")
    assert wd.lines("hang timeout starts over")

    os.kill(wd.proc.pid, signal.SIGINT)  # forwarded to the session as SIGTERM
    assert wd.wait() == 0
    final = wd.heartbeat()
    assert final is not None and final["pid"] == pid1 and final["status"] == "stopped"
    assert final["reason"] == "signal"
    assert len(wd.lines("started session pid")) == 1
    assert wd.lines("stopped on request")


def test_stale_data_is_restarted_then_the_hourly_cap_gives_up(started: Any, ws: Path) -> None:
    wd = started(["--restart-delay", "0.3", "--max-restarts-per-hour", "1"],
                 ["--source", "mock", "--speed", "300", "--duration", "100000", "--stale-timeout", "1"],
                 env={"LA_TEST_MOCK_FAULTS": "silence_after=3"})
    assert wd.wait() == ExitCode.STALE_DATA
    assert len(wd.lines("started session pid")) == 2
    assert "stale_data" in wd.lines("restarting in")[0]
    assert wd.lines("giving up")


def test_pending_kill_file_at_start_is_not_restarted(started: Any, ws: Path) -> None:
    request_stop(ws / "kill.txt", "left over")
    wd = started(["--restart-delay", "0.3"])
    assert wd.wait() == ExitCode.PREFLIGHT_FAILED
    assert len(wd.lines("started session pid")) == 1
    assert wd.lines("cannot fix")


def test_session_refused_by_the_lock_is_not_restarted(started: Any, ws: Path) -> None:
    lock = WorkspaceLock(ws / "lock")
    lock.acquire()
    try:
        wd = started(["--restart-delay", "0.3"])
        assert wd.wait() == ExitCode.ALREADY_RUNNING
        assert str(os.getpid()) in wd.text()
        assert len(wd.lines("started session pid")) == 1
    finally:
        lock.release()


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LAPTOP_AGENTS_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "laptop_agents", "watchdog", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=cwd)


def test_bad_watchdog_flags_are_one_line_config_errors(ws: Path, tmp_path: Path) -> None:
    cases = [
        (["--restart-delay", "-1"], "--restart-delay"),
        (["--hang-timeout", "0"], "--hang-timeout"),
        (["--max-restarts-per-hour", "-2"], "--max-restarts-per-hour"),
        (["--", "--workspace", str(tmp_path / "other")], "differs"),
    ]
    for args, needle in cases:
        proc = _cli("--workspace", str(ws), *args)
        assert proc.returncode == ExitCode.CONFIG_ERROR, (args, proc.stderr)
        err = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(err) == 1 and needle in err[0], (args, proc.stderr)


def test_second_watchdog_on_a_workspace_is_refused(ws: Path) -> None:
    guard = WorkspaceLock(ws / "watchdog.lock", what="watchdog")
    guard.acquire()
    try:
        proc = _cli("--workspace", str(ws), "--", "--source", "mock")
        assert proc.returncode == ExitCode.ALREADY_RUNNING
        assert "another watchdog" in proc.stderr and str(os.getpid()) in proc.stderr
    finally:
        guard.release()


def test_workspace_given_only_to_the_session_is_adopted(ws: Path, tmp_path: Path) -> None:
    # A leftover kill file makes the session refuse at once (non-restartable),
    # which proves the watchdog and the session looked at the same workspace.
    request_stop(ws / "kill.txt", "left over")
    proc = _cli("--restart-delay", "0.1", "--", "--workspace", str(ws), "--source", "mock", cwd=tmp_path)
    assert proc.returncode == ExitCode.PREFLIGHT_FAILED, proc.stdout + proc.stderr
    assert f"watchdog: workspace {ws}" in proc.stdout



def test_a_restart_gets_its_own_run_id(started: Any, ws: Path) -> None:
    # A session refuses a --run-id whose directory exists; the restart must not
    # be refused into a stop, nor reuse (overwrite) the first run's directory.
    wd = started(["--restart-delay", "0.3", "--max-restarts-per-hour", "1"],
                 ["--source", "mock", "--speed", "300", "--duration", "100000", "--stale-timeout", "1",
                  "--run-id", "night"],
                 env={"LA_TEST_MOCK_FAULTS": "silence_after=3"})
    assert wd.wait() == ExitCode.STALE_DATA, wd.text()
    assert len(wd.lines("started session pid")) == 2
    assert "--run-id night-r1" in wd.lines("started session pid")[1]
    for name in ("night", "night-r1"):
        summary = json.loads((ws / "runs" / name / "summary.json").read_text())
        assert summary["run_id"] == name and summary["reason"] == "stale_data"


def test_sighup_to_the_watchdog_stops_the_session_like_its_own_hangup(started: Any, ws: Path) -> None:
    # Closing the terminal hangs up the watchdog's process group; the session
    # runs in its own group, so the watchdog must pass the hang-up on.
    wd = started([])
    hb = wd.wait_heartbeat(lambda h: h.get("status") == "running")
    wd.proc.send_signal(signal.SIGHUP)
    assert wd.wait() == ExitCode.OK, wd.text()
    assert len(wd.lines("started session pid")) == 1 and wd.lines("stopped on request")
    summary = json.loads(next((ws / "runs").glob("*/summary.json")).read_text())
    assert summary["reason"] == "signal" and summary["reason_detail"] == "SIGHUP", summary
    assert not psutil.pid_exists(hb["pid"]) or psutil.Process(hb["pid"]).status() == psutil.STATUS_ZOMBIE


def test_io_trouble_at_start_is_not_restarted(started: Any, ws: Path) -> None:
    # A directory where the lock file belongs: exit 10 (DISK_FULL), one line,
    # and no restart loop -- a restart cannot fix the workspace.
    (ws / "lock").mkdir()
    wd = started(["--restart-delay", "0.3"])
    assert wd.wait() == ExitCode.DISK_FULL, wd.text()
    assert len(wd.lines("started session pid")) == 1 and wd.lines("cannot fix")
    assert "Traceback" not in wd.text() and f"cannot take the workspace lock {ws / 'lock'}" in wd.text()
