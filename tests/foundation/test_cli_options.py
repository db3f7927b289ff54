"""Each command shows and accepts only its own options; a foreign flag is one
line and exit 2 (it used to be silently ignored); the seed door keeps every
seed flag; ``laptop-agents strategies`` lists the strategy parameters."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from laptop_agents import cli
from laptop_agents.exit_codes import ExitCode
from laptop_agents.strategy.params import PRESET_NAMES, describe_strategy
from tests.foundation.test_cli import SEED_FLAGS, run

SESSION_ONLY = ["--speed", "--health-port", "--source", "--execution-mode", "--enable-live", "--record",
                "--warmup-bars", "--no-flatten", "--bitunix-ws-url", "--stale-timeout", "--dashboard"]
STRATEGY = ["--strategy", "--strategy-file", "--risk-pct", "--stop-bps", "--tp-r", "--equity"]


def help_of(command: str) -> str:
    return cli.build_parser().commands[command].format_help()


def options_of(command: str) -> set[str]:
    return {s for s in cli.build_parser().commands[command]._option_string_actions if s.startswith("--")}


def test_run_help_lists_every_session_flag() -> None:
    text = help_of("run")
    for flag in [f for f in SEED_FLAGS if f != "--mode"] + SESSION_ONLY + STRATEGY + ["--run-id", "--seed"]:
        assert flag in text, flag


@pytest.mark.parametrize(
    ("command", "accepts", "refuses"),
    [
        ("backtest", STRATEGY + ["--symbol", "--interval", "--duration", "--seed", "--run-id", "--data", "--strict",
                                 "--funding-rate", "--no-report"], SESSION_ONLY + ["--async", "--sync"]),
        ("validate", STRATEGY + ["--grid", "--splits", "--train-frac", "--jobs", "--data", "--funding-rate"],
         SESSION_ONLY + ["--no-report", "--async"]),
        ("replay", STRATEGY + ["--realtime", "--replay-file", "--health-port", "--dashboard", "--stale-timeout",
                               "--run-id", "--strict"],
         ["--speed", "--seed", "--source", "--duration", "--execution-mode", "--record", "--funding-rate",
          "--no-report"]),
        ("preflight", SESSION_ONLY + STRATEGY, ["--run-id", "--preflight", "--data"]),
        ("config", SESSION_ONLY + STRATEGY, ["--run-id", "--preflight"]),
        ("status", [], SESSION_ONLY + STRATEGY + ["--duration", "--reason"]),
        ("stop", ["--reason", "--flatten", "--no-flatten"],
         [f for f in SESSION_ONLY if f != "--no-flatten"] + STRATEGY + ["--duration"]),
        ("dashboard", ["--port", "--host"], SESSION_ONLY + STRATEGY + ["--duration", "--dashboard-port"]),
        ("selftest", [], SESSION_ONLY + STRATEGY + ["--symbol"]),
        ("report", [], SESSION_ONLY + STRATEGY + ["--run-id"]),
        ("strategies", [], SESSION_ONLY + STRATEGY),
    ],
)
def test_each_command_help_lists_what_it_accepts_and_nothing_else(
    command: str, accepts: list[str], refuses: list[str]
) -> None:
    text, opts = help_of(command), options_of(command)
    common = ["--workspace", "--profile", "--log-level"]
    for flag in accepts + common:
        assert flag in opts and flag in text, flag
    for flag in refuses:
        assert flag not in opts, flag
        assert not re.search(rf"(\[|^\s+){re.escape(flag)}\b", text, re.M), flag  # not in usage nor listed


@pytest.mark.parametrize(
    ("args", "flag", "owners"),
    [
        (["backtest", "--health-port", "9"], "--health-port", "run, replay, preflight, config"),
        (["status", "--speed", "5"], "--speed", "run, preflight, config, fake-exchange, drill"),
        (["replay", "x.csv", "--duration", "5"], "--duration", "run, backtest, validate, optimize, preflight, config"),
        (["stop", "--source=mock"], "--source", "run, preflight, config"),
        (["validate", "x.csv", "--no-report"], "--no-report", "backtest, optimize"),
    ],
)
def test_a_foreign_flag_is_refused_in_one_line_with_exit_2(tmp_path: Path, args: list[str], flag: str,
                                                           owners: str) -> None:
    ws = tmp_path / "ws"
    out = run([*args, "--workspace", str(ws)], cwd=tmp_path)
    assert out.returncode == ExitCode.CONFIG_ERROR
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert f"laptop-agents {args[0]}: error: unrecognized arguments" in lines[0]
    assert f"{flag} is an option of {owners} only" in lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not ws.exists()  # refused before anything was done (no kill file for `stop`)


def test_every_seed_flag_still_parses_with_every_mode() -> None:
    """The seed door is flat, as the seed was: every seed flag with every --mode."""
    parser = cli.build_seed_parser()
    values: dict[str, list[str]] = {
        "--source": ["--source", "mock"], "--symbol": ["--symbol", "BTCUSDT"], "--interval": ["--interval", "5m"],
        "--duration": ["--duration", "2"], "--stale-timeout": ["--stale-timeout", "30"],
        "--execution-mode": ["--execution-mode", "paper"], "--risk-pct": ["--risk-pct", "0.5"],
        "--stop-bps": ["--stop-bps", "80"], "--tp-r": ["--tp-r", "2"], "--strategy": ["--strategy", "tight"],
        "--preflight": ["--preflight"], "--dashboard": ["--dashboard"],
    }
    for mode in cli.SEED_MODES:
        for sync in ("--async", "--sync"):
            argv = ["--mode", mode, sync] + [a for flag in values for a in values[flag]]
            args = parser.parse_args(argv)
            assert args.mode == mode and args.run_async is (sync == "--async")
            over = cli.config_overrides(args)
            assert over["trading.duration_min"] == 2.0 and over["strategy.name"] == "tight"
            assert over["system.stale_timeout_s"] == 30.0 and over["system.dashboard"] is True
            assert args.preflight is True


def test_strategy_help_points_to_the_strategies_command() -> None:
    assert "laptop-agents strategies" in " ".join(help_of("run").split())
    assert "laptop-agents strategies" in " ".join(help_of("backtest").split())
    assert "laptop-agents strategies" in " ".join(cli.build_parser().format_help().split())


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if k in ("strategy", "symbols"):
            continue
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _as_listed(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return f"{value:g}"


def test_strategies_lists_every_parameter_of_every_preset(workspace: Path) -> None:
    out = run(["strategies"])
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if line.startswith("  ") and parts and parts[0] != "parameter" and not line.startswith("  per-symbol"):
            rows.setdefault(parts[0], []).append(line)
    for name in PRESET_NAMES:
        assert out.stdout.count(f"\n{name} -- ") + out.stdout.startswith(f"{name} -- ") == 1, name
        raw = json.loads(resources.files("laptop_agents.strategy").joinpath("presets", f"{name}.json").read_text())
        for key, value in _leaves(raw).items():
            shown = _as_listed(value)
            assert any(line.split()[1] == shown for line in rows[key]), (name, key, shown)
        _, params, _ = describe_strategy(name)
        assert all(p.meaning and p.allowed for p in params), [p.name for p in params if not p.meaning]
    risk = next(ln for ln in rows["risk.risk_pct"])
    assert "number 0 < x <= 10" in risk and "percent of equity" in risk
    assert "integer 1 <= x <= 10000" in rows["fast"][0]
    assert "list of CHOP_LOWVOL, NORMAL, TREND_HIGHVOL" in rows["market.block_regimes"][0]
    assert "or null" in rows["tp_r_mult"][0]
    assert "BTCUSD: risk.risk_pct=0.25" in out.stdout  # tight's per-symbol override
    assert "--strategy-file" in out.stdout


def test_strategies_of_one_file_and_a_bad_file(workspace: Path, tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("strategy: sma_cross\nfast: 5\nslow: 40\n")
    out = run(["strategies", str(good)])
    assert out.returncode == 0, out.stderr
    assert "a sma_cross strategy file" in out.stdout
    assert any(ln.split()[:2] == ["slow", "40"] for ln in out.stdout.splitlines())
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: sma_cross\nfats: 5\n")
    out = run(["strategies", str(bad)])
    assert out.returncode == ExitCode.CONFIG_ERROR
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "fats" in lines[0] and "unknown key" in lines[0]
