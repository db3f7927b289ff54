"""The session's guards as small synchronous objects the async runner consults.

Keeping the rules here, apart from the tasks and sockets, makes each of them a
few lines that a test can drive directly: after how many errors a session
stops, how old the data is, how long a candle took. Why a session stops and
with which exit code is :mod:`laptop_agents.stop_reasons`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from laptop_agents.stop_reasons import StopReason


@dataclass
class ErrorCounters:
    """Consecutive market-data errors and the session's error budget.

    Every error of any kind spends the budget (market data, agent errors the
    strategy isolated, store retries, task failures); only market-data errors
    count towards the consecutive limit, and any good market message resets it.
    """

    max_consecutive_md: int
    budget: int
    consecutive_md: int = 0
    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def good_data(self) -> None:
        self.consecutive_md = 0

    def market_data_error(self) -> StopReason | None:
        self.consecutive_md += 1
        reason = self.record("market_data")
        if self.consecutive_md >= self.max_consecutive_md:
            return StopReason.MARKET_DATA_ERRORS
        return reason

    def record(self, kind: str, n: int = 1) -> StopReason | None:
        """Count ``n`` errors of ``kind``; the reason to stop once the budget is spent."""
        if n <= 0:
            return None
        self.total += n
        self.by_kind[kind] = self.by_kind.get(kind, 0) + n
        return StopReason.ERROR_BUDGET if self.total >= self.budget else None

    def snapshot(self) -> dict[str, object]:
        return {
            "total": self.total,
            "budget": self.budget,
            "consecutive_market_data": self.consecutive_md,
            "max_consecutive_market_data": self.max_consecutive_md,
            **{f"{k}": v for k, v in sorted(self.by_kind.items())},
        }


class StaleGuard:
    """Seconds since the last real market data (pings and errors never count)."""

    def __init__(self, timeout_s: float, monotonic: Callable[[], float]) -> None:
        self.timeout_s = timeout_s
        self._monotonic = monotonic
        self._last = monotonic()

    def touch(self) -> None:
        self._last = self._monotonic()

    def age_s(self) -> float:
        return self._monotonic() - self._last

    def stale(self) -> bool:
        return self.age_s() >= self.timeout_s


class ProgressGuard:
    """Seconds since the engine last processed a candle, and how many arriving
    candles it skipped meanwhile.

    Market data that arrives but is never processed -- every candle at or
    before the engine's last one, as with a store ahead of the market -- keeps
    the :class:`StaleGuard` happy while nothing is traded and no stop is
    checked. Skips are legitimate after a reconnect (re-delivered candles), but
    then fresh candles follow within an interval. So:

    - *lagging* (unhealthy): candles were skipped and none was processed for
      ``lag_s`` (two intervals of wall time);
    - *stalled* (the session stops): none processed for ``timeout_s``, the
      stale timeout or three intervals, whichever is larger -- for 1-minute
      bars the default 60 s timeout would stop a healthy session between two
      candles, for 15-minute bars three intervals are 45 minutes.
    """

    def __init__(self, timeout_s: float, lag_s: float, monotonic: Callable[[], float]) -> None:
        self.timeout_s = timeout_s
        self.lag_s = lag_s
        self._monotonic = monotonic
        self._last = monotonic()
        self.skipped_since = 0

    @classmethod
    def for_interval(cls, stale_timeout_s: float, interval_wall_s: float,
                     monotonic: Callable[[], float]) -> ProgressGuard:
        return cls(max(stale_timeout_s, 3.0 * interval_wall_s), 2.0 * interval_wall_s, monotonic)

    def touch(self) -> None:
        """A candle was processed (traded or warm-up)."""
        self._last = self._monotonic()
        self.skipped_since = 0

    def skipped(self, n: int = 1) -> None:
        self.skipped_since += n

    def age_s(self) -> float:
        return self._monotonic() - self._last

    def lagging(self) -> bool:
        return self.skipped_since > 0 and self.age_s() >= self.lag_s

    def stalled(self) -> bool:
        return self.age_s() >= self.timeout_s

    def snapshot(self) -> dict[str, object]:
        return {
            "last_processed_age_s": round(self.age_s(), 3),
            "timeout_s": round(self.timeout_s, 3),
            "skipped_since_processed": self.skipped_since,
            "lagging": self.lagging(),
        }


class LatencyStats:
    """A fixed-size histogram of per-candle latencies (bounded memory for any run length).

    Bins are 1 µs wide up to 10 ms, then one overflow bin holding the maximum;
    percentiles are therefore exact to the microsecond where it matters.
    """

    _BINS = 10_000

    def __init__(self) -> None:
        self._counts = [0] * (self._BINS + 1)
        self.count = 0
        self.max_ns = 0
        self.sum_ns = 0

    def add(self, ns: int) -> None:
        us = ns // 1000
        self._counts[us if us < self._BINS else self._BINS] += 1
        self.count += 1
        self.sum_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns

    def percentile_ms(self, p: float) -> float | None:
        if not self.count:
            return None
        rank = max(1, math.ceil(p / 100.0 * self.count))  # nearest rank
        seen = 0
        for us, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                if us == self._BINS:
                    return self.max_ns / 1e6
                return (us + 1) / 1000.0  # upper edge of the bin
        return self.max_ns / 1e6

    def snapshot(self) -> dict[str, float | int | None]:
        return {
            "candles": self.count,
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "max_ms": round(self.max_ns / 1e6, 3) if self.count else None,
            "mean_ms": round(self.sum_ns / self.count / 1e6, 4) if self.count else None,
        }
