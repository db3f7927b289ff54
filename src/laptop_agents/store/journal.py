"""The event journal: ``runs/<run_id>/events.jsonl``, one JSON object per line.

It is written *after* the state commit of the same step, so a crash can lose
the last lines of the journal but never state; and since the Engine skips
candles it already committed, a restart never writes a line twice. A crash in
the middle of a write leaves a torn last line: readers ignore it and the writer
cuts it off before appending, so it never ends up in the middle of the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from laptop_agents.domain.errors import InputDataError
from laptop_agents.domain.events import Event
from laptop_agents.logs import scrub


class JournalError(InputDataError):
    """A journal line other than the last one is not a JSON object."""


def encode_event(event: Event | dict[str, Any]) -> str:
    """One canonical, scrubbed JSON line (without the newline): sorted keys,
    no spaces, so equal events give equal bytes and replays can be diffed."""
    data = event.to_dict() if isinstance(event, Event) else event
    return scrub(json.dumps(data, sort_keys=True, separators=(",", ":"), default=str))


def _cut_torn_tail(path: Path) -> None:
    """Truncate a partial last line (no trailing newline) left by a crash."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        pos = size
        block = 4096
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                fh.truncate(start + idx + 1)
                return
            pos = start
        fh.truncate(0)


class EventJournal:
    """Append-only writer of one run's ``events.jsonl``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8", newline="\n")

    def write(self, events: Iterable[Event | dict[str, Any]]) -> int:
        """Append events in one write (and flush, so another process tailing the
        file sees whole lines). Returns how many were written."""
        if self._fh is None:
            raise ValueError(f"journal {self.path} is closed")
        lines = [encode_event(e) for e in events]
        if lines:
            self._fh.write("\n".join(lines) + "\n")
            self._fh.flush()
        return len(lines)

    def fsync(self) -> None:
        """Force the journal to disk (e.g. at the end of a session)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> EventJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: Path | str) -> list[dict[str, Any]]:
    """All events of a journal; a torn last line (crash mid-write) is ignored,
    a damaged line elsewhere raises :class:`JournalError` naming it."""
    p = Path(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    out: list[dict[str, Any]] = []
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    for i, line in enumerate(lines[: last + 1]):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            if i == last:
                break
            raise JournalError(f"{p}: line {i + 1} is not valid JSON") from None
        if not isinstance(obj, dict):
            if i == last:
                break
            raise JournalError(f"{p}: line {i + 1} is not a JSON object")
        out.append(obj)
    return out
