"""The paper broker's durable state as typed records, and their plain form.

:class:`BrokerState` is everything a :class:`~laptop_agents.broker.paper.PaperBroker`
needs to continue after a restart except the processed client ids (an
ever-growing set the store keeps as rows of their own). Its parts:
:class:`Position` (the open net position, which is also the trade in
progress) and :class:`WorkingOrder` (an order resting at the broker). All
three are immutable: the broker replaces a position or an order when it
changes, so a state taken at one candle never moves under its reader.

Named tuples, not dataclasses: a state is built on every candle the store
commits, and a named tuple is built in half the time of even a hand-rolled
frozen dataclass constructor.

The plain form (:meth:`BrokerState.to_plain`, rows of
:data:`WORKING_ORDER_FIELDS`) holds only str/int/float/bool/None and tuples,
never a class reference, so moving or renaming a module can never make a
stored state unreadable.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from laptop_agents.domain.models import OrderType, Side


class Position(NamedTuple):
    """The open net position and its trade's running totals: a trade opens
    when the position leaves zero and closes when it returns to zero."""

    qty: float  # signed: long > 0
    entry_price: float
    entry_ts: int
    client_id: str  # the order that opened it
    stop: float | None
    target: float | None
    trailing: bool
    risk: float  # 1 R in price units (|entry - stop| at the first fill); 0 = no stop
    trail_active: bool
    max_qty: float  # largest absolute size reached, reported as the trade's qty
    pnl: float  # realized gross PnL of this trade so far (partial closes)
    fees: float
    funding: float
    exit_qty: float
    exit_acc: float  # sum(q*p) linear, sum(q/p) inverse: average exit price


class WorkingOrder(NamedTuple):
    """An order resting at the broker: a limit not yet traded through, or the
    unfilled remainder of a partially filled order."""

    client_id: str
    side: Side
    type: OrderType
    qty: float  # remaining
    filled: float
    price: float | None
    stop: float | None
    target: float | None
    trailing: bool
    reduce_only: bool
    reason: str
    created_ts: int
    expire_ts: int

    def to_row(self) -> tuple[Any, ...]:
        """Plain values in :data:`WORKING_ORDER_FIELDS` order (the store's columns)."""
        return (self.client_id, self.side.value, self.type.value, *self[3:])

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | list[Any]) -> WorkingOrder:
        """The inverse of :meth:`to_row`; SQLite's 0/1 and ints come back typed."""
        cid, side, typ, qty, filled, price, stop, target, trailing, reduce_only, reason, created, expire = row
        return cls(
            str(cid), Side(side), OrderType(typ), float(qty), float(filled),
            None if price is None else float(price), None if stop is None else float(stop),
            None if target is None else float(target), bool(trailing), bool(reduce_only),
            str(reason), int(created), int(expire),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The order as shown by ``status`` and /health."""
        return {
            "client_id": self.client_id, "side": self.side.value, "type": self.type.value,
            "qty": self.qty, "filled": self.filled, "price": self.price, "stop": self.stop,
            "target": self.target, "reduce_only": self.reduce_only, "created_ts": self.created_ts,
            "expire_ts": self.expire_ts,
        }  # fmt: skip


# The one definition of the working-order layout: the store's columns, its
# INSERT and its SELECT are all derived from it.
WORKING_ORDER_FIELDS: tuple[str, ...] = WorkingOrder._fields


class BrokerState(NamedTuple):
    """The broker's durable state (see the module docstring)."""

    # The ledger (settlement currency: USDT linear, BTC inverse). Inverse
    # accounts convert the quote starting equity at the first price seen, so
    # start_balance is None until then.
    start_balance: float | None
    balance: float
    realized_pnl: float
    fees_paid: float
    funding_paid: float
    trades_closed: int
    fill_count: int
    position: Position | None
    # The market as last seen.
    funding_rate: float | None
    mark: float | None  # last close
    mark_ts: int | None
    volume: float  # last candle's volume (liquidity for orders placed on its close)
    next_funding_ts: int | None
    # Limits and the breaker.
    next_day_ts: int | None
    day_start_equity: float
    breaker_active: bool
    breaker_reason: str
    breaker_until: int
    consecutive_losses: int
    order_times: tuple[int, ...]  # accepted orders' times within the last minute
    # Working orders, in the order they were placed.
    orders: tuple[WorkingOrder, ...] = ()

    def to_plain(self) -> tuple[Any, ...]:
        """Every field but ``orders`` (stored as rows) as plain values, in field order."""
        pos = self.position
        return (*self[:7], None if pos is None else tuple(pos), *self[8:20])

    @classmethod
    def from_plain(cls, plain: tuple[Any, ...] | list[Any], orders: tuple[WorkingOrder, ...] = ()) -> BrokerState:
        """The inverse of :meth:`to_plain`; ``ValueError`` for anything of another shape."""
        if len(plain) != _PLAIN_LEN:
            raise ValueError(f"broker state has {len(plain)} fields, expected {_PLAIN_LEN}")
        pos = plain[7]
        if pos is not None and len(pos) != len(Position._fields):
            raise ValueError(f"broker position has {len(pos)} fields, expected {len(Position._fields)}")
        return cls._make(
            (*plain[:7], None if pos is None else Position(*pos), *plain[8:19], tuple(plain[19]), tuple(orders))
        )

    @classmethod
    def from_v1(cls, v1: tuple[Any, ...] | list[Any], orders: tuple[WorkingOrder, ...] = ()) -> BrokerState:
        """The 21-field positional tuple of state-store schema 1 (``PaperBroker.state()``
        of that release, led by its version 1), kept to migrate old stores."""
        if len(v1) != 21 or v1[0] != 1:
            raise ValueError("not a version-1 broker state")
        (_, start_balance, balance, realized_pnl, fees_paid, funding_paid, funding_rate, mark, mark_ts, volume,
         next_day_ts, next_funding_ts, day_start_equity, breaker_active, breaker_reason, breaker_until,
         consecutive_losses, order_times, pos, trades_closed, fill_count) = v1  # fmt: skip
        if pos is not None and len(pos) != len(Position._fields):
            raise ValueError("version-1 broker position of another shape")
        return cls(
            start_balance, balance, realized_pnl, fees_paid, funding_paid, trades_closed, fill_count,
            None if pos is None else Position(*pos), funding_rate, mark, mark_ts, volume, next_funding_ts,
            next_day_ts, day_start_equity, breaker_active, breaker_reason, breaker_until, consecutive_losses,
            tuple(order_times), tuple(orders),
        )  # fmt: skip


_PLAIN_LEN = len(BrokerState._fields) - 1
