"""The unit of work of every sweep: one parameter set on one walk-forward fold.

The candles are cut into ``splits`` consecutive, non-overlapping folds; each
fold into a train window (the first ``train_frac``) and the test window right
after it. A parameter set is backtested on the train window and, separately,
on the test window with the train window fed first as warm-up only (the
indicators are primed, but no trade or equity of the train window leaks into
the test result). Both go through :func:`~laptop_agents.backtest.runner.run_backtest`,
that is through the live Engine, strategy and paper broker.

Besides the summary metrics of each window, a fold result carries the power
sums of its per-bar returns (:class:`Moments`), so that a study can pool the
returns of several windows exactly (a Sharpe ratio over all test windows
together, their skewness and kurtosis for the deflated Sharpe ratio) without
keeping the curves.

Workers load the data once per process (:func:`load_spec_data`), from a file
or from the seeded mock market, so a :class:`DataSpec` is all a worker on
another machine needs besides the same file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from laptop_agents.backtest.runner import BacktestResult, mock_candles, mock_funding, run_backtest
from laptop_agents.config import AppConfig
from laptop_agents.domain.errors import UsageError
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.domain.timeframes import interval_ms
from laptop_agents.report.metrics import periods_per_year


class GridError(UsageError):
    """A bad ``--grid`` string or fold layout (``--splits``, ``--train-frac``); one line."""


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[int, int]  # [start, end) candle indices
    test: tuple[int, int]


def make_folds(n: int, splits: int, train_frac: float) -> list[Fold]:
    """Consecutive folds over ``n`` candles; the last one takes the remainder."""
    if splits < 1:
        raise GridError(f"--splits must be >= 1, got {splits}")
    if not 0.0 < train_frac < 1.0:
        raise GridError(f"--train-frac must be between 0 and 1 (exclusive), got {train_frac}")
    size = n // splits
    folds = []
    for k in range(splits):
        start = k * size
        end = n if k == splits - 1 else start + size
        cut = start + int(round((end - start) * train_frac))
        if cut - start < 2 or end - cut < 2:
            raise GridError(
                f"{n} candles are too few for {splits} folds with train share {train_frac}: "
                "use fewer --splits or a longer file"
            )
        folds.append(Fold(k, (start, cut), (cut, end)))
    return folds


# -- data in the workers ---------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """Where a worker gets the candles: a file (loaded once per process) or the mock market."""

    file: str | None
    strict: bool = False
    interval: str | None = None
    time_column: str | None = None
    time_unit: str | None = None


@lru_cache(maxsize=2)
def load_spec_data(spec: DataSpec, config_json: str) -> tuple[list[Candle], list[FundingRate]]:
    """The candles of ``spec``, once per worker process (the cache key includes the config for the mock)."""
    if spec.file is not None:
        from laptop_agents.sources.candle_files import load_candles

        loaded = load_candles(spec.file, strict=spec.strict, interval=spec.interval,
                              time_column=spec.time_column, time_unit=spec.time_unit)
        return loaded.candles, loaded.funding
    config = AppConfig.model_validate_json(config_json)
    candles = mock_candles(config)
    return candles, mock_funding(config, candles)


def data_fingerprint(candles: Sequence[Candle]) -> str:
    """A digest of every candle's time and OHLCV: workers on several machines must
    score the very same data, and a study remembers which."""
    h = hashlib.sha256()
    ts = np.fromiter((c.ts for c in candles), dtype=np.int64, count=len(candles))
    h.update(ts.tobytes())
    for attr in ("open", "high", "low", "close", "volume"):
        h.update(np.fromiter((getattr(c, attr) for c in candles), dtype=np.float64, count=len(candles)).tobytes())
    return h.hexdigest()[:32]


def window_funding(funding: Sequence[FundingRate], candles: Sequence[Candle], start: int) -> list[FundingRate]:
    """Funding updates for a window: the rate in force at its start, then the later updates."""
    if not funding or not candles:
        return []
    t0 = candles[start].ts
    before = [f for f in funding if f.ts <= t0]
    after = [f for f in funding if f.ts > t0]
    return ([FundingRate(ts=t0, rate=before[-1].rate)] if before else []) + after


BRIEF = ("net_pnl", "return_pct", "trades", "win_rate_pct", "profit_factor", "max_drawdown_pct", "sharpe",
         "sortino", "fees_paid", "exposure_pct")


def brief(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics a sweep keeps per window."""
    return {k: metrics.get(k) for k in BRIEF}


# -- pooled per-bar returns -------------------------------------------------------


def bar_returns(starting_equity: float, equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Simple per-bar returns of an equity curve, the first against the starting
    equity: the very returns :func:`~laptop_agents.report.metrics.compute_metrics` uses."""
    eq = np.asarray(equity, dtype=float)
    if eq.size == 0:
        return np.zeros(0)
    prev = np.concatenate(([starting_equity], eq[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev != 0, eq / prev - 1.0, 0.0)


@dataclass(frozen=True)
class Moments:
    """Power sums of per-bar returns. Sums add, so the moments of several windows
    together are exact without their curves."""

    n: int = 0
    s1: float = 0.0
    s2: float = 0.0
    s3: float = 0.0
    s4: float = 0.0
    down2: float = 0.0  # sum of min(r, 0)^2 (Sortino's downside deviation)

    @classmethod
    def of(cls, r: np.ndarray) -> Moments:
        r = np.asarray(r, dtype=float)
        r2 = r * r
        return cls(int(r.size), float(r.sum()), float(r2.sum()), float((r2 * r).sum()), float((r2 * r2).sum()),
                   float(np.square(np.minimum(r, 0.0)).sum()))

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.s1 + other.s1, self.s2 + other.s2, self.s3 + other.s3,
                       self.s4 + other.s4, self.down2 + other.down2)

    @property
    def mean(self) -> float:
        return self.s1 / self.n if self.n else 0.0

    def _central(self) -> tuple[float, float, float]:
        """Population central moments m2, m3, m4."""
        if not self.n:
            return 0.0, 0.0, 0.0
        n, mu = self.n, self.mean
        e2, e3, e4 = self.s2 / n, self.s3 / n, self.s4 / n
        m2 = max(e2 - mu * mu, 0.0)
        m3 = e3 - 3 * mu * e2 + 2 * mu ** 3
        m4 = e4 - 4 * mu * e3 + 6 * mu * mu * e2 - 3 * mu ** 4
        return m2, m3, max(m4, 0.0)

    @property
    def sd(self) -> float:
        """Sample standard deviation (ddof 1), as the run metrics use."""
        if self.n < 2:
            return 0.0
        m2, _, _ = self._central()
        return math.sqrt(m2 * self.n / (self.n - 1))

    @property
    def skew(self) -> float:
        m2, m3, _ = self._central()
        return m3 / m2 ** 1.5 if m2 > 1e-30 else 0.0

    @property
    def kurtosis(self) -> float:
        """Non-excess kurtosis (3 for a normal distribution)."""
        m2, _, m4 = self._central()
        return m4 / (m2 * m2) if m2 > 1e-30 else 3.0

    def sharpe(self, scale: float = 1.0) -> float | None:
        """mean / sd times ``scale`` (sqrt of bars per year to annualise); None for a flat curve."""
        sd = self.sd
        return None if self.n < 2 or sd <= 1e-15 else self.mean / sd * scale

    def sortino(self, scale: float = 1.0) -> float | None:
        down = math.sqrt(self.down2 / self.n) if self.n else 0.0
        return None if self.n < 2 or down <= 1e-15 else self.mean / down * scale

    def to_list(self) -> list[float]:
        return [self.n, self.s1, self.s2, self.s3, self.s4, self.down2]

    @classmethod
    def from_list(cls, v: Sequence[float]) -> Moments:
        return cls(int(v[0]), float(v[1]), float(v[2]), float(v[3]), float(v[4]), float(v[5]))


def block_sums(returns: np.ndarray, offset: int, edges: Sequence[int]) -> list[list[float]]:
    """Per-block ``[n, sum r, sum r^2]`` of ``returns``, which sit at positions
    ``offset ...`` of a series cut into blocks at ``edges`` (``edges[0] = 0``,
    ``edges[-1]`` = the series' length): the data the probability of backtest
    overfitting needs, a few numbers per block instead of the curve."""
    out = [[0, 0.0, 0.0] for _ in range(len(edges) - 1)]
    end = offset + int(returns.size)
    for b in range(len(edges) - 1):
        lo, hi = max(edges[b], offset), min(edges[b + 1], end)
        if hi > lo:
            part = returns[lo - offset:hi - offset]
            out[b] = [int(part.size), float(part.sum()), float((part * part).sum())]
    return out


# -- one parameter set on one fold --------------------------------------------------


@dataclass
class FoldRun:
    """What one parameter set did on one fold."""

    fold: Fold
    train: dict[str, Any]
    test: dict[str, Any]
    train_moments: Moments
    test_moments: Moments
    test_returns: np.ndarray
    train_range: list[int]
    test_range: list[int]
    train_result: BacktestResult | None = None  # kept only when asked for (the study report's curves)
    test_result: BacktestResult | None = None


class WalkForward:
    """Candles, funding and folds of one study, ready to score parameter sets.

    Deterministic: the same overrides on the same fold give the same numbers,
    in any process, on any machine (the Engine reads no clock and draws no
    unseeded randomness)."""

    def __init__(self, config: AppConfig, candles: Sequence[Candle], funding: Sequence[FundingRate],
                 folds: Sequence[Fold], constant_funding: float | None = None) -> None:
        self.config = config
        self.candles = candles
        self.funding = funding
        self.folds = list(folds)
        self.constant_funding = constant_funding
        self.scale = math.sqrt(periods_per_year(interval_ms(config.trading.interval)))
        self.test_bars = [f.test[1] - f.test[0] for f in self.folds]
        self.test_offsets = [sum(self.test_bars[:k]) for k in range(len(self.folds))]

    def run_fold(self, fold: Fold, overrides: Mapping[str, Any], *, keep: bool = False) -> FoldRun:
        candles = self.candles
        a, b = fold.train
        c, d = fold.test
        fund = window_funding(self.funding, candles, a)
        train = run_backtest(self.config, candles[a:b], funding=fund, constant_funding=self.constant_funding,
                             overrides=overrides, progress=False)
        test = run_backtest(self.config, candles[a:d], funding=fund, constant_funding=self.constant_funding,
                            overrides=overrides, warmup=c - a, progress=False)
        train_r = bar_returns(train.starting_equity, train.equity)
        test_r = bar_returns(test.starting_equity, test.equity)
        return FoldRun(
            fold=fold, train=brief(train.metrics), test=brief(test.metrics),
            train_moments=Moments.of(train_r), test_moments=Moments.of(test_r), test_returns=test_r,
            train_range=[candles[a].ts, candles[b - 1].ts], test_range=[candles[c].ts, candles[d - 1].ts],
            train_result=train if keep else None, test_result=test if keep else None,
        )
