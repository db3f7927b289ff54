"""The seams between layers, as small protocols and plain records.

``strategy`` produces :class:`StrategyOutput` from a closed candle and an
:class:`AccountView`; the ``Engine`` feeds it and the paper broker; the
``session`` shell feeds the Engine from a :class:`MarketSource`. Keeping these
few shapes in one module is what lets backtest, replay and live drive the very
same Engine.

The events a step produces (and the shell journals to ``events.jsonl``) are
the typed records of :mod:`laptop_agents.domain.events`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from laptop_agents.domain.events import Event
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    Fill,
    FundingRate,
    OrderIntent,
    Tick,
)


@dataclass(frozen=True, slots=True)
class AccountView:
    """What a strategy may know about the account when it decides.

    ``position_qty`` is signed (long > 0, short < 0). ``working_orders`` are the
    client ids of orders resting at the broker. ``entries_blocked`` is true when
    the circuit breaker or a hard limit forbids new entries.
    """

    ts: int
    equity: float
    position_qty: float = 0.0
    entry_price: float = 0.0
    working_orders: tuple[str, ...] = ()
    entries_blocked: bool = False
    funding_rate: float | None = None


Intent = OrderIntent | CancelIntent

# What ``Strategy.snapshot_state`` returns: plain data only (tuples, lists,
# dicts of str/int/float/bool/None/bytes; no objects of ours, no enums), led
# by a tag string that names the layout and its version ("supervisor/1"). The
# engine stores it every candle; a module rename can never make it unreadable.
StateTuple = tuple[Any, ...]


@dataclass(slots=True)
class StrategyOutput:
    """A strategy's answer for one candle: intents for the broker and events
    (decision, journal, agent_error) for the journal."""

    intents: list[Intent] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@runtime_checkable
class Strategy(Protocol):
    """A deterministic, synchronous decision maker.

    It never reads the clock or does I/O. Its running state goes through
    :meth:`snapshot_state` / :meth:`restore_state` only: the Engine stores the
    snapshot with every candle and, after a crash, restores it into a freshly
    built strategy (configuration is not state: it comes from the config).
    """

    name: str

    def warmup(self, candle: Candle) -> None:
        """Feed a historical candle to the indicators only: no decision, no intent.

        Used for REST backfill before trading and for candles missed while the
        process was down, which must not be traded at stale prices."""
        ...

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput: ...

    def on_funding(self, funding: FundingRate) -> None: ...

    def on_broker_event(self, event: Event) -> list[Event]:
        """React to the broker's fill/exit/cancel/expiry events (e.g. journal lines)."""
        ...

    def snapshot_state(self) -> StateTuple:
        """Everything that changes while running, as plain data (see :data:`StateTuple`)."""
        ...

    def restore_state(self, state: StateTuple) -> None:
        """Load a :meth:`snapshot_state` output into this freshly built
        strategy; ``ValueError`` when it does not fit the configured strategy
        (another layout, other indicator periods), and then nothing changed."""
        ...


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


@dataclass(frozen=True, slots=True)
class SourceError:
    """A market-data problem the source survived (disconnect, malformed frame,
    HTTP error...). The runner counts consecutive ones; good data resets."""

    kind: str
    message: str


MarketItem = Candle | Tick | FundingRate | SourceError


@runtime_checkable
class MarketSource(Protocol):
    """An async stream of *closed* candles, ticks, funding updates and errors.

    Every yielded item other than :class:`SourceError` counts as market data for
    the stale-data guard; protocol pings never do. ``status()`` feeds /health.
    """

    name: str

    async def warmup(self) -> list[Candle]:
        """Closed historical candles (oldest first) to prime the indicators
        before trading starts; may be empty."""
        ...

    def stream(self) -> AsyncIterator[MarketItem]: ...

    def status(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
