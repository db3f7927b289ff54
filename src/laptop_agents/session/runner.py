"""The live session: an async shell around the deterministic Engine.

One market-data task feeds the Engine with each closed candle; every processed
candle is committed to the state store in one transaction *before* anything is
journaled or reported, so a crash at any instant leaves a state a restart
continues from (crash-only: startup and recovery are the same path, candles at
or before the store's last one are skipped). Supervising tasks watch the kill
switch, stale data, the heartbeat and the duration; signal handlers and the
guards end the session through one door, :meth:`AsyncRunner.request_stop`,
which records the *first* reason. Every exit path -- clean or not -- ends
with the final commit (unless the engine itself failed), the ``session`` stop
event, ``summary.json`` + report, a ``stopped`` heartbeat with the reason, a
console summary and an exit code from :mod:`laptop_agents.exit_codes`.

Funding is refreshed by the sources themselves and arrives in the stream like
any market data (bitunix: one REST read at stream start, then the websocket
``price`` channel; mock: at start and at each 8-hour period), so it needs no
task of its own here. Every task lets ``CancelledError`` propagate after its
own cleanup (the market-data task closes its stream); the runner cancels them
and waits with a grace period before the final commit.

Kill-switch file policy (decided here, relied on by the watchdog):

- a session refuses to start while ``<workspace>/kill.txt`` exists (exit
  ``PREFLIGHT_FAILED``, a non-restartable code): a pending stop request is
  never silently discarded, and a watchdog can never restart into it;
- a session that stops *because of* the kill file deletes it only after its
  shutdown is complete (orders cancelled, position flattened, state
  committed, summary written). If it dies during the shutdown the file stays,
  the watchdog does not restart, and the user sees the pending stop.

Replays (``cmd_replay``) run through the same :class:`AsyncRunner` with their
own in-memory state and never touch the workspace's ``state.db``, lock,
heartbeat or kill file: a replay must not mix with, or stop, a live session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from laptop_agents import interrupts
from laptop_agents.config import AppConfig
from laptop_agents.context import CommandContext
from laptop_agents.domain.contracts import SourceError, StepResult
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.events import AgentError, Event, FillEvent, SessionEvent, TradeClosed
from laptop_agents.domain.models import Candle, FundingRate, Tick
from laptop_agents.domain.timeframes import interval_ms
from laptop_agents.engine.status import EngineStatus
from laptop_agents.exit_codes import ExitCode
from laptop_agents.fileio import io_error_line
from laptop_agents.fileio import problem as io_problem
from laptop_agents.logs import get_logger, scrub
from laptop_agents.ops.workspace import RunIdError, Workspace
from laptop_agents.session.guards import (
    USER_STOPS,
    ErrorCounters,
    LatencyStats,
    ProgressGuard,
    StaleGuard,
    StopReason,
    exit_code_for,
)
from laptop_agents.session.heartbeat import HeartbeatWriter
from laptop_agents.sources.factory import SessionSource

# A failed commit that is not a full disk (e.g. "database is locked") is retried
# this many times, each retry spending the error budget.
STORE_RETRIES = 3
_STORE_RETRY_SLEEP_S = 0.05
# Seconds to wait for cancelled tasks and the source to wind down.
_TASK_GRACE_S = 5.0
# Back-off before re-opening a stream that raised instead of yielding SourceError.
_STREAM_RESTART_S = 1.0


class EngineLike(Protocol):
    last_candle_ts: int | None

    def on_candle(self, candle: Candle) -> StepResult: ...
    def warmup(self, candle: Candle) -> StepResult: ...
    def on_tick(self, tick: Tick) -> None: ...
    def on_funding(self, funding: FundingRate) -> None: ...
    def shutdown(self, ts: int, *, flatten: bool, reason: str) -> StepResult: ...
    def status(self) -> EngineStatus: ...


class StoreLike(Protocol):
    def commit(self, engine: Any, result: StepResult) -> None: ...
    def close(self) -> None: ...


class JournalLike(Protocol):
    def write(self, events: Any) -> Any: ...
    def close(self) -> None: ...


class WriterLike(Protocol):
    def on_step(self, candle: Candle, result: StepResult) -> None: ...
    def on_events(self, events: Any) -> None: ...
    def on_final(self, ts: int, price: float, equity: float, position_qty: float, events: Any = ()) -> bool: ...
    def flush(self) -> None: ...
    def finish(self, summary_fields: Any = None) -> Path: ...


@dataclass
class SessionParts:
    """Everything the runner drives; built by :func:`cmd_run` / :func:`cmd_replay`
    (or by a test with stand-ins)."""

    engine: EngineLike
    store: StoreLike
    journal: JournalLike
    source: SessionSource
    writer: WriterLike | None = None


@dataclass
class RunnerOptions:
    run_id: str
    run_dir: Path
    mode: str = "live-session"  # or "replay"
    heartbeat_path: Path | None = None
    kill_file: Path | None = None
    health_port: int | None = None
    dashboard: bool = False
    install_signal_handlers: bool = True
    workspace: Path | None = None
    # Move everything alive after start-up (imported modules, warm-up) out of
    # the garbage collector's sight: a full collection then costs ~0 ms instead
    # of 35+ ms, which would otherwise land on some candle's latency.
    freeze_gc: bool = True


@dataclass
class SessionOutcome:
    reason: StopReason
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    detail: str = ""


class _Fatal(LaptopAgentsError):
    """Ends the session from inside the market-data path with a reason."""

    def __init__(self, reason: StopReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _store_error_reason(exc: BaseException) -> StopReason | None:
    """Map the store's typed errors (by name, so stand-ins work too) to a stop reason."""
    name = type(exc).__name__
    if name == "StoreWriteError":
        return StopReason.DISK_FULL
    if name == "StoreCorruptError":
        return StopReason.STORE_CORRUPT
    if isinstance(exc, OSError) and getattr(exc, "errno", None) in (28, 30):  # ENOSPC, EROFS
        return StopReason.DISK_FULL
    return None


def _replay_fatal(exc: BaseException) -> _Fatal | None:
    """A recording that no longer matches what the replay asks for is bad input,
    not a market-data hiccup: counting it and re-opening the stream would replay
    on past the point where the run stopped being the recorded one."""
    if type(exc).__name__ == "RecordingError":  # by name: the runner does not import the recorder
        return _Fatal(StopReason.REPLAY_DIVERGED, scrub(str(exc)))
    return None


def _merge(results: list[StepResult]) -> StepResult | None:
    """Several warm-up steps as one result, so they commit in one transaction."""
    if not results:
        return None
    last = results[-1]
    merged = StepResult(ts=last.ts, processed=True, equity=last.equity, position_qty=last.position_qty)
    for r in results:
        merged.events.extend(r.events)
        merged.fills.extend(r.fills)
    return merged


class AsyncRunner:
    """Runs one session to its end and returns a :class:`SessionOutcome`.

    All Engine calls happen on the event loop thread, one at a time, so the
    Engine needs no locking; the per-candle work (engine step + one SQLite
    transaction) is short enough that supervisors are never starved.
    """

    def __init__(
        self,
        config: AppConfig,
        parts: SessionParts,
        options: RunnerOptions,
        *,
        log: Any = None,
        print_fn: Callable[[str], None] = print,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.parts = parts
        self.opts = options
        self.log = log or get_logger("session.runner")
        self._print = print_fn
        self._monotonic = monotonic
        self._wall = wall_clock
        system = config.system
        self.interval_ms = interval_ms(config.trading.interval)
        self.errors = ErrorCounters(system.max_consecutive_md_errors, config.error_budget())
        self.stale = StaleGuard(system.stale_timeout_s, monotonic)
        # Live sources only: data arriving while no candle is processed (all
        # skipped) is judged in wall time, which replays do not have.
        self.progress: ProgressGuard | None = None
        src_speed = parts.source.speed
        if parts.source.live and src_speed:
            self.progress = ProgressGuard.for_interval(system.stale_timeout_s, self.interval_ms / 1000.0 / src_speed,
                                                       monotonic)
        self.latency = LatencyStats()  # arrival -> decision committed (wall clock)
        self.cpu_latency = LatencyStats()  # the same span in this thread's CPU time (no preemption, no I/O wait)
        self.step_latency = LatencyStats()  # arrival -> journaled and reported
        self.status = "starting"
        self.reason: StopReason | None = None
        self.detail = ""
        self._stop = asyncio.Event()
        self.counts = {"candles": 0, "warmup": 0, "late_warmup": 0, "skipped": 0, "ticks": 0, "funding": 0,
                       "source_errors": 0}
        self.health: Any = None
        self.started_wall = wall_clock()
        self._started_mono = monotonic()
        self._engine_broken = False
        self._output_broken = False  # the run output failed with a bug (not a full disk)
        self._first_status: dict[str, Any] = {}
        self._log_qty = 0.0  # position as the trade log lines last described it
        self.heartbeat: HeartbeatWriter | None = None
        if options.heartbeat_path is not None:
            self.heartbeat = HeartbeatWriter(options.heartbeat_path, options.run_id, self._heartbeat_fields,
                                             wall_clock=wall_clock)

    # ------------------------------------------------------------ stopping
    def request_stop(self, reason: StopReason, detail: str = "") -> None:
        """The one door out: the first reason wins, later ones are logged only."""
        if self.reason is None:
            self.reason = reason
            self.detail = detail
            if self.status in ("starting", "running"):
                self.status = "stopping"  # /health answers 503 from this instant
            self.log.info("session stop requested: %s%s", reason.value, f" ({detail})" if detail else "",
                          extra={"fields": {"reason": reason.value, "detail": detail}})
            self._stop.set()
        elif reason != self.reason:
            self.log.debug("further stop reason ignored: %s (%s)", reason.value, detail)

    def _spend(self, kind: str, n: int = 1) -> None:
        if self.errors.record(kind, n) is not None:
            self.request_stop(StopReason.ERROR_BUDGET,
                              f"{self.errors.total} errors >= budget {self.errors.budget} (last: {kind})")

    # ------------------------------------------------------------ state views
    def _engine_status(self) -> dict[str, Any]:
        try:
            return self.parts.engine.status().to_dict()  # the heartbeat's, /health's and the summary's JSON
        except Exception as exc:  # a broken engine must not break the heartbeat
            return {"status_error": type(exc).__name__}

    def _heartbeat_fields(self) -> dict[str, Any]:
        st = self._engine_status()
        pos = st.get("position")
        orders = st.get("working_orders")
        return {
            "equity": st.get("equity"),
            "position": pos,
            "working_orders": len(orders) if isinstance(orders, list) else orders,
            "last_candle_ts": st.get("last_candle_ts", self.parts.engine.last_candle_ts),
            "market_data_age_s": round(self.stale.age_s(), 3),
            "errors": self.errors.snapshot(),
            "breaker": st.get("breaker") or {},
            "mode": self.opts.mode,
            "candles": self.counts["candles"],
            "skipped": self.counts["skipped"],
            "last_processed_age_s": round(self.progress.age_s(), 3) if self.progress is not None else None,
        }

    def healthy(self) -> bool:
        return (self.status == "running" and not self.stale.stale()
                and not (self.progress is not None and self.progress.lagging()))

    def health_snapshot(self) -> tuple[bool, dict[str, Any]]:
        st = self._engine_status()
        try:
            source_status = self.parts.source.source.status()
        except Exception as exc:
            source_status = {"status_error": type(exc).__name__}
        body = {
            "status": self.status,
            "reason": self.reason.value if self.reason else None,
            "run_id": self.opts.run_id,
            "mode": self.opts.mode,
            "uptime_s": round(self._monotonic() - self._started_mono, 3),
            "market_data_age_s": round(self.stale.age_s(), 3),
            "stale_timeout_s": self.stale.timeout_s,
            "stale": self.stale.stale(),
            "progress": self.progress.snapshot() if self.progress is not None else None,
            "source": source_status,
            "errors": self.errors.snapshot(),
            "equity": st.get("equity"),
            "position": st.get("position"),
            "working_orders": st.get("working_orders"),
            "breaker": st.get("breaker"),
            "last_candle_ts": st.get("last_candle_ts"),
            "counts": dict(self.counts),
            "latency": self.latency.snapshot(),
        }
        return self.healthy(), body

    def _beat(self, status: str | None = None) -> None:
        if status is not None:
            self.status = status
        if self.heartbeat is None:
            return
        try:
            self.heartbeat.beat(status, self.reason.value if self.reason else None)
        except OSError as exc:
            self.log.warning("heartbeat write failed: %s", exc)
            self._spend("heartbeat")

    def _market_now(self) -> int | None:
        clock = self.parts.source.clock
        return clock() if clock is not None else None

    def _event_ts(self) -> int:
        """Event time for session events and the shutdown step: never before the last candle."""
        last = self.parts.engine.last_candle_ts
        now = self._market_now()
        base = last + self.interval_ms if last is not None else 0
        return max(base, now) if now is not None else base

    # ------------------------------------------------------------ persistence
    def _commit(self, result: StepResult) -> None:
        """One transaction for the step. A failed write (the store rolled it back,
        so a retry is safe) is retried a few times, each retry spending the
        error budget; then the session stops with ``disk_full``."""
        store, engine = self.parts.store, self.parts.engine
        for attempt in range(STORE_RETRIES + 1):
            try:
                store.commit(engine, result)
                return
            except Exception as exc:
                reason = _store_error_reason(exc)
                retryable = reason is StopReason.DISK_FULL or isinstance(exc, sqlite3.OperationalError)
                if not retryable:
                    if reason is not None:
                        raise _Fatal(reason, f"state store: {exc}") from exc
                    # Unclassified: the engine has stepped past what the store
                    # holds, so it must never be committed again (a later commit
                    # would store a state whose step's fills were never written).
                    self._engine_broken = True
                    raise
                if attempt == STORE_RETRIES:
                    raise _Fatal(StopReason.DISK_FULL, f"state store: {exc}") from exc
                self.log.warning("state commit failed (%s), retry %d/%d", exc, attempt + 1, STORE_RETRIES)
                self._spend("store_retry")
                time.sleep(_STORE_RETRY_SLEEP_S * (attempt + 1))

    def _publish(self, result: StepResult, candle: Candle | None, *, final: bool = False) -> None:
        """Journal and report a committed step (never before the commit). The
        state is already safe, so a failed write here stops the session with
        ``disk_full`` rather than a crash. The ``final`` step (shutdown) ends
        the equity curve at the account as the session left it."""
        try:
            if result.events:
                self.parts.journal.write(result.events)
            writer = self.parts.writer
            if writer is not None:
                if candle is not None:
                    writer.on_step(candle, result)
                elif final:
                    price = result.fills[-1].price if result.fills else self._engine_status().get("last_price")
                    if price is not None:
                        writer.on_final(result.ts, float(price), result.equity, result.position_qty, result.events)
                    elif result.events:
                        writer.on_events(result.events)
                elif result.events:
                    writer.on_events(result.events)
        except OSError as exc:
            raise _Fatal(StopReason.DISK_FULL, f"cannot write run output: {io_problem(exc)}") from exc
        except Exception:
            self._output_broken = True  # a bug, never a market-data error: the stream loop re-raises it
            raise
        if result.fills:
            self._log_trades(result)
        errors = [e for e in result.events if isinstance(e, AgentError)]
        if errors:
            for e in errors:
                self.log.warning("agent error isolated: %s: %s", e.agent, e.error,
                                 extra={"fields": {"ts": e.ts, "agent": e.agent, "error": e.error}})
            self._spend("agent_error", len(errors))

    def _log_trades(self, result: StepResult) -> None:
        """One INFO line per position change, for a user watching the console:
        a trade opened (or added to, reduced, reversed) by a fill, and each
        closed trade with its PnL. Only steps with fills get here (rare)."""
        first = self._first_status
        symbol = first.get("symbol") or self.config.trading.symbol
        money = 8 if first.get("currency") == "BTC" else 2
        qty = self._log_qty
        for ev in result.events:
            if isinstance(ev, FillEvent):
                new = qty + (ev.qty if ev.side == "BUY" else -ev.qty)
                if abs(new) <= 1e-12:
                    new = 0.0
                if new != 0.0:
                    if qty == 0.0 or qty * new < 0:
                        verb = "trade opened" if qty == 0.0 else "position reversed, trade opened"
                        what = f"{_side(new)} {abs(new):g} {symbol}"
                    else:
                        verb = "position added" if abs(new) > abs(qty) else "position reduced"
                        what = f"{_side(new)} {abs(qty):g} -> {abs(new):g} {symbol}"
                    self.log.info("%s: %s @ %s (fee %.*f, %s)", verb, what, _price(ev.price), money,
                                  ev.fee, ev.reason or "fill",
                                  extra={"fields": {"event": "fill", **_log_fields(ev), "position_qty": new}})
                qty = new
            elif isinstance(ev, TradeClosed):
                self.log.info(
                    "trade closed: %s %s %s, %s -> %s, PnL %.*f, fees %.*f, funding %.*f, net PnL %.*f (%s)",
                    ev.side, _qty(ev.qty), symbol, _price(ev.entry_price), _price(ev.exit_price), money, ev.pnl,
                    money, ev.fees, money, ev.funding, money, ev.net_pnl, ev.exit_reason,
                    extra={"fields": {"event": "trade_closed", **_log_fields(ev)}})
        self._log_qty = float(result.position_qty)

    def _session_event(self, kind: str, **data: Any) -> None:
        try:
            self.parts.journal.write([SessionEvent(self._event_ts(), kind, data)])
        except Exception as exc:
            self.log.warning("could not journal the session %s event: %s", kind, exc)

    # ------------------------------------------------------------ market data
    def _warm(self, candles: list[Candle]) -> int:
        engine = self.parts.engine
        results = []
        for c in candles:
            last = engine.last_candle_ts
            if last is not None and c.ts <= last:
                self._skipped()
                continue
            try:
                r = engine.warmup(c)
            except Exception:
                self._engine_broken = True
                raise
            if r.processed:
                results.append(r)
        merged = _merge(results)
        if merged is not None:
            self._commit(merged)
            self._publish(merged, None)
            if self.progress is not None:
                self.progress.touch()
        return len(results)

    def _skipped(self) -> None:
        """A candle at or before the engine's last one: nothing to do, but it
        counts (health, stall detection) -- a session that skips everything
        must not look healthy."""
        self.counts["skipped"] += 1
        if self.progress is not None:
            self.progress.skipped()

    def _is_late(self, candle: Candle) -> bool:
        """A candle that closed more than ~2 intervals ago (backfill after a gap):
        indicators only, never traded at a stale price. Only for wall-clock live
        sources and replays of their recordings (judged by recorded receive
        time); the mock never lags and candle-file replays have no "now"."""
        source = self.parts.source
        late_ms = source.late_after_ms
        if late_ms is None:
            return False
        now = source.late_clock() if source.late_clock is not None else self._market_now()
        return now is not None and now - (candle.ts + self.interval_ms) > late_ms

    def _on_candle(self, candle: Candle, arrived_ns: int, arrived_cpu_ns: int = 0) -> None:
        engine = self.parts.engine
        last = engine.last_candle_ts
        if last is not None and candle.ts <= last:
            self._skipped()
            return
        if self._is_late(candle):
            self.counts["late_warmup"] += self._warm([candle])
            return
        try:
            result = engine.on_candle(candle)
        except Exception:
            self._engine_broken = True
            raise
        if not result.processed:
            self._skipped()
            return
        self._commit(result)
        if self.progress is not None:
            self.progress.touch()
        self.latency.add(time.perf_counter_ns() - arrived_ns)
        if arrived_cpu_ns:
            self.cpu_latency.add(time.thread_time_ns() - arrived_cpu_ns)
        self._publish(result, candle)
        self.counts["candles"] += 1
        self.step_latency.add(time.perf_counter_ns() - arrived_ns)

    def _on_source_error(self, err: SourceError) -> None:
        self.counts["source_errors"] += 1
        self.log.warning("market data error (%d in a row): %s: %s", self.errors.consecutive_md + 1, err.kind,
                         err.message, extra={"fields": {"kind": err.kind, "message": err.message}})
        reason = self.errors.market_data_error()
        if reason is StopReason.MARKET_DATA_ERRORS:
            self.request_stop(reason, f"{self.errors.consecutive_md} consecutive market-data errors "
                                      f"(last: {err.kind}: {err.message})")
        elif reason is StopReason.ERROR_BUDGET:
            self.request_stop(reason, f"{self.errors.total} errors >= budget {self.errors.budget} "
                                      "(last: market_data)")

    def _engine_call(self, fn: Callable[[Any], None], item: Any) -> None:
        """An engine exception is an engine bug, never a market-data error: mark
        the engine broken so the stream loop re-raises it as a crash."""
        try:
            fn(item)
        except Exception:
            self._engine_broken = True
            raise

    async def _market_data(self) -> None:
        src = self.parts.source
        engine = self.parts.engine
        perf = time.perf_counter_ns
        cpu = time.thread_time_ns
        while not self._stop.is_set():
            stream = src.source.stream()
            try:
                async for item in stream:
                    arrived = perf()
                    if isinstance(item, Candle):
                        self.stale.touch()
                        self.errors.good_data()
                        self._on_candle(item, arrived, cpu())
                    elif isinstance(item, Tick):
                        self.stale.touch()
                        self.errors.good_data()
                        self.counts["ticks"] += 1
                        self._engine_call(engine.on_tick, item)
                    elif isinstance(item, FundingRate):
                        self.stale.touch()
                        self.errors.good_data()
                        self.counts["funding"] += 1
                        self._engine_call(engine.on_funding, item)
                    elif isinstance(item, SourceError):
                        self._on_source_error(item)
                    else:
                        self._on_source_error(SourceError("bad_item", f"source yielded {type(item).__name__}"))
                    if self._stop.is_set():
                        return
            except (asyncio.CancelledError, _Fatal):
                raise
            except Exception as exc:
                if self._engine_broken or self._output_broken:
                    raise
                fatal = _replay_fatal(exc)
                if fatal is not None:
                    raise fatal from exc
                # A source that raises instead of yielding SourceError: count it
                # like one and re-open the stream after a pause.
                self._on_source_error(SourceError("source_exception", f"{type(exc).__name__}: {exc}"))
                await asyncio.sleep(_STREAM_RESTART_S)
                continue
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(aclose(), _TASK_GRACE_S)
            # The stream ended by itself.
            if src.live:
                self.request_stop(StopReason.SOURCE_ENDED, f"{src.source.name} stream ended")
            else:
                self.request_stop(StopReason.END_OF_DATA, "end of the replay data")
            return

    # ------------------------------------------------------------ supervisors
    async def _kill_switch(self, path: Path) -> None:
        interval = min(1.0, self.config.system.kill_check_interval_s)
        while True:
            try:
                seen = path.exists()
            except OSError as exc:
                # A hiccup reading the workspace (EACCES, EIO) must not end this
                # task: a dead kill-switch task would ignore the file for the
                # rest of the session. Count it and look again.
                self.log.warning("kill switch check failed: %s", exc)
                self._spend("kill_switch_check")
                seen = False
            if seen:
                try:
                    detail = scrub(path.read_text(encoding="utf-8", errors="replace").strip())[:300]
                except OSError:
                    detail = ""
                self.request_stop(StopReason.KILL_SWITCH, f"{path}" + (f": {detail}" if detail else ""))
                return
            await asyncio.sleep(interval)

    async def _stale_watch(self) -> None:
        step = max(0.01, min(1.0, self.stale.timeout_s / 4))
        progress = self.progress
        while True:
            await asyncio.sleep(step)
            if self.stale.stale():
                self.request_stop(StopReason.STALE_DATA,
                                  f"no market data for {self.stale.age_s():.1f} s (timeout {self.stale.timeout_s:g} s)")
                return
            if progress is not None and progress.stalled():
                self.request_stop(StopReason.STALE_DATA, self._stall_detail(progress))
                return

    def _stall_detail(self, progress: ProgressGuard) -> str:
        last = self.parts.engine.last_candle_ts
        when = datetime.fromtimestamp(last / 1000.0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if last is not None else "none"
        head = (f"no candle processed for {progress.age_s():.1f} s (limit {progress.timeout_s:g} s) "
                f"although market data arrived")
        if progress.skipped_since:
            return (f"{head}: {progress.skipped_since} candles skipped as at or before the last processed "
                    f"candle {when}")
        return f"{head}: no closed candle came (last processed candle {when})"

    async def _heartbeat_loop(self) -> None:
        interval = self.config.system.heartbeat_interval_s
        while True:
            await asyncio.sleep(interval)
            self._beat()
            if self.parts.writer is not None:
                try:
                    self.parts.writer.flush()  # keep the run files current for `status` and readers
                except OSError as exc:
                    self.log.warning("run files flush failed: %s", exc)
                    self._spend("report_write")

    async def _duration(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.request_stop(StopReason.DURATION, f"{self.config.trading.duration_min:g} min reached")

    def _install_signals(self) -> Callable[[], None]:
        if not self.opts.install_signal_handlers:
            return lambda: None
        loop = asyncio.get_running_loop()
        sigs = [signal.SIGINT, signal.SIGTERM]
        # Windows: the watchdog stops its child with CTRL_BREAK_EVENT (SIGBREAK),
        # whose default action ends the process without the graceful shutdown.
        sigbreak = getattr(signal, "SIGBREAK", None)
        if sigbreak is not None:
            sigs.append(sigbreak)
        # POSIX: closing the terminal (SIGHUP) is a stop like SIGTERM, not a
        # kill in the middle of a candle; the terminal's output goes nowhere then.
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is not None:
            sigs.append(sighup)
        tty_fds = interrupts.terminal_fds()

        def on_signal(signum: int) -> None:
            if signum == sighup:
                interrupts.detach_from_terminal(tty_fds)
            if self.reason is not None:
                self.log.warning("%s received while stopping (%s): finishing the shutdown first",
                                 signal.Signals(signum).name, self.reason.value)
            self.request_stop(StopReason.SIGNAL, signal.Signals(signum).name)

        installed: list[int] = []
        previous: dict[int, Any] = {}
        for s in sigs:
            try:
                loop.add_signal_handler(s, on_signal, s)
                installed.append(s)
            except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
                previous[s] = signal.signal(s, lambda n, _f: loop.call_soon_threadsafe(on_signal, n))

        def restore() -> None:
            for s in installed:
                loop.remove_signal_handler(s)
            for s, h in previous.items():
                signal.signal(s, h)

        return restore

    # ------------------------------------------------------------ the session
    async def run(self) -> SessionOutcome:
        opts = self.opts
        restore_signals = self._install_signals()
        tasks: list[asyncio.Task[Any]] = []
        try:
            self._beat("starting")
            self._first_status = self._engine_status()
            self._log_qty = float((self._first_status.get("position") or {}).get("qty") or 0.0)
            self._session_event("start", run_id=opts.run_id, mode=opts.mode, source=self.parts.source.description)
            system = self.config.system
            if opts.health_port is not None or system.health_port is not None or system.dashboard:
                await self._start_health()
            # The kill switch and the heartbeat run from the start; a stop
            # request during the warm-up (REST backfill can take a while) ends it.
            if opts.kill_file is not None:
                tasks.append(asyncio.create_task(self._kill_switch(opts.kill_file), name="kill-switch"))
            if self.heartbeat is not None or self.parts.writer is not None:
                tasks.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
            if await self._until_stop(self._warmup()):
                await self._stream(tasks)
        except _Fatal as exc:
            self.request_stop(exc.reason, exc.detail)
        except asyncio.CancelledError:
            self.request_stop(StopReason.SIGNAL, "cancelled")
        except Exception as exc:
            self._crash(exc)
        return await self._finish(tasks, restore_signals)

    async def _stream(self, tasks: list[asyncio.Task[Any]]) -> None:
        """The trading phase: market data, stale-data guard, duration; until a stop."""
        opts = self.opts
        if opts.freeze_gc:
            gc.collect()
            gc.freeze()
        self._beat("running")
        self.stale.touch()
        if self.progress is not None:
            self.progress.touch()
        tasks.append(asyncio.create_task(self._market_data(), name="market-data"))
        tasks.append(asyncio.create_task(self._stale_watch(), name="stale-data"))
        speed = self.parts.source.speed
        if speed is not None and self.parts.source.clock is not None:
            seconds = self.config.trading.duration_min * 60.0 / speed
            tasks.append(asyncio.create_task(self._duration(seconds), name="duration"))
        self.log.info("session running", extra={"fields": {"run_id": opts.run_id, "mode": opts.mode}})
        await self._supervise(tasks)

    async def _finish(self, tasks: list[asyncio.Task[Any]], restore_signals: Callable[[], None]) -> SessionOutcome:
        """Stop the tasks and shut down with our signal handlers still in place:
        a second Ctrl-C / SIGTERM during the final commit is then only logged,
        instead of a KeyboardInterrupt tearing the shutdown in half."""
        try:
            await self._cancel(tasks)
            return await self._shutdown()
        finally:
            restore_signals()

    async def _until_stop(self, coro: Any) -> bool:
        """Run ``coro`` unless a stop is requested first (then cancel it). True if it completed."""
        work = asyncio.create_task(coro)
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            return False
        work.result()  # re-raise what the work raised (_Fatal, a crash)
        return not self._stop.is_set()

    async def _warmup(self) -> None:
        try:
            candles = await self.parts.source.source.warmup()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fatal = _replay_fatal(exc)
            if fatal is not None:
                raise fatal from exc
            self._on_source_error(SourceError("warmup", f"{type(exc).__name__}: {exc}"))
            return
        if candles:
            self.counts["warmup"] += self._warm(list(candles))
            self.log.info("warm-up: %d candles", self.counts["warmup"])

    async def _supervise(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Wait for a stop request; a task that dies unexpectedly is a stop reason too."""
        stop_wait = asyncio.create_task(self._stop.wait(), name="stop-wait")
        try:
            pending = set(tasks)
            while not self._stop.is_set():
                done, pending = await asyncio.wait(pending | {stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t is stop_wait or t.cancelled():
                        continue
                    exc = t.exception()
                    if exc is None:
                        continue
                    if isinstance(exc, _Fatal):
                        self.request_stop(exc.reason, exc.detail)
                    elif t.get_name() == "market-data":
                        self._crash(exc)
                    else:
                        # A supervising task (kill switch, stale data, heartbeat...)
                        # died: running on without it would break the promises it
                        # keeps, so stop as a crash (state committed, position
                        # kept) and let the watchdog restart a whole session.
                        self._spend("task_error")
                        self._crash(exc, task=t.get_name())
                pending.discard(stop_wait)
                if not pending and not self._stop.is_set():
                    await self._stop.wait()
        finally:
            stop_wait.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop_wait

    def _crash(self, exc: BaseException, *, task: str | None = None) -> None:
        import traceback

        where = f"task {task}: " if task else ""
        self.log.error("session crashed: %s%s", where, exc,
                       extra={"fields": {"traceback": scrub("".join(traceback.format_exception(exc)))}})
        self.request_stop(StopReason.CRASH, scrub(f"{where}{type(exc).__name__}: {exc}"))

    async def _cancel(self, tasks: list[asyncio.Task[Any]]) -> None:
        for t in tasks:
            t.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=_TASK_GRACE_S)
            for t in pending:
                self.log.warning("task %s did not stop within %.0f s", t.get_name(), _TASK_GRACE_S)
            for t in done:
                if not t.cancelled() and t.exception() is not None and self.reason is None:
                    self._crash(t.exception())  # type: ignore[arg-type]

    async def _start_health(self) -> None:
        from laptop_agents.session.health import HealthServer

        port = self.opts.health_port if self.opts.health_port is not None else (self.config.system.health_port or 0)
        try:
            self.health = await HealthServer(self.health_snapshot, port,
                                             dashboard=self.opts.dashboard or self.config.system.dashboard).start()
        except OSError as exc:
            self.log.error("health endpoint could not start on 127.0.0.1:%s: %s", port, exc)
            self._spend("health")
            self.health = None
            return
        self._print(f"health: {self.health.url}" + (f"  dashboard: http://127.0.0.1:{self.health.port}/"
                                                    if self.health.dashboard else ""))

    async def _shutdown(self) -> SessionOutcome:
        reason = self.reason or StopReason.CRASH
        self._beat("stopping")
        engine = self.parts.engine
        report: Path | None = None
        # 1. The final engine step and commit (never on a broken engine: the
        #    store keeps the last good state and a restart resumes from it).
        final_ok = True
        result: StepResult | None = None
        if not self._engine_broken and reason not in (StopReason.STORE_CORRUPT, StopReason.DISK_FULL):
            try:
                ts = self._event_ts()
                if reason in USER_STOPS:
                    flatten = self.config.system.flatten_on_kill
                    result = engine.shutdown(ts, flatten=flatten, reason=reason.value)
                else:
                    # Persists what arrived since the last candle (funding rate...).
                    st = self._engine_status()
                    result = StepResult(ts=ts, processed=True, equity=float(st.get("equity") or 0.0),
                                        position_qty=float((st.get("position") or {}).get("qty") or 0.0))
                self._commit(result)
            except Exception as exc:
                final_ok = False
                result = None
                self.log.error("final state commit failed: %s", exc, exc_info=exc)
                if reason in (StopReason.DURATION, StopReason.END_OF_DATA, StopReason.KILL_SWITCH, StopReason.SIGNAL):
                    own = exc.reason if isinstance(exc, _Fatal) else _store_error_reason(exc)
                    reason = own or StopReason.CRASH
                    self.reason = reason
                    self.detail = f"final commit failed: {exc}"
            if result is not None:
                try:
                    self._publish(result, None, final=True)
                except _Fatal as exc:  # the state is committed; only output lines are lost
                    self.log.error("could not journal the final step: %s", exc.detail)
                except Exception as exc:  # the same, from a bug: the summary must still be written
                    self.log.error("could not journal the final step: %s", exc, exc_info=exc)
        code = exit_code_for(reason)
        summary = self._summary(reason, code, final_ok)
        self._session_event("stop", reason=reason.value, exit_code=code, detail=self.detail)
        # 2. Journal and run files.
        with contextlib.suppress(Exception):
            self.parts.journal.close()
        if self.parts.writer is not None:
            try:
                report = self.parts.writer.finish(summary)
            except Exception as exc:
                self.log.error("report failed: %s", exc, exc_info=exc)
                _write_summary_fallback(self.opts.run_dir, summary)
        else:
            _write_summary_fallback(self.opts.run_dir, summary)
        # 3. Close the store and the source, then the last heartbeat.
        with contextlib.suppress(Exception):
            self.parts.store.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.parts.source.aclose(), _TASK_GRACE_S)
        if self.health is not None:
            await self.health.close()
        self._beat("stopped")
        # 4. The kill file is consumed only now that the shutdown is complete.
        if reason is StopReason.KILL_SWITCH and final_ok and self.opts.kill_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.opts.kill_file.unlink()
        self.log.info("session stopped: %s (exit %d)%s", reason.value, code, f" - {self.detail}" if self.detail else "",
                      extra={"fields": {"reason": reason.value, "exit_code": code, "detail": self.detail,
                                        "candles": self.counts["candles"], "errors": self.errors.snapshot()}})
        return SessionOutcome(reason, code, summary, report, self.detail)

    def _summary(self, reason: StopReason, code: int, final_ok: bool) -> dict[str, Any]:
        st = self._engine_status()
        ended = self._wall()
        t = self.config.trading
        first = self._first_status
        return {
            "run_id": self.opts.run_id,
            "mode": self.opts.mode,
            "source": self.parts.source.description,
            "symbol": t.symbol,
            "interval": t.interval,
            "execution_mode": t.execution_mode,
            "strategy": st.get("strategy", self.config.strategy.name),
            "reason": reason.value,
            "reason_detail": self.detail,
            "exit_code": code,
            "final_commit": final_ok,
            "started_at": datetime.fromtimestamp(self.started_wall, UTC).isoformat(timespec="seconds"),
            "ended_at": datetime.fromtimestamp(ended, UTC).isoformat(timespec="seconds"),
            "wall_s": round(ended - self.started_wall, 3),
            "starting_equity": first.get("equity"),
            "final_equity": st.get("equity"),
            "position": st.get("position"),
            "working_orders": st.get("working_orders"),
            "breaker": st.get("breaker"),
            "session": dict(self.counts),
            "errors": self.errors.snapshot(),
            "latency": {"commit": self.latency.snapshot(), "commit_cpu": self.cpu_latency.snapshot(),
                        "step": self.step_latency.snapshot()},
            "workspace": str(self.opts.workspace) if self.opts.workspace else None,
        }


def _side(qty: float) -> str:
    return "long" if qty > 0 else "short"


def _log_fields(ev: Event) -> dict[str, Any]:
    """An event's JSON fields (without its kind) for a structured log line."""
    fields = ev.to_dict()
    del fields["kind"]
    return fields


def _qty(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def _price(value: Any) -> str:
    try:
        return f"{float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


def _write_summary_fallback(run_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json without the report machinery (no writer, or the report failed)."""
    from laptop_agents.session.heartbeat import write_json_atomic

    with contextlib.suppress(OSError):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "summary.json", summary)


# ====================================================================== commands


def new_run_id(prefix: str = "live") -> str:
    return f"{prefix}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _err(msg: str) -> None:
    print(scrub(msg), file=sys.stderr)


def _print_summary(summary: dict[str, Any], report: Path | None) -> None:
    print_summary: Callable[[dict[str, Any]], Any] | None
    try:
        from laptop_agents.report.console import print_summary
    except ImportError:
        print_summary = None
    if print_summary is not None:
        try:
            full = dict(summary)
            if report is not None and (report.parent / "summary.json").exists():
                import json

                full = json.loads((report.parent / "summary.json").read_text(encoding="utf-8"))
            print_summary(full)
            return
        except Exception as exc:  # the console summary must never turn a clean exit into a crash
            get_logger("session.runner").debug("rich summary failed: %s", exc)
    eq = summary.get("final_equity")
    pos = summary.get("position") or {}
    print(f"session {summary.get('run_id')}: {summary.get('reason')} (exit {summary.get('exit_code')}); "
          f"candles {summary.get('session', {}).get('candles')}, equity {eq}, position {pos.get('qty', pos)}")


def _live_gate(config: AppConfig) -> tuple[int, str] | None:
    t = config.trading
    if t.execution_mode != "live":
        return None
    from laptop_agents.config import SECRET_ENV_NAMES

    missing = [n for n in SECRET_ENV_NAMES if not os.environ.get(n)]
    if not t.live_enabled:
        return ExitCode.LIVE_NOT_ALLOWED, "live execution needs --enable-live (trading.live_enabled) as well"
    if missing:
        return ExitCode.LIVE_NOT_ALLOWED, f"live execution needs {', '.join(missing)} in the environment"
    return ExitCode.NOT_IMPLEMENTED, "live order execution is not built yet (issue: live execution); use paper"


def _open_state(
    ctx: CommandContext,
    path: Path | str,
    *,
    now_ts: int | None,
    clock: tuple[Callable[[], int], str] | None = None,
) -> tuple[Any, Any] | int:
    """Strategy + store + engine (crash-only: the stored engine if any), or an
    exit code after a one-line error. With ``clock`` (the market's now and its
    name) a store whose last candle lies ahead of the market is refused."""
    from laptop_agents.store import (
        StateStore,
        StoreCorruptError,
        StoreMismatchError,
        StoreWriteError,
        check_store_clock,
        open_engine,
    )
    from laptop_agents.strategy import build_strategy

    try:
        strategy = build_strategy(ctx.config)
    except (ValueError, OSError) as exc:
        _err(f"strategy error: {exc}")
        return ExitCode.CONFIG_ERROR
    try:
        store = StateStore(path)
    except StoreCorruptError as exc:
        _err(f"state store error: {exc}")
        return ExitCode.STORE_CORRUPT
    except (StoreWriteError, OSError) as exc:
        _err(f"state store error: cannot create {path}: {exc}")
        return ExitCode.DISK_FULL
    try:
        engine = open_engine(store, ctx.config, strategy, now_ts=now_ts)
        if clock is not None:
            check_store_clock(store, now_ms=clock[0](), interval=ctx.config.trading.interval, clock=clock[1])
    except StoreMismatchError as exc:
        store.close()
        _err(f"state store error: {exc}")
        return ExitCode.STORE_MISMATCH
    except StoreCorruptError as exc:
        store.close()
        _err(f"state store error: {exc}")
        return ExitCode.STORE_CORRUPT
    except StoreWriteError as exc:
        store.close()
        _err(f"state store error: {exc}")
        return ExitCode.DISK_FULL
    except BaseException:
        store.close()
        raise
    return store, engine


def _session(
    ctx: CommandContext,
    *,
    mode: str,
    state_path: Path | str,
    run_id: str,
    build: Callable[[Any], SessionSource],
    live: bool,
) -> int:
    """Shared by run and replay: open state, build the source, run, summarise."""
    from laptop_agents.report import RunWriter
    from laptop_agents.sources.factory import SourceConfigError, store_check_clock
    from laptop_agents.store.journal import EventJournal

    ws = ctx.workspace
    # The run directory is created first and exclusively: a reused --run-id
    # must never overwrite an earlier run's files or append to its events.
    try:
        run_dir = ws.new_run_dir(run_id)
    except RunIdError as exc:
        _err(str(exc))
        return ExitCode.CONFIG_ERROR
    except OSError as exc:
        _err(io_error_line(exc, ws.run_dir(run_id), "cannot create the run directory"))
        return ExitCode.DISK_FULL
    started = False
    try:
        opened = _open_state(ctx, state_path, now_ts=int(time.time() * 1000) if live else None,
                             clock=store_check_clock(ctx.config) if live else None)
        if isinstance(opened, int):
            return opened
        store, engine = opened
        try:
            source = build(engine)
        except SourceConfigError as exc:
            store.close()
            _err(f"source error: {exc}")
            return ExitCode.BAD_INPUT
        except BaseException:
            store.close()
            raise
        try:
            journal = EventJournal(run_dir / "events.jsonl")
            books = engine.status()  # the account continues from the store: so do its fee and funding totals
            writer = RunWriter(run_dir, fees_paid=books.fees_paid, funding_paid=books.funding_paid,
                               plotly=ctx.config.system.report_plotly)
        except OSError as exc:
            store.close()
            _err(io_error_line(exc, getattr(exc, "filename", None) or run_dir, "cannot write the run directory"))
            return ExitCode.DISK_FULL
        started = True
    finally:
        if not started:  # nothing ran: leave no empty run directory behind
            with contextlib.suppress(OSError):
                run_dir.rmdir()
    system = ctx.config.system
    health_port = system.health_port if system.health_port is not None else (0 if system.dashboard else None)
    options = RunnerOptions(
        run_id=run_id,
        run_dir=run_dir,
        mode=mode,
        heartbeat_path=ws.heartbeat if live else run_dir / "heartbeat.json",
        kill_file=ws.kill_file if live else None,
        health_port=health_port,
        dashboard=system.dashboard,
        workspace=ws.root,
    )
    print(f"workspace: {ws.root}")
    print(f"run dir:   {run_dir}")
    print(f"{mode}: {source.description}; {ctx.config.trading.symbol} {ctx.config.trading.interval}, "
          f"{ctx.config.trading.execution_mode}" + (f", {ctx.config.trading.duration_min:g} min" if source.clock else ""))
    if live:
        print(f"stop it with: laptop-agents stop --workspace {ws.root}   (or create {ws.kill_file})")
    parts = SessionParts(engine=engine, store=store, journal=journal, source=source, writer=writer)
    runner = AsyncRunner(ctx.config, parts, options, log=ctx.log)
    # From here a Ctrl-C before the runner's own handlers (or one swallowed
    # during the start-up) is a graceful stop, recorded like SIGINT.
    with interrupts.diverted(lambda: runner.request_stop(StopReason.SIGNAL, "SIGINT")):
        outcome = asyncio.run(runner.run())
    _print_summary(outcome.summary, outcome.report)
    print(f"stopped: {outcome.reason.value} (exit {outcome.exit_code})" + (f" - {outcome.detail}" if outcome.detail else ""))
    print(f"workspace: {ws.root}")
    print(f"run dir:   {run_dir}" + (f"  report: {outcome.report}" if outcome.report else ""))
    return outcome.exit_code


def _bad_run_id(ctx: CommandContext) -> bool:
    """Check ``--run-id`` before anything starts (one line, then exit CONFIG_ERROR).

    ``_session`` creates the directory exclusively as well; this early check
    only makes the refusal come before the lock, the store and the source."""
    given = getattr(ctx.args, "run_id", None)
    if given is None:
        return False
    try:
        ctx.workspace.check_new_run_id(given)
    except RunIdError as exc:
        _err(str(exc))
        return True
    return False


def cmd_run(ctx: CommandContext) -> int:
    """``laptop-agents run`` / ``--mode live-session``: the live session (paper by default)."""
    from laptop_agents.ops.lock import AlreadyRunningError, WorkspaceLock
    from laptop_agents.sources.factory import build_source

    config = ctx.config
    if config.trading.source == "replay":
        return cmd_replay(ctx)
    if not config.system.run_async:
        _err("the live session is async-only: drop --sync (it applies to backtest and replay)")
        return ExitCode.CONFIG_ERROR
    gate = _live_gate(config)
    if gate is not None:
        _err(gate[1])
        return gate[0]
    ws: Workspace = ctx.workspace
    if _bad_run_id(ctx):
        return ExitCode.CONFIG_ERROR
    if getattr(ctx.args, "preflight", None):
        from laptop_agents.session.preflight import print_results, run_preflight

        print(f"workspace: {ws.root}")
        if not print_results(run_preflight(config, ws)):
            return ExitCode.PREFLIGHT_FAILED
    if ws.kill_file.exists():
        _err(f"a stop request is pending ({ws.kill_file}); delete it to start a new session")
        return ExitCode.PREFLIGHT_FAILED
    lock = WorkspaceLock(ws.lock)
    try:
        took_over = lock.acquire()
    except AlreadyRunningError as exc:
        _err(str(exc))
        return ExitCode.ALREADY_RUNNING
    except OSError as exc:  # a directory in its place, a read-only or full workspace
        _err(io_error_line(exc, ws.lock, "cannot take the workspace lock"))
        return ExitCode.DISK_FULL
    try:
        interrupts.check()
        if took_over:
            ctx.log.warning("took over a stale workspace lock", extra={"fields": {"previous": took_over}})
        run_id = getattr(ctx.args, "run_id", None) or new_run_id("live")
        run_dir = ws.run_dir(run_id)

        def build(engine: Any) -> SessionSource:
            return build_source(config, run_dir=run_dir, resume_after_ts=engine.last_candle_ts)

        return _session(ctx, mode="live-session", state_path=ws.state_db, run_id=run_id, build=build, live=True)
    finally:
        lock.release()


def cmd_replay(ctx: CommandContext) -> int:
    """``laptop-agents replay FILE`` / ``--source replay --replay-file FILE``: a recording
    or a candle file through the live runner, with fresh in-memory state.

    ``--sync`` is accepted here for the seed's sake, but changes nothing: there
    is one runner, and a replay through it is exactly what makes it a replay."""
    from laptop_agents.sources.factory import SourceConfigError, build_replay_source

    args = ctx.args
    raw = getattr(args, "file", None) or getattr(args, "data", None) or ctx.config.trading.replay_file
    if raw is None:
        _err("replay needs a file: --replay-file FILE (a recording .jsonl or a candle CSV/Parquet)")
        return ExitCode.CONFIG_ERROR
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        _err(f"replay file not found: {path}")
        return ExitCode.BAD_INPUT
    if _bad_run_id(ctx):
        return ExitCode.CONFIG_ERROR
    strict = bool(getattr(args, "strict", None))
    run_id = getattr(args, "run_id", None) or new_run_id("replay")
    try:
        source = build_replay_source(ctx.config, path, strict=strict, time_column=getattr(args, "time_column", None),
                                     time_unit=getattr(args, "time_unit", None))
    except SourceConfigError as exc:
        _err(f"source error: {exc}")
        return ExitCode.BAD_INPUT
    # The data's bar length wins over the default; an explicit --interval
    # (flag or environment) that disagrees is an error, as in backtest.
    data_interval = source.interval
    if data_interval is not None and data_interval != ctx.config.trading.interval:
        origin = ctx.loaded.sources.get("trading.interval", "default")
        if origin == "cli" or origin.startswith("env"):
            with contextlib.suppress(Exception):
                asyncio.run(source.aclose())
            _err(f"replay file {path.name} has {data_interval} candles, but the interval "
                 f"{ctx.config.trading.interval} was given (from {origin}); drop it or pass {data_interval}")
            return ExitCode.BAD_INPUT
        config = ctx.config.model_copy(deep=True)
        config.trading.interval = data_interval
        ctx = dataclasses.replace(ctx, loaded=ctx.loaded.model_copy(update={"config": config}))

    def build(engine: Any) -> SessionSource:
        return source

    return _session(ctx, mode="replay", state_path=":memory:", run_id=run_id, build=build, live=False)
