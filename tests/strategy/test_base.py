"""The strategy base: order helpers, block reporting, error isolation, state
(round trip, all or nothing, refusal of a differently shaped state) and the
checks on what a subclass declares."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from pydantic import Field

from laptop_agents.domain.contracts import AccountView, StrategyOutput
from laptop_agents.domain.events import FillEvent
from laptop_agents.domain.models import CancelIntent, Candle, OrderIntent, OrderType, Side
from laptop_agents.domain.symbols import instrument_for
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.strategy.base import BaseStrategy, Parameters, feed, id_prefix
from laptop_agents.strategy.indicators import ATR, EMA, SMA, RollingMax
from laptop_agents.strategy.sizing import floor_to_step, position_size
from tests.strategy.helpers import closes_to_candles, flat
from tests.strategy.test_state import structure
from tests.strategy.test_supervisor import TinyAccount

LIN = instrument_for("BTCUSDT")


class P(Parameters):
    period: int = Field(5, ge=1)
    hi_period: int = Field(4, ge=1)


class Scripted(BaseStrategy[P]):
    """Runs ``self.script(self, candle, account)`` as its decision; indicators
    of every input shape, a state field changed by observe()."""

    Params = P
    state_fields = {"seen_up": 0, "notes": ()}

    def __init__(self, *args: Any, script: Any = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.script = script

    def indicators(self, p: P) -> dict[str, Any]:
        return {"ema": EMA(p.period), "atr": ATR(3), "hi": feed(RollingMax(p.hi_period), "high")}

    def observe(self, candle: Candle) -> None:
        if candle.close > candle.open:
            self.seen_up += 1

    def decide(self, candle: Candle, account: AccountView) -> None:
        if self.script is not None:
            self.script(self, candle, account)


def make(script: Any = None, **params: Any) -> Scripted:
    return Scripted(P(**params), LIN, script=script)


def candles(n: int, start: float = 60_000.0, step: float = 50.0) -> list[Candle]:
    return closes_to_candles([start + i * step for i in range(n)], wick=20.0)


def test_indicators_are_fed_their_fields_and_observe_runs_in_warmup_too() -> None:
    s, ref_ema, ref_atr, ref_hi = make(), EMA(5), ATR(3), RollingMax(4)
    for i, c in enumerate(candles(12)):
        if i < 6:
            s.warmup(c)
        else:
            assert s.on_candle(c, flat()) == StrategyOutput([], [])
        ref_ema.update(c.close)
        ref_atr.update(c.high, c.low, c.close)
        ref_hi.update(c.high)
    assert (s.ema.value, s.atr.value, s.hi.value) == (ref_ema.value, ref_atr.value, ref_hi.value)
    assert s.seen_up == 11 and s.bar == 12  # the first candle opens at its close


def test_buy_sizes_by_the_stop_rounds_prices_and_journals_the_plan() -> None:
    def go(s: Scripted, c: Candle, a: AccountView) -> None:
        assert s.buy(stop=c.close - 123.456, target_r=2.0, reason="why") == "entered"

    s = make(go)
    c = candles(1)[0]
    out = s.on_candle(c, flat())
    [it] = out.intents
    assert isinstance(it, OrderIntent)
    stop = round(c.close - 123.5, 1)
    size, _ = position_size(equity=10_000.0, risk_pct=1.0, size_mult=1.0, entry=c.close, stop=stop, instrument=LIN,
                            max_notional=200_000.0, max_leverage=20.0)  # fmt: skip
    assert (it.client_id, it.side, it.type, it.qty, it.stop, it.target, it.reason) == (
        f"Scripted-{c.ts}-0", Side.BUY, OrderType.MARKET, size, stop, round(c.close + 2 * (c.close - stop), 1),
        "Scripted")  # fmt: skip
    dec, journal = out.events
    assert dec.kind == "decision" and dec.to_dict()["action"] == "enter" and dec.to_dict()["reason"] == "why"
    assert set(dec.to_dict()) >= {"setup", "entry", "ema", "atr", "hi", "qty", "size", "client_id", "stop", "target"}
    assert journal.kind == "journal" and journal.to_dict()["plan_id"] == it.client_id
    # The journal follows the plan: its fill gives a journal line.
    fill = FillEvent(c.ts, it.client_id, Side.BUY, it.qty, c.close, 0.0, "taker", "entry")
    assert [e.to_dict()["tags"] for e in s.on_broker_event(fill)] == [["filled", "Scripted"]]


def test_sell_reverses_a_long_with_one_netting_order_and_explicit_qty_limit_and_two_orders() -> None:
    def go(s: Scripted, c: Candle, a: AccountView) -> None:
        assert s.sell(stop_bps=100.0, target=c.close - 500.0) == "entered"
        assert s.buy(qty=0.01234, limit=c.close - 100.0, attach_stop=False, stop_bps=50.0, setup="dip") == "entered"

    c = candles(1)[0]
    out = make(go).on_candle(c, AccountView(ts=c.ts, equity=10_000.0, position_qty=0.5))
    rev, lim = out.intents
    assert isinstance(rev, OrderIntent) and isinstance(lim, OrderIntent)
    assert rev.side is Side.SELL and rev.qty > 0.5 and rev.reason == "Scripted_reverse"
    assert rev.target == c.close - 500.0 and rev.client_id.endswith("-0")
    assert (lim.type, lim.price, lim.qty, lim.stop, lim.reason) == (OrderType.LIMIT, c.close - 100.0, 0.0123,
                                                                   None, "dip")  # fmt: skip
    assert lim.client_id.endswith("-1")


def test_close_and_cancel() -> None:
    def go(s: Scripted, c: Candle, a: AccountView) -> None:
        assert s.close(reason="done")
        s.cancel("x-1-0", reason="stale")

    c = candles(1)[0]
    out = make(go).on_candle(c, AccountView(ts=c.ts, equity=10_000.0, position_qty=-0.25, working_orders=("x-1-0",)))
    close, cancel = out.intents
    assert isinstance(close, OrderIntent) and close.reduce_only and close.side is Side.BUY and close.qty == 0.25
    assert cancel == CancelIntent("x-1-0", "stale")
    assert [(e.to_dict()["action"], e.to_dict()["reason"]) for e in out.events] == [("exit", "done"), ("cancel", "stale")]
    assert not make(lambda s, c, a: s.close()).on_candle(c, flat()).intents  # flat: nothing to close


def test_entries_blocked_is_reported_once_until_an_entry_goes_through() -> None:
    results: list[str] = []
    s = make(lambda s, c, a: results.append(s.buy(stop_bps=100.0)))
    blocked = AccountView(ts=0, equity=10_000.0, entries_blocked=True)
    outs = [s.on_candle(c, blocked) for c in candles(4)]
    assert results == ["blocked"] * 4
    assert [len(o.events) for o in outs] == [1, 0, 0, 0] and not any(o.intents for o in outs)
    assert outs[0].events[0].to_dict()["reason"] == "entries_blocked"
    # A short position while blocked: the buy only closes it (reduce-only).
    short = AccountView(ts=0, equity=10_000.0, position_qty=-0.3, entries_blocked=True)
    out = s.on_candle(candles(5)[4], short)
    assert results[-1] == "closed" and [i.reduce_only for i in out.intents] == [True]  # type: ignore[union-attr]
    s.on_candle(candles(6)[5], flat())  # the block ended: an entry goes through ...
    s.on_candle(candles(7)[6], blocked)  # ... so a new block is reported again
    assert results[-2:] == ["entered", "blocked"]


def test_a_size_that_cannot_be_made_is_refused_and_still_closes_the_opposite_position() -> None:
    results: list[str] = []
    s = make(lambda s, c, a: results.append(s.buy(stop_bps=100.0)))
    out = s.on_candle(candles(1)[0], AccountView(ts=0, equity=0.01, position_qty=-0.3))
    assert results == ["refused"]
    assert [(e.to_dict()["action"], e.to_dict()["reason"]) for e in out.events] == [("block", "size_below_min_qty"),
                                                                          ("exit", "signal")]  # fmt: skip
    assert [(i.qty, i.reduce_only) for i in out.intents] == [(0.3, True)]  # type: ignore[union-attr]


def test_an_exception_in_decide_observe_or_an_indicator_is_an_agent_error_and_sends_nothing() -> None:
    def boom(s: Scripted, c: Candle, a: AccountView) -> None:
        s.buy(stop_bps=100.0)
        raise ZeroDivisionError("bad math")

    s = make(boom)
    out = s.on_candle(candles(1)[0], flat())
    assert out.intents == [] and [e.kind for e in out.events] == ["agent_error"]
    assert (out.events[0].agent, out.events[0].error) == ("Scripted", "ZeroDivisionError: bad math")
    s.script = None
    assert s.on_candle(candles(2)[1], flat()) == StrategyOutput([], [])  # the next candle is normal

    class BadObserve(Scripted):
        def observe(self, candle: Candle) -> None:
            raise KeyError("k")

    out = BadObserve(P(), LIN).on_candle(candles(1)[0], flat())
    assert [e.to_dict()["error"] for e in out.events] == ["KeyError: 'k'"]


def test_order_helpers_outside_decide_are_refused() -> None:
    s = make()
    with pytest.raises(RuntimeError, match="inside decide"):
        s.buy(stop_bps=100.0)
    out = make(lambda s, c, a: s.buy()).on_candle(candles(1)[0], flat())
    assert "needs stop, stop_bps or qty" in out.events[0].to_dict()["error"]


def _long_run(s: Scripted, cs: list[Candle], acct: TinyAccount) -> list[str]:
    return [repr(e) for c in cs for e in acct.step(c, s)]


def trader(s: Scripted, c: Candle, a: AccountView) -> None:
    """Trades often enough to fill the journal and the state fields."""
    if not a.position_qty and not a.working_orders and s.atr.value is not None and s.bar % 7 == 0:
        d = 1 if c.close > (s.ema.value or 0.0) else -1
        s.enter(d, stop=c.close - d * 2 * s.atr.value, target_r=1.0)
        s.notes = (*s.notes[-2:], s.bar)


def test_state_round_trip_is_complete_and_continues_identically_also_through_json() -> None:
    cs = list(SyntheticMarket(seed=3, origin_ts=1_700_000_000_000).candles(0, 1_500))
    s, acct = make(trader), TinyAccount()
    _long_run(s, cs[:1_000], acct)
    state = s.snapshot_state()
    assert state[0] == "Scripted/1" and s.notes and s.journal_coach.dump() != (None, None, None)
    for encoded in (pickle.loads(pickle.dumps(state)), json.loads(json.dumps(state))):
        fresh = make(trader)
        fresh.restore_state(encoded)
        if not isinstance(encoded, list):
            assert structure(fresh) == structure(s)
        acct_a, acct_b = pickle.loads(pickle.dumps(acct)), pickle.loads(pickle.dumps(acct))
        fresh.notes = tuple(fresh.notes)  # JSON has no tuples: the one field this strategy keeps as one
        assert _long_run(fresh, cs[1_000:], acct_a) == _long_run(pickle.loads(pickle.dumps(s)), cs[1_000:], acct_b)


@pytest.mark.parametrize("other", [{"period": 6}, {"hi_period": 9}])
def test_a_state_of_other_periods_is_refused_and_the_strategy_keeps_its_own(other: dict[str, int]) -> None:
    cs = candles(40)
    source, target = make(), make(**other)
    for c in cs:
        source.warmup(c)
    for c in cs[:10]:
        target.warmup(c)
    before = structure(target)
    with pytest.raises(ValueError, match="differently shaped configuration"):
        target.restore_state(source.snapshot_state())
    assert structure(target) == before


def test_a_state_of_another_layout_or_version_is_refused() -> None:
    s = make()
    for c in candles(10):
        s.warmup(c)
    state = s.snapshot_state()

    class MoreState(Scripted):
        state_fields = {"seen_up": 0, "notes": (), "extra": 1.5}

    class Bumped(Scripted):
        state_version = 2

    class Renamed(Scripted):
        kind = "other"

    assert Bumped.state_tag == "Bumped/2" and Renamed.state_tag == "other/1" and MoreState.state_tag == "MoreState/1"
    for cls in (Bumped, Renamed):
        with pytest.raises(ValueError, match=r"is 'Scripted/1', not a .* state: .*differently shaped"):
            cls(P(), LIN).restore_state(state)
    more = MoreState(P(), LIN)
    with pytest.raises(ValueError, match="has 8 values, this strategy has 9"):
        more.restore_state(("MoreState/1", *state[1:]))
    with pytest.raises(ValueError, match="differently shaped"):
        make().restore_state("Scripted/1")  # type: ignore[arg-type]


def test_a_state_an_indicator_cannot_load_is_a_value_error_and_changes_nothing() -> None:
    s = make()
    for c in candles(10):
        s.warmup(c)
    state = list(s.snapshot_state())
    state[3] = 42  # the RollingMax state: not a tuple
    before = structure(s)
    with pytest.raises(ValueError, match=r"does not load \(TypeError: .*differently shaped configuration"):
        s.restore_state(tuple(state))
    assert structure(s) == before


class Plain(BaseStrategy[P]):
    Params = P

    def decide(self, candle: Candle, account: AccountView) -> None:
        pass


@pytest.mark.parametrize(
    ("indicators", "state_fields", "message"),
    [
        ({"name": SMA(3)}, {}, "clashes with a BaseStrategy attribute"),
        ({"x": SMA(3)}, {"x": 0}, "clashes with a BaseStrategy attribute or a state field"),
        ({"bad name": SMA(3)}, {}, "is not a Python identifier"),
        ({"x": object()}, {}, r"needs update\(\), value, dump\(\) and load\(\)"),
        ({"x": feed(ATR(3), "high")}, {}, r"update\(\) takes 3 values, feed\(\) gives 1"),
        ({}, {"buy": 1}, "clashes with a BaseStrategy attribute"),
    ],
)
def test_bad_declarations_are_one_clear_error(indicators: dict[str, Any], state_fields: dict[str, Any],
                                              message: str) -> None:  # fmt: skip
    cls = type("Bad", (Plain,), {"indicators": lambda self, p: indicators, "state_fields": state_fields})
    with pytest.raises(ValueError, match=message):
        cls(P(), LIN)
    with pytest.raises(ValueError, match="fields must be some of"):
        feed(SMA(3), "hight")


def test_an_indicator_with_another_number_of_inputs_needs_feed() -> None:
    class Two:
        value = None

        def update(self, a: float, b: float) -> None: ...
        def dump(self) -> tuple[()]: return ()
        def load(self, state: Any) -> None: ...

    cls = type("Bad", (Plain,), {"indicators": lambda self, p: {"two": Two()}})
    with pytest.raises(ValueError, match=r"takes 2 values; say which candle fields with feed"):
        cls(P(), LIN)
    ok = type("Ok", (Plain,), {"indicators": lambda self, p: {"two": feed(Two(), "open", "volume")}})(P(), LIN)
    ok.warmup(candles(1)[0])


def test_defaults_of_a_plain_subclass() -> None:
    s = Plain(P(), LIN, risk_pct=0.5)
    assert (s.name, s.kind, s.id_prefix, s.risk_pct, s.state_tag) == ("Plain", "Plain", "Plain", 0.5, "Plain/1")
    assert Plain(P(), LIN).risk_pct == 1.0  # no risk section in its parameters
    assert s.status() == {"strategy": "Plain", "bar": 0}
    assert id_prefix("dir/my_strat.py:MyStrategyClass") == "MyStrategyCl" and id_prefix("sma_cross") == "smacross"


def test_floor_of_a_close_qty() -> None:
    """close() sends the position floored to the step (a reduce-only order of
    float noise would be refused)."""
    c = candles(1)[0]
    out = make(lambda s, c, a: s.close()).on_candle(c, AccountView(ts=0, equity=1.0, position_qty=0.30000000000000004))
    assert [i.qty for i in out.intents] == [floor_to_step(0.30000000000000004, LIN.qty_step)]  # type: ignore[union-attr]
