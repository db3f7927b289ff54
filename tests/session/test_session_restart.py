"""Crash-only restarts of the real session: state continues from the store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from laptop_agents.exit_codes import ExitCode
from tests.session.helpers import FAST, events, run, summary


def _fills(ws: Path) -> list[tuple]:
    with sqlite3.connect(ws / "state.db") as db:
        return db.execute("SELECT ts, client_id, reason FROM fills ORDER BY seq").fetchall()


def test_restart_resumes_after_the_last_committed_candle(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "10", "--run-id", "first")
    assert code == ExitCode.OK, err
    first = json.loads((ws / "runs" / "first" / "summary.json").read_text())
    code, _, err = run(ws, *FAST, "--duration", "10", "--run-id", "second")
    assert code == ExitCode.OK, err
    second = json.loads((ws / "runs" / "second" / "summary.json").read_text())
    # No candle is processed twice: the second run starts right after the first.
    assert second["first_ts"] > first["last_ts"]
    with sqlite3.connect(ws / "state.db") as db:
        (last,) = db.execute("SELECT last_candle_ts FROM engine_state").fetchone()
    assert last == second["last_ts"]
    candles = (ws / "runs" / "second" / "candles.csv").read_text().splitlines()[1:]
    assert candles and all(int(line.split(",")[0]) > first["last_ts"] for line in candles)


def test_tripped_breaker_stays_tripped_across_a_restart(tmp_path: Path) -> None:
    """One losing trade trips the breaker (limit set to 1); after a restart on
    the same UTC day it is still tripped and no entry is made."""
    ws = tmp_path / "ws"
    env = {"LA_RISK__BREAKER_CONSECUTIVE_LOSSES": "1"}
    code, _, err = run(ws, *FAST, "--duration", "30", "--run-id", "a", harness="scripted:lose", env=env)
    assert code == ExitCode.OK, err
    a = json.loads((ws / "runs" / "a" / "summary.json").read_text())
    assert a["breaker"]["active"] is True, a["breaker"]
    until = a["breaker"]["until_ts"]
    fills_before = _fills(ws)

    code, _, err = run(ws, *FAST, "--duration", "10", "--run-id", "b", harness="scripted:lose", env=env)
    assert code == ExitCode.OK, err
    b = summary(ws)
    assert b["run_id"] == "b"
    if b["last_ts"] < until:  # the restart happened on the same UTC day (not across midnight)
        assert b["breaker"]["active"] is True and b["breaker"]["until_ts"] == until
        assert _fills(ws) == fills_before  # no new entry while tripped
        assert not [e for e in events(ws) if e["kind"] == "fill"]
        hb = json.loads((ws / "heartbeat.json").read_text())
        assert hb["breaker"]["active"] is True
