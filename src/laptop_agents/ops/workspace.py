"""The workspace: one directory that holds all state and output.

It is resolved to an absolute path once, at start, and printed, so that the
kill switch, the lock and the state store are found whatever the current
directory of the process that looks for them (the seed system's kill switch
was relative to the working directory and was missed).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_WORKSPACE = "LAPTOP_AGENTS_WORKSPACE"
APP_DIR = "btc-laptop-agents"


def default_workspace() -> Path:
    """A per-user data directory that does not depend on the current directory."""
    home = Path.home()
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / APP_DIR


def resolve_workspace(flag: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Path:
    """``--workspace`` > ``$LAPTOP_AGENTS_WORKSPACE`` > the per-user default, made absolute."""
    env = os.environ if environ is None else environ
    raw = flag or env.get(ENV_WORKSPACE) or default_workspace()
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    """Paths inside the workspace; ``ensure()`` creates the directories."""

    root: Path

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def system_log(self) -> Path:
        return self.logs_dir / "system.jsonl"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def kill_file(self) -> Path:
        return self.root / "kill.txt"

    @property
    def heartbeat(self) -> Path:
        return self.root / "heartbeat.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def ensure(self) -> Workspace:
        """Create the workspace layout; raises OSError if it cannot be written."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        return self

    @classmethod
    def resolve(cls, flag: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(resolve_workspace(flag))
