"""BitunixSource end to end against the real fake exchange over loopback:
warm-up, streaming equal to REST history, disconnects with gap backfill,
duplicates and out-of-order pushes, silence, malformed frames, 429s."""

from __future__ import annotations

import asyncio

from laptop_agents.domain.contracts import MarketItem, MarketSource, SourceError
from laptop_agents.domain.models import Candle, FundingRate, Tick
from laptop_agents.exchange.feed import FeedOptions
from laptop_agents.exchange.rest import BitunixRestClient
from laptop_agents.sources.bitunix import BitunixSource
from tests.exchange.support import (
    assert_contiguous,
    candles,
    collect,
    errors,
    fake_exchange,
    fast_options,
    make_source,
    n_candles,
    run,
    then_candles,
    trading,
)


async def rest_history(url: str, first: int, last: int) -> list[Candle]:
    async with BitunixRestClient(url) as rest:
        return await rest.candles_between("BTCUSDT", "1m", first, last)


def test_warmup_then_streaming_matches_rest_history() -> None:
    with fake_exchange() as fake:
        source = make_source(fake, warmup_bars=250)
        assert isinstance(source, MarketSource)

        async def go() -> tuple[list[Candle], list[MarketItem], list[Candle], dict]:
            warm = await source.warmup()
            # A lagging consumer first gets what queued up (or was backfilled) while it
            # was busy: wait until the forming-kline pushes show up as ticks, too.
            def enough(items: list[MarketItem]) -> bool:
                ticks = sum(isinstance(i, Tick) for i in items)
                return n_candles(15)(items) and ticks > len(candles(items))

            items = await collect(source, enough)
            status = source.status()
            await source.aclose()
            cs = candles(items)
            history = await rest_history(fake.rest_url, warm[0].ts, cs[-1].ts)
            return warm, items, history, status

        warm, items, history, status = run(go())
        assert len(warm) == 250
        cs = candles(items)
        assert cs[0].ts == warm[-1].ts + 60_000  # continues right after the warm-up
        assert_contiguous(warm + cs)
        assert warm + cs == history  # what the websocket assembled is what REST serves
        assert isinstance(items[0], FundingRate) and 0 < abs(items[0].rate) < 0.01
        assert not errors(items)
        ticks = [i for i in items if isinstance(i, Tick)]
        assert len(ticks) > len(cs)  # every forming-kline push surfaces as data
        assert status["ws_state"] == "connected" and status["reconnects"] == 0 and status["bad_frames"] == 0
        assert status["last_message_age_s"] is not None


def test_disconnect_is_survived_with_backfill_and_no_duplicate() -> None:
    with fake_exchange() as fake:
        source = make_source(fake)

        async def on_item(item: MarketItem, items: list[MarketItem]) -> None:
            if isinstance(item, Candle) and len(candles(items)) == 4:
                # Refuse the next reconnects so that candles close while we are away.
                await asyncio.to_thread(fake.inject, "reject_connect", count=2)
                await asyncio.to_thread(fake.inject, "disconnect")

        async def go() -> tuple[list[Candle], list[MarketItem], list[Candle], dict]:
            warm = await source.warmup()
            # the disconnect and both refused reconnects seen, then candles again
            items = await collect(source, then_candles(lambda items: len(errors(items)) >= 3, 8),
                                  on_item=on_item)
            status = source.status()
            await source.aclose()
            history = await rest_history(fake.rest_url, warm[0].ts, candles(items)[-1].ts)
            return warm, items, history, status

        warm, items, history, status = run(go())
        kinds = [e.kind for e in errors(items)]
        assert kinds[:3] == ["ws_disconnect", "ws_connect_failed", "ws_connect_failed"]
        cs = candles(items)
        assert_contiguous(warm + cs)  # no duplicate, no hole
        assert warm + cs == history
        feed = status["feed"]
        assert status["reconnects"] == 3 and feed["backfills"] >= 1 and feed["backfilled_candles"] >= 1
        stats = fake.stats()
        assert stats["ws_subscribes"] == stats["ws_connections"] == 2  # resubscribed after reconnect


def test_duplicate_and_out_of_order_pushes_never_reach_the_consumer() -> None:
    # Wire numbers as JSON numbers and strings mixed, and the ticker channel on too.
    with fake_exchange(numbers="mixed") as fake:
        source = make_source(fake, feed=FeedOptions(subscribe_ticker=True))

        async def on_item(item: MarketItem, items: list[MarketItem]) -> None:
            if isinstance(item, Candle) and len(candles(items)) == 2:
                await asyncio.to_thread(fake.inject, "duplicate", count=20)
                await asyncio.to_thread(fake.inject, "out_of_order", count=20)

        async def go() -> tuple[list[Candle], list[MarketItem], list[Candle], dict]:
            warm = await source.warmup()
            def dropped_enough(_items: list[MarketItem]) -> bool:
                return bool(source.status()["feed"]["stale_pushes"] >= 10)

            items = await collect(source, then_candles(dropped_enough, 3), on_item=on_item)
            status = source.status()
            await source.aclose()
            return warm, items, await rest_history(fake.rest_url, warm[0].ts, candles(items)[-1].ts), status

        warm, items, history, status = run(go())
        assert warm + candles(items) == history
        assert status["feed"]["stale_pushes"] >= 10
        assert not errors(items)
        assert fake.stats()["closed_connections"][0]["channels"] == ["market_kline_1min", "price", "ticker"]
        assert len([i for i in items if isinstance(i, Tick)]) > status["feed"]["candles"] * 2  # kline + ticker


def test_silence_beyond_idle_timeout_is_reported_and_recovered() -> None:
    with fake_exchange() as fake:
        source = make_source(fake, idle_timeout_s=0.6, ping_interval_s=0.15)

        async def on_item(item: MarketItem, items: list[MarketItem]) -> None:
            if isinstance(item, Candle) and len(candles(items)) == 2:
                await asyncio.to_thread(fake.inject, "silence", seconds=1.0)

        async def go() -> tuple[list[Candle], list[MarketItem], dict]:
            warm = await source.warmup()
            items = await collect(source, then_candles(lambda items: bool(errors(items, "ws_idle")), 3),
                                  on_item=on_item)
            status = source.status()
            await source.aclose()
            return warm, items, status

        warm, items, status = run(go())
        idle = errors(items, "ws_idle")
        assert idle and "idle timeout" in idle[0].message
        assert status["idle_timeouts"] >= 1 and status["feed"]["pongs"] >= 2  # pongs did not hide the silence
        after = items[items.index(idle[-1]):]
        assert candles(after)  # data flows again after the reconnect
        assert_contiguous(warm + candles(items))


def test_three_malformed_frames_are_three_consecutive_source_errors() -> None:
    with fake_exchange() as fake:
        source = make_source(fake)

        async def on_item(item: MarketItem, items: list[MarketItem]) -> None:
            if isinstance(item, Candle) and len(candles(items)) == 2:
                await asyncio.to_thread(fake.inject, "malformed", count=3)

        async def go() -> tuple[list[MarketItem], dict]:
            await source.warmup()
            items = await collect(source, then_candles(lambda items: len(errors(items)) >= 3, 1), on_item=on_item)
            status = source.status()
            await source.aclose()
            return items, status

        items, status = run(go())
        errs = [i for i, item in enumerate(items) if isinstance(item, SourceError)]
        assert len(errs) == 3 and errs == list(range(errs[0], errs[0] + 3))  # back to back: nothing good between
        assert all(items[i].kind == "bad_frame" for i in errs)
        assert status["bad_frames"] == 3
        assert isinstance(items[errs[-1] + 1], Candle | Tick)  # and then data again (the stream survived)


def test_wrong_shaped_payloads_are_named() -> None:
    with fake_exchange() as fake:
        source = make_source(fake)

        async def on_item(item: MarketItem, items: list[MarketItem]) -> None:
            if isinstance(item, Candle) and len(candles(items)) == 1:
                await asyncio.to_thread(fake.inject, "bad_shape", count=7)

        async def go() -> list[MarketItem]:
            await source.warmup()
            items = await collect(source, then_candles(lambda items: len(errors(items)) >= 7, 1), on_item=on_item)
            await source.aclose()
            return items

        items = run(go())
        messages = [e.message for e in errors(items, "bad_frame")]
        assert len(messages) == 7
        joined = " | ".join(messages)
        for needle in ("data must be an object", "missing field 'c'", "low <= open/close <= high",
                       "numeric string", "timestamp", "expected an object", "low must be > 0"):
            assert needle in joined


def test_429_burst_during_backfill_is_backed_off() -> None:
    with fake_exchange() as fake:
        source = make_source(fake)

        async def on_item(item: MarketItem, items: list[MarketItem]) -> None:
            if isinstance(item, Candle) and len(candles(items)) == 3:
                await asyncio.to_thread(fake.inject, "http_status", status=429, count=2, retry_after=0.05)
                await asyncio.to_thread(fake.inject, "reject_connect", count=1)
                await asyncio.to_thread(fake.inject, "disconnect")

        async def go() -> tuple[list[Candle], list[MarketItem], dict]:
            warm = await source.warmup()
            def backed_off(_items: list[MarketItem]) -> bool:
                now = source.status()
                return now["feed"]["backfills"] >= 1 and now["rest"]["rate_limit_penalties"] >= 2

            items = await collect(source, then_candles(backed_off, 3), on_item=on_item)
            status = source.status()
            await source.aclose()
            return warm, items, status

        warm, items, status = run(go())
        assert_contiguous(warm + candles(items))
        assert status["rest"]["retries"] >= 2 and status["rest"]["rate_limit_penalties"] >= 2
        assert not errors(items, "backfill_rate_limited")  # retried, not given up
        assert fake.stats()["rest_rate_limited"] == 0


def test_warmup_failure_raises_typed_error() -> None:
    with fake_exchange() as fake:
        fake.inject("error_code", code=10004, count=5)  # IP not whitelisted: retrying cannot help
        source = make_source(fake)

        async def go() -> str:
            try:
                await source.warmup()
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            finally:
                await source.aclose()
            return "no error"

        assert run(go()).startswith("AuthError: /api/v1/futures/market/kline: bitunix code 10004")


def test_a_restart_warms_every_candle_since_the_stores_last_one() -> None:
    """Issue 15 (found by the drill): a session restarted after a downtime of
    more than ``warmup_bars`` intervals warmed only the latest bars, so the
    candles between the store's last one and that window were never seen --
    no stop or target checked on them, indicators missing them. The warm-up
    now reaches back to the store's last candle (capped, then reported)."""
    with fake_exchange() as fake:
        probe = make_source(fake, warmup_bars=1)

        async def newest() -> int:
            try:
                return (await probe.warmup())[-1].ts
            finally:
                await probe.aclose()

        last_stored = run(newest()) - 300 * 60_000  # the store stopped 300 bars ago
        source = BitunixSource(trading(fake, warmup_bars=50), options=fast_options(), resume_after_ts=last_stored)

        async def go() -> list[Candle]:
            try:
                return await source.warmup()
            finally:
                await source.aclose()

        warm = run(go())
        assert warm[0].ts == last_stored + 60_000  # nothing between the store and the warm-up is lost
        assert_contiguous(warm)
        assert len(warm) >= 300


def test_a_fresh_start_or_a_short_downtime_warms_warmup_bars() -> None:
    with fake_exchange() as fake:
        source = BitunixSource(trading(fake, warmup_bars=50), options=fast_options(), resume_after_ts=None)

        async def go() -> list[Candle]:
            try:
                return await source.warmup()
            finally:
                await source.aclose()

        warm = run(go())
        assert len(warm) == 50
        again = BitunixSource(trading(fake, warmup_bars=50), options=fast_options(),
                              resume_after_ts=warm[-10].ts)
        warm2 = run(_warm(again))
        assert len(warm2) >= 50 and warm2[0].ts <= warm[-9].ts  # never less than warmup_bars


async def _warm(source: BitunixSource) -> list[Candle]:
    try:
        return await source.warmup()
    finally:
        await source.aclose()
