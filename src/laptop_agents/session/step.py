"""One input through the Engine: step, commit, publish -- in that order.

Every processed candle is committed to the state store in one transaction
*before* anything is journaled or reported, so a crash at any instant leaves
a state a restart continues from (a journal line may be missing, the state
never is). A candle at or before the engine's last one is skipped; one that
closed too long ago (backfill after a gap) only warms the indicators and is
never traded at a stale price.

A failed commit the store rolled back ("database is locked", a full disk) is
retried after a pause on the event loop -- the supervisors keep running --
and a cancellation that arrives during the pause waits until the step is
committed or given up: the engine must never be left ahead of the store.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from laptop_agents.domain.contracts import StepResult
from laptop_agents.domain.events import AgentError, Event, SessionEvent
from laptop_agents.domain.models import Candle
from laptop_agents.fileio import problem as io_problem
from laptop_agents.session.clock import SessionClock
from laptop_agents.session.parts import E, SessionParts
from laptop_agents.session.state import SessionFatal, SessionState
from laptop_agents.session.trade_log import TradeLog
from laptop_agents.session.views import read_engine
from laptop_agents.stop_reasons import StopReason

# A failed commit that is not a full disk (e.g. "database is locked") is retried
# this many times, each retry spending the error budget.
STORE_RETRIES = 3
STORE_RETRY_PAUSE_S = 0.05

T = TypeVar("T")


class StepListener(Protocol):
    """Who hears about a step once it is committed and published (the operator's
    console); must be quick and never raise."""

    def on_step(self, result: StepResult, candle: Candle | None, latency_ns: int | None) -> None: ...

    def on_events(self, events: Sequence[Event]) -> None: ...


def store_error_reason(exc: BaseException) -> StopReason | None:
    """Map the store's typed errors (by name, so stand-ins work too) to a stop reason."""
    name = type(exc).__name__
    if name == "StoreWriteError":
        return StopReason.DISK_FULL
    if name == "StoreCorruptError":
        return StopReason.STORE_CORRUPT
    if isinstance(exc, OSError) and getattr(exc, "errno", None) in (28, 30):  # ENOSPC, EROFS
        return StopReason.DISK_FULL
    return None


def merge(results: Sequence[StepResult]) -> StepResult | None:
    """Several warm-up steps as one result, so they commit in one transaction."""
    if not results:
        return None
    last = results[-1]
    merged = StepResult(ts=last.ts, processed=True, equity=last.equity, position_qty=last.position_qty)
    for r in results:
        merged.events.extend(r.events)
        merged.fills.extend(r.fills)
    return merged


class CandleStep(Generic[E]):
    def __init__(self, parts: SessionParts[E], state: SessionState, clock: SessionClock, *, interval_ms: int,
                 trade_log: TradeLog, log: logging.Logger) -> None:
        self.parts = parts
        self.state = state
        self.clock = clock
        self.interval_ms = interval_ms
        self.trade_log = trade_log
        self.log = log
        # A cancellation arrived while a commit was pausing between retries;
        # the market-data task re-raises it once the step is done.
        self.cancel_deferred = False
        self.listener: StepListener | None = None
        # Live execution (session/execution.py): its rows are committed with
        # each step, and the lock keeps its exchange steps from landing
        # between an engine step and that step's commit.
        self.executor: Any = None
        self.lock = asyncio.Lock()

    # ------------------------------------------------------------ inputs
    async def candle(self, candle: Candle, arrived_ns: int, arrived_cpu_ns: int = 0) -> None:
        state, engine = self.state, self.parts.engine
        last = engine.last_candle_ts
        if last is not None and candle.ts <= last:
            state.skipped()
            return
        if self.clock.closed_late(candle.ts, self.interval_ms, self.parts.source.late_after_ms):
            state.counts["late_warmup"] += await self.warm([candle])
            return
        async with self.lock:
            result = self.engine_call(engine.on_candle, candle)
            if not result.processed:
                state.skipped()
                return
            await self.commit(result)
        state.processed()
        clock = self.clock
        committed_ns = clock.perf_ns() - arrived_ns
        state.latency.add(committed_ns)
        if arrived_cpu_ns:
            state.cpu_latency.add(clock.cpu_ns() - arrived_cpu_ns)
        self.publish(result, candle, latency_ns=committed_ns)
        state.counts["candles"] += 1
        state.step_latency.add(clock.perf_ns() - arrived_ns)

    async def warm(self, candles: Sequence[Candle]) -> int:
        """Indicators only, never traded; the steps commit as one transaction."""
        engine = self.parts.engine
        results = []
        for c in candles:
            last = engine.last_candle_ts
            if last is not None and c.ts <= last:
                self.state.skipped()
                continue
            r = self.engine_call(engine.warmup, c)
            if r.processed:
                results.append(r)
        merged = merge(results)
        if merged is not None:
            async with self.lock:
                await self.commit(merged)
            self.publish(merged, None)
            self.state.processed()
        return len(results)

    def engine_call(self, fn: Callable[[T], StepResult], item: T) -> StepResult:
        """An engine exception is an engine bug, never a market-data error: mark
        the engine broken so the stream loop re-raises it as a crash."""
        try:
            return fn(item)
        except Exception:
            self.state.engine_broken = True
            raise

    def engine_feed(self, fn: Callable[[T], None], item: T) -> None:
        """:meth:`engine_call` for the inputs that return nothing (ticks, funding)."""
        try:
            fn(item)
        except Exception:
            self.state.engine_broken = True
            raise

    # ------------------------------------------------------------ persistence
    async def commit(self, result: StepResult, live_orders: Sequence[Any] = ()) -> None:
        """One transaction for the step. A failed write (the store rolled it back,
        so a retry is safe) is retried a few times, each retry spending the
        error budget; then the session stops with ``disk_full``.

        Live: the step's new orders get their rows (and client ids) here and
        are committed with it; only then are they handed to the sender."""
        parts, state = self.parts, self.state
        executor = self.executor
        rows = list(live_orders)
        if executor is not None:
            rows += executor.prepare(result.ts)
        for attempt in range(STORE_RETRIES + 1):
            try:
                if rows:
                    parts.store.commit(parts.engine, result, rows)  # type: ignore[call-arg]
                else:
                    parts.store.commit(parts.engine, result)
                if executor is not None:
                    executor.committed()
                return
            except Exception as exc:
                reason = store_error_reason(exc)
                retryable = reason is StopReason.DISK_FULL or isinstance(exc, sqlite3.OperationalError)
                if not retryable:
                    if executor is not None:
                        executor.abandon()
                    if reason is not None:
                        raise SessionFatal(reason, f"state store: {exc}") from exc
                    # Unclassified: the engine has stepped past what the store
                    # holds, so it must never be committed again (a later commit
                    # would store a state whose step's fills were never written).
                    state.engine_broken = True
                    raise
                if attempt == STORE_RETRIES:
                    if executor is not None:
                        executor.abandon()
                    raise SessionFatal(StopReason.DISK_FULL, f"state store: {exc}") from exc
                self.log.warning("state commit failed (%s), retry %d/%d", exc, attempt + 1, STORE_RETRIES)
                state.spend("store_retry")
                await self._pause(STORE_RETRY_PAUSE_S * (attempt + 1))

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancel_deferred = True  # finish this step first; the caller re-raises

    def publish(self, result: StepResult, candle: Candle | None, *, final: bool = False,
                latency_ns: int | None = None) -> None:
        """Journal and report a committed step (never before the commit). The
        state is already safe, so a failed write here stops the session with
        ``disk_full`` rather than a crash. The ``final`` step (shutdown) ends
        the equity curve at the account as the session left it. Last, the
        listener (the console) hears of it, with the arrival-to-commit latency."""
        parts = self.parts
        try:
            if result.events:
                parts.journal.write(result.events)
            writer = parts.writer
            if writer is not None:
                if candle is not None:
                    writer.on_step(candle, result)
                elif final:
                    price = result.fills[-1].price if result.fills else read_engine(parts.engine).last_price
                    if price is not None:
                        writer.on_final(result.ts, float(price), result.equity, result.position_qty, result.events)
                    elif result.events:
                        writer.on_events(result.events)
                elif result.events:
                    writer.on_events(result.events)
        except OSError as exc:
            raise SessionFatal(StopReason.DISK_FULL, f"cannot write run output: {io_problem(exc)}") from exc
        except Exception:
            self.state.output_broken = True  # a bug, never a market-data error: the stream loop re-raises it
            raise
        if result.fills:
            self.trade_log.on_step(result)
        errors = [e for e in result.events if isinstance(e, AgentError)]
        if errors:
            for e in errors:
                self.log.warning("agent error isolated: %s: %s", e.agent, e.error, extra={"fields": e.to_dict()})
            self.state.spend("agent_error", len(errors))
        if self.listener is not None:
            self.listener.on_step(result, candle, latency_ns)

    def journal_session(self, kind: str, **data: Any) -> None:
        """The ``session`` start/stop event, stamped in market time after the last candle."""
        try:
            ts = self.clock.event_ts(self.parts.engine.last_candle_ts, self.interval_ms)
            event = SessionEvent(ts, kind, data)
            self.parts.journal.write([event])
        except Exception as exc:
            self.log.warning("could not journal the session %s event: %s", kind, exc)
            return
        if self.listener is not None:
            self.listener.on_events([event])
