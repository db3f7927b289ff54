"""The strategy layer's event makers: every event a strategy produces --
decision, journal line, agent error -- is built by one of these three
functions (the base, the Supervisor and the journal coach call nothing
else), so the strategy code speaks in plain dicts of its setup and the typed
records of :mod:`laptop_agents.domain.events` are made here."""

from __future__ import annotations

from typing import Any

from laptop_agents.domain.events import AgentError, Decision, Journal

_TYPED = ("side", "qty", "client_id")


def decision_event(ts: int, data: dict[str, Any]) -> Decision:
    """A decision (enter, exit, cancel, block) from the strategy's fields:
    ``action`` and ``reason`` become the record's fields, and so do ``side``,
    ``qty`` and ``client_id`` when set; everything else is its context (a
    typed key set to None stays in the context, so its JSON keeps the null)."""
    context = dict(data)
    action = str(context.pop("action"))
    reason = str(context.pop("reason", ""))
    typed: dict[str, Any] = {}
    for key in _TYPED:
        if context.get(key) is not None:
            typed[key] = context.pop(key)
    return Decision(ts, action, reason, context=context, **typed)


def journal_event(ts: int, text: str, tags: list[str], plan_id: str | None) -> Journal:
    """A journal line about a plan (created, filled, exited, cancelled...)."""
    return Journal(ts, text, tuple(tags), plan_id)


def agent_error(ts: int, agent: str, exc: BaseException) -> AgentError:
    """The event for an exception in strategy code: the session goes on."""
    return AgentError.from_exception(ts, agent, exc)
