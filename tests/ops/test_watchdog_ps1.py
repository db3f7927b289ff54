"""scripts/watchdog.ps1, the thin Windows wrapper, run by a real PowerShell when one is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from laptop_agents.ops.killswitch import request_stop

PS1 = Path(__file__).resolve().parents[2] / "scripts" / "watchdog.ps1"


@pytest.mark.skipif(not (shutil.which("pwsh") or shutil.which("powershell")), reason="PowerShell not installed")
def test_watchdog_ps1_calls_the_watchdog(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    shell = shutil.which("pwsh") or shutil.which("powershell")
    assert shell is not None
    request_stop(ws / "kill.txt", "left over")  # the session refuses at once: a quick, known exit
    env = {k: v for k, v in os.environ.items() if k != "LAPTOP_AGENTS_WORKSPACE"}
    env["PYTHON"] = sys.executable
    proc = subprocess.run([shell, "-NoProfile", "-NonInteractive", "-File", str(PS1), "-RestartDelay", "0.5",
                           "--", "--workspace", str(ws), "--source", "mock"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == ExitCode.PREFLIGHT_FAILED, proc.stdout + proc.stderr
    assert f"watchdog: workspace {ws}" in proc.stdout
    assert "--source mock" in proc.stdout
