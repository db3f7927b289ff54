"""``laptop-agents drill``'s refusals: one line, a distinct exit code, nothing started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from tests.drill.helpers import PROJECT_ROOT, drill_env


def _drill(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    ws = tmp_path / "ws"
    return subprocess.run([sys.executable, "-m", "laptop_agents", "drill", "--workspace", str(ws), *args],
                          cwd=PROJECT_ROOT, env=drill_env(ws), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "code", "text"), [
    # Live faults need live execution: --live-fake.
    (["--faults", "kill9,place_timeout"], ExitCode.CONFIG_ERROR,
     "fault kind 'place_timeout' in --faults needs --live-fake"),
    (["--live-fake", "--faults", "kill9,meteor"], ExitCode.CONFIG_ERROR,
     "unknown fault kind 'meteor' in --faults: allowed are all, none, socket_drop"),
    (["--quick", "--soak"], ExitCode.CONFIG_ERROR, "--quick and --soak exclude each other"),
    (["--faults", "kill9,meteor"], ExitCode.CONFIG_ERROR, "unknown fault kind 'meteor' in --faults: allowed are"),
    (["--days", "0"], ExitCode.CONFIG_ERROR, "--days must be between 0.02 and 400"),
    (["--speed", "100000"], ExitCode.CONFIG_ERROR, "--speed must be between 1 and 20000"),
])
def test_refused_in_one_line(tmp_path: Path, args: list[str], code: int, text: str) -> None:
    res = _drill(tmp_path, *args)
    assert res.returncode == code, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "ws" / "drills").exists()  # nothing was started
