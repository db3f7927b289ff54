"""The backtest through the live Engine: an independent sma_cross reference,
determinism, files vs in-memory metrics, the CLI and its errors."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.backtest.runner import MOCK_ORIGIN_TS, mock_candles, run_backtest
from laptop_agents.cli import main
from laptop_agents.config import load_config
from laptop_agents.domain.models import Candle
from laptop_agents.exit_codes import ExitCode
from laptop_agents.sources.candle_files import load_candles, write_candles
from laptop_agents.sources.synthetic import SyntheticMarket

PROFILE = """
trading: {execution_mode: paper, source: replay}
risk: {breaker_consecutive_losses: 1000, breaker_drawdown_pct: 100, max_daily_loss_pct: 100}
broker: {partial_fill_volume_frac: 1.0}
strategy: {name: sma_cross}
"""


def market_candles(n: int, seed: int = 3, volume: float | None = 1000.0) -> list[Candle]:
    cs = SyntheticMarket(seed, MOCK_ORIGIN_TS).candles(0, n)
    return [dataclasses.replace(c, volume=volume) for c in cs] if volume is not None else cs


def reference_sma_cross(candles: list[Candle], *, fast: int = 10, slow: int = 30, equity0: float = 10_000.0,
                        risk_pct: float = 1.0, stop_bps: float = 100.0, taker: float = 6e-4, slip: float = 1e-4,
                        tick: float = 0.1, step: float = 0.0001) -> tuple[list[dict[str, Any]], float]:
    """The rules of sma_cross written out plainly: always in the market, reverse on a cross with
    one market order at the close plus slippage, taker fee split pro rata between closing and opening."""
    closes: list[float] = []
    balance, pos, entry, entry_fee, entry_ts = equity0, 0.0, 0.0, 0.0, 0
    direction = last_dir = 0
    trades: list[dict[str, Any]] = []
    for c in candles:
        closes.append(c.close)
        if len(closes) >= slow:
            f = sum(closes[-fast:]) / fast
            s = sum(closes[-slow:]) / slow
            direction = 1 if f > s else -1 if f < s else direction
        d = direction
        if d == 0 or (pos == 0 and d == last_dir):
            continue
        if pos != 0 and (pos > 0) == (d > 0):
            last_dir = d
            continue
        equity = balance + pos * (c.close - entry)
        stop = round(round((c.close - d * c.close * stop_bps / 1e4) / tick) * tick, 1)
        size = min(equity * risk_pct / 100 / abs(c.close - stop), 200_000 / c.close, equity * 20 / c.close)
        size = round(math.floor(size / step + 1e-9) * step, 4)
        qty = abs(pos) + size
        px = c.close * (1 + slip) if d > 0 else c.close * (1 - slip)
        fee = qty * px * taker
        close_fee = 0.0
        if pos != 0:
            close_fee = fee * abs(pos) / qty
            pnl = pos * (px - entry)
            balance += pnl - close_fee
            trades.append({"side": "long" if pos > 0 else "short", "entry_ts": entry_ts, "entry_price": entry,
                           "exit_ts": c.ts, "exit_price": px, "fees": entry_fee + close_fee,
                           "net_pnl": pnl - entry_fee - close_fee})
        balance -= fee - close_fee
        pos, entry, entry_fee, entry_ts, last_dir = d * size, px, fee - close_fee, c.ts, d
    return trades, balance + pos * (candles[-1].close - entry)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sma_cross_matches_an_independent_reference(tmp_path: Path, workspace: Path) -> None:
    candles = market_candles(1500)
    data = write_candles(tmp_path / "c.csv", candles)
    profile = tmp_path / "ref.yaml"
    profile.write_text(PROFILE)
    assert main(["backtest", str(data), "--profile", str(profile), "--run-id", "ref", "--no-report"]) == 0
    run = workspace / "runs" / "ref"
    got = read_csv(run / "trades.csv")
    expected, final = reference_sma_cross(candles)
    assert len(expected) > 20 and len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g["side"] == e["side"]
        assert int(g["entry_ts"]) == e["entry_ts"] and int(g["exit_ts"]) == e["exit_ts"]
        assert float(g["entry_price"]) == pytest.approx(e["entry_price"], rel=1e-12)
        assert float(g["exit_price"]) == pytest.approx(e["exit_price"], rel=1e-12)
        assert float(g["fees"]) == pytest.approx(e["fees"], rel=1e-9)
        assert float(g["net_pnl"]) == pytest.approx(e["net_pnl"], rel=1e-9, abs=1e-9)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["final_equity"] == pytest.approx(final, rel=1e-12)
    assert summary["metrics"]["trades"] == len(expected)
    assert summary["strategy"] == "sma_cross" and not (run / "report.html").exists()
    assert not (workspace / "state.db").exists()  # a backtest never touches the live store


def test_same_input_same_bytes_and_files_agree_with_memory(tmp_path: Path) -> None:
    config = load_config("backtest", {"strategy.name": "default", "trading.duration_min": 2000}).config
    candles = mock_candles(config)
    runs = [run_backtest(config, candles, run_dir=tmp_path / f"r{i}", progress=False, html=False) for i in range(2)]
    for name in ("events.jsonl", "trades.csv", "equity.csv", "candles.csv"):
        assert (tmp_path / "r0" / name).read_bytes() == (tmp_path / "r1" / name).read_bytes(), name
    r = runs[0]
    assert r.steps == 2000 and r.metrics["trades"] == len(r.trades)
    for key, value in r.metrics.items():
        assert r.summary["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    events = (tmp_path / "r0" / "events.jsonl").read_text().splitlines()
    assert sum('"kind":"trade_closed"' in e for e in events) == r.metrics["trades"]


def test_warmup_candles_are_not_traded_or_counted() -> None:
    config = load_config("backtest", {"strategy.name": "sma_cross"}).config
    candles = market_candles(400)
    full = run_backtest(config, candles, progress=False)
    warm = run_backtest(config, candles, warmup=300, progress=False)
    assert warm.steps == 100 and warm.warmup == 300
    assert all(t.entry_ts >= candles[300].ts for t in warm.trades)
    assert full.steps == 400


def test_constant_funding_is_charged(tmp_path: Path) -> None:
    config = load_config("backtest", {"strategy.name": "sma_cross"}).config
    candles = market_candles(3 * 24 * 60)  # nine funding boundaries: some pass with a position open
    r = run_backtest(config, candles, constant_funding=0.0005, progress=False)
    assert r.metrics["funding_paid"] != 0.0
    none = run_backtest(config, candles, progress=False)
    assert none.metrics["funding_paid"] == 0.0


def test_mock_backtest_without_file(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["backtest", "--strategy", "sma_cross", "--duration", "300", "--run-id", "mock", "--no-report",
               "--seed", "5"])
    assert rc == ExitCode.OK
    cap = capsys.readouterr()
    assert "mock market, seed 5, 300 min" in cap.err
    summary = json.loads((workspace / "runs" / "mock" / "summary.json").read_text())
    assert summary["candles"] == 300 and summary["first_ts"] == MOCK_ORIGIN_TS


def test_cli_errors_have_distinct_codes(tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_candles(tmp_path / "g.csv", market_candles(100))
    dirty = tmp_path / "d.csv"
    rows = [f"{MOCK_ORIGIN_TS + i * 60_000},10,11,9,10,1" for i in (0, 1, 1, 2, 5)]
    dirty.write_text("ts,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    cases = [
        (["backtest", str(dirty), "--strict"], ExitCode.BAD_INPUT, "refused with --strict"),
        (["backtest", str(tmp_path / "nope.csv")], ExitCode.BAD_INPUT, "not found"),
        (["backtest", str(good), "--interval", "15m"], ExitCode.BAD_INPUT, "has 1m candles"),
        (["backtest", str(good), "--strategy", "nosuch"], ExitCode.CONFIG_ERROR, "unknown strategy"),
        (["backtest", str(good), "--run-id", "../x"], ExitCode.CONFIG_ERROR, "bad --run-id"),
        (["validate", str(good), "--grid", "fast=a"], ExitCode.CONFIG_ERROR, "not a number"),
        (["validate", str(good), "--strategy", "sma_cross", "--grid", "nosuch=1"], ExitCode.CONFIG_ERROR,
         "unknown parameter"),
    ]
    for argv, code, text in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert text in err, (argv, err)
        lines = [ln for ln in err.splitlines() if text in ln]
        assert lines, err
    assert main(["backtest", str(dirty), "--run-id", "dirty", "--no-report"]) == ExitCode.OK
    summary = json.loads((workspace / "runs" / "dirty" / "summary.json").read_text())
    kinds = {p["kind"] for p in summary["data_report"]["problems"]}
    assert {"duplicates", "gaps"} <= kinds


def test_loaded_file_round_trip_through_runner(tmp_path: Path) -> None:
    candles = market_candles(300, volume=None)
    path = write_candles(tmp_path / "x.parquet", candles)
    loaded = load_candles(path)
    config = load_config("backtest", {"strategy.name": "sma_cross"}).config
    a = run_backtest(config, loaded.candles, progress=False)
    b = run_backtest(config, candles, progress=False)
    assert a.trades == b.trades and a.metrics == b.metrics


def test_inverse_contract_reports_in_btc(tmp_path: Path) -> None:
    config = load_config("backtest", {"strategy.name": "sma_cross", "trading.symbol": "BTCUSD"}).config
    r = run_backtest(config, market_candles(1500), run_dir=tmp_path / "inv", progress=False, html=False)
    assert r.summary["currency"] == "BTC"
    start = r.starting_equity
    assert start == pytest.approx(10_000.0 / market_candles(1)[0].open)  # quote equity converted at the first price
    assert r.metrics["final_equity"] == pytest.approx(start + r.metrics["net_pnl"])
    assert r.metrics["trades"] > 3 and abs(r.metrics["net_pnl"]) < start


def test_inverse_partial_fills_stay_few_with_real_btc_volumes(tmp_path: Path) -> None:
    """Volume in BTC against an order in USD contracts: once compared without
    conversion, 14 sma_cross entries on BTCUSD produced 16,545 fills."""
    config = load_config("backtest", {"strategy.name": "sma_cross", "trading.symbol": "BTCUSD"}).config
    r = run_backtest(config, market_candles(3000, volume=None), run_dir=tmp_path / "inv", progress=False,
                     html=False)
    events = [json.loads(line) for line in (tmp_path / "inv" / "events.jsonl").read_text().splitlines()]
    orders = [e for e in events if e["kind"] == "order" and e["status"] in ("accepted", "working")]
    fills = [e for e in events if e["kind"] == "fill"]
    assert r.metrics["trades"] > 10
    assert len(fills) <= 3 * len({o["client_id"] for o in orders})
    assert all(f["qty"] == int(f["qty"]) for f in fills)  # whole contracts


def test_the_collector_state_is_restored_after_a_run_even_on_error() -> None:
    import gc

    config = load_config("backtest", {"strategy.name": "sma_cross"}).config
    assert gc.isenabled()
    run_backtest(config, market_candles(200), progress=False)
    assert gc.isenabled()
    gc.disable()
    try:
        run_backtest(config, market_candles(200), progress=False)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(AttributeError):
        run_backtest(config, [*market_candles(50), None], progress=False)  # type: ignore[list-item]
    assert gc.isenabled()
