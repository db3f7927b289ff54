"""Each agent's rules, with small hand-made inputs that trigger and do not trigger them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.domain.events import (
    Event,
    FillEvent,
    Funding,
    Journal,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    TradeClosed,
)
from laptop_agents.domain.models import OrderType, Side
from laptop_agents.domain.symbols import instrument_for
from laptop_agents.strategy.agents import (
    CHOP,
    CHOP_LOWVOL,
    DOWN,
    GATE_HALF,
    GATE_HALT,
    GATE_NO_TRADE,
    GATE_OK,
    LIMIT,
    MARKET,
    NORMAL,
    TREND_HIGHVOL,
    UP,
    CvdDivergence,
    DerivativesFlows,
    ExecutionRiskSentinel,
    JournalCoach,
    MarketIntake,
    PendingTrigger,
    RiskGate,
    Setup,
    SetupSignal,
)
from laptop_agents.strategy.params import (
    CvdParams,
    EngineParams,
    FundingGates,
    MarketParams,
    RibbonParams,
    RiskParams,
    SetupsParams,
    SweepParams,
)

LIN = instrument_for("BTCUSDT")
SMALL_MARKET = MarketParams(ema_fast=2, ema_slow=3, atr_period=2)


def intake_after(closes: list[float], rng: float = 1.0) -> MarketIntake:
    mi = MarketIntake(SMALL_MARKET)
    for c in closes:
        mi.update(c + rng / 2, c - rng / 2, c)
    return mi


# -- MarketIntake --------------------------------------------------------------


def test_intake_warms_up_before_deciding_a_trend() -> None:
    mi = intake_after([100, 101])
    assert not mi.ready and mi.trend == CHOP
    mi.update(102.5, 101.5, 102)
    assert mi.ready


def test_trend_up_down_chop() -> None:
    # fast EMA(2): seed 100.5, then 100.5 + 2/3*(102-100.5) = 101.5; slow EMA(3) seed 101
    up = intake_after([100, 101, 102])
    assert (up.ema_fast.value, up.ema_slow.value, up.trend) == (101.5, 101.0, UP)
    assert intake_after([102, 101, 100]).trend == DOWN
    assert intake_after([100, 102, 101]).trend == CHOP  # fast == slow == 101
    # fast > slow but the close fell back below the fast EMA: not UP
    mi = intake_after([100, 101, 102])
    mi.update(101.9, 100.9, 101.4)  # fast 101.4667 > slow 101.2, close 101.4 < fast
    assert mi.ema_fast.value is not None and mi.ema_slow.value is not None
    assert mi.ema_fast.value > mi.ema_slow.value and mi.trend == CHOP


@pytest.mark.parametrize(
    ("rng", "regime"),
    [(10.0, CHOP_LOWVOL), (19.9, CHOP_LOWVOL), (20.0, NORMAL), (60.0, NORMAL), (60.1, TREND_HIGHVOL), (150.0, TREND_HIGHVOL)],
)
def test_regimes_from_atr_over_close(rng: float, regime: str) -> None:
    mi = intake_after([10_000.0] * 4, rng=rng)  # constant range: ATR == rng, close 10,000
    assert mi.atr.value == pytest.approx(rng)
    assert mi.regime == regime


# -- DerivativesFlows ----------------------------------------------------------


def flows(refresh: int = 1) -> DerivativesFlows:
    return DerivativesFlows(FundingGates(), EngineParams(derivatives_refresh_bars=refresh))


@pytest.mark.parametrize(
    ("rate", "gate", "mult"),
    [
        (0.0001, GATE_OK, 1.0),
        (-0.000299, GATE_OK, 1.0),
        (0.0003, GATE_HALF, 0.5),  # 0.03 % per 8 h
        (-0.00045, GATE_HALF, 0.5),
        (0.0005, GATE_NO_TRADE, 0.0),  # 0.05 %
        (-0.0009, GATE_NO_TRADE, 0.0),
        (0.001, GATE_HALT, 0.0),  # |funding| >= 0.001 (fraction)
        (-0.004, GATE_HALT, 0.0),
    ],
)
def test_funding_gates(rate: float, gate: str, mult: float) -> None:
    f = flows()
    f.observe(rate)
    f.update()
    assert (f.gate, f.size_mult) == (gate, mult)


def test_missing_funding_means_half_size() -> None:
    f = flows()
    f.update()
    assert (f.gate, f.size_mult, f.rate) == (GATE_HALF, 0.5, None)


def test_gate_refreshes_only_every_n_bars() -> None:
    f = flows(refresh=3)
    f.observe(0.0001)
    f.update()  # bar 0 refreshes
    assert f.gate == GATE_OK
    f.observe(0.002)
    f.update()
    f.update()
    assert f.gate == GATE_OK  # still the snapshot of bar 0
    f.update()  # bar 3 refreshes
    assert f.gate == GATE_HALT


# -- CvdDivergence -------------------------------------------------------------


def cvd_after(last: tuple[float, float, float, float]) -> CvdDivergence:
    cd = CvdDivergence(CvdParams())
    for _ in range(4):
        cd.update(102, 100, 101, 10)  # delta 0: cvd stays 0, lows 100, highs 102
    cd.update(*last)
    return cd


def test_bullish_divergence_lower_low_without_lower_cvd() -> None:
    cd = cvd_after((101, 99, 101, 10))  # low 99 < 100, closes at the high: delta +10
    assert (cd.signal, cd.cvd.value) == (1, 10.0)


def test_no_divergence_when_cvd_confirms_the_low() -> None:
    assert cvd_after((100.5, 99, 99, 10)).signal == 0  # lower low and lower CVD (-10)
    assert cvd_after((101.5, 100, 101, 10)).signal == 0  # no lower low


def test_bearish_divergence_higher_high_without_higher_cvd() -> None:
    assert cvd_after((103, 101, 101, 10)).signal == -1  # high 103 > 102, delta -10
    assert cvd_after((103, 101.5, 103, 10)).signal == 0  # higher high with higher CVD


def test_outside_bar_is_ambiguous() -> None:
    assert cvd_after((103, 99, 101, 10)).signal == 0


def test_divergence_needs_the_lookback_window() -> None:
    cd = CvdDivergence(CvdParams())
    for _ in range(3):
        cd.update(102, 100, 101, 10)
    cd.update(101, 99, 101, 10)  # only 3 previous bars
    assert cd.signal == 0


# -- SetupSignal: pullback ribbon ------------------------------------------------


def ready_intake(trend: int, ema: float = 100.0, atr: float = 2.0, regime: str = NORMAL) -> MarketIntake:
    mi = MarketIntake(SMALL_MARKET)
    mi.ready, mi.trend, mi.regime = True, trend, regime
    mi.ema_fast.value, mi.atr.value = ema, atr
    return mi


def signal(ribbon: RibbonParams | None = None, sweep: SweepParams | None = None, regimes: tuple[str, ...] = ()) -> SetupSignal:
    p = SetupsParams(pullback_ribbon=ribbon or RibbonParams(), sweep_invalidation=sweep or SweepParams(enabled=False))
    return SetupSignal(p, regimes, LIN.tick_size)


def test_ribbon_long_in_uptrend_when_price_pulls_back_to_the_band() -> None:
    s = signal().find(101.0, 100.05, 100.8, 100, ready_intake(UP), 0)
    assert s is not None
    assert (s.name, s.side, s.order_type) == ("pullback_ribbon", 1, LIMIT)
    assert (s.entry, s.stop, s.target) == (100.0, 97.0, 106.0)  # stop ATR*1.5, target 2R
    assert s.trailing is True


def test_ribbon_short_in_downtrend() -> None:
    s = signal().find(99.95, 99.0, 99.2, 100, ready_intake(DOWN), 0)
    assert s is not None
    assert (s.side, s.entry, s.stop, s.target) == (-1, 100.0, 103.0, 94.0)


def test_no_ribbon_far_from_the_ema_or_without_trend() -> None:
    assert signal().find(101.0, 100.5, 100.8, 100, ready_intake(UP), 0) is None  # low above the band
    assert signal().find(99.5, 98.0, 99.2, 100, ready_intake(DOWN), 0) is None  # high below the band
    assert signal().find(101.0, 99.0, 100.0, 100, ready_intake(CHOP), 0) is None
    assert signal(RibbonParams(enabled=False)).find(101.0, 100.05, 100.8, 100, ready_intake(UP), 0) is None
    not_ready = ready_intake(UP)
    not_ready.ready = False
    assert signal().find(101.0, 100.05, 100.8, 100, not_ready, 0) is None


def test_ribbon_fixed_stop_bps() -> None:
    s = signal(RibbonParams(stop_bps=50.0)).find(101.0, 100.05, 100.8, 100, ready_intake(UP), 0)
    assert s is not None and (s.stop, s.target) == (99.5, 101.0)


def test_blocked_regime_is_a_quiet_no_setup() -> None:
    sig = signal(regimes=("CHOP_LOWVOL",))
    assert sig.find(101.0, 100.05, 100.8, 100, ready_intake(UP, regime=CHOP_LOWVOL), 0) is None
    assert sig.blocked == "regime_chop_lowvol" and sig.blocked_setup is None
    assert sig.find(101.0, 100.05, 100.8, 100, ready_intake(UP, regime=NORMAL), 0) is not None


# -- SetupSignal: liquidity sweep ------------------------------------------------

SWEEP = SweepParams(
    lookback_bars=3, volume_mean_bars=3, vwap_bars=3, ema_filter_fast=2, ema_filter_slow=3, eq_tolerance_pct=0.001
)


def sweep_run(
    history: Sequence[tuple[float, ...]],
    last: tuple[float, ...],
    *,
    params: SweepParams = SWEEP,
    cvd_signal: int = 0,
) -> tuple[Setup | None, SetupSignal]:
    sig = signal(RibbonParams(enabled=False), params)
    for _o, h, lo, c, v in [*history, last]:
        sig.update(h, lo, c, v)
    _o, h, lo, c, v = last
    return sig.find(h, lo, c, v, ready_intake(CHOP, atr=2.0), cvd_signal), sig


RISING = [(100, 101, 99, 100.2, 100), (100.2, 101.2, 99.2, 100.4, 100), (100.4, 101.4, 99.4, 100.6, 100)]
LOW_SWEEP = (100.6, 101.0, 98.8, 100.8, 100)  # low 98.8 < 99.0*(1-0.001), close back above 99.0
FALLING = [(100.6, 101.6, 99.6, 100.4, 100), (100.4, 101.4, 99.4, 100.2, 100), (100.2, 101.2, 99.2, 100.0, 100)]
HIGH_SWEEP = (100.0, 101.8, 99.5, 100.2, 100)  # high 101.8 > 101.6*(1+0.001), close back below 101.6


def test_sweep_long_market_entry_stop_beyond_level_r_target() -> None:
    s, _ = sweep_run(RISING, LOW_SWEEP)
    assert s is not None
    assert (s.name, s.side, s.order_type, s.level) == ("sweep", 1, MARKET, 99.0)  # lowest of the 3 previous lows
    assert s.entry == 100.8
    assert s.stop == 98.0  # 99.0 - ATR 2 * 0.5
    assert s.target_kind == "r_multiple" and s.target == pytest.approx(100.8 + 2.8 * 2)


def test_sweep_short_mirrors() -> None:
    s, _ = sweep_run(FALLING, HIGH_SWEEP)
    assert s is not None
    assert (s.side, s.level, s.stop) == (-1, 101.6, 102.6)


def test_sweep_needs_a_pierce_beyond_tolerance_and_a_close_back_inside() -> None:
    assert sweep_run(RISING, (100.6, 101.0, 98.95, 100.8, 100))[0] is None  # 98.95 within 0.1 % of 99.0
    s, sig = sweep_run(RISING, (100.6, 101.0, 98.8, 98.9, 100))  # closed below the level
    assert s is None and sig.blocked == ""


def test_sweep_blocked_by_opposing_ema() -> None:
    # A low sweep after falling closes: EMA(2) < EMA(3) opposes the long.
    s, sig = sweep_run(FALLING, (100.0, 100.5, 99.0, 99.5, 100))  # low 99.0 < 99.2*(1-0.001)
    assert s is None and sig.blocked == "sweep_ema_filter"
    assert sig.blocked_setup is not None and sig.blocked_setup.side == 1


def test_sweep_blocked_by_low_volume() -> None:
    s, sig = sweep_run(RISING, (*LOW_SWEEP[:4], 49.0))  # < 0.5 x mean(100, 100, 100)
    assert s is None and sig.blocked == "sweep_volume_filter"
    assert sweep_run(RISING, (*LOW_SWEEP[:4], 50.0))[0] is not None


def test_sweep_blocked_without_cvd_confirmation_when_required() -> None:
    p = SWEEP.model_copy(update={"require_cvd_confirm": True})
    s, sig = sweep_run(RISING, LOW_SWEEP, params=p, cvd_signal=0)
    assert s is None and sig.blocked == "sweep_cvd_unconfirmed"
    assert sweep_run(RISING, LOW_SWEEP, params=p, cvd_signal=-1)[0] is None
    assert sweep_run(RISING, LOW_SWEEP, params=p, cvd_signal=1)[0] is not None


def test_sweep_targets_vwap_when_on_the_profitable_side() -> None:
    p = SWEEP.model_copy(update={"vwap_bars": 5})
    hist = [(100, 105, 99.5, 100, 1000)] + [(100, 100.5, 99.5, 100, 100)] * 3
    s, sig = sweep_run(hist, (100, 100.5, 99.0, 100.0, 100), params=p)
    assert s is not None
    assert sig.vwap.value is not None and sig.vwap.value > 100.0
    assert (s.target_kind, s.target) == ("vwap", round(sig.vwap.value, 1))


def test_ribbon_wins_over_sweep() -> None:
    sig = SetupSignal(SetupsParams(sweep_invalidation=SWEEP), (), LIN.tick_size)
    for _o, h, lo, c, v in [*RISING, LOW_SWEEP]:
        sig.update(h, lo, c, v)
    s = sig.find(101.0, 98.8, 100.8, 100, ready_intake(UP, ema=99.0), 0)
    assert s is not None and s.name == "pullback_ribbon"


# -- ExecutionRiskSentinel -------------------------------------------------------


def sentinel(cooldown: int = 5) -> ExecutionRiskSentinel:
    return ExecutionRiskSentinel(EngineParams(cooldown_bars=cooldown), 1.0, LIN, 200_000.0, 20.0)


LONG = Setup("pullback_ribbon", 1, LIMIT, 60_000.0, 59_400.0, 61_200.0, trailing=True)


def test_sentinel_sizes_and_applies_funding() -> None:
    s = sentinel()
    assert s.assess(LONG, GATE_OK, 10_000.0, 1) == (0.1666, "", 1.0)
    assert s.assess(LONG, GATE_HALF, 10_000.0, 1) == (0.0833, "", 0.5)
    assert s.assess(LONG, GATE_NO_TRADE, 10_000.0, 1)[1] == "funding_no_trade"
    flat_stop = Setup("x", 1, LIMIT, 60_000.0, 60_000.0, 61_000.0, trailing=False)
    assert s.assess(flat_stop, GATE_OK, 10_000.0, 1)[1] == "zero_stop_distance"
    assert s.assess(LONG, GATE_OK, 1.0, 1)[1] == "size_below_min_qty"  # 0.01 USDT over a 600 stop


def test_cooldown_of_five_bars_after_a_no_go() -> None:
    s = sentinel()
    s.start_cooldown(10)
    assert [s.assess(LONG, GATE_OK, 10_000.0, b)[1] for b in range(10, 17)] == [
        "cooldown", "cooldown", "cooldown", "cooldown", "cooldown", "cooldown", "",
    ]
    assert sentinel(0).assess(LONG, GATE_OK, 10_000.0, 1)[1] == ""


# -- PendingTrigger ---------------------------------------------------------------


def test_pending_limit_is_cancelled_after_max_bars() -> None:
    p = PendingTrigger(EngineParams(pending_trigger_max_bars=3))
    p.track("x-1", 10)
    assert p.check(11, ("x-1",), False) is None
    assert p.check(12, ("x-1",), False) is None
    assert p.check(13, ("x-1",), False) == ("x-1", "pending_expired")
    assert p.client_id is None and p.check(14, ("x-1",), False) is None


def test_pending_forgotten_once_no_longer_working_and_halt_cancels() -> None:
    p = PendingTrigger(EngineParams(pending_trigger_max_bars=3))
    p.track("x-1", 10)
    assert p.check(10, (), False) is None and p.client_id == "x-1"  # same bar: not at the broker yet
    assert p.check(11, (), False) is None and p.client_id is None  # filled or gone
    p.track("x-2", 20)
    assert p.check(21, ("x-2",), True) == ("x-2", "funding_halt")


# -- RiskGate --------------------------------------------------------------------


def gate(rr_min: float = 1.5) -> RiskGate:
    return RiskGate(RiskParams(rr_min=rr_min), LIN, 200_000.0, 20.0)


def test_risk_gate_rr_min() -> None:
    assert gate().check(LONG, 0.1, 10_000.0, False, GATE_OK) == ("", 2.0)
    low_rr = Setup("sweep", 1, MARKET, 60_000.0, 59_400.0, 60_840.0, trailing=False)  # rr 1.4
    reason, rr = gate().check(low_rr, 0.1, 10_000.0, False, GATE_OK)
    assert reason == "rr_below_min" and rr == pytest.approx(1.4)
    exact = Setup("sweep", 1, MARKET, 60_000.0, 59_400.0, 60_900.0, trailing=False)  # rr exactly 1.5
    assert gate().check(exact, 0.1, 10_000.0, False, GATE_OK)[0] == ""


def test_risk_gate_halts_blocks_and_limits() -> None:
    assert gate().check(LONG, 0.1, 10_000.0, False, GATE_HALT)[0] == "funding_halt"
    assert gate().check(LONG, 0.1, 10_000.0, True, GATE_OK)[0] == "entries_blocked"
    wrong = Setup("x", 1, LIMIT, 60_000.0, 60_100.0, 61_000.0, trailing=False)  # stop above a long entry
    assert gate().check(wrong, 0.1, 10_000.0, False, GATE_OK)[0] == "bad_bracket"
    assert gate().check(LONG, 4.0, 1_000_000.0, False, GATE_OK)[0] == "max_notional"  # 240,000 USD
    assert gate().check(LONG, 3.0, 5_000.0, False, GATE_OK)[0] == "max_leverage"  # 36x


# -- JournalCoach ----------------------------------------------------------------


def closed(ts: int, reason: str, net: float, exit_price: float, side: str = "long") -> Event:
    return TradeClosed(ts, side, 0.1, 1, 60_000.0, ts, exit_price, net, 0.0, 0.0, net, reason, "p-1")


def fill(ts: int, cid: str) -> Event:
    return FillEvent(ts, cid, Side.BUY, 0.1, 60_000.0, 1.0, "maker", "entry")


def journal(events: list[Event]) -> Journal:
    [ev] = events
    assert isinstance(ev, Journal)
    return ev


def coach_with_plan() -> JournalCoach:
    j = JournalCoach()
    ev = j.plan_created(1, "p-1", "pullback_ribbon", 1, LIMIT, 60_000.0, 59_400.0, 61_200.0, 0.1, 5)
    assert ev.kind == "journal" and ev.plan_id == "p-1" and "plan_created" in ev.tags
    return j


def test_journal_stopped_fast() -> None:
    j = coach_with_plan()
    filled = journal(j.on_event(fill(2, "p-1"), 6))
    assert "filled" in filled.tags
    ex = journal(j.on_event(closed(3, "stop", -60.0, 59_400.0), 8))
    assert set(ex.tags) == {"stop", "loss", "stopped_fast"}
    assert ex.plan_id == "p-1" and "-1.0 R after 2 bars" in ex.text


def test_journal_slow_stop_is_not_stopped_fast() -> None:
    j = coach_with_plan()
    j.on_event(fill(2, "p-1"), 6)
    ex = journal(j.on_event(closed(3, "stop", -60.0, 59_400.0), 10))
    assert "stopped_fast" not in ex.tags


def test_journal_followed_plan_profit() -> None:
    j = coach_with_plan()
    j.on_event(fill(2, "p-1"), 6)
    ex = journal(j.on_event(closed(3, "target", 120.0, 61_200.0), 20))
    assert set(ex.tags) == {"target", "win", "followed_plan_profit"}
    assert "2.0 R" in ex.text


def test_journal_cancel_expiry_reject_and_foreign_ids() -> None:
    j = coach_with_plan()
    assert j.on_event(OrderCancelled(2, "other", "x"), 6) == []
    assert j.on_event(fill(2, "other"), 6) == []
    c = journal(j.on_event(OrderCancelled(2, "p-1", "pending_expired"), 6))
    assert c.tags == ("cancelled", "pullback_ribbon") and "pending_expired" in c.text
    j = coach_with_plan()
    e = journal(j.on_event(OrderExpired(2, "p-1", 2, 0.1), 6))
    assert e.tags[0] == "expired"
    j = coach_with_plan()
    rejected = OrderEvent(2, "p-1", Side.BUY, OrderType.LIMIT, 0.1, 60_000.0, None, None, "rejected", "max_leverage")
    r = journal(j.on_event(rejected, 6))
    assert r.tags[0] == "rejected"
    assert j.on_event(Funding(2, 0.0001, 0.0, 0.0, 2, 60_000.0), 6) == []


@settings(max_examples=200, deadline=None)
@given(
    ema=st.floats(1_000.0, 150_000.0),
    atr=st.floats(0.5, 3_000.0),
    tp=st.floats(1.0, 5.0),
    side=st.sampled_from([UP, DOWN]),
)
def test_tick_rounding_never_lowers_the_ribbon_reward_risk(ema: float, atr: float, tp: float, side: int) -> None:
    sig = signal(RibbonParams(tp_r_mult=tp))
    mi = ready_intake(side, ema=ema, atr=atr)
    s = sig.find(ema * 1.0005, ema * 0.9995, ema, 100, mi, 0)
    assert s is not None
    rr = (s.target - s.entry) / (s.entry - s.stop)
    assert rr >= tp * (1 - 1e-9)
    assert gate(rr_min=tp).check(s, 0.001, 10_000.0, False, GATE_OK)[0] in ("", "max_leverage", "max_notional")
