"""Schema 3: live orders, committed with the step that decided them (before
they are sent), and the migration from schema 2 that adds them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from laptop_agents.config import load_config
from laptop_agents.domain.contracts import StepResult
from laptop_agents.engine import build_engine
from laptop_agents.store import StateStore, StoreWriteError
from laptop_agents.store.live_orders import LiveOrder
from laptop_agents.store.state import SCHEMA_VERSION
from laptop_agents.strategy import build_strategy


def _row(cid: str, **kw: object) -> LiveOrder:
    base: dict[str, object] = {"exchange_id": cid, "intent_id": f"i-{cid}", "run_id": "r", "candle_ts": 60_000,
                               "seq": 0, "side": "BUY", "type": "MARKET", "qty": 0.01, "price": None,
                               "reduce_only": False}
    base.update(kw)
    return LiveOrder(**base)  # type: ignore[arg-type]


def _engine():  # type: ignore[no-untyped-def]
    cfg = load_config("paper", {}, environ={}).config
    return build_engine(cfg, build_strategy(cfg))


def test_live_orders_are_written_with_the_step_in_one_transaction(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    engine = _engine()
    store.commit(engine, StepResult(ts=60_000, processed=True, equity=1.0), [_row("a"), _row("b", seq=1)])
    assert [o.exchange_id for o in store.live_orders()] == ["a", "b"]
    assert store.live_orders()[0] == _row("a")  # every field back as written (booleans too)
    # an update replaces the row
    store.put_live_orders([_row("a", state="acked", order_id="o-1", filled=0.01, value=500.0, fee=0.3)])
    got = store.live_orders()[0]
    assert (got.state, got.order_id, got.filled, got.fee) == ("acked", "o-1", 0.01, 0.3)
    store.close()


def test_a_failed_step_commit_writes_none_of_its_orders(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    engine = _engine()
    store.commit(engine, StepResult(ts=60_000, processed=True, equity=1.0))
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    store.conn.execute("PRAGMA busy_timeout=50")
    try:
        with pytest.raises(StoreWriteError):
            store.commit(engine, StepResult(ts=120_000, processed=True, equity=1.0), [_row("c")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.live_orders() == []  # the order was never durable: it must never be sent
    store.close()


def test_a_schema_2_store_gains_the_live_orders_table_and_keeps_its_state(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    engine = _engine()
    store.commit(engine, StepResult(ts=60_000, processed=True, equity=1.0))
    store.close()
    with sqlite3.connect(path) as conn:  # back to what schema 2 wrote
        conn.execute("DROP TABLE live_orders")
        conn.execute("UPDATE schema_version SET version = 2")
    store = StateStore(path)
    assert store.schema_version == SCHEMA_VERSION == 3
    assert store.live_orders() == []
    assert store.conn.execute("SELECT commits FROM engine_state").fetchone() == (1,)
    store.commit(engine, StepResult(ts=120_000, processed=True, equity=1.0), [_row("d")])
    assert [o.exchange_id for o in store.live_orders()] == ["d"]
    store.close()
