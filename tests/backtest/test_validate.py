"""Walk-forward validation: grid parsing, folds, picks on train only, parallel == serial, the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from laptop_agents.backtest.runner import run_backtest
from laptop_agents.backtest.validate import (
    DataSpec,
    GridError,
    leaderboard,
    make_folds,
    parse_grid,
    score_key,
    walk_forward,
)
from laptop_agents.cli import main
from laptop_agents.config import load_config
from laptop_agents.exit_codes import ExitCode
from laptop_agents.sources.candle_files import load_candles, write_candles
from tests.backtest.test_backtest import market_candles


def test_parse_grid() -> None:
    assert parse_grid("stop_atr_mult=1,1.5,2;tp_r_mult=1.5,2") == [
        {"stop_atr_mult": a, "tp_r_mult": b} for a in (1, 1.5, 2) for b in (1.5, 2)
    ]
    assert parse_grid(" fast = 5 , 10 ; ") == [{"fast": 5}, {"fast": 10}]
    assert isinstance(parse_grid("fast=5")[0]["fast"], int) and isinstance(parse_grid("x=2.0")[0]["x"], float)
    assert parse_grid(None) == [{}] and parse_grid("") == [{}]
    for bad, msg in [("fast", "expected name="), ("fast=", "expected name="), ("a=1;a=2", "twice"),
                     ("a=x", "not a number"), ("a=nan", "not finite"),
                     (";".join(f"p{i}=1,2,3,4" for i in range(5)), "at most")]:
        with pytest.raises(GridError, match=msg):
            parse_grid(bad)


def test_make_folds() -> None:
    folds = make_folds(1000, 4, 0.7)
    assert [(f.train, f.test) for f in folds] == [
        ((0, 175), (175, 250)), ((250, 425), (425, 500)), ((500, 675), (675, 750)), ((750, 925), (925, 1000))]
    assert make_folds(1003, 2, 0.5)[-1].test == (752, 1003)
    with pytest.raises(GridError, match="too few"):
        make_folds(10, 5, 0.7)
    with pytest.raises(GridError, match="train-frac"):
        make_folds(100, 2, 1.0)


def test_score_prefers_defined_sharpe_then_pnl() -> None:
    assert score_key({"sharpe": 0.1, "net_pnl": -5}) > score_key({"sharpe": None, "net_pnl": 100})
    assert score_key({"sharpe": 1.0, "net_pnl": 2}) > score_key({"sharpe": 1.0, "net_pnl": 1})
    assert score_key({"sharpe": None, "net_pnl": 0})[0] == -math.inf


GRID = "fast=5,10;slow=20,40"


def test_walk_forward_picks_on_train_and_scores_on_test(tmp_path: Path) -> None:
    candles = market_candles(2400)
    path = write_candles(tmp_path / "c.parquet", candles)
    config = load_config("backtest", {"strategy.name": "sma_cross"}).config
    grid = parse_grid(GRID)
    spec = DataSpec(file=str(path))
    serial = walk_forward(config, spec, grid, n_candles=len(candles), splits=2, train_frac=0.6, jobs=1)
    assert len(serial["results"]) == 2 * 4 and len(serial["picks"]) == 2
    for pick in serial["picks"]:
        rows = [r for r in serial["results"] if r["fold"] == pick["fold"]]
        best = max(rows, key=lambda r: (*score_key(r["train"]), -r["combo"]))
        assert pick["combo"] == best["combo"]
    # The picks do not depend on the test windows: change every test result and pick again.
    scrambled = [dict(r, test=dict(r["test"], sharpe=float(-r["combo"]), net_pnl=1e9 * r["combo"]))
                 for r in serial["results"]]
    folds = make_folds(len(candles), 2, 0.6)
    again = leaderboard(grid, folds, scrambled)
    assert [p["combo"] for p in again["picks"]] == [p["combo"] for p in serial["picks"]]
    # Independent check of one test score: the train window only warms the indicators up.
    fold = serial["folds"][1]
    pick = serial["picks"][1]
    a, c, d = fold["train"][0], fold["test"][0], fold["test"][1]
    loaded = load_candles(path).candles
    direct = run_backtest(config, loaded[a:d], overrides=pick["params"], warmup=c - a, progress=False)
    assert pick["test"]["net_pnl"] == pytest.approx(direct.metrics["net_pnl"])
    assert pick["test"]["trades"] == direct.metrics["trades"]
    train = run_backtest(config, loaded[a:c], overrides=pick["params"], progress=False)
    assert pick["train"]["sharpe"] == pytest.approx(train.metrics["sharpe"])
    parallel = walk_forward(config, spec, grid, n_candles=len(candles), splits=2, train_frac=0.6, jobs=2)
    assert parallel["jobs"] == 2
    assert parallel["results"] == serial["results"] and parallel["picks"] == serial["picks"]


def test_validate_cli_writes_leaderboard(tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_candles(tmp_path / "c.csv", market_candles(1600))
    rc = main(["validate", str(path), "--strategy", "sma_cross", "--grid", GRID, "--splits", "2",
               "--train-frac", "0.6", "--jobs", "1", "--run-id", "wf"])
    assert rc == ExitCode.OK
    out = capsys.readouterr().out
    assert "walk-forward leaderboard" in out and "picked on train" in out and "out of sample" in out
    run = workspace / "runs" / "wf"
    with open(run / "leaderboard.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert {r["fast"] for r in rows} == {"5", "10"} and {r["slow"] for r in rows} == {"20", "40"}
    doc = json.loads((run / "leaderboard.json").read_text())
    assert doc["mode"] == "validate" and doc["grid"] == GRID and len(doc["picks"]) == 2
    means = [r["test_return_pct_mean"] for r in doc["leaderboard"]]
    assert means == sorted(means, reverse=True)
