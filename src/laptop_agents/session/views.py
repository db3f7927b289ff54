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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# What ``Engine.status()`` returns today: a JSON-able mapping.
StatusRecord = Mapping[str, Any]


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
    position = status.get("position")
    orders = status.get("working_orders")
    return EngineView(
        equity=status.get("equity"),
        position=position,
        position_qty=float((position or {}).get("qty") or 0.0),
        working_orders=orders,
        breaker=status.get("breaker"),
        last_candle_ts=status.get("last_candle_ts"),
        last_price=status.get("last_price"),
        fees_paid=float(status.get("fees_paid") or 0.0),
        funding_paid=float(status.get("funding_paid") or 0.0),
        symbol=status.get("symbol"),
        currency=status.get("currency"),
        strategy=status.get("strategy"),
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
