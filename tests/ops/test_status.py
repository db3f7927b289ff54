"""``laptop-agents status`` reads a workspace's files and explains them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from laptop_agents.lock import WorkspaceLock
from laptop_agents.ops.killswitch import request_stop
from laptop_agents.ops.status import collect_status, last_run_dir
from laptop_agents.workspace import Workspace


def _status_cli(ws: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "laptop_agents", "status", "--workspace", str(ws)],
                          capture_output=True, text=True, timeout=60)


def test_empty_workspace(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    st = collect_status(ws)
    assert st["lock"]["state"] == "free" and st["watchdog"]["state"] == "free"
    assert st["heartbeat"] is None and st["last_run"] is None and st["kill_file"]["pending"] is False
    proc = _status_cli(ws.root)
    assert proc.returncode == 0, proc.stderr
    assert str(ws.root) in proc.stdout.replace("\n", "")


def test_running_session_picture(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    lock = WorkspaceLock(ws.lock)
    lock.acquire()
    now = time.time()
    ws.heartbeat.write_text(json.dumps({
        "ts_ms": int((now - 2) * 1000), "pid": 4242, "run_id": "r1", "status": "running", "reason": None,
        "equity": 10012.5, "position": {"side": "long", "qty": 0.01}, "working_orders": 1,
        "last_candle_ts": 1_700_000_000_000, "market_data_age_s": 0.4, "errors": {"md": 0},
        "breaker": {"tripped": False}, "rss_mb": 80.1}))
    old = ws.run_dir("old")
    old.mkdir(parents=True)
    (old / "summary.json").write_text(json.dumps({"run_id": "old"}))
    time.sleep(0.05)
    run = ws.run_dir("r1")
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "run_id": "r1", "reason": "duration", "exit_code": 0, "metrics": {"net_pnl": 12.5, "trades": 3},
        "files": ["summary.json"]}))
    request_stop(ws.kill_file, "maintenance")
    try:
        st = collect_status(ws, heartbeat_interval_s=5.0, now=now)
        assert st["lock"]["state"] == "held"
        hb = st["heartbeat"]
        assert hb["fresh"] is True and hb["age_s"] == 2.0 and hb["last_candle_time"].startswith("2023-11-14")
        assert st["kill_file"]["pending"] and st["kill_file"]["reason"] == "maintenance"
        assert last_run_dir(ws) == run and st["last_run"]["summary"]["reason"] == "duration"
        out = _status_cli(ws.root)
        assert out.returncode == 0, out.stderr
        text = out.stdout
        for needle in ("held by a live process", "fresh", "10,012.5", "long", "PENDING", "maintenance",
                       "duration", "net_pnl", "12.5"):
            assert needle in text, (needle, text)
    finally:
        lock.release()


def test_stale_lock_and_heartbeat(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ws.lock.write_text(json.dumps({"pid": dead.pid, "create_time": 1.0, "started_at": "earlier"}))
    ws.heartbeat.write_text(json.dumps({"ts_ms": int((time.time() - 600) * 1000), "status": "running"}))
    run = ws.run_dir("crashed")
    run.mkdir(parents=True)
    st = collect_status(ws, heartbeat_interval_s=5.0)
    assert st["lock"]["state"] == "stale" and st["lock"]["pid"] == dead.pid
    assert st["heartbeat"]["fresh"] is False
    assert st["last_run"]["summary"] is None
    out = _status_cli(ws.root)
    assert out.returncode == 0
    assert "stale" in out.stdout and "STALE" in out.stdout and "not written" in out.stdout


def _cleanly_stopped(ws: Workspace, *, age_s: float) -> None:
    ws.heartbeat.write_text(json.dumps({
        "ts_ms": int((time.time() - age_s) * 1000), "pid": 4242, "run_id": "r1", "status": "stopped",
        "reason": "duration", "equity": 10000.0}))
    run = ws.run_dir("r1")
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "run_id": "r1", "reason": "duration", "exit_code": 0, "starting_equity": 10000.0, "final_equity": 10012.5,
        "metrics": {"starting_equity": 10000.0, "final_equity": 10012.5, "net_pnl": 12.5, "trades": 1}}))


def test_a_cleanly_stopped_session_is_not_stale(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    _cleanly_stopped(ws, age_s=3600)
    st = collect_status(ws, heartbeat_interval_s=5.0)
    assert st["heartbeat"]["state"] == "stopped"
    out = _status_cli(ws.root)
    assert out.returncode == 0, out.stderr
    assert "STALE" not in out.stdout and "stale" not in out.stdout
    assert "stopped" in out.stdout and "duration" in out.stdout


def test_a_running_heartbeat_that_stopped_beating_is_stale(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    ws.heartbeat.write_text(json.dumps({"ts_ms": int((time.time() - 600) * 1000), "status": "stopping"}))
    assert collect_status(ws, heartbeat_interval_s=5.0)["heartbeat"]["state"] == "stale"
    ws.heartbeat.write_text(json.dumps({"ts_ms": int(time.time() * 1000), "status": "running"}))
    assert collect_status(ws, heartbeat_interval_s=5.0)["heartbeat"]["state"] == "fresh"


def test_summary_fields_are_printed_once(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    _cleanly_stopped(ws, age_s=1)
    out = _status_cli(ws.root)
    assert out.returncode == 0, out.stderr
    labels = [line.split("\u2502")[1].strip() for line in out.stdout.splitlines() if line.count("\u2502") >= 2]
    dupes = {label for label in labels if label and labels.count(label) > 1}
    assert not dupes, out.stdout
    assert "starting_equity" in labels and "final_equity" in labels and "net_pnl" in labels


def test_summary_and_metrics_that_disagree_are_both_shown(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    run = ws.run_dir("r1")
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "run_id": "r1", "final_equity": 10012.5, "metrics": {"final_equity": 9990.0, "net_pnl": -10.0}}))
    out = _status_cli(ws.root).stdout
    assert "10,012.5" in out and "9,990" in out and "final_equity (metrics)" in out


def test_a_pause_is_shown(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    assert collect_status(ws)["pause"]["paused"] is False
    ws.pause_file.write_text(json.dumps({"paused_at": "2026-03-01T10:00:00+00:00", "source": "dashboard"}))
    st = collect_status(ws)
    assert st["pause"]["paused"] is True and st["pause"]["source"] == "dashboard"
    proc = _status_cli(ws.root)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "PAUSED since 2026-03-01T10:00:00+00:00" in text  # a file of an earlier version
    ws.pause_file.write_text(json.dumps({"paused_at": "2026-03-02T10:00:00Z", "source": "dashboard"}))
    assert collect_status(ws)["pause"]["paused_at"] == "2026-03-02T10:00:00Z"
    assert "PAUSED since 2026-03-02T10:00:00Z" in " ".join(_status_cli(ws.root).stdout.split())
