"""Metrics against values computed by hand (plain arithmetic, no numpy)."""

from __future__ import annotations

import math

import pytest

from laptop_agents.report.metrics import compute_metrics, drawdowns, periods_per_year


def test_hand_computed_small_run() -> None:
    start = 10_000.0
    equity = [10_100.0, 10_050.0, 10_200.0, 10_150.0]
    m = compute_metrics(
        starting_equity=start, equity=equity, position_qty=[0.0, 0.5, -0.2, 0.0],
        trade_net_pnl=[100.0, -50.0, 30.0, -20.0], interval_ms=3_600_000, fees_paid=12.5, funding_paid=-1.5,
    )
    assert m["net_pnl"] == pytest.approx(150.0)
    assert m["return_pct"] == pytest.approx(1.5)
    assert m["realized_pnl"] == pytest.approx(60.0)
    assert m["trades"] == 4 and m["wins"] == 2 and m["losses"] == 2
    assert m["win_rate_pct"] == pytest.approx(50.0)
    assert m["profit_factor"] == pytest.approx(130.0 / 70.0)
    assert m["expectancy"] == pytest.approx(15.0)
    assert m["avg_win"] == pytest.approx(65.0) and m["avg_loss"] == pytest.approx(-35.0)
    # Peaks 10100, 10100, 10200, 10200 -> falls 0, 50, 0, 50; 50/10100 is the deeper percentage.
    assert m["max_drawdown"] == pytest.approx(50.0)
    assert m["max_drawdown_pct"] == pytest.approx(50.0 / 10_100.0 * 100.0)
    assert m["exposure_pct"] == pytest.approx(50.0)
    assert m["fees_paid"] == 12.5 and m["funding_paid"] == -1.5

    rets = [10_100 / 10_000 - 1, 10_050 / 10_100 - 1, 10_200 / 10_050 - 1, 10_150 / 10_200 - 1]
    mean = sum(rets) / 4
    sd = math.sqrt(sum((r - mean) ** 2 for r in rets) / 3)
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / 4)
    bars_per_year = 365 * 24
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(bars_per_year))
    assert m["sortino"] == pytest.approx(mean / down * math.sqrt(bars_per_year))


def test_undefined_ratios_are_none_not_infinite() -> None:
    m = compute_metrics(starting_equity=1000.0, equity=[1000.0, 1000.0, 1000.0], position_qty=[0, 0, 0],
                        trade_net_pnl=[], interval_ms=60_000)
    assert m["trades"] == 0 and m["win_rate_pct"] is None and m["profit_factor"] is None
    assert m["expectancy"] is None and m["sharpe"] is None and m["sortino"] is None
    assert m["max_drawdown"] == 0.0 and m["exposure_pct"] == 0.0
    only_wins = compute_metrics(starting_equity=1000.0, equity=[1010.0, 1020.0], position_qty=[1, 0],
                                trade_net_pnl=[20.0], interval_ms=60_000)
    assert only_wins["profit_factor"] is None and only_wins["gross_profit"] == 20.0
    assert only_wins["sortino"] is None  # no down bar


def test_empty_run() -> None:
    m = compute_metrics(starting_equity=500.0, equity=[], position_qty=[], trade_net_pnl=[], interval_ms=60_000)
    assert m["final_equity"] == 500.0 and m["net_pnl"] == 0.0 and m["bars"] == 0


def test_drawdown_counts_the_starting_equity_as_a_peak() -> None:
    dd, pct = drawdowns(100.0, [90.0, 95.0, 120.0, 60.0])
    assert list(dd) == [10.0, 5.0, 0.0, 60.0]
    assert list(pct) == pytest.approx([10.0, 5.0, 0.0, 50.0])


def test_periods_per_year() -> None:
    assert periods_per_year(60_000) == 525_600
    assert periods_per_year(86_400_000) == 365
    with pytest.raises(ValueError):
        periods_per_year(0)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per bar"):
        compute_metrics(starting_equity=1.0, equity=[1.0, 2.0], position_qty=[0.0], trade_net_pnl=[], interval_ms=60_000)
