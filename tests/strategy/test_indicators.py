"""Incremental indicators against batch computations and hand-computed values."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.strategy.indicators import (
    ATR,
    CVD,
    EMA,
    SMA,
    RollingMax,
    RollingMin,
    RollingVWAP,
    VolumeMean,
    candle_delta,
    true_range,
)

REL = 1e-9

# -- batch references: the obvious, whole-window computation ------------------


def batch_sma(xs: list[float], n: int) -> list[float | None]:
    return [None if i + 1 < n else math.fsum(xs[i + 1 - n : i + 1]) / n for i in range(len(xs))]


def batch_ema(xs: list[float], n: int) -> list[float | None]:
    out: list[float | None] = []
    e: float | None = None
    a = 2.0 / (n + 1)
    for i, x in enumerate(xs):
        if i + 1 == n:
            e = math.fsum(xs[:n]) / n
        elif e is not None:
            e = a * x + (1 - a) * e
        out.append(e)
    return out


def batch_atr(bars: list[tuple[float, float, float]], n: int) -> list[float | None]:
    trs = []
    for i, (h, lo, _c) in enumerate(bars):
        if i == 0:
            trs.append(h - lo)
        else:
            pc = bars[i - 1][2]
            trs.append(max(h - lo, abs(h - pc), abs(lo - pc)))
    out: list[float | None] = []
    a: float | None = None
    for i, tr in enumerate(trs):
        if i + 1 == n:
            a = math.fsum(trs[:n]) / n
        elif a is not None:
            a = (a * (n - 1) + tr) / n
        out.append(a)
    return out


def batch_vwap(bars: list[tuple[float, float, float, float]], n: int) -> list[float | None]:
    out: list[float | None] = []
    for i in range(len(bars)):
        w = bars[max(0, i + 1 - n) : i + 1]
        vol = math.fsum(b[3] for b in w)
        if vol == 0:
            out.append(None)
        else:
            out.append(math.fsum((b[0] + b[1] + b[2]) / 3 * b[3] for b in w) / vol)
    return out


def run(ind: object, rows: list) -> list[float | None]:
    upd = ind.update  # type: ignore[attr-defined]
    return [upd(*r) if isinstance(r, tuple) else upd(r) for r in rows]


def assert_close(got: list[float | None], want: list[float | None]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is None:
            assert g is None, f"index {i}: expected warming up, got {g}"
        else:
            assert g is not None, f"index {i}: expected {w}, got None"
            assert g == pytest.approx(w, rel=REL, abs=1e-12), f"index {i}"


prices = st.floats(min_value=1.0, max_value=200_000.0, allow_nan=False, allow_infinity=False)
volumes = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False))


@st.composite
def ohlcv(draw: st.DrawFn) -> tuple[float, float, float, float]:
    o = draw(prices)
    c = draw(prices)
    up = draw(st.floats(min_value=0.0, max_value=5_000.0))
    dn = draw(st.floats(min_value=0.0, max_value=0.9))
    h = max(o, c) + up
    lo = min(o, c) * (1 - dn)
    return h, lo, c, draw(volumes)


# -- hand-computed values ----------------------------------------------------


def test_sma_hand_values() -> None:
    assert run(SMA(3), [1.0, 2.0, 3.0, 4.0, 10.0]) == [None, None, 2.0, 3.0, pytest.approx(17 / 3)]


def test_ema_is_sma_seeded_hand_values() -> None:
    # alpha = 2/(3+1) = 0.5; seed = mean(1,2,3) = 2; then 2+.5*(4-2)=3; 3+.5*(5-3)=4
    assert run(EMA(3), [1.0, 2.0, 3.0, 4.0, 5.0]) == [None, None, 2.0, 3.0, 4.0]


def test_atr_wilder_seeded_hand_values() -> None:
    a = ATR(2)
    assert a.update(10, 8, 9) is None  # TR = h-l = 2 (no previous close)
    assert a.update(11, 9, 10) == 2.0  # TR = 2 -> seed mean(2, 2)
    assert a.update(15, 10, 14) == 3.5  # TR = max(5, 5, 0) = 5 -> (2*1 + 5)/2
    assert a.update(14, 13, 13.5) == pytest.approx((3.5 + 1.0) / 2)  # TR = max(1, 0, 1) = 1


def test_true_range_uses_gap_from_previous_close() -> None:
    assert true_range(105, 103, None) == 2
    assert true_range(105, 103, 100) == 5  # gap up
    assert true_range(98, 97, 100) == 3  # gap down


def test_vwap_hand_values_and_zero_volume() -> None:
    v = RollingVWAP(2)
    assert v.update(12, 6, 9, 1) == 9.0  # tp 9
    assert v.update(15, 9, 12, 3) == pytest.approx(11.25)  # (9*1 + 12*3) / 4
    assert v.update(18, 12, 15, 0) == pytest.approx(12.0)  # zero volume carries no weight
    assert v.update(18, 12, 15, 0) is None  # every bar in the window has zero volume
    assert v.value is None
    assert v.update(21, 15, 18, 2) == pytest.approx(18.0)


def test_cvd_and_candle_delta_hand_values() -> None:
    assert candle_delta(10, 8, 9.5, 100) == 50.0  # ((1.5)-(0.5))/2*100
    assert candle_delta(10, 8, 8, 100) == -100.0  # close at the low
    assert candle_delta(10, 10, 10, 100) == 0.0  # zero range
    c = CVD()
    c.update(10, 8, 9.5, 100)
    c.update(10, 8, 8, 40)
    assert c.value == pytest.approx(50 - 40)


def test_rolling_max_min_hand_values() -> None:
    xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]
    assert run(RollingMax(3), xs) == [None, None, 4, 4, 5, 9, 9, 9, 6, 6]
    assert run(RollingMin(3), xs) == [None, None, 1, 1, 1, 1, 2, 2, 2, 3]


def test_periods_are_validated() -> None:
    for cls in (SMA, EMA, ATR, RollingVWAP, RollingMax, RollingMin):
        with pytest.raises(ValueError, match="period"):
            cls(0)


# -- against batch computations ------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(prices, min_size=1, max_size=150), n=st.integers(1, 25))
def test_sma_matches_batch(xs: list[float], n: int) -> None:
    assert_close(run(SMA(n), xs), batch_sma(xs, n))


@settings(max_examples=40, deadline=None)
@given(xs=st.lists(volumes, min_size=1, max_size=150), n=st.integers(1, 25))
def test_volume_mean_matches_batch_with_wild_volumes(xs: list[float], n: int) -> None:
    # Volumes span 0..1e6 with zeros: stresses the running sum's cancellation guard.
    got = run(VolumeMean(n), xs)
    want = batch_sma(xs, n)
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None
        else:
            assert g == pytest.approx(w, rel=REL, abs=1e-9 * max(xs))


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(prices, min_size=1, max_size=150), n=st.integers(1, 25))
def test_ema_matches_batch(xs: list[float], n: int) -> None:
    assert_close(run(EMA(n), xs), batch_ema(xs, n))


@settings(max_examples=60, deadline=None)
@given(bars=st.lists(ohlcv(), min_size=1, max_size=120), n=st.integers(1, 20))
def test_atr_matches_batch(bars: list[tuple[float, float, float, float]], n: int) -> None:
    hlc = [(h, lo, c) for h, lo, c, _v in bars]
    assert_close(run(ATR(n), hlc), batch_atr(hlc, n))


@settings(max_examples=60, deadline=None)
@given(bars=st.lists(ohlcv(), min_size=1, max_size=150), n=st.integers(1, 30))
def test_vwap_matches_batch(bars: list[tuple[float, float, float, float]], n: int) -> None:
    assert_close(run(RollingVWAP(n), bars), batch_vwap(bars, n))


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=150), n=st.integers(1, 20))
def test_rolling_max_min_match_batch(xs: list[float], n: int) -> None:
    want_max = [None if i + 1 < n else max(xs[i + 1 - n : i + 1]) for i in range(len(xs))]
    want_min = [None if i + 1 < n else min(xs[i + 1 - n : i + 1]) for i in range(len(xs))]
    assert run(RollingMax(n), xs) == want_max
    assert run(RollingMin(n), xs) == want_min


@settings(max_examples=40, deadline=None)
@given(bars=st.lists(ohlcv(), min_size=1, max_size=100))
def test_cvd_matches_batch(bars: list[tuple[float, float, float, float]]) -> None:
    c = CVD()
    got = [c.update(*b) for b in bars]
    total = 0.0
    for g, (h, lo, cl, v) in zip(got, bars, strict=True):
        total += 0.0 if h == lo else ((cl - lo) - (h - cl)) / (h - lo) * v
        assert g == pytest.approx(total, rel=REL, abs=1e-6)


def test_long_series_stays_exact_and_bounded() -> None:
    """100k updates: running sums do not drift, memory stays at the window."""
    import random

    rnd = random.Random(3)
    sma, vw = SMA(20), RollingVWAP(60)
    xs: list[float] = []
    bars: list[tuple[float, float, float, float]] = []
    for _ in range(100_000):
        x = 60_000 * (1 + rnd.uniform(-0.01, 0.01))
        v = rnd.choice([0.0, rnd.uniform(0, 50), rnd.uniform(0, 5000)])
        xs.append(x)
        bars.append((x + 5, x - 5, x, v))
        sma.update(x)
        vw.update(x + 5, x - 5, x, v)
    assert sma.value == pytest.approx(math.fsum(xs[-20:]) / 20, rel=1e-12)
    assert vw.value == pytest.approx(batch_vwap(bars[-60:], 60)[-1], rel=1e-12)
    assert len(pickle.dumps(sma)) < 2_000 and len(pickle.dumps(vw)) < 4_000


def test_indicators_pickle_and_continue_identically() -> None:
    inds = [SMA(5), EMA(5), ATR(3), RollingVWAP(4), RollingMax(3), RollingMin(3), CVD()]
    rows = [(100 + i % 7, 95 + i % 5, 97 + i % 6, float(i % 4)) for i in range(30)]

    def feed(ind: object, r: tuple[float, float, float, float]) -> float | None:
        h, lo, c, v = r
        if isinstance(ind, (SMA, EMA, RollingMax, RollingMin)):
            return ind.update(c)
        if isinstance(ind, ATR):
            return ind.update(h, lo, c)
        return ind.update(h, lo, c, v)  # type: ignore[attr-defined]

    for ind in inds:
        for r in rows[:15]:
            feed(ind, r)
        clone = pickle.loads(pickle.dumps(ind))
        assert [feed(ind, r) for r in rows[15:]] == [feed(clone, r) for r in rows[15:]]
