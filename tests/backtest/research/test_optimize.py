"""``laptop-agents optimize`` on the embedded SQLite storage: a fresh clone with no server, resume and
join, grids on the one sweep engine, the best parameters as a strategy file, bad input in one line."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from laptop_agents.backtest.research.walkforward import DataSpec
from laptop_agents.backtest.validate import parse_grid, walk_forward
from laptop_agents.cli import main
from laptop_agents.config import load_config
from laptop_agents.exit_codes import ExitCode
from tests.backtest.research.helpers import (
    PROJECT_ROOT,
    candle_file,
    cli,
    env_for,
    error_line,
    only_study,
    open_study,
    read_json,
    run_dir,
    score_alone,
    trial_workers,
)

SMALL = ["--strategy", "sma_cross", "--splits", "2", "--train-frac", "0.6", "--min-trades", "1"]


def test_optimize_from_a_fresh_clone_with_no_server(tmp_path: Path) -> None:
    """Everything a study needs comes with the repository: no database server, no configuration."""
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{PROJECT_ROOT}", str(clone)], check=True,
                   timeout=120)
    ws = tmp_path / "ws"
    data = candle_file(tmp_path, 2400)
    env = env_for(ws, PYTHONPATH=str(clone / "src"), HOME=str(tmp_path / "home"))
    which = subprocess.run([*cli_python(), "-c", "import laptop_agents; print(laptop_agents.__file__)"], env=env,
                           capture_output=True, text=True, check=True)
    assert which.stdout.strip().startswith(str(clone))  # the clone's code, not the worktree's
    res = cli(ws, "optimize", str(data), *SMALL, "--trials", "6", cwd=clone, env=env)
    assert res.returncode == ExitCode.OK, res.stderr
    assert (ws / "studies.db").is_file()
    out = run_dir(ws)
    doc = read_json(out / "study.json")
    assert doc["storage"] == f"sqlite:///{ws / 'studies.db'}"
    assert doc["counts"]["complete"] + doc["counts"]["pruned"] == 6
    with open(out / "leaderboard.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and rows[0]["state"] == "COMPLETE" and {"fast", "slow"} <= set(rows[0])
    assert (out / "study.html").read_text().count("Plotly.newPlot") == 1
    best = out / "best-strategy.yaml"
    assert doc["best"]["reproduced"] is True
    assert yaml.safe_load(best.read_text())["fast"] == doc["best"]["params"]["fast"]
    # The strategy file is taken as is by backtest and by a (mock) live session.
    bt = cli(ws, "backtest", str(data), "--strategy-file", str(best), cwd=clone, env=env)
    assert bt.returncode == ExitCode.OK, bt.stderr
    run = cli(ws, "run", "--strategy-file", str(best), "--source", "mock", "--speed", "600", "--warmup-bars", "30",
              "--duration", "3", cwd=clone, env=env)
    assert run.returncode == ExitCode.OK, run.stderr


def cli_python() -> list[str]:
    import sys

    return [sys.executable]


def test_resume_join_and_reproduce(tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = candle_file(tmp_path, 2400)
    url = f"sqlite:///{workspace / 'studies.db'}"
    assert main(["optimize", str(data), *SMALL, "--trials", "4"]) == ExitCode.OK
    first = capsys.readouterr()
    assert "created, 0 of 4 trials finished" in first.err
    study = only_study(url)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 4
    # The same command with a larger budget continues the same study (the default name is stable).
    assert main(["optimize", str(data), *SMALL, "--trials", "7"]) == ExitCode.OK
    assert "joined, 4 of 7 trials finished" in capsys.readouterr().err
    study = only_study(url)
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(trials) == 7
    # Trial k's parameters depend only on the seed and what came before: a fresh study replays them.
    again = tmp_path / "again.db"
    assert main(["optimize", str(data), *SMALL, "--trials", "7", "--storage", str(again)]) == ExitCode.OK
    capsys.readouterr()
    replay = only_study(f"sqlite:///{again}")
    assert [t.params for t in replay.get_trials()] == [t.params for t in study.get_trials()]
    # Another setting under the same name is refused in one line; the study is untouched.
    name = study.study_name
    rc = main(["optimize", str(data), *SMALL, "--trials", "9", "--study", name, "--metric", "return_pct"])
    assert rc == ExitCode.CONFIG_ERROR
    line = error_line(capsys.readouterr().err)
    assert f"study {name!r}" in line and "metric" in line and "sharpe" in line and "return_pct" in line
    assert len(open_study(url, name).get_trials()) == 7
    # The best parameters, backtested alone window by window, give the study's score.
    out = run_dir(workspace)
    doc = read_json(out / "study.json")
    alone = score_alone(out / "best-strategy.yaml", data, splits=2, train_frac=0.6)
    assert alone == pytest.approx(doc["best"]["value"], rel=1e-9, abs=1e-12)
    assert doc["best"]["value"] == max(t.value for t in trials if t.state == TrialState.COMPLETE
                                       and t.user_attrs["feasible"])
    # The study report: its tables, and the figures (history, importances, parameters, the best trial's
    # equity on each train and test window).
    page = (out / "study.html").read_text()
    for table in ("settings", "best-params", "best-folds", "overfitting", "leaderboard"):
        assert f'id="{table}"' in page, table
    figures = json.loads(page.split('id="study-data">', 1)[1].split("</script>", 1)[0])["figures"]
    by_id = {f["id"]: f for f in figures}
    assert {"history", "parallel", "equity"} <= set(by_id)
    assert sorted(t["name"] for t in by_id["equity"]["data"]) == ["fold 0 test", "fold 0 train", "fold 1 test",
                                                                   "fold 1 train"]
    history = by_id["history"]["data"]
    assert len(history[0]["x"]) + len(history[1]["x"]) == sum(1 for t in trials if t.state == TrialState.COMPLETE)


def test_grid_runs_each_combination_once_on_the_same_engine_as_validate(tmp_path: Path, workspace: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = candle_file(tmp_path, 2400)
    grid = "fast=5,10;slow=20,40"
    assert main(["optimize", str(data), *SMALL, "--grid", grid, "--trials", "99", "--no-prune",
                 "--min-trades", "0"]) == ExitCode.OK
    capsys.readouterr()
    study = only_study(f"sqlite:///{workspace / 'studies.db'}")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted((t.params["fast"], t.params["slow"]) for t in done) == [(5, 20), (5, 40), (10, 20), (10, 40)]
    assert len(study.get_trials()) == 4
    config = load_config("paper", {"strategy.name": "sma_cross"}).config
    doc = walk_forward(config, DataSpec(file=str(data)), parse_grid(grid), n_candles=2400, splits=2, train_frac=0.6,
                       jobs=1)
    for t in done:
        ci = t.user_attrs["combo"]
        mine = [(f["train"], f["test"]) for f in t.user_attrs["folds"]]
        theirs = [(r["train"], r["test"]) for r in doc["results"] if r["combo"] == ci]
        assert mine == theirs


def test_two_workers_share_the_embedded_study(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    data = candle_file(tmp_path, 3000)
    res = cli(ws, "optimize", str(data), *SMALL, "--trials", "8", "--workers", "2", "--no-prune")
    assert res.returncode == ExitCode.OK, res.stderr
    study = only_study(f"sqlite:///{ws / 'studies.db'}")
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) >= 8
    assert len(trial_workers(study)) == 2  # both processes ran trials


@pytest.mark.parametrize("args,words", [
    (["--trials", "0"], ["--trials 0", ">= 1"]),
    (["--max-drawdown", "0"], ["--max-drawdown 0", "percent"]),
    (["--workers", "0"], ["--workers 0"]),
    (["--space", "nope.yaml"], ["space file", "cannot read it"]),
    (["--grid", "fast=1,2", "--space", "x.yaml"], ["--grid or --space"]),
    (["--grid", "fats=1,2"], ["strategy error", "unknown parameter 'fats'"]),
    (["--splits", "500"], ["too few"]),
    (["--study", "../x"], ["bad --study"]),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str],
                                             args: list[str], words: list[str]) -> None:
    data = candle_file(tmp_path, 600)
    rc = main(["optimize", str(data), *SMALL, *args])
    assert rc == ExitCode.CONFIG_ERROR
    line = error_line(capsys.readouterr().err)
    for w in words:
        assert w in line, (w, line)
    assert not (workspace / "runs").exists() or not list((workspace / "runs").glob("optimize-*"))


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path, workspace: Path, free_port: int,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = candle_file(tmp_path, 600)
    rc = main(["optimize", str(data), *SMALL, "--storage", f"postgresql://la:hunter2secret@127.0.0.1:{free_port}/x"])
    assert rc == ExitCode.CONFIG_ERROR
    line = error_line(capsys.readouterr().err)
    assert "cannot open the study storage postgresql://la:***@127.0.0.1" in line
    assert "hunter2secret" not in line


@pytest.mark.slow
def test_ctrl_c_puts_the_trial_back_and_the_same_command_resumes(tmp_path: Path) -> None:
    import signal
    import time

    from laptop_agents.sources.candle_files import write_candles
    from tests.backtest.research.helpers import cli_cmd
    from tests.backtest.test_backtest import market_candles

    ws = tmp_path / "ws"
    data = write_candles(tmp_path / "btc.parquet", market_candles(60_000, seed=4))
    space = tmp_path / "space.yaml"
    space.write_text("fast: {low: 3, high: 20}\nslow: {low: 30, high: 120, step: 5}\n")  # every pair is valid
    args = ["optimize", str(data), *SMALL, "--trials", "5", "--no-prune", "--study", "s", "--space", str(space),
            "--max-drawdown", "100"]
    url = f"sqlite:///{ws / 'studies.db'}"
    proc = subprocess.Popen(cli_cmd(ws, *args), env=env_for(ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
        if not (ws / "studies.db").exists():
            continue
        try:
            trials = open_study(url, "s").get_trials(deepcopy=False)
        except Exception:  # not created yet, or its tables are being made right now
            continue
        # a running trial whose parameters are all drawn (a trial is RUNNING a moment before they are)
        running = [t for t in trials if t.state == TrialState.RUNNING and len(t.params) == 2]
        if any(t.state == TrialState.COMPLETE for t in trials) and running:
            interrupted = running[0]
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.OK, err
    assert "interrupted" in err and "run the same command again to resume" in err and "Traceback" not in err
    study = open_study(url, "s")
    states = {t.number: t.state for t in study.get_trials()}
    assert states[interrupted.number] == TrialState.FAIL
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == interrupted.number
    res = cli(ws, *args)
    assert res.returncode == ExitCode.OK, res.stderr
    study = open_study(url, "s")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) >= 5 and not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))
    rerun = [t for t in done if t.system_attrs.get("failed_trial") == interrupted.number]
    assert len(rerun) == 1 and rerun[0].params == interrupted.params


EXAMPLE = PROJECT_ROOT / "examples" / "strategies" / "ema_pullback.py"


def test_a_user_strategy_by_path_is_optimized_on_sensible_ranges(tmp_path: Path, workspace: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The worked example declares no search hints: the study searches its validation bounds made
    searchable (never from 5e-324), says so in one note, and its best file runs the same strategy."""
    data = candle_file(tmp_path, 2400)
    spec = f"{EXAMPLE}:EmaPullback"
    code = main(["optimize", str(data), "--strategy", spec, "--splits", "2", "--train-frac", "0.6",
                 "--min-trades", "0", "--trials", "5", "--run-id", "opt"])
    err = capsys.readouterr().err
    assert code == ExitCode.OK, err
    assert "stop_atr: 0.02 .. 20 (log scale)" in err and "target_r: 0.02 .. 20 (log scale)" in err
    assert "fast: 2 .. 1000 (log scale)" in err and "cooldown: 0 .. 10000" in err
    assert "e-324" not in err
    assert "note: PullbackParams declares no search hints" in err
    doc = read_json(workspace / "runs" / "opt" / "study.json")
    assert doc["strategy"] == "ema_pullback.py:EmaPullback" or doc["strategy"].endswith("EmaPullback")
    tried = [row["params"] for row in doc.get("trials", [])] or [doc["best"]["params"]]
    for params in tried:
        assert 0.02 <= params["stop_atr"] <= 20 and 2 <= params["fast"] <= 1000
    best = workspace / "runs" / "opt" / "best-strategy.yaml"
    chosen = yaml.safe_load(best.read_text())
    assert chosen["stop_atr"] == doc["best"]["params"]["stop_atr"]
    assert main(["backtest", str(data), "--strategy", spec, "--strategy-file", str(best), "--run-id", "bt"]) \
        == ExitCode.OK
    capsys.readouterr()
