"""The candle assembler and the market feed on hand-made frames: rollover,
duplicates, late pushes, disconnects, backfill retries and gaps, funding
changes, tickers, server notices."""

from __future__ import annotations

import json

from laptop_agents.domain.contracts import SourceError
from laptop_agents.domain.models import Candle, FundingRate, Tick
from laptop_agents.exchange.feed import FeedOptions, KlineAssembler, MarketFeed
from laptop_agents.exchange.parsers import KlinePush
from laptop_agents.exchange.rest import BitunixRestClient, RestOptions
from laptop_agents.exchange.ws import WsClosed, WsFrame, WsOpened
from tests.exchange.support import fake_exchange, run

IV = 60_000
B = 1_699_999_980_000  # a minute boundary


def candle(i: int, close: float = 60_000.0) -> Candle:
    return Candle(B + i * IV, 60_000.0, max(60_000.0, close) + 5, min(60_000.0, close) - 5, close, 1.0)


def push(i: int, offset: int, close: float = 60_000.0) -> KlinePush:
    return KlinePush(B + i * IV + offset, "BTCUSDT", "1m", candle(i, close))


def test_rollover_emits_the_last_values_seen() -> None:
    asm = KlineAssembler("1m")
    assert asm.on_push(push(0, 100, 60_001)).emit == []
    assert asm.on_push(push(0, 59_000, 60_002)).emit == []
    step = asm.on_push(push(1, 10, 60_100))
    assert step.emit == [candle(0, 60_002)] and step.backfill is None
    assert asm.on_push(push(2, 10)).emit == [candle(1, 60_100)]


def test_duplicates_and_late_pushes_are_dropped() -> None:
    asm = KlineAssembler("1m")
    asm.on_push(push(0, 100))
    asm.on_push(push(1, 100))  # emits 0
    late = asm.on_push(push(0, 59_999, 99_999))  # the old candle again, after it was emitted
    assert not late.accepted and late.emit == []
    older_view = asm.on_push(push(1, 50, 61_000))  # an older view of the forming candle
    assert older_view.accepted and not older_view.newest
    assert asm.on_push(push(2, 1)).emit == [candle(1)]  # the newer values were kept
    assert asm.stale_pushes == 1


def test_after_warmup_a_missing_candle_is_backfilled_at_once() -> None:
    asm = KlineAssembler("1m")
    asm.prime([candle(i) for i in range(5)])
    step = asm.on_push(push(7, 100))
    assert step.backfill == (B + 5 * IV, B + 6 * IV)
    out, note = asm.on_backfill([candle(6), candle(5), candle(5)], *step.backfill)
    assert out == [candle(5), candle(6)] and note is None
    assert asm.on_push(push(8, 1)).emit == [candle(7)]


def test_candle_forming_during_a_disconnect_comes_from_rest() -> None:
    asm = KlineAssembler("1m")
    asm.prime([candle(0)])
    asm.on_push(push(1, 100))
    asm.on_disconnect()
    step = asm.on_push(push(2, 5))
    assert step.emit == [] and step.backfill == (B + IV, B + IV)  # its last values may be stale


def test_failed_backfill_retries_at_the_next_rollover_then_gives_up() -> None:
    asm = KlineAssembler("1m", max_backfill_attempts=2)
    asm.prime([candle(0)])
    first = asm.on_push(push(3, 1))
    assert first.backfill == (B + IV, B + 2 * IV)
    assert asm.on_backfill_failed(*first.backfill) is None
    assert asm.on_push(push(3, 500)).backfill is None  # not again within the same candle
    second = asm.on_push(push(4, 1))
    assert second.backfill == (B + IV, B + 3 * IV)
    note = asm.on_backfill_failed(*second.backfill)
    assert note is not None and "gave up" in note
    assert asm.on_push(push(5, 1)).emit == [candle(4)]  # trading data flows again


def test_far_future_push_is_refused() -> None:
    asm = KlineAssembler("1m", max_gap_bars=100)
    asm.on_push(push(0, 1))
    step = asm.on_push(push(500, 1))
    assert not step.accepted and step.error is not None and "500 intervals" in step.error
    assert asm.on_push(push(1, 1)).emit == [candle(0)]


def test_one_bogus_future_push_does_not_freeze_the_feed() -> None:
    """A single push stamped a few intervals ahead (a bad frame) must not become
    the forming candle: every real push after it would be refused as stale and
    the session would end as stale_data instead of trading on."""
    asm = KlineAssembler("1m")
    asm.on_push(push(0, 100))
    bogus = asm.on_push(push(5, 1, 70_000))
    assert not bogus.accepted and bogus.emit == [] and bogus.backfill is None
    assert asm.on_push(push(0, 30_000, 60_010)).accepted
    assert asm.on_push(push(1, 10)).emit == [candle(0, 60_010)]
    assert asm.on_push(push(2, 10)).emit == [candle(1)]
    assert asm.suspect_pushes == 1


def test_a_real_jump_while_connected_is_taken_on_its_second_push() -> None:
    asm = KlineAssembler("1m")
    asm.prime([candle(0)])
    asm.on_push(push(1, 100))
    first = asm.on_push(push(4, 10))  # pushes stopped for a while, the socket stayed up
    assert not first.accepted and first.emit == []
    second = asm.on_push(push(4, 500))
    assert second.accepted
    assert second.backfill == (B + IV, B + 3 * IV)  # the hole (and the candle before it) from REST


def _frame(obj: dict | str, conn: int = 1) -> WsFrame:
    return WsFrame(conn, 0, obj if isinstance(obj, str) else json.dumps(obj))


def _kline(i: int, offset: int, close: float = 60_000.0, symbol: str = "BTCUSDT") -> dict:
    c = candle(i, close)
    return {"ch": "market_kline_1min", "symbol": symbol, "ts": B + i * IV + offset,
            "data": {"o": str(c.open), "h": str(c.high), "l": str(c.low), "c": str(c.close), "b": "1.0", "q": "6e4"}}


def _price(rate_pct: str, ts: int = B) -> dict:
    return {"ch": "price", "symbol": "BTCUSDT", "ts": ts, "data": {"ip": "60000", "mp": "60000", "fr": rate_pct}}


def offline_feed(**opts: object) -> MarketFeed:
    # A REST client that is never called by these tests (no warm-up, no backfill).
    rest = BitunixRestClient("http://127.0.0.1:9", options=RestOptions(max_attempts=1))
    return MarketFeed("BTCUSDT", "1m", rest, FeedOptions(**opts))


def test_feed_items_from_frames() -> None:
    async def go() -> list[object]:
        feed = offline_feed()
        out: list[object] = []
        for ev in [
            WsOpened(1, 0),
            _frame({"op": "connect", "data": {"result": True}}),
            _frame(_price("0.01")), _frame(_price("0.01", B + 500)), _frame(_price("0.02", B + 900)),
            _frame(_kline(0, 100)), _frame(_kline(0, 100, symbol="ETHUSDT")),
            _frame({"ch": "ticker", "symbol": "BTCUSDT", "ts": B + 200, "data": {"la": "60001"}}),
            _frame(_kline(1, 5, 60_010)),
            _frame({"op": "ping", "pong": 1, "ping": 2}),
            _frame({"op": "error", "msg": "subscription refused"}),
            _frame({"op": "connect", "data": {"result": False}}),
            _frame("{broken"),
            WsClosed(1, 0, "closed by server (code 1011)"), WsClosed(0, 0, "connect failed: refused"),
            WsClosed(2, 0, "no market data for 20 s (idle timeout)", idle=True),
        ]:
            out.extend(await feed.handle(ev))
        await feed.rest.aclose()
        assert feed.counts["pongs"] == 1 and feed.counts["ignored"] == 1
        return out

    items = run(go())
    assert items[0] == FundingRate(B, 0.0001)
    assert items[1] == FundingRate(B + 900, 0.0002)  # an unchanged rate is not repeated
    assert items[2] == Tick(B + 100, 60_000.0, 60_000.0, 60_000.0)
    assert items[3] == Tick(B + 200, 60_001.0, 60_001.0, 60_001.0)  # ticker channel
    assert items[4] == candle(0) and items[5] == Tick(B + IV + 5, 60_010.0, 60_010.0, 60_010.0)
    kinds = [i.kind for i in items[6:] if isinstance(i, SourceError)]
    assert kinds == ["ws_error", "ws_refused", "bad_frame", "ws_disconnect", "ws_connect_failed", "ws_idle"]


def test_backfill_failures_are_reported_then_the_gap_is_skipped() -> None:
    with fake_exchange(speed=1.0) as fake:
        market = fake.exchange.market
        i0 = market.index_at(fake.now_ms()) - 50

        def kline(i: int, offset: int) -> WsFrame:
            c = market.candle(i)
            return _frame({"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": c.ts + offset,
                           "data": {"o": c.open, "h": c.high, "l": c.low, "c": c.close, "b": c.volume}})

        async def go() -> tuple[list[object], dict]:
            rest = BitunixRestClient(fake.rest_url, options=RestOptions(max_attempts=2, backoff_base_s=0.01))
            feed = MarketFeed("BTCUSDT", "1m", rest, FeedOptions(max_backfill_attempts=2))
            feed.assembler.prime([market.candle(i0)])
            await fake_inject(fake, "http_status", status=503, count=4)
            out: list[object] = []
            for ev in (kline(i0 + 3, 10), kline(i0 + 3, 20), kline(i0 + 4, 10), kline(i0 + 5, 10), kline(i0 + 6, 10)):
                out.extend(await feed.handle(ev))
            await rest.aclose()
            return out, feed.status()

        items, status = run(go())
        errs = [i for i in items if isinstance(i, SourceError)]
        assert [e.kind for e in errs] == ["backfill_transient", "backfill_transient", "gap"]
        assert "gave up" in errs[-1].message
        cs = [i for i in items if isinstance(i, Candle)]
        assert cs == [market.candle(i0 + 4), market.candle(i0 + 5)]  # data flows on after the hole
        assert status["backfill_failures"] == 2


async def fake_inject(fake: object, kind: str, **params: object) -> None:
    import asyncio

    await asyncio.to_thread(fake.inject, kind, **params)  # type: ignore[attr-defined]
