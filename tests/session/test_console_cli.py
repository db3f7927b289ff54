"""The console through the real CLI (subprocesses, 127.0.0.1 only): access rules of the
session's dashboard, /metrics during a session, the watching ``dashboard`` command,
``stop --no-flatten`` and the terminal view on a real pty."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from laptop_agents.exit_codes import ExitCode
from tests.console.test_metrics import _samples
from tests.session.helpers import (
    FAST,
    PROJECT_ROOT,
    Session,
    events,
    run,
    session_env,
    start,
    summary,
    wait_until,
)

TOKEN = "a-test-token-0123456789"


def _url(sess: Session, prefix: str, timeout: float = 30.0) -> str:
    assert sess.proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = sess.proc.stdout.readline()
        if line.startswith(prefix):
            return line.split()[1]
        if not line and sess.proc.poll() is not None:
            break
    raise AssertionError(f"no {prefix!r} line")


def test_a_public_bind_without_a_token_is_refused_before_anything_starts(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, out, err = run(ws, *FAST, "--duration", "5", "--dashboard", "--dashboard-host", "0.0.0.0", timeout=30)
    assert code == ExitCode.CONFIG_ERROR
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "LA_DASHBOARD_TOKEN" in lines[0] and "0.0.0.0" in lines[0]
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())
    code, _, err = run(ws, *FAST, "--duration", "5", "--dashboard", "--dashboard-host", "0.0.0.0", timeout=30,
                       env={"LA_DASHBOARD_TOKEN": "short"})
    assert code == ExitCode.CONFIG_ERROR and "at least 16 characters" in err and "short" not in err
    code, _, err = run(ws, *FAST, "--duration", "5", "--notify", "nonsense://x", timeout=30)
    assert code == ExitCode.CONFIG_ERROR and err.strip().startswith("alert error: unusable notification URL")


def test_token_401_get_on_a_control_405_and_a_flood_of_clients(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", "--dashboard", "--dashboard-port", "0",
                 env={"LA_DASHBOARD_TOKEN": TOKEN})
    try:
        url = _url(sess, "dashboard: ").rstrip("/")
        good = {"Authorization": f"Bearer {TOKEN}"}

        async def main() -> dict[str, Any]:
            async with httpx.AsyncClient(base_url=url, timeout=10.0) as c:
                res: dict[str, Any] = {
                    "none": (await c.get("/health")).status_code,
                    "bad": (await c.get("/api/status", headers={"Authorization": "Bearer " + "x" * 23})).status_code,
                    "page_bad": (await c.get("/", headers={"Accept": "text/html"})).text,
                    "ok": (await c.get("/health", headers=good)).status_code,
                    "get_control": (await c.get("/api/control/stop", headers=good)).status_code,
                    "post_no_csrf": (await c.post("/api/control/stop", json={}, headers=good)).status_code,
                }
                # A flood: more event streams than the dashboard takes (16), all at once.
                streams = [c.stream("GET", "/api/stream", headers=good) for _ in range(24)]
                opened = await asyncio.gather(*(s.__aenter__() for s in streams))
                res["flood"] = sorted(r.status_code for r in opened)
                res["health_during"] = (await c.get("/health", headers=good)).status_code
                for s in streams:
                    await s.__aexit__(None, None, None)
                res["after"] = (await c.get("/api/status", headers=good)).json()["status"]
            return res

        res = asyncio.run(main())
        assert res["none"] == 401 and res["bad"] == 401 and TOKEN not in res["page_bad"]
        assert res["ok"] == 200 and res["get_control"] == 405 and res["post_no_csrf"] == 403
        assert res["flood"] == [200] * 16 + [503] * 8
        assert res["health_during"] == 200 and res["after"] == "running"
        sess.proc.send_signal(signal.SIGTERM)
        code, out, err = sess.wait(30)
        assert code == ExitCode.OK, err
        assert TOKEN not in out + err
        log = (ws / "logs" / "system.jsonl").read_text()
        assert TOKEN not in log
    finally:
        sess.kill()


def test_metrics_are_scraped_during_a_session_and_the_counters_move(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", "--health-port", "0")
    try:
        health = _url(sess, "health: ")
        metrics = health.removesuffix("/health") + "/metrics"
        wait_until(lambda: (h := sess.heartbeat()) and h.get("candles", 0) >= 2, what="candles")
        first = _samples(httpx.get(metrics, timeout=5).text)
        wait_until(lambda: (h := sess.heartbeat()) and h["candles"] >= first[
            ("laptop_agents_candles_processed_total", ())] + 5, what="more candles")
        second = _samples(httpx.get(metrics, timeout=5).text)
        key = ("laptop_agents_candles_processed_total", ())
        assert second[key] > first[key] >= 1
        lat = ("laptop_agents_candle_latency_count", ())
        assert second[lat] > first[lat] >= 1  # arrival-to-commit latency observed per candle
        assert second[("laptop_agents_healthy", ())] == 1.0 and second[("laptop_agents_rss_bytes", ())] > 0
        assert ("laptop_agents_loop_lag_seconds", ()) in second
        assert httpx.get(health.removesuffix("/health") + "/", timeout=5).status_code == 404  # health-only
        sess.proc.send_signal(signal.SIGTERM)
        code, _, err = sess.wait(30)
        assert code == ExitCode.OK, err
    finally:
        sess.kill()


def test_the_dashboard_command_watches_a_session_and_stops_it_by_the_kill_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", "--run-id", "watched", harness="scripted:hold")
    watcher = subprocess.Popen([sys.executable, "-m", "laptop_agents", "dashboard", "--port", "0"], cwd=PROJECT_ROOT,
                               env=session_env(ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (h := sess.heartbeat()) and h["status"] == "running", what="running")
        url = _url(Session(watcher, ws), "dashboard: ").rstrip("/")
        with httpx.Client(base_url=url, timeout=10) as c:
            page = c.get("/")
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
            assert page.status_code == 200 and csrf
            hdr = {"X-LA-CSRF": csrf.group(1)}
            st = wait_until(lambda: (s := c.get("/api/status").json()).get("equity") and s, what="status")
            assert st["run_id"] == "watched" and st["mode"] == "watching" and st["can_pause"] is False
            wait_until(lambda: c.get("/api/status").json().get("last_price"), what="candles tailed")
            r = c.post("/api/control/pause", json={}, headers=hdr)
            assert r.status_code == 409 and "session's own dashboard" in r.json()["error"]
            r = c.post("/api/control/stop", json={"flatten": False}, headers=hdr)
            assert r.status_code == 200
            assert json.loads((ws / "kill.txt").read_text())["flatten"] is False
            code, _, err = sess.wait(30)
            assert code == ExitCode.OK, err
            s = summary(ws)
            assert s["reason"] == "kill_switch" and s["position"]["qty"] != 0  # kept, as the stop said
            final = wait_until(lambda: (x := c.get("/api/status").json())["status"] == "stopped" and x, what="stopped")
            assert final["reason"] == "kill_switch"
            r = c.post("/api/control/stop", json={"flatten": True}, headers=hdr)
            assert r.status_code == 409 and not (ws / "kill.txt").exists()  # nothing runs: not armed
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(15) == 0
    finally:
        sess.kill()
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()


def test_stop_no_flatten_keeps_the_position(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", harness="scripted:hold")
    try:
        wait_until(lambda: (h := sess.heartbeat()) and (h.get("position") or {}).get("qty"), what="a position")
        out = subprocess.run([sys.executable, "-m", "laptop_agents", "stop", "--no-flatten"], cwd=PROJECT_ROOT,
                             env=session_env(ws), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        code, _, err = sess.wait(30)
        assert code == ExitCode.OK, err
        assert summary(ws)["position"]["qty"] != 0
        stop = [e for e in events(ws) if e["kind"] == "session" and e.get("event") == "stop"]
        assert stop and stop[0]["reason"] == "kill_switch"
    finally:
        sess.kill()


def _read_pty(fd: int, until: float) -> bytes:
    buf = b""
    while time.monotonic() < until:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            buf += chunk
    return buf


@pytest.mark.skipif(sys.platform == "win32", reason="pty")
def test_run_on_a_terminal_shows_the_live_panel_above_the_log_lines(tmp_path: Path) -> None:
    """A real pseudo-terminal: the panel (a box with price, position, equity,
    last decision) is drawn and redrawn with cursor movements, log lines above it."""
    ws = tmp_path / "ws"
    master, slave = pty.openpty()
    env = session_env(ws)
    env.update({"TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"})
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "tests.session.harness", "--mode", "live-session", *FAST,
                             "--duration", "40"], cwd=PROJECT_ROOT, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        raw = _read_pty(master, time.monotonic() + 60)
        assert proc.wait(30) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = raw.decode("utf-8", "replace")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "btc-laptop-agents" in plain and "last decision" in plain and "equity" in plain and "data age" in plain
    assert "╭" in plain or "┌" in plain  # the panel's box
    assert "\x1b[" in text and ("\x1b[2K" in text or "\x1b[1A" in text)  # redrawn in place
    assert "session running" in plain and "stopped: duration (exit 0)" in plain
    assert plain.index("session running") < plain.rindex("last decision")  # log lines scroll above the panel


def test_run_without_a_terminal_prints_plain_status_lines(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, out, err = run(ws, *FAST, "--duration", "20", timeout=60)
    assert code == ExitCode.OK, err
    assert "\x1b[" not in out + err
    status = [ln for ln in err.splitlines() if ln.startswith("[") and "| equity " in ln]
    assert status and "price" in status[0] and "errors" in status[0]
