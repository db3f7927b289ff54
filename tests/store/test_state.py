"""The SQLite state store: one transaction per candle, crash-only reload,
idempotence across restarts, corruption and full-disk detection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import AccountView
from laptop_agents.domain.events import OrderEvent, OrderExpired
from laptop_agents.domain.models import Candle, OrderIntent, OrderType, Side
from laptop_agents.engine import build_engine, open_engine
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.store import (
    StateStore,
    StoreCorruptError,
    StoreMismatchError,
    StoreWriteError,
)
from laptop_agents.store.state import SCHEMA_VERSION
from tests.broker.helpers import DAY, MIN, T0, flat
from tests.engine.scripted import ChurnStrategy, ScriptedStrategy

CFG = AppConfig()


def run_with_store(store: StateStore, candles: list[Candle], strategy: object) -> None:
    engine = open_engine(store, CFG, strategy)  # type: ignore[arg-type]
    for c in candles:
        store.commit(engine, engine.on_candle(c))


def populated(path: Path, n: int = 600) -> Path:
    with StateStore(path) as store:
        run_with_store(store, SyntheticMarket(2, T0).candles(0, n), ChurnStrategy(2))
    return path


def test_new_store_is_wal_with_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "ws" / "state.db"
    store = StateStore(path)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == SCHEMA_VERSION
    assert store.load_engine(CFG, ChurnStrategy()) is None
    store.close()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_reload_gives_the_same_engine_and_continues_identically(tmp_path: Path) -> None:
    candles = SyntheticMarket(4, T0).candles(0, 1500)
    ref = build_engine(CFG, ChurnStrategy(4))
    for c in candles:
        ref.on_candle(c)
    path = tmp_path / "state.db"
    for chunk in (candles[:500], candles[:900], candles):  # restarts that re-see old candles
        with StateStore(path) as store:
            run_with_store(store, chunk, ChurnStrategy(4))
    with StateStore(path) as store:
        engine = store.load_engine(CFG, ChurnStrategy(4))
        assert engine is not None
        assert engine.status() == ref.status()
        assert store.last_candle_ts() == candles[-1].ts
        fills = store.fills()
        assert len(fills) == ref.broker.fill_count
        assert len(store.trades()) == ref.broker.trades_closed
        assert store.processed_ids() == ref.broker.processed_ids


def test_processed_ids_survive_restart_so_a_repeated_id_is_a_duplicate(tmp_path: Path) -> None:
    def script(c: Candle, a: AccountView) -> list[OrderIntent]:
        return [OrderIntent("same-id", Side.BUY, OrderType.MARKET, 1.0)]

    path = tmp_path / "state.db"
    with StateStore(path) as store:
        e = open_engine(store, CFG, ScriptedStrategy(script))
        r = e.on_candle(flat(0, 100.0))
        assert len(r.fills) == 1
        store.commit(e, r)
    with StateStore(path) as store:
        e = open_engine(store, CFG, ScriptedStrategy(script))
        r = e.on_candle(flat(1, 100.0))
        assert r.fills == []
        assert [ev.status for ev in r.events if isinstance(ev, OrderEvent)] == ["duplicate"]


def test_breaker_state_persists_across_restart_and_resets_next_day(tmp_path: Path) -> None:
    cfg = AppConfig.model_validate({"risk": {"breaker_drawdown_pct": 5, "max_daily_loss_pct": 50}})

    def script(c: Candle, a: AccountView) -> list[OrderIntent]:
        return (
            [OrderIntent(f"o{c.ts}", Side.BUY, OrderType.MARKET, 10.0)] if c.ts in (T0, T0 + 2 * MIN) else []
        )

    path = tmp_path / "state.db"
    with StateStore(path) as store:
        e = open_engine(store, cfg, ScriptedStrategy(script))
        store.commit(e, e.on_candle(flat(0, 1000.0)))
        r = e.on_candle(flat(1, 900.0))
        assert "breaker_trip" in [ev.kind for ev in r.events]
        store.commit(e, r)
    with StateStore(path) as store:
        e = open_engine(store, cfg, ScriptedStrategy(script))
        assert e.status().breaker.active is True
        r = e.on_candle(flat(2, 1000.0))  # a restart does not reset it
        assert [ev.reason for ev in r.events if isinstance(ev, OrderEvent)] == ["breaker"]
        store.commit(e, r)
        r = e.on_candle(flat(1440, 1000.0))
        assert [ev.kind for ev in r.events] == ["breaker_reset", "decision"]
        store.commit(e, r)
    with StateStore(path) as store:
        e = open_engine(store, cfg, ScriptedStrategy(script))
        assert e.status().breaker.active is False


def test_working_orders_expire_on_load(tmp_path: Path) -> None:
    def script(c: Candle, a: AccountView) -> list[OrderIntent]:
        if c.ts == T0:
            return [
                OrderIntent(
                    "short-lived", Side.BUY, OrderType.LIMIT, 1.0, price=50.0, expire_ts=T0 + 10 * MIN
                ),
                OrderIntent("day", Side.BUY, OrderType.LIMIT, 1.0, price=50.0),
            ]
        return []

    path = tmp_path / "state.db"
    with StateStore(path) as store:
        e = open_engine(store, CFG, ScriptedStrategy(script))
        store.commit(e, e.on_candle(flat(0, 100.0)))
    with StateStore(path) as store:
        # the shell restarts hours later and passes its clock to the load
        e = open_engine(store, CFG, ScriptedStrategy(script), now_ts=T0 + 2 * 3_600_000)
        assert [o.client_id for o in e.status().working_orders] == ["day"]
        assert [(ev.kind, ev.client_id) for ev in e.pending_events if isinstance(ev, OrderExpired)] == [
            ("order_expired", "short-lived")
        ]
        assert len(e.pending_events) == 1
        r = e.on_candle(flat(200, 100.0))
        assert r.events[0].kind == "order_expired"  # journaled and committed with the next step
        store.commit(e, r)
    with StateStore(path) as store:
        e = open_engine(store, CFG, ScriptedStrategy(script), now_ts=T0 + DAY)
        assert e.status().working_orders == ()
        assert [ev.client_id for ev in e.pending_events if isinstance(ev, OrderExpired)] == ["day"]
        assert len(e.pending_events) == 1


def test_refuses_another_symbol_or_strategy(tmp_path: Path) -> None:
    path = populated(tmp_path / "state.db", 50)
    with StateStore(path) as store:
        with pytest.raises(StoreMismatchError, match="strategy 'churn'.*'scripted'"):
            store.load_engine(CFG, ScriptedStrategy())
        inverse = AppConfig.model_validate({"trading": {"symbol": "BTCUSD"}})
        with pytest.raises(StoreMismatchError, match="symbol BTCUSDT.*BTCUSD"):
            open_engine(store, inverse, ChurnStrategy(2))


def test_records_source_and_interval_and_refuses_others(tmp_path: Path) -> None:
    """A store written by the mock market must not feed a bitunix session (its
    candle times are simulated), nor a 1m store a 5m session."""
    path = populated(tmp_path / "state.db", 50)
    with StateStore(path) as store:
        assert store.meta()["source"] == "mock" and store.meta()["interval"] == "1m"
        bitunix = AppConfig.model_validate({"trading": {"source": "bitunix"}})
        with pytest.raises(StoreMismatchError, match="source mock.*bitunix.*another --workspace"):
            open_engine(store, bitunix, ChurnStrategy(2))
        five = AppConfig.model_validate({"trading": {"interval": "5m"}})
        with pytest.raises(StoreMismatchError, match="interval 1m.*5m.*another --workspace"):
            open_engine(store, five, ChurnStrategy(2))
        assert open_engine(store, CFG, ChurnStrategy(2)).last_candle_ts is not None


def test_a_store_without_source_or_interval_opens_and_adopts_them(tmp_path: Path) -> None:
    """Stores written before the identity had these fields still open; they
    take the current source and interval, so a later change is refused."""
    path = populated(tmp_path / "state.db", 50)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM meta WHERE key IN ('source', 'interval')")
    bitunix = AppConfig.model_validate({"trading": {"source": "bitunix"}})
    with StateStore(path) as store:
        assert "source" not in store.meta()
        assert open_engine(store, bitunix, ChurnStrategy(2)).last_candle_ts is not None
    with StateStore(path) as store:  # loading alone (a session refused later) stamps nothing
        engine = open_engine(store, bitunix, ChurnStrategy(2))
        assert "source" not in store.meta()
        store.commit(engine, engine.on_candle(SyntheticMarket(2, T0).candles(50, 1)[0]))
    with StateStore(path) as store:
        assert store.meta()["source"] == "bitunix" and store.meta()["interval"] == "1m"
        with pytest.raises(StoreMismatchError, match="source bitunix.*mock"):
            open_engine(store, CFG, ChurnStrategy(2))


def test_a_store_ahead_of_the_market_clock_is_refused(tmp_path: Path) -> None:
    """The last processed candle lies in the market's future (a fast mock run
    wrote it): every live candle would be skipped, so it must not start."""
    from laptop_agents.store import StoreAheadError, check_store_clock

    path = populated(tmp_path / "state.db", 120)
    with StateStore(path) as store:
        last = store.last_candle_ts()
        assert last is not None
        check_store_clock(store, now_ms=last + MIN, interval="1m")  # the normal case: just closed
        check_store_clock(store, now_ms=last - MIN + 1, interval="1m")  # within one interval: clock skew
        with pytest.raises(StoreAheadError) as info:
            check_store_clock(store, now_ms=last - 61 * MIN, interval="1m")
        msg = str(info.value)
        assert "\n" not in msg and "2023-11-14T01:59:00Z" in msg and "2023-11-14T00:58:00Z" in msg
        assert "ahead of the market" in msg and "--workspace" in msg and "move" in msg
        assert isinstance(info.value, StoreMismatchError)
    with StateStore(tmp_path / "empty.db") as store:
        check_store_clock(store, now_ms=0, interval="1m")  # nothing stored: nothing to be ahead


def test_refuses_a_real_strategy_whose_indicator_periods_changed(tmp_path: Path) -> None:
    from laptop_agents.strategy import build_strategy

    path = tmp_path / "state.db"
    candles = SyntheticMarket(2, T0).candles(0, 120)
    with StateStore(path) as store:
        run_with_store(store, candles, build_strategy(CFG))
    with StateStore(path) as store:
        with pytest.raises(StoreMismatchError, match="differently shaped configuration.*fresh workspace"):
            store.load_engine(CFG, build_strategy(CFG, overrides={"ema_slow": 60}))
        # the same periods (other thresholds) continue from the stored state
        e = store.load_engine(CFG, build_strategy(CFG, overrides={"rr_min": 2.0}))
        assert e is not None and e.last_candle_ts == candles[-1].ts


def _assert_kept(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before


def test_garbage_header_detected_and_file_kept(tmp_path: Path) -> None:
    path = populated(tmp_path / "state.db")
    data = bytearray(path.read_bytes())
    data[0:16] = b"not a database!!"
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="not an SQLite database") as exc:
        StateStore(path)
    assert "\n" not in str(exc.value)
    _assert_kept(path, bytes(data))


def test_truncated_file_detected_and_kept(tmp_path: Path) -> None:
    path = populated(tmp_path / "state.db")
    data = path.read_bytes()
    assert len(data) > 8192
    cut = data[: len(data) // 2]
    path.write_bytes(cut)
    with pytest.raises(StoreCorruptError, match="truncated"):
        StateStore(path)
    _assert_kept(path, cut)
    path.write_bytes(b"")
    with pytest.raises(StoreCorruptError, match="empty"):
        StateStore(path)
    path.write_bytes(data[:50])
    with pytest.raises(StoreCorruptError):
        StateStore(path)
    _assert_kept(path, data[:50])


def test_damaged_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    path = populated(tmp_path / "state.db")
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    # overwrite the b-tree pages after the schema page with junk
    for off in range(page, len(data), page):
        data[off : off + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="kept for inspection") as exc:
        StateStore(path)
    assert "\n" not in str(exc.value)
    _assert_kept(path, bytes(data))


def test_missing_db_with_leftover_wal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Path(f"{path}-wal").write_bytes(b"x" * 100)
    with pytest.raises(StoreCorruptError, match="write-ahead log"):
        StateStore(path)
    assert not path.exists()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = populated(tmp_path / "state.db", 10)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="newer than this program"):
        StateStore(path)


def test_migrations_run_on_an_older_file(tmp_path: Path) -> None:
    """A valid SQLite file at schema version 0 (no tables yet) is migrated."""
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE unrelated (x)")
    conn.commit()
    conn.close()
    with StateStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.load_engine(CFG, ChurnStrategy()) is None


def test_full_disk_is_a_write_error_and_leaves_the_last_commit_intact(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    market = SyntheticMarket(6, T0)
    store = StateStore(path)
    engine = open_engine(store, CFG, ChurnStrategy(6))
    for i in range(100):
        store.commit(engine, engine.on_candle(market.candle(i)))
    committed = engine.status()
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL path
    with pytest.raises(StoreWriteError, match="database or disk is full") as exc:
        for i in range(100, 20_000):
            r = engine.on_candle(market.candle(i))
            committed_ts = engine.last_candle_ts
            store.commit(engine, r)
            committed = engine.status()
    assert "\n" not in str(exc.value)
    store.close()
    with StateStore(path) as again:
        reloaded = again.load_engine(CFG, ChurnStrategy(6))
        assert reloaded is not None
        assert reloaded.last_candle_ts < committed_ts  # the failed candle is not there
        assert reloaded.status() == committed


def test_memory_store_works_for_benchmarks() -> None:
    with StateStore(":memory:") as store:
        run_with_store(store, SyntheticMarket(1, T0).candles(0, 300), ChurnStrategy(1))
        assert store.last_candle_ts() is not None


def test_skipped_candle_writes_nothing(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        e = open_engine(store, CFG, ChurnStrategy(1))
        store.commit(e, e.on_candle(flat(5, 100.0)))
        n = store.conn.execute("SELECT commits FROM engine_state").fetchone()[0]
        store.commit(e, e.on_candle(flat(5, 100.0)))
        assert store.conn.execute("SELECT commits FROM engine_state").fetchone()[0] == n


def test_a_directory_in_place_of_the_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(StoreCorruptError, match="not a regular file"):
        StateStore(tmp_path / "state.db")


def test_a_locked_store_is_a_write_error_not_corruption(tmp_path: Path) -> None:
    path = populated(tmp_path / "state.db", 20)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = StateStore(path)
        store.conn.execute("PRAGMA busy_timeout=50")
        engine = store.load_engine(CFG, ChurnStrategy(2))
        assert engine is not None
        with pytest.raises(StoreWriteError, match="locked"):
            store.commit(engine, engine.on_candle(flat(10_000, 100.0)))
        store.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_quiet_candle_appends_one_page_to_the_wal(tmp_path: Path) -> None:
    """Only what changed is written: a candle without orders, fills or trades
    rewrites the one engine_state row, which fits a single page."""
    from laptop_agents.strategy import build_strategy

    path = tmp_path / "state.db"
    wal = Path(f"{path}-wal")
    with StateStore(path) as store:
        page = store.conn.execute("PRAGMA page_size").fetchone()[0]
        engine = open_engine(store, CFG, build_strategy(CFG))
        quiet = 0
        for c in SyntheticMarket(1, T0).candles(0, 300):
            r = engine.on_candle(c)
            before = wal.stat().st_size if wal.exists() else 0
            store.commit(engine, r)
            if not r.events and not r.fills and before:
                assert wal.stat().st_size - before == page + 24  # one WAL frame: header + page
                quiet += 1
        assert quiet > 200 and page <= 4096


def test_a_failed_quiet_commit_is_a_write_error_and_the_next_one_catches_up(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        run_with_store(store, SyntheticMarket(2, T0).candles(0, 20), ScriptedStrategy())
    store = StateStore(path)
    engine = store.load_engine(CFG, ScriptedStrategy())
    assert engine is not None
    store.commit(engine, engine.on_candle(flat(10_000, 100.0)))  # quiet: one UPDATE
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store.conn.execute("PRAGMA busy_timeout=50")
        with pytest.raises(StoreWriteError, match="locked"):
            store.commit(engine, engine.on_candle(flat(10_001, 100.0)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.last_candle_ts() == T0 + 10_000 * MIN
    store.commit(engine, engine.on_candle(flat(10_002, 100.0)))
    store.close()
    with StateStore(path) as again:
        reloaded = again.load_engine(CFG, ScriptedStrategy())
        assert reloaded is not None and reloaded.last_candle_ts == T0 + 10_002 * MIN

