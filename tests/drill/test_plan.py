"""The drill's plan: the schedule is a pure function of the plan and its seed,
every kind is played (kill -9 twice), faults are spaced and leave the first
and last parts of the market quiet; the soak plays the process faults first
and repeats the exchange's; options are checked with one clear message."""

from __future__ import annotations

import pytest

from laptop_agents.testing.drill.plan import (
    DAY_MS,
    DEFAULTS,
    KIND_NAMES,
    LIVE_KIND_NAMES,
    PROCESS_KINDS,
    DrillPlan,
    DrillPlanError,
    parse_kinds,
    schedule,
    window,
)

START = 1_700_000_000_000 - 1_700_000_000_000 % 60_000


def test_a_drill_plays_every_kind_once_and_kill9_twice_in_a_seeded_order() -> None:
    plan = DrillPlan("drill", *DEFAULTS["quick"])
    faults = schedule(plan, START)
    kinds = [f.kind for f in faults]
    assert sorted(set(kinds)) == sorted(KIND_NAMES) and len(KIND_NAMES) >= 12
    assert kinds.count("kill9") == 2 and len(kinds) == len(KIND_NAMES) + 1
    assert schedule(plan, START) == faults  # same plan, same schedule
    other = schedule(DrillPlan("drill", *DEFAULTS["quick"], seed=8), START)
    assert [f.kind for f in other] != kinds


def test_faults_are_in_order_on_candle_boundaries_inside_the_quiet_margins() -> None:
    plan = DrillPlan("drill", 7.0, 1008.0)
    faults = schedule(plan, START)
    times = [f.at_ms for f in faults]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(t % 60_000 == 0 for t in times)
    assert times[0] >= START + plan.span_ms * plan.lead_frac
    assert times[-1] <= START + plan.span_ms * (1 - plan.tail_frac)
    assert all(0.0 <= f.jitter < 1.0 for f in faults)


def test_a_soak_plays_the_process_faults_once_first_and_repeats_the_exchanges() -> None:
    plan = DrillPlan("soak", 30.0, 2000.0)
    faults = schedule(plan, START)
    once = [f for f in faults if f.kind in PROCESS_KINDS or f.kind == "silent_socket"]
    assert sorted(f.kind for f in once) == sorted(k for k in KIND_NAMES if k in PROCESS_KINDS or k == "silent_socket")
    assert max(f.at_ms for f in once) < START + 7 * DAY_MS  # the rest of the month is one long process
    repeated = [f for f in faults if f not in once]
    assert len(repeated) >= 3 * 21 and {f.kind for f in repeated} == set(KIND_NAMES) - {f.kind for f in once}
    days = {(f.at_ms - START) // DAY_MS for f in repeated}
    assert len(days) >= 20  # every day has its share


def test_the_market_window_ends_before_the_wall_clock() -> None:
    plan = DrillPlan("drill", 1.0, 720.0)
    now = START + 12_345
    lo, hi = window(plan, now)
    assert hi - lo == plan.span_ms == DAY_MS and hi <= now - 3_600_000 and lo % 60_000 == 0


def test_fault_kinds_option() -> None:
    assert parse_kinds(None) == KIND_NAMES == parse_kinds("all")
    assert parse_kinds("none") == ()
    assert parse_kinds("kill9, hang,kill9") == ("kill9", "hang")
    with pytest.raises(DrillPlanError, match="unknown fault kind 'reboot'.*allowed are all, none, socket_drop"):
        parse_kinds("kill9,reboot")


def test_live_kinds_are_played_only_with_live_fake() -> None:
    assert parse_kinds(None, live=True) == KIND_NAMES + LIVE_KIND_NAMES == parse_kinds("all", live=True)
    assert {"private_ws_drop", "place_5xx", "place_timeout", "delayed_fills", "kill9_in_flight"} <= set(LIVE_KIND_NAMES)
    assert parse_kinds("kill9,place_5xx", live=True) == ("kill9", "place_5xx")
    with pytest.raises(DrillPlanError, match="fault kind 'place_5xx' in --faults needs --live-fake"):
        parse_kinds("kill9,place_5xx")
    with pytest.raises(DrillPlanError, match="unknown fault kind 'reboot'.*allowed are .*kill9_in_flight"):
        parse_kinds("reboot", live=True)
    with pytest.raises(DrillPlanError, match="needs --live-fake"):
        DrillPlan("drill", 1.0, 720.0, kinds=("delayed_fills",))
    plan = DrillPlan("drill", *DEFAULTS["quick"], kinds=parse_kinds(None, live=True), live=True)
    kinds = [f.kind for f in schedule(plan, START)]
    assert set(kinds) == set(KIND_NAMES) | set(LIVE_KIND_NAMES) and "kill9_in_flight" in PROCESS_KINDS


@pytest.mark.parametrize(("days", "speed", "match"), [
    (0.0, 720.0, "--days must be between"),
    (1.0, 0.5, "--speed must be between"),
    (1.0, 50_000.0, "--speed must be between"),
])
def test_bad_plans_are_refused_with_what_is_allowed(days: float, speed: float, match: str) -> None:
    with pytest.raises(DrillPlanError, match=match):
        DrillPlan("drill", days, speed)
