"""Walk-forward validation over a parameter grid.

The candles are cut into ``splits`` consecutive, non-overlapping folds; each
fold into a train window (the first ``train_frac``) and the test window right
after it. For every fold and every grid combination the strategy is
backtested on the train window and, separately, on the test window (the train
window is fed first as warm-up only, so the indicators are primed but no
trade or equity of the train window leaks into the test score). Each fold's
pick is the combination with the best **train** score; its **test** result is
the out-of-sample result of the fold. Nothing about the test window influences
the pick.

Score: annualised Sharpe of the window (a window without a defined Sharpe, e.g.
no trade, scores below any defined one); ties go to the higher net PnL, then
to the earlier combination in grid order, so the pick is deterministic.

Runs are independent, so they are spread over processes
(``ProcessPoolExecutor``, ``jobs`` workers); each worker loads the candle file
once and keeps it.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from laptop_agents.backtest.runner import mock_candles, mock_funding, run_backtest
from laptop_agents.config import AppConfig
from laptop_agents.domain.errors import UsageError
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.fileio import write_text_atomic
from laptop_agents.logs import scrub
from laptop_agents.sources.candle_files import load_candles

MAX_COMBINATIONS = 1000


class GridError(UsageError):
    """A bad ``--grid`` string; one line."""


def parse_grid(text: str | None) -> list[dict[str, float | int]]:
    """``"a=1,2;b=0.5"`` -> ``[{"a": 1, "b": 0.5}, {"a": 2, "b": 0.5}]`` (cartesian product, in order).

    An empty grid is one combination without overrides (the configured parameters)."""
    if text is None or not text.strip():
        return [{}]
    names: list[str] = []
    values: list[list[float | int]] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, eq, raw = part.partition("=")
        name = name.strip()
        if not eq or not name or not raw.strip():
            raise GridError(f"bad grid entry {part!r}: expected name=v1,v2,... (e.g. \"stop_atr_mult=1,1.5;tp_r_mult=2\")")
        if name in names:
            raise GridError(f"grid parameter {name!r} is given twice")
        vals: list[float | int] = []
        for tok in raw.split(","):
            tok = tok.strip()
            try:
                v = float(tok)
            except ValueError:
                raise GridError(f"grid value {tok!r} for {name!r} is not a number") from None
            if not math.isfinite(v):
                raise GridError(f"grid value {tok!r} for {name!r} is not finite")
            vals.append(int(v) if v.is_integer() and "." not in tok and "e" not in tok.lower() else v)
        names.append(name)
        values.append(list(dict.fromkeys(vals)))
    total = math.prod(len(v) for v in values)
    if total > MAX_COMBINATIONS:
        raise GridError(f"the grid has {total} combinations; at most {MAX_COMBINATIONS} are allowed")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


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
def _load(spec: DataSpec, config_json: str) -> tuple[list[Candle], list[FundingRate]]:
    """The candles of ``spec``, once per worker process (the cache key includes the config for the mock)."""
    if spec.file is not None:
        loaded = load_candles(spec.file, strict=spec.strict, interval=spec.interval,
                              time_column=spec.time_column, time_unit=spec.time_unit)
        return loaded.candles, loaded.funding
    config = AppConfig.model_validate_json(config_json)
    candles = mock_candles(config)
    return candles, mock_funding(config, candles)


def _window_funding(funding: Sequence[FundingRate], candles: Sequence[Candle], start: int) -> list[FundingRate]:
    """Funding updates for a window: the rate in force at its start, then the later updates."""
    if not funding or not candles:
        return []
    t0 = candles[start].ts
    before = [f for f in funding if f.ts <= t0]
    after = [f for f in funding if f.ts > t0]
    return ([FundingRate(ts=t0, rate=before[-1].rate)] if before else []) + after


def _task(args: tuple[DataSpec, AppConfig, Fold, int, dict[str, Any], float | None]) -> dict[str, Any]:
    """One grid combination on one fold: train score and test score."""
    spec, config, fold, combo_index, overrides, constant_funding = args
    candles, funding = _load(spec, config.model_dump_json())
    a, b = fold.train
    train = run_backtest(
        config, candles[a:b], funding=_window_funding(funding, candles, a), constant_funding=constant_funding,
        overrides=overrides, progress=False,
    )
    c, d = fold.test
    test = run_backtest(
        config, candles[a:d], funding=_window_funding(funding, candles, a), constant_funding=constant_funding,
        overrides=overrides, warmup=c - a, progress=False,
    )
    return {
        "fold": fold.index, "combo": combo_index, "params": overrides,
        "train": _brief(train.metrics), "test": _brief(test.metrics),
        "train_range": [candles[a].ts, candles[b - 1].ts], "test_range": [candles[c].ts, candles[d - 1].ts],
    }


_BRIEF = ("net_pnl", "return_pct", "trades", "win_rate_pct", "profit_factor", "max_drawdown_pct", "sharpe",
          "sortino", "fees_paid", "exposure_pct")


def _brief(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in _BRIEF}


def score_key(m: Mapping[str, Any]) -> tuple[float, float]:
    """Higher is better: (Sharpe or -inf, net PnL)."""
    sharpe = m.get("sharpe")
    return (sharpe if isinstance(sharpe, float | int) else -math.inf, float(m.get("net_pnl") or 0.0))


def walk_forward(
    config: AppConfig,
    spec: DataSpec,
    grid: list[dict[str, Any]],
    *,
    n_candles: int,
    splits: int = 4,
    train_frac: float = 0.7,
    jobs: int | None = None,
    constant_funding: float | None = None,
) -> dict[str, Any]:
    """Run every (fold, combination) and return the leaderboard document."""
    folds = make_folds(n_candles, splits, train_frac)
    tasks = [(spec, config, f, ci, combo, constant_funding) for f in folds for ci, combo in enumerate(grid)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    if jobs == 1:
        results = [_task(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_task, tasks, chunksize=max(1, len(tasks) // (jobs * 4))))
    return leaderboard(grid, folds, results) | {"jobs": jobs, "splits": splits, "train_frac": train_frac}


def leaderboard(grid: list[dict[str, Any]], folds: list[Fold], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fold picks (best train score) and per-combination aggregates."""
    by_fold: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        by_fold.setdefault(r["fold"], []).append(r)
    picks = []
    for f in folds:
        rows = sorted(by_fold.get(f.index, []), key=lambda r: r["combo"])
        best = max(rows, key=lambda r: (*score_key(r["train"]), -r["combo"]))
        picks.append({"fold": f.index, "combo": best["combo"], "params": best["params"],
                      "train": best["train"], "test": best["test"],
                      "train_range": best["train_range"], "test_range": best["test_range"]})
    table: list[dict[str, Any]] = []
    for ci, combo in enumerate(grid):
        rows = [r for r in results if r["combo"] == ci]
        table.append({
            "combo": ci,
            "params": combo,
            "picked": sum(1 for p in picks if p["combo"] == ci),
            "train_sharpe_mean": _mean([r["train"]["sharpe"] for r in rows]),
            "test_sharpe_mean": _mean([r["test"]["sharpe"] for r in rows]),
            "train_return_pct_mean": _mean([r["train"]["return_pct"] for r in rows]),
            "test_return_pct_mean": _mean([r["test"]["return_pct"] for r in rows]),
            "test_net_pnl_total": sum(float(r["test"]["net_pnl"] or 0.0) for r in rows),
            "test_trades_total": sum(int(r["test"]["trades"] or 0) for r in rows),
            "test_max_drawdown_pct_worst": max((float(r["test"]["max_drawdown_pct"] or 0.0) for r in rows), default=0.0),
        })
    def rank(r: dict[str, Any]) -> tuple[float, int]:
        mean = r["test_return_pct_mean"]
        return (-(mean if mean is not None else -math.inf), int(r["combo"]))

    table.sort(key=rank)
    oos = [p["test"] for p in picks]
    return {
        "folds": [{"fold": f.index, "train": list(f.train), "test": list(f.test)} for f in folds],
        "picks": picks,
        "out_of_sample": {
            "net_pnl_total": sum(float(t["net_pnl"] or 0.0) for t in oos),
            "return_pct_mean": _mean([t["return_pct"] for t in oos]),
            "sharpe_mean": _mean([t["sharpe"] for t in oos]),
            "trades_total": sum(int(t["trades"] or 0) for t in oos),
        },
        "leaderboard": table,
        "results": sorted(results, key=lambda r: (r["fold"], r["combo"])),
    }


def _mean(values: Sequence[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, float | int) and math.isfinite(float(v))]
    return sum(nums) / len(nums) if nums else None


def write_leaderboard(doc: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """leaderboard.csv (one row per combination) and leaderboard.json (everything),
    each replaced atomically; not fsynced: a validation is re-run, never resumed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "leaderboard.json"
    write_text_atomic(json_path, scrub(json.dumps(_finite(doc), indent=2)) + "\n")
    csv_path = out_dir / "leaderboard.csv"
    rows = doc["leaderboard"]
    keys = [k for k in rows[0] if k != "params"] if rows else []
    names = sorted({n for r in rows for n in r["params"]})
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["rank", *names, *keys])
    for rank, r in enumerate(rows, 1):
        w.writerow([rank, *(r["params"].get(n, "") for n in names), *("" if r[k] is None else r[k] for k in keys)])
    write_text_atomic(csv_path, buf.getvalue())
    return csv_path, json_path


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
