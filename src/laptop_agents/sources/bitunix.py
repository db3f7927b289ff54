"""The live Bitunix market source: REST warm-up, then the public websocket.

:class:`BitunixSource` is the I/O shell around :class:`MarketFeed`: it owns
the REST client and the websocket client (sharing one rate-limit budget),
records every raw message when given a :class:`Recorder`, and hands each
websocket event to the feed, which yields closed candles, ticks, funding
rates and a :class:`SourceError` for every problem it survived. It never
gives up by itself: reconnecting forever is its job, deciding when too many
errors in a row end the session is the runner's.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from laptop_agents.config import TradingConfig
from laptop_agents.domain.contracts import MarketItem
from laptop_agents.domain.models import Candle
from laptop_agents.exchange import protocol
from laptop_agents.exchange.feed import FeedOptions, MarketFeed
from laptop_agents.exchange.ratelimit import RateLimitBudget
from laptop_agents.exchange.rest import BitunixRestClient, RestOptions
from laptop_agents.exchange.ws import BitunixWsClient, WsOptions
from laptop_agents.sources.recording import Recorder, RecordingTransport
from laptop_agents.wallclock import now_ms


class ExchangeClock:
    """The market's "now" for an exchange whose clock runs ``speed`` times real
    time (a fast fake exchange: ``--speed`` with ``--source bitunix``).

    The wall clock means nothing to such a market, so the session's market time
    (the late-candle rule, event stamps, the duration) follows the exchange's
    own timestamps instead: the newest one seen (a push's ``ts``, a REST reply's
    ``Date``), advanced by the monotonic clock times ``speed`` in between. It
    only moves forward -- a timestamp behind the estimate (a delayed frame, the
    Date header's whole seconds) is ignored -- so a candle can never be judged
    earlier than it was. Before the exchange said anything it reads the wall
    clock. At speed 1 the session keeps the wall clock as before."""

    def __init__(self, speed: float, *, monotonic: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = now_ms) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._monotonic = monotonic
        self._wall_ms = wall_ms
        self._anchor_ms: int | None = None
        self._anchor_mono = 0.0

    def observe(self, exchange_ms: int | None) -> None:
        """An exchange timestamp was seen: move the clock forward to it."""
        if exchange_ms is None:
            return
        if self._anchor_ms is None or exchange_ms > self.now_ms():
            self._anchor_ms = int(exchange_ms)
            self._anchor_mono = self._monotonic()

    def now_ms(self) -> int:
        if self._anchor_ms is None:
            return self._wall_ms()
        return self._anchor_ms + int((self._monotonic() - self._anchor_mono) * 1000.0 * self.speed)


@dataclass(frozen=True)
class BitunixSourceOptions:
    """Tuning knobs; the defaults suit the real exchange, tests shorten the times."""

    ws: WsOptions = field(default_factory=WsOptions)
    rest: RestOptions = field(default_factory=RestOptions)
    feed: FeedOptions = field(default_factory=FeedOptions)


class BitunixSource:
    """``MarketSource`` over Bitunix (or the fake exchange: the URLs come from
    ``trading.bitunix_rest_url`` / ``trading.bitunix_ws_url``).

    ``warmup()`` raises an :class:`~laptop_agents.exchange.errors.ExchangeError`
    if the history cannot be fetched (after retries); ``stream()`` never
    raises for market-data problems, it yields ``SourceError`` items."""

    name = "bitunix"

    def __init__(
        self,
        trading: TradingConfig,
        *,
        recorder: Recorder | None = None,
        clock: Callable[[], int] = now_ms,
        options: BitunixSourceOptions | None = None,
        rng: random.Random | None = None,
        resume_after_ts: int | None = None,
        market_clock: ExchangeClock | None = None,
    ) -> None:
        self.trading = trading
        # The store's last processed candle: the warm-up reaches back to it.
        self.resume_after_ts = resume_after_ts
        # A fast exchange's clock, fed with every exchange timestamp seen (None: the wall clock rules).
        self.market_clock = market_clock
        self.symbol = trading.symbol
        self.interval = trading.interval
        protocol.rest_interval(self.interval)  # fail now, with the allowed list, not at the first request
        self.options = options or BitunixSourceOptions()
        self.recorder = recorder
        self._clock = clock
        self.budget = RateLimitBudget()
        transport = RecordingTransport(recorder) if recorder is not None else None
        self.rest = BitunixRestClient(
            trading.bitunix_rest_url, budget=self.budget, options=self.options.rest, transport=transport, rng=rng
        )
        self.ws = BitunixWsClient(
            trading.bitunix_ws_url,
            self.symbol,
            self.options.feed.channels(self.interval),
            options=self.options.ws,
            budget=self.budget,
            clock_ms=clock,
            rng=rng,
        )
        self.feed = MarketFeed(self.symbol, self.interval, self.rest, self.options.feed)
        if recorder is not None:
            recorder.meta(
                source=self.name,
                symbol=self.symbol,
                interval=self.interval,
                warmup_bars=trading.warmup_bars,
                resume_after_ts=resume_after_ts,
                rest_url=trading.bitunix_rest_url,
                ws_url=trading.bitunix_ws_url,
                channels=self.options.feed.channels(self.interval),
                feed=self.options.feed.to_dict(),
                rest=asdict(self.options.rest),
            )
        self._last_item_mono: float | None = None

    async def warmup(self) -> list[Candle]:
        candles = await self.feed.warmup(self.trading.warmup_bars, self.resume_after_ts)
        if self.market_clock is not None:
            self.market_clock.observe(self.rest.last_server_ms)
        return candles

    async def stream(self) -> AsyncIterator[MarketItem]:
        clock = self.market_clock
        for item in await self.feed.start():
            yield item
        recorder = self.recorder
        async for event in self.ws.events():
            if recorder is not None:
                recorder.ws_event(event)
            items = await self.feed.handle(event)
            if clock is not None:
                clock.observe(self.feed.last_data_ts)
                clock.observe(self.rest.last_server_ms)
            for item in items:
                self._last_item_mono = time.monotonic()
                yield item

    def status(self) -> dict[str, Any]:
        ws = self.ws.status()
        age = None if self._last_item_mono is None else round(time.monotonic() - self._last_item_mono, 3)
        return {
            "source": self.name,
            "ws_state": ws["state"],
            "reconnects": ws["reconnects"],
            "idle_timeouts": ws["idle_timeouts"],
            "last_message_age_s": ws["last_data_age_s"],
            "last_item_age_s": age,
            "ws": ws,
            "feed": self.feed.status(),
            "bad_frames": self.feed.counts["bad_frames"],
            "rest": {
                "requests": self.rest.requests,
                "retries": self.rest.retries,
                "errors": self.rest.errors,
                "last_error": self.rest.last_error,
                "rate_limit_penalties": self.budget.penalties,
            },
            "recorded_lines": self.recorder.lines if self.recorder is not None else None,
        }

    async def aclose(self) -> None:
        await self.ws.aclose()
        await self.rest.aclose()
        if self.recorder is not None:
            self.recorder.flush()
