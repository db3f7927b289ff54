"""The heartbeat record: shape, atomic replacement, scrubbing, and tolerant
reading (older files, torn files) -- one type for session, watchdog and status."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from laptop_agents.fileio import write_json_atomic
from laptop_agents.heartbeat import Heartbeat, HeartbeatWriter, read_heartbeat, write_heartbeat
from laptop_agents.logs import SCRUBBER

KEYS = {"ts_ms", "time", "pid", "run_id", "status", "reason", "equity", "position", "working_orders", "rss_mb",
        "last_candle_ts", "market_data_age_s", "errors", "breaker", "mode", "candles", "skipped",
        "last_processed_age_s"}


def test_shape_and_status_transitions(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    hb = HeartbeatWriter(path, "run-1", lambda: {"equity": 10_000.0, "position": {"qty": 0.0}, "working_orders": 0},
                         wall_clock=lambda: 1_700_000_000.25)
    hb.beat()
    raw = json.loads(path.read_text())
    assert set(raw) == KEYS  # exactly the file's keys, nothing of the reader's (mtime, readable)
    data = read_heartbeat(path)
    assert data is not None and data.readable
    assert data.ts_ms == 1_700_000_000_250 and data.time is not None and data.time.startswith("2023-11-14T22:13:20.250")
    assert data.pid == os.getpid() and data.status == "starting" and data.reason is None
    assert data.rss_mb is not None and data.rss_mb > 0 and data.equity == 10_000.0
    assert data.wall_ts() == 1_700_000_000.25 and not data.ending
    hb.beat("stopped", "kill_switch")
    data = read_heartbeat(path)
    assert data is not None and data.status == "stopped" and data.reason == "kill_switch" and data.ending
    with pytest.raises(ValueError, match="allowed"):
        hb.beat("sleeping")
    assert hb.writes == 2


def test_a_field_the_record_does_not_have_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        HeartbeatWriter(tmp_path / "hb.json", "r", lambda: {"equty": 1.0}).beat()


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    for i in range(20):
        write_json_atomic(path, {"i": i})
    assert json.loads(path.read_text()) == {"i": 19}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_missing_and_unreadable_heartbeats(tmp_path: Path) -> None:
    """No file is no heartbeat; a torn or foreign file is a heartbeat of unknown
    content that still counts by its modification time (a file being written is alive)."""
    assert read_heartbeat(tmp_path / "missing.json") is None
    for text in ("{half", "[1, 2]", "null"):
        path = tmp_path / "bad.json"
        path.write_text(text)
        rec = read_heartbeat(path)
        assert rec is not None and not rec.readable and rec.status is None and rec.pid is None
        assert rec.wall_ts() == pytest.approx(path.stat().st_mtime)


def test_an_older_or_foreign_file_reads_tolerantly(tmp_path: Path) -> None:
    path = tmp_path / "hb.json"
    # An older version's file: fewer keys, a float ts_ms; plus a wrongly typed value and a key of a newer one.
    path.write_text(json.dumps({"ts_ms": 1_700_000_000_000.0, "pid": "12", "status": "running", "equity": True,
                                "errors": [], "from_the_future": {"x": 1}}))
    rec = read_heartbeat(path)
    assert rec is not None and rec.readable
    assert rec.ts_ms == 1_700_000_000_000 and rec.wall_ts() == 1_700_000_000.0
    assert rec.pid is None and rec.equity is None and rec.errors == {} and rec.candles is None
    assert rec.status == "running" and rec.extra == {"from_the_future": {"x": 1}}
    assert rec.to_dict()["from_the_future"] == {"x": 1}  # kept, not lost, by a reader of this version


def test_round_trip(tmp_path: Path) -> None:
    beat = Heartbeat(ts_ms=5, pid=7, run_id="r", status="running", position={"qty": 0.1, "side": "long"},
                     working_orders=2, errors={"total": 1}, breaker={"active": False}, candles=3)
    path = tmp_path / "hb.json"
    write_heartbeat(path, beat)
    back = read_heartbeat(path)
    assert back is not None and back.to_dict() == beat.to_dict()
    assert Heartbeat.from_dict(beat.to_dict()) == beat


@pytest.mark.parametrize(("beat", "pid", "started", "mine"), [
    (Heartbeat(pid=10, ts_ms=0), 10, 100.0, True),  # its own pid: its own, however old
    (Heartbeat(pid=11, ts_ms=200_000), 10, 100.0, False),  # another process's
    (Heartbeat(ts_ms=200_000), 10, 100.0, True),  # no pid: written since the child started
    (Heartbeat(ts_ms=50_000), 10, 100.0, False),  # no pid, before the start: a previous session's last words
])
def test_belongs_to(beat: Heartbeat, pid: int, started: float, mine: bool) -> None:
    assert beat.belongs_to(pid, started) is mine


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    SCRUBBER.register("s3cr3t-value-xyz")
    path = tmp_path / "hb.json"
    HeartbeatWriter(path, "r", lambda: {"errors": {"last": "auth failed for s3cr3t-value-xyz"}}).beat()
    assert "s3cr3t-value-xyz" not in path.read_text()
