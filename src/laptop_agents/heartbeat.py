"""``<workspace>/heartbeat.json``: the session's pulse, as one record type.

Three parties share this file and this module: the session writes it every
few seconds (:class:`HeartbeatWriter`), the watchdog judges a hang by its age
and reads the stop reason of a child that hung while stopping, and ``status``
shows it. One record type keeps them from drifting apart.

Written atomically (a temp file in the same directory, then ``os.replace``)
so a reader never sees half a file, and only by the session that holds the
workspace lock. ``ts_ms`` is the wall clock at the write. Reading is
tolerant: a file from an older version lacks fields (they read as None), a
value of the wrong type reads as None, unknown keys are kept in ``extra``,
and a torn or foreign file still counts by its modification time (a
supervisor must never crash on it, and a file being written is alive).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from laptop_agents.fileio import write_json_atomic
from laptop_agents.logs import scrub_obj

STATUSES = ("starting", "running", "stopping", "stopped")
# Statuses that mean the session was ending on its own.
ENDING_STATUSES = frozenset({"stopping", "stopped"})


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e18:  # not NaN, fits
        return int(value)
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One heartbeat. The written fields are exactly today's file keys;
    ``mtime`` and ``readable`` describe the file it was read from."""

    ts_ms: int | None = None  # wall clock at the write, UTC ms
    time: str | None = None  # the same instant as ISO text, for a human
    pid: int | None = None
    run_id: str | None = None
    status: str | None = None  # one of STATUSES
    reason: str | None = None  # the stop reason once stopping
    equity: float | None = None
    position: dict[str, Any] | None = None  # the engine's position status
    working_orders: int | None = None
    last_candle_ts: int | None = None
    market_data_age_s: float | None = None
    errors: dict[str, Any] = field(default_factory=dict)
    breaker: dict[str, Any] = field(default_factory=dict)
    rss_mb: float | None = None
    mode: str | None = None
    candles: int | None = None
    skipped: int | None = None
    last_processed_age_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know
    # Read side only, never written:
    mtime: float | None = None
    readable: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the file (and shown by ``status``)."""
        out: dict[str, Any] = dict(self.extra)
        for f in _WRITTEN:
            out[f] = getattr(self, f)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, mtime: float | None = None) -> Heartbeat:
        """Tolerant reading: missing or mistyped fields are None, unknown ones kept."""
        return cls(
            ts_ms=_int(data.get("ts_ms")),
            time=_str(data.get("time")),
            pid=_int(data.get("pid")),
            run_id=_str(data.get("run_id")),
            status=_str(data.get("status")),
            reason=_str(data.get("reason")),
            equity=_float(data.get("equity")),
            position=_dict(data.get("position")),
            working_orders=_int(data.get("working_orders")),
            last_candle_ts=_int(data.get("last_candle_ts")),
            market_data_age_s=_float(data.get("market_data_age_s")),
            errors=_dict(data.get("errors")) or {},
            breaker=_dict(data.get("breaker")) or {},
            rss_mb=_float(data.get("rss_mb")),
            mode=_str(data.get("mode")),
            candles=_int(data.get("candles")),
            skipped=_int(data.get("skipped")),
            last_processed_age_s=_float(data.get("last_processed_age_s")),
            extra={k: v for k, v in data.items() if k not in _WRITTEN},
            mtime=mtime,
        )

    def wall_ts(self) -> float:
        """Seconds since the epoch of this beat: ``ts_ms`` if present, else the file's mtime."""
        if self.ts_ms is not None:
            return self.ts_ms / 1000.0
        return self.mtime if self.mtime is not None else 0.0

    def age_s(self, now: float) -> float:
        return now - self.wall_ts()

    @property
    def ending(self) -> bool:
        """The session was stopping on its own when it wrote this."""
        return self.status in ENDING_STATUSES

    def belongs_to(self, pid: int, started_wall: float) -> bool:
        """Written by process ``pid`` -- or, without a pid, since ``started_wall``:
        a previous session's last words must not count for a new child."""
        if self.pid is not None:
            return self.pid == pid
        return self.wall_ts() >= started_wall


_WRITTEN = tuple(f.name for f in dataclasses.fields(Heartbeat) if f.name not in ("extra", "mtime", "readable"))


def read_heartbeat(path: Path) -> Heartbeat | None:
    """The heartbeat at ``path``; None if there is no file. A file that is not
    a JSON object reads as an unreadable record carrying only its mtime."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        return Heartbeat(mtime=mtime, readable=False)
    return Heartbeat.from_dict(data, mtime=mtime)


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    write_json_atomic(path, scrub_obj(beat.to_dict()))


def rss_mb() -> float:
    """Resident memory of this process in MB."""
    return round(psutil.Process().memory_info().rss / 1_048_576, 1)


class HeartbeatWriter:
    """Builds and writes the heartbeat; the session calls :meth:`beat` every few seconds.

    ``fields`` returns the live parts (equity, position, errors...) by their
    :class:`Heartbeat` field names, so the writer holds no copy of session
    state; a name that is not a heartbeat field is a bug and raises.
    """

    def __init__(
        self,
        path: Path,
        run_id: str,
        fields: Callable[[], Mapping[str, Any]],
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

    def record(self) -> Heartbeat:
        now = self._wall()
        return Heartbeat(
            **self._fields(),
            ts_ms=int(now * 1000),
            time=datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            pid=os.getpid(),
            run_id=self.run_id,
            status=self.status,
            reason=self.reason,
            rss_mb=rss_mb(),
        )

    def beat(self, status: str | None = None, reason: str | None = None) -> Heartbeat:
        """Write one heartbeat (optionally moving to ``status``); returns what was written."""
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"heartbeat status {status!r}: allowed {', '.join(STATUSES)}")
            self.status = status
        if reason is not None:
            self.reason = reason
        beat = self.record()
        write_heartbeat(self.path, beat)
        self.writes += 1
        return beat
