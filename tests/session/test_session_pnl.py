"""Issue 10.4: after any exit path, every output tells the same money story.

A real session (the CLI in a subprocess, mock market) holds a position when it
stops; summary.json, trades.csv, equity.csv, report.html and ``status`` must
then agree with the paper broker's own books (read from state.db): equity,
realized PnL, fees, funding and the number of closed trades. The kill switch's
flatten used to be left out of the equity curve, so the net PnL (and fees)
missed the closing trade while the realized PnL had it.
"""

from __future__ import annotations

import csv
import json
import re
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.engine.state import decode_state
from laptop_agents.exit_codes import ExitCode
from tests.session.helpers import FAST, run, start, wait_until

_TOL = 1e-6


def _broker(ws: Path) -> dict[str, Any]:
    """The broker's books as committed: balance, realized (gross), fees, funding."""
    with sqlite3.connect(ws / "state.db") as db:
        (blob,) = db.execute("SELECT state FROM engine_state").fetchone()
    b = decode_state(blob).broker
    return {"balance": b.balance, "realized": b.realized_pnl, "fees": b.fees_paid, "funding": b.funding_paid,
            "position": b.position is not None, "trades_closed": b.trades_closed}


def _run_dir(ws: Path) -> Path:
    (only,) = list((ws / "runs").iterdir())
    return only


def _status_values(ws: Path) -> dict[str, list[float]]:
    code, out, err = run(ws, "--cli", "status", "--workspace", str(ws), seed_flags=False, timeout=30)
    assert code == ExitCode.OK, err
    values: dict[str, list[float]] = {}
    for line in out.splitlines():
        m = re.match(r"^\W*(\w+)\s*\W\s*(-?[\d,]+(?:\.\d+)?)\s*\W*$", line)
        if m:
            values.setdefault(m.group(1), []).append(float(m.group(2).replace(",", "")))
    return values


def _report_values(run_dir: Path) -> dict[str, float]:
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    return {k: float(v.replace(",", "")) for k, v in
            re.findall(r'data-key="(\w+)"><div class="label">[^<]*</div><div class="value[^"]*">(-?[\d,.]+)<', text)}


def _assert_outputs_agree(ws: Path) -> dict[str, Any]:
    broker = _broker(ws)
    run_dir = _run_dir(ws)
    summary = json.loads((run_dir / "summary.json").read_text())
    m = summary["metrics"]
    with open(run_dir / "trades.csv", newline="") as fh:
        trades = list(csv.DictReader(fh))
    with open(run_dir / "equity.csv", newline="") as fh:
        last_row = list(csv.DictReader(fh))[-1]
    final_equity = summary["final_equity"]  # the engine's account after the shutdown step
    if not broker["position"]:
        assert final_equity == pytest.approx(broker["balance"], abs=_TOL)
    # equity.csv ends with the account as it was left, fees and funding included
    assert float(last_row["equity"]) == pytest.approx(final_equity, abs=_TOL)
    assert float(last_row["fees_paid"]) == pytest.approx(broker["fees"], abs=_TOL)
    assert float(last_row["funding_paid"]) == pytest.approx(broker["funding"], abs=_TOL)
    assert float(last_row["position_qty"]) == summary["position"]["qty"]
    # trades.csv holds every closed trade (the flatten's too), and they add up to the broker's realized PnL
    assert len(trades) == broker["trades_closed"] == m["trades"]
    assert sum(float(t["pnl"]) for t in trades) == pytest.approx(broker["realized"], abs=_TOL)
    assert m["realized_pnl"] == pytest.approx(sum(float(t["net_pnl"]) for t in trades), abs=_TOL)
    # summary metrics
    assert m["final_equity"] == pytest.approx(final_equity, abs=_TOL)
    assert m["net_pnl"] == pytest.approx(final_equity - summary["starting_equity"], abs=_TOL)
    assert m["fees_paid"] == pytest.approx(broker["fees"], abs=_TOL)
    assert m["funding_paid"] == pytest.approx(broker["funding"], abs=_TOL)
    if not broker["position"]:  # all closed: mark-to-market and realized are the same money
        assert m["net_pnl"] == pytest.approx(m["realized_pnl"], abs=_TOL)
    # report.html totals
    report = _report_values(run_dir)
    for key in ("net_pnl", "final_equity", "realized_pnl", "fees_paid"):
        assert report[key] == pytest.approx(m[key], abs=0.006), key
    # status: every line naming these values says the same
    status = _status_values(ws)
    for key, want in (("final_equity", final_equity), ("equity", final_equity), ("net_pnl", m["net_pnl"]),
                      ("realized_pnl", m["realized_pnl"]), ("fees_paid", broker["fees"])):
        assert status.get(key), (key, status)
        for got in status[key]:
            assert got == pytest.approx(want, abs=6e-5), (key, status[key], want)
    return {"summary": summary, "trades": trades, "broker": broker}


def _hold(ws: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    sess = start(ws, *FAST, "--duration", "600", *extra, harness="scripted:hold", env=env)
    wait_until(lambda: (h := sess.heartbeat()) and h["status"] == "running"
               and (h["position"] or {}).get("qty") and h["working_orders"] and h,
               timeout=30, what="a position and a working order")
    return sess


@pytest.mark.parametrize("how", ["kill_switch", "kill_switch_no_flatten", "sigterm"])
def test_user_stops_holding_a_position_agree_everywhere(tmp_path: Path, how: str) -> None:
    ws = tmp_path / "ws"
    sess = _hold(ws, *(["--no-flatten"] if how == "kill_switch_no_flatten" else []))
    try:
        if how == "sigterm":
            sess.proc.send_signal(signal.SIGTERM)
        else:
            (ws / "kill.txt").write_text("test stop\n")
        code, _, err = sess.wait(30)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    got = _assert_outputs_agree(ws)
    flattened = how != "kill_switch_no_flatten"
    assert got["broker"]["position"] is not flattened
    if flattened:
        assert got["trades"][-1]["exit_reason"] == "flatten"
        assert got["summary"]["metrics"]["fees_paid"] > 0


def test_a_duration_end_with_an_open_position_agrees_everywhere(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "15", harness="scripted:hold")
    assert code == ExitCode.OK, err
    got = _assert_outputs_agree(ws)
    assert got["broker"]["position"] and got["summary"]["reason"] == "duration"
    run_dir = _run_dir(ws)  # nothing changed at the end: no extra equity row
    assert len((run_dir / "equity.csv").read_text().splitlines()) == len(
        (run_dir / "candles.csv").read_text().splitlines())


def test_an_error_stop_with_an_open_position_agrees_everywhere(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "600", "--stale-timeout", "1", harness="scripted:hold",
                       env={"LA_TEST_MOCK_FAULTS": "silence_after=8"})
    assert code == ExitCode.STALE_DATA, err
    got = _assert_outputs_agree(ws)
    assert got["broker"]["position"] and got["summary"]["reason"] == "stale_data"


def test_the_flatten_row_does_not_count_as_a_candle(tmp_path: Path) -> None:
    """The shutdown's equity row has no candle: summary candles and last_ts stay
    those of candles.csv (and of state.db's last processed candle)."""
    ws = tmp_path / "ws"
    sess = _hold(ws)
    try:
        (ws / "kill.txt").write_text("test stop\n")
        code, _, err = sess.wait(30)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    run_dir = _run_dir(ws)
    summary = json.loads((run_dir / "summary.json").read_text())
    candles = (run_dir / "candles.csv").read_text().splitlines()[1:]
    equity = (run_dir / "equity.csv").read_text().splitlines()[1:]
    assert len(equity) == len(candles) + 1 and summary["candles"] == len(candles)
    with sqlite3.connect(ws / "state.db") as db:
        (last,) = db.execute("SELECT last_candle_ts FROM engine_state").fetchone()
    assert summary["last_ts"] == int(candles[-1].split(",")[0]) == last
    assert int(equity[-1].split(",")[0]) > last and float(equity[-1].split(",")[3]) == 0.0


def test_fees_in_equity_csv_are_cumulative_across_restarts(tmp_path: Path) -> None:
    """Issue 10.5: equity.csv's equity is the account's (it continues from the
    store after a restart), so fees_paid and funding_paid next to it must be
    the account's too, not restart at 0 with each run."""
    ws = tmp_path / "ws"
    fees_by_run = []
    for run_id in ("first", "second"):
        sess = _hold(ws, "--run-id", run_id)
        try:
            (ws / "kill.txt").write_text("stop\n")
            code, _, err = sess.wait(30)
        finally:
            sess.kill()
        assert code == ExitCode.OK, err
        with open(ws / "runs" / run_id / "equity.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        fees_by_run.append((float(rows[0]["fees_paid"]), float(rows[-1]["fees_paid"])))
        broker = _broker(ws)
        assert float(rows[-1]["fees_paid"]) == pytest.approx(broker["fees"], abs=_TOL)
        assert float(rows[-1]["funding_paid"]) == pytest.approx(broker["funding"], abs=_TOL)
        summary = json.loads((ws / "runs" / run_id / "summary.json").read_text())
        assert summary["metrics"]["fees_paid"] == pytest.approx(broker["fees"], abs=_TOL)
    (first_start, first_end), (second_start, second_end) = fees_by_run
    assert first_end > 0 and second_start >= first_end and second_end > first_end
