from __future__ import annotations

import math
import statistics

import pytest

from laptop_agents.sources.synthetic import BLOCK, SyntheticMarket

ORIGIN = 1_700_000_000_000
MIN = 60_000


def test_same_seed_same_candles_and_random_access_agrees() -> None:
    a = SyntheticMarket(7, ORIGIN)
    seq = a.candles(0, 3000)
    b = SyntheticMarket(7, ORIGIN)
    # Jumping straight to a late index gives the same candle as walking there.
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
    assert len(m._blocks) <= 4 and len(m._shocks_cache) <= 2 and len(m._anchors) <= 65


def test_prices_are_a_pure_function_of_seed_and_time_whatever_the_origin() -> None:
    """A market numbered from another origin (a restart, another day, the fake
    exchange) shows the same candle at the same time; reaching a candle a year
    away costs two block generations, not a year of bars."""
    a = SyntheticMarket(4, ORIGIN)
    seq = a.candles(0, 3000)
    for shift in (1, 17, 1440, 2999):
        b = SyntheticMarket(4, ORIGIN + shift * MIN)
        assert b.candles(0, 3000 - shift) == seq[shift:]
    far = SyntheticMarket(4, ORIGIN + 365 * 1440 * MIN)
    year = far.candle(0)
    assert len(far._blocks) == 1 and len(far._shocks_cache) == 2
    assert SyntheticMarket(4, ORIGIN).candle(365 * 1440) == year
    assert 10_000 < year.close < 400_000


def test_a_market_counted_from_its_own_epoch_is_the_same_relative_to_it() -> None:
    """The fake exchange's choice: the same seed gives the same series relative
    to its start, whenever it starts."""
    a = SyntheticMarket(4, ORIGIN, epoch_ts=ORIGIN).candles(0, 1500)
    b = SyntheticMarket(4, ORIGIN + 7 * MIN, epoch_ts=ORIGIN + 7 * MIN).candles(0, 1500)
    assert [c.ts - a[0].ts for c in a] == [c.ts - b[0].ts for c in b]
    assert [c.close for c in a] == [c.close for c in b]
    assert [c.close for c in SyntheticMarket(4, ORIGIN).candles(0, 1500)] != [c.close for c in a]


def test_no_seam_at_block_boundaries() -> None:
    """Blocks are bridged to their anchors: the open after a boundary continues
    the close before it, and volatility carries over."""
    m = SyntheticMarket(2, ORIGIN)
    cs = m.candles(0, 20 * BLOCK)
    first = next(i for i, c in enumerate(cs) if (c.ts // MIN) % BLOCK == 0)
    seams = [(cs[i - 1], cs[i]) for i in range(max(first, 1), len(cs), BLOCK)]
    assert len(seams) >= 19
    assert all(abs(b.open / a.close - 1.0) < 0.005 for a, b in seams)
    inside = [abs(math.log(b.close / a.close)) for a, b in zip(cs, cs[1:], strict=False)]
    across = [abs(math.log(b.close / a.close)) for a, b in seams]
    assert statistics.fmean(across) < 3 * statistics.fmean(inside)


def test_tick_and_funding() -> None:
    m = SyntheticMarket(9, ORIGIN)
    ts = ORIGIN + 90_000
    t = m.tick(ts)
    assert t.ask - t.bid == pytest.approx(m.tick_size)
    i = m.index_at(ts)
    assert t.bid == t.last == m.partial(i, ts - m.open_ts(i)).close
    r = m.funding_rate(ORIGIN)
    assert abs(r) < 0.01 and r == m.funding_rate(ORIGIN + 1000)
