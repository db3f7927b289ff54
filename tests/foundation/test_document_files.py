"""Hostile profile (--profile FILE) and strategy (--strategy-file FILE) files: binary
garbage, deep nesting, alias bombs, huge files, null. Each is exit 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laptop_agents.cli import main
from laptop_agents.config import ConfigError, load_config
from laptop_agents.config import StrategyConfig as StrategyCfg
from laptop_agents.exit_codes import ExitCode
from laptop_agents.strategy import StrategyConfigError, load_strategy_params

# A "billion laughs": nine levels of nine aliases each, 9**9 values once expanded,
# under a key that exists (so that nothing stops it before it is walked).
BOMB = "risk:\n  risk_pct: [" + ", ".join(
    [f"&l0 [{', '.join(['x'] * 9)}]"] + [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
) + "]\n"


def hostile(d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a word the error line must hold)."""
    files: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes | str, word: str) -> None:
        p = d / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        files[name] = (p, word)

    put("garbage.yaml", bytes(range(256)) * 40, "not UTF-8")
    put("garbage.json", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "not UTF-8")
    put("deep_list.yaml", "risk: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested")
    put("deep_block.yaml", "".join(" " * i + f"k{i}:\n" for i in range(1200)) + " " * 1200 + "x: 1\n", "nested")
    put("deep_list.json", "[" * 100_000 + "]" * 100_000, "nested")
    put("deep_dict.json", '{"a":' * 100_000 + "1" + "}" * 100_000, "nested")
    put("bomb.yaml", BOMB, "too many")
    put("huge.yaml", "# " + "x" * (2 << 20) + "\n", "too large")
    put("nul.yaml", "risk:\n  risk_pct: 1\x00\n", "")
    return files


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "crash" not in err, err
    return lines[0]


def test_hostile_profiles_exit_2_with_one_line(tmp_path: Path, workspace: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for name, (path, word) in hostile(tmp_path).items():
        rc = main(["backtest", "--profile", str(path), "--duration", "5", "--no-report"])
        line = one_line(capsys.readouterr().err)
        assert rc == ExitCode.CONFIG_ERROR, (name, line)
        assert path.name in line and word in line, (name, line)
        with pytest.raises(ConfigError):
            load_config(str(path), environ={})


@pytest.mark.parametrize("command", ["backtest", "run"])
def test_hostile_strategy_files_exit_2_with_one_line(tmp_path: Path, workspace: Path, command: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    files = hostile(tmp_path)
    for name, data in (("null.yaml", "null\n"), ("empty.yaml", ""), ("blank.json", "  \n"), ("list.json", "[1, 2]"),
                       ("null.json", "null"), ("scalar.yaml", "42\n")):
        p = tmp_path / name
        p.write_text(data)
        files[name] = (p, "a strategy file must hold a mapping of parameters")
    for name, (path, word) in files.items():
        argv = [command, "--strategy-file", str(path), "--duration", "1"]
        argv += ["--no-report"] if command == "backtest" else ["--speed", "1000"]
        rc = main(argv)
        cap = capsys.readouterr()
        line = one_line(cap.err)
        assert rc == ExitCode.CONFIG_ERROR, (name, line, cap.out)
        assert path.name in line and word in line, (name, line)
        with pytest.raises(StrategyConfigError):
            load_strategy_params(StrategyCfg(file=path), "BTCUSDT")


def test_fine_files_still_load(tmp_path: Path) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text("risk:\n  risk_pct: 0.5\n# a comment\n")
    assert load_config(str(prof), environ={}).config.risk.risk_pct == 0.5
    empty_profile = tmp_path / "empty.yaml"
    empty_profile.write_text("")  # an empty profile means "no overrides"
    assert load_config(str(empty_profile), environ={}).config.risk.risk_pct is None
    strat = tmp_path / "s.json"
    strat.write_text(json.dumps({"strategy": "sma_cross", "fast": 5, "slow": 20}))
    assert load_strategy_params(StrategyCfg(file=strat), "BTCUSDT").strategy == "sma_cross"
    aliases = tmp_path / "a.yaml"  # a few aliases are normal YAML
    aliases.write_text("strategy: sma_cross\nrisk: &r {risk_pct: 0.5}\nsymbols:\n  BTCUSD: {risk: *r}\n")
    assert load_strategy_params(StrategyCfg(file=aliases), "BTCUSD").strategy == "sma_cross"
