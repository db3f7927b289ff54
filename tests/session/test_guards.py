"""The guard rules on their own: counters, staleness, latency histogram.
(Stop reasons and their exit codes: tests/foundation/test_stop_reasons.py.)"""

from __future__ import annotations

import pytest

from laptop_agents.session.guards import ErrorCounters, LatencyStats, StaleGuard
from laptop_agents.stop_reasons import StopReason


def test_consecutive_market_data_errors_reset_on_good_data() -> None:
    c = ErrorCounters(max_consecutive_md=3, budget=100)
    assert c.market_data_error() is None
    assert c.market_data_error() is None
    c.good_data()
    assert c.consecutive_md == 0
    assert c.market_data_error() is None
    assert c.market_data_error() is None
    assert c.market_data_error() is StopReason.MARKET_DATA_ERRORS
    assert c.total == 5 and c.by_kind == {"market_data": 5}


def test_error_budget_counts_every_kind() -> None:
    c = ErrorCounters(max_consecutive_md=3, budget=5)
    assert c.record("agent_error", 2) is None
    assert c.record("store_retry") is None
    assert c.market_data_error() is None
    assert c.record("agent_error") is StopReason.ERROR_BUDGET
    assert c.snapshot()["agent_error"] == 3 and c.snapshot()["total"] == 5
    assert c.record("x", 0) is None


def test_stale_guard_uses_the_injected_clock() -> None:
    now = [100.0]
    g = StaleGuard(2.0, lambda: now[0])
    now[0] = 101.5
    assert not g.stale() and g.age_s() == pytest.approx(1.5)
    now[0] = 102.0
    assert g.stale()
    g.touch()
    assert not g.stale() and g.age_s() == 0.0


def test_latency_percentiles_nearest_rank() -> None:
    s = LatencyStats()
    assert s.percentile_ms(50) is None and s.snapshot()["p99_ms"] is None
    for us in range(1, 101):  # 1..100 us
        s.add(us * 1000 - 1)
    assert s.percentile_ms(50) == pytest.approx(0.050)
    assert s.percentile_ms(99) == pytest.approx(0.099)
    s.add(50_000_000)  # 50 ms goes to the overflow bin, reported as the max
    assert s.percentile_ms(100) == pytest.approx(50.0)
    assert s.snapshot()["max_ms"] == 50.0 and s.count == 101
