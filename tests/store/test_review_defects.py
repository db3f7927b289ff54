"""Regression tests for defects found in review, one per defect."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from laptop_agents.config import AppConfig
from laptop_agents.engine import build_engine
from laptop_agents.engine.recovery import open_engine
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.store import StateStore, StoreCorruptError
from tests.broker.helpers import T0
from tests.engine.scripted import ChurnStrategy

CFG = AppConfig()


def _last_committed_page1(wal: bytes, page_size: int) -> bytes:
    """Page 1 as of the newest frame holding it (every frame here is committed)."""
    frame = 24 + page_size
    found = b""
    for off in range(32, len(wal) - frame + 1, frame):
        if int.from_bytes(wal[off : off + 4], "big") == 1:
            found = wal[off + 24 : off + frame]
    assert found, "the WAL holds no copy of page 1"
    return found


def test_a_kill_during_a_checkpoint_that_grows_the_file_is_not_called_corruption(tmp_path: Path) -> None:
    # A checkpoint copies WAL frames into the database file in page order:
    # page 1 (whose header holds the new, larger page count) first, the pages
    # that extend the file last. kill -9 in between leaves a file shorter than
    # its header says next to an intact WAL, from which SQLite recovers. The
    # store must open it and continue, not refuse it as truncated.
    candles = SyntheticMarket(6, T0).candles(0, 4000)
    path = tmp_path / "state.db"
    crashed = tmp_path / "crashed" / "state.db"
    crashed.parent.mkdir()
    store = StateStore(path)
    store.conn.execute("PRAGMA wal_autocheckpoint=0")
    engine = open_engine(store, CFG, ChurnStrategy(6))
    for c in candles[:50]:
        store.commit(engine, engine.on_candle(c))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for c in candles[50:]:
        store.commit(engine, engine.on_candle(c))
    # the process "dies" here: copy the files while the connection is still open
    shutil.copyfile(path, crashed)
    shutil.copyfile(f"{path}-wal", f"{crashed}-wal")
    store.close()
    db = bytearray(crashed.read_bytes())
    page_size = int.from_bytes(db[16:18], "big")
    page1 = _last_committed_page1(Path(f"{crashed}-wal").read_bytes(), page_size)
    assert int.from_bytes(page1[28:32], "big") * page_size > len(db), "the run did not grow the file"
    db[:page_size] = page1  # the checkpoint wrote page 1, then the process was killed
    crashed.write_bytes(bytes(db))

    ref = build_engine(CFG, ChurnStrategy(6))
    for c in candles:
        ref.on_candle(c)
    with StateStore(crashed) as again:
        got = again.load_engine(CFG, ChurnStrategy(6))
        assert got is not None
        assert got.last_candle_ts == candles[-1].ts
        assert got.broker.state() == ref.broker.state()
        assert len(again.fills()) == ref.broker.fill_count


def test_a_truncated_file_next_to_a_wal_that_cannot_cover_it_is_still_corruption(tmp_path: Path) -> None:
    candles = SyntheticMarket(6, T0).candles(0, 4000)
    path = tmp_path / "state.db"
    crashed = tmp_path / "crashed" / "state.db"
    crashed.parent.mkdir()
    store = StateStore(path)
    store.conn.execute("PRAGMA wal_autocheckpoint=0")
    engine = open_engine(store, CFG, ChurnStrategy(6))
    for c in candles:
        store.commit(engine, engine.on_candle(c))
    store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the file is complete, the WAL still holds frames
    store.commit(engine, engine.on_candle(SyntheticMarket(6, T0).candles(4000, 4001)[0]))
    shutil.copyfile(path, crashed)
    shutil.copyfile(f"{path}-wal", f"{crashed}-wal")
    store.close()
    data = crashed.read_bytes()
    crashed.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreCorruptError):
        StateStore(crashed).load_engine(CFG, ChurnStrategy(6))


def test_a_damaged_store_with_a_wal_is_kept_byte_for_byte_wal_included(tmp_path: Path) -> None:
    # Closing SQLite's last read-write connection checkpoints the WAL into the
    # file and deletes it: a store refused as damaged ("kept for inspection")
    # lost its WAL, the newest history, and had its pages rewritten.
    path = tmp_path / "state.db"
    crashed = tmp_path / "crashed" / "state.db"
    crashed.parent.mkdir()
    store = StateStore(path)
    store.conn.execute("PRAGMA wal_autocheckpoint=0")
    engine = open_engine(store, CFG, ChurnStrategy(6))
    for c in SyntheticMarket(6, T0).candles(0, 300):
        store.commit(engine, engine.on_candle(c))
    shutil.copyfile(path, crashed)
    shutil.copyfile(f"{path}-wal", f"{crashed}-wal")
    store.close()
    data = bytearray(crashed.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for off in range(page_size, len(data), page_size):
        data[off : off + 64] = b"\xff" * 64
    crashed.write_bytes(bytes(data))
    wal = Path(f"{crashed}-wal").read_bytes()
    with pytest.raises(StoreCorruptError, match="kept for inspection"):
        StateStore(crashed).load_engine(CFG, ChurnStrategy(6))
    assert crashed.read_bytes() == bytes(data)
    assert Path(f"{crashed}-wal").read_bytes() == wal
