"""A simulated day of live trading through the real CLI against the fake
exchange, with faults: a placement that times out after the exchange
accepted it, the private socket dropped, 5xx answers to cancels, fills whose
pushes are late. The exchange's own record (the fake's order log) and the
bot's (state.db, trades.csv) must match exactly: every intent at most one
exchange order, every fill counted once, the same final position."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import start_fake_exchange
from tests.live.support import compare, db_rows, start_live

SPEED = 1440.0  # a simulated day in a wall minute
FAULTS = ("place_timeout@6:11,private_disconnect@14,cancel_5xx=502@18:2,delay_fills@24:4,"
          "private_disconnect@33,place_timeout@40:11,delay_fills@50:3")


@pytest.mark.slow
def test_a_simulated_live_day_with_faults_matches_the_exchange(tmp_path: Path) -> None:
    fake = start_fake_exchange(seed=7, speed=SPEED, push_interval_s=0.05, epoch_ts=0, faults=FAULTS)
    try:
        ws = tmp_path / "ws"
        code, out, err = start_live(ws, fake, "--run-id", "day", harness="scripted:day", speed=SPEED,
                                    duration=1440).wait(240)
        assert code == ExitCode.OK, out + err
        stats = fake.stats()
        log = fake.order_log()
        result = compare(ws, fake)
        positions = fake.positions()
    finally:
        fake.stop()
    fired = stats["faults_fired"]
    consumed = [e["fault"] for e in log if e["kind"] == "fault"]
    summary = json.loads((ws / "runs" / "day" / "summary.json").read_text())
    assert summary["reason"] == "duration" and summary["session"]["candles"] >= 1000, summary["session"]
    # a day of orders: entries, resting limits (most expire: cancels), exits
    # (two placements that time out hold the send queue for ~11 s each, a
    # quarter of the simulated day: fewer round trips than the plan's 72)
    assert result["orders"] >= 30, result["orders"]
    rows = result["rows"]
    assert sum(1 for r in rows.values() if r["type"] == "LIMIT" and r["status"] in ("CANCELED",
                                                                                   "PART_FILLED_CANCELED")) >= 5
    # the final position is the exchange's
    assert summary["position"]["qty"] == pytest.approx(sum(p["qty"] for p in positions), abs=1e-9)
    # trades.csv holds every closed trade of state.db
    with open(ws / "runs" / "day" / "trades.csv", newline="") as fh:
        trades = list(csv.DictReader(fh))
    assert len(trades) == len(db_rows(ws, "SELECT * FROM trades")) >= 5
    # the faults really happened (by the fake's own record) and nothing was left unresolved
    assert fired.count("private_disconnect") == 2 and fired.count("delay_fills") == 2, fired
    # (a placement the exchange refuses uses its fault up too, recorded with ``refused``)
    assert consumed.count("place_timeout") == 2 and consumed.count("cancel_5xx") >= 1, \
        (consumed, [e for e in log if e["kind"] in ("fault", "rejected")], summary["session"])
    assert not [r for r in rows.values() if r["state"] == "committed"]
