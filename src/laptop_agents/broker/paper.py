"""The paper broker: a pure, synchronous simulation of one perpetual-futures account.

Every rule works in *event time* (the ``ts`` of the candle or tick being
processed), never the wall clock, so a replay at any speed reproduces a live
session exactly; the seed system throttled by wall clock and a fast replay made
one trade and hundreds of rejections. Event time of everything in a step is the
candle's open time ``ts`` (its identity).

:class:`PaperBroker` orchestrates four parts, one concern each:

- :mod:`~laptop_agents.broker.ledger` — balance, PnL, fees, funding and the
  trade in progress (the balance identity holds by construction);
- :mod:`~laptop_agents.broker.fills` — the fill model: market, limit, stop,
  target, trailing, gap and partial-fill rules;
- :mod:`~laptop_agents.broker.limits` — hard limits and the circuit breaker;
- :mod:`~laptop_agents.broker.state` — the durable state as typed records.

The broker appends its events and fills to ``self.events`` / ``self.fills``;
the Engine drains them after each call so it can interleave the strategy's
reactions in a deterministic order.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from mypy_extensions import mypyc_attr

from laptop_agents.broker.fills import FillModel, fill_reason
from laptop_agents.broker.ledger import QTY_EPS, Ledger
from laptop_agents.broker.limits import DAY_MS, CircuitBreaker, RiskLimits
from laptop_agents.broker.state import BrokerState, Position, WorkingOrder
from laptop_agents.domain.contracts import AccountView
from laptop_agents.domain.events import (
    Event,
    FillEvent,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
)
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    Fill,
    Instrument,
    OrderIntent,
    OrderType,
    Side,
    Tick,
)

FUNDING_PERIOD_MS = 8 * 3_600_000  # funding settles at 00:00, 08:00 and 16:00 UTC
DEFAULT_STARTING_EQUITY = 10_000.0  # quote currency (USD/USDT), as the seed's default

if TYPE_CHECKING:  # the broker depends on domain only; config sections are read by attribute
    from laptop_agents.config import BrokerConfig, RiskConfig

# Named tuples built on every candle (the account view; the state, on every
# candle the store commits) without the named tuple's interpreted __new__:
# tuple.__new__ with every field, in field order.
_new_tuple = tuple.__new__


class Intake(NamedTuple):
    """An order that passed :meth:`PaperBroker._intake`: the intent, the order
    as it will work (``qty`` is what the limits allow), the note for its order
    event, the price it trades at now and the touch."""

    intent: OrderIntent
    order: WorkingOrder
    note: str
    price: float
    touch: float


def order_event(o: OrderIntent, ts: int, status: str, reason: str, qty: float) -> OrderEvent:
    """The journal's record of what became of intent ``o`` (``qty``: the part concerned)."""
    return OrderEvent(ts, o.client_id, o.side, o.type, qty, o.price, o.stop, o.target, status, reason)


@mypyc_attr(allow_interpreted_subclasses=True)  # the compiled core: LiveBroker derives from it in Python
class PaperBroker:
    """One symbol, one net position, working orders, hard limits and the breaker."""

    def __init__(
        self,
        instrument: Instrument,
        broker: BrokerConfig,
        risk: RiskConfig,
        starting_equity: float = DEFAULT_STARTING_EQUITY,
    ) -> None:
        self.instrument = instrument
        self.ledger = Ledger(instrument, broker, starting_equity)
        self.model = FillModel(instrument, broker)
        self.limits = RiskLimits(risk)
        self.breaker = CircuitBreaker(risk)
        self.inverse = self.ledger.inverse
        self._expiry_ms = int(round(broker.order_expiry_hours * 3_600_000))

        # --- durable state besides the parts' (see state()/load_state()) ---
        self.funding_rate: float | None = None
        self.mark: float | None = None  # last close
        self.mark_ts: int | None = None
        self.volume = 0.0  # last candle's volume (liquidity for new market orders)
        self.next_funding_ts: int | None = None
        self.orders: dict[str, WorkingOrder] = {}
        self.processed_ids: set[str] = set()

        # --- the operator's switch: set by the shell between steps, never by
        # the market; not part of state() (the session keeps it in the workspace) ---
        self.entries_paused = False

        # --- transient ---
        self.liquidity_left = math.inf  # what orders placed on this close may still fill
        self.view_equity = 0.0  # equity (settlement currency) of the last account_view
        self.tick: Tick | None = None
        self.events: list[Event] = []
        self.fills: list[Fill] = []
        self.new_ids: list[str] = []  # processed ids not yet persisted
        self.orders_dirty = False  # working orders changed since last persisted

    # ------------------------------------------------------------------ the account
    @property
    def position(self) -> Position | None:
        return self.ledger.position

    @property
    def position_qty(self) -> float:
        pos = self.ledger.position
        return pos.qty if pos is not None else 0.0

    @property
    def balance(self) -> float:
        return self.ledger.balance

    @property
    def start_balance(self) -> float | None:
        return self.ledger.start_balance

    @property
    def starting_equity_quote(self) -> float:
        return self.ledger.starting_equity_quote

    @property
    def realized_pnl(self) -> float:
        return self.ledger.realized_pnl

    @property
    def fees_paid(self) -> float:
        return self.ledger.fees_paid

    @property
    def funding_paid(self) -> float:
        return self.ledger.funding_paid

    @property
    def fill_count(self) -> int:
        return self.ledger.fill_count

    @property
    def trades_closed(self) -> int:
        return self.ledger.trades_closed

    @property
    def breaker_active(self) -> bool:
        return self.breaker.active

    @breaker_active.setter
    def breaker_active(self, active: bool) -> None:
        self.breaker.active = active

    def notional(self, qty: float, price: float) -> float:
        """Position value in quote currency (USD), what the hard limits cap."""
        return self.ledger.notional(qty, price)

    def unrealized(self, price: float | None = None) -> float:
        return self.ledger.unrealized(self.mark if price is None else price)

    def equity(self, price: float | None = None) -> float:
        """Balance plus unrealized PnL at ``price`` (default: last close), settlement currency."""
        return self.ledger.equity(self.mark if price is None else price)

    def equity_quote(self) -> float:
        """Equity in quote currency (USD/USDT): what sizing and leverage use."""
        return self.ledger.equity_quote(self.mark)

    def account_view(self, ts: int) -> AccountView:
        """What the strategy may know at ``ts``, computed in one pass (this
        runs once per candle). Leaves the settlement-currency equity in
        ``view_equity`` for the caller's step result."""
        ledger = self.ledger
        pos = ledger.position
        mark = self.mark
        bal = ledger.balance
        if pos is None:
            eq = bal + 0.0  # exactly equity(): balance + unrealized() (0.0 when flat)
            qty = entry = 0.0
        else:
            qty, entry = pos.qty, pos.entry_price
            eq = bal + (0.0 if mark is None else ledger.pnl(qty, entry, mark))
        self.view_equity = eq
        if self.inverse:
            eq_quote = eq * mark if mark is not None else ledger.starting_equity_quote
        else:
            eq_quote = eq
        breaker = self.breaker
        start = ledger.start_balance
        # RiskLimits.daily_loss_hit, inlined: this runs every candle.
        blocked = self.entries_paused or breaker.active or (
            mark is not None
            and start is not None
            and breaker.day_start_equity - eq >= self.limits.max_daily_loss * start
        )
        orders = self.orders
        return _new_tuple(
            AccountView, (ts, eq_quote, qty, entry, tuple(orders) if orders else (), blocked, self.funding_rate)
        )

    def entries_blocked(self) -> str:
        """Why new entries are refused right now ("" when they are allowed)."""
        if self.entries_paused:
            return "paused"
        if self.breaker.active:
            return "breaker"
        if self.mark is not None and self.limits.daily_loss_hit(
            self.ledger.start_balance, self.breaker.day_start_equity, self.equity()
        ):
            return "daily_loss"
        return ""

    # ------------------------------------------------------------------ events
    def drain(self) -> tuple[list[Event], list[Fill]]:
        events, fills = self.events, self.fills
        self.events, self.fills = [], []
        return events, fills

    def _execute(
        self,
        ts: int,
        client_id: str,
        side: Side,
        qty: float,
        price: float,
        liquidity: str,
        reason: str,
        order: WorkingOrder | OrderIntent | None = None,
        fee: float | None = None,
    ) -> None:
        """Book a fill in the ledger and journal it (and the trade it closed)."""
        fill, trade = self.ledger.execute(ts, client_id, side, qty, price, liquidity, reason, order, fee)
        self.fills.append(fill)
        self.events.append(FillEvent(ts, client_id, side, qty, price, fill.fee, liquidity, reason))
        if trade is not None:
            self.breaker.record_trade(trade.net_pnl)
            self.events.append(trade)

    # ------------------------------------------------------------------ intents
    def submit(self, intent: OrderIntent | CancelIntent, ts: int) -> None:
        """Accept a strategy intent at event time ``ts`` (the candle just closed)."""
        taken = self._intake(intent, ts)
        if taken is None:
            return
        o, wo, note, px, touch = taken
        cid = o.client_id
        allowed = wo.qty
        marketable = o.type is OrderType.MARKET or (
            o.price is not None and (o.price >= touch if o.side is Side.BUY else o.price <= touch)
        )
        if not marketable:
            self.events.append(order_event(o, ts, "working", note, allowed))
            self.orders[cid] = wo
            self.orders_dirty = True
            return
        self.events.append(order_event(o, ts, "accepted", note, allowed))
        model = self.model
        fill_qty = model.capped(allowed, self.liquidity_left, px)
        if fill_qty >= self.instrument.min_qty - QTY_EPS:
            reason = fill_reason(self.position_qty, o.side, fill_qty)
            self._execute(ts, cid, o.side, fill_qty, px, "taker", reason, wo)
            self.liquidity_left -= model.base(fill_qty, px)
            wo = wo._replace(qty=wo.qty - fill_qty, filled=wo.filled + fill_qty)
        if wo.qty > QTY_EPS:
            # The rest waits for the next candles' liquidity (a limit keeps its price).
            self.orders[cid] = wo
            self.orders_dirty = True
            self.events.append(order_event(o, ts, "working", "partial_fill", wo.qty))

    def _intake(self, intent: OrderIntent | CancelIntent, ts: int) -> Intake | None:
        """What every broker does with an intent before it trades or sends it
        (the live broker too, so both refuse the same orders for the same
        reasons): a cancel goes to :meth:`cancel`; an order whose client id was
        already processed is journaled as a duplicate (a replayed step must not
        trade twice); then the checks, in this order: orders per minute, a price
        to trade at, minimum size, the hard limits, the bracket. A refusal is
        journaled here; None then, else the accepted order (its time counts
        against the orders per minute from now on)."""
        if isinstance(intent, CancelIntent):
            self.cancel(intent.client_id, ts, intent.reason or "cancel")
            return None
        o = intent
        cid = o.client_id
        if cid in self.processed_ids:
            self.events.append(order_event(o, ts, "duplicate", "client id already processed", o.qty))
            return None
        self.processed_ids.add(cid)
        self.new_ids.append(cid)
        refusal = self._refusal(o, ts)
        if isinstance(refusal, str):
            self.events.append(order_event(o, ts, "rejected", refusal, o.qty))
            return None
        allowed, note, px, touch = refusal
        self.limits.order_times.append(ts)
        expire = o.expire_ts if o.expire_ts is not None else ts + self._expiry_ms
        wo = WorkingOrder(
            cid, o.side, o.type, allowed, 0.0, o.price, o.stop, o.target, o.trailing,
            o.reduce_only or allowed < o.qty - QTY_EPS, o.reason, ts, expire,
        )  # fmt: skip
        return Intake(o, wo, note, px, touch)

    def _refusal(self, o: OrderIntent, ts: int) -> str | tuple[float, str, float, float]:
        """Why the order is refused, or the quantity allowed, the note for the
        order event, the price it trades at now and the touch (see :meth:`_intake`)."""
        if self.limits.rate_limited(ts):
            return "max_orders_per_minute"
        if self.mark is None:
            return "no_price_yet"
        if o.qty < self.instrument.min_qty - QTY_EPS:
            return "min_qty"
        model = self.model
        touch = model.touch(o.side, self.tick, self.mark, self.mark_ts)
        mkt = model.market_price(o.side, touch)
        if o.type is OrderType.MARKET or o.price is None:
            px = mkt
        else:  # a limit never trades worse than its price; resting, it is priced at its limit
            px = min(mkt, o.price) if o.side is Side.BUY else max(mkt, o.price)
        allowed, why = self._admit_new(o, px)
        if allowed <= QTY_EPS:
            return why
        if allowed < o.qty - QTY_EPS:
            return allowed, f"clipped to close: {why}", px, touch
        if not o.reduce_only and fill_reason(self.position_qty, o.side, o.qty) != "exit":
            bad = self._bad_bracket(o, px)
            if bad:
                return bad
        return allowed, o.reason, px, touch

    def _admit_new(self, o: OrderIntent, px: float) -> tuple[float, str]:
        """How much of a new order the limits allow at ``px``, and why not all
        (the live broker also counts the orders still working at the exchange)."""
        return self._admit(o.side, o.qty, px, o.reduce_only)

    def _admit(self, side: Side, qty: float, price: float, reduce_only: bool) -> tuple[float, str]:
        blocked = self.entries_blocked()
        return self.limits.admit(side, qty, price, reduce_only, self.ledger, blocked, self.equity_quote())

    def _bad_bracket(self, o: OrderIntent, px: float) -> str:
        """Why an opening order's size or protective prices make no sense at
        ``px`` ("" when they are fine): a stop or target on the wrong side
        would trigger at once."""
        if self.ledger.notional(o.qty, px) < self.instrument.min_notional:
            return "min_notional"
        s = o.side.sign
        if o.stop is not None and (o.stop - px) * s >= 0:
            return "stop_on_wrong_side"
        if o.target is not None and (o.target - px) * s <= 0:
            return "target_on_wrong_side"
        return ""

    def cancel(self, client_id: str, ts: int, reason: str) -> bool:
        if self.orders.pop(client_id, None) is None:
            return False
        self.orders_dirty = True
        self.events.append(OrderCancelled(ts, client_id, reason))
        return True

    def expire(self, ts: int) -> None:
        """Expire working orders whose time has come (every candle and on load)."""
        for cid in [c for c, o in self.orders.items() if o.expire_ts <= ts]:
            o = self.orders.pop(cid)
            self.orders_dirty = True
            self.events.append(OrderExpired(ts, cid, o.expire_ts, o.qty))

    def flatten(self, ts: int, reason: str = "flatten") -> None:
        """Close the position at the market now (kill switch); no volume cap."""
        pos = self.ledger.position
        if pos is None or self.mark is None:
            return
        side = Side.SELL if pos.qty > 0 else Side.BUY
        px = self.model.market_price(side, self.model.touch(side, self.tick, self.mark, self.mark_ts))
        self._execute(ts, self.ledger.exit_id(reason), side, abs(pos.qty), px, "taker", reason)

    # ------------------------------------------------------------------ candles
    def on_candle(self, c: Candle) -> None:
        """Everything the market did to the account during candle ``c``: day
        roll, funding, expiry, stops/targets, working-order fills, trailing."""
        ts = c.ts
        self._open_candle(c)
        if ts >= self.next_funding_ts:  # type: ignore[operator]
            self._funding(c)
        ledger = self.ledger
        pos = ledger.position
        if pos is not None:
            hit = self.model.bar_exit(pos, c)
            if hit is not None:
                self._exit(c.ts, pos, hit)
        if self.orders:
            self.expire(ts)
            if self.orders:
                self._fill_working(c)
        self._close_candle(c)

    def _open_candle(self, c: Candle) -> None:
        """What every candle starts with (the live broker's too): the first
        price, and the UTC day roll before anything is booked in the new day."""
        ts = c.ts
        if self.mark is None:
            self._first_price(c)
        breaker = self.breaker
        if ts >= breaker.next_day_ts:  # type: ignore[operator]
            reset = breaker.roll_day(ts, self.equity())
            if reset is not None:
                self.events.append(reset)

    def _close_candle(self, c: Candle) -> None:
        """What every candle ends with (the live broker's too): the trailing
        stop follows the close, which becomes the mark; the close's volume is
        the liquidity orders placed now may take."""
        ledger = self.ledger
        pos = ledger.position
        if pos is not None and pos.trailing and pos.risk > 0.0 and pos.stop is not None:
            ledger.position = self.model.trail(pos, c.close)
        self.mark = c.close
        self.mark_ts = c.ts
        self.volume = c.volume
        self.liquidity_left = self.model.cap(c.volume)

    def _first_price(self, c: Candle) -> None:
        self.ledger.first_price(c.open)
        self.mark = c.open
        self.mark_ts = c.ts
        self.breaker.next_day_ts = c.ts - c.ts % DAY_MS  # rolls immediately: sets the day's start equity
        self.next_funding_ts = (c.ts // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS

    def _funding(self, c: Candle) -> None:
        """Settle every funding boundary crossed since the last candle, at the bar's open."""
        boundary = self.next_funding_ts
        assert boundary is not None
        while boundary <= c.ts:
            charged = self.ledger.charge_funding(c.ts, boundary, self.funding_rate, c.open)
            if charged is not None:
                self.events.append(charged)
            boundary += FUNDING_PERIOD_MS
        self.next_funding_ts = boundary

    def _exit(self, ts: int, pos: Position, hit: tuple[float, str, str]) -> None:
        """Close the position at a stop or target the bar reached (see :meth:`FillModel.bar_exit`)."""
        px, liquidity, reason = hit
        side = Side.SELL if pos.qty > 0 else Side.BUY
        self._execute(ts, self.ledger.exit_id(reason), side, abs(pos.qty), px, liquidity, reason)

    def _fill_working(self, c: Candle) -> None:
        model = self.model
        cap = model.cap(c.volume)
        min_qty = self.instrument.min_qty
        entered = False
        for cid in list(self.orders):
            o = self.orders.get(cid)
            if o is None:
                continue
            hit = model.working_fill(o, c)
            if hit is None:
                continue
            px, liq = hit
            want = model.capped(o.qty, cap, px)
            if want < min_qty - QTY_EPS:
                continue  # not enough liquidity in this bar; keep working
            allowed, why = self._admit(o.side, want, px, o.reduce_only)
            if allowed <= QTY_EPS:
                self.cancel(cid, c.ts, why)
                continue
            pos_before = self.position_qty
            reason = fill_reason(pos_before, o.side, allowed)
            self._execute(c.ts, cid, o.side, allowed, px, liq, reason, o)
            cap -= model.base(allowed, px)
            pos_after = self.position_qty
            if abs(pos_after) > abs(pos_before) or pos_after * pos_before < 0:
                entered = True
            o = o._replace(qty=o.qty - allowed, filled=o.filled + allowed)
            self.orders[cid] = o
            self.orders_dirty = True
            if allowed < want - QTY_EPS:
                self.cancel(cid, c.ts, f"clipped: {why or 'reduce_only'}")
            elif o.qty <= QTY_EPS:
                del self.orders[cid]
        if entered:
            self._stop_after_entry(c)

    def _stop_after_entry(self, c: Candle) -> None:
        """A position entered during this candle is stopped out in the same
        candle when the candle also reached its stop (see :meth:`FillModel.stop_after_entry`)."""
        ledger = self.ledger
        pos = ledger.position
        if pos is None:
            return
        px = self.model.stop_after_entry(pos, c)
        if px is not None:
            side = Side.SELL if pos.qty > 0 else Side.BUY
            self._execute(c.ts, ledger.exit_id("stop"), side, abs(pos.qty), px, "taker", "stop")

    # ------------------------------------------------------------------ breaker
    def check_breaker(self, ts: int) -> None:
        """Trip on the day's drawdown or a run of losing trades; entries stay
        blocked until the next UTC day (event time), and working entry orders
        are cancelled."""
        mark = self.mark
        if self.breaker.active or mark is None:
            return
        trip = self.breaker.check(ts, self.ledger.equity(mark))
        if trip is None:
            return
        self.events.append(trip)
        for cid in [c for c, o in self.orders.items() if not o.reduce_only]:
            self.cancel(cid, ts, "breaker")

    # ------------------------------------------------------------------ state
    def state(self) -> BrokerState:
        """The durable state (processed ids aside: see :mod:`laptop_agents.broker.state`)."""
        ledger, breaker = self.ledger, self.breaker
        orders = self.orders
        return _new_tuple(BrokerState, (
            ledger.start_balance, ledger.balance, ledger.realized_pnl, ledger.fees_paid, ledger.funding_paid,
            ledger.trades_closed, ledger.fill_count, ledger.position, self.funding_rate, self.mark,
            self.mark_ts, self.volume, self.next_funding_ts, breaker.next_day_ts, breaker.day_start_equity,
            breaker.active, breaker.reason, breaker.until, breaker.consecutive_losses,
            tuple(self.limits.order_times), tuple(orders.values()) if orders else (),
        ))  # fmt: skip

    def load_state(self, state: BrokerState, processed_ids: set[str] | frozenset[str] | None = None) -> None:
        """Continue from ``state`` (and the processed client ids, when given)."""
        ledger, breaker = self.ledger, self.breaker
        ledger.start_balance = state.start_balance
        ledger.balance = state.balance
        ledger.realized_pnl = state.realized_pnl
        ledger.fees_paid = state.fees_paid
        ledger.funding_paid = state.funding_paid
        ledger.trades_closed = state.trades_closed
        ledger.fill_count = state.fill_count
        ledger.position = state.position
        self.funding_rate = state.funding_rate
        self.mark = state.mark
        self.mark_ts = state.mark_ts
        self.volume = state.volume
        self.next_funding_ts = state.next_funding_ts
        breaker.next_day_ts = state.next_day_ts
        breaker.day_start_equity = state.day_start_equity
        breaker.active = state.breaker_active
        breaker.reason = state.breaker_reason
        breaker.until = state.breaker_until
        breaker.consecutive_losses = state.consecutive_losses
        self.limits.order_times = deque(state.order_times)
        self.orders = {o.client_id: o for o in state.orders}
        if processed_ids is not None:
            self.processed_ids = set(processed_ids)
        self.liquidity_left = self.model.cap(self.volume)
        self.new_ids = []
        self.orders_dirty = False
