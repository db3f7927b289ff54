"""The heartbeat file: shape, atomic replacement, scrubbing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from laptop_agents.logs import SCRUBBER
from laptop_agents.session.heartbeat import HeartbeatWriter, read_heartbeat, write_json_atomic

KEYS = {"ts_ms", "time", "pid", "run_id", "status", "reason", "equity", "position", "working_orders", "rss_mb",
        "last_candle_ts", "market_data_age_s", "errors", "breaker"}


def test_shape_and_status_transitions(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    hb = HeartbeatWriter(path, "run-1", lambda: {"equity": 10_000.0, "position": {"qty": 0.0}, "working_orders": 0},
                         wall_clock=lambda: 1_700_000_000.25)
    hb.beat()
    data = read_heartbeat(path)
    assert data is not None and KEYS <= set(data)
    assert data["ts_ms"] == 1_700_000_000_250 and data["time"].startswith("2023-11-14T22:13:20.250")
    assert data["pid"] == os.getpid() and data["status"] == "starting" and data["reason"] is None
    assert data["rss_mb"] > 0 and data["equity"] == 10_000.0
    hb.beat("stopped", "kill_switch")
    data = read_heartbeat(path)
    assert data is not None and data["status"] == "stopped" and data["reason"] == "kill_switch"
    with pytest.raises(ValueError, match="allowed"):
        hb.beat("sleeping")
    assert hb.writes == 2


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    for i in range(20):
        write_json_atomic(path, {"i": i})
    assert json.loads(path.read_text()) == {"i": 19}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_unreadable_heartbeat_is_none(tmp_path: Path) -> None:
    assert read_heartbeat(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{half")
    assert read_heartbeat(tmp_path / "bad.json") is None


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    SCRUBBER.register("s3cr3t-value-xyz")
    path = tmp_path / "hb.json"
    HeartbeatWriter(path, "r", lambda: {"errors": {"last": "auth failed for s3cr3t-value-xyz"}}).beat()
    assert "s3cr3t-value-xyz" not in path.read_text()
