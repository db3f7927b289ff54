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

The grid runs on the one sweep engine (:mod:`laptop_agents.backtest.research.sweep`,
the engine of ``optimize`` too): every combination is one trial of a grid study
scored on every fold by :mod:`~laptop_agents.backtest.research.walkforward`;
with ``jobs`` > 1 that many worker processes share a temporary SQLite study and
each loads the candle file once.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from laptop_agents.backtest.research.objective import ObjectiveSpec
from laptop_agents.backtest.research.space import grid_space
from laptop_agents.backtest.research.sweep import SweepSpec, open_storage, open_study, run_sweep
from laptop_agents.backtest.research.walkforward import DataSpec, Fold, GridError, make_folds
from laptop_agents.config import AppConfig
from laptop_agents.fileio import write_text_atomic
from laptop_agents.interrupts import Interrupted
from laptop_agents.logs import scrub

__all__ = ["MAX_COMBINATIONS", "DataSpec", "Fold", "GridError", "leaderboard", "make_folds", "parse_grid",
           "score_key", "walk_forward", "write_leaderboard"]

MAX_COMBINATIONS = 1000


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
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(grid)))
    objective = ObjectiveSpec(config_json=config.model_dump_json(), data=spec, splits=splits, train_frac=train_frac,
                              space=grid_space(grid), constant_funding=constant_funding, prune=False)
    sweep = SweepSpec(objective, kind="grid", budget=len(grid))
    with tempfile.TemporaryDirectory(prefix="la-validate-") as tmp:
        url = None if jobs == 1 else f"sqlite:///{Path(tmp) / 'study.db'}"
        storage = open_storage(url)
        try:
            study, _ = open_study(storage, "validate", sweep)
            outcome = run_sweep(study, sweep, workers=jobs, url=url, name="validate")
            trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        finally:
            engine = getattr(storage, "engine", None)
            if engine is not None:
                engine.dispose()
    if outcome.interrupted:
        raise Interrupted()
    if outcome.failed:
        raise RuntimeError(f"validation worker(s) failed with exit code(s) {outcome.failed}")
    results: list[dict[str, Any]] = []
    done: set[int] = set()
    for t in sorted(trials, key=lambda t: t.number):
        ci = int(t.user_attrs["combo"])
        if ci in done:
            continue
        done.add(ci)
        results.extend({"fold": f["fold"], "combo": ci, "params": grid[ci], "train": f["train"], "test": f["test"],
                        "train_range": f["train_range"], "test_range": f["test_range"]}
                       for f in t.user_attrs["folds"])
    if len(done) != len(grid):
        raise RuntimeError(f"the sweep finished {len(done)} of {len(grid)} grid combinations")
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
