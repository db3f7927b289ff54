"""The fill model: where and how much an order or a protective exit fills.

Pure rules over a candle (or the touch) and a position or order; the paper
broker applies the results to the ledger. Every rule works in event time;
the choices where an OHLC bar leaves room:

- Orders decided on a close execute "at the next price": the touch of a tick
  received during that candle, else the close, plus slippage against us.
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
- Trailing stop: once the close is ``trailing_activation_r`` R in profit, the
  stop follows ``trailing_distance_r`` R behind the close, only ever in our favour.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from laptop_agents.broker.ledger import QTY_EPS
from laptop_agents.broker.state import Position, WorkingOrder
from laptop_agents.domain.models import Candle, ContractKind, Instrument, OrderType, Side, Tick

if TYPE_CHECKING:
    from laptop_agents.config import BrokerConfig


class FillModel:
    """Slippage, volume caps and the bar rules for one instrument (see the module docstring)."""

    __slots__ = ("cs", "inverse", "min_qty", "pfrac", "qty_step", "slip", "step_digits", "trail_act", "trail_dist")

    def __init__(self, instrument: Instrument, broker: BrokerConfig) -> None:
        self.inverse = instrument.kind is ContractKind.INVERSE
        self.cs = instrument.contract_size
        self.min_qty = instrument.min_qty
        self.qty_step = instrument.qty_step
        self.step_digits = _decimals(instrument.qty_step)
        self.slip = broker.slippage_bps / 1e4
        self.pfrac = broker.partial_fill_volume_frac
        self.trail_act = broker.trailing_activation_r
        self.trail_dist = broker.trailing_distance_r

    # ------------------------------------------------------------------ liquidity
    def cap(self, volume: float) -> float:
        """Liquidity one candle offers, in base currency (BTC, the unit of
        candle volume for both contract kinds): a fraction of its volume.
        Volume 0 means "not reported" (real files have such bars), not "no
        trades" — the bar moved — so it sets no cap."""
        return self.pfrac * volume if volume > 0.0 else math.inf

    def base(self, qty: float, price: float) -> float:
        """An order quantity in base currency (BTC) at ``price``: linear
        quantities are BTC already; inverse ones are USD contracts, worth
        ``qty * contract_size / price`` BTC. Volume caps compare in this unit
        (comparing contracts with BTC once turned one entry into a thousand fills)."""
        return qty * self.cs / price if self.inverse else qty

    def capped(self, qty: float, liquidity: float, price: float) -> float:
        """How much of ``qty`` (order units) the remaining ``liquidity`` (BTC)
        lets fill at ``price``; a capped quantity is floored to the quantity
        step, because an exchange fills whole steps (whole contracts)."""
        if liquidity == math.inf:
            return qty
        room = liquidity * price / self.cs if self.inverse else liquidity
        if room >= qty:
            return qty
        step = self.qty_step
        return max(0.0, round(math.floor(room / step + 1e-9) * step, self.step_digits))

    # ------------------------------------------------------------------ prices
    @staticmethod
    def touch(side: Side, tick: Tick | None, mark: float | None, mark_ts: int | None) -> float:
        """The price a taker meets now: the bid/ask of the last tick if one
        arrived within the current candle, else the last close."""
        if tick is not None and mark_ts is not None and tick.ts >= mark_ts:
            return tick.ask if side is Side.BUY else tick.bid
        return mark if mark is not None else 0.0

    def market_price(self, side: Side, touch: float) -> float:
        """Where a market order placed now trades: the touch plus slippage against us."""
        return touch * (1.0 + self.slip) if side is Side.BUY else touch * (1.0 - self.slip)

    def working_fill(self, o: WorkingOrder, c: Candle) -> tuple[float, str] | None:
        """Price and liquidity of a working order in bar ``c``, or None when
        the bar does not fill it: a market remainder at the open (taker), a
        limit when the bar trades through it (maker, at the open on a gap)."""
        if o.type is OrderType.MARKET:
            px = c.open * (1.0 + self.slip) if o.side is Side.BUY else c.open * (1.0 - self.slip)
            return px, "taker"
        lim = o.price
        assert lim is not None
        if o.side is Side.BUY:
            return (min(lim, c.open), "maker") if c.low < lim else None
        return (max(lim, c.open), "maker") if c.high > lim else None

    # ------------------------------------------------------------------ protective exits
    def bar_exit(self, pos: Position, c: Candle) -> tuple[float, str, str] | None:
        """Price, liquidity and reason of the exit of the position held coming
        into bar ``c``, or None.

        A stop is a stop-market order: a touch triggers it, at the stop or at
        the open when the bar opens beyond it (plus slippage, taker). A target
        is a resting limit: like a limit entry it needs the bar to trade
        *through* it (a touch may leave it unfilled in the queue), at the
        target or at the better open when the bar opens beyond it (maker).
        When both are reached inside one bar we cannot know which came first,
        so the stop wins (the conservative assumption); a bar opening beyond
        the target fills it at the open, before the bar could reach the stop."""
        stop, target = pos.stop, pos.target
        if stop is None and target is None:
            return None
        long = pos.qty > 0
        slip = self.slip
        stop_reason = "trailing_stop" if pos.trail_active else "stop"
        if stop is not None and (c.open <= stop if long else c.open >= stop):
            return (c.open * (1.0 - slip) if long else c.open * (1.0 + slip)), "taker", stop_reason
        if target is not None and (c.open > target if long else c.open < target):
            return c.open, "maker", "target"
        if stop is not None and (c.low <= stop if long else c.high >= stop):
            return (stop * (1.0 - slip) if long else stop * (1.0 + slip)), "taker", stop_reason
        if target is not None and (c.high > target if long else c.low < target):
            return target, "maker", "target"
        return None

    def stop_after_entry(self, pos: Position, c: Candle) -> float | None:
        """The stop price of a position entered during bar ``c`` when the bar
        also reached its stop (we assume the worst order of events inside the
        bar; targets wait for the next bar), else None. When the bar opened
        beyond the stop (a gap), entries filled at the open and the exit is
        there too, as in :meth:`bar_exit`: exiting at the stop would book a
        profit at a price the bar never traded."""
        stop = pos.stop
        if stop is None:
            return None
        long = pos.qty > 0
        if not (c.low <= stop if long else c.high >= stop):
            return None
        base = min(stop, c.open) if long else max(stop, c.open)
        return base * (1.0 - self.slip) if long else base * (1.0 + self.slip)

    def trail(self, pos: Position, close: float) -> Position:
        """The position with its trailing stop moved for ``close`` (the same
        position when nothing moves): active from +activation R in profit, then
        ``distance`` R behind the close, only ever in our favour."""
        long = pos.qty > 0
        fav = (close - pos.entry_price) if long else (pos.entry_price - close)
        active = pos.trail_active
        if not active and fav < self.trail_act * pos.risk:
            return pos
        cand = close - self.trail_dist * pos.risk if long else close + self.trail_dist * pos.risk
        stop = pos.stop
        assert stop is not None
        if long and cand > stop or not long and cand < stop:
            return pos._replace(stop=cand, trail_active=True)
        return pos if active else pos._replace(trail_active=True)


def fill_reason(pos_qty: float, side: Side, qty: float) -> str:
    """Name a strategy order's fill by what it does to the position: open or
    add (entry), reduce or close (exit), or cross zero (reverse)."""
    if pos_qty * side.sign >= 0:
        return "entry"
    return "exit" if qty <= abs(pos_qty) + QTY_EPS else "reverse"


def _decimals(step: float) -> int:
    """Digits after the point that print multiples of ``step`` without float noise."""
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0
