"""Prometheus metrics of one session, in a registry of its own.

Two kinds of numbers, two mechanisms:

- *Things that happen* (candles processed, decisions by action and reason,
  orders by status, fills) are counters fed by :meth:`SessionMetrics.observe`
  with the step's events -- a few dict look-ups per candle.
- *Things that are* (equity, position, market-data age, errors by kind,
  reconnects, RSS) are read from the :class:`SessionView` when Prometheus
  scrapes, so they are never stale and cost nothing between scrapes.

The registry is private (never prometheus-client's global one), so two
sessions in one process (tests) never share or clash over series. Label values
that come from strategies (decision reasons) are capped in number: past the
cap they count as ``other``, so a strategy that puts prices in its reasons
cannot blow up the series count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from laptop_agents.console.view import SessionView, event_dict

PREFIX = "laptop_agents"
MAX_LABEL_VALUES = 64
_ERROR_META = frozenset({"total", "budget", "consecutive_market_data", "max_consecutive_market_data"})


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


class _Capped:
    """Remembers up to ``cap`` label values; later new ones map to ``other``."""

    def __init__(self, cap: int = MAX_LABEL_VALUES) -> None:
        self.cap = cap
        self.seen: set[str] = set()

    def __call__(self, value: Any) -> str:
        v = str(value or "none")[:64]
        if v in self.seen:
            return v
        if len(self.seen) >= self.cap:
            return "other"
        self.seen.add(v)
        return v


class _ViewCollector:
    """Gauges and cumulative counters read from the view at scrape time."""

    def __init__(self, view: SessionView, process: psutil.Process) -> None:
        self.view = view
        self.process = process

    def describe(self) -> list[Metric]:
        return []  # collected lazily: the registry must not call the view at registration

    def collect(self) -> Iterator[Metric]:
        try:
            st = self.view.status()
        except Exception:
            st = {}
        pos = st.get("position") if isinstance(st.get("position"), Mapping) else {}
        gauges: list[tuple[str, str, Any]] = [
            ("equity", "Account equity in the account currency.", st.get("equity")),
            ("position_qty", "Signed position size (long > 0).", (pos or {}).get("qty")),
            ("unrealized_pnl", "Unrealised PnL of the open position.", (pos or {}).get("unrealized")),
            ("last_price", "Last price the broker marked to.", st.get("last_price")),
            ("market_data_age_seconds", "Seconds since the last market data.", st.get("market_data_age_s")),
            ("uptime_seconds", "Seconds since the session started.", st.get("uptime_s")),
        ]
        for name, doc, value in gauges:
            v = _num(value)
            if v is not None:
                g = GaugeMetricFamily(f"{PREFIX}_{name}", doc)
                g.add_metric([], v)
                yield g
        up = GaugeMetricFamily(f"{PREFIX}_healthy", "1 while the session is running on fresh data.")
        up.add_metric([], 1.0 if st.get("healthy") else 0.0)
        yield up
        breaker = st.get("breaker") if isinstance(st.get("breaker"), Mapping) else {}
        b = GaugeMetricFamily(f"{PREFIX}_breaker_active", "1 while the circuit breaker blocks entries.")
        b.add_metric([], 1.0 if (breaker or {}).get("active") else 0.0)
        yield b
        errors = st.get("errors") if isinstance(st.get("errors"), Mapping) else {}
        errors = errors or {}
        fam = CounterMetricFamily(f"{PREFIX}_errors", "Errors spent from the session's budget, by kind.",
                                  labels=["kind"])
        for kind, n in sorted(errors.items()):
            if kind not in _ERROR_META and _num(n) is not None:
                fam.add_metric([str(kind)], float(n))
        yield fam
        budget = _num(errors.get("budget"))
        if budget is not None:
            g = GaugeMetricFamily(f"{PREFIX}_error_budget", "The session's error budget.")
            g.add_metric([], budget)
            yield g
        source = st.get("source") if isinstance(st.get("source"), Mapping) else {}
        reconnects = _num((source or {}).get("reconnects"))
        fam = CounterMetricFamily(f"{PREFIX}_reconnects", "Websocket reconnects of the market-data source.")
        fam.add_metric([], reconnects or 0.0)
        yield fam
        try:
            rss = float(self.process.memory_info().rss)
        except (psutil.Error, OSError):
            rss = None
        if rss is not None:
            g = GaugeMetricFamily(f"{PREFIX}_rss_bytes", "Resident memory of the session process.")
            g.add_metric([], rss)
            yield g


class SessionMetrics:
    """The session's metrics: feed :meth:`observe` / :meth:`candle`, scrape :meth:`exposition`."""

    def __init__(self, view: SessionView | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.candles = Counter(f"{PREFIX}_candles_processed", "Closed candles the engine processed.", registry=r)
        self.decisions = Counter(f"{PREFIX}_decisions", "Strategy decisions by action and reason.",
                                 ["action", "reason"], registry=r)
        self.orders = Counter(f"{PREFIX}_orders", "Orders seen by the broker, by status.", ["status"], registry=r)
        self.fills = Counter(f"{PREFIX}_fills", "Fills, by side and liquidity.", ["side", "liquidity"], registry=r)
        self.trades = Counter(f"{PREFIX}_trades_closed", "Closed trades, by outcome.", ["outcome"], registry=r)
        self.loop_lag = Gauge(f"{PREFIX}_loop_lag_seconds", "Last measured event-loop lag.", registry=r)
        self.loop_lag_hist = Histogram(f"{PREFIX}_loop_lag", "Event-loop lag samples (seconds).",
                                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                                       registry=r)
        self.step_latency = Histogram(f"{PREFIX}_candle_latency", "Candle arrival to committed decision (seconds).",
                                      buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
                                      registry=r)
        self._reason = _Capped()
        self._action = _Capped(16)
        self._status = _Capped(16)
        if view is not None:
            r.register(_ViewCollector(view, psutil.Process()))

    def candle(self, latency_s: float | None = None) -> None:
        """One processed candle (and, if measured, its arrival-to-commit latency)."""
        self.candles.inc()
        if latency_s is not None:
            self.step_latency.observe(latency_s)

    def observe(self, events: Iterable[Any]) -> None:
        """Count the decisions, orders, fills and closed trades among ``events``."""
        for e in events:
            kind = e.get("kind") if isinstance(e, Mapping) else getattr(e, "kind", None)
            if kind not in ("decision", "order", "fill", "trade_closed"):
                continue
            d = event_dict(e)
            if kind == "decision":
                self.decisions.labels(self._action(d.get("action")), self._reason(d.get("reason"))).inc()
            elif kind == "order":
                self.orders.labels(self._status(d.get("status"))).inc()
            elif kind == "fill":
                side = str(d.get("side") or "?").upper()
                self.fills.labels(side if side in ("BUY", "SELL") else "other",
                                  str(d.get("liquidity") or "?")[:16]).inc()
            else:
                net = _num(d.get("net_pnl")) or 0.0
                self.trades.labels("win" if net > 0 else "loss" if net < 0 else "flat").inc()

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class LoopLagMonitor:
    """Measures how late the event loop wakes a sleeper: the delay every other
    task (and the candle path) suffers at that moment."""

    def __init__(self, on_lag: Callable[[float], None], *, interval_s: float = 0.5,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.on_lag = on_lag
        self.interval_s = interval_s
        self.clock = clock
        self.last_s: float | None = None
        self.max_s = 0.0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_metrics(cls, metrics: SessionMetrics, interval_s: float = 0.5) -> LoopLagMonitor:
        def record(lag: float) -> None:
            metrics.loop_lag.set(lag)
            metrics.loop_lag_hist.observe(lag)

        return cls(record, interval_s=interval_s)

    def start(self) -> LoopLagMonitor:
        self._task = asyncio.create_task(self._run(), name="loop-lag")
        return self

    async def _run(self) -> None:
        while True:
            t0 = self.clock()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, self.clock() - t0 - self.interval_s)
            self.last_s = lag
            self.max_s = max(self.max_s, lag)
            self.on_lag(lag)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
