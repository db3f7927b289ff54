"""A seeded BTC price process: realistic 1-minute-style candles with volatility
clustering, occasional gaps and spikes, and a deterministic intrabar path.

Shared by the mock market source, the fake Bitunix exchange and mock
backtests so that all of them speak about the same market.

**The price at any time is a pure function of the seed and the candle's time**
(its place on the grid ``(ts - epoch_ts) // interval``, ``epoch_ts`` the Unix
epoch unless a caller asks otherwise), never of where a market object starts. Two markets with the same seed agree on every candle they
share, so a mock session restarted at any time -- the next UTC day included --
continues the very series it left. (The series used to be a chain started at
the UTC day of the session's start: a restart after midnight re-anchored it
and the price jumped by up to ~10 % between two consecutive candles.)

Two layers make that cheap:

- **Anchors.** The log price at the start of every block of :data:`BLOCK`
  bars is ``log(start_price)`` plus a multi-scale value noise of the block
  number (:data:`OCTAVES` scales, amplitude growing as sqrt(scale)): it moves
  like a random walk from block to block up to ~2^OCTAVES blocks and stays
  bounded beyond, so the price keeps a BTC-like level over years; each anchor
  costs O(OCTAVES), whatever the date.
- **Bars.** Inside a block, a GARCH(1,1) volatility process drives twelve
  intrabar steps per bar with rare gaps, spikes and wicks, all drawn at once
  (numpy) from a generator seeded by ``(seed, block)``; a tiny linear drift (a
  discrete Brownian bridge, ~0.4 bp per bar) makes the block end exactly at
  the next anchor. The volatility at a block's start is the GARCH recursion
  over the previous block's shocks from the long-run level, so clustering
  carries over block boundaries too.

A few recent blocks are cached: memory is bounded and any candle, past or
future, costs at most two block generations.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from laptop_agents.domain.fast import fast_init
from laptop_agents.domain.models import Candle, Tick

BLOCK = 1024  # bars per block (about 17 hours of 1-minute bars)
OCTAVES = 10  # anchor noise scales: 1 .. 512 blocks
_CACHE_BLOCKS = 4
_MASK64 = (1 << 64) - 1
_GAP_P = 0.002  # chance of a gap between a close and the next open
_SPIKE_P = 0.003  # chance of a spike inside a bar
_GARCH_A, _GARCH_B = 0.08, 0.90

_new_candle = fast_init(Candle)  # validated: the rounding below must keep low <= open/close <= high


@dataclass(frozen=True, slots=True)
class _Shocks:
    """A block's random draws, in units of each bar's volatility."""

    unit: list[float]  # a bar's whole log return: gap + intrabar steps + spike
    gap: np.ndarray  # (BLOCK,) the jump before the bar's open
    steps: np.ndarray  # (BLOCK, substeps) the intrabar steps (spike included)
    wick_hi: np.ndarray  # (BLOCK,) wicks beyond the path, as a fraction of the volatility
    wick_lo: np.ndarray
    volume: np.ndarray  # (BLOCK,) volume before its dependence on the bar's move


@dataclass(frozen=True, slots=True)
class _Block:
    candles: list[Candle]
    path: np.ndarray  # (BLOCK, substeps) unrounded intrabar prices at each step's end


class SyntheticMarket:
    """Deterministic candles, one every ``interval_ms``; index 0 opens at ``origin_ts``.

    ``origin_ts`` only numbers the candles (it is floored to the interval):
    the prices depend on the seed and the time alone, counted from
    ``epoch_ts`` (default: the Unix epoch, so every market of a seed agrees;
    the fake exchange counts from its own start instead, so its market is
    the same relative to its start whenever a test runs). ``start_price`` is the
    level the price wanders around; ``base_vol`` is the long-run standard
    deviation of one candle's log return (0.0009 ≈ 9 bps, typical for BTC
    1-minute bars).
    """

    def __init__(
        self,
        seed: int,
        origin_ts: int,
        interval_ms: int = 60_000,
        *,
        start_price: float = 60_000.0,
        base_vol: float = 0.0009,
        substeps: int = 12,
        tick_size: float = 0.1,
        epoch_ts: int = 0,
    ) -> None:
        if interval_ms <= 0 or substeps <= 0 or start_price <= 0:
            raise ValueError("interval_ms, substeps and start_price must be positive")
        self.seed = seed
        self.origin_ts = origin_ts - origin_ts % interval_ms
        self.interval_ms = interval_ms
        self.substeps = substeps
        self.tick_size = tick_size
        self._epoch = epoch_ts - epoch_ts % interval_ms
        self._grid0 = (self.origin_ts - self._epoch) // interval_ms  # grid number of index 0
        self._base_var = base_vol * base_vol
        # GARCH(1,1): var = w + a r^2 + b var, long-run variance base_var.
        self._w = self._base_var * (1.0 - _GARCH_A - _GARCH_B)
        self._log_start = math.log(start_price)
        # Octave o has amplitude amp * sqrt(2^o); one block's step then has a
        # variance of about 4 amp^2, which we match to BLOCK bars of base_vol.
        self._amp = base_vol * math.sqrt(BLOCK) / 2.0
        # Time (in steps) of each point of a block's log path: a bar's open
        # (after its gap) and the end of each of its steps.
        s = substeps
        bars = np.arange(BLOCK, dtype=float)[:, None] * s
        self._t = np.concatenate((bars, bars + np.arange(1, s + 1, dtype=float)), axis=1)
        self._blocks: OrderedDict[int, _Block] = OrderedDict()
        self._shocks_cache: OrderedDict[int, _Shocks] = OrderedDict()
        self._anchors: dict[int, float] = {}

    # -- indexing -----------------------------------------------------------
    def index_at(self, ts: int) -> int:
        """Index of the candle whose open interval contains ``ts``."""
        return (ts - self.origin_ts) // self.interval_ms

    def open_ts(self, index: int) -> int:
        return self.origin_ts + index * self.interval_ms

    # -- anchors ------------------------------------------------------------
    def _node(self, octave: int, j: int) -> float:
        # A string seed is hashed with SHA-512 by random.Random: stable across
        # processes and Python versions (unlike hash()).
        return random.Random(f"synthetic-anchor:{self.seed}:{octave}:{j}").gauss(0.0, 1.0)

    def _anchor(self, block: int) -> float:
        """Log price at the start of ``block``: a pure function of seed and block."""
        got = self._anchors.get(block)
        if got is not None:
            return got
        level = self._log_start
        for o in range(OCTAVES):
            span = 1 << o
            j, rem = divmod(block, span)
            n0, n1 = self._node(o, j), self._node(o, j + 1)
            level += self._amp * math.sqrt(span) * (n0 + (n1 - n0) * (rem / span))
        if len(self._anchors) > 64:
            self._anchors.clear()
        self._anchors[block] = level
        return level

    # -- generation ---------------------------------------------------------
    def _shocks(self, block: int) -> _Shocks:
        got = self._shocks_cache.get(block)
        if got is not None:
            return got
        rng = np.random.default_rng([self.seed & _MASK64, block & _MASK64])
        n, s = BLOCK, self.substeps
        # Every array is always drawn in full and in this order: the draws of
        # one bar never depend on another bar's outcome.
        steps = rng.standard_normal((n, s)) / math.sqrt(s)
        gap = np.where(rng.random(n) < _GAP_P, 4.0 * rng.standard_normal(n), 0.0)
        spike_on = rng.random(n) < _SPIKE_P
        spike_at = rng.integers(0, s, n)
        spike = np.where(spike_on, (2 * rng.integers(0, 2, n) - 1) * rng.uniform(4.0, 12.0, n), 0.0)
        steps[np.arange(n), spike_at] += spike
        wick_hi = 0.25 * np.abs(rng.standard_normal(n))
        wick_lo = 0.25 * np.abs(rng.standard_normal(n))
        volume = np.exp(math.log(12.0) + 0.6 * rng.standard_normal(n))
        unit = (gap + steps.sum(axis=1)).tolist()
        shocks = _Shocks(unit, gap, steps, wick_hi, wick_lo, volume)
        self._shocks_cache[block] = shocks
        if len(self._shocks_cache) > 2:
            self._shocks_cache.popitem(last=False)
        return shocks

    def _garch(self, unit: list[float], var: float) -> tuple[list[float], float]:
        """Each bar's volatility (sd) along a block, and the variance after it."""
        w, a, b = self._w, _GARCH_A, _GARCH_B
        lo, hi = 0.04 * self._base_var, 100.0 * self._base_var
        sqrt = math.sqrt
        sds: list[float] = []
        for u in unit:
            sd = sqrt(var)
            sds.append(sd)
            r = sd * u
            var = min(max(w + a * r * r + b * var, lo), hi)
        return sds, var

    def _block(self, block: int) -> _Block:
        got = self._blocks.get(block)
        if got is not None:
            self._blocks.move_to_end(block)
            return got
        _, var0 = self._garch(self._shocks(block - 1).unit, self._base_var)
        sh = self._shocks(block)
        sds, _ = self._garch(sh.unit, var0)
        sd = np.asarray(sds)
        start, end = self._anchor(block), self._anchor(block + 1)
        moves = np.concatenate(((sh.gap * sd)[:, None], sh.steps * sd[:, None]), axis=1)
        log_path = np.cumsum(moves.ravel()).reshape(moves.shape)
        drift = (log_path[-1, -1] - (end - start)) / (BLOCK * self.substeps)
        prices = np.exp(start + log_path - drift * self._t)
        open_, path = prices[:, 0], prices[:, 1:]
        close = path[:, -1]
        high = np.maximum(path.max(axis=1), open_) * (1.0 + sh.wick_hi * sd)
        low = np.minimum(path.min(axis=1), open_) * (1.0 - sh.wick_lo * sd)
        volume = np.round(sh.volume * (1.0 + 0.8 * np.abs(np.asarray(sh.unit))), 4)
        q_open, q_close = self._round(open_), self._round(close)
        q_high = np.maximum(np.maximum(self._round(high), q_open), q_close)
        q_low = np.minimum(np.minimum(self._round(low), q_open), q_close)
        step = self.interval_ms
        first = self._epoch + block * BLOCK * step
        candles = [
            _new_candle(first + i * step, o, h, lo_, c, v)
            for i, (o, h, lo_, c, v) in enumerate(
                zip(
                    q_open.tolist(), q_high.tolist(), q_low.tolist(), q_close.tolist(), volume.tolist(),
                    strict=True,
                )
            )
        ]  # fmt: skip
        got = _Block(candles, path)
        self._blocks[block] = got
        if len(self._blocks) > _CACHE_BLOCKS:
            self._blocks.popitem(last=False)
        return got

    def _round(self, prices: np.ndarray) -> np.ndarray:
        return np.round(np.round(prices / self.tick_size) * self.tick_size, 10)

    def _round_one(self, price: float) -> float:
        return round(round(price / self.tick_size) * self.tick_size, 10)

    def _locate(self, index: int) -> tuple[_Block, int]:
        if index < 0:
            raise ValueError(f"candle index {index} is before the origin of the synthetic market")
        block, offset = divmod(self._grid0 + index, BLOCK)
        return self._block(block), offset

    # -- public -------------------------------------------------------------
    def candle(self, index: int) -> Candle:
        """The closed candle number ``index`` (0 opens at ``origin_ts``)."""
        block, offset = self._locate(index)
        return block.candles[offset]

    def candles(self, start_index: int, count: int) -> list[Candle]:
        out: list[Candle] = []
        index, end = start_index, start_index + count
        while index < end:
            block, offset = self._locate(index)
            take = min(BLOCK - offset, end - index)
            out.extend(block.candles[offset : offset + take])
            index += take
        return out

    def partial(self, index: int, elapsed_ms: int) -> Candle:
        """The forming candle ``index`` as seen ``elapsed_ms`` after its open."""
        block, offset = self._locate(index)
        c = block.candles[offset]
        if elapsed_ms >= self.interval_ms:
            return c
        steps = max(1, min(self.substeps, int(elapsed_ms * self.substeps // self.interval_ms) + 1))
        seen = self._round(block.path[offset, :steps]).tolist()
        last = seen[-1]
        high = max(c.open, last, max(seen))
        low = min(c.open, last, min(seen))
        return Candle(c.ts, c.open, high, low, last, round(c.volume * steps / self.substeps, 4))

    def tick(self, ts: int) -> Tick:
        """Best bid/ask at ``ts``: a one-tick spread on the price grid, the bid
        at the forming close (half a tick either side of it would fall between
        grid prices and round to the same one)."""
        index = self.index_at(ts)
        last = self.partial(index, ts - self.open_ts(index)).close
        return Tick(ts=ts, bid=last, ask=self._round_one(last + self.tick_size), last=last)

    def funding_rate(self, ts: int) -> float:
        """A slowly varying funding rate (fraction per 8 h), deterministic in ``ts``."""
        period = ts // (8 * 3_600_000)
        rng = random.Random(self.seed * 7919 + period)
        return round(rng.gauss(0.0001, 0.00015), 6)
