"""Incremental indicators: O(1) (amortised) work per candle, bounded memory.

Why incremental: the seed system recomputed every indicator over its whole
candle window on each bar (about 2,500 candles/s); a year of 1-minute candles
must replay in seconds, and a strategy snapshot must stay small, so every
indicator here keeps only what its window needs and updates in place.

Conventions shared by all classes:

- ``update(...)`` consumes one value (or one candle's fields) and returns the
  new value, or ``None`` while the indicator is still warming up; the same
  value is kept in the ``value`` attribute.
- Plain attributes and ``__slots__`` only, so instances stay small and
  pickle (the Engine's snapshots use ``dump()``/``load()``; pickling is for
  users' tools). Compiled by mypyc in the optional compiled core, where
  ``mypyc_attr`` keeps them picklable and lets users subclass them.
- Rolling sums (SMA, VWAP) are kept as running totals. Floating-point error
  from adding and subtracting is bounded by recomputing the total exactly
  (``math.fsum`` over the window, O(window)) once per ``window`` updates, and
  immediately when cancellation makes the running total small compared to the
  largest total seen since the last exact sum. Both keep the amortised cost
  O(1) and the result within ~1e-12 relative of a batch computation.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

from mypy_extensions import mypyc_attr

__all__ = [
    "ATR",
    "CVD",
    "EMA",
    "SMA",
    "RollingMax",
    "RollingMin",
    "RollingVWAP",
    "VolumeMean",
    "candle_delta",
    "true_range",
]

# Recompute a running total exactly when it falls below this fraction of the
# largest total seen since the last exact recompute (catastrophic cancellation).
_CANCEL_RATIO = 1e-4


def _check_shape(name: str, stored: int, period: int, size: int) -> None:
    """A stored window must come from an indicator of the same period: restoring
    it into another one would silently mix two configurations."""
    if stored != period or size > period:
        raise ValueError(
            f"{name} state is for period {stored} with {size} values, this indicator has period {period}: "
            "the stored strategy was built from a differently shaped configuration"
        )


def _check_period(name: str, period: int) -> int:
    if not isinstance(period, int) or isinstance(period, bool) or period < 1:
        raise ValueError(f"{name} period must be an int >= 1, got {period!r}")
    return period


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SMA:
    """Simple moving average of the last ``period`` values."""

    __slots__ = ("_buf", "_peak", "_since", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period("SMA", period)
        self._buf: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._peak = 0.0
        self._since = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        buf = self._buf
        n = self.period
        if len(buf) == n:
            s = self._sum + x - buf[0]
        else:
            s = self._sum + x
        buf.append(x)
        self._since += 1
        a = abs(s)
        if a > self._peak:
            self._peak = a
        if self._since >= n or a < self._peak * _CANCEL_RATIO:
            s = math.fsum(buf)
            self._peak = abs(s)
            self._since = 0
        self._sum = s
        if len(buf) == n:
            self.value = s / n
        return self.value

    @property
    def ready(self) -> bool:
        return self.value is not None

    # ``dump``/``load``: the indicator's state as a small tuple of primitives,
    # for the Engine's per-candle snapshot (a pickle of the object costs ten
    # times more); running totals are kept exactly so a restore continues
    # bit for bit.
    def dump(self) -> tuple[Any, ...]:
        return (self.period, tuple(self._buf), self._sum, self._peak, self._since, self.value)

    def load(self, state: Sequence[Any]) -> None:
        period, values, self._sum, self._peak, self._since, self.value = state
        _check_shape(type(self).__name__, period, self.period, len(values))
        self._buf.clear()
        self._buf.extend(values)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class VolumeMean(SMA):
    """Mean volume of the last ``period`` candles (an SMA of volume, named for
    what the sweep filter compares against)."""

    __slots__ = ()


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class EMA:
    """Exponential moving average, seeded with the SMA of the first ``period``
    values (so its first value equals that SMA), then
    ``ema += alpha * (x - ema)`` with ``alpha = 2 / (period + 1)``."""

    __slots__ = ("_count", "_seed_sum", "alpha", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period("EMA", period)
        self.alpha = 2.0 / (period + 1)
        self._count = 0
        self._seed_sum = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        v = self.value
        if v is not None:
            v += self.alpha * (x - v)
            self.value = v
            return v
        self._count += 1
        self._seed_sum += x
        if self._count == self.period:
            self.value = self._seed_sum / self.period
        return self.value

    @property
    def ready(self) -> bool:
        return self.value is not None

    def dump(self) -> tuple[Any, ...]:
        return (self.period, self._count, self._seed_sum, self.value)

    def load(self, state: Sequence[Any]) -> None:
        period, self._count, self._seed_sum, self.value = state
        _check_shape("EMA", period, self.period, 0)


def true_range(high: float, low: float, prev_close: float | None) -> float:
    """Wilder's true range; without a previous close it is ``high - low``."""
    if prev_close is None:
        return high - low
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class ATR:
    """Average true range with Wilder smoothing.

    Seeding: the true range of the very first candle is ``high - low`` (there
    is no previous close); the ATR becomes ready after ``period`` true ranges,
    equal to their simple mean; after that
    ``atr = (atr * (period - 1) + tr) / period``.
    """

    __slots__ = ("_count", "_prev_close", "_seed_sum", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period("ATR", period)
        self._prev_close: float | None = None
        self._count = 0
        self._seed_sum = 0.0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        pc = self._prev_close
        tr = high - low
        if pc is not None:
            # Inline true_range: this runs once per candle on the hot path.
            up = high - pc if high > pc else pc - high
            dn = low - pc if low > pc else pc - low
            if up > tr:
                tr = up
            if dn > tr:
                tr = dn
        self._prev_close = close
        v = self.value
        if v is not None:
            n = self.period
            v = (v * (n - 1) + tr) / n
            self.value = v
            return v
        self._count += 1
        self._seed_sum += tr
        if self._count == self.period:
            self.value = self._seed_sum / self.period
        return self.value

    @property
    def ready(self) -> bool:
        return self.value is not None

    def dump(self) -> tuple[Any, ...]:
        return (self.period, self._prev_close, self._count, self._seed_sum, self.value)

    def load(self, state: Sequence[Any]) -> None:
        period, self._prev_close, self._count, self._seed_sum, self.value = state
        _check_shape("ATR", period, self.period, 0)


_VWAP_ATTRS = ("_nonzero", "_peak", "_pv", "_pvs", "_since", "_v", "_vs", "period", "value")  # its __slots__


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RollingVWAP:
    """Volume-weighted average of the typical price ``(h + l + c) / 3`` over the
    last ``period`` candles: ``sum(tp * v) / sum(v)``.

    Zero volume: a candle with zero volume carries no weight. While fewer than
    ``period`` candles were seen the VWAP is over the candles so far (it is
    usable from the first candle with volume). When every candle in the window
    has zero volume the VWAP is undefined and ``value`` is ``None``; callers
    must treat that as "no VWAP" (the sweep setup then falls back to an R
    multiple target).

    The window is two parallel deques of floats (``tp * v`` and ``v``) rather
    than one of pairs: as fast to update, and a snapshot copies them without
    building a tuple per candle.
    """

    __slots__ = ("_nonzero", "_peak", "_pv", "_pvs", "_since", "_v", "_vs", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period("VWAP", period)
        self._pvs: deque[float] = deque(maxlen=period)
        self._vs: deque[float] = deque(maxlen=period)
        self._pv = 0.0
        self._v = 0.0
        self._peak = 0.0
        self._since = 0
        self._nonzero = 0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float, volume: float) -> float | None:
        pvs, vs = self._pvs, self._vs
        pv = (high + low + close) / 3.0 * volume
        s_pv = self._pv + pv
        s_v = self._v + volume
        if volume > 0.0:
            self._nonzero += 1
        if len(vs) == self.period:
            old_v = vs[0]
            s_pv -= pvs[0]
            s_v -= old_v
            if old_v > 0.0:
                self._nonzero -= 1
        pvs.append(pv)
        vs.append(volume)
        if self._nonzero == 0:
            self._pv = self._v = self._peak = 0.0
            self._since = 0
            self.value = None
            return None
        self._since += 1
        if s_v > self._peak:
            self._peak = s_v
        if self._since >= self.period or s_v < self._peak * _CANCEL_RATIO:
            s_pv = math.fsum(pvs)
            s_v = math.fsum(vs)
            self._peak = s_v
            self._since = 0
        self._pv = s_pv
        self._v = s_v
        value = s_pv / s_v
        self.value = value
        return value

    @property
    def ready(self) -> bool:
        return self.value is not None

    def __getstate__(self) -> dict[str, Any]:
        """Pickling: the attributes by name (what ``__setstate__`` reads back)."""
        return {name: getattr(self, name) for name in _VWAP_ATTRS}

    def __setstate__(self, state: Any) -> None:
        """Unpickling, also of the earlier layout (one deque of ``(tp * v, v)``
        pairs in ``_buf``), so a state store written before the change still
        loads."""
        slots = dict(state[1] if isinstance(state, tuple) else state or {})
        pairs = slots.pop("_buf", None)
        for name, value in slots.items():
            setattr(self, name, value)
        if pairs is not None:
            self._pvs = deque((pv for pv, _ in pairs), maxlen=self.period)
            self._vs = deque((v for _, v in pairs), maxlen=self.period)

    def dump(self) -> tuple[Any, ...]:
        return (
            self.period, tuple(self._pvs), tuple(self._vs), self._pv, self._v, self._peak, self._since,
            self._nonzero, self.value,
        )  # fmt: skip

    def load(self, state: Sequence[Any]) -> None:
        period, pvs, vs, self._pv, self._v, self._peak, self._since, self._nonzero, self.value = state
        _check_shape("VWAP", period, self.period, len(vs))
        if len(pvs) != len(vs):
            raise ValueError(f"VWAP state has {len(pvs)} price*volume values for {len(vs)} volumes")
        for dq, values in ((self._pvs, pvs), (self._vs, vs)):
            dq.clear()
            dq.extend(values)


def candle_delta(high: float, low: float, close: float, volume: float) -> float:
    """Synthetic volume delta of one candle: the close's position in its range
    mapped to [-volume, +volume]; a zero-range candle has delta 0."""
    rng = high - low
    if rng <= 0.0:
        return 0.0
    return ((close - low) - (high - close)) / rng * volume


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class CVD:
    """Cumulative synthetic volume delta (sum of :func:`candle_delta`)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        rng = high - low
        if rng > 0.0:
            self.value += ((close - low) - (high - close)) / rng * volume
        return self.value

    def dump(self) -> float:
        return self.value

    def load(self, state: float) -> None:
        self.value = float(state)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RollingMax:
    """Maximum of the last ``period`` values with a monotonic deque: each value
    is pushed and popped at most once, so updates are amortised O(1)."""

    __slots__ = ("_dq", "_i", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period("RollingMax", period)
        self._dq: deque[tuple[int, float]] = deque()
        self._i = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        dq = self._dq
        i = self._i + 1
        self._i = i
        while dq and dq[-1][1] <= x:
            dq.pop()
        dq.append((i, x))
        first = dq[0]
        if first[0] <= i - self.period:
            dq.popleft()
            first = dq[0]
        if i >= self.period:
            v = first[1]
            self.value = v
            return v
        return None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def dump(self) -> tuple[Any, ...]:
        return (self.period, tuple(self._dq), self._i, self.value)

    def load(self, state: Sequence[Any]) -> None:
        period, pairs, self._i, self.value = state
        _check_shape("RollingMax", period, self.period, len(pairs))
        self._dq.clear()
        self._dq.extend((int(i), float(x)) for i, x in pairs)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RollingMin:
    """Minimum of the last ``period`` values (monotonic deque, amortised O(1))."""

    __slots__ = ("_dq", "_i", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period("RollingMin", period)
        self._dq: deque[tuple[int, float]] = deque()
        self._i = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        dq = self._dq
        i = self._i + 1
        self._i = i
        while dq and dq[-1][1] >= x:
            dq.pop()
        dq.append((i, x))
        first = dq[0]
        if first[0] <= i - self.period:
            dq.popleft()
            first = dq[0]
        if i >= self.period:
            v = first[1]
            self.value = v
            return v
        return None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def dump(self) -> tuple[Any, ...]:
        return (self.period, tuple(self._dq), self._i, self.value)

    def load(self, state: Sequence[Any]) -> None:
        period, pairs, self._i, self.value = state
        _check_shape("RollingMin", period, self.period, len(pairs))
        self._dq.clear()
        self._dq.extend((int(i), float(x)) for i, x in pairs)
