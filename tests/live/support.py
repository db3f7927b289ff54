"""Live sessions through the real CLI against the fake exchange (started for
real on 127.0.0.1), and the comparison of the exchange's own record with the
bot's: state.db (fills, live_orders) and trades.csv."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from laptop_agents.testing.drill.live_books import compare_books
from laptop_agents.testing.fake_exchange import DEFAULT_ACCOUNT, FakeExchangeHandle
from tests.session.helpers import Session, start

KEYS = {"BITUNIX_API_KEY": DEFAULT_ACCOUNT.api_key, "BITUNIX_API_SECRET": DEFAULT_ACCOUNT.secret_key}


def live_args(fake: FakeExchangeHandle, *extra: str, speed: float = 600, duration: float = 30.0) -> list[str]:
    return ["--async", "--source", "mock", "--speed", str(speed), "--warmup-bars", "5", "--duration", str(duration),
            "--execution-mode", "live", "--enable-live", "--bitunix-rest-url", fake.rest_url,
            "--bitunix-private-ws-url", fake.private_ws_url, "--no-live-view", *extra]


def start_live(ws: Path, fake: FakeExchangeHandle, *extra: str, harness: str = "scripted:roundtrip",
               env: dict[str, str] | None = None, **kw: Any) -> Session:
    return start(ws, *live_args(fake, *extra, **kw), harness=harness, env={**KEYS, **(env or {})})


def db_rows(ws: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(ws / "state.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def compare(ws: Path, fake: FakeExchangeHandle) -> dict[str, Any]:
    """The exchange's record against the bot's, order by order (the drill's own
    comparison, :func:`compare_books`); raises AssertionError on a doubled or
    unknown order, or a fill lost, doubled or invented."""
    result = compare_books(fake.order_log(), fake.positions(), db_rows(ws, "SELECT * FROM live_orders"),
                           db_rows(ws, "SELECT * FROM fills"), account=DEFAULT_ACCOUNT.uid)
    problems = result.order_problems() + result.fill_problems()
    assert not problems, "; ".join(problems)
    return {"orders": result.orders, "fills": result.fills, "rows": result.rows, "positions": result.positions}
