"""One test (or a few) per paper-broker rule, with hand-computed numbers."""

from __future__ import annotations

import pytest

from laptop_agents.domain.models import CancelIntent, Tick
from tests.broker.helpers import DAY, HOUR, MIN, T0, buy, candle, flat, kinds, make_broker, of_kind, sell

TAKER = 6e-4
MAKER = 2e-4


def test_market_fills_at_close_plus_slippage_with_taker_fee() -> None:
    b = make_broker(slippage_bps=1.0)
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 2.0), T0)
    events, fills = b.drain()
    assert kinds(events) == ["order", "fill"]
    assert events[0].status == "accepted"
    (f,) = fills
    assert f.price == pytest.approx(100.01)
    assert f.fee == pytest.approx(2.0 * 100.01 * TAKER)
    assert (f.liquidity, f.reason) == ("taker", "entry")
    assert b.position_qty == 2.0
    assert b.balance == pytest.approx(10_000.0 - f.fee)
    b.submit(sell("b", 2.0), T0)
    _, (f2,) = b.drain()
    assert f2.price == pytest.approx(99.99)
    assert f2.reason == "exit"


def test_market_uses_touch_of_a_fresh_tick_but_not_a_stale_one() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.tick = Tick(T0 + 30_000, 99.5, 100.5, 100.0)
    b.submit(buy("a", 1.0), T0)
    b.submit(sell("b", 1.0), T0)
    _, fills = b.drain()
    assert [f.price for f in fills] == [100.5, 99.5]
    b.on_candle(flat(1, 101.0))  # the tick is older than this candle: stale
    b.submit(buy("c", 1.0), T0 + MIN)
    _, fills = b.drain()
    assert fills[0].price == 101.0


def test_limit_fills_only_when_traded_through_maker_fee_and_gap_at_open() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0, price=95.0), T0)
    events, fills = b.drain()
    assert events[0].status == "working" and not fills
    b.on_candle(candle(1, 100, 101, 96, 99))
    b.on_candle(candle(2, 99, 99, 95, 96))  # touches 95: not through
    assert b.drain()[1] == [] and "a" in b.orders
    b.on_candle(candle(3, 96, 97, 94, 95))
    _, (f,) = b.drain()
    assert (f.price, f.liquidity, f.reason) == (95.0, "maker", "entry")
    assert f.fee == pytest.approx(95.0 * MAKER)
    assert not b.orders
    # A gap below a resting buy limit fills at the (better) open.
    b.submit(sell("b", 1.0, price=120.0), T0 + 3 * MIN)
    b.on_candle(candle(4, 125, 126, 124, 125))
    _, (f,) = b.drain()
    assert f.price == 125.0


def test_marketable_limit_fills_now_at_no_worse_than_its_price() -> None:
    b = make_broker(slippage_bps=10.0)
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0, price=100.05), T0)  # market would be 100.1 after slippage
    _, (f,) = b.drain()
    assert f.price == pytest.approx(100.05) and f.liquidity == "taker"


def test_partial_fill_beyond_volume_fraction_rest_stays_working() -> None:
    b = make_broker(partial_fill_volume_frac=0.1)
    b.on_candle(flat(0, 100.0, v=10.0))
    b.submit(buy("a", 2.5, price=99.0), T0)
    b.drain()
    got = []
    for i in range(1, 4):
        b.on_candle(candle(i, 100, 100, 98, 99, 10.0))
        got += [f.qty for f in b.drain()[1]]
    assert got == pytest.approx([1.0, 1.0, 0.5])
    assert not b.orders and b.position_qty == pytest.approx(2.5)


def test_partial_market_order_remainder_fills_at_next_opens() -> None:
    b = make_broker(partial_fill_volume_frac=0.1)
    b.on_candle(flat(0, 100.0, v=10.0))
    b.submit(buy("a", 2.5), T0)
    events, fills = b.drain()
    assert [f.qty for f in fills] == [1.0]
    assert of_kind(events, "order")[-1] == {**of_kind(events, "order")[-1], "status": "working", "qty": 1.5}
    b.on_candle(candle(1, 101, 102, 100, 101, 10.0))
    b.on_candle(candle(2, 103, 104, 102, 103, 20.0))
    _, fills = b.drain()
    assert [(f.qty, f.price) for f in fills] == [(1.0, 101.0), (pytest.approx(0.5), 103.0)]
    assert b.position_qty == pytest.approx(2.5) and not b.orders


def test_inverse_volume_cap_converts_contracts_to_btc_at_the_fill_price() -> None:
    """Candle volume is in BTC, an inverse order in USD contracts: 10 % of a
    10 BTC bar at 20 000 is 1 BTC = 20 000 one-dollar contracts, not 1 contract."""
    b = make_broker("BTCUSD", partial_fill_volume_frac=0.1)
    b.on_candle(flat(0, 20_000.0, v=10.0))
    b.submit(buy("a", 10_000.0), T0)  # 0.5 BTC: inside the cap, one fill
    _, fills = b.drain()
    assert [f.qty for f in fills] == [10_000.0]
    b.submit(buy("b", 50_000.0), T0)  # the bar's remaining 0.5 BTC = 10 000 contracts now
    events, fills = b.drain()
    assert [f.qty for f in fills] == [10_000.0]
    assert of_kind(events, "order")[-1]["status"] == "working" and b.orders["b"].qty == 40_000.0
    b.on_candle(flat(1, 25_000.0, v=10.0))  # 1 BTC at 25 000 = 25 000 contracts
    b.on_candle(flat(2, 20_000.0, v=10.0))
    _, fills = b.drain()
    assert [(f.qty, f.price) for f in fills] == [(25_000.0, 25_000.0), (15_000.0, 20_000.0)]
    assert not b.orders and b.position_qty == 60_000.0


def test_inverse_limit_partial_fills_capped_in_btc_and_whole_contracts() -> None:
    b = make_broker("BTCUSD", partial_fill_volume_frac=0.1)
    b.on_candle(flat(0, 20_000.0, v=10.0))
    b.submit(buy("a", 30_000.0, price=19_000.0), T0)
    b.drain()
    got = []
    for i in range(1, 4):  # trades through 19 000; 1 BTC at 19 000 = 19 000 contracts
        b.on_candle(candle(i, 19_500, 19_500, 18_900, 19_200, 10.0))
        got += [f.qty for f in b.drain()[1]]
    assert got == [19_000.0, 11_000.0]
    b2 = make_broker("BTCUSD", partial_fill_volume_frac=0.1)
    b2.on_candle(flat(0, 30_000.0, v=0.01))
    b2.submit(buy("c", 100.0, price=29_000.0), T0)
    b2.drain()
    b2.on_candle(candle(1, 30_003, 30_003, 28_000, 30_000, 0.01))
    # 0.001 BTC at the fill price 29 000 = 29 contracts (a whole number, not 29.000000000000004)
    assert [f.qty for f in b2.drain()[1]] == [29.0]


def test_zero_volume_means_unknown_volume_and_sets_no_cap() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0, v=0.0))
    b.submit(buy("a", 3.0), T0)
    assert [f.qty for f in b.drain()[1]] == [3.0]


def _long(b, qty: float = 1.0, px: float = 100.0, **kw):  # type: ignore[no-untyped-def]
    b.on_candle(flat(0, px))
    b.submit(buy("L", qty, **kw), T0)
    b.drain()
    return b


def test_stop_wins_when_stop_and_target_touched_in_one_candle() -> None:
    b = _long(make_broker(), stop=95.0, target=110.0)
    b.on_candle(candle(1, 100, 111, 94, 100))
    events, (f,) = b.drain()
    assert (f.price, f.reason, f.liquidity) == (95.0, "stop", "taker")
    (t,) = of_kind(events, "trade_closed")
    assert t["exit_reason"] == "stop" and t["side"] == "long"
    assert t["pnl"] == pytest.approx(-5.0)
    assert t["net_pnl"] == pytest.approx(-5.0 - 100 * TAKER - 95 * TAKER)
    assert b.position is None


def test_gap_through_stop_fills_at_open() -> None:
    b = _long(make_broker(), stop=95.0, target=110.0)
    b.on_candle(candle(1, 90, 92, 89, 91))
    _, (f,) = b.drain()
    assert (f.price, f.reason) == (90.0, "stop")


def test_gap_through_stop_of_a_short_fills_at_open_with_slippage() -> None:
    b = make_broker(slippage_bps=10.0)
    b.on_candle(flat(0, 100.0))
    b.submit(sell("S", 1.0, stop=105.0), T0)
    b.drain()
    b.on_candle(candle(1, 110, 111, 109, 110))
    _, (f,) = b.drain()
    assert f.price == pytest.approx(110 * 1.001) and f.side.value == "BUY"


def test_target_traded_through_fills_at_target_as_maker_and_gap_at_open() -> None:
    b = _long(make_broker(), stop=95.0, target=110.0)
    b.on_candle(candle(1, 101, 111, 99, 105))
    events, (f,) = b.drain()
    assert (f.price, f.reason, f.liquidity) == (110.0, "target", "maker")
    assert of_kind(events, "trade_closed")[0]["pnl"] == pytest.approx(10.0)
    b = _long(make_broker(), stop=95.0, target=110.0)
    b.on_candle(candle(1, 112, 113, 111, 112))
    assert b.drain()[1][0].price == 112.0


def test_trailing_stop_activates_at_half_r_trails_one_and_half_r_and_only_ratchets() -> None:
    b = _long(make_broker(), stop=90.0, trailing=True)  # R = 10
    b.on_candle(candle(1, 100, 104, 99, 104))
    pos = b.position  # an immutable record: the broker replaces it when the stop moves
    assert pos is not None and not pos.trail_active and pos.stop == 90.0
    b.on_candle(candle(2, 104, 105, 103, 105))  # +0.5 R: active, 105 - 15 = 90
    pos = b.position
    assert pos is not None and pos.trail_active and pos.stop == 90.0
    b.on_candle(candle(3, 105, 120, 104, 120))
    assert b.position is not None and b.position.stop == 105.0
    b.on_candle(candle(4, 118, 118, 106, 110))
    assert b.position is not None and b.position.stop == 105.0  # never moves back
    b.drain()
    b.on_candle(candle(5, 108, 109, 104, 105))
    events, (f,) = b.drain()
    assert (f.price, f.reason) == (105.0, "trailing_stop")
    assert of_kind(events, "trade_closed")[0]["exit_reason"] == "trailing_stop"


def test_trailing_short_ratchets_down() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.submit(sell("S", 1.0, stop=110.0, trailing=True), T0)
    b.drain()
    b.on_candle(candle(1, 100, 100, 80, 80))
    assert b.position.stop == pytest.approx(95.0)
    b.on_candle(candle(2, 80, 90, 80, 90))
    assert b.position.stop == pytest.approx(95.0)


@pytest.mark.parametrize(("side", "sign"), [("long", 1.0), ("short", -1.0)])
def test_funding_longs_pay_positive_rate_shorts_receive(side: str, sign: float) -> None:
    b = make_broker()
    b.funding_rate = 0.0001
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0) if sign > 0 else sell("a", 1.0), T0)
    b.drain()
    before = b.balance
    b.on_candle(flat(479, 100.0))  # 07:59: no boundary crossed
    assert of_kind(b.drain()[0], "funding") == []
    b.on_candle(flat(480, 200.0))  # 08:00
    (fe,) = of_kind(b.drain()[0], "funding")
    assert fe["amount"] == pytest.approx(sign * 200.0 * 0.0001)
    assert b.balance == pytest.approx(before - sign * 0.02)
    assert b.funding_paid == pytest.approx(sign * 0.02)
    assert b.position.funding == pytest.approx(sign * 0.02)


def test_funding_charged_for_every_boundary_crossed_in_a_gap_and_not_when_flat() -> None:
    b = make_broker()
    b.funding_rate = 0.0002
    b.on_candle(flat(0, 100.0))
    b.on_candle(flat(600, 100.0))  # flat across 08:00: nothing
    assert of_kind(b.drain()[0], "funding") == []
    b.submit(buy("a", 1.0), T0 + 600 * MIN)
    b.drain()
    b.on_candle(flat(1440 + 5, 100.0))  # jumps over 16:00 and 00:00
    got = of_kind(b.drain()[0], "funding")
    assert [g["boundary_ts"] for g in got] == [T0 + 16 * HOUR, T0 + DAY]


def test_inverse_contract_pnl_and_fees_in_btc() -> None:
    b = make_broker("BTCUSD")
    b.on_candle(flat(0, 20_000.0, v=1e6))
    assert b.start_balance == pytest.approx(0.5)  # 10 000 USD at the first price
    b.submit(buy("a", 1000.0), T0)
    _, (f,) = b.drain()
    assert f.fee == pytest.approx(1000 / 20_000 * TAKER)
    b.on_candle(flat(1, 25_000.0, v=1e6))
    assert b.unrealized() == pytest.approx(1000 * (1 / 20_000 - 1 / 25_000))
    b.submit(sell("b", 1000.0), T0 + MIN)
    events, _ = b.drain()
    (t,) = of_kind(events, "trade_closed")
    assert t["pnl"] == pytest.approx(0.01)
    assert b.equity() == pytest.approx(0.5 + 0.01 - 1000 / 20_000 * TAKER - 1000 / 25_000 * TAKER)
    # Short: loses when the price rises.
    b.submit(sell("c", 1000.0), T0 + MIN)
    b.on_candle(flat(2, 20_000.0, v=1e6))
    b.submit(buy("d", 1000.0), T0 + 2 * MIN)
    (t,) = of_kind(b.drain()[0], "trade_closed")
    assert t["pnl"] == pytest.approx(1000 * (1 / 20_000 - 1 / 25_000)) and t["side"] == "short"


def test_inverse_average_entry_is_harmonic() -> None:
    b = make_broker("BTCUSD")
    b.on_candle(flat(0, 20_000.0, v=1e6))
    b.submit(buy("a", 1000.0), T0)
    b.on_candle(flat(1, 25_000.0, v=1e6))
    b.submit(buy("b", 1000.0), T0 + MIN)
    assert b.position.entry_price == pytest.approx(2000 / (1000 / 20_000 + 1000 / 25_000))


def test_working_order_expires_after_24h_default_and_custom_expire_ts() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0, price=50.0), T0)
    b.submit(buy("b", 1.0, price=50.0, expire_ts=T0 + 5 * MIN), T0)
    b.drain()
    b.on_candle(flat(4, 100.0))
    assert set(b.orders) == {"a", "b"}
    b.on_candle(flat(5, 100.0))
    assert of_kind(b.drain()[0], "order_expired") == [
        {"client_id": "b", "expire_ts": T0 + 5 * MIN, "remaining_qty": 1.0}
    ]
    b.on_candle(flat(24 * 60 - 1, 100.0))
    assert "a" in b.orders
    b.on_candle(flat(24 * 60, 49.0))  # expires before it could fill in this candle
    events, fills = b.drain()
    assert [e["client_id"] for e in of_kind(events, "order_expired")] == ["a"] and not fills


def test_orders_per_minute_counted_in_event_time() -> None:
    b = make_broker(risk={"max_orders_per_minute": 3})
    b.on_candle(flat(0, 100.0))
    for k in range(4):
        b.submit(buy(f"o{k}", 1.0, price=50.0 + k), T0)
    statuses = [e["status"] for e in of_kind(b.drain()[0], "order")]
    assert statuses == ["working", "working", "working", "rejected"]
    b.on_candle(flat(1, 100.0))  # one minute later in event time
    b.submit(buy("o9", 1.0, price=60.0), T0 + MIN)
    assert of_kind(b.drain()[0], "order")[0]["status"] == "working"


def test_a_fast_replay_is_not_throttled() -> None:
    """The seed throttled by wall clock: a fast replay made one trade. Here
    200 candles processed in microseconds all trade."""
    b = make_broker(risk={"max_orders_per_minute": 2})
    for i in range(200):
        b.on_candle(flat(i, 100.0))
        b.submit(buy(f"o{i}", 1.0) if i % 2 == 0 else sell(f"o{i}", 1.0), T0 + i * MIN)
    assert b.fill_count == 200


def test_daily_loss_blocks_entries_allows_reductions_and_resets_next_day() -> None:
    b = make_broker(taker_fee_bps=0.0, risk={"max_daily_loss_pct": 5, "breaker_drawdown_pct": 50})
    b.on_candle(flat(0, 1000.0))
    b.submit(buy("a", 10.0), T0)
    b.on_candle(flat(1, 940.0))  # -600 = 6 % of 10 000
    b.drain()
    assert b.entries_blocked() == "daily_loss"
    b.submit(buy("b", 1.0), T0 + MIN)
    b.submit(sell("c", 5.0), T0 + MIN)
    assert [(e["client_id"], e["status"], e["reason"]) for e in of_kind(b.drain()[0], "order")] == [
        ("b", "rejected", "daily_loss"),
        ("c", "accepted", ""),
    ]
    b.on_candle(flat(1440, 940.0))  # next UTC day: the day's start equity resets
    b.submit(buy("d", 1.0), T0 + DAY)
    assert of_kind(b.drain()[0], "order")[0]["status"] == "accepted"


def test_max_notional_and_max_leverage() -> None:
    b = make_broker(risk={"max_position_notional": 1000.0})
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 11.0), T0)
    assert of_kind(b.drain()[0], "order")[0]["reason"] == "max_notional"
    b = make_broker(risk={"max_leverage": 2.0})
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 250.0), T0)
    b.submit(buy("b", 150.0), T0)
    orders = of_kind(b.drain()[0], "order")
    assert (orders[0]["status"], orders[0]["reason"]) == ("rejected", "max_leverage")
    assert orders[1]["status"] == "accepted"


def test_reversal_clipped_to_close_when_entries_blocked() -> None:
    b = _long(make_broker())
    b.breaker_active = True
    b.submit(sell("r", 3.0), T0)
    events, fills = b.drain()
    (o,) = of_kind(events, "order")
    assert o["status"] == "accepted" and o["qty"] == 1.0 and o["reason"].startswith("clipped to close")
    assert [f.qty for f in fills] == [1.0] and b.position is None


def test_duplicate_client_id_rejected_never_filled_twice_even_after_reload() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0), T0)
    b.submit(buy("a", 1.0), T0)
    events, fills = b.drain()
    assert [e["status"] for e in of_kind(events, "order")] == ["accepted", "duplicate"]
    assert len(fills) == 1
    # a restart: a new broker from the saved state and ids
    b2 = make_broker()
    b2.load_state(b.state(), set(b.processed_ids))
    b2.submit(buy("a", 1.0), T0 + MIN)
    events, fills = b2.drain()
    assert of_kind(events, "order")[0]["status"] == "duplicate" and not fills
    # rejected ids count as processed too
    b2.submit(buy("x", 1.0, stop=200.0), T0 + MIN)
    b2.submit(buy("x", 1.0), T0 + MIN)
    assert [e["status"] for e in of_kind(b2.drain()[0], "order")] == ["rejected", "duplicate"]


def test_netting_reduce_then_reverse_splits_fee_and_closes_trade() -> None:
    b = _long(make_broker())
    b.on_candle(flat(1, 110.0))
    b.submit(sell("r1", 0.4), T0 + MIN)
    _, (f,) = b.drain()
    assert f.reason == "exit" and b.position_qty == pytest.approx(0.6)
    assert b.realized_pnl == pytest.approx(4.0)
    b.on_candle(flat(2, 120.0))
    b.submit(sell("r2", 1.6), T0 + 2 * MIN)
    events, (f,) = b.drain()
    assert f.reason == "reverse"
    (t,) = of_kind(events, "trade_closed")
    fee_close = 1.6 * 120 * TAKER * 0.6 / 1.6
    assert t["pnl"] == pytest.approx(16.0) and t["qty"] == 1.0
    assert t["fees"] == pytest.approx(100 * TAKER + 0.4 * 110 * TAKER + fee_close)
    assert t["exit_price"] == pytest.approx((0.4 * 110 + 0.6 * 120) / 1.0)
    assert b.position_qty == pytest.approx(-1.0) and b.position.entry_price == 120.0
    assert b.position.fees == pytest.approx(1.6 * 120 * TAKER - fee_close)


def test_reduce_only_without_position_rejected_and_oversize_clipped() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.submit(sell("a", 1.0, reduce_only=True), T0)
    assert of_kind(b.drain()[0], "order")[0]["reason"] == "reduce_only_without_position"
    b.submit(buy("b", 1.0), T0)
    b.submit(sell("c", 2.0, reduce_only=True), T0)
    _, fills = b.drain()
    assert [f.qty for f in fills] == [1.0, 1.0] and b.position is None


def test_brackets_on_the_wrong_side_and_min_qty_rejected() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0, stop=101.0), T0)
    b.submit(sell("b", 1.0, target=101.0), T0)
    b.submit(buy("c", 0.00001), T0)
    b.submit(buy("d", 0.01), T0)  # 1 USDT < min notional 5
    reasons = [e["reason"] for e in of_kind(b.drain()[0], "order")]
    assert reasons == ["stop_on_wrong_side", "target_on_wrong_side", "min_qty", "min_notional"]


def test_cancel_intent() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0, price=90.0), T0)
    b.submit(CancelIntent("a", reason="pending_trigger"), T0)
    b.submit(CancelIntent("zzz"), T0)
    events, _ = b.drain()
    assert of_kind(events, "order_cancelled") == [{"client_id": "a", "reason": "pending_trigger"}]
    assert not b.orders


def test_limit_entry_stopped_in_the_same_candle_when_it_reached_the_stop() -> None:
    b = make_broker()
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0, price=95.0, stop=90.0, target=120.0), T0)
    b.on_candle(candle(1, 96, 97, 89, 92))
    _, fills = b.drain()
    assert [(f.price, f.reason) for f in fills] == [(95.0, "entry"), (90.0, "stop")]


def test_breaker_trips_on_drawdown_cancels_entries_and_resets_next_utc_day() -> None:
    b = make_broker(taker_fee_bps=0.0, risk={"breaker_drawdown_pct": 5, "max_daily_loss_pct": 50})
    b.on_candle(flat(0, 1000.0))
    b.submit(buy("a", 10.0), T0)
    b.submit(buy("w", 1.0, price=500.0), T0)
    b.on_candle(flat(1, 940.0))
    b.check_breaker(T0 + MIN)
    events, _ = b.drain()
    (trip,) = of_kind(events, "breaker_trip")
    assert (
        trip["reason"] == "drawdown" and trip["value"] == pytest.approx(6.0) and trip["until_ts"] == T0 + DAY
    )
    assert of_kind(events, "order_cancelled") == [{"client_id": "w", "reason": "breaker"}]
    b.on_candle(flat(2, 1000.0))  # recovering does not reset it
    b.check_breaker(T0 + 2 * MIN)
    b.submit(buy("b", 1.0), T0 + 2 * MIN)
    assert of_kind(b.drain()[0], "order")[0]["reason"] == "breaker"
    b.on_candle(flat(1439, 1000.0))
    assert b.breaker_active
    b.on_candle(flat(1440, 1000.0))
    assert kinds(b.drain()[0]) == ["breaker_reset"] and not b.breaker_active
    b.submit(buy("c", 1.0), T0 + DAY)
    assert of_kind(b.drain()[0], "order")[0]["status"] == "accepted"


def test_breaker_trips_after_consecutive_losing_trades() -> None:
    b = make_broker(risk={"breaker_consecutive_losses": 3})
    b.on_candle(flat(0, 100.0))
    for k in range(3):
        b.submit(buy(f"b{k}", 1.0), T0)
        b.submit(sell(f"s{k}", 1.0), T0)  # loses the fees
        b.check_breaker(T0)
    events, _ = b.drain()
    assert len(of_kind(events, "trade_closed")) == 3
    (trip,) = of_kind(events, "breaker_trip")
    assert trip["reason"] == "consecutive_losses" and trip["value"] == 3.0
    assert b.entries_blocked() == "breaker"
