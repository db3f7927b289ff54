"""The broker's parts on their own: the fill model's bar rules as a table,
the ledger's identity, the hard limits and the breaker."""

from __future__ import annotations

import math

import pytest

from laptop_agents.broker.fills import FillModel, fill_reason
from laptop_agents.broker.ledger import Ledger
from laptop_agents.broker.limits import DAY_MS, CircuitBreaker, RiskLimits
from laptop_agents.broker.state import Position, WorkingOrder
from laptop_agents.config import BrokerConfig, RiskConfig
from laptop_agents.domain.events import BreakerReset, BreakerTrip
from laptop_agents.domain.models import Candle, OrderType, Side, Tick
from laptop_agents.domain.symbols import instrument_for

LIN = instrument_for("BTCUSDT")
INV = instrument_for("BTCUSD")
T0 = 1_699_920_000_000


def model(**kw: float) -> FillModel:
    return FillModel(LIN, BrokerConfig(**{"slippage_bps": 10.0, **kw}))


def pos(qty: float, *, stop: float | None = 95.0, target: float | None = 110.0, trail: bool = False) -> Position:
    return Position(qty, 100.0, T0, "p", stop, target, True, 5.0, trail, abs(qty), 0.0, 0.0, 0.0, 0.0, 0.0)


def bar(o: float, h: float, lo: float, c: float, v: float = 10.0) -> Candle:
    return Candle(T0 + 60_000, o, h, lo, c, v)


# (position, bar) -> (price, liquidity, reason) or None; slippage 10 bps against us.
EXITS = [
    (pos(1.0), bar(100, 105, 96, 101), None),  # neither reached
    (pos(1.0), bar(100, 105, 95, 101), (95 * 0.999, "taker", "stop")),  # a stop fills on a touch
    (pos(1.0), bar(100, 110, 96, 101), None),  # a target needs the bar to trade through it
    (pos(1.0), bar(100, 111, 96, 101), (110.0, "maker", "target")),
    (pos(1.0), bar(100, 111, 94, 101), (95 * 0.999, "taker", "stop")),  # both inside one bar: the stop wins
    (pos(1.0), bar(93, 96, 90, 94), (93 * 0.999, "taker", "stop")),  # a gap through the stop: at the open
    (pos(1.0), bar(112, 113, 90, 111), (112.0, "maker", "target")),  # a gap past the target: at the open
    (pos(1.0, trail=True), bar(100, 105, 95, 101), (95 * 0.999, "taker", "trailing_stop")),
    (pos(-1.0, stop=105.0, target=90.0), bar(100, 105, 96, 101), (105 * 1.001, "taker", "stop")),
    (pos(-1.0, stop=105.0, target=90.0), bar(100, 104, 89, 95), (90.0, "maker", "target")),
    (pos(1.0, stop=None, target=None), bar(100, 200, 1, 100), None),
]


@pytest.mark.parametrize(("position", "candle", "expected"), EXITS)
def test_protective_exits(position: Position, candle: Candle, expected: tuple[float, str, str] | None) -> None:
    got = model().bar_exit(position, candle)
    if expected is None:
        assert got is None
    else:
        assert got is not None and got[1:] == expected[1:] and got[0] == pytest.approx(expected[0])


def test_working_orders_fill_through_their_limit_at_the_better_open() -> None:
    m = model()
    buy = WorkingOrder("b", Side.BUY, OrderType.LIMIT, 1.0, 0.0, 100.0, None, None, False, False, "", T0, T0 + 1)
    assert m.working_fill(buy, bar(101, 102, 100, 101)) is None  # a touch is not enough
    assert m.working_fill(buy, bar(101, 102, 99.9, 101)) == (100.0, "maker")
    assert m.working_fill(buy, bar(98, 99, 97, 98)) == (98.0, "maker")  # gapped below: at the open
    sell = buy._replace(side=Side.SELL)
    assert m.working_fill(sell, bar(99, 100.1, 98, 99)) == (100.0, "maker")
    mkt = buy._replace(type=OrderType.MARKET, price=None)
    assert m.working_fill(mkt, bar(101, 102, 99, 101)) == (pytest.approx(101 * 1.001), "taker")


def test_stop_after_entry_and_trailing() -> None:
    m = model(slippage_bps=0.0)
    assert m.stop_after_entry(pos(1.0), bar(100, 101, 96, 99)) is None
    assert m.stop_after_entry(pos(1.0), bar(100, 101, 94, 99)) == 95.0
    assert m.stop_after_entry(pos(1.0), bar(93, 94, 90, 92)) == 93.0  # a gap: where the bar traded
    p = pos(1.0, stop=90.0)._replace(risk=10.0)
    assert m.trail(p, 104.0) is p  # below +0.5 R: unchanged (the same record)
    active = m.trail(p, 105.0)
    assert active.trail_active and active.stop == 90.0  # 105 - 1.5 R
    moved = m.trail(active, 120.0)
    assert moved.stop == 105.0 and m.trail(moved, 110.0) is moved  # only ever in our favour


def test_volume_caps_in_base_units() -> None:
    m = model(partial_fill_volume_frac=0.1)
    assert m.cap(0.0) == math.inf and m.cap(50.0) == 5.0
    assert m.capped(1.0, math.inf, 100.0) == 1.0 and m.capped(10.0, 5.0, 100.0) == 5.0
    inv = FillModel(INV, BrokerConfig(partial_fill_volume_frac=0.1))
    assert inv.base(50_000.0, 50_000.0) == 1.0  # 50,000 one-dollar contracts at 50,000 = 1 BTC
    assert inv.capped(100_000.0, 1.0, 50_000.0) == 50_000.0  # whole contracts


def test_touch_prefers_a_tick_of_the_current_candle() -> None:
    tick = Tick(T0 + 30_000, 99.0, 101.0, 100.0)
    assert FillModel.touch(Side.BUY, tick, 100.5, T0) == 101.0
    assert FillModel.touch(Side.SELL, tick, 100.5, T0) == 99.0
    assert FillModel.touch(Side.BUY, tick, 100.5, T0 + 60_000) == 100.5  # an older tick: the close
    assert fill_reason(0.0, Side.BUY, 1.0) == "entry" and fill_reason(1.0, Side.SELL, 0.5) == "exit"
    assert fill_reason(1.0, Side.SELL, 2.0) == "reverse"


@pytest.mark.parametrize("inst", [LIN, INV])
def test_the_ledger_identity_holds_through_a_round_trip(inst: object) -> None:
    led = Ledger(inst, BrokerConfig(), 10_000.0)  # type: ignore[arg-type]
    led.first_price(100.0)
    qty = 1.0 if led.inverse is False else 100.0
    fill, trade = led.execute(T0, "a", Side.BUY, qty, 100.0, "taker", "entry")
    assert trade is None and led.position is not None and fill.fee > 0
    assert led.charge_funding(T0, T0, 0.001, 100.0) is not None
    fill2, trade = led.execute(T0 + 1, "a:stop:2", Side.SELL, qty, 110.0, "taker", "stop")
    assert trade is not None and led.position is None and led.trades_closed == 1
    assert trade.net_pnl == pytest.approx(trade.pnl - trade.fees - trade.funding)
    assert led.start_balance is not None
    assert led.balance == pytest.approx(led.start_balance + led.realized_pnl - led.fees_paid - led.funding_paid)
    assert led.fees_paid == pytest.approx(fill.fee + fill2.fee)


def test_limits_admit_reductions_always_and_clip_blocked_reversals() -> None:
    limits = RiskLimits(RiskConfig(max_position_notional=1_000.0, max_leverage=5.0))
    led = Ledger(LIN, BrokerConfig(), 10_000.0)
    assert limits.admit(Side.BUY, 20.0, 100.0, False, led, "", 10_000.0) == (0.0, "max_notional")
    assert limits.admit(Side.BUY, 5.0, 100.0, False, led, "", 10_000.0) == (5.0, "")
    assert limits.admit(Side.BUY, 5.0, 100.0, False, led, "", 50.0) == (0.0, "max_leverage")
    assert limits.admit(Side.BUY, 5.0, 100.0, True, led, "", 10_000.0) == (0.0, "reduce_only_without_position")
    led.execute(T0, "a", Side.BUY, 2.0, 100.0, "taker", "entry")
    assert limits.admit(Side.SELL, 5.0, 100.0, False, led, "breaker", 10_000.0) == (2.0, "breaker")
    assert limits.admit(Side.SELL, 1.0, 100.0, False, led, "breaker", 10_000.0) == (1.0, "")


def test_order_rate_counts_the_last_minute_of_event_time() -> None:
    limits = RiskLimits(RiskConfig(max_orders_per_minute=2))
    limits.order_times.extend([T0, T0 + 1_000])
    assert limits.rate_limited(T0 + 59_999)
    assert not limits.rate_limited(T0 + 60_000)  # the first one left the window
    daily = RiskLimits(RiskConfig(max_daily_loss_pct=3))
    assert daily.daily_loss_hit(10_000.0, 10_000.0, 9_700.0)  # 3 % of the starting balance
    assert not daily.daily_loss_hit(10_000.0, 10_000.0, 9_701.0)
    assert not daily.daily_loss_hit(None, 10_000.0, 0.0)  # an inverse account before its first price


def test_breaker_trips_on_drawdown_or_losing_run_and_resets_next_day() -> None:
    b = CircuitBreaker(RiskConfig(breaker_drawdown_pct=5, breaker_consecutive_losses=2))
    assert b.roll_day(T0, 10_000.0) is None and b.next_day_ts == (T0 // DAY_MS + 1) * DAY_MS
    assert b.check(T0, 9_600.0) is None
    trip = b.check(T0 + 5, 9_500.0)
    assert isinstance(trip, BreakerTrip) and trip.reason == "drawdown" and trip.until_ts == b.next_day_ts
    assert b.check(T0 + 6, 1.0) is None  # already active
    assert b.roll_day(T0 + 10, 9_500.0) is None  # the same day: still blocked
    reset = b.roll_day(b.until, 9_500.0)
    assert isinstance(reset, BreakerReset) and not b.active and reset.day_start_equity == 9_500.0
    b.record_trade(-1.0)
    b.record_trade(0.0)  # flat: neither extends nor ends the run
    assert b.check(b.until, 9_500.0) is None
    b.record_trade(-1.0)
    trip = b.check(b.until, 9_500.0)
    assert trip is not None and trip.reason == "consecutive_losses" and b.consecutive_losses == 0
