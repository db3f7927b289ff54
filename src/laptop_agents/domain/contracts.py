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
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from laptop_agents.domain.events import Event
from laptop_agents.domain.models import (
    Candle,
    FundingRate,
    Tick,
)
from laptop_agents.domain.records import AccountView, Intent, StepResult, StrategyOutput

__all__ = [
    "AccountView",
    "Intent",
    "MarketItem",
    "MarketSource",
    "SourceError",
    "StateTuple",
    "StepResult",
    "Strategy",
    "StrategyOutput",
]


# What ``Strategy.snapshot_state`` returns: plain data only (tuples, lists,
# dicts of str/int/float/bool/None/bytes; no objects of ours, no enums), led
# by a tag string that names the layout and its version ("supervisor/1"). The
# engine stores it every candle; a module rename can never make it unreadable.
StateTuple = tuple[Any, ...]


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
