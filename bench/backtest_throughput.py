"""Backtest throughput over one year of one-minute candles (525,600), end to end.

Generates a seeded random-walk year (numpy, GARCH-like volatility), writes it
to a temporary Parquet and CSV file, then for the default strategy and for
``sma_cross`` times: loading the file, the backtest through the live Engine,
and writing the run's files and report.html. Prints candles/s; asserts nothing.
Wall times on a shared machine are noisy; the process CPU time is printed too.

    .venv/bin/python bench/backtest_throughput.py [--candles N] [--csv] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from laptop_agents.backtest.runner import run_backtest
from laptop_agents.config import load_config
from laptop_agents.sources.candle_files import load_candles, write_table

YEAR_1M = 525_600
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z


def year_of_candles(n: int, seed: int = 11) -> pa.Table:
    """A BTC-like 1-minute path: volatility clustering, wicks, lognormal volume."""
    rng = np.random.default_rng(seed)
    vol = 0.0009 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)) * 0.05).clip(0.3, 3.0)
    rets = rng.normal(0.0, 1.0, n) * vol
    close = 42_000.0 * np.exp(np.cumsum(rets))
    open_ = np.concatenate(([42_000.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.4, (2, n))) * vol * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = rng.lognormal(np.log(12.0), 0.6, n)
    return pa.table({
        "ts": T0 + np.arange(n, dtype=np.int64) * 60_000,
        "open": np.round(open_, 1), "high": np.round(high, 1), "low": np.round(low, 1),
        "close": np.round(close, 1), "volume": np.round(volume, 4),
    })


def one(strategy: str, path: Path, out: Path, profile: bool) -> None:
    config = load_config("backtest", {"strategy.name": strategy}).config
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    c0 = time.process_time()
    t0 = time.perf_counter()
    loaded = load_candles(path)
    t1 = time.perf_counter()
    cfg = config.model_copy(deep=True)
    cfg.trading.interval = loaded.interval
    result = run_backtest(cfg, loaded.candles, funding=loaded.funding, constant_funding=0.0001,
                          run_dir=out / f"{strategy}-{path.suffix[1:]}", progress=False)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    if prof:
        prof.disable()
    n = len(loaded.candles)
    engine_s = result.elapsed_s
    report_s = t2 - t1 - engine_s
    total = t2 - t0
    print(f"{strategy:>10} {path.suffix[1:]:>8}: {n:,} candles, total {total:6.2f} s = {n / total:9,.0f} candles/s "
          f"(load {t1 - t0:5.2f} s, engine loop {engine_s:6.2f} s = {n / engine_s:9,.0f}/s, "
          f"files+report {report_s:5.2f} s; {result.metrics['trades']:,} trades; process CPU {cpu:5.2f} s)")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=YEAR_1M)
    ap.add_argument("--csv", action="store_true", help="also time the CSV file (Parquet always)")
    ap.add_argument("--strategy", action="append", help="default and sma_cross unless given")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="la-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        table = year_of_candles(args.candles)
        files = [write_table(root / "year.parquet", table)]
        if args.csv:
            files.append(write_table(root / "year.csv", table))
        print(f"generated {args.candles:,} one-minute candles in {time.perf_counter() - t:.2f} s "
              f"({', '.join(f.name for f in files)})")
        for strategy in args.strategy or ["default", "sma_cross"]:
            for f in files:
                one(strategy, f, root / "runs", args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
