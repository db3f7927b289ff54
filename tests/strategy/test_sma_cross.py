"""sma_cross: always in the market, reverses on a cross with one netting order."""

from __future__ import annotations

from typing import Any

from laptop_agents.domain.contracts import AccountView, StrategyOutput
from laptop_agents.domain.events import Decision
from laptop_agents.domain.models import Candle, OrderIntent, OrderType, Side
from laptop_agents.domain.symbols import instrument_for
from laptop_agents.strategy import SmaCross
from laptop_agents.strategy.params import SmaCrossParams
from laptop_agents.strategy.sizing import floor_to_step
from tests.strategy.helpers import closes_to_candles, flat, ts

LIN = instrument_for("BTCUSDT")


def make(**kw: Any) -> SmaCross:
    return SmaCross(SmaCrossParams(fast=2, slow=4, **kw), LIN)


def series(*legs: tuple[int, float], start: float = 60_000.0) -> list[Candle]:
    closes, px = [], start
    for n, step in legs:
        for _ in range(n):
            px += step
            closes.append(px)
    return closes_to_candles(closes, wick=20.0)


def only_intent(out: StrategyOutput) -> OrderIntent:
    [it] = out.intents
    assert isinstance(it, OrderIntent)
    return it


def test_enters_as_soon_as_both_smas_are_ready_sized_by_stop_bps() -> None:
    s = make()
    outs = [s.on_candle(c, flat()) for c in series((5, 100.0))]
    assert [len(o.intents) for o in outs] == [0, 0, 0, 1, 0]  # flat account: no repeat without a cross
    it = only_intent(outs[3])
    assert (it.side, it.type, it.stop, it.target) == (Side.BUY, OrderType.MARKET, None, None)
    price = 60_400.0
    # 1 % of 10,000 over 100 bps of the price
    assert it.qty == floor_to_step(100.0 / (price * 0.01), 0.0001)
    assert it.client_id == f"smacross-{ts(3)}-0"


def test_reverses_with_one_order_of_position_plus_new_size() -> None:
    s = make()
    candles = series((6, 100.0), (6, -150.0))
    long_acct = AccountView(ts=0, equity=10_000.0, position_qty=0.15, entry_price=60_400.0)
    reversal = None
    for c in candles[:6]:
        s.on_candle(c, long_acct)
    for c in candles[6:]:
        out = s.on_candle(c, long_acct)
        if out.intents:
            reversal = (c, out)
            break
    assert reversal is not None
    c, out = reversal
    it = only_intent(out)
    assert it.side is Side.SELL and it.type is OrderType.MARKET
    new_size = floor_to_step(100.0 / (c.close * 0.01), 0.0001)
    assert it.qty == round(0.15 + new_size, 12)
    [dec, journal] = out.events
    assert isinstance(dec, Decision) and dec.reason == "cross" and dec.context["size"] == new_size
    assert journal.kind == "journal"


def test_holds_while_aligned_and_waits_for_a_cross_after_a_stop_out() -> None:
    s = make()
    candles = series((12, 100.0))
    for c in candles[:4]:
        s.on_candle(c, flat())
    long_acct = AccountView(ts=0, equity=10_000.0, position_qty=0.16)
    assert all(not s.on_candle(c, long_acct).intents for c in candles[4:8])
    # stopped out: flat while the fast SMA is still above: no re-entry until a cross
    assert all(not s.on_candle(c, flat()).intents for c in candles[8:12])


def test_stop_and_target_attached_only_when_asked() -> None:
    s = make(stop_bps=50.0, attach_stop=True, tp_r_mult=2.0)
    it = only_intent([s.on_candle(c, flat()) for c in series((4, 100.0))][3])
    assert it.stop == 60_400.0 - 302.0 and it.target == 60_400.0 + 604.0
    assert it.qty == floor_to_step(100.0 / 302.0, 0.0001)


def test_entries_blocked_only_closes_on_a_cross_and_reports_once() -> None:
    s = make()
    candles = series((6, 100.0), (6, -150.0))
    account = AccountView(ts=0, equity=10_000.0, position_qty=0.15, entries_blocked=True)
    blocked_flat = AccountView(ts=0, equity=10_000.0, entries_blocked=True)
    outs = []
    for c in candles:
        out = s.on_candle(c, account)
        outs.append(out)
        if out.intents:
            account = blocked_flat  # the broker closed the position
    closing = [o for o in outs if o.intents]
    assert len(closing) == 1
    it = only_intent(closing[0])
    assert it.reduce_only and it.qty == 0.15 and it.side is Side.SELL
    # Flat and still blocked: no entry, and the block is reported once, not per candle.
    after = outs[outs.index(closing[0]) + 1 :]
    assert after and not any(o.intents for o in after)
    assert sum(1 for o in outs for e in o.events if isinstance(e, Decision) and e.reason == "entries_blocked") == 1


def test_no_order_while_one_is_working_and_warmup_is_silent() -> None:
    s = make()
    for c in series((4, 100.0)):
        s.warmup(c)
    working = AccountView(ts=0, equity=10_000.0, working_orders=("smacross-1-0",))
    assert not s.on_candle(closes_to_candles([60_500.0], start=4)[0], working).intents
    assert s.on_candle(closes_to_candles([60_600.0], start=5)[0], flat()).intents
