"""The records of one Engine step: what the strategy sees (:class:`AccountView`),
what it answers (:class:`StrategyOutput`) and what the step changed
(:class:`StepResult`).

They are built on every candle, so they live apart from the protocols of
:mod:`laptop_agents.domain.contracts` (which re-exports them): this module is
part of the compiled core (see :mod:`laptop_agents._compiled`), and mypyc
compiles plain classes, not ``runtime_checkable`` protocols.

Why their constructors are written out: mypyc compiles a dataclass's
methods except the ``__init__`` that ``dataclasses`` generates, which stays
interpreted (and, frozen, sets each field through ``object.__setattr__``):
that alone cost more than the rest of a compiled step. ``AccountView`` is a
named tuple (immutable, and built by ``tuple.__new__`` in C); the two
mutable records keep the dataclass's ``__eq__`` and ``__repr__`` with an
``__init__`` of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from laptop_agents.domain.events import Event
from laptop_agents.domain.models import CancelIntent, Fill, OrderIntent

Intent = OrderIntent | CancelIntent


class AccountView(NamedTuple):
    """What a strategy may know about the account when it decides.

    ``position_qty`` is signed (long > 0, short < 0). ``working_orders`` are the
    client ids of orders resting at the broker. ``entries_blocked`` is true when
    the circuit breaker or a hard limit forbids new entries. Immutable.
    """

    ts: int
    equity: float
    position_qty: float = 0.0
    entry_price: float = 0.0
    working_orders: tuple[str, ...] = ()
    entries_blocked: bool = False
    funding_rate: float | None = None


@dataclass(slots=True)
class StrategyOutput:
    """A strategy's answer for one candle: intents for the broker and events
    (decision, journal, agent_error) for the journal."""

    intents: list[Intent] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def __init__(self, intents: list[Intent] | None = None, events: list[Event] | None = None) -> None:
        self.intents = [] if intents is None else intents
        self.events = [] if events is None else events


@dataclass(slots=True)
class StepResult:
    """Everything one input changed, for the shell to persist and publish.

    ``processed`` is False when the Engine skipped the input (a candle at or
    before the last processed one), in which case nothing is to be written.
    """

    ts: int
    processed: bool = True
    events: list[Event] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    # Account after the step, for equity curves, heartbeat and /health.
    equity: float = 0.0
    position_qty: float = 0.0

    def __init__(
        self,
        ts: int,
        processed: bool = True,
        events: list[Event] | None = None,
        fills: list[Fill] | None = None,
        equity: float = 0.0,
        position_qty: float = 0.0,
    ) -> None:
        self.ts = ts
        self.processed = processed
        self.events = [] if events is None else events
        self.fills = [] if fills is None else fills
        self.equity = equity
        self.position_qty = position_qty
