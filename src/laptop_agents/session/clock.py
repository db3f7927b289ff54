"""The session's notions of time, in one object a test can replace whole.

A live session lives on four clocks, and mixing them up is a classic bug
(a guard that fires after a laptop's sleep, an event stamped with the wall
clock in a replay):

- **monotonic** seconds: the guards (stale data, progress), uptime. Never
  jumps, means nothing outside this process.
- **wall** seconds since the epoch: the heartbeat's ``ts_ms`` (the watchdog
  compares it with its own wall clock), summary.json's start and end.
- **market** UTC milliseconds, from the source: event timestamps, the
  late-candle rule, the duration limit. Simulated for the mock (``speed``
  market seconds per wall second), the wall clock for bitunix, absent for a
  replay (whose only time is the data's). A recording replay judges lateness
  by the recorded receive time instead (``late``).
- **latency** counters: ``perf_counter_ns`` and this thread's CPU time,
  for a candle's arrival-to-commit span.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from laptop_agents.sources.factory import SessionSource


class SessionClock:
    def __init__(
        self,
        *,
        market: Callable[[], int] | None = None,
        late: Callable[[], int] | None = None,
        speed: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        perf_ns: Callable[[], int] = time.perf_counter_ns,
        cpu_ns: Callable[[], int] = time.thread_time_ns,
    ) -> None:
        self.monotonic = monotonic
        self.wall = wall
        self.perf_ns = perf_ns
        self.cpu_ns = cpu_ns
        self.speed = speed
        self._market = market
        self._late = late

    @classmethod
    def for_source(
        cls,
        source: SessionSource,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> SessionClock:
        return cls(market=source.clock, late=source.late_clock, speed=source.speed, monotonic=monotonic, wall=wall)

    @property
    def has_market(self) -> bool:
        return self._market is not None

    def market_now(self) -> int | None:
        """The market's "now" in UTC ms; None for a replay."""
        return self._market() if self._market is not None else None

    def event_ts(self, last_candle_ts: int | None, interval_ms: int) -> int:
        """Event time for session events and the shutdown step: the market's
        now, but never at or before the last processed candle's close."""
        base = last_candle_ts + interval_ms if last_candle_ts is not None else 0
        now = self.market_now()
        return max(base, now) if now is not None else base

    def closed_late(self, candle_ts: int, interval_ms: int, late_after_ms: int | None) -> bool:
        """The candle closed more than ``late_after_ms`` ago by the late clock
        (or the market's); never late without a rule or a clock."""
        if late_after_ms is None:
            return False
        now = self._late() if self._late is not None else self.market_now()
        return now is not None and now - (candle_ts + interval_ms) > late_after_ms

    def wall_s(self, market_s: float) -> float | None:
        """Wall seconds that ``market_s`` market seconds take at the source's
        speed; None when the source has no speed (as fast as possible)."""
        return market_s / self.speed if self.speed else None
