"""Shared fixtures. Slow tests run only with LA_SLOW=1 (``make slow``), soak
tests only with LA_SOAK=1, so the default suite stays fast."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = os.environ.get("LA_SLOW") == "1"
    run_soak = os.environ.get("LA_SOAK") == "1"
    skip_slow = pytest.mark.skip(reason="slow test: set LA_SLOW=1 (make slow)")
    skip_soak = pytest.mark.skip(reason="soak test: set LA_SOAK=1")
    for item in items:
        if "soak" in item.keywords and not run_soak:
            item.add_marker(skip_soak)
        elif "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated workspace directory, also exported for subprocesses."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("LAPTOP_AGENTS_WORKSPACE", str(ws))
    return ws


@pytest.fixture
def python() -> str:
    """The interpreter running the tests (the project's venv)."""
    return sys.executable


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
