"""The session's DEBUG routing lines (``session.route``): the candle each
session resumes after, then one line per committed step naming its candles
and how they were routed -- traded, warmed at start, warmed because late --
so a drill or a post-mortem can account for every candle. And ``/health``
counts the event loop's tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from laptop_agents.config import AppConfig, load_config
from laptop_agents.engine import build_engine
from laptop_agents.report import RunWriter
from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
from laptop_agents.sources.candle_source import CandleListSource
from laptop_agents.sources.factory import SessionSource
from laptop_agents.sources.mock import MockFaults, MockSource
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.store import EventJournal, StateStore
from laptop_agents.strategy import build_strategy
from laptop_agents.testing.drill.evidence import expand

ORIGIN = 1_767_225_600_000
M = 60_000


@pytest.fixture
def routes() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("laptop_agents.session.route")
    handler, level = Keep(logging.DEBUG), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _runner(tmp_path: Path, config: AppConfig, source: SessionSource, store: StateStore, **opts: Any) -> AsyncRunner:
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    engine = build_engine(config, build_strategy(config))
    loaded = store.load_engine(config, build_strategy(config))
    parts = SessionParts(engine=loaded or engine, store=store, journal=EventJournal(run_dir / "events.jsonl"),
                         source=source, writer=RunWriter(run_dir))
    options = RunnerOptions(run_id="t", run_dir=run_dir, mode="replay", install_signal_handlers=False,
                            freeze_gc=False, **opts)
    return AsyncRunner(config, parts, options, print_fn=lambda _s: None)


def _fields(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [r.fields for r in records]  # type: ignore[attr-defined]


def test_every_candle_is_in_one_routing_line_and_a_restart_says_where_it_resumed(
        tmp_path: Path, routes: list[logging.LogRecord]) -> None:
    config = load_config("paper", {"trading.warmup_bars": 20}, environ={}).config
    candles = SyntheticMarket(3, ORIGIN).candles(0, 80)
    store = StateStore(tmp_path / "state.db")
    src = SessionSource(CandleListSource(candles[:50]), None, None, live=False, description="first")
    asyncio.run(_runner(tmp_path, config, src, store).run())
    lines = _fields(routes)
    assert lines[0]["route"] == "resume" and lines[0]["last_candle_ts"] is None
    seen = [t for f in lines[1:] for t in expand(f["runs"], M)]
    assert seen == [c.ts for c in candles[:50]]  # each once, in order
    assert {f["route"] for f in lines[1:]} == {"trade"}  # a candle file has no warm-up history
    assert all(f["n"] == len(expand(f["runs"], M)) and f["pid"] > 0 for f in lines[1:])
    assert all(not getattr(r, "console", True) for r in routes)  # never on the console

    routes.clear()
    store = StateStore(tmp_path / "state.db")  # the session closed it: a restart opens it again
    src = SessionSource(CandleListSource(candles[40:80]), None, None, live=False, description="again")
    asyncio.run(_runner(tmp_path, config, src, store).run())
    lines = _fields(routes)
    assert lines[0] == {**lines[0], "route": "resume", "last_candle_ts": candles[49].ts}
    seen = [t for f in lines[1:] for t in expand(f["runs"], M)]
    assert seen == [c.ts for c in candles[50:80]]  # what was processed is never routed again
    store.close()


def test_late_candles_are_routed_late_with_their_lateness(tmp_path: Path, routes: list[logging.LogRecord]) -> None:
    config = load_config("paper", {"trading.warmup_bars": 5}, environ={}).config
    candles = SyntheticMarket(3, ORIGIN).candles(0, 30)
    now = candles[-1].ts + 10 * M  # the market's clock is far past every candle

    src = SessionSource(CandleListSource(candles), lambda: now, None, live=False, description="late",
                        late_after_ms=2 * M)
    asyncio.run(_runner(tmp_path, config, src, StateStore(":memory:")).run())
    late = [f for f in _fields(routes) if f["route"] == "late"]
    assert late and not [f for f in _fields(routes) if f["route"] == "trade"]
    assert all(f["late_ms"] >= 9 * M for f in late)


def test_health_counts_the_event_loop_tasks(tmp_path: Path) -> None:
    config = load_config("paper", {"trading.speed": 600.0, "trading.warmup_bars": 5,
                                   "trading.duration_min": 600.0}, environ={}).config
    mock = MockSource(config.trading, faults=MockFaults(end_after=40))
    src = SessionSource(mock, mock.now_ms, 600.0, live=True, description="mock")
    runner = _runner(tmp_path, config, src, StateStore(":memory:"), health_port=0)

    async def main() -> dict[str, Any]:
        task = asyncio.create_task(runner.run())
        while runner.counts["candles"] < 2:
            await asyncio.sleep(0.02)
        assert runner.health is not None
        url = runner.health.url
        r = await asyncio.get_running_loop().run_in_executor(None, lambda: httpx.get(url, timeout=5))
        await task
        body: dict[str, Any] = r.json()
        return body

    body = asyncio.run(main())
    assert isinstance(body["tasks"], int) and 3 <= body["tasks"] <= 30


