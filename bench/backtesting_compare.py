"""Candles per second: our Engine + sma_cross + paper broker against a bare SMA
cross in backtesting.py (PyPI ``backtesting`` 0.6.6), on the same candles in
the same run, with the ratio. Ours is measured on the compiled core (when
built: ``make compiled``) and on the pure-Python core (a subprocess with
``LA_PURE=1``), so the line also shows the compiled core's before/after.

Usage: ``python bench/backtesting_compare.py [--file CSV] [--repeat 5] [--fast 10] [--slow 30]``

Candles: the real BTC-USD 15-minute file of ``../shared/data`` (8,721 rows;
``--file`` for another), loaded and cleaned once by our loader (duplicates
resolved, the partial last bar dropped); backtesting.py gets exactly those
bars as its OHLCV DataFrame. Loading is not timed on either side.

What each side does per candle, so the ratio is read honestly:

- **ours** (the product's backtest loop: ``Engine.on_candle`` for every
  candle): the paper broker first (day roll, funding boundaries, expiry,
  stop/target checks, working-order fills, trailing, the account view with
  the breaker's daily-loss check), then ``sma_cross`` on the strategy base
  (two incremental SMAs, the cross rule, risk-based sizing rounded to the
  quantity step, a decision and a journal event per order), then the broker
  again for its intents (client-id dedup, rate limit, hard limits, slippage,
  taker fee, netting a reversal in one order, fill and trade events), and a
  ``StepResult``. Everything is incremental; nothing is computed after the
  loop. Timed: the loop alone (CPU time of this process).
- **theirs** (backtesting.py's canonical ``SmaCross`` example): ``init``
  computes both SMAs over the whole series at once with pandas (vectorised,
  before the bar loop), then ``next`` runs in Python for every bar: a
  ``crossover`` check and, on a cross, ``position.close()`` plus a market
  ``buy()``/``sell()`` of all equity, filled at the next open with the same
  taker commission. ``FractionalBacktest`` so a 10,000 USD account can hold
  fractions of a BTC, as ours does. Timed: the whole ``Backtest.run()``,
  which also builds its equity curve, trades table and statistics after the
  loop (that is what a run costs a user there).

The strategies are the same idea, not the same trades: sizing differs (ours
risks 1 % of equity over a 100 bps stop, theirs goes all in), ours adds
slippage and limits; the trade counts are printed to show both are equally
busy. Best of ``--repeat`` runs on each side (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT.parent / "shared" / "data" / "btcusd_15m_2021.csv"


def _ours(path: Path, fast: int, slow: int, repeat: int) -> tuple[float, int, str]:
    """(best candles per CPU-second, trades closed, core kind) of our loop."""
    from laptop_agents._compiled import core_kind
    from laptop_agents.config import load_config
    from laptop_agents.engine import build_engine
    from laptop_agents.sources.candle_files import load_candles
    from laptop_agents.strategy import build_strategy

    loaded = load_candles(path)
    candles = loaded.candles
    overrides = {"strategy.name": "sma_cross", "trading.interval": loaded.interval}
    config = load_config("backtest", overrides).config
    best, trades = float("inf"), 0
    for _ in range(repeat):
        engine = build_engine(config, build_strategy(config, overrides={"fast": fast, "slow": slow}))
        on_candle = engine.on_candle
        t0 = time.process_time()
        for c in candles:
            on_candle(c)
        best = min(best, time.process_time() - t0)
        trades = engine.broker.trades_closed
    return len(candles) / best, trades, core_kind()


def _theirs(path: Path, fast: int, slow: int, repeat: int) -> tuple[float, int]:
    """(best candles per CPU-second, trades) of backtesting.py's SmaCross."""
    import pandas as pd
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest, crossover
    from backtesting.test import SMA

    from laptop_agents.sources.candle_files import load_candles

    candles = load_candles(path).candles
    df = pd.DataFrame(
        {"Open": [c.open for c in candles], "High": [c.high for c in candles], "Low": [c.low for c in candles],
         "Close": [c.close for c in candles], "Volume": [c.volume for c in candles]},
        index=pd.to_datetime([c.ts for c in candles], unit="ms", utc=True).tz_localize(None),
    )  # fmt: skip

    class SmaCross(Strategy):
        n1 = fast
        n2 = slow

        def init(self) -> None:
            self.sma1 = self.I(SMA, self.data.Close, self.n1)
            self.sma2 = self.I(SMA, self.data.Close, self.n2)

        def next(self) -> None:
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    best, trades = float("inf"), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its notes about fractional units and the last open trade
        for _ in range(repeat):
            bt = FractionalBacktest(df, SmaCross, cash=10_000, commission=0.0006, finalize_trades=True)
            t0 = time.process_time()
            stats = bt.run()
            best = min(best, time.process_time() - t0)
            trades = int(stats["# Trades"])
    return len(candles) / best, trades


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE, help="candle file (default: the shared BTC-USD 15m)")
    ap.add_argument("--repeat", type=int, default=5, help="best of N runs on each side")
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=30)
    ap.add_argument("--ours-only", action="store_true", help=argparse.SUPPRESS)  # the pure subprocess
    args = ap.parse_args(argv)
    if not args.file.is_file():
        print(f"bench: no candle file at {args.file} (pass --file CSV)")
        return 0
    if args.ours_only:
        rate, trades, kind = _ours(args.file, args.fast, args.slow, args.repeat)
        print(f"{rate} {trades} {kind}")
        return 0
    os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar, on stderr
    try:
        import backtesting
    except ImportError:
        print("bench: backtesting.py is not installed (pip install backtesting==0.6.6, or make venv)")
        return 0

    ours, our_trades, kind = _ours(args.file, args.fast, args.slow, args.repeat)
    env = dict(os.environ, LA_PURE="1")
    out = subprocess.run(
        [sys.executable, __file__, "--ours-only", "--file", str(args.file), "--repeat", str(args.repeat),
         "--fast", str(args.fast), "--slow", str(args.slow)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    pure, pure_trades = float(out[0]), int(out[1])
    theirs, their_trades = _theirs(args.file, args.fast, args.slow, args.repeat)
    assert pure_trades == our_trades, "the pure and compiled cores disagree"

    print(f"SMA({args.fast}/{args.slow}) cross on {args.file.name}, best of {args.repeat}, "
          f"candles per CPU-second (python {sys.version.split()[0]}, backtesting.py {backtesting.__version__})")  # fmt: skip
    print(f"{'side':<50} {'candles/s':>12} {'trades':>7} {'vs theirs':>10}")
    rows = [(f"ours: Engine + sma_cross + broker ({kind} core)", ours, our_trades)]
    if kind == "compiled":
        rows.append(("ours: Engine + sma_cross + broker (pure core)", pure, pure_trades))
    rows.append(("backtesting.py: SmaCross, Backtest.run()", theirs, their_trades))
    for label, rate, trades in rows:
        print(f"{label:<50} {rate:>12,.0f} {trades:>7} {rate / theirs:>9.2f}x")
    if kind == "compiled":
        print(f"compiled core vs pure core: {ours / pure:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
