"""Typed events: the journal records of the core and the shell.

Every event is a small frozen record with its event time ``ts`` (never the
wall clock, so a replay reproduces it byte for byte) and a ``kind`` class
attribute naming it in ``events.jsonl``. Code reads events by attribute; the
one place an event becomes a dict is its :meth:`Event.to_dict` (the JSON
edge: the journal, the console, logs), and :func:`event_from_dict` is the way
back (an engine snapshot's pending events, a journal read as records).

The kinds and their JSON (after ``ts`` and ``kind``):

- ``order``           client_id, side, type, qty, price, stop, target, status
  (accepted|working|rejected|duplicate), reason            — :class:`OrderEvent`
- ``fill``            client_id, side, qty, price, fee, liquidity (maker|taker),
  reason (entry|exit|reverse|stop|target|trailing_stop|flatten) — :class:`FillEvent`
- ``trade_closed``    side (long|short), qty, entry_ts, entry_price, exit_ts,
  exit_price, pnl, fees, funding, net_pnl, exit_reason, client_id — :class:`TradeClosed`
- ``order_cancelled`` client_id, reason                    — :class:`OrderCancelled`
- ``order_expired``   client_id, expire_ts, remaining_qty  — :class:`OrderExpired`
- ``funding``         rate, amount (positive = paid), position_qty, boundary_ts, price — :class:`Funding`
- ``breaker_trip``    reason, value, until_ts              — :class:`BreakerTrip`
- ``breaker_reset``   day_start_equity                     — :class:`BreakerReset`
- ``decision``        the strategy's context fields, action (enter|exit|cancel|block),
  reason, and side, qty, client_id when set                — :class:`Decision`
- ``journal``         text, tags, plan_id                  — :class:`Journal`
- ``agent_error``     agent, error                         — :class:`AgentError`
- ``session``         event (start|stop|...), then the shell's details — :class:`SessionEvent`

Records, not dicts, because a dict read back with ``d.get("fee") or 0.0``
hides a misspelt key as a zero; an attribute that does not exist is an error
the type checker sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from laptop_agents.domain.models import OrderType, Side

_MAX_ERROR_TEXT = 300


@dataclass(frozen=True, slots=True)
class Event:
    """The base of every event: event time in UTC ms and the ``kind`` name."""

    kind: ClassVar[str] = ""
    ts: int

    def to_dict(self) -> dict[str, Any]:
        """The event as its JSON object (``ts``, ``kind``, then its fields)."""
        raise NotImplementedError


# ---------------------------------------------------------------- the broker


@dataclass(frozen=True, slots=True)
class OrderEvent(Event):
    """What the broker did with an order intent: ``status`` accepted (it
    executes now), working (it rests), rejected or duplicate, with the reason."""

    kind: ClassVar[str] = "order"
    client_id: str
    side: Side
    type: OrderType
    qty: float
    price: float | None
    stop: float | None
    target: float | None
    status: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts, "kind": "order", "client_id": self.client_id, "side": self.side.value,
            "type": self.type.value, "qty": self.qty, "price": self.price, "stop": self.stop,
            "target": self.target, "status": self.status, "reason": self.reason,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class FillEvent(Event):
    """One execution, as journaled (the same fields as a ``Fill``)."""

    kind: ClassVar[str] = "fill"
    client_id: str
    side: Side
    qty: float
    price: float
    fee: float
    liquidity: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts, "kind": "fill", "client_id": self.client_id, "side": self.side.value,
            "qty": self.qty, "price": self.price, "fee": self.fee, "liquidity": self.liquidity,
            "reason": self.reason,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class TradeClosed(Event):
    """A trade (the position from leaving zero to returning to it) closed;
    ``qty`` is the largest size it reached, ``net_pnl = pnl - fees - funding``."""

    kind: ClassVar[str] = "trade_closed"
    side: str  # long | short
    qty: float
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float
    pnl: float
    fees: float
    funding: float
    net_pnl: float
    exit_reason: str
    client_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts, "kind": "trade_closed", "side": self.side, "qty": self.qty,
            "entry_ts": self.entry_ts, "entry_price": self.entry_price, "exit_ts": self.exit_ts,
            "exit_price": self.exit_price, "pnl": self.pnl, "fees": self.fees, "funding": self.funding,
            "net_pnl": self.net_pnl, "exit_reason": self.exit_reason, "client_id": self.client_id,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class OrderCancelled(Event):
    kind: ClassVar[str] = "order_cancelled"
    client_id: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": "order_cancelled", "client_id": self.client_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class OrderExpired(Event):
    kind: ClassVar[str] = "order_expired"
    client_id: str
    expire_ts: int
    remaining_qty: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts, "kind": "order_expired", "client_id": self.client_id, "expire_ts": self.expire_ts,
            "remaining_qty": self.remaining_qty,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Funding(Event):
    """Funding settled at ``boundary_ts`` on the position held then;
    ``amount`` is positive when paid, in the settlement currency."""

    kind: ClassVar[str] = "funding"
    rate: float
    amount: float
    position_qty: float
    boundary_ts: int
    price: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts, "kind": "funding", "rate": self.rate, "amount": self.amount,
            "position_qty": self.position_qty, "boundary_ts": self.boundary_ts, "price": self.price,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class BreakerTrip(Event):
    """The circuit breaker blocks entries until ``until_ts`` (the next UTC day)."""

    kind: ClassVar[str] = "breaker_trip"
    reason: str  # drawdown | consecutive_losses
    value: float
    until_ts: int

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": "breaker_trip", "reason": self.reason, "value": self.value,
                "until_ts": self.until_ts}  # fmt: skip


@dataclass(frozen=True, slots=True)
class BreakerReset(Event):
    kind: ClassVar[str] = "breaker_reset"
    day_start_equity: float

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": "breaker_reset", "day_start_equity": self.day_start_equity}


# ---------------------------------------------------------------- the strategy


@dataclass(frozen=True, slots=True)
class Decision(Event):
    """A strategy's decision on a closed candle.

    ``action`` (enter | exit | cancel | block) and ``reason`` always;
    ``side`` (BUY | SELL), ``qty`` and ``client_id`` when the decision is about
    an order (``None`` = not part of this decision, and absent from the JSON).
    ``context`` holds the strategy's own fields (setup, prices, indicator
    values, rr, ...: JSON-able values, none named like the typed fields); the
    JSON puts them first, as strategies describe the setup before the verdict.
    """

    kind: ClassVar[str] = "decision"
    action: str
    reason: str = ""
    side: str | None = None
    qty: float | None = None
    client_id: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ts": self.ts, "kind": "decision", **self.context, "action": self.action,
                             "reason": self.reason}  # fmt: skip
        if self.side is not None:
            d["side"] = self.side
        if self.qty is not None:
            d["qty"] = self.qty
        if self.client_id is not None:
            d["client_id"] = self.client_id
        return d


@dataclass(frozen=True, slots=True)
class Journal(Event):
    """A human line about a plan's life (created, filled, exited...), with tags."""

    kind: ClassVar[str] = "journal"
    text: str
    tags: tuple[str, ...] = ()
    plan_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": "journal", "text": self.text, "tags": list(self.tags),
                "plan_id": self.plan_id}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AgentError(Event):
    """A strategy part raised; it was isolated (the session goes on)."""

    kind: ClassVar[str] = "agent_error"
    agent: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": "agent_error", "agent": self.agent, "error": self.error}

    @classmethod
    def from_exception(cls, ts: int, agent: str, exc: BaseException) -> AgentError:
        """``"Type: first line of the message"`` (at most 300 characters): one
        line for the journal and the log, whatever the exception carried."""
        lines = str(exc).splitlines()
        first = lines[0].strip() if lines else ""
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        return cls(ts, agent, text[:_MAX_ERROR_TEXT])


# ---------------------------------------------------------------- the shell


@dataclass(frozen=True, slots=True)
class SessionEvent(Event):
    """A session's start, stop or other lifecycle mark, written by the shell;
    ``details`` are its JSON-able fields (run id, mode, reason, exit code...)."""

    kind: ClassVar[str] = "session"
    event: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": "session", "event": self.event, **self.details}


@dataclass(frozen=True, slots=True)
class Reconciled(Event):
    """Live execution: a difference between the exchange and the local books
    that was explained and applied (``what``: filled_while_down,
    cancelled_while_down, not_placed, resolved, adopted_position, balance...),
    journaled so the books say why they changed outside a candle."""

    kind: ClassVar[str] = "reconciled"
    what: str
    client_id: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": "reconciled", "what": self.what, "client_id": self.client_id,
                "detail": self.detail}


# ---------------------------------------------------------------- back from JSON

EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (OrderEvent, FillEvent, TradeClosed, OrderCancelled, OrderExpired, Funding, BreakerTrip,
                BreakerReset, Decision, Journal, AgentError, SessionEvent, Reconciled)
}  # fmt: skip

_DECISION_FIELDS = ("ts", "kind", "action", "reason", "side", "qty", "client_id")


def event_from_dict(d: Mapping[str, Any]) -> Event:
    """The typed event of a :meth:`Event.to_dict` object (``event_from_dict(e.to_dict()) == e``).

    Raises ``ValueError`` for an unknown kind or missing fields."""
    kind = d.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    try:
        if cls is Decision:
            return Decision(
                d["ts"], d["action"], d.get("reason", ""), d.get("side"), d.get("qty"), d.get("client_id"),
                {k: v for k, v in d.items() if k not in _DECISION_FIELDS},
            )  # fmt: skip
        if cls is SessionEvent:
            return SessionEvent(d["ts"], d["event"], {k: v for k, v in d.items() if k not in ("ts", "kind", "event")})
        if cls is Journal:
            return Journal(d["ts"], d["text"], tuple(d.get("tags") or ()), d.get("plan_id"))
        values = {k: v for k, v in d.items() if k != "kind"}
        if cls in (OrderEvent, FillEvent):
            values["side"] = Side(values["side"])
        if cls is OrderEvent:
            values["type"] = OrderType(values["type"])
        return cls(**values)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{kind} event {dict(d)!r} does not fit its record: {exc}") from None
