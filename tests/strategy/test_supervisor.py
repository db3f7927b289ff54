"""The Supervisor end to end on hand-made candle series: entries, cancels,
blocks, cooldown, isolation, determinism and snapshots."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import AccountView, Strategy, StrategyOutput
from laptop_agents.domain.events import (
    AgentError,
    Decision,
    Event,
    FillEvent,
    Journal,
    OrderEvent,
    TradeClosed,
)
from laptop_agents.domain.models import CancelIntent, Candle, FundingRate, OrderIntent, OrderType, Side
from laptop_agents.domain.symbols import instrument_for
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.strategy import Supervisor, build_strategy
from laptop_agents.strategy.agents import CvdDivergence, JournalCoach, SetupSignal
from laptop_agents.strategy.params import EngineParams, MarketParams, SupervisorParams, apply_overrides
from laptop_agents.strategy.sizing import floor_to_step, round_to_tick
from tests.strategy.helpers import bar, closes_to_candles, flat, ts

LIN = instrument_for("BTCUSDT")
OK_FUNDING = FundingRate(0, 0.0001)


def make(**over: Any) -> Supervisor:
    p = SupervisorParams(
        engine=EngineParams(pending_trigger_max_bars=3, derivatives_refresh_bars=1),
        market=MarketParams(ema_fast=3, ema_slow=5, atr_period=3),
    )
    if over:
        q = apply_overrides(p, over)
        assert isinstance(q, SupervisorParams)
        p = q
    sup = Supervisor(p, LIN, name="default")
    sup.on_funding(OK_FUNDING)
    return sup


def trend(n: int, step: float = 60.0, start: float = 60_000.0, first: int = 0) -> list[Candle]:
    return closes_to_candles([start + step * k for k in range(n)], wick=30.0, start=first)


def feed(sup: Strategy, candles: list[Candle], account: AccountView | None = None) -> list[StrategyOutput]:
    return [sup.on_candle(c, account or flat(t=c.ts)) for c in candles]


def fields(e: Event) -> dict[str, Any]:
    """An event's JSON fields (without ts and kind), as journaled."""
    return {k: v for k, v in e.to_dict().items() if k not in ("ts", "kind")}


def decisions(outs: list[StrategyOutput]) -> list[dict[str, Any]]:
    return [fields(e) for o in outs for e in o.events if e.kind == "decision"]


# -- entries ---------------------------------------------------------------------


def test_uptrend_pullback_gives_one_limit_buy_with_a_bracket() -> None:
    sup = make()
    outs = feed(sup, trend(5))
    assert all(not o.intents and not o.events for o in outs[:4])  # warming up: quiet
    [intent] = outs[4].intents
    assert isinstance(intent, OrderIntent)
    ema = sup.market_intake.ema_fast.value
    atr = sup.market_intake.atr.value
    assert ema is not None and atr is not None
    assert intent.client_id == f"default-{ts(4)}-0"
    assert (intent.side, intent.type, intent.price) == (Side.BUY, OrderType.LIMIT, round_to_tick(ema, 0.1))
    assert intent.stop == round_to_tick(intent.price - 1.5 * atr, 0.1)  # type: ignore[operator]
    assert intent.target == round_to_tick(intent.price + 2 * (intent.price - intent.stop), 0.1)  # type: ignore[operator]
    assert intent.trailing is True and intent.reason == "pullback_ribbon"
    dist = intent.price - intent.stop  # type: ignore[operator]
    assert intent.qty == floor_to_step(10_000 * 0.01 / dist, 0.0001)
    dec, journal = outs[4].events
    assert isinstance(dec, Decision) and dec.action == "enter" and dec.context["trend"] == "UP"
    assert dec.client_id == intent.client_id and dec.context["rr"] == pytest.approx(2.0, abs=1e-3)
    assert isinstance(journal, Journal) and journal.plan_id == intent.client_id
    json.dumps([e.to_dict() for e in outs[4].events])  # events are JSON-able


def test_downtrend_gives_a_limit_sell() -> None:
    sup = make()
    [intent] = feed(sup, trend(5, step=-60.0))[4].intents
    assert isinstance(intent, OrderIntent) and intent.side is Side.SELL
    assert intent.stop is not None and intent.target is not None and intent.price is not None
    assert intent.stop > intent.price > intent.target


def test_chop_is_quiet() -> None:
    sup = make()
    outs = feed(sup, closes_to_candles([60_000.0] * 40, wick=10.0))  # EMA3 == EMA5: CHOP, no sweep
    assert all(not o.intents and not o.events for o in outs)
    assert sup.market_intake.ready and sup.market_intake.trend == 0


def test_no_entry_while_a_position_or_a_working_order_exists() -> None:
    candles = trend(8)
    sup = make()
    feed(sup, candles[:5])
    in_pos = AccountView(ts=0, equity=10_000.0, position_qty=0.3, entry_price=60_000.0)
    assert all(not o.intents and not o.events for o in feed(sup, candles[5:], in_pos))
    sup = make()
    feed(sup, candles[:5])
    working = AccountView(ts=0, equity=10_000.0, working_orders=("someone-else",))
    assert all(not o.intents for o in feed(sup, candles[5:], working))


def test_half_size_when_funding_is_warm_or_missing() -> None:
    full = feed(make(), trend(5))[4].intents[0]
    warm = make()
    warm.on_funding(FundingRate(0, 0.0003))
    half = feed(warm, trend(5))[4].intents[0]
    missing = Supervisor(make().params, LIN)  # never told a funding rate
    unknown = feed(missing, trend(5))[4].intents[0]
    assert isinstance(full, OrderIntent) and isinstance(half, OrderIntent) and isinstance(unknown, OrderIntent)
    assert half.qty == unknown.qty == floor_to_step(full.qty / 2, 0.0001)
    assert fields(feed(make(), trend(5))[4].events[0])["size_mult"] == 1.0


# -- pending trigger ---------------------------------------------------------------


def test_unfilled_limit_is_cancelled_after_pending_trigger_max_bars() -> None:
    sup = make()
    candles = trend(10)
    [intent] = feed(sup, candles[:5])[4].intents
    working = AccountView(ts=0, equity=10_000.0, working_orders=(intent.client_id,))
    outs = feed(sup, candles[5:8], working)
    assert [o.intents for o in outs[:2]] == [[], []]
    assert outs[2].intents == [CancelIntent(intent.client_id, "pending_expired")]
    assert decisions(outs) == [{"action": "cancel", "reason": "pending_expired", "client_id": intent.client_id}]
    # The order is gone at the broker on the next candle: a new plan may start.
    nxt = feed(sup, candles[8:9])[0]
    assert len(nxt.intents) == 1 and nxt.intents[0].client_id == f"default-{ts(8)}-0"


def test_filled_limit_is_not_cancelled() -> None:
    sup = make()
    candles = trend(12)
    feed(sup, candles[:5])
    pos = AccountView(ts=0, equity=10_000.0, position_qty=0.5, entry_price=60_000.0)
    assert all(not o.intents for o in feed(sup, candles[5:12], pos))
    assert sup.pending_trigger.client_id is None


def test_funding_halt_cancels_the_pending_entry() -> None:
    sup = make()
    candles = trend(7)
    [intent] = feed(sup, candles[:5])[4].intents
    sup.on_funding(FundingRate(0, 0.002))
    out = sup.on_candle(candles[5], AccountView(ts=0, equity=10_000.0, working_orders=(intent.client_id,)))
    assert out.intents == [CancelIntent(intent.client_id, "funding_halt")]


# -- blocks, cooldown and the funding gates --------------------------------------------


def test_funding_halt_blocks_once_not_every_candle() -> None:
    sup = make()
    sup.on_funding(FundingRate(0, -0.0015))
    outs = feed(sup, trend(12))
    assert all(not o.intents for o in outs)
    blocks = decisions(outs)
    assert [b["reason"] for b in blocks] == ["funding_halt"]
    assert blocks[0]["action"] == "block" and blocks[0]["funding_gate"] == "HALT"


def test_funding_no_trade_then_five_bar_cooldown() -> None:
    sup = make()
    sup.on_funding(FundingRate(0, 0.0006))
    candles = trend(16)
    outs = feed(sup, candles[:5])
    assert decisions(outs) == [dict(decisions(outs)[0], action="block", reason="funding_no_trade")]
    sup.on_funding(FundingRate(0, 0.0001))  # funding is fine again (gate refreshes every bar here)
    outs = feed(sup, candles[5:11])
    assert [len(o.intents) for o in outs] == [0, 0, 0, 0, 0, 1]  # bars 6..10 cool down, bar 11 enters
    assert [d["action"] for d in decisions(outs)] == ["enter"]  # the persisting setup's cooldown is quiet


def test_cooldown_reports_a_new_setup_it_holds_back() -> None:
    sup = make()
    sup.on_funding(FundingRate(0, 0.0006))
    feed(sup, trend(5))  # long setup blocked by funding: cooldown starts
    sup.on_funding(FundingRate(0, 0.0001))
    down = trend(3, step=-300.0, start=60_240.0, first=5)  # the trend turns: a short setup appears
    outs = feed(sup, down)
    reasons = [d["reason"] for d in decisions(outs)]
    assert "cooldown" in reasons and all(not o.intents for o in outs)


def test_rr_min_rejects_and_cools_down() -> None:
    sup = make(**{"ribbon.tp_r_mult": 1.2})  # 1.2 R target < rr_min 1.5
    outs = feed(sup, trend(8))
    assert all(not o.intents for o in outs)
    [block] = decisions(outs)
    assert block["reason"] == "rr_below_min" and block["rr"] == pytest.approx(1.2, abs=1e-3)
    assert sup.execution_risk_sentinel.cooldown_until == 5 + 5 + 1


def test_entries_blocked_by_the_broker_is_respected_without_cooldown() -> None:
    sup = make()
    candles = trend(8)
    feed(sup, candles[:4])
    blocked = AccountView(ts=0, equity=10_000.0, entries_blocked=True)
    outs = feed(sup, candles[4:7], blocked)
    assert [d["reason"] for d in decisions(outs)] == ["entries_blocked"] and all(not o.intents for o in outs)
    assert len(feed(sup, candles[7:8])[0].intents) == 1  # unblocked: trades at once


def test_sizing_reject_is_a_decision() -> None:
    sup = make()
    outs = feed(sup, trend(5), AccountView(ts=0, equity=0.5))
    [block] = decisions(outs)
    assert block["reason"] in ("size_below_min_qty", "size_below_min_notional")


def test_broker_rejection_starts_the_cooldown() -> None:
    sup = make()
    candles = trend(9)
    [intent] = feed(sup, candles[:5])[4].intents
    journal = sup.on_broker_event(OrderEvent(ts(4), intent.client_id, intent.side, intent.type, intent.qty,
                                             intent.price, intent.stop, intent.target, "rejected",
                                             "max_orders_per_minute"))
    assert journal and isinstance(journal[0], Journal) and journal[0].tags[0] == "rejected"
    outs = feed(sup, candles[5:9])
    assert all(not o.intents for o in outs)


# -- the sweep through the whole pipeline ---------------------------------------------


def test_sweep_market_entry_through_the_pipeline() -> None:
    sup = make(**{"ribbon.enabled": False, "sweep.lookback_bars": 3, "sweep.volume_mean_bars": 3,
                  "sweep.ema_filter_fast": 2, "sweep.ema_filter_slow": 3, "sweep.vwap_bars": 3})
    hist = closes_to_candles([60_000.0 + (20 if k % 2 else 0) for k in range(8)], wick=30.0)
    outs = feed(sup, hist)
    assert all(not o.intents for o in outs)
    sweep = bar(8, 60_010, 60_040, 59_900, 60_030)  # pierces the 3-bar low (59,970) and closes back above
    out = sup.on_candle(sweep, flat())
    [intent] = out.intents
    assert isinstance(intent, OrderIntent)
    assert (intent.type, intent.side, intent.reason) == (OrderType.MARKET, Side.BUY, "sweep")
    assert intent.stop is not None and intent.stop < 59_970
    assert fields(out.events[0])["level"] == 59_970.0


# -- isolation -----------------------------------------------------------------------


class FailingCvd(CvdDivergence):
    __slots__ = ("fail_at",)
    fail_at: float

    def update(self, high: float, low: float, close: float, volume: float) -> None:
        super().update(high, low, close, volume)
        if close == self.fail_at:
            raise ZeroDivisionError("injected")


class FailingSetup(SetupSignal):
    __slots__ = ()

    def find(self, *args: Any, **kw: Any) -> Any:
        raise KeyError("boom")


def test_failing_agent_means_no_trade_and_an_agent_error_then_recovery() -> None:
    sup = make()
    candles = trend(7)
    bad = FailingCvd(sup.params.cvd)
    bad.fail_at = candles[4].close
    sup.cvd_divergence = bad
    outs = feed(sup, candles[:5])
    assert outs[4].intents == []
    [err] = outs[4].events
    assert err.kind == "agent_error" and err.ts == candles[4].ts
    assert err == AgentError(candles[4].ts, "cvd_divergence", "ZeroDivisionError: injected")
    nxt = feed(sup, candles[5:6])[0]  # the next candle is processed normally
    assert len(nxt.intents) == 1 and [e.kind for e in nxt.events] == ["decision", "journal"]


def test_failing_decision_agent_is_isolated() -> None:
    sup = make()
    failing = FailingSetup(sup.params.setups, (), LIN.tick_size)
    sup.setup_signal = failing
    outs = feed(sup, trend(6))
    assert all(not o.intents for o in outs)
    errs = [e for o in outs for e in o.events if e.kind == "agent_error"]
    assert errs and all(
        isinstance(e, AgentError) and e.agent == "setup_signal" and "KeyError" in e.error for e in errs
    )


def test_failing_journal_does_not_escape_on_broker_event() -> None:
    class BadCoach(JournalCoach):
        __slots__ = ()

        def on_event(self, event: Event, bar: int) -> list[Event]:
            raise RuntimeError("disk?")

    sup = make()
    sup.journal_coach = BadCoach()
    [err] = sup.on_broker_event(FillEvent(5, "x", Side.BUY, 1.0, 100.0, 0.0, "taker", "entry"))
    assert isinstance(err, AgentError) and err.agent == "journal_coach"


# -- warmup, determinism, snapshots ------------------------------------------------------


def test_warmup_primes_indicators_without_decisions() -> None:
    sup = make()
    candles = trend(6)
    for c in candles[:5]:
        sup.warmup(c)
    assert sup.market_intake.ready
    out = sup.on_candle(candles[5], flat())
    assert len(out.intents) == 1


class TinyAccount:
    """Just enough account to make a long run realistic: limit fills when the
    bar trades through, market fills at the close, bracket exits."""

    def __init__(self) -> None:
        self.pos = 0.0
        self.stop = self.target = 0.0
        self.working: dict[str, OrderIntent] = {}
        self.entry: tuple[int, float, str] = (0, 0.0, "")

    def step(self, c: Candle, strat: Strategy) -> list[dict[str, Any]]:
        out: list[Event] = []
        for cid, o in list(self.working.items()):
            if o.type is OrderType.MARKET or (o.price is not None and c.low <= o.price <= c.high):
                del self.working[cid]
                self.pos = o.qty * o.side.sign
                self.stop, self.target = o.stop or 0.0, o.target or 0.0
                self.entry = (c.ts, o.price or c.close, cid)
                out.append(FillEvent(c.ts, cid, o.side, o.qty, o.price or c.close, 0.0, "maker", "entry"))
        if self.pos and (c.low <= self.stop <= c.high or c.low <= self.target <= c.high):
            hit_stop = c.low <= self.stop <= c.high
            entry_ts, entry_price, cid = self.entry
            net = -1.0 if hit_stop else 1.0
            out.append(TradeClosed(c.ts, "long" if self.pos > 0 else "short", abs(self.pos), entry_ts, entry_price,
                                   c.ts, self.stop if hit_stop else self.target, net, 0.0, 0.0, net,
                                   "stop" if hit_stop else "target", cid))
            self.pos = 0.0
        res = strat.on_candle(c, AccountView(ts=c.ts, equity=10_000.0, position_qty=self.pos,
                                             working_orders=tuple(self.working)))
        for it in res.intents:
            if isinstance(it, CancelIntent):
                self.working.pop(it.client_id, None)
            else:
                self.working[it.client_id] = it
        events = res.events + [j for e in out for j in strat.on_broker_event(e)]
        return [e.to_dict() for e in events] + [{"ts": c.ts, "kind": "intent", "repr": repr(i)} for i in res.intents]


def serialized_run(strat: Strategy, candles: list[Candle], acct: TinyAccount | None = None) -> list[str]:
    acct = acct or TinyAccount()
    lines: list[str] = []
    for i, c in enumerate(candles):
        if i % 240 == 0:
            strat.on_funding(FundingRate(c.ts, [0.0001, 0.00035, 0.0006, 0.0012][(i // 240) % 4]))
        lines.extend(json.dumps(e, sort_keys=True) for e in acct.step(c, strat))
    return lines


@pytest.fixture(scope="module")
def market_candles() -> list[Candle]:
    return list(SyntheticMarket(seed=11, origin_ts=1_700_000_000_000).candles(0, 3_000))


@pytest.mark.parametrize("name", ["default", "tight", "sma_cross"])
def test_same_candles_same_decisions(market_candles: list[Candle], name: str) -> None:
    cfg = AppConfig.model_validate({"strategy": {"name": name}})
    first = serialized_run(build_strategy(cfg), market_candles)
    second = serialized_run(build_strategy(cfg), market_candles)
    assert first == second
    kinds = {json.loads(x)["kind"] for x in first}
    assert {"decision", "journal", "intent"} <= kinds  # the run did trade
    assert len(first) < len(market_candles)  # not one event per quiet candle


def test_snapshot_restores_exactly_and_stays_small(market_candles: list[Candle]) -> None:
    cfg = AppConfig()
    strat = build_strategy(cfg)
    acct = TinyAccount()
    serialized_run(strat, market_candles[:1_000], acct)
    blob = pickle.dumps(strat)
    clone = pickle.loads(blob)
    acct_clone = pickle.loads(pickle.dumps(acct))
    assert serialized_run(clone, market_candles[1_000:], acct_clone) == serialized_run(
        strat, market_candles[1_000:], acct
    )
    assert len(pickle.dumps(strat)) < 12_000
    assert abs(len(pickle.dumps(strat)) - len(blob)) < 1_000  # does not grow with the run


def test_state_blocks_are_reported_once_per_state_not_per_setup() -> None:
    sup = make()
    # An uptrend interrupted by flat bars: the setup comes and goes.
    closes = [60_000.0 + 60 * k for k in range(6)] + [60_300.0] * 6 + [60_300.0 + 60 * k for k in range(1, 7)]
    candles = closes_to_candles(closes, wick=30.0)
    blocked = AccountView(ts=0, equity=10_000.0, entries_blocked=True)
    outs = feed(sup, candles, blocked)
    assert [d["reason"] for d in decisions(outs)] == ["entries_blocked"]
    # The breaker resets (a candle unblocked while in a position), then trips again: reported again.
    sup.on_candle(closes_to_candles([60_700.0], start=18)[0], AccountView(ts=0, equity=1e4, position_qty=0.1))
    again = feed(sup, trend(4, start=60_760.0, first=19), blocked)
    assert [d["reason"] for d in decisions(again)] == ["entries_blocked"]


def test_funding_no_trade_is_reported_once_while_it_lasts() -> None:
    sup = make()
    sup.on_funding(FundingRate(0, -0.0007))
    outs = feed(sup, trend(30))
    assert [d["reason"] for d in decisions(outs)] == ["funding_no_trade"]
    assert all(not o.intents for o in outs)


def test_sweep_filter_block_is_a_decision_event() -> None:
    sup = make(**{"ribbon.enabled": False, "sweep.lookback_bars": 3, "sweep.volume_mean_bars": 3,
                  "sweep.ema_filter_fast": 2, "sweep.ema_filter_slow": 3, "sweep.vwap_bars": 3})
    feed(sup, closes_to_candles([60_000.0 + (20 if k % 2 else 0) for k in range(8)], wick=30.0))
    out = sup.on_candle(bar(8, 60_010, 60_040, 59_900, 60_030, v=10.0), flat())  # volume 10 < 0.5 x 100
    assert out.intents == []
    [dec] = [fields(e) for e in out.events]
    assert (dec["action"], dec["reason"], dec["setup"], dec["side"]) == ("block", "sweep_volume_filter", "sweep", "BUY")
