"""The AsyncRunner in-process: parity with a plain Engine loop, failure paths,
the health endpoint during a run, and the replay command."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from laptop_agents.config import AppConfig, load_config
from laptop_agents.domain.contracts import MarketItem, SourceError, StepResult
from laptop_agents.domain.events import SessionEvent
from laptop_agents.domain.models import Candle
from laptop_agents.engine import build_engine
from laptop_agents.exit_codes import ExitCode
from laptop_agents.report import RunWriter
from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
from laptop_agents.session.snapshots import heartbeat_fields
from laptop_agents.sources.candle_source import CandleListSource
from laptop_agents.sources.factory import SessionSource
from laptop_agents.sources.mock import MockFaults, MockSource
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.stop_reasons import StopReason
from laptop_agents.store import EventJournal, StateStore, StoreWriteError, read_events
from laptop_agents.strategy import build_strategy
from tests.session.helpers import run

ORIGIN = 1_767_225_600_000  # 2026-01-01 UTC


def _cfg(**over: Any) -> AppConfig:
    return load_config("paper", over, environ={}).config


def _candles(n: int, seed: int = 11) -> list[Candle]:
    return SyntheticMarket(seed, ORIGIN).candles(0, n)


def _runner(tmp_path: Path, config: AppConfig, source: SessionSource, *, store: Any = None,
            engine: Any = None, **opts: Any) -> tuple[AsyncRunner, Any]:
    run_dir = tmp_path / "run"
    store = store or StateStore(":memory:")
    engine = engine or build_engine(config, build_strategy(config))
    parts = SessionParts(engine=engine, store=store, journal=EventJournal(run_dir / "events.jsonl"),
                         source=source, writer=RunWriter(run_dir))
    options = RunnerOptions(run_id="t", run_dir=run_dir, mode="replay", install_signal_handlers=False,
                            freeze_gc=False, **opts)
    return AsyncRunner(config, parts, options, print_fn=lambda _s: None), store


def _replay_source(candles: list[Candle]) -> SessionSource:
    return SessionSource(CandleListSource(candles), None, None, live=False, description="test candles")


def test_replay_through_the_runner_equals_a_plain_engine_loop(tmp_path: Path) -> None:
    """Parity by construction: the runner adds persistence and guards, never decisions."""
    config = _cfg()
    candles = _candles(3000)
    runner, store = _runner(tmp_path, config, _replay_source(candles))
    outcome = asyncio.run(runner.run())
    assert outcome.reason is StopReason.END_OF_DATA and outcome.exit_code == 0
    got = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["kind"] != "session"]

    engine = build_engine(config, build_strategy(config))
    expected: list[dict[str, Any]] = []
    for c in candles:
        expected += [json.loads(json.dumps(e.to_dict())) for e in engine.on_candle(c).events]
    assert got == expected and any(e["kind"] == "fill" for e in got)
    assert runner.counts["candles"] == 3000 and runner.latency.count == 3000
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["reason"] == "end_of_data" and summary["candles"] == 3000
    assert summary["final_equity"] == pytest.approx(engine.status().equity)


def test_candles_already_in_the_store_are_skipped(tmp_path: Path) -> None:
    config = _cfg()
    candles = _candles(200)
    db = tmp_path / "state.db"
    store = StateStore(db)
    runner, _ = _runner(tmp_path / "a", config, _replay_source(candles[:120]), store=store)
    asyncio.run(runner.run())
    store = StateStore(db)
    from laptop_agents.engine.recovery import open_engine

    engine = open_engine(store, config, build_strategy(config))
    assert engine.last_candle_ts == candles[119].ts
    runner, _ = _runner(tmp_path / "b", config, _replay_source(candles), store=store, engine=engine)
    asyncio.run(runner.run())
    assert runner.counts["skipped"] == 120 and runner.counts["candles"] == 80


class _FailingStore:
    """Commits fine N times, then every write fails like a full disk."""

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.commits = 0
        self.attempts = 0

    def commit(self, engine: Any, result: StepResult) -> None:
        self.attempts += 1
        if self.commits >= self.ok:
            raise StoreWriteError("cannot write state store x: database or disk is full")
        self.commits += 1

    def close(self) -> None:
        pass


def test_full_disk_retries_then_stops_with_disk_full(tmp_path: Path) -> None:
    store = _FailingStore(ok=10)
    runner, _ = _runner(tmp_path, _cfg(), _replay_source(_candles(100)), store=store)
    outcome = asyncio.run(runner.run())
    assert outcome.reason is StopReason.DISK_FULL and outcome.exit_code == ExitCode.DISK_FULL
    assert store.commits == 10 and store.attempts == 14  # 1 + 3 retries, no final commit attempt
    assert runner.errors.by_kind["store_retry"] == 3
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["reason"] == "disk_full"


class _ExplodingEngine:
    """A real engine that raises on the 5th candle (an engine bug, not an agent error)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.n = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def on_candle(self, candle: Candle) -> StepResult:
        self.n += 1
        if self.n == 5:
            raise ZeroDivisionError("engine bug")
        return self.inner.on_candle(candle)


def test_engine_exception_is_a_crash_without_a_final_commit(tmp_path: Path) -> None:
    config = _cfg()
    engine = _ExplodingEngine(build_engine(config, build_strategy(config)))
    store = _FailingStore(ok=10**9)
    runner, _ = _runner(tmp_path, config, _replay_source(_candles(50)), store=store, engine=engine)
    outcome = asyncio.run(runner.run())
    assert outcome.reason is StopReason.CRASH and outcome.exit_code == ExitCode.CRASH
    assert "ZeroDivisionError" in outcome.detail
    assert store.commits == 4  # the broken engine's state is never persisted
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["reason"] == "crash" and summary["final_commit"] is True


class _RaisingSource:
    """A source that raises instead of yielding SourceError (a source bug)."""

    name = "raising"

    def __init__(self) -> None:
        self.opened = 0

    async def warmup(self) -> list[Candle]:
        return []

    def stream(self) -> AsyncIterator[MarketItem]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[MarketItem]:
        self.opened += 1
        raise ConnectionResetError("socket died")
        yield  # pragma: no cover

    def status(self) -> dict[str, Any]:
        return {"opened": self.opened}

    async def aclose(self) -> None:
        pass


def test_a_raising_stream_is_reopened_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("laptop_agents.session.loop.STREAM_RESTART_S", 0.01)
    src = _RaisingSource()
    runner, _ = _runner(tmp_path, _cfg(), SessionSource(src, None, None, live=True))
    outcome = asyncio.run(runner.run())
    assert outcome.reason is StopReason.MARKET_DATA_ERRORS and src.opened == 3
    assert "socket died" in outcome.detail


def test_late_candles_go_to_warmup(tmp_path: Path) -> None:
    """With a wall-clock source, candles that closed > 2 intervals ago are never traded."""
    candles = _candles(50)
    now = candles[-1].ts + 60_000 + 1000  # "now" is just after the last candle closed
    src = SessionSource(CandleListSource(candles), lambda: now, None, live=False, late_after_ms=120_000)
    runner, _ = _runner(tmp_path, _cfg(), src)
    asyncio.run(runner.run())
    assert runner.counts["late_warmup"] == 48 and runner.counts["candles"] == 2


def test_late_rule_can_use_a_clock_of_its_own(tmp_path: Path) -> None:
    """A recording replay judges lateness by recorded receive time (late_clock)
    while having no clock for the duration limit."""
    candles = _candles(50)
    now = candles[-1].ts + 60_000 + 1000
    src = SessionSource(CandleListSource(candles), None, None, live=False, late_after_ms=120_000,
                        late_clock=lambda: now)
    runner, _ = _runner(tmp_path, _cfg(**{"trading.duration_min": 1.0}), src)
    outcome = asyncio.run(runner.run())
    assert runner.counts["late_warmup"] == 48 and runner.counts["candles"] == 2
    assert outcome.reason is StopReason.END_OF_DATA


def test_a_dead_supervising_task_stops_the_session_as_a_crash(tmp_path: Path) -> None:
    """Without its heartbeat (or kill-switch, or stale-data) task the session can
    no longer keep its promises: it stops as a crash (state committed, position
    kept, exit 1 so the watchdog restarts it) instead of running on unguarded."""
    config = _cfg(**{"trading.speed": 600.0, "trading.warmup_bars": 5, "trading.duration_min": 600.0,
                     "system.heartbeat_interval_s": 0.05})
    mock = MockSource(config.trading)
    src = SessionSource(mock, mock.now_ms, 600.0, live=True, description="mock")
    runner, _ = _runner(tmp_path, config, src)

    async def broken_heartbeat_loop() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("heartbeat writer bug")

    runner.supervisors.heartbeat = broken_heartbeat_loop  # type: ignore[method-assign]
    outcome = asyncio.run(asyncio.wait_for(runner.run(), timeout=60))
    assert outcome.reason is StopReason.CRASH and outcome.exit_code == ExitCode.CRASH
    assert "heartbeat writer bug" in outcome.detail


def test_health_endpoint_during_a_run_and_503_when_stale(tmp_path: Path) -> None:
    config = _cfg(**{"trading.speed": 600.0, "trading.warmup_bars": 5, "trading.duration_min": 600.0,
                     "system.stale_timeout_s": 30.0})
    mock = MockSource(config.trading, faults=MockFaults(silence_after=2))
    src = SessionSource(mock, mock.now_ms, 600.0, live=True, description="mock")
    runner, _ = _runner(tmp_path, config, src, health_port=0)

    async def main() -> dict[str, Any]:
        task = asyncio.create_task(runner.run())
        while runner.counts["candles"] < 2:
            await asyncio.sleep(0.02)
        url = runner.health.url
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(None, lambda: httpx.get(url, timeout=5))
        assert r.status_code == 200, r.text
        body = r.json()
        # Pretend 31 s without data have passed: the same request now answers 503.
        runner.stale._last -= 31.0
        r2 = await loop.run_in_executor(None, lambda: httpx.get(url, timeout=5))
        await task
        return {"first": body, "second_status": r2.status_code, "second": r2.json()}

    res = asyncio.run(main())
    first = res["first"]
    assert first["status"] == "running" and first["healthy"] is True
    assert first["source"]["source"] == "mock" and first["equity"] == pytest.approx(10_000.0)
    assert {"market_data_age_s", "errors", "position", "breaker"} <= set(first)
    assert res["second_status"] == 503 and res["second"]["stale"] is True
    assert runner.reason is StopReason.STALE_DATA


def test_source_errors_in_the_stream_reset_on_good_data(tmp_path: Path) -> None:
    class Flaky(CandleListSource):
        async def _stream(self) -> AsyncIterator[MarketItem]:  # type: ignore[override]
            async for item in super()._stream():
                yield SourceError("flaky", "one bad frame")
                yield SourceError("flaky", "two bad frames")
                yield item

    src = SessionSource(Flaky(_candles(30)), None, None, live=False)
    runner, _ = _runner(tmp_path, _cfg(**{"system.max_errors_per_session": 1000}), src)
    outcome = asyncio.run(runner.run())
    assert outcome.reason is StopReason.END_OF_DATA
    assert runner.counts["source_errors"] == 60 and runner.errors.total == 60


def test_replay_command_uses_its_own_state(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    csv = tmp_path / "candles.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [f"{c.ts},{c.open},{c.high},{c.low},{c.close},{c.volume}" for c in _candles(500)]
    csv.write_text("\n".join(rows) + "\n")
    code, out, err = run(ws, "--source", "replay", "--replay-file", str(csv), "--run-id", "rp", timeout=60)
    assert code == ExitCode.OK, err
    summary = json.loads((ws / "runs" / "rp" / "summary.json").read_text())
    assert summary["reason"] == "end_of_data" and summary["mode"] == "replay" and summary["candles"] == 500
    # Never the workspace's live state, heartbeat or lock.
    assert not (ws / "state.db").exists() and not (ws / "heartbeat.json").exists()
    assert (ws / "runs" / "rp" / "heartbeat.json").exists()
    with pytest.raises(sqlite3.OperationalError):
        sqlite3.connect(f"file:{ws / 'state.db'}?mode=ro", uri=True).execute("SELECT 1")


def test_replay_of_a_missing_or_bad_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, "--source", "replay", "--replay-file", str(tmp_path / "nope.csv"), timeout=60)
    assert code == ExitCode.BAD_INPUT and "not found" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("hello\nworld\n")
    code, _, err = run(ws, "--source", "replay", "--replay-file", str(bad), timeout=60)
    assert code == ExitCode.BAD_INPUT and len(err.strip().splitlines()) == 1


class _SlowWarmup(CandleListSource):
    async def warmup(self) -> list[Candle]:
        await asyncio.sleep(3600)
        return []


def test_kill_switch_ends_a_hanging_warmup(tmp_path: Path) -> None:
    kill = tmp_path / "kill.txt"
    src = SessionSource(_SlowWarmup(_candles(10)), None, None, live=True)
    runner, _ = _runner(tmp_path, _cfg(**{"system.kill_check_interval_s": 0.05}), src, kill_file=kill)

    async def main() -> Any:
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.2)
        assert runner.status == "starting"
        kill.write_text("stop\n")
        return await asyncio.wait_for(task, 10)

    outcome = asyncio.run(main())
    assert outcome.reason is StopReason.KILL_SWITCH and outcome.exit_code == 0
    assert runner.counts["candles"] == 0 and not kill.exists()


def test_sync_is_accepted_for_replay(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    csv = tmp_path / "c.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{c.ts},{c.open},{c.high},{c.low},{c.close},{c.volume}\n" for c in _candles(50)))
    code, _, err = run(ws, "--sync", "--source", "replay", "--replay-file", str(csv), timeout=60)
    assert code == ExitCode.OK, err
    code, _, err = run(ws, "--cli", "run", "--sync", "--source", "replay", "--replay-file", str(csv),
                       seed_flags=False, timeout=60)
    assert code == ExitCode.OK, err


def test_full_disk_while_journaling_is_disk_full_not_a_crash(tmp_path: Path) -> None:
    import errno

    class FullJournal:
        def write(self, events: Any) -> int:
            if any(e.kind != "session" for e in events):
                raise OSError(errno.ENOSPC, "No space left on device")
            return 0

        def close(self) -> None:
            pass

    config = _cfg()
    db = tmp_path / "state.db"
    runner, _ = _runner(tmp_path, config, _replay_source(_candles(3000)), store=StateStore(db))
    runner.parts.journal = FullJournal()
    outcome = asyncio.run(runner.run())
    assert outcome.reason is StopReason.DISK_FULL and outcome.exit_code == ExitCode.DISK_FULL
    assert "disk full" in outcome.detail  # words a user acts on (issue 10)
    # The step whose journal line failed had been committed before the write was tried.
    last = runner.parts.engine.last_candle_ts
    assert last is not None and StateStore(db).last_candle_ts() == last


class _BuggyStore(_FailingStore):
    """Commits fine N times, then raises an error the runner cannot classify
    (a serialisation bug, a store/config mismatch): not a market-data problem."""

    def commit(self, engine: Any, result: StepResult) -> None:
        self.attempts += 1
        if self.commits >= self.ok:
            raise RuntimeError("cannot serialise the engine")
        self.commits += 1


def test_an_unclassified_commit_failure_is_a_crash_not_a_market_data_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine has stepped but its step is not stored: going on would later
    store a state whose fills were never written. Stop as a crash, keep the
    last good state (no final commit), never count it as a source error."""
    monkeypatch.setattr("laptop_agents.session.loop.STREAM_RESTART_S", 0.01)
    store = _BuggyStore(ok=5)
    src = SessionSource(CandleListSource(_candles(50)), None, None, live=True)
    runner, _ = _runner(tmp_path, _cfg(), src, store=store)
    outcome = asyncio.run(asyncio.wait_for(runner.run(), 30))
    assert outcome.reason is StopReason.CRASH and outcome.exit_code == ExitCode.CRASH
    assert "cannot serialise" in outcome.detail
    assert runner.counts["source_errors"] == 0
    assert store.attempts == 6  # no retry, no further candle, no final commit
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["reason"] == "crash"


class _TickBugEngine:
    """A real engine whose on_tick raises (an engine bug on the tick path)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def on_tick(self, tick: Any) -> None:
        raise ZeroDivisionError("tick bug")


def test_an_engine_exception_on_a_tick_is_a_crash_not_a_market_data_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from laptop_agents.domain.models import Tick

    class WithTicks(CandleListSource):
        async def _stream(self) -> AsyncIterator[MarketItem]:  # type: ignore[override]
            async for item in super()._stream():
                yield item
                if isinstance(item, Candle):
                    yield Tick(item.ts + 1000, item.close, item.close, item.close)

    monkeypatch.setattr("laptop_agents.session.loop.STREAM_RESTART_S", 0.01)
    config = _cfg()
    engine = _TickBugEngine(build_engine(config, build_strategy(config)))
    store = _FailingStore(ok=10**9)
    src = SessionSource(WithTicks(_candles(50)), None, None, live=True)
    runner, _ = _runner(tmp_path, config, src, store=store, engine=engine)
    outcome = asyncio.run(asyncio.wait_for(runner.run(), 30))
    assert outcome.reason is StopReason.CRASH and "tick bug" in outcome.detail
    assert runner.counts["source_errors"] == 0
    assert store.commits == 1  # the first candle; nothing after the broken tick


class _FlakyKillPath:
    """A kill-file path whose first stat calls fail (a permission or I/O hiccup on the workspace)."""

    def __init__(self, real: Path, failures: int) -> None:
        self.real = real
        self.failures = failures

    def exists(self) -> bool:
        if self.failures > 0:
            self.failures -= 1
            raise PermissionError(13, "Permission denied", str(self.real))
        return self.real.exists()

    def read_text(self, **kw: Any) -> str:
        return self.real.read_text(**kw)

    def unlink(self) -> None:
        self.real.unlink()

    def __str__(self) -> str:
        return str(self.real)


def test_the_kill_switch_survives_a_failing_stat(tmp_path: Path) -> None:
    """A transient error reading the kill file must not disable the kill switch for the rest of the session."""
    kill = tmp_path / "kill.txt"
    flaky = _FlakyKillPath(kill, failures=2)
    src = SessionSource(_SlowWarmup(_candles(10)), None, None, live=True)
    runner, _ = _runner(tmp_path, _cfg(**{"system.kill_check_interval_s": 0.05}), src, kill_file=flaky)

    async def main() -> Any:
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.5)  # ten polls: both failures and some good checks
        kill.write_text("stop\n")
        return await asyncio.wait_for(task, 10)

    outcome = asyncio.run(main())
    assert outcome.reason is StopReason.KILL_SWITCH and outcome.exit_code == 0
    assert runner.errors.by_kind.get("kill_switch_check") == 2


def test_a_failing_report_writer_is_a_crash_not_a_market_data_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the run output (not a full disk) after the step was committed:
    the state is safe, so the final commit runs, but the session stops as a
    crash instead of re-opening the stream with the step's lines missing."""
    monkeypatch.setattr("laptop_agents.session.loop.STREAM_RESTART_S", 0.01)

    class BuggyWriter(RunWriter):
        steps = 0

        def on_step(self, candle: Candle, result: StepResult) -> None:
            BuggyWriter.steps += 1
            if BuggyWriter.steps == 5:
                raise TypeError("cannot format the row")
            super().on_step(candle, result)

    store = _FailingStore(ok=10**9)
    src = SessionSource(CandleListSource(_candles(50)), None, None, live=True)
    runner, _ = _runner(tmp_path, _cfg(), src, store=store)
    runner.parts.writer = BuggyWriter(tmp_path / "run")
    outcome = asyncio.run(asyncio.wait_for(runner.run(), 30))
    assert outcome.reason is StopReason.CRASH and "cannot format" in outcome.detail
    assert runner.counts["source_errors"] == 0
    assert store.commits == 6  # five candles, then the final commit


def test_a_failing_writer_on_the_final_step_still_writes_the_summary(tmp_path: Path) -> None:
    """The final step is committed before it is journaled: a bug writing its
    lines must not abort the shutdown (summary, store close, kill-file consumption)."""

    class EventfulShutdown:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def shutdown(self, ts: int, *, flatten: bool, reason: str) -> StepResult:
            result: StepResult = self.inner.shutdown(ts, flatten=flatten, reason=reason)
            result.events.append(SessionEvent(ts, "test"))
            return result

    class BuggyWriter(RunWriter):
        def on_events(self, events: Any) -> None:
            raise TypeError("cannot format the events")

    config = _cfg(**{"system.kill_check_interval_s": 0.05})
    kill = tmp_path / "kill.txt"
    kill.write_text("stop\n")
    engine = EventfulShutdown(build_engine(config, build_strategy(config)))
    src = SessionSource(_SlowWarmup(_candles(10)), None, None, live=True)
    runner, _ = _runner(tmp_path, config, src, engine=engine, kill_file=kill)
    runner.parts.writer = BuggyWriter(tmp_path / "run")
    outcome = asyncio.run(asyncio.wait_for(runner.run(), 30))
    assert outcome.reason is StopReason.KILL_SWITCH and outcome.exit_code == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["reason"] == "kill_switch"
    assert not kill.exists()


class _ReplayingLiveSource:
    """Live market data that keeps arriving: ``fresh`` candles one by one, each
    followed by re-deliveries of ``redeliver`` (candles the engine already has),
    then -- with ``repeat`` -- the re-deliveries forever."""

    name = "replaying"

    def __init__(self, fresh: list[Candle], redeliver: list[Candle], *, repeat: bool, pause_s: float) -> None:
        self.fresh, self.redeliver, self.repeat, self.pause_s = fresh, redeliver, repeat, pause_s
        self.health: list[tuple[bool, dict[str, Any]]] = []
        self.runner: AsyncRunner | None = None

    async def warmup(self) -> list[Candle]:
        return []

    def stream(self) -> AsyncIterator[MarketItem]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[MarketItem]:
        for c in self.fresh:
            yield c
            for old in self.redeliver[-2:]:  # a reconnect's re-delivery: legitimately skipped
                yield old
            await self._pause()
            self.redeliver.append(c)
        while self.repeat:
            for old in self.redeliver:
                yield old
                await self._pause()

    async def _pause(self) -> None:
        await asyncio.sleep(self.pause_s)
        if self.runner is not None:
            self.health.append(self.runner.health_snapshot())

    def status(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        pass


def _live_cfg() -> AppConfig:
    # 1m candles at 600x: one interval is 0.1 wall seconds; stale timeout 0.5 s.
    return _cfg(**{"trading.duration_min": 10_000.0, "system.stale_timeout_s": 0.5})


def test_candles_that_all_skip_end_the_session_as_stale_and_unhealthy(tmp_path: Path) -> None:
    """Issue 10.1: a store ahead of the market skips every live candle. Data
    arriving is not enough: without a processed candle for the stale timeout
    (or 3 intervals, the larger) the session stops with stale_data, /health is
    unhealthy before that, and the skipped candles are counted."""
    config = _live_cfg()
    candles = _candles(40)
    engine = build_engine(config, build_strategy(config))
    for c in candles:
        engine.on_candle(c)
    src = _ReplayingLiveSource([], list(candles), repeat=True, pause_s=0.01)
    runner, _ = _runner(tmp_path, config, SessionSource(src, lambda: candles[-1].ts, 600.0, live=True),
                        engine=engine)
    src.runner = runner
    outcome = asyncio.run(asyncio.wait_for(runner.run(), timeout=30))
    assert outcome.reason is StopReason.STALE_DATA and outcome.exit_code == ExitCode.STALE_DATA
    assert "no candle processed" in outcome.detail and "skipped" in outcome.detail, outcome.detail
    assert runner.counts["candles"] == 0 and runner.counts["skipped"] >= 20
    assert src.health[0][0] is True  # at first, just data
    unhealthy = [body for ok, body in src.health if not ok]
    assert unhealthy and unhealthy[-1]["progress"]["lagging"] is True and unhealthy[-1]["stale"] is False
    assert unhealthy[-1]["counts"]["skipped"] > 0
    assert heartbeat_fields(runner.parts.engine, runner.state, "replay")["skipped"] == runner.counts["skipped"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["reason"] == "stale_data" and summary["session"]["skipped"] == runner.counts["skipped"]


def test_redelivered_candles_between_fresh_ones_keep_the_session_healthy(tmp_path: Path) -> None:
    """Duplicates after a reconnect are skipped legitimately: as long as fresh
    candles keep being processed, the session neither stops nor turns unhealthy."""
    config = _live_cfg()
    candles = _candles(60)
    engine = build_engine(config, build_strategy(config))
    for c in candles[:10]:
        engine.on_candle(c)
    src = _ReplayingLiveSource(candles[10:], list(candles[:10]), repeat=False, pause_s=0.05)
    # 60x: one interval is 1 wall second, so scheduling hiccups cannot look like a stall.
    runner, _ = _runner(tmp_path, config, SessionSource(src, lambda: candles[-1].ts, 60.0, live=True),
                        engine=engine)
    src.runner = runner
    outcome = asyncio.run(asyncio.wait_for(runner.run(), timeout=30))
    assert outcome.reason is StopReason.SOURCE_ENDED, outcome.detail
    assert runner.counts["candles"] == 50 and runner.counts["skipped"] == 100
    assert all(ok for ok, _ in src.health)


def _candle_csv(path: Path, candles: list[Candle]) -> Path:
    path.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{c.ts},{c.open},{c.high},{c.low},{c.close},{c.volume}\n" for c in candles))
    return path


def test_replay_of_a_15m_file_uses_the_files_interval(tmp_path: Path) -> None:
    """Issue 10.5: the console header and summary.json said 1m (the default)."""
    ws = tmp_path / "ws"
    csv = _candle_csv(tmp_path / "c15.csv", SyntheticMarket(11, ORIGIN, 900_000).candles(0, 120))
    code, out, err = run(ws, "--cli", "replay", str(csv), "--run-id", "r15", seed_flags=False, timeout=60)
    assert code == ExitCode.OK, err
    summary = json.loads((ws / "runs" / "r15" / "summary.json").read_text())
    assert summary["interval"] == "15m" and summary["candles"] == 120
    header = next(line for line in out.splitlines() if line.startswith("replay:"))
    assert "BTCUSDT 15m" in header, header
    # An explicit interval that agrees is fine; one that does not is refused.
    code, _, err = run(ws, "--cli", "replay", str(csv), "--interval", "15m", "--run-id", "ok15",
                       seed_flags=False, timeout=60)
    assert code == ExitCode.OK, err
    code, _, err = run(ws, "--cli", "replay", str(csv), "--interval", "1m", "--run-id", "bad",
                       seed_flags=False, timeout=60)
    assert code == ExitCode.BAD_INPUT
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "c15.csv" in lines[0] and "15m" in lines[0] and "1m" in lines[0], err
    assert not (ws / "runs" / "bad").exists()
