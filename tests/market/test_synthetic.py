from __future__ import annotations

import math
import statistics

from laptop_agents.market.synthetic import SyntheticMarket

ORIGIN = 1_700_000_000_000


def test_same_seed_same_candles_and_random_access_agrees() -> None:
    a = SyntheticMarket(7, ORIGIN)
    seq = a.candles(0, 3000)
    b = SyntheticMarket(7, ORIGIN)
    # Jumping straight to a late index regenerates through checkpoints identically.
    assert b.candle(2999) == seq[-1]
    assert b.candle(17) == seq[17]
    assert SyntheticMarket(8, ORIGIN).candle(10) != seq[10]


def test_candles_are_valid_contiguous_and_realistic() -> None:
    m = SyntheticMarket(3, ORIGIN)
    cs = m.candles(0, 5000)
    assert all(b.ts - a.ts == 60_000 for a, b in zip(cs, cs[1:], strict=False))
    rets = [math.log(b.close / a.close) for a, b in zip(cs, cs[1:], strict=False)]
    sd = statistics.pstdev(rets)
    assert 0.0003 < sd < 0.005  # 1-minute BTC-like volatility
    # Volatility clustering: |r| is autocorrelated.
    absr = [abs(r) for r in rets]
    mean = statistics.fmean(absr)
    cov = statistics.fmean((x - mean) * (y - mean) for x, y in zip(absr, absr[1:], strict=False))
    assert cov / statistics.pvariance(absr) > 0.05
    assert all(c.volume > 0 for c in cs)


def test_partial_candle_converges_to_the_closed_one() -> None:
    m = SyntheticMarket(5, ORIGIN)
    closed = m.candle(42)
    first = m.partial(42, 0)
    assert first.open == closed.open and first.volume <= closed.volume
    assert m.partial(42, 60_000) == closed
    mid = m.partial(42, 30_000)
    assert closed.low <= mid.low <= mid.high <= closed.high


def test_memory_is_bounded_over_long_runs() -> None:
    m = SyntheticMarket(1, ORIGIN)
    for i in range(20_000):
        m.candle(i)
    assert len(m._cache) <= 2048
    assert len(m._checkpoints) <= 20_000 // 512 + 2


def test_tick_and_funding() -> None:
    m = SyntheticMarket(9, ORIGIN)
    t = m.tick(ORIGIN + 90_000)
    assert t.bid < t.ask
    r = m.funding_rate(ORIGIN)
    assert abs(r) < 0.01 and r == m.funding_rate(ORIGIN + 1000)
