"""The operator's levers on a running session: stop (with or without
flattening, per request) and pause / resume new entries.

They implement the console's :class:`~laptop_agents.console.view.SessionControl`
and run on the event loop thread (the dashboard's routes are tasks of the
session's loop), so they touch the engine between two steps, never during one.
Each lever is journaled as a ``session`` event (``{"event": "control",
"action": ..., "source": ...}``) and logged, so ``events.jsonl`` says who
paused when, and a report reader can tell a quiet stretch from a paused one.

**A pause survives a restart** (decided here). The operator paused because
something looked wrong; a crash and a watchdog restart a minute later must not
silently resume trading. The pause is kept in ``<workspace>/pause.json``
(written atomically *before* the engine's switch is set, removed *before* it
is cleared, so the file never says less than the engine does), not in
``state.db``: it is the operator's word, not account state, and the engine
state's encoding belongs to the engine. A session that finds the file at start
starts paused and says so; deleting the file while nothing runs resumes at the
next start. Replays never read or write it (and do not reproduce a pause: it is
an input from the operator, not from the market).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Generic

from laptop_agents.console.view import ControlRefused
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.fileio import io_error_line, write_text_atomic
from laptop_agents.session.parts import E
from laptop_agents.session.state import SessionState
from laptop_agents.session.step import CandleStep
from laptop_agents.stop_reasons import StopReason
from laptop_agents.wallclock import now_ms


def read_pause(path: Path | None) -> dict[str, Any] | None:
    """The pause record if the file exists (any content counts), else None.
    ``paused_at`` is shown and journaled as written: before it was written in
    the ``Z`` form it ended in ``+00:00``, and such a file pauses all the same."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return {}  # there but unreadable: still a pause (the safe reading)
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class SessionControls(Generic[E]):
    def __init__(self, engine: E, state: SessionState, step: CandleStep[E], *, pause_file: Path | None,
                 run_id: str, log: logging.Logger) -> None:
        self.engine = engine
        self.state = state
        self.step = step
        self.pause_file = pause_file
        self.run_id = run_id
        self.log = log

    @property
    def paused(self) -> bool:
        return bool(getattr(self.engine, "entries_paused", False))

    def restore(self) -> None:
        """At start: a pause left by an earlier session (or this one before a restart) holds."""
        record = read_pause(self.pause_file)
        if record is None:
            return
        self.engine.set_entries_paused(True)
        since = record.get("paused_at") or "an earlier session"
        self.step.journal_session("control", action="pause_entries", source="pause_file",
                                  paused_at=record.get("paused_at"))
        self.log.warning("new entries are PAUSED (since %s): exits, stops and targets keep working; resume from "
                         "the dashboard or delete %s before the next start", since, self.pause_file,
                         extra={"fields": {"pause_file": str(self.pause_file), **record}})

    # ------------------------------------------------------------ SessionControl
    def stop(self, flatten: bool, source: str = "dashboard") -> None:
        if self.state.reason is not None:
            self.log.info("stop from the %s ignored: the session is already stopping (%s)", source,
                          self.state.reason.value)
            return
        self.step.journal_session("control", action="stop", flatten=flatten, source=source)
        self.state.request_stop(StopReason.KILL_SWITCH,
                                f"{source} stop ({'flatten' if flatten else 'keep the position'})", flatten=flatten)

    def pause_entries(self, source: str = "dashboard") -> None:
        if self.paused:
            return
        path = self.pause_file
        record = {"paused_at": ms_to_iso(now_ms(), "seconds"), "run_id": self.run_id,
                  "source": source, "pid": os.getpid()}
        if path is not None:
            try:
                write_text_atomic(path, json.dumps(record) + "\n")
            except OSError as exc:
                raise ControlRefused(io_error_line(exc, path, "cannot save the pause")) from exc
        self.engine.set_entries_paused(True)
        self.step.journal_session("control", action="pause_entries", source=source)
        self.log.warning("new entries PAUSED from the %s: exits, stops and targets keep working", source,
                         extra={"fields": {"action": "pause_entries", "source": source}})

    def resume_entries(self, source: str = "dashboard") -> None:
        if not self.paused:
            return
        path = self.pause_file
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise ControlRefused(io_error_line(exc, path, "cannot remove the pause")) from exc
        self.engine.set_entries_paused(False)
        self.step.journal_session("control", action="resume_entries", source=source)
        self.log.info("new entries resumed from the %s", source,
                      extra={"fields": {"action": "resume_entries", "source": source}})
