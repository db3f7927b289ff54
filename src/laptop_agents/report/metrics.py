"""Performance metrics of a run, computed from its trades and its equity curve.

Pure functions of plain arrays: no I/O, no clock, so a backtest, a replay and a
report rebuilt later from the run's files give the same numbers for the same
inputs. Conventions (also shown in the report):

- ``net_pnl`` is mark-to-market: final equity minus starting equity, so a
  position still open at the end counts at its last close. ``realized_pnl`` is
  the sum of closed trades' net PnL (after fees and funding).
- Returns for Sharpe/Sortino are simple per-bar returns of the equity curve
  (the first one against the starting equity), annualised with
  sqrt(bars per year) where a year is 365 days: crypto trades around the clock.
  Sharpe uses the sample standard deviation; Sortino the downside deviation
  ``sqrt(mean(min(r, 0)^2))`` over all bars. Risk-free rate 0.
- Max drawdown (absolute) is the largest fall from a running peak, the peak
  including the starting equity; max drawdown % is the largest such fall
  relative to its peak. The two can come from different episodes.
- ``fees_paid`` / ``funding_paid`` are the account's totals at the end (the
  last equity row's): a live session restarted on the same workspace
  continues the account, so they include earlier runs' fees, like the equity.
  A session's equity curve may end with one row after its last candle: the
  account after the shutdown (a kill switch's flatten).
- Exposure is the share of bars that ended with an open position.
- A ratio with a zero denominator (profit factor without a losing trade,
  Sharpe of a flat curve) is ``None``, never infinity, so summaries stay JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

YEAR_MS = 365 * 86_400_000


def periods_per_year(interval_ms: int) -> float:
    """How many bars of this length fit in a (365-day) year."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    return YEAR_MS / interval_ms


def drawdowns(starting_equity: float, equity: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute and percent drawdown after each bar (both >= 0)."""
    eq = np.asarray(equity, dtype=float)
    if eq.size == 0:
        return np.zeros(0), np.zeros(0)
    peak = np.maximum.accumulate(np.concatenate(([starting_equity], eq)))[1:]
    dd = peak - eq
    with np.errstate(divide="ignore", invalid="ignore"):
        dd_pct = np.where(peak > 0, dd / peak * 100.0, 0.0)
    return dd, dd_pct


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 or not math.isfinite(den) else num / den


def compute_metrics(
    *,
    starting_equity: float,
    equity: Sequence[float] | np.ndarray,
    position_qty: Sequence[float] | np.ndarray,
    trade_net_pnl: Sequence[float] | np.ndarray,
    interval_ms: int,
    fees_paid: float = 0.0,
    funding_paid: float = 0.0,
) -> dict[str, Any]:
    """Every metric of the summary, from the per-bar equity/position and the
    closed trades' net PnL (see the module docstring for the definitions)."""
    eq = np.asarray(equity, dtype=float)
    pos = np.asarray(position_qty, dtype=float)
    pnl = np.asarray(trade_net_pnl, dtype=float)
    if eq.shape != pos.shape:
        raise ValueError("equity and position_qty must have one value per bar")
    final = float(eq[-1]) if eq.size else float(starting_equity)
    net = final - starting_equity

    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    gross_profit = float(wins.sum())
    gross_loss = float(-losses.sum())
    n_trades = int(pnl.size)

    dd, dd_pct = drawdowns(starting_equity, eq)
    bars = int(eq.size)
    sharpe = sortino = None
    if bars >= 2:
        prev = np.concatenate(([starting_equity], eq[:-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            rets = np.where(prev != 0, eq / prev - 1.0, 0.0)
        scale = math.sqrt(periods_per_year(interval_ms))
        mean = float(rets.mean())
        sd = float(rets.std(ddof=1))
        down = float(math.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
        sharpe = _ratio(mean, sd if sd > 1e-15 else 0.0)
        sortino = _ratio(mean, down if down > 1e-15 else 0.0)
        sharpe = None if sharpe is None else sharpe * scale
        sortino = None if sortino is None else sortino * scale

    return {
        "starting_equity": float(starting_equity),
        "final_equity": final,
        "net_pnl": net,
        "return_pct": _pct(net, starting_equity),
        "realized_pnl": float(pnl.sum()),
        "trades": n_trades,
        "wins": int(wins.size),
        "losses": int(losses.size),
        "win_rate_pct": None if n_trades == 0 else wins.size / n_trades * 100.0,
        "gross_profit": gross_profit,
        "gross_loss": gross_loss,
        "profit_factor": _ratio(gross_profit, gross_loss),
        "expectancy": None if n_trades == 0 else float(pnl.mean()),
        "avg_win": None if wins.size == 0 else float(wins.mean()),
        "avg_loss": None if losses.size == 0 else float(losses.mean()),
        "max_drawdown": float(dd.max()) if bars else 0.0,
        "max_drawdown_pct": float(dd_pct.max()) if bars else 0.0,
        "sharpe": sharpe,
        "sortino": sortino,
        "exposure_pct": float(np.count_nonzero(pos) / bars * 100.0) if bars else 0.0,
        "fees_paid": float(fees_paid),
        "funding_paid": float(funding_paid),
        "bars": bars,
    }


def _pct(num: float, den: float) -> float | None:
    return None if den == 0 else num / den * 100.0
