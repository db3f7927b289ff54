"""Backtest and a replay of the same candle file through the live session runner
give identical trades, equity curve and journal (apart from the session's own events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laptop_agents.cli import main
from laptop_agents.exit_codes import ExitCode
from laptop_agents.sources.candle_files import write_candles
from laptop_agents.sources.synthetic import SyntheticMarket

pytest.importorskip("laptop_agents.session.runner")


@pytest.mark.parametrize("strategy,candles", [("sma_cross", 2500), ("default", 4000)])
def test_backtest_equals_replay_through_the_live_runner(tmp_path: Path, workspace: Path, strategy: str,
                                                       candles: int) -> None:
    data = write_candles(tmp_path / "c.csv", SyntheticMarket(9, 1_704_067_200_000).candles(0, candles))
    common = ["--strategy", strategy, "--no-report"]
    assert main(["backtest", str(data), *common, "--run-id", "bt"]) == ExitCode.OK
    assert main(["run", "--source", "replay", "--replay-file", str(data), "--strategy", strategy,
                 "--run-id", "rp"]) == ExitCode.OK
    bt, rp = workspace / "runs" / "bt", workspace / "runs" / "rp"
    trades = (bt / "trades.csv").read_text()
    assert trades.count("\n") > 5, "the comparison needs trades"
    assert (rp / "trades.csv").read_text() == trades
    assert (rp / "equity.csv").read_bytes() == (bt / "equity.csv").read_bytes()
    rp_events = [ln for ln in (rp / "events.jsonl").read_text().splitlines() if '"kind":"session"' not in ln]
    assert rp_events == (bt / "events.jsonl").read_text().splitlines()
    s_bt = json.loads((bt / "summary.json").read_text())["metrics"]
    s_rp = json.loads((rp / "summary.json").read_text())["metrics"]
    assert s_bt == s_rp
    assert not (workspace / "state.db").exists()
