"""``--run-id`` names a directory under ``<workspace>/runs``: it is checked
before anything is started, never escapes the workspace and never reuses an
earlier run's directory (whose files would be overwritten and whose event log
appended to)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from laptop_agents.workspace import RunIdError, Workspace, new_run_id, validate_run_id
from tests.session.helpers import FAST, PROJECT_ROOT, run, session_env


@pytest.mark.parametrize("good", ["r1", "night-2026-01-01", "a.b_c-d", "A" * 120, "7"])
def test_good_run_ids_pass(good: str) -> None:
    assert validate_run_id(good) == good


@pytest.mark.parametrize("bad", [
    "", ".", "..", "../..", "../x", "a/b", "a\\b", "/tmp/x", "C:x", "-x", ".hidden", "a b", "x" * 121,
    "trailing.", "CON", "nul", "com1.txt", "r\u00e9sum\u00e9", "a\x00b", "a\nb",
])
def test_bad_run_ids_are_refused_with_the_allowed_form(bad: str) -> None:
    with pytest.raises(RunIdError) as info:
        validate_run_id(bad)
    msg = str(info.value)
    assert "\n" not in msg and "--run-id" in msg
    assert "letters, digits" in msg and "120" in msg


def test_run_dir_refuses_what_would_escape(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    with pytest.raises(RunIdError):
        ws.run_dir("../../etc")
    with pytest.raises(RunIdError):
        ws.run_dir(str(tmp_path / "abs"))


def test_new_run_dir_is_created_exclusively(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    d = ws.new_run_dir("r1")
    assert d.is_dir() and d == ws.runs_dir / "r1"
    with pytest.raises(RunIdError, match="already exists"):
        ws.new_run_dir("r1")


def test_a_generated_run_id_is_kind_utc_second_and_label() -> None:
    t = 1_699_920_000_000 + 3_723_999  # 2023-11-14 01:02:03.999 UTC: the second, not rounded up
    run_id = new_run_id("backtest", "sma_cross", clock=lambda: t)
    assert run_id == "backtest-20231114-010203-sma_cross"
    assert validate_run_id(run_id) == run_id


def test_claim_run_dir_numbers_the_ids_of_one_second(tmp_path: Path) -> None:
    """Two backtests started in the same second never share a directory."""
    ws = Workspace(tmp_path / "ws").ensure()
    base = new_run_id("backtest", "default", clock=lambda: 0)
    assert [ws.claim_run_dir(base) for _ in range(3)] == [base, f"{base}-2", f"{base}-3"]
    assert all((ws.runs_dir / name).is_dir() for name in (base, f"{base}-2", f"{base}-3"))
    (ws.runs_dir / f"{base}-4").mkdir()  # taken by another process a moment ago
    assert ws.claim_run_dir(base) == f"{base}-5"


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("bad", ["../../escaped", "ABS"])
def test_session_refuses_an_escaping_run_id(tmp_path: Path, bad: str) -> None:
    ws = tmp_path / "deep" / "ws"
    target = str(tmp_path / "abs-run") if bad == "ABS" else bad
    code, out, err = run(ws, *FAST, "--duration", "2", "--run-id", target)
    assert code == ExitCode.CONFIG_ERROR, (out, err)
    line = _one_error_line(err)
    assert "--run-id" in line and "letters, digits" in line
    assert not (tmp_path / "deep" / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert not (tmp_path / "abs-run").exists()
    assert not (ws / "state.db").exists()  # nothing was started


def test_session_refuses_to_reuse_a_run_id(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "2", "--run-id", "night1")
    assert code == ExitCode.OK, err
    run_dir = ws / "runs" / "night1"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert "events.jsonl" in before and "summary.json" in before
    code, out, err = run(ws, *FAST, "--duration", "2", "--run-id", "night1")
    assert code == ExitCode.CONFIG_ERROR, (out, err)
    line = _one_error_line(err)
    assert "already exists" in line and str(run_dir) in line
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert after == before  # the earlier run's files are untouched


def test_replay_refuses_a_bad_or_reused_run_id(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(ws, *FAST, "--duration", "2", "--run-id", "rec")
    assert code == ExitCode.OK, err
    recording = ws / "runs" / "rec" / "candles.csv"  # a candle file a replay accepts
    assert recording.is_file()
    env = session_env(ws)
    for run_id, needle in (("../out", "letters, digits"), ("rec", "already exists")):
        proc = subprocess.run([sys.executable, "-m", "laptop_agents", "replay", str(recording), "--run-id", run_id],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == ExitCode.CONFIG_ERROR, (proc.stdout, proc.stderr)
        assert needle in _one_error_line(proc.stderr)
    assert not (ws / "out").exists()


def test_backtest_refuses_an_escaping_run_id(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "laptop_agents", "backtest", "--workspace", str(ws), "--duration",
                           "30", "--run-id", "../../bt"], cwd=PROJECT_ROOT, env=session_env(ws),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == ExitCode.CONFIG_ERROR, (proc.stdout, proc.stderr)
    assert "letters, digits" in _one_error_line(proc.stderr)
    assert not (tmp_path.parent / "bt").exists()
