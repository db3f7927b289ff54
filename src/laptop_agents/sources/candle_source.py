"""A MarketSource over a list of closed candles (``--source replay --replay-file candles.csv``).

A candle file replayed through the live runner takes the very code path of a
live session (guards, store, journal, reports), which is what makes "backtest
and replay of the same candles give identical trades" a meaningful check.

The first ``warmup`` candles are handed out by :meth:`warmup` (indicators
only, no trading), the rest are streamed, each with its funding rate when the
file had one. As fast as possible by default: the stream yields control to the
event loop every few candles so the runner's kill switch and signal handling
stay responsive. With ``realtime`` the candles are paced one interval apart
(times ``1/speed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from laptop_agents.domain.contracts import MarketItem
from laptop_agents.domain.models import Candle, FundingRate

_YIELD_EVERY = 256


class CandleListSource:
    """Streams ``candles`` (oldest first) as closed candles.

    ``funding`` optionally maps a candle's ``ts`` to a funding rate (fraction
    per 8 h), emitted just before that candle -- as a live source would have
    refreshed it.
    """

    name = "candles"

    def __init__(
        self,
        candles: Sequence[Candle],
        *,
        warmup: int = 0,
        funding: dict[int, float] | None = None,
        realtime: bool = False,
        speed: float = 1.0,
        label: str = "",
    ) -> None:
        if warmup < 0:
            raise ValueError("warmup must be >= 0")
        self._candles = candles
        self._warmup = min(warmup, len(candles))
        self._funding = funding or {}
        self._realtime = realtime
        self._speed = speed
        self.label = label
        self._emitted = 0
        self._state = "idle"

    @property
    def total(self) -> int:
        return len(self._candles)

    async def warmup(self) -> list[Candle]:
        return list(self._candles[: self._warmup])

    def stream(self) -> AsyncIterator[MarketItem]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[MarketItem]:
        self._state = "streaming"
        prev_ts: int | None = None
        for i in range(self._warmup, len(self._candles)):
            candle = self._candles[i]
            if self._realtime and prev_ts is not None:
                await asyncio.sleep(max(0.0, (candle.ts - prev_ts) / 1000.0 / self._speed))
            elif i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            prev_ts = candle.ts
            rate = self._funding.get(candle.ts)
            if rate is not None:
                yield FundingRate(ts=candle.ts, rate=rate)
            self._emitted += 1
            yield candle
        self._state = "ended"

    def status(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "file": self.label,
            "state": self._state,
            "candles": self._emitted,
            "total": len(self._candles) - self._warmup,
        }

    async def aclose(self) -> None:
        self._state = "closed"
