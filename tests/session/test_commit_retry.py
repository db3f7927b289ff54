"""The store-commit retry inside the running event loop: it pauses without
blocking the loop, and a stop that arrives during the pause never leaves the
engine ahead of the store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from laptop_agents.config import AppConfig, load_config
from laptop_agents.domain.contracts import StepResult
from laptop_agents.engine import build_engine
from laptop_agents.report import RunWriter
from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
from laptop_agents.sources.candle_source import CandleListSource
from laptop_agents.sources.factory import SessionSource
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.stop_reasons import StopReason
from laptop_agents.store import EventJournal, StateStore
from laptop_agents.strategy import build_strategy

ORIGIN = 1_767_225_600_000


def _cfg() -> AppConfig:
    return load_config("paper", {}, environ={}).config


class LockedStore:
    """A real in-memory store whose commit of step ``at`` is refused ``times``
    times ("database is locked", which the store rolls back: a retry is safe)."""

    def __init__(self, at: int, times: int, on_refuse: Any = None) -> None:
        self.inner = StateStore(":memory:")
        self.at, self.times, self.on_refuse = at, times, on_refuse
        self.calls = 0
        self.committed: list[int] = []
        self.refused_at_ticks: list[int] = []
        self.ticks: list[int] = []  # filled by a task running beside the session

    def commit(self, engine: Any, result: StepResult) -> None:
        self.calls += 1
        if len(self.committed) + 1 == self.at and self.times > 0:
            self.times -= 1
            self.refused_at_ticks.append(len(self.ticks))
            if self.on_refuse is not None:
                self.on_refuse()
            raise sqlite3.OperationalError("database is locked")
        self.inner.commit(engine, result)
        self.committed.append(result.ts)

    def close(self) -> None:
        self.last_candle_at_close = self.inner.last_candle_ts()
        self.inner.close()


def _runner(tmp_path: Path, store: LockedStore, n: int = 40) -> AsyncRunner:
    config = _cfg()
    candles = SyntheticMarket(11, ORIGIN).candles(0, n)
    source = SessionSource(CandleListSource(candles), None, None, live=False, description="test candles")
    run_dir = tmp_path / "run"
    parts = SessionParts(engine=build_engine(config, build_strategy(config)), store=store,
                         journal=EventJournal(run_dir / "events.jsonl"), source=source, writer=RunWriter(run_dir))
    options = RunnerOptions(run_id="t", run_dir=run_dir, mode="replay", install_signal_handlers=False,
                            freeze_gc=False)
    return AsyncRunner(config, parts, options, print_fn=lambda _s: None)


def test_the_retry_pause_does_not_block_the_event_loop(tmp_path: Path) -> None:
    store = LockedStore(at=10, times=3)
    runner = _runner(tmp_path, store)

    async def main() -> Any:
        async def tick() -> None:
            while True:
                store.ticks.append(1)
                await asyncio.sleep(0.005)

        ticker = asyncio.create_task(tick())
        try:
            return await runner.run()
        finally:
            ticker.cancel()

    outcome = asyncio.run(main())
    assert outcome.reason is StopReason.END_OF_DATA, outcome.detail
    assert runner.errors.by_kind["store_retry"] == 3 and len(store.refused_at_ticks) == 3
    # Between two refused attempts the other task ran: the pause was the loop's, not time.sleep.
    assert store.refused_at_ticks[0] < store.refused_at_ticks[1] < store.refused_at_ticks[2]
    assert runner.counts["candles"] == 40 and len(store.committed) == 41  # every candle, then the final step


def test_a_stop_during_the_retry_pause_still_commits_the_step(tmp_path: Path) -> None:
    """The engine has stepped; its step must reach the store before the
    market-data task may end, or the final commit would store a state whose
    step's fills were never written."""
    holder: dict[str, AsyncRunner] = {}
    store = LockedStore(at=10, times=2,
                        on_refuse=lambda: holder["r"].request_stop(StopReason.SIGNAL, "SIGTERM"))
    runner = holder["r"] = _runner(tmp_path, store)
    outcome = asyncio.run(asyncio.wait_for(runner.run(), 30))
    assert outcome.reason is StopReason.SIGNAL and outcome.exit_code == 0
    stepped = runner.parts.engine.last_candle_ts
    assert runner.counts["candles"] == 10
    # The tenth candle was committed after its retries, then the shutdown step.
    assert len(store.committed) == 11 and store.last_candle_at_close == stepped
