"""Sizing at its edges, for linear and inverse contracts."""

from __future__ import annotations

import math

import pytest

from laptop_agents.domain.symbols import instrument_for
from laptop_agents.strategy.sizing import (
    BELOW_MIN_NOTIONAL,
    BELOW_MIN_QTY,
    NO_EQUITY,
    ZERO_STOP,
    floor_to_step,
    position_size,
    round_away,
    round_to_tick,
)

LIN = instrument_for("BTCUSDT")  # qty step 0.0001 BTC, min notional 5 USDT
INV = instrument_for("BTCUSD")  # 1 USD contracts, qty step 1


def size(**kw: float) -> tuple[float, str]:
    args = {
        "equity": 10_000.0,
        "risk_pct": 1.0,
        "size_mult": 1.0,
        "entry": 60_000.0,
        "stop": 59_400.0,
        "max_notional": 200_000.0,
        "max_leverage": 20.0,
    }
    args.update(kw)
    inst = kw.pop("instrument", LIN) if "instrument" in kw else LIN
    args.pop("instrument", None)
    return position_size(instrument=inst, **args)  # type: ignore[arg-type]


def test_risk_pct_is_a_percent() -> None:
    # 1 % of 10,000 = 100 USDT over a 600 USDT stop -> 0.16666 BTC, floored to 0.1666
    qty, why = size()
    assert (qty, why) == (0.1666, "")
    assert qty * 600 <= 100.0  # never risks more than asked after flooring


def test_size_mult_halves() -> None:
    assert size(size_mult=0.5)[0] == 0.0833


def test_zero_stop_distance_is_rejected() -> None:
    assert size(stop=60_000.0) == (0.0, ZERO_STOP)


def test_tiny_stop_is_capped_by_leverage_and_notional() -> None:
    # 1 USDT stop would mean 100 BTC (6M USDT): leverage 20x caps at 200,000 / 60,000
    qty, _ = size(stop=59_999.0)
    assert qty == floor_to_step(200_000 / 60_000, 0.0001) == 3.3333
    qty, _ = size(stop=59_999.0, max_notional=50_000.0)
    assert qty == 0.8333
    qty, _ = size(stop=59_999.0, equity=1_000.0)  # leverage: 1,000 * 20 / 60,000
    assert qty == 0.3333


def test_huge_atr_gives_a_small_size_or_a_reject() -> None:
    qty, why = size(stop=30_000.0)  # 30,000 USDT stop: 100 / 30,000 = 0.00333 BTC
    assert (qty, why) == (0.0033, "")
    assert size(stop=1.0, equity=200.0) == (0.0, BELOW_MIN_QTY)  # 2 USDT / 59,999 -> below one step


def test_tiny_equity_is_rejected_below_min_notional() -> None:
    # 1 % of 50 USDT = 0.5 over a 60 USDT stop = 0.00833 BTC -> 0.0083 = 498 USDT: fine
    assert size(equity=50.0, stop=59_940.0) == (0.0083, "")
    # 0.5 USDT over a 200 stop at a price of 1,000: 0.0025 BTC = 2.5 USDT < 5 USDT minimum
    assert size(equity=50.0, entry=1_000.0, stop=800.0) == (0.0, BELOW_MIN_NOTIONAL)
    assert size(equity=0.0) == (0.0, NO_EQUITY)
    assert size(equity=-5.0) == (0.0, NO_EQUITY)


def test_inverse_contracts_are_sized_in_usd_contracts() -> None:
    # Equity 60,000 USD = 1 BTC at 60,000; risk 1 % = 0.01 BTC; one 1-USD contract
    # loses |1/60000 - 1/59400| BTC at the stop.
    per_contract = abs(1 / 60_000 - 1 / 59_400)
    qty, why = size(instrument=INV, equity=60_000.0)  # type: ignore[arg-type]
    assert why == ""
    assert qty == math.floor(0.01 / per_contract + 1e-9) == 59_400  # 59,400 USD: 1x for a 1 % stop
    assert qty * per_contract <= 0.01 + 1e-15  # never more than 1 % of the BTC balance
    # Max notional: 200,000 contracts of 1 USD
    qty, _ = size(instrument=INV, equity=60_000.0, stop=59_999.9)  # type: ignore[arg-type]
    assert qty == 200_000
    # Leverage: 6,000 USD * 20x = 120,000 USD of contracts
    qty, _ = size(instrument=INV, equity=6_000.0, stop=59_999.9)  # type: ignore[arg-type]
    assert qty == 120_000
    assert size(instrument=INV, equity=0.001)[1] == BELOW_MIN_QTY  # type: ignore[arg-type]
    assert size(instrument=INV, stop=60_000.0)[1] == ZERO_STOP  # type: ignore[arg-type]


def test_inverse_and_linear_risk_the_same_usd_for_a_small_stop() -> None:
    lin, _ = size(equity=10_000.0, stop=59_940.0)  # 60 USD stop: 100 / 60 = 1.6666 BTC
    inv, _ = size(instrument=INV, equity=10_000.0, stop=59_940.0)  # type: ignore[arg-type]
    # In USD at entry, the inverse position (contracts / entry BTC) is about the linear one.
    assert inv / 60_000.0 == pytest.approx(lin, rel=2e-3)


def test_rounding_helpers() -> None:
    assert floor_to_step(0.7, 0.1) == 0.7  # 0.7 / 0.1 = 6.9999999: float noise is not a lost step
    assert floor_to_step(0.16669, 0.0001) == 0.1666
    assert floor_to_step(5940.9, 1.0) == 5940
    assert round_to_tick(60_000.06, 0.1) == 60_000.1
    assert round_to_tick(60_000.24, 0.5) == 60_000.0
    assert repr(round_to_tick(0.1 + 0.2, 0.1)) == "0.3"
    assert round_away(60_000.01, 0.1, 1) == 60_000.1
    assert round_away(60_000.09, 0.1, -1) == 60_000.0
    assert round_away(0.7, 0.1, -1) == 0.7 and round_away(0.7, 0.1, 1) == 0.7  # on the tick: unchanged


@pytest.mark.parametrize("entry", [1_000.0, 20_000.0, 60_000.0, 150_000.0])
@pytest.mark.parametrize("stop_frac", [0.001, 0.01, 0.1])
def test_result_respects_every_cap(entry: float, stop_frac: float) -> None:
    for equity in (10.0, 1_000.0, 10_000.0, 1_000_000.0):
        qty, why = size(equity=equity, entry=entry, stop=entry * (1 - stop_frac), risk_pct=2.0)
        if why:
            continue
        assert qty * entry <= 200_000.0 + 1e-6
        assert qty * entry <= equity * 20 + 1e-6
        assert qty * entry * stop_frac <= equity * 0.02 + 1e-9
        assert qty * entry >= LIN.min_notional
        assert abs(qty / LIN.qty_step - round(qty / LIN.qty_step)) < 1e-6
