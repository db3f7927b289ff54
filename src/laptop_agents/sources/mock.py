"""The mock market source: the seeded synthetic BTC market, streamed "live".

It lets a session, a demo or a test run the whole live path (async runner,
guards, store, reports) without a network. Candles come from
:class:`~laptop_agents.sources.synthetic.SyntheticMarket`, timestamped in the
present: the simulated clock starts at the wall clock (or just after the
last candle a restarted session already processed) and runs ``speed`` times
faster than real time, so ``--speed 60`` shows one simulated minute per second.

What it yields, in simulated-time order: each candle once it has closed, a
:class:`Tick` of the forming candle at most every ``tick_interval_s`` of wall
time (so a quiet minute at real speed is not mistaken for stale data), and a
:class:`FundingRate` at start and whenever the 8-hour funding period changes.

Determinism: a candle depends only on the seed and its time, so a restart at
any moment -- on the next UTC day too -- continues the very series the first
run saw, with no jump (the market used to be re-anchored to the UTC day of
the start). Ticks depend on when the loop wakes up and are therefore not
reproducible (they never change durable state).

Test hooks (not user options): :class:`MockFaults` makes the source misbehave
on purpose -- go silent, emit bursts of :class:`SourceError`, end the stream.
They are passed to the constructor, or parsed from the ``LA_TEST_MOCK_FAULTS``
environment variable by :func:`faults_from_env` for tests that drive the real
CLI in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, fields
from typing import Any

from laptop_agents.config import TradingConfig
from laptop_agents.domain.contracts import MarketItem, SourceError
from laptop_agents.domain.errors import UsageError
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.domain.timeframes import interval_ms
from laptop_agents.sources.synthetic import SyntheticMarket

FUNDING_PERIOD_MS = 8 * 3_600_000
FAULTS_ENV = "LA_TEST_MOCK_FAULTS"
# Yield to the event loop at least this often when many candles are due at
# once (very high speed), so the runner's supervisors keep running.
_BATCH = 64


class MockFaultsError(UsageError):
    """A malformed fault specification (test hook)."""


@dataclass(frozen=True, slots=True)
class MockFaults:
    """Deliberate misbehaviour, for tests only. Counts are streamed candles.

    - ``silence_after``: after this many candles send nothing more, but keep
      the stream open -- "a source that stops sending".
    - ``errors_after`` / ``errors``: after this many candles emit ``errors``
      consecutive :class:`SourceError` items, then continue normally.
    - ``error_every``: one :class:`SourceError` after every N-th candle (never
      consecutive, so only the error budget can end the session).
    - ``end_after``: end the stream after this many candles.
    """

    silence_after: int | None = None
    errors_after: int | None = None
    errors: int = 3
    error_every: int | None = None
    end_after: int | None = None

    @classmethod
    def parse(cls, spec: str) -> MockFaults:
        """``"silence_after=5,errors_after=2,errors=3"`` -> MockFaults."""
        known = {f.name for f in fields(cls)}
        values: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise MockFaultsError(
                    f"bad mock fault {part!r} in {FAULTS_ENV}; allowed: {', '.join(sorted(known))} as key=int"
                )
            try:
                values[key] = int(raw)
            except ValueError:
                raise MockFaultsError(f"bad mock fault {part!r}: {key} needs an integer") from None
        return cls(**values)


def faults_from_env(environ: dict[str, str] | None = None) -> MockFaults | None:
    """The test hook: faults from ``LA_TEST_MOCK_FAULTS`` (None when unset)."""
    spec = (os.environ if environ is None else environ).get(FAULTS_ENV, "").strip()
    return MockFaults.parse(spec) if spec else None


def market_origin(start_ms: int, interval: int, warmup_bars: int) -> int:
    """Where candle 0 opens: ``warmup_bars`` before the candle forming at
    ``start_ms``. It only numbers the candles; their prices are a pure
    function of the seed and their time (see :mod:`laptop_agents.sources.synthetic`)."""
    forming = start_ms - start_ms % interval
    return forming - warmup_bars * interval


class MockSource:
    """A :class:`~laptop_agents.domain.contracts.MarketSource` over the synthetic market.

    ``resume_after_ts`` is the open time of the last candle the session already
    processed (from the state store): the simulated clock then starts no
    earlier than the close of that candle, so a fast session restarted by the
    watchdog continues where it left off instead of waiting for the wall
    clock to catch up. ``wall_clock`` / ``monotonic`` / ``sleep`` are
    injectable for tests.
    """

    name = "mock"

    def __init__(
        self,
        trading: TradingConfig,
        *,
        start_ms: int | None = None,
        resume_after_ts: int | None = None,
        faults: MockFaults | None = None,
        tick_interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.interval_ms = interval_ms(trading.interval)
        self.speed = float(trading.speed)
        self.warmup_bars = int(trading.warmup_bars)
        self.faults = faults or MockFaults()
        self.tick_interval_s = tick_interval_s
        self._monotonic = monotonic
        self._sleep = sleep
        wall_ms = int(wall_clock() * 1000) if start_ms is None else int(start_ms)
        if resume_after_ts is not None:
            wall_ms = max(wall_ms, resume_after_ts + self.interval_ms)
        self.start_ms = wall_ms
        origin = market_origin(wall_ms, self.interval_ms, self.warmup_bars)
        self.market = SyntheticMarket(trading.seed, origin, self.interval_ms)
        # The simulated clock starts with the stream (not at construction), so
        # time spent opening the store and warming up is not skipped at high speed.
        self._t0: float | None = None
        # The first candle the stream will emit: the one forming at start.
        self._start_index = self.market.index_at(wall_ms)
        self._next_index = self._start_index
        self._emitted = 0
        self._errors = 0
        self._last_item_ms: int | None = None
        self._state = "idle"
        self._closed = False

    # -- clock ----------------------------------------------------------------
    def now_ms(self) -> int:
        """Simulated market time (UTC ms): what "now" is for this market."""
        if self._t0 is None:
            return self.start_ms
        return self.start_ms + int((self._monotonic() - self._t0) * 1000.0 * self.speed)

    def _wall_delay(self, sim_ts: int) -> float:
        """Real seconds until the simulated clock reaches ``sim_ts``."""
        return max(0.0, (sim_ts - self.now_ms()) / 1000.0 / self.speed)

    # -- MarketSource -----------------------------------------------------------
    async def warmup(self) -> list[Candle]:
        """The ``warmup_bars`` closed candles before the one forming now, oldest first."""
        first = max(0, self._start_index - self.warmup_bars)
        return self.market.candles(first, self._start_index - first)

    def status(self) -> dict[str, Any]:
        age = None if self._last_item_ms is None else round((self.now_ms() - self._last_item_ms) / 1000.0, 3)
        return {
            "source": self.name,
            "state": self._state,
            "speed": self.speed,
            "candles": self._emitted,
            "errors": self._errors,
            "last_message_age_s": age,
        }

    async def aclose(self) -> None:
        self._closed = True
        self._state = "closed"

    def stream(self) -> AsyncIterator[MarketItem]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[MarketItem]:
        if self._t0 is None:
            self._t0 = self._monotonic()
        self._state = "streaming"
        faults = self.faults
        now = self.now_ms()
        funding_period = now // FUNDING_PERIOD_MS
        yield self._funding(now)
        next_tick_wall = self._monotonic() + self.tick_interval_s
        batch = 0
        while not self._closed:
            close_ts = self.market.open_ts(self._next_index + 1)
            now = self.now_ms()
            if now < close_ts:
                batch = 0
                delay = min(self._wall_delay(close_ts), max(0.0, next_tick_wall - self._monotonic()))
                if delay > 0:
                    await self._sleep(delay)
                if self._monotonic() >= next_tick_wall:
                    next_tick_wall = self._monotonic() + self.tick_interval_s
                    now = min(self.now_ms(), close_ts - 1)
                    self._last_item_ms = now
                    yield self.market.tick(now)
                continue
            candle = self.market.candle(self._next_index)
            self._next_index += 1
            self._emitted += 1
            self._last_item_ms = candle.ts
            yield candle
            if close_ts // FUNDING_PERIOD_MS != funding_period:
                funding_period = close_ts // FUNDING_PERIOD_MS
                yield self._funding(close_ts)
            n = self._emitted
            if faults.end_after is not None and n >= faults.end_after:
                self._state = "ended"
                return
            if faults.errors_after is not None and n == faults.errors_after:
                for k in range(faults.errors):
                    self._errors += 1
                    yield SourceError("mock_fault", f"injected market-data error {k + 1}/{faults.errors}")
            if faults.error_every is not None and n % faults.error_every == 0:
                self._errors += 1
                yield SourceError("mock_fault", f"injected market-data error after candle {n}")
            if faults.silence_after is not None and n >= faults.silence_after:
                self._state = "silent"
                while not self._closed:  # connected but quiet: only the stale guard can tell
                    await self._sleep(3600.0)
                return
            batch += 1
            if batch >= _BATCH:
                batch = 0
                await self._sleep(0)

    def _funding(self, ts: int) -> FundingRate:
        return FundingRate(ts=ts, rate=self.market.funding_rate(ts))
