"""What the session's rooms share: the one door out, the counters and the guards.

Every way a session ends -- a signal, the kill file, stale data, the error
budget, a crash, the end of the data -- goes through
:meth:`SessionState.request_stop`, which records the *first* reason and wakes
whoever waits for the stop; later reasons are only logged. The market-data
path ends the session from deep inside a step by raising
:class:`SessionFatal` with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import traceback

from laptop_agents.config import AppConfig
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.logs import scrub
from laptop_agents.session.clock import SessionClock
from laptop_agents.session.guards import ErrorCounters, LatencyStats, ProgressGuard, StaleGuard
from laptop_agents.stop_reasons import StopReason

COUNTS = ("candles", "warmup", "late_warmup", "skipped", "ticks", "funding", "source_errors")


class SessionFatal(LaptopAgentsError):
    """Ends the session from inside the market-data path with a stop reason."""

    def __init__(self, reason: StopReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class SessionState:
    def __init__(self, config: AppConfig, clock: SessionClock, *, interval_ms: int, live: bool,
                 log: logging.Logger) -> None:
        system = config.system
        self.log = log
        self.status = "starting"  # starting | running | stopping | stopped, as in the heartbeat
        self.reason: StopReason | None = None
        self.detail = ""
        # A stop request's own word on the position (dashboard, kill file with
        # "flatten"); None: the configured flatten_on_kill.
        self.flatten: bool | None = None
        self.stop_event = asyncio.Event()
        self.counts = dict.fromkeys(COUNTS, 0)
        self.errors = ErrorCounters(system.max_consecutive_md_errors, config.error_budget())
        self.stale = StaleGuard(system.stale_timeout_s, clock.monotonic)
        # Live sources only: data arriving while no candle is processed (all
        # skipped) is judged in wall time, which replays do not have.
        self.progress: ProgressGuard | None = None
        interval_wall_s = clock.wall_s(interval_ms / 1000.0)
        if live and interval_wall_s:
            self.progress = ProgressGuard.for_interval(system.stale_timeout_s, interval_wall_s, clock.monotonic)
        self.latency = LatencyStats()  # arrival -> decision committed (wall clock)
        self.cpu_latency = LatencyStats()  # the same span in this thread's CPU time (no preemption, no I/O wait)
        self.step_latency = LatencyStats()  # arrival -> journaled and reported
        # The engine stepped past what the store holds (it raised, or its step
        # could not be committed): it must never be committed again.
        self.engine_broken = False
        self.output_broken = False  # the run output failed with a bug (not a full disk)

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set()

    def request_stop(self, reason: StopReason, detail: str = "", *, flatten: bool | None = None) -> None:
        """The one door out: the first reason wins (with its ``flatten`` word),
        later ones are logged only."""
        if self.reason is None:
            self.reason = reason
            self.detail = detail
            self.flatten = flatten
            if self.status in ("starting", "running"):
                self.status = "stopping"  # /health answers 503 from this instant
            self.log.info("session stop requested: %s%s", reason.value, f" ({detail})" if detail else "",
                          extra={"fields": {"reason": reason.value, "detail": detail}})
            self.stop_event.set()
        elif reason != self.reason:
            self.log.debug("further stop reason ignored: %s (%s)", reason.value, detail)

    def spend(self, kind: str, n: int = 1) -> None:
        """Count ``n`` errors of ``kind`` against the budget; stop once it is spent."""
        if self.errors.record(kind, n) is not None:
            self.request_stop(StopReason.ERROR_BUDGET,
                              f"{self.errors.total} errors >= budget {self.errors.budget} (last: {kind})")

    def crash(self, exc: BaseException, *, task: str | None = None) -> None:
        where = f"task {task}: " if task else ""
        self.log.error("session crashed: %s%s", where, exc,
                       extra={"fields": {"traceback": scrub("".join(traceback.format_exception(exc)))}})
        self.request_stop(StopReason.CRASH, scrub(f"{where}{type(exc).__name__}: {exc}"))

    def healthy(self) -> bool:
        return (self.status == "running" and not self.stale.stale()
                and not (self.progress is not None and self.progress.lagging()))

    # ------------------------------------------------------------ what arrived
    def good_data(self) -> None:
        """Real market data arrived (never a ping or an error)."""
        self.stale.touch()
        self.errors.good_data()

    def processed(self) -> None:
        """A candle was processed (traded or warm-up)."""
        if self.progress is not None:
            self.progress.touch()

    def skipped(self) -> None:
        """A candle at or before the engine's last one: nothing to do, but it
        counts (health, stall detection) -- a session that skips everything
        must not look healthy."""
        self.counts["skipped"] += 1
        if self.progress is not None:
            self.progress.skipped()
