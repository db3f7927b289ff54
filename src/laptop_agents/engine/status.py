"""The account summary the shell shows: heartbeat, /health, ``status``, summaries.

:class:`EngineStatus` is read by attribute; :meth:`EngineStatus.to_dict` is
its JSON edge (the keys the heartbeat, /health and summary.json have always
carried). Amounts are in the settlement currency (``currency``: USDT linear,
BTC inverse) except ``equity_quote``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from laptop_agents.broker.state import WorkingOrder


@dataclass(frozen=True, slots=True)
class PositionStatus:
    """The open position (``side`` "flat" and ``qty`` 0 when there is none)."""

    qty: float
    side: str  # long | short | flat
    entry_price: float | None
    entry_ts: int | None
    stop: float | None
    target: float | None
    trailing_active: bool
    unrealized: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "qty": self.qty, "side": self.side, "entry_price": self.entry_price, "entry_ts": self.entry_ts,
            "stop": self.stop, "target": self.target, "trailing_active": self.trailing_active,
            "unrealized": self.unrealized,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """The circuit breaker: ``reason`` and ``until_ts`` only while active."""

    active: bool
    reason: str | None
    until_ts: int | None
    consecutive_losses: int
    day_start_equity: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active, "reason": self.reason, "until_ts": self.until_ts,
            "consecutive_losses": self.consecutive_losses, "day_start_equity": self.day_start_equity,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """One symbol's account as the Engine holds it now."""

    symbol: str
    strategy: str
    currency: str  # USDT | BTC
    equity: float
    equity_quote: float
    balance: float
    start_balance: float | None
    realized_pnl: float
    fees_paid: float
    funding_paid: float
    unrealized: float
    last_price: float | None
    last_candle_ts: int | None
    funding_rate: float | None
    position: PositionStatus
    working_orders: tuple[WorkingOrder, ...]
    breaker: BreakerStatus
    entries_blocked: str | None  # paused | breaker | daily_loss
    trades_closed: int
    fills: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "strategy": self.strategy,
            "currency": self.currency,
            "equity": self.equity,
            "equity_quote": self.equity_quote,
            "balance": self.balance,
            "start_balance": self.start_balance,
            "realized_pnl": self.realized_pnl,
            "fees_paid": self.fees_paid,
            "funding_paid": self.funding_paid,
            "unrealized": self.unrealized,
            "last_price": self.last_price,
            "last_candle_ts": self.last_candle_ts,
            "funding_rate": self.funding_rate,
            "position": self.position.to_dict(),
            "working_orders": [o.to_dict() for o in self.working_orders],
            "breaker": self.breaker.to_dict(),
            "entries_blocked": self.entries_blocked,
            "trades_closed": self.trades_closed,
            "fills": self.fills,
        }
