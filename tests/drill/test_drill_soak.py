"""A short soak (one simulated day) for the default suite: one faulted session
under the watchdog, the schedule's faults, resources sampled; it must pass,
with the resource checks judged (not skipped). The month is run by hand:
``laptop-agents drill --soak --days 30`` (README, Reliability)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from tests.drill.helpers import PROJECT_ROOT, drill_env, scorecard_of


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_one_day_soak_passes_with_flat_resources(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "laptop_agents", "drill", "--soak", "--days", "1", "--speed", "600"],
                         cwd=PROJECT_ROOT, env=drill_env(tmp_path), capture_output=True, text=True, timeout=580)
    card = scorecard_of(tmp_path)
    assert res.returncode == ExitCode.OK, "\n".join([res.stdout[-4000:], res.stderr[-2000:]])
    checks = {c["name"]: c for c in card["invariants"]}
    for name in ("rss_flat", "fds_flat", "tasks_flat", "wal_bounded", "ledger_matches_replay",
                 "candles_processed_once"):
        assert checks[name]["ok"], checks[name]
    assert checks["rss_flat"]["measured"]["life_s"] >= 45
    series = card["runs"]["faulted"]["series"]
    assert len(series["rss_mb"]) > 30 and len(series["tasks"]) > 10 and len(series["wal_bytes"]) > 30
    assert "baseline" not in card["runs"]  # a soak is one run
