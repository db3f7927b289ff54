"""Stand-ins for a session: a view whose state a test changes, a control that records calls."""

from __future__ import annotations

from typing import Any

from laptop_agents.console.view import CompositeView, LiveFeed
from laptop_agents.domain.models import Candle

T0 = 1_760_000_000_000  # event time of the first fake candle (UTC ms)
MIN = 60_000


class FakeSession:
    """A mutable status dict plus a real LiveFeed, exposed as a CompositeView."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {
            "status": "running", "reason": None, "run_id": "live-test", "mode": "live-session",
            "uptime_s": 12.0, "market_data_age_s": 0.4, "stale_timeout_s": 60.0, "stale": False,
            "source": {"source": "mock", "state": "streaming", "reconnects": 0},
            "errors": {"total": 0, "budget": 10, "consecutive_market_data": 0, "max_consecutive_market_data": 5},
            "equity": 10_000.0, "position": {"qty": 0.0, "side": "flat", "entry_price": None, "entry_ts": None,
                                             "stop": None, "target": None, "unrealized": 0.0},
            "working_orders": [], "breaker": {"active": False, "reason": None, "until_ts": None},
            "last_candle_ts": None, "counts": {"candles": 0}, "latency": {"p99_ms": 0.4},
        }
        self.healthy = True
        self.extra: dict[str, Any] = {"symbol": "BTCUSDT", "interval": "1m", "last_price": None,
                                      "entries_paused": False, "currency": "USDT", "start_balance": 10_000.0}
        self.feed = LiveFeed()
        self.view = CompositeView(self.health, self.feed, extra=lambda: dict(self.extra))
        self.n = 0

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.healthy, dict(self.state)

    def candle(self, close: float = 64_000.0) -> Candle:
        ts = T0 + self.n * MIN
        self.n += 1
        c = Candle(ts, close - 5, close + 20, close - 25, close, 3.5)
        self.feed.on_candle(c)
        self.feed.on_equity(ts, self.state["equity"], self.state["position"]["qty"])
        self.state["last_candle_ts"] = ts
        self.state["counts"] = {"candles": self.n}
        self.extra["last_price"] = close
        return c

    def events(self, *events: tuple[str, dict[str, Any]]) -> None:
        ts = T0 + max(self.n - 1, 0) * MIN
        # In their JSON form (as events.jsonl holds them): the console reads either.
        self.feed.on_events([{"ts": ts, "kind": kind, **data} for kind, data in events])


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def stop(self, flatten: bool) -> None:
        self.calls.append(("stop", flatten))

    def pause_entries(self) -> None:
        self.calls.append(("pause", None))

    def resume_entries(self) -> None:
        self.calls.append(("resume", None))
