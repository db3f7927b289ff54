"""A seeded BTC price process: realistic 1-minute-style candles with volatility
clustering, occasional gaps and spikes, and a deterministic intrabar path.

Shared by the mock market source and the fake Bitunix exchange so that both
speak about the same market. Candle ``i`` depends only on the seed, ``i`` and
the state at the end of candle ``i - 1``; the process keeps a bounded cache of
recent candles plus sparse checkpoints, so memory does not grow with run length
while any past candle can still be regenerated (REST history, backfill).
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass

from laptop_agents.domain.models import Candle, Tick

_CHECKPOINT_EVERY = 512
_CACHE_SIZE = 2048


@dataclass(frozen=True, slots=True)
class _State:
    close: float
    var: float  # GARCH variance of a one-candle log return


@dataclass(frozen=True, slots=True)
class _Bar:
    candle: Candle
    path: tuple[float, ...]  # intrabar prices at each substep end
    end: _State


class SyntheticMarket:
    """Deterministic candles from ``origin_ts`` on, one every ``interval_ms``.

    ``base_vol`` is the long-run standard deviation of one candle's log return
    (0.0009 ≈ 9 bps, typical for BTC 1-minute bars).
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
    ) -> None:
        if interval_ms <= 0 or substeps <= 0 or start_price <= 0:
            raise ValueError("interval_ms, substeps and start_price must be positive")
        self.seed = seed
        self.origin_ts = origin_ts - origin_ts % interval_ms
        self.interval_ms = interval_ms
        self.substeps = substeps
        self.tick_size = tick_size
        self._base_var = base_vol * base_vol
        # GARCH(1,1): var = w + a r^2 + b var, long-run variance base_var.
        self._a, self._b = 0.08, 0.90
        self._w = self._base_var * (1.0 - self._a - self._b)
        self._checkpoints: dict[int, _State] = {0: _State(start_price, self._base_var)}
        self._cache: OrderedDict[int, _Bar] = OrderedDict()

    # -- indexing -----------------------------------------------------------
    def index_at(self, ts: int) -> int:
        """Index of the candle whose open interval contains ``ts``."""
        return (ts - self.origin_ts) // self.interval_ms

    def open_ts(self, index: int) -> int:
        return self.origin_ts + index * self.interval_ms

    # -- generation ---------------------------------------------------------
    def _rng(self, index: int) -> random.Random:
        return random.Random((self.seed * 1_000_003) ^ (index * 2_654_435_761))

    def _generate(self, index: int, start: _State) -> _Bar:
        rng = self._rng(index)
        var = start.var
        sd = math.sqrt(var)
        price = start.close
        # Occasional gap between the previous close and this open.
        if rng.random() < 0.002:
            price *= math.exp(rng.gauss(0.0, 4.0 * sd))
        open_ = price
        step_sd = sd / math.sqrt(self.substeps)
        spike_at = rng.randrange(self.substeps) if rng.random() < 0.003 else -1
        path: list[float] = []
        high = low = open_
        for k in range(self.substeps):
            ret = rng.gauss(0.0, step_sd)
            if k == spike_at:
                ret += rng.choice((-1.0, 1.0)) * rng.uniform(4.0, 12.0) * sd
            price *= math.exp(ret)
            path.append(price)
            high = max(high, price)
            low = min(low, price)
        # Wicks beyond the sampled path, as real bars have.
        high *= 1.0 + abs(rng.gauss(0.0, 0.25 * sd))
        low *= 1.0 - abs(rng.gauss(0.0, 0.25 * sd))
        close = path[-1]
        r = math.log(close / start.close)
        new_var = self._w + self._a * r * r + self._b * var
        new_var = min(max(new_var, 0.04 * self._base_var), 100.0 * self._base_var)
        move = abs(r) / max(sd, 1e-12)
        volume = rng.lognormvariate(math.log(12.0), 0.6) * (1.0 + 0.8 * move)
        q = self._round
        candle = Candle(
            ts=self.open_ts(index),
            open=q(open_),
            high=q(max(high, open_, close)),
            low=q(min(low, open_, close)),
            close=q(close),
            volume=round(volume, 4),
        )
        return _Bar(candle, tuple(path), _State(close, new_var))

    def _round(self, price: float) -> float:
        return round(round(price / self.tick_size) * self.tick_size, 10)

    def _bar(self, index: int) -> _Bar:
        if index < 0:
            raise ValueError(f"candle index {index} is before the origin of the synthetic market")
        bar = self._cache.get(index)
        if bar is not None:
            self._cache.move_to_end(index)
            return bar
        # Start from the nearest checkpoint (or cached predecessor) at or before index.
        prev = self._cache.get(index - 1)
        if prev is not None:
            start_index, state = index, prev.end
        else:
            cp = max(i for i in self._checkpoints if i <= index)
            start_index, state = cp, self._checkpoints[cp]
        for i in range(start_index, index + 1):
            bar = self._cache.get(i)
            if bar is None:
                bar = self._generate(i, state)
                self._cache[i] = bar
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
            state = bar.end
            if (i + 1) % _CHECKPOINT_EVERY == 0:
                self._checkpoints.setdefault(i + 1, state)
        assert bar is not None
        return bar

    # -- public -------------------------------------------------------------
    def candle(self, index: int) -> Candle:
        """The closed candle number ``index`` (0 opens at ``origin_ts``)."""
        return self._bar(index).candle

    def candles(self, start_index: int, count: int) -> list[Candle]:
        return [self.candle(i) for i in range(start_index, start_index + count)]

    def partial(self, index: int, elapsed_ms: int) -> Candle:
        """The forming candle ``index`` as seen ``elapsed_ms`` after its open."""
        bar = self._bar(index)
        if elapsed_ms >= self.interval_ms:
            return bar.candle
        steps = max(1, min(self.substeps, int(elapsed_ms * self.substeps // self.interval_ms) + 1))
        seen = bar.path[:steps]
        c = bar.candle
        q = self._round
        last = q(seen[-1])
        high = max(c.open, last, q(max(seen)))
        low = min(c.open, last, q(min(seen)))
        return Candle(c.ts, c.open, high, low, last, round(c.volume * steps / self.substeps, 4))

    def tick(self, ts: int) -> Tick:
        """Best bid/ask at ``ts``: one tick of spread around the forming close."""
        index = self.index_at(ts)
        mid = self.partial(index, ts - self.open_ts(index)).close
        return Tick(ts=ts, bid=self._round(mid - self.tick_size / 2), ask=self._round(mid + self.tick_size / 2), last=mid)

    def funding_rate(self, ts: int) -> float:
        """A slowly varying funding rate (fraction per 8 h), deterministic in ``ts``."""
        period = ts // (8 * 3_600_000)
        rng = random.Random(self.seed * 7919 + period)
        return round(rng.gauss(0.0001, 0.00015), 6)
