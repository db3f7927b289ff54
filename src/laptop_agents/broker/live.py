"""The live broker: the paper broker's books, with the exchange doing the trading.

In live mode the Engine is the same deterministic core; only its broker
changes. :class:`LiveBroker` checks an intent exactly as the paper broker does
(duplicate id, orders per minute, minimum size, the hard limits, the
bracket), then, instead of simulating a fill, records the order as *working*
and puts it in an outbox. The session's execution client (the I/O shell,
:mod:`laptop_agents.session.execution`) commits the outbox with the step and
then sends it. What the exchange did comes back through two explicit,
deterministic inputs -- :meth:`LiveBroker.apply_fill` and
:meth:`LiveBroker.apply_status` -- which produce the same typed events
(``fill``, ``trade_closed``, ``order_cancelled``...) the paper broker
produces, so the store, journal, trade log, reports and dashboard do not care
which mode ran.

What the market does to the account is the exchange's business: no simulated
fills, no simulated funding. The bot still watches its position's stop and
target on every closed candle (as the paper broker does) and, when one is
reached, asks for a reduce-only market exit through the outbox; an expiry or a
cancel is a *request* to the exchange, and the order leaves the books only
when the exchange confirms it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from laptop_agents.broker.fills import fill_reason
from laptop_agents.broker.ledger import QTY_EPS
from laptop_agents.broker.paper import DEFAULT_STARTING_EQUITY, PaperBroker, order_event
from laptop_agents.broker.state import Position, WorkingOrder
from laptop_agents.domain.events import OrderCancelled, OrderEvent, OrderExpired, Reconciled
from laptop_agents.domain.models import CancelIntent, Candle, Instrument, OrderIntent, OrderType, Side

if TYPE_CHECKING:  # config sections are read by attribute, as in the paper broker
    from laptop_agents.config import BrokerConfig, RiskConfig


class ExchangeFill(NamedTuple):
    """``qty`` more of order ``client_id`` (the intent's id) traded at ``price``;
    ``fee`` is what the exchange charged for it (settlement currency)."""

    client_id: str
    side: Side
    qty: float
    price: float
    fee: float
    ts: int
    liquidity: str  # maker | taker


class ExchangeStatus(NamedTuple):
    """An order left the exchange's book, or never reached it.

    ``status``: ``cancelled`` | ``expired`` | ``rejected`` | ``not_placed`` |
    ``filled`` (done: whatever was not filled is gone)."""

    client_id: str
    status: str
    ts: int
    reason: str = ""


ExchangeUpdate = ExchangeFill | ExchangeStatus

_GONE = frozenset({"cancelled", "expired", "rejected", "not_placed", "filled"})


class LiveBroker(PaperBroker):
    """Books of a live account; the exchange fills. See the module docstring."""

    def __init__(self, instrument: Instrument, broker: BrokerConfig, risk: RiskConfig,
                 starting_equity: float = DEFAULT_STARTING_EQUITY) -> None:
        super().__init__(instrument, broker, risk, starting_equity)
        # --- transient: what the shell must send after the step is committed ---
        self.outbox: list[WorkingOrder] = []
        self.cancel_requests: list[str] = []
        self._cancelling: set[str] = set()  # asked this process; a restart asks again

    # ------------------------------------------------------------------ intents
    def submit(self, intent: OrderIntent | CancelIntent, ts: int) -> None:
        """Check the intent as the paper broker does, then send instead of filling."""
        taken = self._intake(intent, ts)
        if taken is None:
            return
        self._send(taken.order)
        self.events.append(order_event(taken.intent, ts, "submitted", taken.note, taken.order.qty))

    def _admit_new(self, o: OrderIntent, px: float) -> tuple[float, str]:
        """What is already working counts against the limits too: two entries
        sent in one candle must not together break the position cap. The
        order is judged as if the working entries had filled."""
        pending = sum(w.qty * w.side.sign for w in self.orders.values() if not w.reduce_only)
        if not pending or o.reduce_only:
            return self._admit(o.side, o.qty, px, o.reduce_only)
        ledger = self.ledger
        saved = ledger.position
        base = saved.qty if saved is not None else 0.0
        try:
            if saved is not None:
                ledger.position = saved._replace(qty=base + pending)
            elif abs(pending) > QTY_EPS:
                ledger.position = Position(pending, px, 0, "pending", None, None, False, 0.0, False,
                                           abs(pending), 0.0, 0.0, 0.0, 0.0, 0.0)
            return self._admit(o.side, o.qty, px, o.reduce_only)
        finally:
            ledger.position = saved

    def _send(self, wo: WorkingOrder) -> None:
        self.orders[wo.client_id] = wo
        self.orders_dirty = True
        self.outbox.append(wo)

    def cancel(self, client_id: str, ts: int, reason: str) -> bool:
        """Ask the exchange to cancel; the order stays on the books until it says so."""
        if client_id not in self.orders:
            return False
        if client_id not in self._cancelling:
            self._cancelling.add(client_id)
            self.cancel_requests.append(client_id)
        return True

    def expire(self, ts: int) -> None:
        for cid, o in self.orders.items():
            if o.expire_ts <= ts and cid not in self._cancelling:
                self._cancelling.add(cid)
                self.cancel_requests.append(cid)

    def flatten(self, ts: int, reason: str = "flatten") -> None:
        """A reduce-only market exit for the whole position, through the outbox."""
        self._request_exit(ts, reason)

    def _request_exit(self, ts: int, reason: str) -> None:
        pos = self.ledger.position
        if pos is None or self._exit_working():
            return
        side = Side.SELL if pos.qty > 0 else Side.BUY
        cid = self.ledger.exit_id(reason)
        if cid in self.orders:
            return
        wo = WorkingOrder(cid, side, OrderType.MARKET, abs(pos.qty), 0.0, None, None, None, False, True, reason,
                          ts, ts + self._expiry_ms)
        self._send(wo)
        self.events.append(OrderEvent(ts, cid, side, OrderType.MARKET, abs(pos.qty), None, None, None,
                                      "submitted", reason))

    def _exit_working(self) -> bool:
        """A market reduce-only exit is already on its way: never send a second."""
        return any(o.reduce_only and o.type is OrderType.MARKET for o in self.orders.values())

    # ------------------------------------------------------------------ candles
    def on_candle(self, c: Candle) -> None:
        """Day roll, stop/target watch, expiry requests, trailing, the mark.
        No simulated fills and no simulated funding: the exchange does both."""
        ts = c.ts
        self._open_candle(c)
        pos = self.ledger.position
        if pos is not None:
            hit = self.model.bar_exit(pos, c)
            if hit is not None:
                self._request_exit(ts, hit[2])
        if self.orders:
            self.expire(ts)
        self._close_candle(c)

    # ------------------------------------------------------------------ the exchange's word
    def apply(self, update: ExchangeUpdate) -> None:
        if isinstance(update, ExchangeFill):
            self.apply_fill(update)
        else:
            self.apply_status(update)

    def apply_fill(self, f: ExchangeFill) -> None:
        """Book an exchange fill (its price and fee) exactly like a paper fill."""
        if f.qty <= QTY_EPS:
            return
        o = self.orders.get(f.client_id)
        reason = fill_reason(self.position_qty, f.side, f.qty)
        if o is not None and o.reason and f":{o.reason}:" in o.client_id:
            reason = o.reason  # the broker's own exit (stop, target, flatten): its reason, as in paper
        self._execute(f.ts, f.client_id, f.side, f.qty, f.price, f.liquidity, reason, o, fee=f.fee)
        if o is not None:
            left = o.qty - f.qty
            if left <= QTY_EPS:
                del self.orders[f.client_id]
                self._cancelling.discard(f.client_id)
            else:
                self.orders[f.client_id] = o._replace(qty=left, filled=o.filled + f.qty)
            self.orders_dirty = True

    def apply_status(self, s: ExchangeStatus) -> None:
        """The order is gone from the exchange's book (or never got there)."""
        if s.status not in _GONE:
            raise ValueError(f"unknown exchange status {s.status!r}")
        o = self.orders.pop(s.client_id, None)
        self._cancelling.discard(s.client_id)
        if o is None:
            return
        self.orders_dirty = True
        if s.status == "filled":
            return
        if s.status == "expired":
            self.events.append(OrderExpired(s.ts, s.client_id, o.expire_ts, o.qty))
        elif s.status == "rejected":
            self.events.append(OrderEvent(s.ts, s.client_id, o.side, o.type, o.qty, o.price, o.stop, o.target,
                                          "rejected", s.reason or "exchange"))
        else:
            self.events.append(OrderCancelled(s.ts, s.client_id, s.reason or s.status))

    def adopt_position(self, qty: float, entry_price: float, ts: int, detail: str) -> None:
        """Take over a position found on the exchange (``--adopt``), journaled."""
        if abs(qty) <= QTY_EPS:
            self.ledger.position = None
        else:
            self.ledger.position = Position(qty, entry_price, ts, f"adopted-{ts}", None, None, False, 0.0, False,
                                            abs(qty), 0.0, 0.0, 0.0, 0.0, 0.0)
        self.events.append(Reconciled(ts, "adopted_position", None, detail))

    def note(self, ts: int, what: str, client_id: str | None, detail: str) -> None:
        """Journal a reconciliation the shell applied (with the step that applies it)."""
        self.events.append(Reconciled(ts, what, client_id, detail))

    def take_outbox(self) -> tuple[list[WorkingOrder], list[str]]:
        orders, cancels = self.outbox, self.cancel_requests
        self.outbox, self.cancel_requests = [], []
        return orders, cancels
