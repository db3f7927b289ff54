"""Every exit path of the real session, driven as a subprocess through the CLI.

Each test uses its own workspace (tmp_path), a high mock speed and short
timeouts; they assert the exit code and the recorded reason (summary.json,
heartbeat, the ``session`` stop event, the log), never wall-clock speed.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from tests.session.helpers import FAST, PROJECT_ROOT, events, run, start, summary, system_log, wait_until


def _stop_event(ws: Path) -> dict:
    stops = [e for e in events(ws) if e["kind"] == "session" and e.get("event") == "stop"]
    assert len(stops) == 1, stops
    return stops[0]


def _assert_reason(ws: Path, reason: str, code: int) -> dict:
    s = summary(ws)
    assert s["reason"] == reason and s["exit_code"] == code, s
    hb = (ws / "heartbeat.json").read_text()
    assert f'"reason": "{reason}"' in hb and '"status": "stopped"' in hb
    stop = _stop_event(ws)
    assert stop["reason"] == reason and stop["exit_code"] == code
    assert any(r.get("fields", {}).get("reason") == reason and "session stopped" in r["message"]
               for r in system_log(ws))
    return s


def test_fast_mock_session_ends_on_duration(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, out, err = run(ws, *FAST, "--duration", "20", "--workspace", str(ws))
    assert code == ExitCode.OK, err
    s = _assert_reason(ws, "duration", 0)
    assert s["session"]["candles"] >= 15
    assert s["session"]["warmup"] == 30
    # The start and end print the absolute workspace and run directory.
    run_dir = Path(s["run_dir"])
    assert out.count(f"workspace: {ws}") == 2 and out.count(f"run dir:   {run_dir}") == 2
    for name in ("summary.json", "events.jsonl", "equity.csv", "report.html"):
        assert (run_dir / name).is_file(), name
    # Every processed candle was committed to the workspace store.
    with sqlite3.connect(ws / "state.db") as db:
        (last,) = db.execute("SELECT last_candle_ts FROM engine_state").fetchone()
    assert last == s["last_ts"]


def test_kill_file_cancels_flattens_commits_and_exits_zero(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", harness="scripted:hold")
    try:
        hb = wait_until(lambda: (h := sess.heartbeat()) and h["status"] == "running"
                        and (h["position"] or {}).get("qty") and h["working_orders"] and h,
                        timeout=30, what="a position and a working order")
        assert hb["position"]["qty"] > 0 and hb["working_orders"] >= 1
        (ws / "kill.txt").write_text("test stop\n")
        code, out, err = sess.wait(30)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    s = _assert_reason(ws, "kill_switch", 0)
    assert s["position"]["qty"] == 0 and s["working_orders"] == []
    evs = events(ws)
    assert any(e["kind"] == "order_cancelled" for e in evs)
    assert any(e["kind"] == "fill" and e.get("reason") == "flatten" for e in evs)
    # State committed: the store holds the flat position and no working orders.
    with sqlite3.connect(ws / "state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM working_orders").fetchone()[0] == 0
        flatten_fills = db.execute("SELECT COUNT(*) FROM fills WHERE reason = 'flatten'").fetchone()[0]
    assert flatten_fills == 1
    # The kill file is consumed only after the shutdown completed.
    assert not (ws / "kill.txt").exists()


def test_sigterm_is_a_graceful_stop(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", harness="scripted:hold")
    try:
        wait_until(lambda: (h := sess.heartbeat()) and (h["position"] or {}).get("qty"), timeout=30,
                   what="a position")
        sess.proc.send_signal(signal.SIGTERM)
        code, out, err = sess.wait(30)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    s = _assert_reason(ws, "signal", 0)
    assert s["position"]["qty"] == 0  # flatten_on_kill applies to signals too


def test_no_flatten_keeps_the_position(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", "--no-flatten", harness="scripted:hold")
    try:
        wait_until(lambda: (h := sess.heartbeat()) and h["working_orders"], timeout=30, what="a working order")
        (ws / "kill.txt").write_text("stop\n")
        code, _, err = sess.wait(30)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    s = summary(ws)
    assert s["reason"] == "kill_switch" and s["position"]["qty"] > 0 and s["working_orders"] == []


def test_stale_data_when_the_source_goes_quiet(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "600", "--stale-timeout", "1",
                       env={"LA_TEST_MOCK_FAULTS": "silence_after=3"})
    assert code == ExitCode.STALE_DATA, err
    s = _assert_reason(ws, "stale_data", int(ExitCode.STALE_DATA))
    assert s["session"]["candles"] == 3


def test_three_consecutive_market_data_errors(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "600", env={"LA_TEST_MOCK_FAULTS": "errors_after=2,errors=3"})
    assert code == ExitCode.MARKET_DATA_ERRORS, err
    s = _assert_reason(ws, "market_data_errors", int(ExitCode.MARKET_DATA_ERRORS))
    assert s["errors"]["consecutive_market_data"] == 3 and s["session"]["candles"] == 2


def test_error_budget_exhausted(tmp_path: Path) -> None:
    """One error after every candle: never 3 in a row (good data resets the
    counter), so only the budget (5) ends the session."""
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "600", "--max-errors", "5",
                       env={"LA_TEST_MOCK_FAULTS": "error_every=1"})
    assert code == ExitCode.ERROR_BUDGET, err
    s = _assert_reason(ws, "error_budget", int(ExitCode.ERROR_BUDGET))
    assert s["errors"]["total"] == 5 and s["errors"]["consecutive_market_data"] == 1


def test_agent_exception_is_isolated_and_the_session_continues(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "20", "--max-errors", "1000", harness="agent_fail:4",
                       env={"LA_TEST_AGENT_FAIL_SKIP": "30"})
    assert code == ExitCode.OK, err
    s = _assert_reason(ws, "duration", 0)
    evs = events(ws)
    errors = [e for e in evs if e["kind"] == "agent_error"]
    assert errors and all(e["agent"] == "cvd_divergence" for e in errors)
    assert s["errors"]["agent_error"] == len(errors)
    # Candles after the first failure were still processed.
    assert s["last_ts"] > errors[0]["ts"]
    assert any(r["message"].startswith("agent error isolated") for r in system_log(ws))


def test_second_instance_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    first = start(ws, *FAST, "--duration", "600")
    try:
        hb = wait_until(lambda: (h := first.heartbeat()) and h["status"] == "running" and h, timeout=30,
                        what="first session running")
        code, out, err = run(ws, *FAST, "--duration", "5", timeout=30)
        assert code == ExitCode.ALREADY_RUNNING
        assert f"pid {hb['pid']}" in err and "already running" in err
        assert first.proc.poll() is None  # the first one is untouched
    finally:
        first.proc.send_signal(signal.SIGTERM)
        first.wait(30)


def test_preflight_failure_stops_before_starting(tmp_path: Path, free_port: int) -> None:
    """--preflight with an unreachable exchange: FAIL lines, exit 3, nothing started."""
    ws = tmp_path / "ws"
    code, out, err = run(ws, "--async", "--source", "bitunix", "--preflight",
                         "--bitunix-rest-url", f"http://127.0.0.1:{free_port}", timeout=30)
    assert code == ExitCode.PREFLIGHT_FAILED, err
    assert "FAIL  exchange REST" in out and "preflight: FAILED" in out
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())
    assert not (ws / "heartbeat.json").exists()


def test_pending_kill_file_refuses_to_start(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "kill.txt").write_text("old stop\n")
    code, _, err = run(ws, *FAST, "--duration", "5", timeout=30)
    assert code == ExitCode.PREFLIGHT_FAILED
    assert "stop request is pending" in err and str(ws / "kill.txt") in err
    assert (ws / "kill.txt").exists()


def test_sync_flag_is_refused_for_the_live_session(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, "--sync", "--source", "mock", "--duration", "1", timeout=30)
    assert code == ExitCode.CONFIG_ERROR
    assert len(err.strip().splitlines()) == 1 and "async-only" in err


@pytest.mark.slow
def test_seed_smoke_command_runs_about_a_minute(tmp_path: Path) -> None:
    """The README's smoke test, the seed's command exactly (``make smoke``): real time, one minute."""
    assert _make_recipe("smoke") == ["--mode", "live-session", "--async", "--source", "mock", "--duration", "1"]
    ws = tmp_path / "ws"
    code, out, err = run(ws, "--async", "--source", "mock", "--duration", "1", timeout=150,
                         env={"LA_SYSTEM__HEARTBEAT_INTERVAL_S": "5"})
    assert code == ExitCode.OK, err
    s = summary(ws)
    assert s["reason"] == "duration" and 55 <= s["wall_s"] <= 90
    assert "run dir:" in out and "stopped: duration (exit 0)" in out


def _make_recipe(target: str) -> list[str]:
    """The arguments of ``make TARGET``'s python command, exactly as the Makefile has them."""
    text = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = text.split(f"\n{target}: venv\n", 1)[1].splitlines()[0].strip()
    words = recipe.split()
    assert words[:3] == ["$(BIN)/python", "-m", "laptop_agents.run"] and words[-1] == "$(RUN_ARGS)", recipe
    return words[3:-1]


@pytest.mark.slow
def test_make_run_shows_the_bot_trading_with_its_dashboard_and_ends_by_itself(tmp_path: Path) -> None:
    """``make run``'s exact command: a mock session fast enough to trade, the
    dashboard URL printed and serving while it runs, exit 0 within two minutes,
    the summary and the report."""
    import httpx

    args = _make_recipe("run")
    assert "--dashboard" in args
    ws = tmp_path / "ws"
    sess = start(ws, *args, seed_flags=False, env={"LA_SYSTEM__HEARTBEAT_INTERVAL_S": "5"})
    try:
        assert sess.proc.stdout is not None
        url = None
        for _ in range(50):
            line = sess.proc.stdout.readline()
            if line.startswith("dashboard: "):
                url = line.split()[1]
                break
        assert url and url.startswith("http://127.0.0.1:")
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "btc-laptop-agents" in page.text
        code, out, err = sess.wait(150)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    s = summary(ws)
    assert s["reason"] == "duration" and s["wall_s"] <= 120
    assert s["metrics"]["trades"] >= 1  # the newcomer sees trades open and close
    assert "stopped: duration (exit 0)" in out and "report: " in out
    assert "report.html" in s["files"] and (Path(s["run_dir"]) / "report.html").is_file()


def test_health_port_serves_health_json_during_the_session(tmp_path: Path) -> None:
    import httpx

    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", "--health-port", "0")
    try:
        url = None
        assert sess.proc.stdout is not None
        for _ in range(50):
            line = sess.proc.stdout.readline()
            if line.startswith("health: "):
                url = line.split()[1]
                break
        assert url and url.startswith("http://127.0.0.1:") and url.endswith("/health")
        wait_until(lambda: (h := sess.heartbeat()) and h["status"] == "running", timeout=30, what="running")
        r = httpx.get(url, timeout=5)
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "running" and body["healthy"] is True
        assert body["source"]["state"] == "streaming" and "market_data_age_s" in body
        sess.proc.send_signal(signal.SIGTERM)
        code, _, err = sess.wait(30)
        assert code == ExitCode.OK, err
    finally:
        sess.kill()
