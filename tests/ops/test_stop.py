"""``laptop-agents stop``: arm the kill switch only when something runs to stop.

A kill file armed with nothing running would make the *next* start refuse,
so ``stop`` checks the workspace lock (the OS lock, then the holder's PID)
first, and arms the switch anyway only with ``--force``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from laptop_agents.exit_codes import ExitCode
from laptop_agents.lock import WorkspaceLock
from tests.session.helpers import FAST, PROJECT_ROOT, run, session_env, start, summary, wait_until


def _stop(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "laptop_agents", "stop", "--workspace", str(ws), *args],
                          cwd=PROJECT_ROOT, env=session_env(ws), capture_output=True, text=True, timeout=60)


def test_stop_with_nothing_running_does_not_arm_the_switch(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = _stop(ws)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "nothing is running" in proc.stdout and "--force" in proc.stdout
    assert not (ws / "kill.txt").exists()
    # ... so the next start is not blocked.
    code, out, err = run(ws, *FAST, "--duration", "2")
    assert code == ExitCode.OK, err
    assert summary(ws)["reason"] == "duration"


def test_a_stale_lock_is_not_a_running_session(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ws / "lock").write_text(json.dumps({"pid": dead.pid, "create_time": 1.0, "started_at": "earlier"}))
    proc = _stop(ws)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "nothing is running" in proc.stdout
    assert not (ws / "kill.txt").exists()


def test_force_arms_the_switch_and_says_the_next_start_refuses(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = _stop(ws, "--force", "--reason", "maintenance")
    assert proc.returncode == ExitCode.OK, proc.stderr
    kill = ws / "kill.txt"
    assert kill.is_file() and json.loads(kill.read_text())["reason"] == "maintenance"
    text = " ".join(proc.stdout.split())
    assert "nothing is running" in text and "refuse" in text and str(kill) in text
    code, _, err = run(ws, *FAST, "--duration", "2")
    assert code == ExitCode.PREFLIGHT_FAILED and "stop request is pending" in err


def test_stop_arms_the_switch_for_a_running_session(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600")
    try:
        wait_until(lambda: (h := sess.heartbeat()) and h["status"] == "running", timeout=30, what="running")
        proc = _stop(ws)
        assert proc.returncode == ExitCode.OK, proc.stderr
        assert "stop requested" in proc.stdout and f"pid {sess.proc.pid}" in proc.stdout
        code, _, err = sess.wait(30)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    assert summary(ws)["reason"] == "kill_switch"
    assert not (ws / "kill.txt").exists()  # consumed by the completed shutdown


def test_stop_arms_the_switch_while_a_watchdog_waits_to_restart(tmp_path: Path) -> None:
    # Between two children only the watchdog holds its lock: the kill file is
    # how `stop` keeps it from starting the next one.
    ws = tmp_path / "ws"
    ws.mkdir()
    guard = WorkspaceLock(ws / "watchdog.lock", what="watchdog")
    guard.acquire()
    try:
        proc = _stop(ws)
    finally:
        guard.release()
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "stop requested" in proc.stdout and "watchdog" in proc.stdout
    assert (ws / "kill.txt").is_file()


def test_in_use_probes_the_os_lock_without_touching_the_record(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    assert WorkspaceLock(path).in_use() is False and not path.exists()  # not created by a probe
    holder = WorkspaceLock(path)
    holder.acquire()
    try:
        record = path.read_bytes()
        assert WorkspaceLock(path).in_use() is True
        assert path.read_bytes() == record
    finally:
        holder.release()
    assert WorkspaceLock(path).in_use() is False
