"""The console's Protocols fit today's AsyncRunner without touching it.

A real mock session runs in-process with the dashboard, metrics and an alert
watcher in its loop. The feed is filled by wrapping the run writer (the
runner's own seam), the view is ``CompositeView(runner.health_snapshot, ...)``
and the control calls ``runner.request_stop``. This is a fit check for the
wiring step (which will feed the console from the runner itself), not the
wiring: when the runner's refactor changes these names, this test says where.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.config import load_config
from laptop_agents.console.alerts import Alert, AlertWatcher, Notifier
from laptop_agents.console.metrics import SessionMetrics
from laptop_agents.console.view import CompositeView, LiveFeed
from laptop_agents.engine import build_engine
from laptop_agents.report import RunWriter
from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
from laptop_agents.sources.factory import SessionSource
from laptop_agents.sources.mock import MockSource
from laptop_agents.stop_reasons import StopReason
from laptop_agents.store import EventJournal, StateStore
from laptop_agents.strategy import build_strategy
from tests.console.helpers import SseReader, serving
from tests.console.test_metrics import _samples


class FeedingWriter:
    """The run writer, also feeding the console after each committed step."""

    def __init__(self, inner: RunWriter, feed: LiveFeed, metrics: SessionMetrics, poke: Any) -> None:
        self.inner, self.feed, self.metrics, self.poke = inner, feed, metrics, poke

    def on_step(self, candle: Any, result: Any) -> None:
        self.inner.on_step(candle, result)
        self.feed.on_step(candle, result)
        self.metrics.candle()
        self.metrics.observe(result.events)
        self.poke()

    def on_events(self, events: Any) -> None:
        self.inner.on_events(events)
        self.feed.on_events(events)
        self.metrics.observe(events)

    def flush(self) -> None:
        self.inner.flush()

    def finish(self, summary_fields: Any = None) -> Path:
        return self.inner.finish(summary_fields)


class RunnerControl:
    def __init__(self, runner: AsyncRunner) -> None:
        self.runner = runner

    def stop(self, flatten: bool) -> None:
        self.runner.request_stop(StopReason.KILL_SWITCH, f"dashboard stop (flatten={flatten})")

    def pause_entries(self) -> None:
        raise NotImplementedError("the engine has no pause switch yet")

    def resume_entries(self) -> None:
        raise NotImplementedError("the engine has no pause switch yet")


def test_dashboard_metrics_and_alerts_ride_a_real_mock_session(tmp_path: Path) -> None:
    config = load_config("paper", {"trading.speed": 600.0, "trading.warmup_bars": 5, "trading.duration_min": 600.0},
                         environ={}).config
    mock = MockSource(config.trading)
    source = SessionSource(mock, mock.now_ms, 600.0, live=True, description="mock")
    run_dir = tmp_path / "runs" / "live-fit"
    engine = build_engine(config, build_strategy(config))
    feed = LiveFeed()
    holder: dict[str, Any] = {}
    parts = SessionParts(engine=engine, store=StateStore(":memory:"), journal=EventJournal(run_dir / "events.jsonl"),
                         source=source, writer=None)
    options = RunnerOptions(run_id="live-fit", run_dir=run_dir, mode="live-session", install_signal_handlers=False,
                            freeze_gc=False)
    runner = AsyncRunner(config, parts, options, print_fn=lambda _s: None)
    engine_fields = ("symbol", "currency", "last_price", "realized_pnl", "unrealized", "start_balance", "fees_paid",
                     "trades_closed", "entries_blocked")
    view = CompositeView(runner.health_snapshot, feed,
                         extra=lambda: {k: getattr(engine.status(), k) for k in engine_fields} | {"entries_paused": False})
    metrics = SessionMetrics(view)
    parts.writer = FeedingWriter(RunWriter(run_dir), feed, metrics, lambda: holder["server"].poke())
    sent: list[Alert] = []
    notifier = Notifier(lambda a: sent.append(a) is None, burst=1000)
    watcher = AlertWatcher(view, notifier)

    async def main() -> dict[str, Any]:
        async with serving(view, RunnerControl(runner), metrics=metrics, runs_dir=tmp_path / "runs") as (server, c):
            holder["server"] = server
            session = asyncio.create_task(runner.run())
            watch = watcher.start(0.05)
            try:
                async with c.stream("GET", "/api/stream") as r:
                    sse = SseReader(r)
                    _, first = await sse.next()
                    assert first["status"]["run_id"] == "live-fit"
                    data = await sse.until(lambda d: len(d.get("streams", {}).get("candles", {}).get("items", [])) > 0,
                                           timeout=30.0)
                    assert data["streams"]["candles"]["items"][-1]["close"] > 0
                health = await c.get("/health")
                assert health.status_code == 200
                body = health.json()
                assert body["status"] == "running" and body["run_id"] == "live-fit" and body["healthy"] is True
                assert set(runner.health_snapshot()[1]) | {"healthy"} == set(body)
                status = (await c.get("/api/status")).json()
                assert status["symbol"] == config.trading.symbol and status["last_price"] > 0
                scraped = _samples((await c.get("/metrics")).text)
                assert scraped[("laptop_agents_candles_processed_total", ())] >= 1
                assert scraped[("laptop_agents_equity", ())] == pytest.approx(status["equity"])
                csrf = server.dashboard.csrf
                r = await c.post("/api/control/stop", json={"flatten": True}, headers={"X-LA-CSRF": csrf})
                assert r.status_code == 200
                outcome = await asyncio.wait_for(session, 60.0)
                return {"outcome": outcome, "processed": runner.counts["candles"]}
            finally:
                watch.cancel()
                if not session.done():
                    runner.request_stop(StopReason.SIGNAL, "test teardown")
                    await session

    res = asyncio.run(main())
    notifier.close()
    assert res["outcome"].reason is StopReason.KILL_SWITCH
    assert "dashboard stop (flatten=True)" in res["outcome"].detail
    assert feed.recent("candles").seq == res["processed"]
