"""The live session against the fake exchange: orders committed before they
are sent, fills back through the engine, the exchange's record matching the bot's."""

from __future__ import annotations

import json
from pathlib import Path

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import FakeExchangeHandle
from tests.live.support import KEYS, compare, db_rows, start_live


def test_a_live_session_trades_on_the_exchange_and_its_books_match(tmp_path: Path, fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"
    # ~16 orders in 20 s on an idle machine; a loaded one spends most of a short run starting up.
    code, out, err = start_live(ws, fake, "--run-id", "live1", duration=40).wait(180)
    assert code == ExitCode.OK, out + err
    result = compare(ws, fake)
    assert result["orders"] >= 2 and result["fills"] >= 2, result  # at least one round trip
    summary = json.loads((ws / "runs" / "live1" / "summary.json").read_text())
    assert summary["reason"] == "duration"
    events = [json.loads(x) for x in (ws / "runs" / "live1" / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "fill" for e in events) and any(e["kind"] == "trade_closed" for e in events)
    trades = (ws / "runs" / "live1" / "trades.csv").read_text().splitlines()
    assert len(trades) - 1 == len(db_rows(ws, "SELECT * FROM trades"))
    for secret in KEYS.values():
        assert secret not in out + err
