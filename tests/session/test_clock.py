"""The session clock: its rules on their own, and one injected clock driving a whole run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from laptop_agents.config import load_config
from laptop_agents.engine import build_engine
from laptop_agents.heartbeat import read_heartbeat
from laptop_agents.report import RunWriter
from laptop_agents.session.clock import SessionClock
from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
from laptop_agents.sources.candle_source import CandleListSource
from laptop_agents.sources.factory import SessionSource
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.store import EventJournal, StateStore, read_events
from laptop_agents.strategy import build_strategy

ORIGIN = 1_767_225_600_000
MIN = 60_000


@pytest.mark.parametrize(("market", "last", "expected"), [
    (None, None, 0),  # a replay before any candle
    (None, ORIGIN, ORIGIN + MIN),  # a replay: just after the last candle closed
    (ORIGIN + 5 * MIN, ORIGIN, ORIGIN + 5 * MIN),  # live: the market's now
    (ORIGIN + 10, ORIGIN, ORIGIN + MIN),  # never at or before the last candle's close
])
def test_event_time(market: int | None, last: int | None, expected: int) -> None:
    clock = SessionClock(market=(lambda: market) if market is not None else None)
    assert clock.event_ts(last, MIN) == expected


@pytest.mark.parametrize(("market", "late", "rule", "candle_ts", "is_late"), [
    (ORIGIN + 4 * MIN, None, 2 * MIN, ORIGIN, True),  # closed 3 minutes ago, rule 2: backfill
    (ORIGIN + 3 * MIN, None, 2 * MIN, ORIGIN, False),  # closed exactly 2 minutes ago
    (ORIGIN + 60 * MIN, None, None, ORIGIN, False),  # no rule (the mock, candle files)
    (None, None, 2 * MIN, ORIGIN, False),  # no clock at all
    (None, ORIGIN + 4 * MIN, 2 * MIN, ORIGIN, True),  # a recording replay: its receive time
    (ORIGIN + 60 * MIN, ORIGIN + MIN, 2 * MIN, ORIGIN, False),  # the late clock wins over the market's
])
def test_late_candles(market: int | None, late: int | None, rule: int | None, candle_ts: int, is_late: bool) -> None:
    clock = SessionClock(market=(lambda: market) if market is not None else None,
                         late=(lambda: late) if late is not None else None)
    assert clock.closed_late(candle_ts, MIN, rule) is is_late


def test_market_seconds_in_wall_seconds() -> None:
    assert SessionClock(speed=600.0).wall_s(60.0) == pytest.approx(0.1)
    assert SessionClock(speed=None).wall_s(60.0) is None


def test_one_injected_clock_stamps_the_whole_run(tmp_path: Path) -> None:
    """Wall time (heartbeat, summary) and market time (events) come from the
    injected clock, never from the machine's."""
    config = load_config("paper", {}, environ={}).config
    candles = SyntheticMarket(11, ORIGIN).candles(0, 30)
    wall = [1_600_000_000.0]

    def fake_wall() -> float:
        wall[0] += 1.0
        return wall[0]

    source = SessionSource(CandleListSource(candles), None, None, live=False, description="test candles")
    run_dir = tmp_path / "run"
    parts = SessionParts(engine=build_engine(config, build_strategy(config)), store=StateStore(":memory:"),
                         journal=EventJournal(run_dir / "events.jsonl"), source=source, writer=RunWriter(run_dir))
    options = RunnerOptions(run_id="t", run_dir=run_dir, mode="replay", install_signal_handlers=False,
                            freeze_gc=False, heartbeat_path=run_dir / "heartbeat.json")
    runner = AsyncRunner(config, parts, options, print_fn=lambda _s: None,
                         clock=SessionClock.for_source(source, wall=fake_wall))
    asyncio.run(runner.run())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["started_at"].startswith("2020-09-13T12:26:41") and summary["wall_s"] > 0
    beat = read_heartbeat(run_dir / "heartbeat.json")
    assert beat is not None and beat.status == "stopped" and 1_600_000_000 < beat.wall_ts() < 1_600_000_100
    stop = [e for e in read_events(run_dir / "events.jsonl") if e["kind"] == "session"][-1]
    assert stop["event"] == "stop" and stop["ts"] == candles[-1].ts + MIN  # market time: after the last candle
