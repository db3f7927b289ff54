"""The mock source: present-day timestamps, simulated real time, determinism, fault hooks.

A fake clock drives the source (its ``sleep`` advances the clock and yields to
the loop), so these tests see hours of simulated market in milliseconds and
never depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laptop_agents.config import TradingConfig
from laptop_agents.domain.contracts import MarketSource, SourceError
from laptop_agents.domain.models import Candle, FundingRate, Tick
from laptop_agents.sources.mock import (
    FAULTS_ENV,
    MockFaults,
    MockFaultsError,
    MockSource,
    faults_from_env,
)

START = 1_767_225_600_000 + 9 * 3_600_000 + 42 * 60_000 + 17_500  # 2026-01-01 09:42:17.5 UTC
MIN = 60_000
DAY_MS = 86_400_000


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def make(clock: FakeClock, *, speed: float = 1.0, warmup: int = 50, seed: int = 7, **kw: Any) -> MockSource:
    trading = TradingConfig(speed=speed, warmup_bars=warmup, seed=seed)
    return MockSource(trading, start_ms=kw.pop("start_ms", START), monotonic=clock.monotonic, sleep=clock.sleep, **kw)


async def take(src: MockSource, n: int, kinds: tuple[type, ...] = (Candle,), limit: int = 100_000) -> list[Any]:
    out: list[Any] = []
    seen = 0
    async for item in src.stream():
        seen += 1
        if isinstance(item, kinds):
            out.append(item)
            if len(out) >= n:
                break
        if seen >= limit:
            break
    return out


def test_implements_the_market_source_protocol() -> None:
    assert isinstance(make(FakeClock()), MarketSource)


def test_warmup_is_the_closed_history_before_now() -> None:
    src = make(FakeClock(), warmup=50)
    hist = asyncio.run(src.warmup())
    assert len(hist) == 50
    forming_open = START - START % MIN
    assert hist[-1].ts == forming_open - MIN  # the last one closed before "now"
    assert [b.ts - a.ts for a, b in zip(hist, hist[1:], strict=False)] == [MIN] * 49


def test_streams_closed_candles_in_simulated_real_time() -> None:
    clock = FakeClock()
    src = make(clock, speed=1.0)
    candles = asyncio.run(take(src, 3))
    forming_open = START - START % MIN
    assert [c.ts for c in candles] == [forming_open, forming_open + MIN, forming_open + 2 * MIN]
    # Each candle was emitted only after it had closed in simulated time.
    assert src.now_ms() >= candles[-1].ts + MIN
    # At speed 1 that took about 2 minutes 43 s of (fake) wall time.
    assert clock.t - 1000.0 == pytest.approx((forming_open + 3 * MIN - START) / 1000.0, abs=1.5)


def test_speed_scales_wall_time() -> None:
    clock = FakeClock()
    src = make(clock, speed=60.0)
    asyncio.run(take(src, 10))
    # Ten simulated minutes at 60x: about ten real seconds.
    assert 9.0 <= clock.t - 1000.0 <= 11.0


def test_ticks_keep_a_quiet_minute_alive() -> None:
    clock = FakeClock()
    src = make(clock, speed=1.0, tick_interval_s=1.0)
    items = asyncio.run(take(src, 1, kinds=(Candle,)))
    assert items
    ticks = asyncio.run(take(make(FakeClock(), speed=1.0), 30, kinds=(Tick,)))
    assert len(ticks) == 30
    gaps = [b.ts - a.ts for a, b in zip(ticks, ticks[1:], strict=False)]
    assert max(gaps) <= 1_100  # never more than ~1 s between two pieces of data
    assert all(0 < t.bid <= t.ask for t in ticks)


def test_funding_at_start_and_on_each_8h_period() -> None:
    clock = FakeClock()
    src = make(clock, speed=10_000.0, start_ms=START)
    items: list[Any] = []

    async def collect() -> None:
        async for item in src.stream():
            items.append(item)
            if isinstance(item, Candle) and item.ts >= START + 17 * 3_600_000:
                break

    asyncio.run(collect())
    funding = [i for i in items if isinstance(i, FundingRate)]
    assert isinstance(items[0], FundingRate)
    periods = {f.ts // (8 * 3_600_000) for f in funding}
    assert len(funding) == len(periods) >= 3  # start + two boundaries crossed in 17 h


def test_same_seed_and_start_give_the_same_market() -> None:
    a = asyncio.run(take(make(FakeClock(), speed=1000.0), 300))
    b = asyncio.run(take(make(FakeClock(), speed=1000.0), 300))
    assert a == b
    c = asyncio.run(take(make(FakeClock(), speed=1000.0, seed=8), 300))
    assert [x.close for x in a] != [x.close for x in c]


def test_restart_on_the_same_day_sees_the_same_price_path() -> None:
    """A candle depends on the seed and its time only, so a later start continues the same series."""
    early = asyncio.run(take(make(FakeClock(), speed=1000.0), 120))
    later = make(FakeClock(), speed=1000.0, start_ms=START + 30 * MIN)
    later_candles = asyncio.run(take(later, 10))
    by_ts = {c.ts: c for c in early}
    assert all(by_ts[c.ts] == c for c in later_candles if c.ts in by_ts)
    assert later_candles[0].ts in by_ts


def test_resume_after_the_last_processed_candle() -> None:
    """A fast session restarted by the watchdog: the clock starts after the stored candle."""
    last = START + 500 * MIN - (START % MIN)  # far ahead of the wall clock
    src = make(FakeClock(), speed=1000.0, resume_after_ts=last)
    first = asyncio.run(take(src, 1))[0]
    assert first.ts == last + MIN
    hist = asyncio.run(src.warmup())
    assert hist[-1].ts == last


MIDNIGHT = START - START % DAY_MS + DAY_MS  # 2026-01-02 00:00 UTC


def _continuous(candles: list[Candle]) -> None:
    """One interval apart, each opening near the previous close: no restart seam
    (the generator's own rare gaps are a few basis points, a restart's were 10 %)."""
    for a, b in zip(candles, candles[1:], strict=False):
        assert b.ts - a.ts == MIN
        assert abs(b.open / a.close - 1.0) < 0.01, (a, b)


def test_restart_across_utc_midnight_continues_the_uninterrupted_series() -> None:
    """A fast session stops at 23:59 and a restart resumes after its last
    candle, on the next UTC day: the series goes on as if never interrupted
    (it used to jump: the market was re-anchored to the new day)."""
    start = MIDNIGHT - 20 * MIN + 17_500  # 23:40:17.5
    whole = asyncio.run(take(make(FakeClock(), speed=1000.0, start_ms=start), 40))  # 23:40 .. 00:19
    session = make(FakeClock(), speed=1000.0, start_ms=start)
    seen = asyncio.run(session.warmup())
    first = asyncio.run(take(session, 20))  # 23:40 .. 23:59
    assert first[-1].ts == MIDNIGHT - MIN
    # The restart's wall clock is still at the first start (a fast session runs
    # ahead of it): the store's last candle decides where it resumes.
    again = make(FakeClock(), speed=1000.0, start_ms=start, resume_after_ts=first[-1].ts)
    warm = asyncio.run(again.warmup())
    second = asyncio.run(take(again, 20))
    assert second[0].ts == MIDNIGHT
    assert first + second == whole
    assert warm == (seen + first)[-len(warm) :]  # the restart's history is what the first session saw
    _continuous(first + second)


def test_restart_on_a_later_day_sees_the_same_market_at_the_same_times() -> None:
    """Prices are a pure function of seed and candle time: a session started
    after midnight (wall clock) shows the candles an uninterrupted one showed."""
    start = MIDNIGHT - 20 * MIN + 17_500
    whole = asyncio.run(take(make(FakeClock(), speed=1000.0, start_ms=start), 60))
    later = make(FakeClock(), speed=1000.0, start_ms=MIDNIGHT + 7 * MIN + 5_000, warmup=20)
    warm = asyncio.run(later.warmup())
    streamed = asyncio.run(take(later, 10))
    by_ts = {c.ts: c for c in whole}
    assert warm[0].ts < MIDNIGHT <= warm[-1].ts  # the warm-up history spans the day boundary
    assert [by_ts[c.ts] for c in warm + streamed] == warm + streamed
    _continuous(warm + streamed)


# -- fault hooks (tests only) ---------------------------------------------------


def test_silence_after_n_candles_keeps_the_stream_open() -> None:
    clock = FakeClock()
    src = make(clock, speed=100.0, faults=MockFaults(silence_after=3))
    items: list[Any] = []

    async def collect() -> None:
        async for item in src.stream():
            items.append(item)

    async def main() -> None:
        task = asyncio.create_task(collect())
        for _ in range(200):
            await asyncio.sleep(0)
        assert not task.done()  # still "connected"
        task.cancel()

    asyncio.run(main())
    assert len([i for i in items if isinstance(i, Candle)]) == 3
    assert src.status()["state"] == "silent"
    assert clock.t - 1000.0 > 3600  # it sleeps, sending nothing


def test_error_burst_after_n_candles() -> None:
    src = make(FakeClock(), speed=1000.0, faults=MockFaults(errors_after=2, errors=3))
    items = asyncio.run(take(src, 6, kinds=(Candle, SourceError)))
    seq = ["C" if isinstance(i, Candle) else "E" for i in items]
    assert seq == ["C", "C", "E", "E", "E", "C"]
    assert all(i.kind == "mock_fault" for i in items if isinstance(i, SourceError))


def test_error_every_and_end_after() -> None:
    src = make(FakeClock(), speed=1000.0, faults=MockFaults(error_every=2, end_after=5))

    async def collect() -> list[Any]:
        return [i async for i in src.stream() if isinstance(i, Candle | SourceError)]

    seq = ["C" if isinstance(i, Candle) else "E" for i in asyncio.run(collect())]
    assert seq == ["C", "C", "E", "C", "C", "E", "C"]
    assert src.status()["state"] == "ended"


def test_faults_from_env_and_bad_specs() -> None:
    assert faults_from_env({}) is None
    f = faults_from_env({FAULTS_ENV: "silence_after=5, errors_after=2,errors=4"})
    assert f == MockFaults(silence_after=5, errors_after=2, errors=4)
    with pytest.raises(MockFaultsError, match="allowed"):
        MockFaults.parse("explode=1")
    with pytest.raises(MockFaultsError, match="integer"):
        MockFaults.parse("silence_after=soon")


def test_status_reports_progress() -> None:
    src = make(FakeClock(), speed=1000.0)
    asyncio.run(take(src, 5))
    st = src.status()
    assert st["source"] == "mock" and st["candles"] == 5 and st["speed"] == 1000.0
    asyncio.run(src.aclose())
    assert src.status()["state"] == "closed"
