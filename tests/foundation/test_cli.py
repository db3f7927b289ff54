"""The CLI through real processes, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from laptop_agents import cli
from laptop_agents.exit_codes import ExitCode

SEED_FLAGS = [
    "--mode", "--async", "--sync", "--source", "--symbol", "--interval", "--duration",
    "--stale-timeout", "--execution-mode", "--risk-pct", "--stop-bps", "--tp-r",
    "--strategy", "--preflight", "--dashboard",
]


def run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        module: str = "laptop_agents") -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=60)


def test_seed_help_lists_every_seed_flag() -> None:
    out = run(["--help"], module="laptop_agents.run")
    assert out.returncode == 0
    for flag in SEED_FLAGS:
        assert flag in out.stdout, flag
    for mode in ("live-session", "backtest", "replay", "validate", "selftest"):
        assert mode in out.stdout
    assert "{mock,bitunix,replay}" in out.stdout and "{paper,live}" in out.stdout


def test_subcommands_listed() -> None:
    out = run(["--help"])
    assert out.returncode == 0
    for name in ("run", "backtest", "replay", "validate", "preflight", "status", "stop", "report", "watchdog"):
        assert name in out.stdout


def test_bad_flag_is_one_line_exit_2() -> None:
    out = run(["--mode", "live-session", "--bogus-flag"], module="laptop_agents.run")
    assert out.returncode == ExitCode.CONFIG_ERROR
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--bogus-flag" in lines[0]


def test_bad_choice_is_one_line_exit_2() -> None:
    out = run(["--mode", "live-session", "--source", "kraken"], module="laptop_agents.run")
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "kraken" in lines[0] and "mock" in lines[0]


def test_bad_config_value_is_one_line_exit_2(workspace: Path) -> None:
    out = run(["config", "show", "--risk-pct", "150"])
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert "risk.risk_pct" in lines[0] and "150" in lines[0] and "<= 10" in lines[0]


def test_bad_symbol_flag_exit_2(workspace: Path) -> None:
    out = run(["--mode", "selftest", "--symbol", "ETH-USDT"], module="laptop_agents.run")
    assert out.returncode == 2
    assert "ETH-USDT" in out.stderr and "BTCUSDT" in out.stderr


def test_unknown_profile_key_exit_2(workspace: Path, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("trading:\n  simbol: BTCUSDT\n")
    out = run(["config", "show", "--profile", str(profile)])
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "trading.simbol" in lines[0] and "unknown" in lines[0]


def test_bad_env_value_exit_2(workspace: Path) -> None:
    out = run(["config", "show"], env={"LA_SYSTEM__STALE_TIMEOUT_S": "-5"})
    assert out.returncode == 2
    assert "system.stale_timeout_s" in out.stderr and "env LA_SYSTEM__STALE_TIMEOUT_S" in out.stderr


def test_stop_creates_kill_file_at_absolute_workspace_path(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run(["stop", "--force", "--workspace", str(ws)], cwd=elsewhere)  # nothing runs: --force arms it
    assert out.returncode == 0, out.stderr
    assert (ws / "kill.txt").is_file()
    assert not (elsewhere / "kill.txt").exists()
    assert str(ws.resolve() / "kill.txt") in " ".join(out.stdout.split())
    assert json.loads((ws / "kill.txt").read_text())["reason"] == "user stop"


def test_relative_workspace_is_made_absolute(tmp_path: Path) -> None:
    out = run(["stop", "--force", "--workspace", "rel-ws"], cwd=tmp_path)
    assert out.returncode == 0
    assert (tmp_path / "rel-ws" / "kill.txt").is_file()
    assert str((tmp_path / "rel-ws").resolve()) in out.stdout


def test_config_show_prints_sources_and_masks_secrets(workspace: Path) -> None:
    secret = "s3cr3t-value-xyz"
    out = run(["config", "show", "--symbol", "btc/usdt"], env={"BITUNIX_API_SECRET": secret,
                                                                "LA_TRADING__INTERVAL": "5m"})
    assert out.returncode == 0, out.stderr
    assert secret not in out.stdout + out.stderr
    assert "BTCUSDT" in out.stdout and "cli" in out.stdout and "LA_TRADING__INTERVAL" in out.stdout
    assert "***set***" in out.stdout


def test_every_command_names_a_handler_that_exists() -> None:
    for cmd in cli.COMMANDS.values():
        assert callable(cli._load_handler(cmd)), cmd.name


def test_live_execution_with_every_gate_open_and_no_exchange_stops_as_a_crash(workspace: Path) -> None:
    """Every gate open, the exchange unreachable (a closed loopback port): the
    start-up reconciliation cannot read it, so the session stops as a crash (a
    watchdog retries), says why in one line, and shows no key."""
    keys = {"BITUNIX_API_KEY": "k" * 16, "BITUNIX_API_SECRET": "s" * 16}
    out = run(["run", "--workspace", str(workspace), "--source", "mock", "--speed", "600", "--execution-mode",
               "live", "--enable-live", "--bitunix-rest-url", "http://127.0.0.1:9",
               "--bitunix-private-ws-url", "ws://127.0.0.1:9/private/", "--no-live-view"], env=keys)
    assert out.returncode == ExitCode.CRASH, out.stdout + out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("stopped:"))
    assert "crash" in line and "not sent" in line, line
    assert "k" * 16 not in out.stdout + out.stderr and "s" * 16 not in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
