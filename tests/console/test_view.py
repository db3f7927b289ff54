"""LiveFeed: bounded ring buffers with per-stream sequence numbers; the SSE hub's queues."""

from __future__ import annotations

import asyncio
import logging
import math

import pytest

from laptop_agents.console.sse import SseHub, encode
from laptop_agents.console.view import (
    LATEST,
    CompositeView,
    FeedLogHandler,
    FeedSizes,
    LiveFeed,
    SessionControl,
    SessionView,
    clean_json,
    event_dict,
)
from laptop_agents.domain.contracts import StepResult
from laptop_agents.domain.events import Decision, FillEvent, OrderCancelled, OrderEvent, TradeClosed
from laptop_agents.domain.models import Candle, OrderType, Side
from laptop_agents.logs import SCRUBBER
from tests.console.fakes import FakeControl, FakeSession


def test_streams_are_numbered_bounded_and_report_gaps() -> None:
    feed = LiveFeed(FeedSizes(candles=3, equity=3))
    for i in range(5):
        feed.on_step(Candle(i * 60_000, 10, 11, 9, 10.5, 1), StepResult(ts=i * 60_000, equity=100.0 + i, position_qty=0.0))
    r = feed.recent("candles", 0)
    assert r.seq == 5 and [c["seq"] for c in r.items] == [3, 4, 5] and r.gap is True
    assert feed.recent("candles", 2).gap is False and len(feed.recent("candles", 2).items) == 3
    assert feed.recent("candles", 4).items == [{"ts": 240_000, "open": 10, "high": 11, "low": 9, "close": 10.5,
                                                "volume": 1, "seq": 5}]
    assert feed.recent("candles", 5).items == [] and feed.recent("candles", LATEST) == (5, [], False)
    assert [e["equity"] for e in feed.recent("equity").items] == [102.0, 103.0, 104.0]
    with pytest.raises(ValueError, match="unknown stream"):
        feed.recent("nope", 0)  # type: ignore[arg-type]


def test_events_are_routed_by_kind() -> None:
    feed = LiveFeed()
    seen: list[int] = []
    feed.listeners.append(lambda evs: seen.append(len(list(evs))))
    feed.on_step(None, StepResult(ts=1, events=[
        Decision(1, "block", "x"),
        FillEvent(1, "c", Side.BUY, 0.5, 1.0, 0.0, "taker", "entry"),
        TradeClosed(1, "long", 0.5, 0, 1.0, 1, 5.0, 2.0, 0.0, 0.0, 2.0, "target", "c"),
        OrderEvent(1, "c", Side.BUY, OrderType.MARKET, 0.5, None, None, None, "accepted", ""),
    ]))
    assert [d["action"] for d in feed.recent("decisions").items] == ["block"]
    assert [e["kind"] for e in feed.recent("events").items] == ["fill", "trade_closed", "order"]
    assert feed.recent("fills").items[0]["price"] == 1.0 and feed.recent("trades").items[0]["net_pnl"] == 2.0
    assert feed.recent("candles").items == [] and seen == [4]


def test_event_shapes_and_json_cleaning() -> None:
    assert event_dict(OrderCancelled(5, "c", "x")) == {"ts": 5, "kind": "order_cancelled", "client_id": "c",
                                                      "reason": "x"}
    assert event_dict({"ts": 5, "kind": "x", "data": {"a": 1}}) == {"ts": 5, "kind": "x", "a": 1}

    class Typed:
        def to_dict(self) -> dict[str, object]:
            return {"ts": 7, "kind": "breaker_trip", "reason": "dd"}

    assert event_dict(Typed()) == {"ts": 7, "kind": "breaker_trip", "reason": "dd"}
    assert clean_json({"a": math.nan, "b": [math.inf, 1.5, (1, 2)], "c": Typed()}) == {
        "a": None, "b": [None, 1.5, [1, 2]], "c": {"ts": 7, "kind": "breaker_trip", "reason": "dd"}}


def test_log_handler_scrubs_and_the_composite_view_survives_failures() -> None:
    SCRUBBER.register("hunter2-super-secret")
    feed = LiveFeed()
    log = logging.getLogger("laptop_agents.test.console")
    handler = FeedLogHandler(feed)
    log.addHandler(handler)
    try:
        log.warning("connecting with %s", "hunter2-super-secret")
        log.debug("too detailed")
    finally:
        log.removeHandler(handler)
    lines = feed.recent("logs").items
    assert len(lines) == 1 and lines[0]["level"] == "WARNING" and lines[0]["component"] == "test.console"
    assert "hunter2" not in lines[0]["message"] and "***" in lines[0]["message"]

    def boom() -> tuple[bool, dict[str, object]]:
        raise RuntimeError("x")

    v = CompositeView(boom, feed, extra=lambda: {"symbol": "BTCUSDT"})
    assert v.status() == {"status": "error", "error": "RuntimeError", "healthy": False, "symbol": "BTCUSDT"}


def test_fakes_satisfy_the_protocols() -> None:
    s = FakeSession()
    assert isinstance(s.view, SessionView) and isinstance(FakeControl(), SessionControl)


def test_hub_caps_clients_and_drops_oldest_for_slow_ones() -> None:
    async def main() -> None:
        hub = SseHub(max_clients=2, queue_size=3)
        a, b = hub.add("a"), hub.add("b")
        assert a is not None and b is not None and hub.add("c") is None and hub.rejected == 1
        for i in range(5):
            hub.broadcast(f"m{i}".encode())
            if i < 2:
                b.queue.clear()  # b keeps up for a while
        assert list(a.queue) == [b"m2", b"m3", b"m4"] and a.dropped == 2 and a.resync is True
        assert b.dropped == 0 and b.resync is False
        hub.remove(a)
        assert hub.add("d") is not None
        hub.close()
        assert hub.add("e") is None and all(c.closed for c in [b])

    asyncio.run(main())


def test_sse_encoding_is_one_line_of_scrubbed_json() -> None:
    SCRUBBER.register("another-secret-value-42")
    msg = encode("update", {"m": "line1\nline2 another-secret-value-42", "x": math.nan})
    text = msg.decode()
    assert text.startswith("event: update\ndata: ") and text.endswith("\n\n") and text.count("\n") == 3
    assert "another-secret" not in text and '"x":null' in text
