"""One study on a real PostgreSQL server, worked on by two worker processes (two "machines"): the
trials are split between them, the trial of the one killed with SIGKILL mid-trial is re-run by the
other, and the best parameters reproduce their score when backtested alone."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from laptop_agents.exit_codes import ExitCode
from tests.backtest.research.helpers import cli_cmd, env_for, open_study, read_json, run_dir, score_alone
from tests.backtest.research.postgres import PgServer, postgres_server

pytestmark = pytest.mark.slow


@pytest.fixture
def pg() -> Iterator[PgServer]:
    with postgres_server() as server:
        yield server


def _write_space(path: Path) -> Path:
    path.write_text("fast: {low: 3, high: 20}\nslow: {low: 30, high: 120, step: 5}\n")  # every pair is valid
    return path


def test_two_workers_one_killed_on_postgres(tmp_path: Path, pg: PgServer) -> None:
    from laptop_agents.sources.candle_files import write_candles
    from tests.backtest.test_backtest import market_candles

    data = write_candles(tmp_path / "btc.parquet", market_candles(120_000, seed=9))
    space = _write_space(tmp_path / "space.yaml")
    args = ["optimize", str(data), "--strategy", "sma_cross", "--space", str(space), "--splits", "2",
            "--train-frac", "0.6", "--trials", "8", "--study", "shared", "--storage", pg.url, "--workers", "1",
            "--heartbeat", "1", "--no-prune", "--min-trades", "0", "--max-drawdown", "100"]
    procs: dict[str, subprocess.Popen[str]] = {}
    logs: dict[str, Path] = {}
    for name in ("a", "b"):  # two "machines": their own workspaces, one study
        ws = tmp_path / f"ws-{name}"
        logs[name] = tmp_path / f"{name}.log"
        with open(logs[name], "w") as fh:
            procs[name] = subprocess.Popen(cli_cmd(ws, *args), env=env_for(ws), stdout=fh, stderr=subprocess.STDOUT,
                                           text=True)
    a, b = procs["a"], procs["b"]
    try:
        deadline = time.monotonic() + 240
        killed = None
        while killed is None:
            assert time.monotonic() < deadline, logs["b"].read_text()
            assert b.poll() is None, f"worker b ended early: {logs['b'].read_text()}"
            time.sleep(0.2)
            try:
                study = open_study(pg.url, "shared")
            except KeyError:  # not created yet
                continue
            mine = [t for t in study.get_trials(deepcopy=False) if str(t.user_attrs.get("worker", "")).endswith(f":{b.pid}")]
            # A running trial whose parameters are all drawn (a trial is RUNNING a moment before they are)
            running = [t for t in mine if t.state == TrialState.RUNNING and len(t.params) == 2]  # fast, slow
            if any(t.state == TrialState.COMPLETE for t in mine) and running:
                os.kill(b.pid, signal.SIGKILL)  # mid-trial: no chance to clean up
                killed = running[0]
        b.wait(timeout=30)
        assert a.wait(timeout=300) == ExitCode.OK, logs["a"].read_text()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)

    study = open_study(pg.url, "shared")
    trials = study.get_trials()
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    assert len(by_state[TrialState.COMPLETE]) >= 8
    assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
    # The killed trial was failed by the survivor and re-run with the same parameters.
    lost = next(t for t in trials if t.number == killed.number)
    assert lost.state == TrialState.FAIL
    rerun = [t for t in by_state[TrialState.COMPLETE] if t.system_attrs.get("failed_trial") == killed.number]
    assert killed.params and lost.params == killed.params
    assert len(rerun) == 1 and rerun[0].params == killed.params
    assert str(rerun[0].user_attrs["worker"]).endswith(f":{a.pid}")
    # The trials were split between the two workers.
    workers = {str(t.user_attrs["worker"]).rsplit(":", 1)[1] for t in by_state[TrialState.COMPLETE]}
    assert workers == {str(a.pid), str(b.pid)}
    # The best parameters, backtested alone, give the study's best score.
    out = run_dir(tmp_path / "ws-a")
    doc = read_json(out / "study.json")
    best = max((t for t in by_state[TrialState.COMPLETE] if t.user_attrs["feasible"]), key=lambda t: (t.value, -t.number))
    assert doc["best"]["trial"] == best.number and doc["best"]["value"] == best.value
    assert doc["storage"] == pg.url  # no password in this URL; a password would be masked
    alone = score_alone(out / "best-strategy.yaml", data, splits=2, train_frac=0.6)
    assert alone == pytest.approx(best.value, rel=1e-9, abs=1e-12)
