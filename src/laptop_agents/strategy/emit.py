"""The strategy layer's event makers: every event a strategy produces --
decision, journal line, agent error -- is built by one of these three
functions (the base, the Supervisor and the journal coach call nothing
else), so the record type of events changes in one place."""

from __future__ import annotations

from typing import Any

from laptop_agents.domain.fast import fast_init
from laptop_agents.domain.models import Event

# Built on the per-candle path: without the frozen dataclass __init__
# (laptop_agents.domain.fast).
_new_event = fast_init(Event)

MAX_ERROR_TEXT = 300


def decision_event(ts: int, data: dict[str, Any]) -> Event:
    """A decision (enter, exit, cancel, block) with its context."""
    return _new_event(ts, "decision", data)


def journal_event(ts: int, text: str, tags: list[str], plan_id: str | None) -> Event:
    """A journal line about a plan (created, filled, exited, cancelled...)."""
    return _new_event(ts, "journal", {"text": text, "tags": tags, "plan_id": plan_id})


def agent_error(ts: int, agent: str, exc: BaseException) -> Event:
    """The event for an exception in strategy code: the session goes on."""
    text = f"{type(exc).__name__}: {exc}"
    return _new_event(ts, "agent_error", {"agent": agent, "error": text[:MAX_ERROR_TEXT]})
