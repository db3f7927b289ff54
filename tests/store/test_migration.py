"""Schema 1 -> 2: the pickled core and strategy blobs become one plain-data
EngineState blob, in one transaction; a state that cannot be carried over
leaves the file as it was."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from laptop_agents.broker.state import WORKING_ORDER_FIELDS, WorkingOrder
from laptop_agents.engine.state import decode_state, decode_v1
from laptop_agents.store.state import SCHEMA_VERSION, StateStore, StoreCorruptError

FIXTURES = Path(__file__).parent / "fixtures"


def _v1_copy(tmp_path: Path, name: str = "default-btcusdt") -> Path:
    db = tmp_path / "state.db"
    shutil.copyfile(FIXTURES / f"v1-{name}.db", db)
    return db


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


@pytest.mark.parametrize("name", ["default-btcusdt", "smacross-btcusd"])
def test_a_v1_store_is_migrated_to_one_plain_state_blob(tmp_path: Path, name: str) -> None:
    db = _v1_copy(tmp_path, name)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (1,)
        last, core, strategy, commits = conn.execute(
            "SELECT last_candle_ts, core, strategy, commits FROM engine_state").fetchone()
        orders = [WorkingOrder.from_row(r[:-1]) for r in conn.execute("SELECT * FROM working_orders ORDER BY seq")]
        counts = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("fills", "trades", "processed_ids")]
    before = decode_v1(core, strategy, orders)
    with StateStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
    with sqlite3.connect(db) as conn:
        assert _columns(conn, "engine_state") == ["id", "last_candle_ts", "state", "commits"]
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'engine_state_v1'").fetchone() is None
        row = conn.execute("SELECT last_candle_ts, state, commits FROM engine_state").fetchone()
        assert [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("fills", "trades", "processed_ids")] == counts
    assert (row[0], row[2]) == (last, commits)
    assert decode_state(row[1], orders) == before
    assert before.last_candle_ts == last and (name != "default-btcusdt" or before.broker.orders)


def test_a_v1_state_that_cannot_be_carried_over_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """A schema-1 strategy without snapshot_state was stored as a pickled
    object: this version cannot read it, so the store is refused (exit 8,
    kept for inspection) and the migration rolled back."""
    db = _v1_copy(tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE engine_state SET strategy = ?", (b"LA-REFS1\x80\x05N.",))
    conn.close()  # the last connection: checkpointed into the file
    before = db.read_bytes()
    with pytest.raises(StoreCorruptError, match=r"cannot be migrated to schema 3 .*fresh workspace.*kept for inspection"):
        StateStore(db)
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (1,)
        assert "core" in _columns(conn, "engine_state")


def test_the_working_order_columns_are_the_records_fields(tmp_path: Path) -> None:
    with StateStore(tmp_path / "new.db") as store:
        assert _columns(store.conn, "working_orders") == [*WORKING_ORDER_FIELDS, "seq"]
    with StateStore(_v1_copy(tmp_path)) as store:
        assert _columns(store.conn, "working_orders") == [*WORKING_ORDER_FIELDS, "seq"]
