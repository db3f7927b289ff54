"""The fill model of protective exits, for long and short, linear and inverse:
a take-profit is a resting limit and needs the market to trade *through* it
(as limit entries do); a stop fills on a touch. A bar that opens beyond
either fills at the open."""

from __future__ import annotations

from typing import Any

import pytest

from laptop_agents.broker.paper import PaperBroker
from laptop_agents.domain.models import Candle, Fill
from tests.broker.helpers import MIN, T0, buy, make_broker, sell

# (symbol, entry price, quantity): a linear USDT contract and the inverse USD one.
CONTRACTS = [("BTCUSDT", 100.0, 1.0), ("BTCUSD", 20_000.0, 1000.0)]
CASES = [(sym, px, qty, side) for sym, px, qty in CONTRACTS for side in (1, -1)]
IDS = [f"{sym}-{'long' if side > 0 else 'short'}" for sym, _, _, side in CASES]
TARGET, STOP = 0.10, -0.05  # offsets from the entry in the position's favour


class Mirror:
    """Prices given as offsets in the position's favour (+0.1 = 10 % profit),
    turned into real prices for a long or a short, so one scenario tests both."""

    def __init__(self, px: float, side: int) -> None:
        self.px, self.side = px, side

    def __call__(self, offset: float) -> float:
        return self.px * (1.0 + self.side * offset)

    def bar(self, i: int, o: float, best: float, worst: float, c: float) -> Candle:
        """Candle ``i`` opening at ``o``, reaching ``best`` in our favour and ``worst`` against us."""
        hi, lo = sorted((self(best), self(worst)), reverse=True)
        return Candle(T0 + i * MIN, self(o), hi, lo, self(c), 1e6)


def _opened(sym: str, px: float, qty: float, side: int) -> tuple[PaperBroker, Mirror]:
    """A position entered at ``px`` with a stop 5 % and a target 10 % away."""
    m = Mirror(px, side)
    b = make_broker(sym)
    b.on_candle(m.bar(0, 0.0, 0.0, 0.0, 0.0))
    order: Any = buy if side > 0 else sell
    b.submit(order("P", qty, stop=m(STOP), target=m(TARGET)), T0)
    b.drain()
    assert b.position is not None and b.position.entry_price == px
    return b, m


def _exits(b: PaperBroker) -> list[Fill]:
    return [f for f in b.drain()[1] if f.reason != "entry"]


@pytest.mark.parametrize(("sym", "px", "qty", "side"), CASES, ids=IDS)
def test_target_touched_exactly_does_not_fill_traded_through_fills_at_target(
    sym: str, px: float, qty: float, side: int
) -> None:
    b, m = _opened(sym, px, qty, side)
    b.on_candle(m.bar(1, 0.01, TARGET, 0.0, 0.05))  # reaches the target, no further
    assert _exits(b) == [] and b.position is not None
    b.on_candle(m.bar(2, 0.05, TARGET + 0.01, 0.04, 0.06))
    (f,) = _exits(b)
    assert (f.price, f.reason, f.liquidity) == (m(TARGET), "target", "maker")
    assert b.position is None


@pytest.mark.parametrize(("sym", "px", "qty", "side"), CASES, ids=IDS)
def test_bar_opening_at_the_target_is_a_touch_opening_beyond_it_fills_at_the_open(
    sym: str, px: float, qty: float, side: int
) -> None:
    b, m = _opened(sym, px, qty, side)
    b.on_candle(m.bar(1, TARGET, TARGET, 0.02, 0.05))  # opens at the target and falls back
    assert _exits(b) == [] and b.position is not None
    b.on_candle(m.bar(2, 0.12, 0.13, 0.115, 0.12))  # a gap beyond the target: the better open
    (f,) = _exits(b)
    assert (f.price, f.reason, f.liquidity) == (m(0.12), "target", "maker")


@pytest.mark.parametrize(("sym", "px", "qty", "side"), CASES, ids=IDS)
def test_stop_fills_on_a_touch_and_wins_over_a_target_traded_through_in_the_same_bar(
    sym: str, px: float, qty: float, side: int
) -> None:
    b, m = _opened(sym, px, qty, side)
    b.on_candle(m.bar(1, 0.0, 0.02, STOP, -0.01))  # touches the stop exactly
    (f,) = _exits(b)
    assert (f.price, f.reason) == (m(STOP), "stop")
    b, m = _opened(sym, px, qty, side)
    b.on_candle(m.bar(1, 0.0, TARGET + 0.05, STOP - 0.01, 0.0))  # both: we cannot know the order
    (f,) = _exits(b)
    assert (f.price, f.reason) == (m(STOP), "stop")


@pytest.mark.parametrize(("sym", "px", "qty", "side"), CASES, ids=IDS)
def test_limit_entry_target_waits_for_the_next_bar_and_needs_a_trade_through(
    sym: str, px: float, qty: float, side: int
) -> None:
    m = Mirror(px, side)
    b = make_broker(sym)
    b.on_candle(m.bar(0, 0.02, 0.02, 0.02, 0.02))  # the market is 2 % above a buy (below a sell): it rests
    order: Any = buy if side > 0 else sell
    b.submit(order("L", qty, price=px, stop=m(STOP), target=m(TARGET)), T0)
    b.drain()
    assert "L" in b.orders
    # The limit trades through, and the same bar goes beyond the target: the
    # entry fills at the limit; the target waits (we cannot know the order).
    b.on_candle(m.bar(1, 0.02, TARGET + 0.02, -0.01, 0.05))
    _, fills = b.drain()
    assert [(f.price, f.reason) for f in fills] == [(px, "entry")]
    b.on_candle(m.bar(2, 0.05, TARGET, 0.04, 0.06))  # a touch in the next bar: no exit
    assert _exits(b) == [] and b.position is not None
    b.on_candle(m.bar(3, 0.06, TARGET + 0.001, 0.05, 0.07))
    (f,) = _exits(b)
    assert (f.price, f.reason) == (m(TARGET), "target")
