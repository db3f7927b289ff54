"""Deflated Sharpe ratio and PBO against values worked out by hand (and the DSR paper's own example)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from laptop_agents.backtest.research.overfit import (
    assess,
    deflated_sharpe,
    expected_max_sharpe,
    pbo,
    probabilistic_sharpe,
)
from laptop_agents.backtest.research.walkforward import Moments


def test_psr_by_hand() -> None:
    # SR 0.1 per bar, benchmark 0, T = 101, normal returns (skew 0, kurtosis 3):
    # z = 0.1 * sqrt(100) / sqrt(1 + (3 - 1) / 4 * 0.01) = 1 / sqrt(1.005) = 0.997509...
    # Phi(0.997509) = Phi(1) - phi(1) * 0.002491 = 0.841345 - 0.241971 * 0.002491 = 0.840742
    assert probabilistic_sharpe(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(0.840742, abs=2e-6)
    # At the benchmark itself the probability is one half, whatever the moments.
    assert probabilistic_sharpe(0.05, 0.05, 500, -1.0, 8.0) == pytest.approx(0.5)
    assert probabilistic_sharpe(0.1, 0.0, 1, 0.0, 3.0) is None  # one return: undefined


def test_expected_max_sharpe_by_hand() -> None:
    # N = 100: Z^-1(0.99) = 2.326348, Z^-1(1 - 1/(100 e)) = Z^-1(0.99632121) = 2.680210
    # (from a normal table: Phi(2.680210) = 0.99632121);
    # (1 - 0.5772157) * 2.326348 + 0.5772157 * 2.680210 = 0.983543 + 1.547059 = 2.530602
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.530602, abs=2e-6)
    assert expected_max_sharpe(100, 0.25) == pytest.approx(2.530602 * 0.5, abs=2e-6)
    assert expected_max_sharpe(1, 1.0) == 0.0  # no selection among one trial


def test_dsr_reproduces_the_papers_example() -> None:
    """Bailey and López de Prado (2014), numerical example: 100 trials, variance of the annualised
    Sharpe ratios 1/2, the selected strategy's annualised Sharpe 2.5 over 1250 daily returns with
    skewness -3 and kurtosis 10: SR0 = 1.7894 annualised and DSR = 0.9004."""
    daily = 250
    assert expected_max_sharpe(100, 0.5 / daily) * math.sqrt(daily) == pytest.approx(1.7894, abs=1e-4)
    assert deflated_sharpe(2.5 / math.sqrt(daily), 1250, -3.0, 10.0, 100, 0.5 / daily) == pytest.approx(0.9004, abs=1e-4)


def _blocks(s1_rows: list[list[float]], n: int = 100, s2: float = 1.0) -> list[list[list[float]]]:
    """Blocks with the same count and sum of squares for every trial: the per-bar Sharpe of any union of
    blocks then orders the trials exactly as the sums of their returns do (mean / sd is increasing in the mean)."""
    return [[[n, s, s2] for s in row] for row in s1_rows]


def test_pbo_by_hand() -> None:
    # Two trials, each the winner of one block: the in-sample winner always loses out of sample.
    assert pbo(_blocks([[1.0, -1.0], [-1.0, 1.0]])) == (1.0, 2)
    # One trial better in every block: never overfit.
    assert pbo(_blocks([[1.0, 1.0], [-1.0, -1.0]])) == (0.0, 2)
    # Three trials, four blocks, six ways to pick two blocks in sample (sums of returns):
    #   A = [4, 2, -1, -3], B = [-2, -1, 3, 4], C = [1, 1.1, 1, 1.2]
    #   IS {1,2}: A 6, B -3, C 2.1 -> A; OOS {3,4}: A -4, B 7, C 2.2 -> A last  (w = 1/4: overfit)
    #   IS {1,3}: A 3, B 1, C 2    -> A; OOS {2,4}: A -1, B 3, C 2.3 -> A last  (overfit)
    #   IS {1,4}: A 1, B 2, C 2.2  -> C; OOS {2,3}: A 1, B 2, C 2.1  -> C first (w = 3/4)
    #   IS {2,3}: A 1, B 2, C 2.1  -> C; OOS {1,4}: A 1, B 2, C 2.2  -> C first
    #   IS {2,4}: A -1, B 3, C 2.3 -> B; OOS {1,3}: A 3, B 1, C 2    -> B last  (overfit)
    #   IS {3,4}: A -4, B 7, C 2.2 -> B; OOS {1,2}: A 6, B -3, C 2.1 -> B last  (overfit)
    # PBO = 4 / 6.
    got = pbo(_blocks([[4, 2, -1, -3], [-2, -1, 3, 4], [1, 1.1, 1, 1.2]]))
    assert got is not None
    assert got[0] == pytest.approx(4 / 6) and got[1] == 6
    assert pbo(_blocks([[1.0, 2.0]])) is None  # one trial: nothing was selected


def test_assess_warns_on_gap_low_dsr_and_high_pbo() -> None:
    rng = np.random.default_rng(5)
    moments = [Moments.of(rng.normal(0.0, 0.01, 500)).to_list() for _ in range(20)]
    blocks = _blocks([[1.0, -1.0, 0.5, -0.5]] + [[-1.0, 1.0, -0.5, 0.5]] * 5)
    over = assess(metric="sharpe", trials=20, best_is=3.0, best_oos=0.5, best_moments=moments[0],
                  all_moments=moments, all_blocks=blocks)
    text = " ".join(over.warnings)
    assert "17%" in text and "in-sample" in text  # 0.5 is 17 % of 3.0
    assert over.dsr is not None and over.dsr < 0.95 and "deflated Sharpe ratio" in text
    assert over.pbo is not None and over.pbo > 0.5 and "probability of backtest overfitting" in text
    clean = assess(metric="sharpe", trials=1, best_is=1.0, best_oos=0.9, best_moments=None, all_moments=[],
                   all_blocks=[])
    assert clean.warnings == [] and clean.pbo is None and clean.dsr is None


def test_moments_pool_exactly() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.001, 0.02, 300), rng.standard_t(4, 200) * 0.01
    both = np.concatenate((a, b))
    m = Moments.of(a) + Moments.of(b)
    assert m.n == 500 and m.mean == pytest.approx(both.mean())
    assert m.sd == pytest.approx(both.std(ddof=1))
    z = (both - both.mean()) / both.std()
    assert m.skew == pytest.approx(float((z ** 3).mean()))
    assert m.kurtosis == pytest.approx(float((z ** 4).mean()))
    assert m.sharpe(10.0) == pytest.approx(both.mean() / both.std(ddof=1) * 10.0)
    assert Moments.of(np.zeros(5)).sharpe() is None
