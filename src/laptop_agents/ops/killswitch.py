"""The kill switch file: ``laptop-agents stop`` writes it; a session polls it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.fileio import write_text_atomic
from laptop_agents.wallclock import now_ms


def request_stop(kill_file: Path, reason: str = "user stop", *, flatten: bool | None = None) -> None:
    """Create the kill file atomically with who asked and when; ``flatten``
    (when given) overrides the session's ``flatten_on_kill`` for this stop.

    Durable (``fsync``): a stop request lost to a power cut would let a
    restarted machine trade again although the operator said stop."""
    kill_file.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, object] = {"requested_at": ms_to_iso(now_ms(), "milliseconds"), "pid": os.getpid(),
                                  "reason": reason}
    if flatten is not None:
        payload["flatten"] = flatten
    write_text_atomic(kill_file, json.dumps(payload) + "\n", fsync=True)


def stop_requested(kill_file: Path) -> bool:
    return kill_file.exists()


def clear_stop(kill_file: Path) -> None:
    """Remove a consumed kill file so the next session can start."""
    try:
        kill_file.unlink()
    except FileNotFoundError:
        pass
