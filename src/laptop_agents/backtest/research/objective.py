"""The walk-forward objective: what a trial's parameters score.

A trial backtests its parameters on every fold (:mod:`.walkforward`), in
order, and scores the **test** windows together: the out-of-sample metric of
``--metric`` over the pooled per-bar returns of all test windows so far
(``sharpe`` and ``sortino`` annualised like the run metrics; ``return_pct``
compounded over the test windows; ``net_pnl`` summed). The same metric over
the train windows is kept beside it (the in-sample value of the overfitting
check). A ratio that is undefined (no trade: a flat curve) counts as 0.

Constraints, kept as Optuna constraints so samplers and the best trial
respect them: at least ``min_trades`` trades over the test windows, and no
test window deeper than ``max_drawdown_pct`` (percent of the window's peak).

Pruning, fold by fold: after each fold the trial reports its running
out-of-sample value; a median pruner stops a trial that is behind the
others at the same fold, and a test window over the drawdown limit stops the
trial at once (it can no longer be feasible). A parameter combination the
strategy's model refuses (``ema_fast >= ema_slow``) is pruned before any
backtest.

Everything a worker needs is the picklable :class:`ObjectiveSpec`; the
trial's results go to its user attributes as plain JSON, so any process on
any machine can read them back (the leaderboard, ``validate``'s picks, the
deflated Sharpe ratio and the probability of backtest overfitting).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from pydantic import BaseModel

from laptop_agents.backtest.research.space import Space
from laptop_agents.backtest.research.walkforward import (
    DataSpec,
    FoldRun,
    Moments,
    WalkForward,
    block_sums,
    load_spec_data,
    make_folds,
)
from laptop_agents.config import AppConfig
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.strategy import StrategyConfigError, load_strategy_params
from laptop_agents.strategy.params import apply_overrides

METRICS: dict[str, str] = {
    "sharpe": "annualised Sharpe ratio of the pooled per-bar returns of the test windows (default)",
    "sortino": "annualised Sortino ratio of the pooled per-bar returns of the test windows",
    "return_pct": "return of the test windows compounded, percent",
    "net_pnl": "net PnL summed over the test windows",
}
PBO_BLOCKS = 16  # blocks of the pooled test bars for the probability of backtest overfitting


@dataclass(frozen=True)
class ObjectiveSpec:
    """Everything a worker process needs to score parameters (picklable, no open resources)."""

    config_json: str
    data: DataSpec
    splits: int
    train_frac: float
    space: Space
    constant_funding: float | None = None
    metric: str = "sharpe"
    min_trades: int = 0
    max_drawdown_pct: float | None = None
    prune: bool = True

    def config(self) -> AppConfig:
        return AppConfig.model_validate_json(self.config_json)


def metric_value(metric: str, briefs: Sequence[dict[str, Any]], moments: Moments, scale: float) -> float:
    """The metric over several windows together (see the module docstring)."""
    if metric == "sharpe":
        return moments.sharpe(scale) or 0.0
    if metric == "sortino":
        return moments.sortino(scale) or 0.0
    if metric == "return_pct":
        growth = 1.0
        for b in briefs:
            growth *= 1.0 + float(b.get("return_pct") or 0.0) / 100.0
        return (growth - 1.0) * 100.0
    if metric == "net_pnl":
        return sum(float(b.get("net_pnl") or 0.0) for b in briefs)
    raise ValueError(f"unknown metric {metric!r}")


@dataclass
class Evaluation:
    """A parameter set over the folds it got through."""

    runs: list[FoldRun]
    value: float  # out of sample
    train_value: float
    trades: int
    worst_drawdown_pct: float
    feasible: bool
    stopped: str | None = None  # why the folds stopped early (pruned), else None


class Objective:
    """The objective a worker runs for each trial (data loaded once per process)."""

    def __init__(self, spec: ObjectiveSpec, data: tuple[Sequence[Candle], Sequence[FundingRate]] | None = None
                 ) -> None:
        self.spec = spec
        config = spec.config()
        self.base_params = load_strategy_params(config.strategy, config.trading.symbol)
        candles, funding = data if data is not None else load_spec_data(spec.data, spec.config_json)
        self.walk = WalkForward(config, candles, funding, make_folds(len(candles), spec.splits, spec.train_frac),
                                spec.constant_funding)
        total = sum(self.walk.test_bars)
        self.block_edges = [round(total * k / PBO_BLOCKS) for k in range(PBO_BLOCKS + 1)]

    def evaluate(self, overrides: dict[str, Any], *, keep: bool = False,
                 after_fold: Callable[[int, float, FoldRun], str | None] | None = None) -> Evaluation:
        """Run the folds in order; ``after_fold(k, running value, run)`` may stop them (returns why)."""
        spec = self.spec
        runs: list[FoldRun] = []
        stopped = None
        for fold in self.walk.folds:
            run = self.walk.run_fold(fold, overrides, keep=keep)
            runs.append(run)
            dd = float(run.test.get("max_drawdown_pct") or 0.0)
            if spec.max_drawdown_pct is not None and dd > spec.max_drawdown_pct:
                stopped = (f"test window of fold {fold.index} fell {dd:.2f} % from its peak "
                           f"(limit {spec.max_drawdown_pct:g} %)")
                break
            if after_fold is not None:
                stopped = after_fold(fold.index, self._value(runs), run)
                if stopped:
                    break
        train_m = sum((r.train_moments for r in runs), Moments())
        trades = sum(int(r.test.get("trades") or 0) for r in runs)
        worst = max((float(r.test.get("max_drawdown_pct") or 0.0) for r in runs), default=0.0)
        feasible = trades >= spec.min_trades and (spec.max_drawdown_pct is None or worst <= spec.max_drawdown_pct)
        return Evaluation(
            runs=runs, value=self._value(runs),
            train_value=metric_value(spec.metric, [r.train for r in runs], train_m, self.walk.scale),
            trades=trades, worst_drawdown_pct=worst, feasible=feasible, stopped=stopped,
        )

    def _value(self, runs: Sequence[FoldRun]) -> float:
        test_m = sum((r.test_moments for r in runs), Moments())
        return metric_value(self.spec.metric, [r.test for r in runs], test_m, self.walk.scale)

    def attrs(self, ev: Evaluation) -> dict[str, Any]:
        """The trial's results as plain JSON user attributes."""
        test_m = sum((r.test_moments for r in ev.runs), Moments())
        blocks = [[0, 0.0, 0.0] for _ in range(PBO_BLOCKS)]
        for k, r in enumerate(ev.runs):
            for b, (n, s1, s2) in enumerate(block_sums(r.test_returns, self.walk.test_offsets[k], self.block_edges)):
                blocks[b] = [blocks[b][0] + n, blocks[b][1] + s1, blocks[b][2] + s2]
        return {
            "folds": [{"fold": r.fold.index, "train": _finite(r.train), "test": _finite(r.test),
                       "train_range": r.train_range, "test_range": r.test_range} for r in ev.runs],
            "train_value": _num(ev.train_value),
            "trades": ev.trades,
            "worst_drawdown_pct": _num(ev.worst_drawdown_pct),
            "feasible": ev.feasible,
            "oos_moments": test_m.to_list(),
            "blocks": blocks,
        }

    def __call__(self, trial: optuna.Trial) -> float:
        spec = self.spec
        overrides = spec.space.suggest(trial)
        problem = invalid_params(self.base_params, overrides)
        if problem is not None:
            trial.set_user_attr("invalid", problem)
            trial.set_constraint("valid", 1.0)
            raise optuna.TrialPruned(f"parameters refused by the strategy: {problem}")

        def after_fold(k: int, value: float, run: FoldRun) -> str | None:
            if not spec.prune:
                return None
            trial.report(value, k)
            return f"behind the other trials after fold {k}" if trial.should_prune() else None

        ev = self.evaluate(overrides, after_fold=after_fold)
        for key, value in self.attrs(ev).items():
            trial.set_user_attr(key, value)
        trial.set_constraint("min_trades", float(spec.min_trades - ev.trades) if ev.stopped is None else 0.0)
        limit = spec.max_drawdown_pct
        trial.set_constraint("max_drawdown", ev.worst_drawdown_pct - limit if limit is not None else 0.0)
        if ev.stopped is not None:
            trial.set_user_attr("pruned", ev.stopped)
            raise optuna.TrialPruned(ev.stopped)
        return ev.value


def invalid_params(params: BaseModel, overrides: dict[str, Any]) -> str | None:
    """Why the strategy's model refuses these overrides (a cross-field rule), or None."""
    try:
        apply_overrides(params, overrides, "parameters")
    except StrategyConfigError as exc:
        return str(exc)
    return None


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
