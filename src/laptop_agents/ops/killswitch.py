"""The kill switch file: ``laptop-agents stop`` writes it; a session polls it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path


def request_stop(kill_file: Path, reason: str = "user stop") -> None:
    """Create the kill file atomically with who asked and when."""
    kill_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = kill_file.with_suffix(".tmp")
    payload = {"requested_at": datetime.now(UTC).isoformat(), "pid": os.getpid(), "reason": reason}
    tmp.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    os.replace(tmp, kill_file)


def stop_requested(kill_file: Path) -> bool:
    return kill_file.exists()


def clear_stop(kill_file: Path) -> None:
    """Remove a consumed kill file so the next session can start."""
    try:
        kill_file.unlink()
    except FileNotFoundError:
        pass
