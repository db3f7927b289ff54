"""How much of a study's best result is luck: deflated Sharpe ratio, PBO, the in/out-of-sample gap.

Trying many parameter sets and keeping the best is a selection: even if no
set had any skill, the best of N would look good. Two measures from the
literature say how much, both implemented here from the papers' formulas
(pure functions of numbers, no I/O):

- **Deflated Sharpe ratio** (DSR): D. H. Bailey and M. López de Prado, "The
  Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting
  and Non-Normality", *Journal of Portfolio Management* 40 (5), 2014,
  pp. 94-107. The probability that the selected strategy's true Sharpe ratio
  is above the Sharpe ratio the best of N skill-less trials would show:

      SR0 = sqrt(V[SR_n]) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))
      DSR = Z( (SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR^2) )

  with ``g`` the Euler-Mascheroni constant, ``Z`` the standard normal CDF,
  ``V[SR_n]`` the variance of the trials' Sharpe ratios, and ``SR``, ``skew``,
  ``kurt`` (not excess) and ``T`` of the selected strategy's returns, all per
  bar (not annualised). The second formula alone, with any benchmark in place
  of SR0, is the probabilistic Sharpe ratio (PSR) of Bailey and López de Prado,
  "The Sharpe Ratio Efficient Frontier", *Journal of Risk* 15 (2), 2012.
- **Probability of backtest overfitting** (PBO) by combinatorially symmetric
  cross-validation (CSCV): D. H. Bailey, J. M. Borwein, M. López de Prado and
  Q. J. Zhu, "The Probability of Backtest Overfitting", *Journal of
  Computational Finance* 20 (4), 2017, pp. 39-69. The bars are cut into S
  blocks; for every choice of S/2 blocks as the in-sample set (the rest out of
  sample) the trial with the best in-sample Sharpe is found and its
  out-of-sample rank among all trials taken, ``w = rank / (N + 1)``; its logit
  ``l = ln(w / (1 - w))`` is <= 0 when the in-sample winner is at or below the
  out-of-sample median. PBO is the share of the choices with ``l <= 0``.

The study keeps, per trial, the power sums of its pooled out-of-sample
per-bar returns and, per block, ``[n, sum r, sum r^2]`` (see
:mod:`.walkforward`), which is all both measures need.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from laptop_agents.backtest.research.walkforward import Moments

EULER_GAMMA = 0.5772156649015329
_Z = NormalDist()


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """SR0: the Sharpe ratio the best of ``n_trials`` skill-less trials is expected to show, given the
    variance of the trials' Sharpe ratios (Bailey and López de Prado 2014, eq. for SR0). 0 for one trial."""
    if n_trials < 2 or var_sharpe <= 0:
        return 0.0
    n = float(n_trials)
    return math.sqrt(var_sharpe) * ((1 - EULER_GAMMA) * _Z.inv_cdf(1 - 1 / n)
                                    + EULER_GAMMA * _Z.inv_cdf(1 - 1 / (n * math.e)))


def probabilistic_sharpe(sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float | None:
    """PSR: probability that the true per-bar Sharpe ratio exceeds ``benchmark``, given ``n_obs`` returns
    with this skewness and (non-excess) kurtosis. None when undefined (fewer than 2 returns, or the
    non-normality term is not positive)."""
    if n_obs < 2:
        return None
    den = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe * sharpe
    if den <= 0:
        return None
    return _Z.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(den))


def deflated_sharpe(sharpe: float, n_obs: int, skew: float, kurtosis: float, n_trials: int,
                    var_sharpe: float) -> float | None:
    """DSR: the PSR of the selected strategy against SR0 of ``n_trials`` trials (all per bar)."""
    return probabilistic_sharpe(sharpe, expected_max_sharpe(n_trials, var_sharpe), n_obs, skew, kurtosis)


def _block_sharpe(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe ratio from pooled sums (sample sd); 0 where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        var = (s2 - n * mean * mean) / (n - 1)
        sr = mean / np.sqrt(var)
    return np.where((n >= 2) & (var > 1e-30), sr, 0.0)


def pbo(blocks: Sequence[Sequence[Sequence[float]]]) -> tuple[float, int] | None:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado and Zhu 2017).

    ``blocks[i][b] = [n, sum r, sum r^2]`` of trial ``i`` in block ``b`` (every trial over the same bars,
    an even number of blocks). Returns (PBO, number of block combinations), or None with fewer than
    two trials or blocks. Out-of-sample ties share their rank (average rank)."""
    arr = np.asarray(blocks, dtype=float)
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2 or arr.shape[2] != 3:
        return None
    n_trials, n_blocks = arr.shape[0], arr.shape[1] - arr.shape[1] % 2
    arr = arr[:, :n_blocks]
    combos = np.array([[1.0 if b in c else 0.0 for b in range(n_blocks)]
                       for c in itertools.combinations(range(n_blocks), n_blocks // 2)])
    rest = 1.0 - combos
    n, s1, s2 = arr[0, :, 0], arr[:, :, 1], arr[:, :, 2]
    sr_in = _block_sharpe((combos @ n)[:, None], combos @ s1.T, combos @ s2.T)
    sr_out = _block_sharpe((rest @ n)[:, None], rest @ s1.T, rest @ s2.T)
    best = np.argmax(sr_in, axis=1)
    chosen = sr_out[np.arange(len(combos)), best][:, None]
    rank = (sr_out < chosen).sum(axis=1) + ((sr_out == chosen).sum(axis=1) + 1) / 2.0
    w = rank / (n_trials + 1)
    logit = np.log(w / (1 - w))
    return float((logit <= 0).mean()), int(len(combos))


@dataclass
class Overfitting:
    """The overfitting check of a study's best trial."""

    trials: int  # parameter sets tried (complete and pruned)
    in_sample: float | None
    out_of_sample: float | None
    metric: str
    dsr: float | None = None
    sharpe_bar: float | None = None  # the best trial's out-of-sample per-bar Sharpe
    sharpe_benchmark: float | None = None  # SR0, per bar
    n_obs: int = 0
    pbo: float | None = None
    pbo_combinations: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("trials", "metric", "in_sample", "out_of_sample", "dsr", "sharpe_bar",
                                             "sharpe_benchmark", "n_obs", "pbo", "pbo_combinations", "warnings")}


DSR_MIN = 0.95
PBO_MAX = 0.5
PBO_MIN_TRIALS = 5  # fewer complete trials make the PBO a coin toss of its own: not reported
GAP_MIN_SHARE = 0.5


def assess(*, metric: str, trials: int, best_is: float | None, best_oos: float | None,
           best_moments: Sequence[float] | None, all_moments: Sequence[Sequence[float]],
           all_blocks: Sequence[Sequence[Sequence[float]]]) -> Overfitting:
    """The check: the in/out-of-sample gap of the best trial, its DSR among ``trials`` tried (the variance
    of the Sharpe ratios from the complete trials' moments) and the PBO over the complete trials' blocks.
    ``*_moments`` are ``[n, s1, s2, s3, s4, down2]`` lists (:class:`~.walkforward.Moments`)."""
    out = Overfitting(trials=trials, in_sample=best_is, out_of_sample=best_oos, metric=metric)
    if best_is is not None and best_oos is not None and best_is > 0:
        if best_oos <= 0:
            out.warnings.append(f"in-sample {metric} {best_is:.3g} but out-of-sample {best_oos:.3g}: the best "
                                "parameters lose their edge on the test windows")
        elif best_oos < GAP_MIN_SHARE * best_is:
            out.warnings.append(f"out-of-sample {metric} {best_oos:.3g} is {best_oos / best_is:.0%} of the in-sample "
                                f"{best_is:.3g}: a large gap is the mark of parameters fitted to noise")
    if best_moments is not None:
        m = Moments.from_list(best_moments)
        srs = [Moments.from_list(x).sharpe() or 0.0 for x in all_moments]
        var = float(np.var(srs, ddof=1)) if len(srs) >= 2 else 0.0
        sr = m.sharpe() or 0.0
        out.sharpe_bar, out.n_obs = sr, m.n
        out.sharpe_benchmark = expected_max_sharpe(trials, var)
        out.dsr = deflated_sharpe(sr, m.n, m.skew, m.kurtosis, trials, var)
        if out.dsr is not None and out.dsr < DSR_MIN:
            out.warnings.append(f"deflated Sharpe ratio {out.dsr:.2f} < {DSR_MIN}: after {trials} trials the best "
                                "out-of-sample Sharpe ratio is not clearly above what the best of as many "
                                "skill-less parameter sets would show")
    got = pbo(all_blocks) if len(all_blocks) >= PBO_MIN_TRIALS else None
    if got is not None:
        out.pbo, out.pbo_combinations = got
        if out.pbo > PBO_MAX:
            out.warnings.append(f"probability of backtest overfitting {out.pbo:.0%}: the in-sample winner of a "
                                "random half of the test bars ranks below the median on the other half "
                                f"in {out.pbo:.0%} of {out.pbo_combinations} splits")
    return out
