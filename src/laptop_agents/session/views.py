"""The one place the session reads the engine's status.

The heartbeat, ``/health``, the trade log lines, the shutdown step and
summary.json all need a few account facts (equity, position, working orders,
breaker...). They get them from :func:`read_engine` as an :class:`EngineView`
and never index the engine's status themselves, so when the status changes
shape (a typed record instead of a dict) only this module changes.

A status call that raises must not take the heartbeat or ``/health`` down
with it: the view then carries only the exception's type name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from laptop_agents.engine.status import EngineStatus

# What ``Engine.status()`` returns: a typed record (its ``to_dict`` is the JSON).
StatusRecord = EngineStatus


class HasStatus(Protocol):
    def status(self) -> StatusRecord: ...


@dataclass(frozen=True, slots=True)
class EngineView:
    """The account as the session shows it; JSON parts are passed through as the engine gave them."""

    equity: float | None = None
    position: dict[str, Any] | None = None  # qty, side, entry, stop, target...
    position_qty: float = 0.0
    working_orders: list[dict[str, Any]] | None = None
    breaker: dict[str, Any] | None = None
    last_candle_ts: int | None = None
    last_price: float | None = None
    fees_paid: float = 0.0
    funding_paid: float = 0.0
    symbol: str | None = None
    currency: str | None = None  # the account's currency: BTC (inverse) or USDT
    strategy: str | None = None
    error: str | None = None  # status() raised this exception type

    @property
    def working_order_count(self) -> int | None:
        return len(self.working_orders) if self.working_orders is not None else None


def read_engine(engine: HasStatus) -> EngineView:
    try:
        status = engine.status()
    except Exception as exc:  # a broken engine must not break the heartbeat or /health
        return EngineView(error=type(exc).__name__)
    return view_of(status)


def view_of(status: StatusRecord) -> EngineView:
    return EngineView(
        equity=status.equity,
        position=status.position.to_dict(),
        position_qty=status.position.qty,
        working_orders=[o.to_dict() for o in status.working_orders],
        breaker=status.breaker.to_dict(),
        last_candle_ts=status.last_candle_ts,
        last_price=status.last_price,
        fees_paid=status.fees_paid,
        funding_paid=status.funding_paid,
        symbol=status.symbol,
        currency=status.currency,
        strategy=status.strategy,
    )


def status_dict(engine: HasStatus) -> dict[str, Any]:
    """The engine's status as today's JSON dict, for the console's extra fields:
    a typed status through its ``to_dict()`` edge, a mapping as it is; ``{}``
    when the status call fails (the console must render anyway)."""
    try:
        status: Any = engine.status()
        to_dict = getattr(status, "to_dict", None)
        return dict(to_dict()) if callable(to_dict) else dict(status)
    except Exception:
        return {}
