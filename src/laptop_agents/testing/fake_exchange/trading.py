"""The fake exchange trades: accounts, an order book matched against the fake's
own synthetic market, positions, balance, fees, funding, TP/SL, and an order
log -- the exchange's own record of every order and fill, which tests compare
with the bot's records.

Matching (one-way mode, one symbol):

- the market trades at the synthetic market's intrabar path points (12 per
  candle); :meth:`TradingBook.advance` walks them in time order up to "now";
- a resting limit order fills (as maker, at its price) when a traded price
  goes *through* it (strictly beyond; ``fill_on_touch`` makes touching
  enough), at most ``liquidity_per_step`` per traded point -- larger orders
  fill partially over several points;
- a market order (and a limit that crosses on arrival) fills at once as
  taker at the best price plus slippage growing with its size;
- post-only orders that would cross are cancelled (L), IOC cancels what did
  not fill at once, FOK fills all at once or nothing;
- reduce-only orders never open or flip a position (capped at its size,
  cancelled when it is gone); an opposite non-reduce-only order flips it;
- attached TP/SL become triggers on the position once the entry fills and
  close the filled quantity at market (or at a limit) when the price crosses;
- funding is settled at every 8 h boundary on open positions.

Not modelled: liquidation, hedge mode, more than one symbol.

Everything runs on the server loop; the book never sleeps or does I/O (the
routes and sockets around it do). Pushes go to ``on_push`` (the private
websocket registry).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.exchange import protocol
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.testing.fake_exchange.faults import Fault, FaultBook

FUNDING_PERIOD_MS = protocol.FUNDING_INTERVAL_H * 3_600_000
_EPS = 1e-9


@dataclass(frozen=True)
class FakeAccount:
    """One API user of the fake. Keys are fake by construction: the fake never
    reads real ones (configure them here, not from the environment)."""

    api_key: str
    secret_key: str
    uid: str = "10000001"
    balance: float = 10_000.0

    def __repr__(self) -> str:
        return f"FakeAccount(uid={self.uid!r}, balance={self.balance:g})"


DEFAULT_ACCOUNT = FakeAccount("fakeKeyA1b2C3d4E5f6G7h8", "fakeSecretZ9y8X7w6V5u4T3s2R1q0", "10000001")


@dataclass(frozen=True)
class FakeTradingConfig:
    accounts: tuple[FakeAccount, ...] = (DEFAULT_ACCOUNT,)
    maker_fee: float = 0.0002
    taker_fee: float = 0.0006
    default_leverage: int = 20
    max_leverage: int = 125
    default_margin_mode: str = "CROSS"
    slippage_bps: float = 1.0  # market orders, on top of the half spread
    impact_bps_per_qty: float = 2.0  # extra slippage per unit of base quantity
    liquidity_per_step: float = 5.0  # max quantity a resting order fills per traded point
    fill_on_touch: bool = False
    price_band_pct: float = 0.05  # limit prices beyond +-5 % of the last price are refused
    min_qty: float = 0.0001
    qty_step: float = 0.0001
    max_limit_qty: float = 500.0
    max_market_qty: float = 100.0
    recv_window_ms: int = pp.RECV_WINDOW_MS
    match_interval_s: float = 0.05
    private_limit_per_s: int = pp.PRIVATE_REST_PER_S  # per account; 0 disables
    cancel_limit_per_s: int = pp.CANCEL_PER_S
    shapes: str = "wire"  # "wire": the live quirks (M); "doc": the docs' example shapes

    def __post_init__(self) -> None:
        if not self.accounts:
            raise ValueError("the fake needs at least one account")
        if len({a.api_key for a in self.accounts}) != len(self.accounts):
            raise ValueError("fake accounts need distinct api keys")
        if self.shapes not in ("wire", "doc"):
            raise ValueError("shapes must be 'wire' or 'doc'")
        if self.liquidity_per_step <= 0 or self.match_interval_s <= 0:
            raise ValueError("liquidity_per_step and match_interval_s must be positive")


class OrderRefused(LaptopAgentsError):
    """A placement the exchange refuses: the envelope code and message."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


# -- records --------------------------------------------------------------------------------
@dataclass
class TpSl:
    kind: str  # "tp" | "sl"
    entry_order_id: str
    trigger: float
    stop_type: str
    order_type: str
    order_price: float | None
    qty: float


@dataclass
class FOrder:
    order_id: str
    uid: str
    client_id: str | None
    symbol: str
    side: str
    order_type: str
    qty: float
    price: float | None
    effect: str
    reduce_only: bool
    leverage: int
    margin_mode: str
    ctime: int
    mtime: int
    source: str = "api"  # api | tpsl | manual
    status: str = "NEW"
    filled: float = 0.0
    value: float = 0.0
    fee: float = 0.0
    realized: float = 0.0
    tp: dict[str, Any] | None = None
    sl: dict[str, Any] | None = None

    @property
    def remaining(self) -> float:
        return _r(self.qty - self.filled)

    @property
    def is_open(self) -> bool:
        return self.status in pp.OPEN_STATUSES

    @property
    def sign(self) -> int:
        return 1 if self.side == "BUY" else -1

    @property
    def avg_price(self) -> float | None:
        return self.value / self.filled if self.filled > _EPS else None


@dataclass
class FPosition:
    position_id: str
    uid: str
    symbol: str
    qty: float  # signed
    entry: float
    leverage: int
    margin_mode: str
    ctime: int
    mtime: int
    realized: float = 0.0
    fee: float = 0.0
    funding: float = 0.0
    triggers: list[TpSl] = field(default_factory=list)

    @property
    def side(self) -> str:
        return "LONG" if self.qty > 0 else "SHORT"

    @property
    def margin(self) -> float:
        return abs(self.qty) * self.entry / self.leverage


@dataclass
class FAccount:
    cfg: FakeAccount
    wallet: float
    leverage: dict[str, int] = field(default_factory=dict)
    margin_mode: dict[str, str] = field(default_factory=dict)
    orders: dict[str, FOrder] = field(default_factory=dict)
    client_ids: dict[str, str] = field(default_factory=dict)  # client id -> order id
    positions: dict[str, FPosition] = field(default_factory=dict)
    closed_positions: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    request_times: dict[str, deque[float]] = field(default_factory=dict)


def _r(x: float) -> float:
    return round(x, 10)


def num_text(x: float) -> str:
    """Plain decimal text (no exponent), as the exchange sends numbers."""
    text = format(Decimal(repr(round(float(x), 10))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def iso(ms: int) -> str:
    """Websocket time format (M): RFC 3339 with nanosecond digits."""
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}000000Z"


class TradingBook:
    """The trading state of the fake exchange (all accounts, one symbol)."""

    def __init__(
        self,
        config: FakeTradingConfig,
        *,
        market: SyntheticMarket,
        symbol: str,
        now_ms: Callable[[], int],
        faults: FaultBook,
        seed: int = 7,
    ) -> None:
        self.config = config
        self.market = market
        self.symbol = symbol
        self.now_ms = now_ms
        self.faults = faults
        self.tick = market.tick_size
        self.accounts: dict[str, FAccount] = {
            a.uid: FAccount(a, a.balance) for a in config.accounts
        }
        if len(self.accounts) != len(config.accounts):
            raise ValueError("fake accounts need distinct uids")
        base = 1_000_000_000 + (seed % 1000) * 1_000_000
        self._order_ids = itertools.count(base + 1)
        self._position_ids = itertools.count(base + 500_001)
        self._trade_ids = itertools.count(base + 700_001)
        self._log_seq = itertools.count(1)
        self.log: list[dict[str, Any]] = []
        self.last_ts = now_ms()
        self.on_push: Callable[[str, str, dict[str, Any], float], None] | None = None
        self.stats: dict[str, int] = {
            "orders_accepted": 0, "orders_rejected": 0, "fills": 0, "cancels": 0, "funding_settlements": 0,
            "tpsl_triggered": 0, "manual_trades": 0, "duplicate_client_ids": 0,
        }
        self._pending_delay = 0.0  # push delay for the fill being processed

    # -- helpers ----------------------------------------------------------------------------
    def account(self, uid: str) -> FAccount:
        return self.accounts[uid]

    def record(self, kind: str, uid: str, **fields: Any) -> None:
        self.log.append({"seq": next(self._log_seq), "ts": self.now_ms(), "kind": kind, "account": uid, **fields})

    def _push(self, uid: str, channel: str, data: dict[str, Any]) -> None:
        if self.on_push is not None:
            self.on_push(uid, channel, data, self._pending_delay)

    def price_now(self, now: int | None = None) -> tuple[float, float, float]:
        """(bid, ask, last) at ``now``."""
        t = self.tick_now() if now is None else self.market.tick(now)
        return t.bid, t.ask, t.last

    def tick_now(self) -> Any:
        return self.market.tick(self.now_ms())

    def leverage_of(self, acct: FAccount, symbol: str) -> int:
        return acct.leverage.get(symbol, self.config.default_leverage)

    def margin_mode_of(self, acct: FAccount, symbol: str) -> str:
        return acct.margin_mode.get(symbol, self.config.default_margin_mode)

    def _round_tick(self, price: float) -> float:
        return round(round(price / self.tick) * self.tick, 10)

    # -- account figures --------------------------------------------------------------------
    def frozen(self, acct: FAccount) -> float:
        total = 0.0
        for o in acct.orders.values():
            if o.is_open and not o.reduce_only and o.price is not None:
                total += o.remaining * o.price / o.leverage
        return total

    def figures(self, acct: FAccount) -> dict[str, float]:
        last = self.price_now()[2]
        margin = sum(p.margin for p in acct.positions.values())
        cross = sum(p.qty * (last - p.entry) for p in acct.positions.values() if p.margin_mode == "CROSS")
        iso_pnl = sum(p.qty * (last - p.entry) for p in acct.positions.values() if p.margin_mode != "CROSS")
        frozen = self.frozen(acct)
        return {
            "wallet": acct.wallet,
            "available": acct.wallet - margin - frozen,
            "frozen": frozen,
            "margin": margin,
            "cross_upnl": cross,
            "iso_upnl": iso_pnl,
            "last": last,
        }

    # -- placement ---------------------------------------------------------------------------
    def _text(self, body: dict[str, Any], key: str, required: bool = False) -> str | None:
        value = body.get(key)
        if value is None or value == "":
            if required:
                raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: {key} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: {key} must be a string")
        return str(value)

    def _number(self, body: dict[str, Any], key: str, required: bool = False) -> float | None:
        text = self._text(body, key, required)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: {key} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: {key} must be > 0")
        return value

    def _on_grid(self, value: float, step: float) -> bool:
        return abs(value / step - round(value / step)) < 1e-6

    def place(self, uid: str, body: dict[str, Any], *, source: str = "api") -> FOrder:
        """Validate and accept one order (then execute what executes at once).
        Raises :class:`OrderRefused` with the exchange's code."""
        cfg = self.config
        acct = self.accounts[uid]
        symbol = self._text(body, "symbol", True)
        if symbol != self.symbol:
            raise OrderRefused(pp.CODE_MARKET_NOT_EXISTS, "Market not exists")
        side = (self._text(body, "side", True) or "").upper()
        if side not in ("BUY", "SELL"):
            raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: side must be BUY or SELL")
        order_type = (self._text(body, "orderType", True) or "").upper()
        if order_type not in pp.ORDER_TYPES:
            raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: orderType must be LIMIT or MARKET")
        qty = self._number(body, "qty", True)
        assert qty is not None
        price = self._number(body, "price", order_type == "LIMIT") if order_type == "LIMIT" else None
        effect = (self._text(body, "effect") or "GTC").upper()
        if effect not in pp.EFFECTS:
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: effect must be one of {', '.join(pp.EFFECTS)}")
        if effect == "POST_ONLY" and order_type != "LIMIT":
            raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: POST_ONLY needs a LIMIT order")
        reduce_only = body.get("reduceOnly", False)
        if not isinstance(reduce_only, bool):
            raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: reduceOnly must be a boolean")
        client_id = self._text(body, "clientId")
        if client_id is not None and not pp.CLIENT_ID_PATTERN.fullmatch(client_id):
            raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: clientId must be 1-32 characters of [A-Za-z0-9]")
        if body.get("tradeSide") not in (None, "", "OPEN", "CLOSE"):
            raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: tradeSide must be OPEN or CLOSE")
        tp = self._tpsl(body, "tp")
        sl = self._tpsl(body, "sl")
        # -- checks in the exchange's order of business (L) --
        if client_id is not None and client_id in acct.client_ids:
            self.stats["duplicate_client_ids"] += 1
            raise OrderRefused(pp.CODE_DUPLICATE_CLIENT_ID, "Client ID duplicate")
        if qty < cfg.min_qty - _EPS:
            raise OrderRefused(pp.CODE_QTY_BELOW_MIN, "Order quantity is below the minimum")
        if not self._on_grid(qty, cfg.qty_step):
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: qty must be a multiple of {num_text(cfg.qty_step)}")
        if qty > (cfg.max_limit_qty if order_type == "LIMIT" else cfg.max_market_qty) + _EPS:
            raise OrderRefused(30039, "Order quantity exceeds the maximum")
        if price is not None and not self._on_grid(price, self.tick):
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: price must be a multiple of {num_text(self.tick)}")
        fault = self.faults.take_private("reject_order", uid)
        if fault is not None:
            raise OrderRefused(int(fault.code or pp.CODE_INSUFFICIENT_BALANCE), fault.msg or "Insufficient balance")
        bid, ask, last = self.price_now()
        if price is not None:
            if side == "BUY" and price > last * (1 + cfg.price_band_pct):
                raise OrderRefused(pp.CODE_MAX_BUY_PRICE, "The order price is higher than the maximum buy price")
            if side == "SELL" and price < last * (1 - cfg.price_band_pct):
                raise OrderRefused(pp.CODE_MIN_SELL_PRICE, "The order price is lower than the minimum sell price")
        pos = acct.positions.get(symbol)
        pos_qty = pos.qty if pos else 0.0
        sign = 1 if side == "BUY" else -1
        if reduce_only:
            if pos is None:
                raise OrderRefused(pp.CODE_REDUCE_ONLY_NO_POSITION, "No position opened. Cancel [Reduce-only]")
            if pos_qty * sign > 0:
                raise OrderRefused(pp.CODE_REDUCE_ONLY_SAME_SIDE,
                                   "A [Reduce-only] order can not be in the same direction as the open position")
        leverage = self.leverage_of(acct, symbol)
        if not reduce_only:
            closable = abs(pos_qty) if pos_qty * sign < 0 else 0.0
            opening = max(0.0, qty - closable)
            ref = price if price is not None else (ask if side == "BUY" else bid)
            required = opening * ref / leverage + qty * ref * cfg.taker_fee
            f = self.figures(acct)
            if required > f["available"] + min(0.0, f["cross_upnl"]) + _EPS:
                raise OrderRefused(pp.CODE_INSUFFICIENT_BALANCE, "Insufficient balance")
        now = self.now_ms()
        order = FOrder(
            order_id=str(next(self._order_ids)), uid=uid, client_id=client_id, symbol=symbol, side=side,
            order_type=order_type, qty=qty, price=price, effect=effect, reduce_only=reduce_only,
            leverage=leverage, margin_mode=self.margin_mode_of(acct, symbol), ctime=now, mtime=now,
            source=source, tp=tp, sl=sl,
        )
        acct.orders[order.order_id] = order
        if client_id is not None:
            acct.client_ids[client_id] = order.order_id
        self.stats["orders_accepted"] += 1
        self.record("accepted", uid, order_id=order.order_id, client_id=client_id, side=side,
                     order_type=order_type, qty=qty, price=price, effect=effect, reduce_only=reduce_only,
                     source=source)
        # The outbox keeps push order, so a held acceptance holds this order's fill pushes behind it.
        held = self.faults.take_private("delay_pushes", uid)
        self._pending_delay = held.seconds if held is not None else 0.0
        try:
            self._push_order(order, "CREATE")
        finally:
            self._pending_delay = 0.0
        self._execute_on_arrival(acct, order, bid, ask)
        return order

    def _tpsl(self, body: dict[str, Any], leg: str) -> dict[str, Any] | None:
        trigger = self._number(body, f"{leg}Price")
        if trigger is None:
            return None
        stop_type = (self._text(body, f"{leg}StopType") or "LAST_PRICE").upper()
        if stop_type not in pp.STOP_TYPES:
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: {leg}StopType must be MARK_PRICE or LAST_PRICE")
        order_type = (self._text(body, f"{leg}OrderType") or "MARKET").upper()
        if order_type not in pp.ORDER_TYPES:
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: {leg}OrderType must be LIMIT or MARKET")
        order_price = self._number(body, f"{leg}OrderPrice", order_type == "LIMIT")
        return {"trigger": trigger, "stop_type": stop_type, "order_type": order_type, "order_price": order_price}

    def _execute_on_arrival(self, acct: FAccount, order: FOrder, bid: float, ask: float) -> None:
        cfg = self.config
        if order.order_type == "MARKET":
            qty = self._cap_reduce_only(acct, order, order.qty)
            if qty <= _EPS:
                self._finish(order, "CANCELED", "reduce_only_nothing_to_reduce")
                return
            self._fill(acct, order, qty, self._market_price(order.side, qty, bid, ask), taker=True)
            if order.is_open:  # capped by reduce-only: the rest cannot execute
                self._finish(order, "CANCELED" if order.filled <= _EPS else "PART_FILLED_CANCELED",
                             "reduce_only_capped")
            return
        assert order.price is not None
        crosses = order.price >= ask if order.side == "BUY" else order.price <= bid
        if crosses and order.effect == "POST_ONLY":
            self._finish(order, "CANCELED", "post_only_would_cross")
            return
        if crosses:
            want = self._cap_reduce_only(acct, order, order.qty)
            avail = min(want, cfg.liquidity_per_step)
            if order.effect == "FOK" and avail < order.qty - _EPS:
                self._finish(order, "CANCELED", "fok_not_fillable")
                return
            if avail > _EPS:
                self._fill(acct, order, avail, ask if order.side == "BUY" else bid, taker=True)
        if order.is_open and order.effect in ("IOC", "FOK"):
            self._finish(order, "CANCELED" if order.filled <= _EPS else "PART_FILLED_CANCELED", "ioc_remainder")

    def _market_price(self, side: str, qty: float, bid: float, ask: float) -> float:
        slip = (self.config.slippage_bps + self.config.impact_bps_per_qty * qty) / 10_000
        raw = ask * (1 + slip) if side == "BUY" else bid * (1 - slip)
        return self._round_tick(raw)

    def _cap_reduce_only(self, acct: FAccount, order: FOrder, qty: float) -> float:
        if not order.reduce_only:
            return qty
        pos = acct.positions.get(order.symbol)
        if pos is None or pos.qty * order.sign >= 0:
            return 0.0
        return min(qty, abs(pos.qty))

    def _finish(self, order: FOrder, status: str, reason: str) -> None:
        order.status = status
        order.mtime = self.now_ms()
        self.stats["cancels"] += 1 if "CANCELED" in status else 0
        self.record("cancelled" if "CANCELED" in status else status.lower(), order.uid, order_id=order.order_id,
                     client_id=order.client_id, status=status, reason=reason, filled=order.filled)
        self._push_order(order, "CLOSE")
        self._push_balance(self.accounts[order.uid])

    # -- fills ---------------------------------------------------------------------------------
    def _fill(self, acct: FAccount, order: FOrder, qty: float, price: float, *, taker: bool) -> None:
        qty = _r(qty)
        cfg = self.config
        fault = self.faults.take_private("delay_fills", acct.cfg.uid)
        self._pending_delay = fault.seconds if fault is not None else 0.0
        to_cancel: list[FOrder] = []
        try:
            fee = _r(qty * price * (cfg.taker_fee if taker else cfg.maker_fee))
            now = self.now_ms()
            order.filled = _r(order.filled + qty)
            order.value += qty * price
            order.fee += fee
            order.mtime = now
            order.status = "FILLED" if order.remaining <= _EPS else "PART_FILLED"
            realized, pos_event = self._apply_to_position(acct, order, qty, price, fee, now, to_cancel)
            acct.wallet += realized - fee
            order.realized += realized
            trade = {
                "tradeId": str(next(self._trade_ids)), "orderId": order.order_id, "clientId": order.client_id,
                "symbol": order.symbol, "qty": qty, "price": price, "side": order.side, "orderType": order.order_type,
                "effect": order.effect, "reduceOnly": order.reduce_only, "fee": fee, "realizedPNL": realized,
                "ctime": now, "roleType": "TAKER" if taker else "MAKER", "leverage": order.leverage,
                "marginMode": order.margin_mode, "positionMode": pp.SUPPORTED_POSITION_MODE,
            }
            acct.trades.append(trade)
            self.stats["fills"] += 1
            self.record("fill", acct.cfg.uid, order_id=order.order_id, client_id=order.client_id,
                         trade_id=trade["tradeId"], side=order.side, qty=qty, price=price, fee=fee,
                         realized=realized, role=trade["roleType"], cum_qty=order.filled, status=order.status,
                         source=order.source)
            self._push_order(order, "UPDATE" if order.is_open else "CLOSE")
            if pos_event is not None:
                self._push_position(*pos_event)
            self._push_balance(acct)
            if order.tp or order.sl:
                self._arm_tpsl(acct, order, qty)
            # Reduce-only orders have nothing left to reduce once the position is
            # gone (L: the exchange cancels them) -- after this fill is recorded.
            for o in to_cancel:
                if o.is_open:
                    self._finish(o, "CANCELED" if o.filled <= _EPS else "PART_FILLED_CANCELED", "position_closed")
        finally:
            self._pending_delay = 0.0

    def _apply_to_position(self, acct: FAccount, order: FOrder, qty: float, price: float, fee: float,
                           now: int, to_cancel: list[FOrder]) -> tuple[float, tuple[FPosition, str] | None]:
        """Update the one-way position; returns (realized PnL, position push)."""
        symbol = order.symbol
        pos = acct.positions.get(symbol)
        signed = qty * order.sign
        realized = 0.0
        if pos is None:
            pos = self._new_position(acct, symbol, signed, price, order, now)
            pos.fee += fee
            return 0.0, (pos, "OPEN")
        if pos.qty * signed > 0:  # adding
            total = abs(pos.qty) + qty
            pos.entry = (abs(pos.qty) * pos.entry + qty * price) / total
            pos.qty = _r(pos.qty + signed)
            pos.fee += fee
            pos.mtime = now
            return 0.0, (pos, "UPDATE")
        close_qty = min(qty, abs(pos.qty))
        realized = _r(close_qty * (price - pos.entry) * (1 if pos.qty > 0 else -1))
        pos.realized += realized
        pos.fee += fee
        pos.qty = _r(pos.qty + math.copysign(close_qty, signed))
        pos.mtime = now
        for trig in pos.triggers:
            trig.qty = min(trig.qty, abs(pos.qty))
        if abs(pos.qty) > _EPS:
            return realized, (pos, "UPDATE")
        pos.qty = 0.0
        self._close_position(acct, pos, price)
        to_cancel.extend(o for o in acct.orders.values() if o.is_open and o.reduce_only and o.symbol == symbol)
        rest = _r(qty - close_qty)
        if rest > _EPS and not order.reduce_only:  # flip
            new = self._new_position(acct, symbol, rest * order.sign, price, order, now)
            self._push_position(pos, "CLOSE")
            return realized, (new, "OPEN")
        return realized, (pos, "CLOSE")

    def _new_position(self, acct: FAccount, symbol: str, signed: float, price: float, order: FOrder,
                      now: int) -> FPosition:
        pos = FPosition(str(next(self._position_ids)), acct.cfg.uid, symbol, _r(signed), price,
                        self.leverage_of(acct, symbol), self.margin_mode_of(acct, symbol), now, now)
        acct.positions[symbol] = pos
        return pos

    def _close_position(self, acct: FAccount, pos: FPosition, price: float) -> None:
        del acct.positions[pos.symbol]
        acct.closed_positions.append({
            "positionId": pos.position_id, "symbol": pos.symbol, "closePrice": price, "realizedPNL": pos.realized,
            "fee": pos.fee, "funding": pos.funding, "ctime": pos.ctime, "mtime": self.now_ms(),
        })

    def _arm_tpsl(self, acct: FAccount, order: FOrder, qty: float) -> None:
        pos = acct.positions.get(order.symbol)
        if pos is None or pos.qty * order.sign <= 0:
            return  # the entry closed or flipped nothing in its direction
        for leg, spec in (("tp", order.tp), ("sl", order.sl)):
            if spec is None:
                continue
            existing = next((t for t in pos.triggers if t.kind == leg and t.entry_order_id == order.order_id), None)
            if existing is not None:
                existing.qty = _r(existing.qty + qty)
            else:
                pos.triggers.append(TpSl(leg, order.order_id, spec["trigger"], spec["stop_type"],
                                         spec["order_type"], spec["order_price"], qty))

    # -- the market moves ------------------------------------------------------------------------
    def trade_points(self, start: int, end: int) -> Iterator[tuple[int, float]]:
        """(time, price) of the market's traded points in ``(start, end]``."""
        market = self.market
        iv = market.interval_ms
        steps = market.substeps
        if end <= start:
            return
        for index in range(market.index_at(start + 1), market.index_at(end) + 1):
            open_ts = market.open_ts(index)
            for k in range(steps):
                elapsed = -(-k * iv // steps)
                t = open_ts + elapsed
                if start < t <= end:
                    yield t, market.partial(index, elapsed).close

    def advance(self, now: int | None = None) -> None:
        """Match everything the market did since the last call."""
        now = self.now_ms() if now is None else now
        if now <= self.last_ts:
            return
        start = self.last_ts
        if not any(acct.positions or any(o.is_open for o in acct.orders.values())
                   for acct in self.accounts.values()):
            self.last_ts = now  # nothing can fill, trigger or pay funding: skip the price path
            return
        next_funding = start - start % FUNDING_PERIOD_MS + FUNDING_PERIOD_MS
        for t, price in self.trade_points(start, now):
            while next_funding <= t:
                self._settle_funding(next_funding, price)
                next_funding += FUNDING_PERIOD_MS
            self.last_ts = t
            self._match_point(price)
        while next_funding <= now:
            self._settle_funding(next_funding, self.price_now(now)[2])
            next_funding += FUNDING_PERIOD_MS
        self.last_ts = now

    def _match_point(self, price: float) -> None:
        cfg = self.config
        for acct in self.accounts.values():
            for order in [o for o in acct.orders.values() if o.is_open and o.order_type == "LIMIT"]:
                if not order.is_open or order.price is None:
                    continue
                through = (price < order.price or (cfg.fill_on_touch and price <= order.price)) if order.side == "BUY" \
                    else (price > order.price or (cfg.fill_on_touch and price >= order.price))
                if not through:
                    continue
                qty = self._cap_reduce_only(acct, order, min(order.remaining, cfg.liquidity_per_step))
                if qty <= _EPS:
                    self._finish(order, "CANCELED" if order.filled <= _EPS else "PART_FILLED_CANCELED",
                                 "reduce_only_nothing_to_reduce")
                    continue
                self._fill(acct, order, qty, order.price, taker=False)
            self._check_triggers(acct, price)

    def _check_triggers(self, acct: FAccount, price: float) -> None:
        pos = acct.positions.get(self.symbol)
        if pos is None or not pos.triggers:
            return
        long = pos.qty > 0
        for trig in list(pos.triggers):
            if trig not in pos.triggers:
                continue
            hit = (price >= trig.trigger if long else price <= trig.trigger) if trig.kind == "tp" \
                else (price <= trig.trigger if long else price >= trig.trigger)
            if not hit:
                continue
            pos.triggers = [t for t in pos.triggers if t.entry_order_id != trig.entry_order_id]
            qty = min(trig.qty, abs(pos.qty))
            self.stats["tpsl_triggered"] += 1
            self.record("tpsl_triggered", acct.cfg.uid, leg=trig.kind, entry_order_id=trig.entry_order_id,
                         trigger=trig.trigger, price=price, qty=qty)
            if qty <= _EPS:
                continue
            body: dict[str, Any] = {"symbol": self.symbol, "side": "SELL" if long else "BUY",
                                    "orderType": trig.order_type, "qty": num_text(qty), "reduceOnly": True}
            if trig.order_type == "LIMIT" and trig.order_price is not None:
                body["price"] = num_text(trig.order_price)
            self._place_internal(acct, body, "tpsl", price)
            pos = acct.positions.get(self.symbol)
            if pos is None:
                return

    def _place_internal(self, acct: FAccount, body: dict[str, Any], source: str, price: float) -> FOrder | None:
        """An order the exchange itself places (TP/SL trigger) or a trade by hand;
        market ones fill at ``price`` plus slippage."""
        now = self.now_ms()
        side = body["side"]
        qty = float(body["qty"])
        order = FOrder(
            order_id=str(next(self._order_ids)), uid=acct.cfg.uid, client_id=None, symbol=self.symbol, side=side,
            order_type=body["orderType"], qty=qty, price=float(body["price"]) if "price" in body else None,
            effect="GTC", reduce_only=bool(body.get("reduceOnly", False)),
            leverage=self.leverage_of(acct, self.symbol), margin_mode=self.margin_mode_of(acct, self.symbol),
            ctime=now, mtime=now, source=source,
        )
        acct.orders[order.order_id] = order
        self.stats["orders_accepted"] += 1
        self.record("accepted", acct.cfg.uid, order_id=order.order_id, client_id=None, side=side,
                     order_type=order.order_type, qty=qty, price=order.price, effect="GTC",
                     reduce_only=order.reduce_only, source=source)
        self._push_order(order, "CREATE")
        if order.order_type == "MARKET":
            half = self.tick / 2
            fill_qty = self._cap_reduce_only(acct, order, qty)
            if fill_qty > _EPS:
                self._fill(acct, order, fill_qty, self._market_price(side, fill_qty, price - half, price + half),
                           taker=True)
            if order.is_open:
                self._finish(order, "CANCELED" if order.filled <= _EPS else "PART_FILLED_CANCELED",
                             "reduce_only_capped")
        return order

    def _settle_funding(self, boundary: int, mark: float) -> None:
        rate = self.market.funding_rate(boundary - 1)
        for acct in self.accounts.values():
            for pos in acct.positions.values():
                payment = pos.qty * mark * rate  # longs pay a positive rate
                acct.wallet -= payment
                pos.funding -= payment
                pos.mtime = boundary
                self.stats["funding_settlements"] += 1
                self.record("funding", acct.cfg.uid, position_id=pos.position_id, rate=rate, mark=mark,
                             qty=pos.qty, amount=-payment, funding_ts=boundary)
                self._push_position(pos, "UPDATE")
                self._push_balance(acct)

    # -- cancels ------------------------------------------------------------------------------------
    def cancel(self, uid: str, symbol: str, items: list[Any]) -> dict[str, Any]:
        acct = self.accounts[uid]
        success: list[dict[str, Any]] = []
        failure: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict):
                failure.append({"orderId": None, "clientId": None, "errorMsg": "Parameter error",
                                "errorCode": str(pp.CODE_PARAMETER)})
                continue
            oid = item.get("orderId") or item.get("id")
            cid = item.get("clientId")
            order = acct.orders.get(str(oid)) if oid else (
                acct.orders.get(acct.client_ids.get(str(cid), "")) if cid else None)
            if order is None or order.symbol != symbol:
                failure.append({"orderId": oid, "clientId": cid, "errorMsg": "Order not found, please try it later",
                                "errorCode": str(pp.CODE_ORDER_NOT_FOUND)})
                continue
            if not order.is_open:
                failure.append({"orderId": order.order_id, "clientId": order.client_id,
                                "errorMsg": "Order status error", "errorCode": str(pp.CODE_ORDER_STATUS)})
                continue
            self._finish(order, "CANCELED" if order.filled <= _EPS else "PART_FILLED_CANCELED", "cancelled_by_api")
            success.append({"orderId": order.order_id, "clientId": order.client_id})
        return {"successList": success, "failureList": failure}

    def cancel_all(self, uid: str, symbol: str) -> dict[str, Any]:
        acct = self.accounts[uid]
        items = [{"orderId": o.order_id} for o in acct.orders.values() if o.is_open and o.symbol == symbol]
        return self.cancel(uid, symbol, items)

    # -- settings -------------------------------------------------------------------------------------
    def set_leverage(self, uid: str, symbol: str, leverage: int) -> None:
        acct = self.accounts[uid]
        if not 1 <= leverage <= self.config.max_leverage:
            raise OrderRefused(pp.CODE_INVALID_LEVERAGE, "Invalid leverage")
        if any(o.is_open and o.symbol == symbol for o in acct.orders.values()):
            raise OrderRefused(pp.CODE_OPEN_ORDERS_BLOCK_CHANGE,
                               "Cannot change leverage or margin mode with open orders")
        acct.leverage[symbol] = leverage
        pos = acct.positions.get(symbol)
        if pos is not None:
            pos.leverage = leverage
        self.record("leverage", uid, symbol=symbol, leverage=leverage)

    def set_margin_mode(self, uid: str, symbol: str, mode: str) -> None:
        acct = self.accounts[uid]
        if mode not in pp.MARGIN_MODES:
            raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: marginMode must be ISOLATION or CROSS")
        if symbol in acct.positions or any(o.is_open and o.symbol == symbol for o in acct.orders.values()):
            raise OrderRefused(pp.CODE_OPEN_ORDERS_BLOCK_CHANGE,
                               "Cannot change leverage or margin mode with open orders or positions")
        acct.margin_mode[symbol] = mode
        self.record("margin_mode", uid, symbol=symbol, margin_mode=mode)

    # -- by hand --------------------------------------------------------------------------------------
    def manual_trade(self, uid: str | None, qty: float) -> FOrder | None:
        """Someone trades on the account outside the bot (web UI, another bot)."""
        acct = self.accounts[uid] if uid else next(iter(self.accounts.values()))
        self.stats["manual_trades"] += 1
        price = self.price_now()[2]
        body = {"symbol": self.symbol, "side": "BUY" if qty > 0 else "SELL", "orderType": "MARKET",
                "qty": num_text(abs(qty))}
        return self._place_internal(acct, body, "manual", price)

    def act(self, fault: Fault) -> None:
        if fault.kind == "position_by_hand":
            self.advance()
            self.manual_trade(fault.account, fault.qty)

    # -- wire renderings --------------------------------------------------------------------------------
    def _n(self, x: float | None) -> Any:
        return None if x is None else num_text(x)

    def order_rest(self, o: FOrder) -> dict[str, Any]:
        wire = self.config.shapes == "wire"
        price: Any = self._n(o.price)
        if o.order_type == "MARKET":
            price = pp.MARKET_PRICE_TEXT if wire else None
        out: dict[str, Any] = {
            "orderId": o.order_id, "symbol": o.symbol, "qty": num_text(o.qty), "tradeQty": num_text(o.filled),
            "positionMode": pp.SUPPORTED_POSITION_MODE, "marginMode": o.margin_mode, "leverage": o.leverage,
            "price": price, "side": o.side, "orderType": o.order_type, "effect": o.effect,
            "clientId": o.client_id, "reduceOnly": o.reduce_only, "status": o.status, "fee": num_text(o.fee),
            "realizedPNL": num_text(o.realized), "avgPrice": self._n(o.avg_price), "marginCoin": pp.MARGIN_COIN,
            "ctime": str(o.ctime) if wire else o.ctime, "mtime": str(o.mtime) if wire else o.mtime,
        }
        for leg, spec in (("tp", o.tp), ("sl", o.sl)):
            if spec:
                out[f"{leg}Price"] = num_text(spec["trigger"])
                out[f"{leg}StopType"] = spec["stop_type"]
                out[f"{leg}OrderType"] = spec["order_type"]
                out[f"{leg}OrderPrice"] = self._n(spec["order_price"])
        return out

    def order_ws(self, o: FOrder, event: str) -> dict[str, Any]:
        wire = self.config.shapes == "wire"
        out: dict[str, Any] = {
            "event": event, "orderId": o.order_id, "clientId": o.client_id, "symbol": o.symbol,
            "positionType": o.margin_mode, "positionMode": pp.SUPPORTED_POSITION_MODE,
            "side": o.side.capitalize() if wire else o.side, "effect": o.effect,
            "type": o.order_type.capitalize() if wire else o.order_type, "qty": num_text(o.qty),
            "reductionOnly": o.reduce_only, "price": self._n(o.price) or "", "ctime": iso(o.ctime),
            "mtime": iso(o.mtime), "leverage": str(o.leverage), "orderStatus": o.status, "fee": num_text(o.fee),
            "averagePrice": self._n(o.avg_price) or "", "dealAmount": num_text(o.filled),
        }
        for leg, spec in (("tp", o.tp), ("sl", o.sl)):
            if spec:
                out[f"{leg}Price"] = num_text(spec["trigger"])
                out[f"{leg}StopType"] = ("Last" if spec["stop_type"] == "LAST_PRICE" else "Mark") if wire \
                    else spec["stop_type"]
                out[f"{leg}OrderType"] = spec["order_type"].capitalize() if wire else spec["order_type"]
                out[f"{leg}OrderPrice"] = self._n(spec["order_price"]) or ""
        return out

    def position_rest(self, p: FPosition, last: float) -> dict[str, Any]:
        wire = self.config.shapes == "wire"
        side = ("BUY" if p.qty > 0 else "SELL") if wire else p.side
        return {
            "positionId": p.position_id, "symbol": p.symbol, "qty": num_text(abs(p.qty)),
            "entryValue": num_text(abs(p.qty) * p.entry), "side": side, "marginMode": p.margin_mode,
            "positionMode": pp.SUPPORTED_POSITION_MODE, "leverage": p.leverage, "fee": num_text(p.fee),
            "funding": num_text(p.funding), "realizedPNL": num_text(p.realized), "margin": num_text(p.margin),
            "unrealizedPNL": num_text(p.qty * (last - p.entry)), "liqPrice": "0", "marginRate": "0",
            "avgOpenPrice": num_text(p.entry), "ctime": str(p.ctime) if wire else p.ctime,
            "mtime": str(p.mtime) if wire else p.mtime,
        }

    def position_ws(self, p: FPosition, event: str) -> dict[str, Any]:
        last = self.price_now()[2]
        return {
            "event": event, "positionId": p.position_id, "marginMode": p.margin_mode,
            "positionMode": pp.SUPPORTED_POSITION_MODE, "side": "LONG" if p.qty >= 0 else "SHORT",
            "leverage": str(p.leverage), "margin": num_text(p.margin), "ctime": iso(p.ctime), "mtime": iso(p.mtime),
            "qty": num_text(abs(p.qty)), "entryValue": num_text(abs(p.qty) * p.entry), "symbol": p.symbol,
            "realizedPNL": num_text(p.realized), "unrealizedPNL": num_text(p.qty * (last - p.entry)),
            "funding": num_text(p.funding), "fee": num_text(p.fee),
        }

    def account_rest(self, acct: FAccount) -> dict[str, Any]:
        f = self.figures(acct)
        return {
            "marginCoin": pp.MARGIN_COIN, "available": num_text(f["available"]), "frozen": num_text(f["frozen"]),
            "margin": num_text(f["margin"]), "transfer": num_text(max(0.0, f["available"])),
            "positionMode": pp.SUPPORTED_POSITION_MODE, "crossUnrealizedPNL": num_text(f["cross_upnl"]),
            "isolationUnrealizedPNL": num_text(f["iso_upnl"]), "bonus": "0",
        }

    def balance_ws(self, acct: FAccount) -> dict[str, Any]:
        f = self.figures(acct)
        cross = self.margin_mode_of(acct, self.symbol) == "CROSS"
        return {
            "coin": pp.MARGIN_COIN, "available": num_text(f["available"]), "frozen": num_text(f["frozen"]),
            "isolationFrozen": "0" if cross else num_text(f["frozen"]),
            "crossFrozen": num_text(f["frozen"]) if cross else "0", "margin": num_text(f["margin"]),
            "isolationMargin": "0" if cross else num_text(f["margin"]),
            "crossMargin": num_text(f["margin"]) if cross else "0", "expMoney": "0",
        }

    def _push_order(self, o: FOrder, event: str) -> None:
        self._push(o.uid, pp.WS_CHANNEL_ORDER, self.order_ws(o, event))

    def _push_position(self, p: FPosition, event: str) -> None:
        self._push(p.uid, pp.WS_CHANNEL_POSITION, self.position_ws(p, event))

    def _push_balance(self, acct: FAccount) -> None:
        self._push(acct.cfg.uid, pp.WS_CHANNEL_BALANCE, self.balance_ws(acct))

    # -- control views (tests compare these with the bot's records) ------------------------------------
    def order_log(self, uid: str | None = None) -> list[dict[str, Any]]:
        return [dict(e) for e in self.log if uid is None or e["account"] == uid]

    def orders_view(self, uid: str | None = None) -> list[dict[str, Any]]:
        out = []
        for acct in self.accounts.values():
            if uid is not None and acct.cfg.uid != uid:
                continue
            for o in acct.orders.values():
                out.append({
                    "account": acct.cfg.uid, "order_id": o.order_id, "client_id": o.client_id, "side": o.side,
                    "order_type": o.order_type, "qty": o.qty, "price": o.price, "status": o.status,
                    "filled": o.filled, "avg_price": o.avg_price, "fee": o.fee, "reduce_only": o.reduce_only,
                    "source": o.source, "ctime": o.ctime, "mtime": o.mtime,
                })
        return out

    def positions_view(self) -> list[dict[str, Any]]:
        return [
            {"account": acct.cfg.uid, "position_id": p.position_id, "symbol": p.symbol, "qty": p.qty,
             "entry": p.entry, "realized": p.realized, "fee": p.fee, "funding": p.funding,
             "triggers": [t.__dict__.copy() for t in p.triggers]}
            for acct in self.accounts.values() for p in acct.positions.values()
        ]

    def balances_view(self) -> dict[str, dict[str, float]]:
        return {uid: self.figures(acct) for uid, acct in self.accounts.items()}

    def note_request(self, uid: str, path: str, now: float) -> bool:
        """Per-account request limits (10/s, cancels 5/s); False = refuse with 10006."""
        acct = self.accounts[uid]
        checks = [("all", self.config.private_limit_per_s)]
        if path in pp.CANCEL_LIMITED_PATHS_ASSUMED:
            checks.append(("cancel", self.config.cancel_limit_per_s))
        ok = True
        for group, limit in checks:
            if limit <= 0:
                continue
            times = acct.request_times.setdefault(group, deque())
            while times and times[0] <= now - 1.0:
                times.popleft()
            if len(times) >= limit:
                ok = False
        if ok:
            for group, limit in checks:
                if limit > 0:
                    acct.request_times.setdefault(group, deque()).append(now)
        return ok
