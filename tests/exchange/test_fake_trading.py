"""The fake exchange's trading book on a clock the test controls: limit fills
only when the price trades through, partial fills, market slippage, fees,
reduce-only, post-only/IOC/FOK, flips, TP/SL, funding, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from laptop_agents.exchange import protocol_private as pp
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.testing.fake_exchange.faults import Fault, FaultBook
from laptop_agents.testing.fake_exchange.trading import (
    FUNDING_PERIOD_MS,
    FakeTradingConfig,
    OrderRefused,
    TradingBook,
)

T0 = 1_767_225_600_000 + 3_600_000  # one hour after a funding boundary
UID = "10000001"


class Book:
    """A trading book with a hand-driven clock and a record of its pushes."""

    def __init__(self, **cfg: Any) -> None:
        self.now = T0
        self.market = SyntheticMarket(11, T0 - 3000 * 60_000, 60_000)
        self.faults = FaultBook()
        self.book = TradingBook(FakeTradingConfig(**cfg), market=self.market, symbol="BTCUSDT",
                                now_ms=lambda: self.now, faults=self.faults, seed=3)
        self.pushes: list[tuple[str, dict[str, Any], float]] = []
        self.book.on_push = lambda uid, ch, data, delay: self.pushes.append((ch, data, delay))

    def to(self, t: int) -> None:
        self.now = t
        self.book.advance()

    def last(self) -> float:
        return self.book.price_now()[2]

    def place(self, **body: Any) -> Any:
        wire = {"symbol": "BTCUSDT", "orderType": "LIMIT" if "price" in body else "MARKET", **body}
        return self.book.place(UID, {k: (str(v) if isinstance(v, float) else v) for k, v in wire.items()})

    def position(self) -> Any:
        return self.book.accounts[UID].positions.get("BTCUSDT")

    def fills(self) -> list[dict[str, Any]]:
        return [e for e in self.book.log if e["kind"] == "fill"]


def _tick(x: float) -> float:
    return round(round(x / 0.1) * 0.1, 1)


def test_a_limit_fills_only_when_the_price_trades_through_it_at_its_price_as_maker() -> None:
    b = Book()
    points = list(b.book.trade_points(T0, T0 + 3_600_000))
    limit = _tick(min(p for _, p in points[:60]) + 0.1)  # a price the market will trade below
    first_below = next(t for t, p in points if p < limit)
    order = b.place(side="BUY", qty="0.01", price=limit)
    assert order.status == "NEW"
    b.to(first_below - 1)
    assert order.status == "NEW" and not b.fills()
    b.to(first_below)
    assert order.status == "FILLED"
    fill = b.fills()[0]
    assert fill["price"] == limit and fill["role"] == "MAKER"
    assert fill["fee"] == pytest.approx(0.01 * limit * 0.0002)
    assert b.position().qty == 0.01 and b.position().entry == limit


def test_touching_is_not_enough_unless_configured() -> None:
    b = Book()
    points = list(b.book.trade_points(T0, T0 + 3_600_000))
    t_low, low = min(points[:60], key=lambda tp: tp[1])
    order = b.place(side="BUY", qty="0.01", price=low)
    b.to(t_low)
    assert order.status == "NEW"  # the price touched the limit but never went through
    touch = Book(fill_on_touch=True)
    order2 = touch.place(side="BUY", qty="0.01", price=low)
    touch.to(t_low)
    assert order2.status == "FILLED"


def test_large_orders_fill_partially_over_several_points() -> None:
    b = Book(liquidity_per_step=0.002)
    limit = _tick(b.last() * 1.002)  # crosses on arrival: the first part is a taker fill at the ask
    order = b.place(side="BUY", qty="0.01", price=limit)
    assert order.status == "PART_FILLED" and order.filled == 0.002
    assert b.fills()[0]["role"] == "TAKER"
    b.to(T0 + 600_000)
    assert order.status == "FILLED"
    fills = b.fills()
    assert len(fills) == 5 and {f["role"] for f in fills[1:]} == {"MAKER"}
    assert [f["cum_qty"] for f in fills] == pytest.approx([0.002, 0.004, 0.006, 0.008, 0.01])
    statuses = [p[1]["orderStatus"] for p in b.pushes if p[0] == "order"]
    assert statuses[0] == "NEW" and statuses[-1] == "FILLED" and "PART_FILLED" in statuses


def test_market_orders_pay_slippage_that_grows_with_size_and_the_taker_fee() -> None:
    b = Book()
    bid, ask, _ = b.book.price_now()
    small = b.place(side="BUY", qty="0.01")
    big = b.place(side="BUY", qty="2")
    p_small, p_big = (f["price"] for f in b.fills())
    assert ask < p_small < p_big
    assert p_small == _tick(ask * (1 + (1.0 + 2.0 * 0.01) / 10_000))
    assert b.fills()[0]["fee"] == pytest.approx(0.01 * p_small * 0.0006)
    assert small.status == big.status == "FILLED"
    sell = b.place(side="SELL", qty="0.01")
    assert sell.status == "FILLED" and b.fills()[-1]["price"] < bid


def test_reduce_only_never_opens_or_flips() -> None:
    b = Book()
    with pytest.raises(OrderRefused) as none:
        b.place(side="SELL", qty="0.01", reduceOnly=True)
    assert none.value.code == pp.CODE_REDUCE_ONLY_NO_POSITION
    b.place(side="BUY", qty="0.01")
    with pytest.raises(OrderRefused) as same:
        b.place(side="BUY", qty="0.01", reduceOnly=True)
    assert same.value.code == pp.CODE_REDUCE_ONLY_SAME_SIDE
    resting = b.place(side="SELL", qty="0.01", price=_tick(b.last() * 1.03), reduceOnly=True)
    closing = b.place(side="SELL", qty="0.03", reduceOnly=True)  # larger than the position: capped
    assert closing.filled == 0.01 and closing.status == "PART_FILLED_CANCELED"
    assert b.position() is None
    assert resting.status == "CANCELED"  # nothing left to reduce
    kinds = [(e["kind"], e["order_id"]) for e in b.book.log if e["kind"] in ("fill", "cancelled")]
    # the closing order's fill is recorded first, then both remainders are cancelled
    assert kinds[-3:] == [("fill", closing.order_id), ("cancelled", resting.order_id), ("cancelled", closing.order_id)]
    assert {e["reason"] for e in b.book.log if e["kind"] == "cancelled"} == {"position_closed"}


def test_an_opposite_order_flips_the_position() -> None:
    b = Book()
    b.place(side="BUY", qty="0.01")
    first = b.position().position_id
    b.place(side="SELL", qty="0.03")
    pos = b.position()
    assert pos.qty == pytest.approx(-0.02) and pos.position_id != first
    closed = b.book.accounts[UID].closed_positions
    assert closed[0]["positionId"] == first
    events = [p[1]["event"] for p in b.pushes if p[0] == "position"]
    assert events == ["OPEN", "CLOSE", "OPEN"]


def test_post_only_ioc_and_fok() -> None:
    b = Book(liquidity_per_step=0.004)
    above = _tick(b.last() * 1.001)
    post = b.place(side="BUY", qty="0.01", price=above, effect="POST_ONLY")
    assert post.status == "CANCELED" and post.filled == 0  # would have crossed (L: cancelled, not refused)
    ioc = b.place(side="BUY", qty="0.01", price=above, effect="IOC")
    assert ioc.status == "PART_FILLED_CANCELED" and ioc.filled == 0.004
    fok = b.place(side="BUY", qty="0.01", price=above, effect="FOK")
    assert fok.status == "CANCELED" and fok.filled == 0
    fok_ok = b.place(side="BUY", qty="0.004", price=above, effect="FOK")
    assert fok_ok.status == "FILLED"
    resting = b.place(side="BUY", qty="0.01", price=_tick(b.last() * 0.999), effect="POST_ONLY")
    assert resting.status == "NEW"


def test_attached_take_profit_closes_the_filled_quantity() -> None:
    b = Book()
    last = b.last()
    points = list(b.book.trade_points(T0, T0 + 6 * 3_600_000))
    ask = b.book.price_now()[1]
    tp = _tick(max(p for _, p in points) - 1.0)
    assert tp > ask + 1.0  # above the entry: the path reaches it later
    entry = b.place(side="BUY", qty="0.01", tpPrice=tp, slPrice=_tick(last * 0.8))
    assert entry.status == "FILLED" and len(b.position().triggers) == 2
    b.to(T0 + 6 * 3_600_000)
    assert b.position() is None
    trig = [e for e in b.book.log if e["kind"] == "tpsl_triggered"]
    assert len(trig) == 1 and trig[0]["leg"] == "tp"
    exit_order = [o for o in b.book.accounts[UID].orders.values() if o.source == "tpsl"]
    assert len(exit_order) == 1 and exit_order[0].reduce_only and exit_order[0].status == "FILLED"
    assert exit_order[0].client_id is None


def test_funding_is_settled_at_each_boundary_on_open_positions() -> None:
    b = Book()
    b.place(side="BUY", qty="0.1")
    wallet = b.book.accounts[UID].wallet
    boundary = T0 - T0 % FUNDING_PERIOD_MS + FUNDING_PERIOD_MS
    b.to(boundary - 1)
    assert not [e for e in b.book.log if e["kind"] == "funding"]
    b.to(boundary + 60_000)
    funding = [e for e in b.book.log if e["kind"] == "funding"]
    assert len(funding) == 1 and funding[0]["funding_ts"] == boundary
    rate = b.market.funding_rate(boundary - 1)
    assert funding[0]["rate"] == rate
    assert funding[0]["amount"] == pytest.approx(-0.1 * funding[0]["mark"] * rate)
    assert b.book.accounts[UID].wallet == pytest.approx(wallet + funding[0]["amount"])
    assert b.position().funding == pytest.approx(funding[0]["amount"])


def test_refusals_carry_the_documented_codes() -> None:
    b = Book()
    last = b.last()
    cases = [
        ({"side": "BUY", "qty": "10"}, pp.CODE_INSUFFICIENT_BALANCE),  # 600k notional on 10k at 20x
        ({"side": "BUY", "qty": "0.01", "price": _tick(last * 1.2)}, pp.CODE_MAX_BUY_PRICE),
        ({"side": "SELL", "qty": "0.01", "price": _tick(last * 0.8)}, pp.CODE_MIN_SELL_PRICE),
        ({"side": "BUY", "qty": "0.00001"}, pp.CODE_QTY_BELOW_MIN),
        ({"side": "BUY", "qty": "0.00015"}, pp.CODE_PARAMETER),  # off the 0.0001 grid
        ({"side": "BUY", "qty": "0.01", "price": last + 0.05}, pp.CODE_PARAMETER),  # off the tick grid
        ({"side": "BUY", "qty": "0.01", "clientId": "no_underscores"}, pp.CODE_PARAMETER),
        ({"side": "HOLD", "qty": "0.01"}, pp.CODE_PARAMETER),
        ({"side": "BUY", "qty": "0.01", "symbol": "ETHUSDT"}, pp.CODE_MARKET_NOT_EXISTS),
    ]
    for body, code in cases:
        with pytest.raises(OrderRefused) as info:
            b.place(**body)
        assert info.value.code == code, body
    b.place(side="BUY", qty="0.01", clientId="dup1")
    with pytest.raises(OrderRefused) as dup:
        b.place(side="SELL", qty="0.01", clientId="dup1")
    assert dup.value.code == pp.CODE_DUPLICATE_CLIENT_ID
    b.faults.arm(Fault("reject_order", code=20003, count=1), 0.0)
    with pytest.raises(OrderRefused) as injected:
        b.place(side="BUY", qty="0.001")
    assert injected.value.code == 20003
    assert b.place(side="BUY", qty="0.001").status == "FILLED"  # the fault was used up


def test_a_trade_by_hand_changes_the_position_outside_the_bot() -> None:
    b = Book()
    b.book.act(Fault("position_by_hand", qty=-0.02))
    assert b.position().qty == pytest.approx(-0.02)
    manual = [o for o in b.book.accounts[UID].orders.values() if o.source == "manual"]
    assert len(manual) == 1 and manual[0].client_id is None and manual[0].status == "FILLED"


def test_delayed_fill_pushes_carry_the_delay() -> None:
    b = Book()
    b.faults.arm(Fault("delay_fills", seconds=3.0), 0.0)
    b.place(side="BUY", qty="0.01")
    b.place(side="BUY", qty="0.01")
    delays = [d for ch, data, d in b.pushes if ch == "order" and data["event"] != "CREATE"]
    assert delays == [3.0, 0.0]


def test_delayed_pushes_hold_an_orders_acceptance_back_too() -> None:
    """``delay_pushes`` holds the CREATE push as well (``delay_fills`` does not), so a test can have the
    exchange know an order whose acknowledgement the bot never saw, whatever the machine's speed."""
    b = Book()
    b.faults.arm(Fault("delay_pushes", seconds=3.0), 0.0)
    b.place(side="BUY", qty="0.01")
    b.place(side="BUY", qty="0.01")
    creates = [d for ch, data, d in b.pushes if ch == "order" and data["event"] == "CREATE"]
    assert creates == [3.0, 0.0]


def test_private_faults_parse_from_a_schedule_and_from_json() -> None:
    from laptop_agents.testing.fake_exchange.faults import FaultSpecError, parse_schedule

    items = parse_schedule("place_timeout@10:3,cancel_5xx=503@11:2,reject_order=30014@12,private_disconnect@13,"
                           "delay_fills@14:2.5,position_by_hand=-0.01@15,delay_pushes@16:4")
    got = [(i.at_s, i.fault.kind, i.fault.seconds, i.fault.status, i.fault.code, i.fault.count, i.fault.qty)
           for i in items]
    assert got == [
        (10.0, "place_timeout", 3.0, None, None, 1, 0.0),
        (11.0, "cancel_5xx", 0.0, 503, None, 2, 0.0),
        (12.0, "reject_order", 0.0, None, 30014, 1, 0.0),
        (13.0, "private_disconnect", 0.0, None, None, 1, 0.0),
        (14.0, "delay_fills", 2.5, None, None, 1, 0.0),
        (15.0, "position_by_hand", 0.0, None, None, 1, -0.01),
        (16.0, "delay_pushes", 4.0, None, None, 1, 0.0),
    ]
    assert not Fault.from_dict({"kind": "place_timeout", "accepted": False}).accepted
    for bad in ("position_by_hand@5", "cancel_5xx=404@5"):
        with pytest.raises(FaultSpecError):
            parse_schedule(bad)
