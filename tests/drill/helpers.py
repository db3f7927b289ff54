"""Running ``laptop-agents drill`` in a subprocess, in an isolated workspace."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def drill_env(workspace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LA_", "LAPTOP_AGENTS_"))}
    env["LAPTOP_AGENTS_WORKSPACE"] = str(workspace)
    env.update(extra)
    return env


def scorecard_of(workspace: Path) -> dict[str, Any]:
    """The scorecard of the one drill run in ``workspace``."""
    roots = sorted((workspace / "drills").iterdir())
    assert len(roots) == 1, roots
    card: dict[str, Any] = json.loads((roots[0] / "scorecard.json").read_text(encoding="utf-8"))
    card["_root"] = str(roots[0])
    return card
