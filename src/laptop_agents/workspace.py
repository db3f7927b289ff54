"""The workspace: one directory that holds all state and output.

It is resolved to an absolute path once, at start, and printed, so that the
kill switch, the lock and the state store are found whatever the current
directory of the process that looks for them (the seed system's kill switch
was relative to the working directory and was missed).

It sits low (beside ``config``), not in ``ops``: every command handler gets
its :class:`Workspace` in the :class:`~laptop_agents.context.CommandContext`,
including the ones in layers below ``ops``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from laptop_agents.domain.errors import UsageError
from laptop_agents.wallclock import now_ms

ENV_WORKSPACE = "LAPTOP_AGENTS_WORKSPACE"
APP_DIR = "btc-laptop-agents"

RUN_ID_MAX = 120
# One path component that means the same on every OS: no separators, no
# "." / "..", no leading dot or dash (hidden files, option look-alikes), no
# trailing dot (Windows drops it), ASCII only.
_RUN_ID = re.compile(rf"^[A-Za-z0-9](?:[A-Za-z0-9._-]{{0,{RUN_ID_MAX - 2}}}[A-Za-z0-9_-])?$")
# Names Windows reserves for devices, with or without an extension.
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)
RUN_ID_RULE = (f"use 1-{RUN_ID_MAX} characters from letters, digits, '.', '_' and '-', starting with a "
               "letter or digit and not ending in '.' (no paths, no device names such as CON)")


class RunIdError(UsageError):
    """A ``--run-id`` that is malformed or names an existing run; exit code CONFIG_ERROR."""


def validate_run_id(run_id: str) -> str:
    """``run_id`` if it is a safe directory name under ``runs/``, else :class:`RunIdError`.

    A run id becomes a path: ``../..`` or an absolute path would write outside
    the workspace, so only a plain portable name is accepted.
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) \
            or run_id.split(".", 1)[0].lower() in _WINDOWS_DEVICES:
        raise RunIdError(f"bad --run-id {run_id!r}: {RUN_ID_RULE}")
    return run_id


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_run_id(prefix: str, label: str, clock: Callable[[], int] = now_ms) -> str:
    """A generated run id, ``<prefix>-<UTC time to the second>-<label>``: runs
    sort by kind and start time in a listing, and the label (a plain name: the
    strategy of a backtest, a random tag for a session) tells apart runs that
    started in the same second."""
    stamp = (_EPOCH + timedelta(milliseconds=clock())).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{label}"


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
    def pause_file(self) -> Path:
        """The operator's "no new entries" switch, kept while it is on (see session.controls)."""
        return self.root / "pause.json"

    @property
    def heartbeat(self) -> Path:
        return self.root / "heartbeat.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    def run_dir(self, run_id: str) -> Path:
        """``runs/<run_id>``; raises :class:`RunIdError` for a name that is not a plain run id."""
        return self.runs_dir / validate_run_id(run_id)

    def new_run_dir(self, run_id: str) -> Path:
        """Create ``runs/<run_id>`` for a new run; :class:`RunIdError` if it already exists.

        Created exclusively (not ``exist_ok``): two runs given the same id must
        not share one directory, even when they start at the same instant.
        """
        path = self.run_dir(run_id)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            raise RunIdError(f"run directory {path} already exists (--run-id {run_id}); choose another "
                             "--run-id or leave it out for a generated one") from None
        return path

    def claim_run_dir(self, base: str) -> str:
        """Create the directory of a generated run id: ``runs/<base>``, or
        ``<base>-2``, ``-3``... when a run of the same second took it (also
        one in another process a moment ago). Returns the id it created."""
        run_id, k = base, 2
        while True:
            if not self.run_dir(run_id).exists():
                try:
                    self.new_run_dir(run_id)
                    return run_id
                except RunIdError:
                    pass  # another run took this name a moment ago
            run_id, k = f"{base}-{k}", k + 1

    def check_new_run_id(self, run_id: str) -> str:
        """The early check before a run starts: a valid id whose directory does not exist yet."""
        path = self.run_dir(run_id)
        if path.exists() or path.is_symlink():
            raise RunIdError(f"run directory {path} already exists (--run-id {run_id}); choose another "
                             "--run-id or leave it out for a generated one")
        return run_id

    def ensure(self) -> Workspace:
        """Create the workspace layout; raises OSError if it cannot be written."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        return self

    @classmethod
    def resolve(cls, flag: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(resolve_workspace(flag))
