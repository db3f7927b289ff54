"""Shared by the optimize tests: candle files, the CLI in a subprocess, reading a study back."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from laptop_agents.backtest.research.walkforward import bar_returns, make_folds
from laptop_agents.backtest.runner import run_backtest
from laptop_agents.config import load_config
from laptop_agents.report.metrics import periods_per_year
from laptop_agents.sources.candle_files import load_candles, write_candles
from tests.backtest.test_backtest import market_candles

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def candle_file(directory: Path, n: int, name: str = "btc.csv", seed: int = 3) -> Path:
    return write_candles(directory / name, market_candles(n, seed=seed))


def env_for(workspace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LA_", "LAPTOP_AGENTS_", "PG"))}
    env["LAPTOP_AGENTS_WORKSPACE"] = str(workspace)
    env.update(extra)
    return env


def cli_cmd(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "laptop_agents", *args, "--workspace", str(workspace)]


def cli(workspace: Path, *args: str, timeout: float = 240.0, cwd: Path = PROJECT_ROOT,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_cmd(workspace, *args), cwd=cwd, env=env or env_for(workspace), capture_output=True,
                          text=True, timeout=timeout)


def open_study(url: str, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url)


def only_study(url: str) -> optuna.Study:
    names = optuna.get_all_study_names(storage=url)
    assert len(names) == 1, names
    return open_study(url, names[0])


def score_alone(strategy_file: Path, data: Path, *, splits: int, train_frac: float, interval: str = "1m") -> float:
    """The walk-forward Sharpe of a strategy file, computed the plain way: a backtest per test window
    (the train window only warms the indicators up), all test returns pooled, mean / sd annualised."""
    config = load_config("backtest", {"strategy.file": str(strategy_file), "trading.interval": interval}).config
    candles = load_candles(data).candles
    returns = []
    for f in make_folds(len(candles), splits, train_frac):
        (a, _), (c, d) = f.train, f.test
        res = run_backtest(config, candles[a:d], warmup=c - a, progress=False)
        returns.append(bar_returns(res.starting_equity, res.equity))
    r = np.concatenate(returns)
    sd = float(r.std(ddof=1))
    return 0.0 if sd <= 1e-15 else float(r.mean()) / sd * math.sqrt(periods_per_year(60_000))


def trial_workers(study: optuna.Study) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)):
        out.setdefault(str(t.user_attrs.get("worker")), []).append(t.number)
    return out


def error_line(text: str) -> str:
    """The error: the last line of stderr (a data file's report lines may come before it), no traceback."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and "Traceback" not in text, text
    return lines[-1]


def run_dir(workspace: Path) -> Path:
    dirs = sorted((workspace / "runs").glob("optimize-*"))
    assert dirs, "no optimize run directory"
    return dirs[-1]


def read_json(path: Path) -> Any:
    import json

    return json.loads(path.read_text(encoding="utf-8"))
