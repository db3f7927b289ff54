"""Regression tests for defects found in review, one per defect."""

from __future__ import annotations

import pytest

from tests.broker.helpers import T0, buy, candle, flat, make_broker, of_kind, sell


def test_limit_entry_on_a_gap_past_its_stop_exits_at_the_open_not_at_the_stop() -> None:
    # The bar opens below both the limit (fills at the open, 85) and the stop
    # (90): the stop is already through, so the exit is at the open too.
    # Exiting at the stop would book +5 for a trade that never saw 90.
    b = make_broker(maker_fee_bps=0.0, taker_fee_bps=0.0)
    b.on_candle(flat(0, 100.0))
    b.submit(buy("a", 1.0, price=95.0, stop=90.0, target=120.0), T0)
    b.on_candle(candle(1, 85, 86, 84, 85))
    events, fills = b.drain()
    assert [(f.price, f.reason) for f in fills] == [(85.0, "entry"), (85.0, "stop")]
    (t,) = of_kind(events, "trade_closed")
    assert t["pnl"] == pytest.approx(0.0)


def test_short_limit_entry_on_a_gap_past_its_stop_exits_at_the_open_with_slippage() -> None:
    b = make_broker(maker_fee_bps=0.0, taker_fee_bps=0.0, slippage_bps=10.0)
    b.on_candle(flat(0, 100.0))
    b.submit(sell("s", 1.0, price=105.0, stop=110.0), T0)
    b.on_candle(candle(1, 115, 116, 114, 115))
    events, fills = b.drain()
    assert [f.reason for f in fills] == ["entry", "stop"]
    assert fills[0].price == 115.0
    assert fills[1].price == pytest.approx(115.0 * 1.001)
    (t,) = of_kind(events, "trade_closed")
    assert t["pnl"] < 0
