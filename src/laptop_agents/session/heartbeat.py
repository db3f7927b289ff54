"""``<workspace>/heartbeat.json``: the session's pulse for the watchdog and ``status``.

Written atomically (a temp file in the same directory, then ``os.replace``) so
a reader never sees half a file, and only by the session that holds the
workspace lock. ``ts_ms`` is the wall clock at the write: the watchdog judges a
hang by its age. Shape::

    {"ts_ms", "time", "pid", "run_id", "status": "starting|running|stopping|stopped",
     "reason", "equity", "position", "working_orders", "rss_mb", "last_candle_ts",
     "market_data_age_s", "errors": {...}, "breaker": {...}}
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from laptop_agents.fileio import write_text_atomic
from laptop_agents.logs import scrub_obj

STATUSES = ("starting", "running", "stopping", "stopped")


def rss_mb() -> float:
    """Resident memory of this process in MB."""
    return round(psutil.Process().memory_info().rss / 1_048_576, 1)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Replace ``path`` with ``payload`` in one step (readers see old or new, never half);
    a failed write (disk full) leaves no temporary file behind."""
    write_text_atomic(path, json.dumps(scrub_obj(payload), default=str, sort_keys=True) + "\n")


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The last heartbeat, or None if there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class HeartbeatWriter:
    """Builds and writes the heartbeat; the runner calls :meth:`beat` every few seconds.

    ``fields`` is a callable returning the live parts (equity, position,
    errors...) so the writer holds no copy of session state.
    """

    def __init__(
        self,
        path: Path,
        run_id: str,
        fields: Callable[[], dict[str, Any]],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.run_id = run_id
        self._fields = fields
        self._wall = wall_clock
        self.status = "starting"
        self.reason: str | None = None
        self.writes = 0

    def payload(self) -> dict[str, Any]:
        now = self._wall()
        body: dict[str, Any] = {
            "equity": None,
            "position": None,
            "working_orders": None,
            "last_candle_ts": None,
            "market_data_age_s": None,
            "errors": {},
            "breaker": {},
        }
        body.update(self._fields())
        body.update(
            {
                "ts_ms": int(now * 1000),
                "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                "pid": os.getpid(),
                "run_id": self.run_id,
                "status": self.status,
                "reason": self.reason,
                "rss_mb": rss_mb(),
            }
        )
        return body

    def beat(self, status: str | None = None, reason: str | None = None) -> dict[str, Any]:
        """Write one heartbeat (optionally moving to ``status``); returns what was written."""
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"heartbeat status {status!r}: allowed {', '.join(STATUSES)}")
            self.status = status
        if reason is not None:
            self.reason = reason
        payload = self.payload()
        write_json_atomic(self.path, payload)
        self.writes += 1
        return payload
