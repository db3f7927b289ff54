"""File-system trouble and early interrupts, through the real CLI.

A read-only workspace, a directory where ``lock`` or ``logs/system.jsonl``
should be, a full disk at start or mid-run: each is one line naming the path
and the problem, the I/O exit code (10, which the watchdog does not restart),
no traceback and no temporary file left behind. Ctrl-C at any moment of the
start-up is a clean exit without a traceback.

Real full and read-only file systems are small tmpfs mounts (root only; the
tests skip with the reason elsewhere).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from laptop_agents.exit_codes import RESTARTABLE, ExitCode
from laptop_agents.lock import WorkspaceLock
from tests.session.helpers import FAST, PROJECT_ROOT, run, session_env, start, wait_until

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and mounts")


def _only_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def _no_temp_files(root: Path) -> None:
    left = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not left, left


def test_disk_full_is_not_restartable() -> None:
    assert ExitCode.DISK_FULL not in RESTARTABLE


def test_directory_in_place_of_the_lock(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "lock").mkdir(parents=True)
    code, out, err = run(ws, *FAST, "--duration", "2")
    assert code == ExitCode.DISK_FULL, (out, err)
    line = _only_line(err)
    assert str(ws / "lock") in line and "directory" in line
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())


def test_directory_in_place_of_the_system_log(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "logs" / "system.jsonl").mkdir(parents=True)
    code, out, err = run(ws, *FAST, "--duration", "2")
    assert code == ExitCode.DISK_FULL, (out, err)
    line = _only_line(err)
    assert str(ws / "logs" / "system.jsonl") in line and "directory" in line


def test_status_still_reads_a_workspace_whose_log_cannot_be_written(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "logs" / "system.jsonl").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "laptop_agents", "status", "--workspace", str(ws)],
                          cwd=PROJECT_ROOT, env=session_env(ws), capture_output=True, text=True, timeout=60)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "Traceback" not in proc.stderr and "session lock" in proc.stdout


# ------------------------------------------------------------------ real mounts


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs: a real file system that fills up and can be made read-only."""
    if not sys.platform.startswith("linux"):
        pytest.skip("tmpfs mounts are Linux only")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(fs: Path) -> Path:
    """Write zeros until the file system is full; returns the filler file."""
    filler = fs / "filler.bin"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with open(filler, "ab", buffering=0) as fh:  # the last partial page too
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def test_read_only_workspace(small_fs: Path) -> None:
    ws = small_fs / "ws"
    code, _, err = run(ws, *FAST, "--duration", "2")  # a workspace with state, then read-only
    assert code == ExitCode.OK, err
    proc = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot remount read-only: {proc.stderr.strip()}")
    code, out, err = run(ws, *FAST, "--duration", "2")
    assert code == ExitCode.DISK_FULL, (out, err)
    line = _only_line(err)
    assert "read-only" in line and str(ws) in line
    # status still answers on a read-only workspace
    status = subprocess.run([sys.executable, "-m", "laptop_agents", "status", "--workspace", str(ws)],
                            cwd=PROJECT_ROOT, env=session_env(ws), capture_output=True, text=True, timeout=60)
    assert status.returncode == ExitCode.OK and "Traceback" not in status.stderr, status.stderr


def test_full_disk_at_start(small_fs: Path) -> None:
    ws = small_fs / "ws"
    (ws / "logs").mkdir(parents=True)
    (ws / "runs").mkdir()
    _fill(small_fs)
    code, out, err = run(ws, *FAST, "--duration", "2")
    assert code == ExitCode.DISK_FULL, (out, err)
    line = _only_line(err)
    assert "disk full" in line and str(ws) in line
    _no_temp_files(small_fs)
    assert not WorkspaceLock(ws / "lock").in_use()


def test_full_disk_mid_run(small_fs: Path) -> None:
    ws = small_fs / "ws"
    sess = start(ws, *FAST, "--duration", "100000", "--run-id", "full")
    try:
        wait_until(lambda: (h := sess.heartbeat()) and h["status"] == "running" and h.get("candles", 0) >= 5,
                   timeout=60, what="a running session")
        _fill(small_fs)
        code, out, err = sess.wait(120)
    finally:
        sess.kill()
    assert code == ExitCode.DISK_FULL, (out, err)
    assert "Traceback" not in out + err, out + err
    assert "disk full" in out + err
    assert "stopped: disk_full (exit 10)" in out
    _no_temp_files(small_fs)


# ------------------------------------------------------------------ Ctrl-C while starting


@posix_only
@pytest.mark.parametrize("phase", ["config", "lock", "store", "source", "signals"])
def test_ctrl_c_during_start_up_is_clean(tmp_path: Path, phase: str) -> None:
    ws = tmp_path / "ws"
    marker = tmp_path / "paused"
    sess = start(ws, *FAST, "--duration", "600", harness=f"pause:{phase}",
                 env={"LA_TEST_PAUSE_MARKER": str(marker)})
    try:
        wait_until(marker.exists, timeout=60, what=f"the {phase} pause")
        sess.proc.send_signal(signal.SIGINT)
        code, out, err = sess.wait(60)
    finally:
        sess.kill()
    assert code == ExitCode.OK, (out, err)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, out + err
    # Nothing is left held or half made: the lock is free and no empty run directory remains.
    assert not WorkspaceLock(ws / "lock").in_use()
    runs = ws / "runs"
    if runs.exists():
        for d in runs.iterdir():
            assert any(d.iterdir()), f"empty run directory {d}"
    if phase == "signals":  # inside the event loop the stop is the session's own, recorded one
        summaries = list(runs.glob("*/summary.json"))
        assert summaries and json.loads(summaries[0].read_text())["reason"] == "signal"
    else:
        assert _only_line(err) == "interrupted"


# ------------------------------------------------------------------ SIGHUP


@posix_only
def test_sighup_stops_the_session_gracefully(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", harness="scripted:hold")
    try:
        wait_until(lambda: (h := sess.heartbeat()) and (h["position"] or {}).get("qty"), timeout=30,
                   what="a position")
        sess.proc.send_signal(signal.SIGHUP)
        code, out, err = sess.wait(30)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    summary = json.loads(next((ws / "runs").glob("*/summary.json")).read_text())
    assert summary["reason"] == "signal" and "SIGHUP" in summary["reason_detail"]
    assert summary["position"]["qty"] == 0  # flattened like SIGTERM
    assert '"status": "stopped"' in (ws / "heartbeat.json").read_text()


@posix_only
def test_closing_the_terminal_stops_the_session_gracefully(tmp_path: Path) -> None:
    """A real terminal hang-up: the session runs on a pseudo-terminal whose
    master side is closed; it must stop like SIGTERM and still write its
    summary (its terminal is gone, so output there must not crash it)."""
    import pty

    ws = tmp_path / "ws"
    env = session_env(ws)
    pid, master = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty
        try:
            os.chdir(PROJECT_ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "tests.session.harness", "--mode", "live-session",
                                       *FAST, "--duration", "600"], env)
        finally:
            os._exit(127)
    try:
        hb_path = ws / "heartbeat.json"

        def running() -> bool:
            try:
                os.read(master, 65536)  # keep the pty drained
            except OSError:
                pass
            try:
                return json.loads(hb_path.read_text()).get("status") == "running"
            except (OSError, ValueError):
                return False

        os.set_blocking(master, False)
        wait_until(running, timeout=60, what="a running session on the pty")
        os.close(master)  # the terminal window closes: the kernel sends SIGHUP
        master = -1
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if master >= 0:
            os.close(master)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == ExitCode.OK, status
    summary = json.loads(next((ws / "runs").glob("*/summary.json")).read_text())
    assert summary["reason"] == "signal" and "SIGHUP" in summary["reason_detail"]
