"""Helpers shared by the exchange and bitunix-source tests: a fast fake
exchange, fast client options, and collecting a source's items."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from laptop_agents.config import TradingConfig
from laptop_agents.domain.contracts import MarketItem, SourceError
from laptop_agents.domain.models import Candle
from laptop_agents.exchange.feed import FeedOptions
from laptop_agents.exchange.rest import RestOptions
from laptop_agents.exchange.ws import WsOptions
from laptop_agents.sources.bitunix import BitunixSource, BitunixSourceOptions
from laptop_agents.sources.recording import Recorder
from laptop_agents.testing.fake_exchange import FakeExchangeHandle, start_fake_exchange

T = TypeVar("T")

# One hour after an 8 h funding boundary: deterministic market, no funding change for a while.
START_MS = 1_767_225_600_000 + 3_600_000
SPEED = 600.0  # ten 1m candles per wall second
PUSH_S = 0.02  # five pushes per candle


@contextmanager
def fake_exchange(**overrides: Any) -> Iterator[FakeExchangeHandle]:
    params: dict[str, Any] = {
        "seed": 11, "speed": SPEED, "push_interval_s": PUSH_S, "ping_timeout_s": 2.0,
        "start_ms": START_MS, "history_bars": 3000,
    }
    params.update(overrides)
    handle = start_fake_exchange(**params)
    try:
        yield handle
    finally:
        handle.stop()


def fast_options(feed: FeedOptions | None = None, **ws: Any) -> BitunixSourceOptions:
    ws_params: dict[str, Any] = {
        "ping_interval_s": 0.25, "idle_timeout_s": 1.5, "backoff_base_s": 0.05, "backoff_max_s": 0.3,
        "open_timeout_s": 5.0,
    }
    ws_params.update(ws)
    return BitunixSourceOptions(
        ws=WsOptions(**ws_params),
        rest=RestOptions(timeout_s=5.0, max_attempts=4, backoff_base_s=0.02, backoff_max_s=0.2),
        feed=feed or FeedOptions(),
    )


def trading(fake: FakeExchangeHandle, warmup_bars: int = 30) -> TradingConfig:
    return TradingConfig(
        source="bitunix", bitunix_rest_url=fake.rest_url, bitunix_ws_url=fake.ws_url, warmup_bars=warmup_bars,
    )


def make_source(fake: FakeExchangeHandle, *, warmup_bars: int = 30, recorder: Recorder | None = None,
                feed: FeedOptions | None = None, **ws: Any) -> BitunixSource:
    return BitunixSource(trading(fake, warmup_bars), recorder=recorder, options=fast_options(feed, **ws))


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    async def guarded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(guarded())


async def collect(
    source: Any,
    until: Callable[[list[MarketItem]], bool],
    *,
    on_item: Callable[[MarketItem, list[MarketItem]], Awaitable[None] | None] | None = None,
    timeout: float = 20.0,
) -> list[MarketItem]:
    """Items from ``source.stream()`` until ``until(items)`` holds."""
    items: list[MarketItem] = []
    stream = source.stream()
    try:
        async with asyncio.timeout(timeout):
            async for item in stream:
                items.append(item)
                if on_item is not None:
                    maybe = on_item(item, items)
                    if maybe is not None:
                        await maybe
                if until(items):
                    break
    finally:
        await stream.aclose()
    return items


def candles(items: list[MarketItem]) -> list[Candle]:
    return [i for i in items if isinstance(i, Candle)]


def errors(items: list[MarketItem], kind: str | None = None) -> list[SourceError]:
    return [i for i in items if isinstance(i, SourceError) and (kind is None or i.kind == kind)]


def n_candles(n: int) -> Callable[[list[MarketItem]], bool]:
    return lambda items: sum(isinstance(i, Candle) for i in items) >= n


def then_candles(happened: Callable[[list[MarketItem]], bool], n: int) -> Callable[[list[MarketItem]], bool]:
    """``until`` for :func:`collect`: true once ``happened(items)`` has held and ``n``
    more candles have arrived after that point.

    A fault test waits for the fault's effect instead of counting candles: on a
    loaded machine the consumer lags, and a fixed number of candles can be
    reached from the backlog queued *before* the fault was armed, so the fault
    would never be seen. A fault that never takes effect is a timeout (a failure),
    never a pass."""
    mark: list[int] = []

    def until(items: list[MarketItem]) -> bool:
        if not mark:
            if not happened(items):
                return False
            mark.append(len(items))
        return sum(isinstance(i, Candle) for i in items[mark[0]:]) >= n

    return until


def assert_contiguous(cs: list[Candle], interval_ms: int = 60_000) -> None:
    """Strictly increasing, one interval apart: no duplicate, no gap."""
    for a, b in zip(cs, cs[1:], strict=False):
        assert b.ts - a.ts == interval_ms, f"candles {a.ts} -> {b.ts} are not one interval apart"
