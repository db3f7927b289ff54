"""The live session: an async shell around the deterministic Engine.

:class:`AsyncRunner` only orchestrates; each room is a module a reader can
take top to bottom:

- :mod:`~laptop_agents.session.loop` -- the market-data task (warm-up, stream,
  source errors), and :mod:`~laptop_agents.session.step` -- one candle
  through the engine, committed, then published;
- :mod:`~laptop_agents.session.supervisors` -- kill switch, stale data,
  heartbeat, duration;
- :mod:`~laptop_agents.session.shutdown` -- the final step, summary, outputs,
  kill-file consumption;
- :mod:`~laptop_agents.session.clock` -- monotonic, wall, market and latency
  time in one injectable object;
- :mod:`~laptop_agents.session.state` -- the one door out
  (:meth:`AsyncRunner.request_stop`, the *first* reason wins), counters, guards;
- :mod:`~laptop_agents.session.signals`, :mod:`~laptop_agents.session.snapshots`
  (heartbeat, ``/health``, summary), :mod:`~laptop_agents.session.views`
  (every read of the engine's status);
- :mod:`~laptop_agents.session.controls` -- the operator's levers (stop with
  or without flatten, pause/resume entries), and
  :mod:`~laptop_agents.session.operator` -- the console wired in: dashboard
  (with ``/health`` and ``/metrics``), alerts, terminal view, fed after each
  committed step;
- :mod:`~laptop_agents.session.commands` -- ``run`` and ``replay``: building
  the parts and printing the outcome.

The phases: ``starting`` (heartbeat, the ``session`` start event, a pause
left in the workspace, the console (dashboard, health endpoint, alerts,
terminal view), kill-switch and heartbeat tasks, the source's warm-up -- a stop
request ends it), ``running`` (market data, stale-data guard, duration; until
a stop is requested or a task dies), then the shutdown, which every exit path
-- clean or not -- goes through. All Engine calls happen on the event loop
thread, one at a time, so the Engine needs no locking; the per-candle work
(engine step + one SQLite transaction) is short enough that the supervisors
are never starved.

Funding is refreshed by the sources themselves and arrives in the stream like
any market data, so it needs no task of its own. Every task lets
``CancelledError`` propagate after its own cleanup; the runner cancels them
and waits with a grace period before the final commit.

Kill-switch file policy (decided here, relied on by the watchdog):

- a session refuses to start while ``<workspace>/kill.txt`` exists (exit
  ``PREFLIGHT_FAILED``, a non-restartable code): a pending stop request is
  never silently discarded, and a watchdog can never restart into it;
- a session that stops *because of* the kill file deletes it only after its
  shutdown is complete (see :mod:`~laptop_agents.session.shutdown`).

Replays run through the same runner with their own in-memory state and never
touch the workspace's ``state.db``, lock, heartbeat or kill file: a replay
must not mix with, or stop, a live session.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Generic

from laptop_agents.config import AppConfig
from laptop_agents.domain.timeframes import interval_ms
from laptop_agents.heartbeat import HeartbeatWriter
from laptop_agents.logs import get_logger
from laptop_agents.session import operator, signals
from laptop_agents.session.clock import SessionClock
from laptop_agents.session.controls import SessionControls
from laptop_agents.session.guards import ErrorCounters, LatencyStats, StaleGuard
from laptop_agents.session.loop import TASK_GRACE_S, MarketLoop
from laptop_agents.session.parts import E, RunnerOptions, SessionOutcome, SessionParts
from laptop_agents.session.shutdown import Shutdown
from laptop_agents.session.snapshots import Pulse, health_body, heartbeat_fields
from laptop_agents.session.state import SessionFatal, SessionState
from laptop_agents.session.step import CandleStep
from laptop_agents.session.supervisors import Supervisors
from laptop_agents.session.trade_log import TradeLog
from laptop_agents.session.views import read_engine
from laptop_agents.stop_reasons import StopReason

__all__ = ["AsyncRunner", "RunnerOptions", "SessionOutcome", "SessionParts"]


class AsyncRunner(Generic[E]):
    """Runs one session to its end and returns a :class:`SessionOutcome`."""

    def __init__(
        self,
        config: AppConfig,
        parts: SessionParts[E],
        options: RunnerOptions,
        *,
        log: logging.Logger | None = None,
        print_fn: Callable[[str], None] = print,
        clock: SessionClock | None = None,
    ) -> None:
        self.config = config
        self.parts = parts
        self.opts = options
        self.log = log or get_logger("session.runner")
        self._print = print_fn
        self.clock = clock or SessionClock.for_source(parts.source)
        self.interval_ms = interval_ms(config.trading.interval)
        self.state = SessionState(config, self.clock, interval_ms=self.interval_ms, live=parts.source.live,
                                  log=self.log)
        self.started_wall = self.clock.wall()
        self._started_mono = self.clock.monotonic()
        self.first = read_engine(parts.engine)  # the account as the session found it
        writer = None
        if options.heartbeat_path is not None:
            writer = HeartbeatWriter(options.heartbeat_path, options.run_id,
                                     lambda: heartbeat_fields(self.parts.engine, self.state, self.opts.mode),
                                     wall_clock=self.clock.wall)
        self.pulse = Pulse(writer, self.state, self.log)
        trade_log = TradeLog(self.log, self.first.symbol or config.trading.symbol, self.first.currency,
                             self.first.position_qty)
        self.step = CandleStep(parts, self.state, self.clock, interval_ms=self.interval_ms, trade_log=trade_log,
                               log=self.log)
        self.market = MarketLoop(parts, self.state, self.step, self.log)
        self.supervisors = Supervisors(config, parts, self.state, self.pulse, self.log)
        self.shutdown = Shutdown(config, parts, options, self.state, self.step, self.pulse, self.clock,
                                 interval_ms=self.interval_ms, log=self.log)
        self.controls = SessionControls(parts.engine, self.state, self.step, pause_file=options.pause_file,
                                        run_id=options.run_id, log=self.log)
        self.execution = parts.execution
        if self.execution is not None:
            self.execution.bind(self.step)
        self.console: operator.SessionConsole | None = None
        if operator.wanted(options):
            self.console = operator.SessionConsole(config, parts, options, self.state, self.controls,
                                                   self.health_snapshot, wall_clock=self.clock.wall,
                                                   print_fn=print_fn, log=self.log)
            self.step.listener = self.console

    # ------------------------------------------------------------ the outside's view
    def request_stop(self, reason: StopReason, detail: str = "") -> None:
        """The one door out: the first reason wins, later ones are logged only."""
        self.state.request_stop(reason, detail)

    def health_snapshot(self) -> tuple[bool, dict[str, Any]]:
        try:
            source_status = self.parts.source.source.status()
        except Exception as exc:
            source_status = {"status_error": type(exc).__name__}
        uptime = self.clock.monotonic() - self._started_mono
        return self.state.healthy(), health_body(self.parts.engine, source_status, self.state, self.opts, uptime)

    @property
    def health(self) -> operator.HealthEndpoint | None:
        """Where ``/health`` is served (None: nowhere)."""
        return self.console.health if self.console is not None else None

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def reason(self) -> StopReason | None:
        return self.state.reason

    @property
    def counts(self) -> dict[str, int]:
        return self.state.counts

    @property
    def errors(self) -> ErrorCounters:
        return self.state.errors

    @property
    def stale(self) -> StaleGuard:
        return self.state.stale

    @property
    def latency(self) -> LatencyStats:
        return self.state.latency

    @property
    def cpu_latency(self) -> LatencyStats:
        return self.state.cpu_latency

    @property
    def step_latency(self) -> LatencyStats:
        return self.state.step_latency

    # ------------------------------------------------------------ the session
    async def run(self) -> SessionOutcome:
        restore_signals = self._install_signals()
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._start(tasks)
            if await self._until_stop(self.market.warmup()):
                await self._trade(tasks)
        except SessionFatal as exc:
            self.state.request_stop(exc.reason, exc.detail)
        except asyncio.CancelledError:
            self.state.request_stop(StopReason.SIGNAL, "cancelled")
        except Exception as exc:
            self.state.crash(exc)
        # Stop the tasks and shut down with our signal handlers still in place:
        # a second Ctrl-C / SIGTERM during the final commit is then only logged,
        # instead of a KeyboardInterrupt tearing the shutdown in half.
        try:
            await self._cancel(tasks)
            return await self.shutdown.run(first=self.first, started_wall=self.started_wall, console=self.console)
        finally:
            restore_signals()

    async def _start(self, tasks: list[asyncio.Task[None]]) -> None:
        """Heartbeat, start event, a pause left in the workspace, the console;
        the kill switch and the heartbeat run from here on, so a stop during
        the warm-up (a REST backfill can take a while) ends it."""
        opts = self.opts
        self.pulse.beat("starting")
        if self.console is not None:  # first, so its log lines and the start event reach the console
            try:
                await self.console.start()
            except Exception as exc:  # the console is a window, never a reason to stop
                self.log.error("console could not start: %s", exc)
        self.step.journal_session("start", run_id=opts.run_id, mode=opts.mode, source=self.parts.source.description)
        self.controls.restore()
        if opts.kill_file is not None:
            tasks.append(asyncio.create_task(self.supervisors.kill_switch(opts.kill_file), name="kill-switch"))
        if self.pulse.writer is not None or self.parts.writer is not None:
            tasks.append(asyncio.create_task(self.supervisors.heartbeat(), name="heartbeat"))
        ex = self.execution
        if ex is not None:
            # Live: the private stream first (nothing it reports is lost), then
            # every unacknowledged order resolved and the books reconciled --
            # before the first candle -- then the sender and the periodic check.
            tasks.append(asyncio.create_task(ex.feed(), name="private-feed"))
            await ex.start()
            tasks.append(asyncio.create_task(ex.sender(), name="order-sender"))
            tasks.append(asyncio.create_task(ex.reconciler(), name="reconciler"))

    async def _trade(self, tasks: list[asyncio.Task[None]]) -> None:
        """The trading phase: market data, stale-data guard, duration; until a stop."""
        if self.opts.freeze_gc:
            gc.collect()
            gc.freeze()
        self.pulse.beat("running")
        self.state.stale.touch()
        self.state.processed()
        tasks.append(asyncio.create_task(self.market.run(), name="market-data"))
        tasks.append(asyncio.create_task(self.supervisors.stale_data(), name="stale-data"))
        duration_s = self.clock.wall_s(self.config.trading.duration_min * 60.0) if self.clock.has_market else None
        if duration_s is not None:
            tasks.append(asyncio.create_task(self.supervisors.duration(duration_s), name="duration"))
        self.log.info("session running", extra={"fields": {"run_id": self.opts.run_id, "mode": self.opts.mode}})
        await self._supervise(tasks)

    async def _until_stop(self, coro: Coroutine[Any, Any, None]) -> bool:
        """Run ``coro`` unless a stop is requested first (then cancel it). True if it completed."""
        work = asyncio.create_task(coro)
        stop_wait = asyncio.create_task(self.state.stop_event.wait())
        try:
            await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            return False
        work.result()  # re-raise what the work raised (SessionFatal, a crash)
        return not self.state.stop_requested

    async def _supervise(self, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for a stop request; a task that dies unexpectedly is a stop reason too."""
        state = self.state
        stop_wait = asyncio.create_task(state.stop_event.wait(), name="stop-wait")
        try:
            pending: set[asyncio.Task[Any]] = set(tasks)
            while not state.stop_requested:
                done, pending = await asyncio.wait(pending | {stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t is stop_wait or t.cancelled():
                        continue
                    exc = t.exception()
                    if exc is None:
                        continue
                    if isinstance(exc, SessionFatal):
                        state.request_stop(exc.reason, exc.detail)
                    elif t.get_name() == "market-data":
                        state.crash(exc)
                    else:
                        # A supervising task (kill switch, stale data, heartbeat...)
                        # died: running on without it would break the promises it
                        # keeps, so stop as a crash (state committed, position
                        # kept) and let the watchdog restart a whole session.
                        state.spend("task_error")
                        state.crash(exc, task=t.get_name())
                pending.discard(stop_wait)
                if not pending and not state.stop_requested:
                    await state.stop_event.wait()
        finally:
            stop_wait.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop_wait

    async def _cancel(self, tasks: list[asyncio.Task[None]]) -> None:
        for t in tasks:
            t.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=TASK_GRACE_S)
            for t in pending:
                self.log.warning("task %s did not stop within %.0f s", t.get_name(), TASK_GRACE_S)
            for t in done:
                exc = None if t.cancelled() else t.exception()
                if exc is not None and self.state.reason is None:
                    self.state.crash(exc)

    def _install_signals(self) -> Callable[[], None]:
        if not self.opts.install_signal_handlers:
            return lambda: None

        def on_signal(name: str) -> None:
            if self.state.reason is not None:
                self.log.warning("%s received while stopping (%s): finishing the shutdown first", name,
                                 self.state.reason.value)
            self.state.request_stop(StopReason.SIGNAL, name)

        return signals.install(on_signal)
