"""Private websocket frames -> typed updates, and fills counted exactly once.

Bitunix pushes order *snapshots* (cumulative filled quantity, average price,
cumulative fee), not individual trades. :class:`FillTracker` turns the
snapshots of an order -- from the websocket or from REST after a gap, in any
order, repeated or stale -- into fills: a fill is the increase of an order's
cumulative filled quantity over what was already counted, so the same
execution seen twice (a push and a REST gap fill) is counted once, and a
stale snapshot (a delayed push arriving after the REST read) counts nothing.

:func:`parse_private_frame` is pure and raises only :class:`BadFrameError`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from laptop_agents.domain.models import Side
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.errors import BadFrameError
from laptop_agents.exchange.parsers import Connected, Pong, ServerNotice, parse_json, snippet, timestamp_ms
from laptop_agents.exchange.private_models import (
    Balance,
    Order,
    Position,
    object_list,
    parse_model,
    wire_number,
)

Source = Literal["ws", "rest"]
_EPS = 1e-12
_STATUS_RANK = {"INIT": 0, "NEW": 1, "PART_FILLED": 2}  # anything else is terminal (3)


def _rank(status: str) -> int:
    return _STATUS_RANK.get(status, 3)


# -- what the private stream yields ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A new state of an order (``event``: CREATE/UPDATE/CLOSE on the socket, SNAPSHOT from REST)."""

    event: str
    order: Order
    ts: int
    source: Source = "ws"


@dataclass(frozen=True, slots=True)
class FillUpdate:
    """An execution: ``qty`` more of the order filled at ``price`` (volume-weighted
    when several trades fell between two snapshots). ``fill_id`` is
    ``<orderId>@<cumulative qty>``: the same execution always has the same id."""

    fill_id: str
    order_id: str
    client_id: str | None
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float
    cum_qty: float
    order_status: str
    reduce_only: bool
    ts: int
    source: Source = "ws"


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    event: str
    position: Position
    ts: int
    source: Source = "ws"


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    balance: Balance
    ts: int
    source: Source = "ws"


@dataclass(frozen=True, slots=True)
class PrivateConnected:
    """Logged in and subscribed on connection ``conn``."""

    conn: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class PrivateGap:
    """Updates may have been missed between ``since_ms`` (exchange time, with a
    safety margin; None = unknown, reconcile fully) and now: fill it from REST."""

    since_ms: int | None
    conn: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class PrivateDisconnected:
    conn: int
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class PrivateProblem:
    """A frame that could not be understood (counted and reported, never fatal)."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class GapFilled:
    """The REST gap fill after a :class:`PrivateGap` finished (its order and fill
    updates were yielded just before): current positions and balance included."""

    since_ms: int | None
    orders_seen: int
    fills: int
    positions: tuple[Position, ...]
    balance: Balance | None


PrivateUpdate = (
    OrderUpdate | FillUpdate | PositionUpdate | BalanceUpdate | PrivateConnected | PrivateGap
    | PrivateDisconnected | PrivateProblem | GapFilled
)


# -- frames ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoginAck:
    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class OrderPush:
    ts: int
    items: tuple[tuple[str, Order], ...]  # (event, order)


@dataclass(frozen=True, slots=True)
class PositionPush:
    ts: int
    items: tuple[tuple[str, Position], ...]


@dataclass(frozen=True, slots=True)
class BalancePush:
    ts: int
    balances: tuple[Balance, ...]


@dataclass(frozen=True, slots=True)
class OtherChannel:
    channel: str


PrivateFrame = LoginAck | Pong | Connected | ServerNotice | OrderPush | PositionPush | BalancePush | OtherChannel


def parse_private_frame(raw: str | bytes) -> PrivateFrame:
    """One private-socket frame, validated. Raises only :class:`BadFrameError`."""
    obj = parse_json(raw, "private websocket frame", err=BadFrameError)
    if not isinstance(obj, dict):
        raise BadFrameError(f"private websocket frame: expected an object, got {type(obj).__name__}")
    op = obj.get("op")
    if op is not None:
        if op == pp.WS_LOGIN_OP:
            data = obj.get("data")
            ok = isinstance(data, Mapping) and data.get("result") is True
            return LoginAck(ok, snippet(raw))
        if op == "ping" and "pong" in obj:
            return Pong(obj.get("pong"), obj.get("ping"))
        if op == "connect":
            data = obj.get("data")
            return Connected(isinstance(data, Mapping) and data.get("result") is True)
        code = obj.get("code")
        error = op == "error" or (isinstance(code, int | str) and str(code) not in ("0", ""))
        return ServerNotice(str(op), error, snippet(raw))
    channel = obj.get("ch")
    if not isinstance(channel, str) or not channel:
        if "code" in obj:
            return ServerNotice("code", str(obj.get("code")) != "0", snippet(raw))
        raise BadFrameError(f"private websocket frame: neither op nor ch: {snippet(raw)!r}")
    if channel not in (pp.WS_CHANNEL_ORDER, pp.WS_CHANNEL_POSITION, pp.WS_CHANNEL_BALANCE):
        return OtherChannel(channel)
    ts = timestamp_ms(obj.get("ts"), f"{channel} ts", err=BadFrameError)
    rows = object_list(obj.get("data"), f"{channel} data", err=BadFrameError)
    if channel == pp.WS_CHANNEL_BALANCE:
        return BalancePush(ts, tuple(parse_model(Balance, r, "balance push", BadFrameError) for r in rows))
    items: list[tuple[str, Any]] = []
    for row in rows:
        event = str(row.get("event", "UPDATE")).upper() if isinstance(row, Mapping) else "UPDATE"
        if channel == pp.WS_CHANNEL_ORDER:
            items.append((event, parse_model(Order, row, "order push", BadFrameError)))
        else:
            items.append((event, parse_model(Position, row, "position push", BadFrameError)))
    if channel == pp.WS_CHANNEL_ORDER:
        return OrderPush(ts, tuple(items))
    return PositionPush(ts, tuple(items))


# -- fills exactly once ------------------------------------------------------------------------
@dataclass(slots=True)
class _Seen:
    cum_qty: float = 0.0
    cum_value: float = 0.0
    cum_fee: float = 0.0
    status: str = "INIT"
    mtime: int | None = None


@dataclass(slots=True)
class FillTracker:
    """Per order: the cumulative quantity, value and fee already turned into fills.

    ``snapshot``/``restore`` let a caller persist it (a fill counted before a
    restart stays counted). Finished orders are kept (bounded by
    ``max_orders``, oldest first out) so a late stale snapshot of one cannot
    count it again."""

    max_orders: int = 50_000
    _orders: OrderedDict[str, _Seen] = field(default_factory=OrderedDict)
    fills: int = 0
    stale: int = 0

    def observe(self, order: Order, *, ts: int, source: Source) -> tuple[bool, FillUpdate | None]:
        """(news, fill): ``news`` is False for a snapshot that is a repeat of, or
        older than, what is known; ``fill`` is the execution it reveals, if any."""
        seen = self._orders.get(order.order_id)
        if seen is None:
            seen = _Seen()
            self._orders[order.order_id] = seen
            while len(self._orders) > self.max_orders:
                self._orders.popitem(last=False)
            first = True
        else:
            first = False
        cum = order.filled_qty
        older = (
            cum < seen.cum_qty - _EPS
            or (order.mtime is not None and seen.mtime is not None and order.mtime < seen.mtime)
            or (_rank(order.status) < _rank(seen.status) and cum <= seen.cum_qty + _EPS)
        )
        if older:
            self.stale += 1
            return False, None
        fill: FillUpdate | None = None
        if cum > seen.cum_qty + _EPS:
            delta = round(cum - seen.cum_qty, 12)
            if order.avg_price is not None:
                value = order.avg_price * cum
            else:
                value = seen.cum_value + (order.price or 0.0) * delta
            price = (value - seen.cum_value) / delta if delta > 0 else 0.0
            fee = max(0.0, order.fee - seen.cum_fee)
            fill = FillUpdate(
                fill_id=f"{order.order_id}@{wire_number(round(cum, 10))}",
                order_id=order.order_id,
                client_id=order.client_id,
                symbol=order.symbol,
                side=order.side,
                qty=delta,
                price=round(price, 8),
                fee=round(fee, 10),
                cum_qty=cum,
                order_status=order.status,
                reduce_only=order.reduce_only,
                ts=order.mtime if order.mtime is not None else ts,
                source=source,
            )
            seen.cum_qty = cum
            seen.cum_value = value
            seen.cum_fee = max(seen.cum_fee, order.fee)
            self.fills += 1
        news = first or fill is not None or order.status != seen.status
        seen.status = order.status if _rank(order.status) >= _rank(seen.status) else seen.status
        if order.mtime is not None:
            seen.mtime = max(order.mtime, seen.mtime or 0)
        seen.cum_fee = max(seen.cum_fee, order.fee)
        self._orders.move_to_end(order.order_id)
        return news, fill

    def open_order_ids(self) -> list[str]:
        """Orders last seen open: after a gap each must be re-read (it may have
        filled while we could not see it)."""
        return [oid for oid, s in self._orders.items() if _rank(s.status) < 3]

    def counted_qty(self, order_id: str) -> float:
        seen = self._orders.get(order_id)
        return seen.cum_qty if seen else 0.0

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            oid: {"cum_qty": s.cum_qty, "cum_value": s.cum_value, "cum_fee": s.cum_fee, "status": s.status,
                  "mtime": s.mtime}
            for oid, s in self._orders.items()
        }

    def restore(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        for oid, s in data.items():
            self._orders[oid] = _Seen(float(s["cum_qty"]), float(s["cum_value"]), float(s["cum_fee"]),
                                      str(s["status"]), s.get("mtime"))
