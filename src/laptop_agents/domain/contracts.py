"""The seams between layers, as small protocols and plain records.

``strategy`` produces :class:`StrategyOutput` from a closed candle and an
:class:`AccountView`; the ``Engine`` feeds it and the paper broker; the
``session`` shell feeds the Engine from a :class:`MarketSource`. Keeping these
few shapes in one module is what lets backtest, replay and live drive the very
same Engine.

Event kinds written to ``events.jsonl`` (``Event.kind`` and its ``data``):

- ``decision``      action (enter|cancel|block), reason, side, entry, stop, target, qty, ...
- ``order``         client_id, side, type, qty, price, stop, target, status (accepted|working|rejected|duplicate), reason
- ``fill``          client_id, side, qty, price, fee, liquidity (maker|taker), reason (entry|stop|target|trailing_stop|flatten|reverse)
- ``trade_closed``  side (long|short), qty, entry_ts, entry_price, exit_ts, exit_price, pnl, fees, funding, net_pnl, exit_reason
- ``order_cancelled`` client_id, reason  · ``order_expired`` client_id
- ``funding``       rate, amount (positive = paid), position_qty
- ``breaker_trip``  reason, value, until_ts  · ``breaker_reset``
- ``agent_error``   agent, error  · ``journal`` text, tags, plan_id
- ``session``       (written by the shell) event (start|stop), reason, ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    Event,
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


@dataclass(slots=True)
class StrategyOutput:
    """A strategy's answer for one candle: intents for the broker and events
    (decision, journal, agent_error) for the journal."""

    intents: list[Intent] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@runtime_checkable
class Strategy(Protocol):
    """A deterministic, synchronous decision maker.

    Implementations keep all their state in plain attributes so the Engine can
    snapshot them (pickle) into the state store each candle and restore them
    after a crash; they never read the clock or do I/O.
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
