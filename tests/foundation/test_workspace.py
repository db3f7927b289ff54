from __future__ import annotations

from pathlib import Path

import pytest

from laptop_agents.workspace import ENV_WORKSPACE, Workspace, default_workspace, resolve_workspace


def test_flag_over_env_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {ENV_WORKSPACE: str(tmp_path / "from-env")}
    assert resolve_workspace(tmp_path / "flag", env) == (tmp_path / "flag").resolve()
    assert resolve_workspace(None, env) == (tmp_path / "from-env").resolve()
    monkeypatch.chdir(tmp_path)
    assert resolve_workspace(None, {}) == default_workspace().resolve()
    assert resolve_workspace(None, {}).is_absolute()


def test_default_does_not_depend_on_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = resolve_workspace(None, {})
    monkeypatch.chdir("/")
    assert resolve_workspace(None, {}) == first


def test_layout(tmp_path: Path) -> None:
    ws = Workspace(tmp_path).ensure()
    assert ws.system_log == tmp_path / "logs" / "system.jsonl"
    assert ws.run_dir("r1") == tmp_path / "runs" / "r1"
    assert ws.state_db.name == "state.db" and ws.kill_file.name == "kill.txt"
    assert ws.heartbeat.name == "heartbeat.json" and ws.lock.name == "lock"
    assert (tmp_path / "logs").is_dir() and (tmp_path / "runs").is_dir()
