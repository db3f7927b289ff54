"""Live sessions through the real CLI against the fake exchange (started for
real on 127.0.0.1), and the comparison of the exchange's own record with the
bot's: state.db (fills, live_orders) and trades.csv."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

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
    """The exchange's record against the bot's, order by order; raises AssertionError on any difference."""
    log = fake.order_log()
    accepted = [e for e in log if e["kind"] == "accepted" and e.get("client_id")]
    ex_fills: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for e in log:
        if e["kind"] == "fill" and e.get("client_id"):
            ex_fills[e["client_id"]][0] += e["qty"]
            ex_fills[e["client_id"]][1] += e["qty"] * e["price"]
    rows = {r["exchange_id"]: dict(r) for r in db_rows(ws, "SELECT * FROM live_orders")}
    by_intent = {r["intent_id"]: cid for cid, r in rows.items()}
    bot_fills: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for f in db_rows(ws, "SELECT * FROM fills"):
        cid = by_intent.get(f["client_id"])
        assert cid is not None, f"a fill in state.db for {f['client_id']} that no live order row explains"
        bot_fills[cid][0] += f["qty"]
        bot_fills[cid][1] += f["qty"] * f["price"]
    # every exchange order is one of the bot's rows, once
    ids = [e["client_id"] for e in accepted]
    assert len(ids) == len(set(ids)), "an intent became more than one exchange order"
    assert set(ids) <= set(rows), f"exchange orders the bot has no row for: {set(ids) - set(rows)}"
    # every fill counted once (quantity and value per order)
    assert set(ex_fills) == set(bot_fills), (set(ex_fills) ^ set(bot_fills))
    for cid, (qty, value) in ex_fills.items():
        bq, bv = bot_fills[cid]
        assert abs(bq - qty) < 1e-9, f"{cid}: exchange filled {qty}, books {bq}"
        assert abs(bv - value) < 1e-6 * max(1.0, value), f"{cid}: exchange value {value}, books {bv}"
    positions = [p for p in fake.positions() if p.get("account", DEFAULT_ACCOUNT.uid) == DEFAULT_ACCOUNT.uid]
    return {"orders": len(ids), "fills": sum(1 for e in log if e["kind"] == "fill"), "rows": rows,
            "positions": positions}
