"""The paper broker: a pure, synchronous simulation of one perpetual-futures account.

Every rule works in *event time* (the ``ts`` of the candle or tick being
processed), never the wall clock, so a replay at any speed reproduces a live
session exactly; the seed system throttled by wall clock and a fast replay made
one trade and hundreds of rejections.

The account is kept in the contract's settlement currency: USDT for linear
contracts, BTC for inverse ones. Every change to the balance goes through
:meth:`PaperBroker._execute` (fills) or :meth:`PaperBroker._charge_funding`, so
``balance == start_balance + realized_pnl - fees_paid - funding_paid`` holds by
construction and the ledger (fills + funding events) reproduces it.

The broker appends its events and fills to ``self.events`` / ``self.fills``;
the Engine drains them after each call so it can interleave the strategy's
reactions in a deterministic order.

Fill model, and the choices where the rules leave room:

- Event time of everything in a step is the candle's open time ``ts`` (its
  identity). Orders decided on a close execute "at the next price": the touch
  of a tick received during that candle, else the close, plus slippage.
- A limit fills only when a later candle trades *through* its price (a touch
  is not enough), at the limit or at the open when the bar gaps past it. A
  take-profit target is a resting limit too and follows the same rule; a stop
  (stop-market) fills on a touch, at the stop or at the open on a gap.
- Partial fills: at most ``partial_fill_volume_frac`` of a candle's volume per
  candle (shared by the orders filling in it); the rest keeps working. Volume
  is in BTC for both contract kinds, so an inverse order's USD contracts are
  converted at the fill price (``qty * contract_size / price``); a capped fill
  is floored to the quantity step (whole contracts). A volume of 0 means "not
  reported" (real files have such bars) and sets no cap. Protective exits
  (stop, target, trailing, flatten) are never capped.
- Stop and target both inside one bar: the stop wins. A position entered
  during a bar is stopped in that same bar if the bar also reached its stop
  (targets wait for the next bar): the pessimistic reading of an OHLC bar.
- Entries (opening, adding, reversing) pass the hard limits, the breaker and
  the operator's pause (:attr:`PaperBroker.entries_paused`); reductions always pass. A reversal that may not open is clipped to a close.
- ``max_orders_per_minute`` counts accepted orders in the 60 s of event time
  up to ``ts``; ``max_daily_loss_pct`` is of the account's starting equity,
  measured from the UTC day's starting equity; a breaker trip also cancels
  working entry orders.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from laptop_agents.domain.contracts import AccountView
from laptop_agents.domain.fast import fast_init
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    ContractKind,
    Event,
    Fill,
    Instrument,
    OrderIntent,
    OrderType,
    Side,
    Tick,
)

DAY_MS = 86_400_000
FUNDING_PERIOD_MS = 8 * 3_600_000  # funding settles at 00:00, 08:00 and 16:00 UTC
MINUTE_MS = 60_000
QTY_EPS = 1e-9  # quantities below this are zero (float noise from partial fills)
DEFAULT_STARTING_EQUITY = 10_000.0  # quote currency (USD/USDT), as the seed's default
STATE_VERSION = 1

if TYPE_CHECKING:  # the broker depends on domain only; config sections are read by attribute
    from laptop_agents.config import BrokerConfig, RiskConfig


# Built once per candle (the view) or per broker event: without the frozen
# dataclass __init__ (see laptop_agents.domain.fast).
new_account_view = fast_init(AccountView)
new_event = fast_init(Event)


@dataclass(slots=True)
class WorkingOrder:
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
        return (
            self.client_id, self.side.value, self.type.value, self.qty, self.filled, self.price,
            self.stop, self.target, self.trailing, self.reduce_only, self.reason,
            self.created_ts, self.expire_ts,
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | list[Any]) -> WorkingOrder:
        (cid, side, typ, qty, filled, price, stop, target, trailing, reduce_only, reason, created, expire) = (
            row
        )
        return cls(
            str(cid), Side(side), OrderType(typ), float(qty), float(filled),
            None if price is None else float(price), None if stop is None else float(stop),
            None if target is None else float(target), bool(trailing), bool(reduce_only),
            str(reason), int(created), int(expire),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id, "side": self.side.value, "type": self.type.value,
            "qty": self.qty, "filled": self.filled, "price": self.price, "stop": self.stop,
            "target": self.target, "reduce_only": self.reduce_only, "created_ts": self.created_ts,
            "expire_ts": self.expire_ts,
        }  # fmt: skip


@dataclass(slots=True)
class Position:
    """The open net position, which is also the trade in progress: a trade opens
    when the position leaves zero and closes when it returns to zero."""

    qty: float  # signed: long > 0
    entry_price: float
    entry_ts: int
    client_id: str
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

    def to_row(self) -> tuple[Any, ...]:
        return (
            self.qty, self.entry_price, self.entry_ts, self.client_id, self.stop, self.target,
            self.trailing, self.risk, self.trail_active, self.max_qty, self.pnl, self.fees,
            self.funding, self.exit_qty, self.exit_acc,
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Position:
        return cls(*row)


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
        self.inverse = instrument.kind is ContractKind.INVERSE
        self.cs = instrument.contract_size
        self._maker = broker.maker_fee_bps / 1e4
        self._taker = broker.taker_fee_bps / 1e4
        self._slip = broker.slippage_bps / 1e4
        self._pfrac = broker.partial_fill_volume_frac
        self._step_digits = _decimals(instrument.qty_step)
        self._expiry_ms = int(round(broker.order_expiry_hours * 3_600_000))
        self._trail_act = broker.trailing_activation_r
        self._trail_dist = broker.trailing_distance_r
        self._max_notional = risk.max_position_notional
        self._max_lev = risk.max_leverage
        self._max_opm = risk.max_orders_per_minute
        self._max_daily_loss = risk.max_daily_loss_pct / 100.0
        self._brk_dd = risk.breaker_drawdown_pct / 100.0
        self._brk_losses = risk.breaker_consecutive_losses
        self.starting_equity_quote = float(starting_equity)

        # --- durable state (see state()/load_state()) ---
        # Inverse accounts are in BTC: the quote starting equity is converted at
        # the first price seen, so start_balance is None until then.
        self.start_balance: float | None = None if self.inverse else float(starting_equity)
        self.balance: float = 0.0 if self.inverse else float(starting_equity)
        self.realized_pnl = 0.0
        self.fees_paid = 0.0
        self.funding_paid = 0.0
        self.funding_rate: float | None = None
        self.mark: float | None = None  # last close
        self.mark_ts: int | None = None
        self.volume = 0.0  # last candle's volume (liquidity for new market orders)
        self.liquidity_left = math.inf  # what orders placed on this close may still fill
        self.next_day_ts: int | None = None
        self.next_funding_ts: int | None = None
        self.day_start_equity = 0.0
        self.breaker_active = False
        self.breaker_reason = ""
        self.breaker_until = 0
        self.consecutive_losses = 0
        self.order_times: deque[int] = deque()
        self.position: Position | None = None
        self.trades_closed = 0
        self.fill_count = 0
        self.orders: dict[str, WorkingOrder] = {}
        self.processed_ids: set[str] = set()

        # --- the operator's switch: set by the shell between steps, never by
        # the market; not part of state() (the session keeps it in the workspace) ---
        self.entries_paused = False

        # --- transient ---
        self.view_equity = 0.0  # equity (settlement currency) of the last account_view
        self.tick: Tick | None = None
        self.events: list[Event] = []
        self.fills: list[Fill] = []
        self.new_ids: list[str] = []  # processed ids not yet persisted
        self.orders_dirty = False  # working orders changed since last persisted

    # ------------------------------------------------------------------ money
    def _pnl(self, qty: float, entry: float, exit_: float) -> float:
        """PnL of a signed position quantity ``qty`` from ``entry`` to ``exit_``,
        in settlement currency. Inverse: each contract is worth ``cs`` USD, so
        its BTC value is cs/price and a long gains cs*(1/entry - 1/exit)."""
        if self.inverse:
            return qty * self.cs * (1.0 / entry - 1.0 / exit_)
        return qty * (exit_ - entry)

    def _fee(self, qty: float, price: float, rate: float) -> float:
        if self.inverse:
            return abs(qty) * self.cs / price * rate
        return abs(qty) * price * rate

    def notional(self, qty: float, price: float) -> float:
        """Position value in quote currency (USD), what the hard limits cap."""
        return abs(qty) * self.cs if self.inverse else abs(qty) * price

    def unrealized(self, price: float | None = None) -> float:
        pos = self.position
        px = self.mark if price is None else price
        if pos is None or px is None:
            return 0.0
        return self._pnl(pos.qty, pos.entry_price, px)

    def equity(self, price: float | None = None) -> float:
        """Balance plus unrealized PnL at ``price`` (default: last close), settlement currency."""
        return self.balance + self.unrealized(price)

    def equity_quote(self) -> float:
        """Equity in quote currency (USD/USDT): what sizing and leverage use."""
        eq = self.equity()
        if self.inverse:
            return eq * self.mark if self.mark is not None else self.starting_equity_quote
        return eq

    @property
    def position_qty(self) -> float:
        return self.position.qty if self.position is not None else 0.0

    def account_view(self, ts: int) -> AccountView:
        """What the strategy may know at ``ts``, computed in one pass (this
        runs once per candle: ``equity_quote`` and ``entries_blocked`` each
        recomputed the equity). Leaves the settlement-currency equity in
        ``view_equity`` for the caller's step result."""
        pos = self.position
        mark = self.mark
        bal = self.balance
        if pos is None:
            eq = bal + 0.0  # exactly equity(): balance + unrealized() (0.0 when flat)
            qty = entry = 0.0
        else:
            qty, entry = pos.qty, pos.entry_price
            eq = bal + (0.0 if mark is None else self._pnl(qty, entry, mark))
        self.view_equity = eq
        if self.inverse:
            eq_quote = eq * mark if mark is not None else self.starting_equity_quote
        else:
            eq_quote = eq
        blocked = self.entries_paused or self.breaker_active or (
            self.start_balance is not None
            and mark is not None
            and self.day_start_equity - eq >= self._max_daily_loss * self.start_balance
        )
        orders = self.orders
        return new_account_view(
            ts, eq_quote, qty, entry, tuple(orders) if orders else (), blocked, self.funding_rate
        )

    def entries_blocked(self) -> str:
        """Why new entries are refused right now ("" when they are allowed)."""
        if self.entries_paused:
            return "paused"
        if self.breaker_active:
            return "breaker"
        if self.start_balance is not None and self.mark is not None:
            loss = self.day_start_equity - self.equity()
            if loss >= self._max_daily_loss * self.start_balance:
                return "daily_loss"
        return ""

    # ------------------------------------------------------------------ events
    def _emit(self, ts: int, kind: str, **data: Any) -> None:
        self.events.append(new_event(ts, kind, data))

    def drain(self) -> tuple[list[Event], list[Fill]]:
        events, fills = self.events, self.fills
        self.events, self.fills = [], []
        return events, fills

    # ------------------------------------------------------------------ execution
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
    ) -> None:
        """Apply one fill to the account: net it against the position (reduce,
        close or reverse), pay the fee, and close the trade when flat."""
        fee = self._fee(qty, price, self._maker if liquidity == "maker" else self._taker)
        s = side.sign
        pos = self.position
        remaining = qty
        fee_close = 0.0
        closed: Position | None = None
        if pos is not None and pos.qty * s < 0:
            close = min(qty, abs(pos.qty))
            fee_close = fee * close / qty
            realized = self._pnl(-s * close, pos.entry_price, price)
            self.balance += realized - fee_close
            self.realized_pnl += realized
            pos.pnl += realized
            pos.fees += fee_close
            pos.exit_qty += close
            pos.exit_acc += close / price if self.inverse else close * price
            pos.qty += s * close
            remaining -= close
            if abs(pos.qty) <= QTY_EPS:
                closed = pos
                self.position = pos = None
            if remaining <= QTY_EPS:
                remaining = 0.0
        fee_open = fee - fee_close
        if remaining > 0.0:
            self.balance -= fee_open
            stop = order.stop if order is not None else None
            target = order.target if order is not None else None
            if pos is None:
                trailing = bool(order.trailing) if order is not None else False
                self.position = Position(
                    qty=s * remaining, entry_price=price, entry_ts=ts, client_id=client_id,
                    stop=stop, target=target, trailing=trailing,
                    risk=abs(price - stop) if stop is not None else 0.0, trail_active=False,
                    max_qty=remaining, pnl=0.0, fees=fee_open, funding=0.0, exit_qty=0.0, exit_acc=0.0,
                )  # fmt: skip
            else:
                new_qty = pos.qty + s * remaining
                if self.inverse:
                    pos.entry_price = abs(new_qty) / (abs(pos.qty) / pos.entry_price + remaining / price)
                else:
                    pos.entry_price = (abs(pos.qty) * pos.entry_price + remaining * price) / abs(new_qty)
                pos.qty = new_qty
                pos.max_qty = max(pos.max_qty, abs(new_qty))
                pos.fees += fee_open
                if stop is not None:
                    pos.stop = stop
                    if pos.risk == 0.0:
                        pos.risk = abs(pos.entry_price - stop)
                if target is not None:
                    pos.target = target
        self.fees_paid += fee
        self.fill_count += 1
        fill = Fill(ts, client_id, side, qty, price, fee, liquidity, reason)
        self.fills.append(fill)
        self._emit(
            ts, "fill", client_id=client_id, side=side.value, qty=qty, price=price, fee=fee,
            liquidity=liquidity, reason=reason,
        )  # fmt: skip
        if closed is not None:
            self._close_trade(ts, closed, reason, long=side is Side.SELL)

    def _close_trade(self, ts: int, pos: Position, reason: str, *, long: bool) -> None:
        exit_price = pos.exit_qty / pos.exit_acc if self.inverse else pos.exit_acc / pos.exit_qty
        net = pos.pnl - pos.fees - pos.funding
        self.trades_closed += 1
        if net < 0:
            self.consecutive_losses += 1
        elif net > 0:
            self.consecutive_losses = 0
        self._emit(
            ts, "trade_closed", side="long" if long else "short",
            qty=pos.max_qty, entry_ts=pos.entry_ts, entry_price=pos.entry_price, exit_ts=ts,
            exit_price=exit_price, pnl=pos.pnl, fees=pos.fees, funding=pos.funding, net_pnl=net,
            exit_reason=reason, client_id=pos.client_id,
        )  # fmt: skip

    def _touch(self, side: Side) -> float:
        """The price a taker meets now: the bid/ask of the last tick if one
        arrived within the current candle, else the last close."""
        tick = self.tick
        if tick is not None and self.mark_ts is not None and tick.ts >= self.mark_ts:
            return tick.ask if side is Side.BUY else tick.bid
        return self.mark if self.mark is not None else 0.0

    def _market_price(self, side: Side, ts: int) -> float:
        """Where a market order placed now trades: the touch plus slippage against us."""
        base = self._touch(side)
        return base * (1.0 + self._slip) if side is Side.BUY else base * (1.0 - self._slip)

    def _exit_id(self, pos: Position, reason: str) -> str:
        """Client id of a broker-initiated exit: the trade's opening id, the
        reason and the fill's sequence number, unique and deterministic."""
        return f"{pos.client_id}:{reason}:{self.fill_count + 1}"

    def _cap(self, volume: float) -> float:
        """Liquidity one candle offers, in base currency (BTC, the unit of
        candle volume for both contract kinds): a fraction of its volume.
        Volume 0 means "not reported" (real files have such bars), not "no
        trades" — the bar moved — so it sets no cap."""
        return self._pfrac * volume if volume > 0.0 else math.inf

    def _base(self, qty: float, price: float) -> float:
        """An order quantity in base currency (BTC) at ``price``: linear
        quantities are BTC already; inverse ones are USD contracts, worth
        ``qty * contract_size / price`` BTC. Volume caps compare in this unit
        (comparing contracts with BTC once turned one entry into a thousand fills)."""
        return qty * self.cs / price if self.inverse else qty

    def _capped(self, qty: float, liquidity: float, price: float) -> float:
        """How much of ``qty`` (order units) the remaining ``liquidity`` (BTC)
        lets fill at ``price``; a capped quantity is floored to the quantity
        step, because an exchange fills whole steps (whole contracts)."""
        if liquidity == math.inf:
            return qty
        room = liquidity * price / self.cs if self.inverse else liquidity
        if room >= qty:
            return qty
        step = self.instrument.qty_step
        return max(0.0, round(math.floor(room / step + 1e-9) * step, self._step_digits))

    # ------------------------------------------------------------------ admission
    def _admit(self, side: Side, qty: float, price: float, reduce_only: bool) -> tuple[float, str]:
        """How much of an order may execute now, and why not all of it.

        Reducing the position is always allowed (risk goes down). The part that
        opens, adds or reverses is an entry: refused when entries are blocked or
        when the resulting position breaks max notional or max leverage; a
        reversal is then clipped to a plain close."""
        pos_qty = self.position_qty
        s = side.sign
        close = min(qty, abs(pos_qty)) if pos_qty * s < 0 else 0.0
        extra = qty - close
        if reduce_only:
            return (close, "") if close > QTY_EPS else (0.0, "reduce_only_without_position")
        if extra <= QTY_EPS:
            return qty, ""
        why = self.entries_blocked()
        if not why:
            new_abs = abs(pos_qty + s * qty)
            notional = self.notional(new_abs, price)
            if notional > self._max_notional * (1 + 1e-12):
                why = "max_notional"
            else:
                eq = self.equity_quote()
                if eq <= 0 or notional / eq > self._max_lev * (1 + 1e-12):
                    why = "max_leverage"
        if why:
            return close, why
        return qty, ""

    # ------------------------------------------------------------------ intents
    def submit(self, intent: OrderIntent | CancelIntent, ts: int) -> None:
        """Accept a strategy intent at event time ``ts`` (the candle just closed)."""
        if isinstance(intent, CancelIntent):
            self.cancel(intent.client_id, ts, intent.reason or "cancel")
            return
        o = intent
        cid = o.client_id
        base = {
            "client_id": cid, "side": o.side.value, "type": o.type.value, "qty": o.qty,
            "price": o.price, "stop": o.stop, "target": o.target,
        }  # fmt: skip
        if cid in self.processed_ids:
            self._emit(ts, "order", **base, status="duplicate", reason="client id already processed")
            return
        self.processed_ids.add(cid)
        self.new_ids.append(cid)
        times = self.order_times
        while times and times[0] <= ts - MINUTE_MS:
            times.popleft()
        if len(times) >= self._max_opm:
            self._emit(ts, "order", **base, status="rejected", reason="max_orders_per_minute")
            return
        if self.mark is None:
            self._emit(ts, "order", **base, status="rejected", reason="no_price_yet")
            return
        if o.qty < self.instrument.min_qty - QTY_EPS:
            self._emit(ts, "order", **base, status="rejected", reason="min_qty")
            return
        mkt = self._market_price(o.side, ts)
        touch = self._touch(o.side)
        marketable = o.type is OrderType.MARKET or (
            o.price is not None and (o.price >= touch if o.side is Side.BUY else o.price <= touch)
        )
        if o.type is OrderType.MARKET or o.price is None:
            px = mkt
        else:  # a limit never trades worse than its price; resting, it is priced at its limit
            px = min(mkt, o.price) if o.side is Side.BUY else max(mkt, o.price)
        allowed, why = self._admit(o.side, o.qty, px, o.reduce_only)
        if allowed <= QTY_EPS:
            self._emit(ts, "order", **base, status="rejected", reason=why)
            return
        if allowed < o.qty - QTY_EPS:
            note = f"clipped to close: {why}"
        else:
            note = o.reason
            if not o.reduce_only and fill_reason(self.position_qty, o.side, o.qty) != "exit":
                bad = self._bad_bracket(o, px)
                if bad:
                    self._emit(ts, "order", **base, status="rejected", reason=bad)
                    return
        times.append(ts)
        expire = o.expire_ts if o.expire_ts is not None else ts + self._expiry_ms
        wo = WorkingOrder(
            cid, o.side, o.type, allowed, 0.0, o.price, o.stop, o.target, o.trailing,
            o.reduce_only or allowed < o.qty - QTY_EPS, o.reason, ts, expire,
        )  # fmt: skip
        if not marketable:
            self._emit(ts, "order", **{**base, "qty": allowed}, status="working", reason=note)
            self.orders[cid] = wo
            self.orders_dirty = True
            return
        self._emit(ts, "order", **{**base, "qty": allowed}, status="accepted", reason=note)
        fill_qty = self._capped(allowed, self.liquidity_left, px)
        if fill_qty >= self.instrument.min_qty - QTY_EPS:
            reason = fill_reason(self.position_qty, o.side, fill_qty)
            self._execute(ts, cid, o.side, fill_qty, px, "taker", reason, wo)
            self.liquidity_left -= self._base(fill_qty, px)
            wo.qty -= fill_qty
            wo.filled += fill_qty
        if wo.qty > QTY_EPS:
            # The rest waits for the next candles' liquidity (a limit keeps its price).
            self.orders[cid] = wo
            self.orders_dirty = True
            self._emit(ts, "order", **{**base, "qty": wo.qty}, status="working", reason="partial_fill")

    def _bad_bracket(self, o: OrderIntent, px: float) -> str:
        """Why an opening order's size or protective prices make no sense at
        ``px`` ("" when they are fine): a stop or target on the wrong side
        would trigger at once."""
        if self.notional(o.qty, px) < self.instrument.min_notional:
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
        self._emit(ts, "order_cancelled", client_id=client_id, reason=reason)
        return True

    def expire(self, ts: int) -> None:
        """Expire working orders whose time has come (every candle and on load)."""
        for cid in [c for c, o in self.orders.items() if o.expire_ts <= ts]:
            o = self.orders.pop(cid)
            self.orders_dirty = True
            self._emit(ts, "order_expired", client_id=cid, expire_ts=o.expire_ts, remaining_qty=o.qty)

    def flatten(self, ts: int, reason: str = "flatten") -> None:
        """Close the position at the market now (kill switch); no volume cap."""
        pos = self.position
        if pos is None or self.mark is None:
            return
        side = Side.SELL if pos.qty > 0 else Side.BUY
        self._execute(
            ts,
            self._exit_id(pos, reason),
            side,
            abs(pos.qty),
            self._market_price(side, ts),
            "taker",
            reason,
        )

    # ------------------------------------------------------------------ candles
    def on_candle(self, c: Candle) -> None:
        """Everything the market did to the account during candle ``c``: day
        roll, funding, expiry, stops/targets, working-order fills, trailing."""
        ts = c.ts
        if self.mark is None:
            self._first_price(c)
        if ts >= self.next_day_ts:  # type: ignore[operator]
            self._day_roll(ts)
        if ts >= self.next_funding_ts:  # type: ignore[operator]
            self._funding(c)
        if self.position is not None:
            self._exits(c)
        if self.orders:
            self.expire(ts)
            if self.orders:
                self._fill_working(c)
        pos = self.position
        if pos is not None and pos.trailing and pos.risk > 0.0 and pos.stop is not None:
            self._trail(pos, c.close)
        self.mark = c.close
        self.mark_ts = ts
        self.volume = c.volume
        self.liquidity_left = self._cap(c.volume)

    def _first_price(self, c: Candle) -> None:
        if self.start_balance is None:
            self.start_balance = self.starting_equity_quote / c.open
            self.balance = self.start_balance
        self.mark = c.open
        self.mark_ts = c.ts
        self.next_day_ts = c.ts - c.ts % DAY_MS  # rolls immediately: sets the day's start equity
        self.next_funding_ts = (c.ts // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS

    def _day_roll(self, ts: int) -> None:
        self.next_day_ts = (ts // DAY_MS + 1) * DAY_MS
        self.day_start_equity = self.equity()
        if self.breaker_active and ts >= self.breaker_until:
            self.breaker_active = False
            self.breaker_reason = ""
            self._emit(ts, "breaker_reset", day_start_equity=self.day_start_equity)

    def _funding(self, c: Candle) -> None:
        """Settle every funding boundary crossed since the last candle. Longs pay
        a positive rate and shorts receive it (the seed charged both sides)."""
        boundary = self.next_funding_ts
        assert boundary is not None
        while boundary <= c.ts:
            self._charge_funding(boundary, c.open, c.ts)
            boundary += FUNDING_PERIOD_MS
        self.next_funding_ts = boundary

    def _charge_funding(self, boundary: int, price: float, ts: int) -> None:
        pos = self.position
        rate = self.funding_rate
        if pos is None or rate is None or rate == 0.0:
            return
        value = pos.qty * self.cs / price if self.inverse else pos.qty * price
        amount = value * rate  # positive = paid
        self.balance -= amount
        self.funding_paid += amount
        pos.funding += amount
        self._emit(
            ts, "funding", rate=rate, amount=amount, position_qty=pos.qty, boundary_ts=boundary, price=price
        )

    def _exits(self, c: Candle) -> None:
        """Stop and target of the position held coming into this candle.

        A stop is a stop-market order: a touch triggers it, at the stop or at
        the open when the bar opens beyond it (plus slippage, taker). A target
        is a resting limit: like a limit entry it needs the bar to trade
        *through* it (a touch may leave it unfilled in the queue), at the
        target or at the better open when the bar opens beyond it (maker).
        When both are reached inside one bar we cannot know which came first,
        so the stop wins (the conservative assumption); a bar opening beyond
        the target fills it at the open, before the bar could reach the stop."""
        pos = self.position
        assert pos is not None
        stop, target = pos.stop, pos.target
        if stop is None and target is None:
            return
        long = pos.qty > 0
        side = Side.SELL if long else Side.BUY
        stop_reason = "trailing_stop" if pos.trail_active else "stop"
        qty = abs(pos.qty)
        if stop is not None and (c.open <= stop if long else c.open >= stop):
            px = c.open * (1.0 - self._slip) if long else c.open * (1.0 + self._slip)
            self._execute(c.ts, self._exit_id(pos, stop_reason), side, qty, px, "taker", stop_reason)
        elif target is not None and (c.open > target if long else c.open < target):
            self._execute(c.ts, self._exit_id(pos, "target"), side, qty, c.open, "maker", "target")
        elif stop is not None and (c.low <= stop if long else c.high >= stop):
            px = stop * (1.0 - self._slip) if long else stop * (1.0 + self._slip)
            self._execute(c.ts, self._exit_id(pos, stop_reason), side, qty, px, "taker", stop_reason)
        elif target is not None and (c.high > target if long else c.low < target):
            self._execute(c.ts, self._exit_id(pos, "target"), side, qty, target, "maker", "target")

    def _stop_after_entry(self, c: Candle) -> None:
        """A position entered during this candle is stopped out in the same
        candle when the candle also reached its stop (conservative: we assume
        the worst order of events inside the bar; targets wait for the next bar).
        When the bar opened beyond the stop (a gap), entries filled at the open
        and the exit is there too, as in :meth:`_exits`: exiting at the stop
        would book a profit at a price the bar never traded."""
        pos = self.position
        if pos is None or pos.stop is None:
            return
        long = pos.qty > 0
        if c.low <= pos.stop if long else c.high >= pos.stop:
            side = Side.SELL if long else Side.BUY
            base = min(pos.stop, c.open) if long else max(pos.stop, c.open)
            px = base * (1.0 - self._slip) if long else base * (1.0 + self._slip)
            self._execute(c.ts, self._exit_id(pos, "stop"), side, abs(pos.qty), px, "taker", "stop")

    def _fill_working(self, c: Candle) -> None:
        cap = self._cap(c.volume)
        min_qty = self.instrument.min_qty
        entered = False
        for cid in list(self.orders):
            o = self.orders.get(cid)
            if o is None:
                continue
            if o.type is OrderType.MARKET:
                px = c.open * (1.0 + self._slip) if o.side is Side.BUY else c.open * (1.0 - self._slip)
                liq = "taker"
            else:
                lim = o.price
                assert lim is not None
                if o.side is Side.BUY:
                    if not c.low < lim:
                        continue
                    px = min(lim, c.open)
                else:
                    if not c.high > lim:
                        continue
                    px = max(lim, c.open)
                liq = "maker"
            want = self._capped(o.qty, cap, px)
            if want < min_qty - QTY_EPS:
                continue  # not enough liquidity in this bar; keep working
            allowed, why = self._admit(o.side, want, px, o.reduce_only)
            if allowed <= QTY_EPS:
                self.cancel(cid, c.ts, why)
                continue
            pos_before = self.position_qty
            reason = fill_reason(pos_before, o.side, allowed)
            self._execute(c.ts, cid, o.side, allowed, px, liq, reason, o)
            cap -= self._base(allowed, px)
            if abs(self.position_qty) > abs(pos_before) or self.position_qty * pos_before < 0:
                entered = True
            o.qty -= allowed
            o.filled += allowed
            self.orders_dirty = True
            if allowed < want - QTY_EPS:
                self.cancel(cid, c.ts, f"clipped: {why or 'reduce_only'}")
            elif o.qty <= QTY_EPS:
                del self.orders[cid]
        if entered:
            self._stop_after_entry(c)

    def _trail(self, pos: Position, close: float) -> None:
        """Trailing stop: once the close is +activation R in profit, keep the
        stop ``distance`` R behind the close; it only ever moves in our favour."""
        long = pos.qty > 0
        fav = (close - pos.entry_price) if long else (pos.entry_price - close)
        if not pos.trail_active:
            if fav < self._trail_act * pos.risk:
                return
            pos.trail_active = True
        cand = close - self._trail_dist * pos.risk if long else close + self._trail_dist * pos.risk
        assert pos.stop is not None
        if long and cand > pos.stop or not long and cand < pos.stop:
            pos.stop = cand

    # ------------------------------------------------------------------ breaker
    def check_breaker(self, ts: int) -> None:
        """Trip on the day's drawdown or a run of losing trades; entries stay
        blocked until the next UTC day (event time)."""
        if self.breaker_active or self.mark is None or self.day_start_equity <= 0:
            return
        dd = (self.day_start_equity - self.equity()) / self.day_start_equity
        if dd >= self._brk_dd - 1e-12:
            self._trip(ts, "drawdown", dd * 100.0)
        elif self.consecutive_losses >= self._brk_losses:
            self._trip(ts, "consecutive_losses", float(self.consecutive_losses))

    def _trip(self, ts: int, reason: str, value: float) -> None:
        self.breaker_active = True
        self.breaker_reason = reason
        self.breaker_until = (ts // DAY_MS + 1) * DAY_MS
        self.consecutive_losses = 0
        self._emit(ts, "breaker_trip", reason=reason, value=value, until_ts=self.breaker_until)
        for cid in [c for c, o in self.orders.items() if not o.reduce_only]:
            self.cancel(cid, ts, "breaker")

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[Any, ...]:
        """Compact durable state without working orders and processed ids
        (stored as rows of their own, written only when they change)."""
        return (
            STATE_VERSION, self.start_balance, self.balance, self.realized_pnl, self.fees_paid,
            self.funding_paid, self.funding_rate, self.mark, self.mark_ts, self.volume,
            self.next_day_ts, self.next_funding_ts, self.day_start_equity, self.breaker_active,
            self.breaker_reason, self.breaker_until, self.consecutive_losses, tuple(self.order_times),
            None if self.position is None else self.position.to_row(), self.trades_closed,
            self.fill_count,
        )  # fmt: skip

    def load_state(
        self,
        state: tuple[Any, ...],
        orders: list[tuple[Any, ...]] | None = None,
        processed_ids: set[str] | None = None,
    ) -> None:
        if state[0] != STATE_VERSION:
            raise ValueError(f"broker state version {state[0]} is not supported (expected {STATE_VERSION})")
        (
            _, self.start_balance, self.balance, self.realized_pnl, self.fees_paid,
            self.funding_paid, self.funding_rate, self.mark, self.mark_ts, self.volume,
            self.next_day_ts, self.next_funding_ts, self.day_start_equity, self.breaker_active,
            self.breaker_reason, self.breaker_until, self.consecutive_losses, times,
            pos, self.trades_closed, self.fill_count,
        ) = state  # fmt: skip
        self.order_times = deque(times)
        self.liquidity_left = self._cap(self.volume)
        self.position = None if pos is None else Position.from_row(pos)
        if orders is not None:
            self.orders = {row[0]: WorkingOrder.from_row(row) for row in orders}
        if processed_ids is not None:
            self.processed_ids = set(processed_ids)
        self.new_ids = []
        self.orders_dirty = False


def _decimals(step: float) -> int:
    """Digits after the point that print multiples of ``step`` without float noise."""
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def fill_reason(pos_qty: float, side: Side, qty: float) -> str:
    """Name a strategy order's fill by what it does to the position: open or
    add (entry), reduce or close (exit), or cross zero (reverse)."""
    if pos_qty * side.sign >= 0:
        return "entry"
    return "exit" if qty <= abs(pos_qty) + QTY_EPS else "reverse"
