"""Prometheus metrics: fed from events, read from the view, scraped over HTTP from the dashboard."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from laptop_agents.console.metrics import MAX_LABEL_VALUES, LoopLagMonitor, SessionMetrics
from laptop_agents.domain.events import Decision, FillEvent
from laptop_agents.domain.models import Side
from tests.console.fakes import FakeSession
from tests.console.helpers import serving


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_move_and_gauges_follow_the_view() -> None:
    s = FakeSession()
    m = SessionMetrics(s.view)
    body, ctype = m.exposition()
    assert ctype.startswith("text/plain")
    first = _samples(body.decode())
    assert first[("laptop_agents_candles_processed_total", ())] == 0
    assert first[("laptop_agents_equity", ())] == 10_000.0
    assert first[("laptop_agents_healthy", ())] == 1.0
    m.candle(0.0004)
    m.candle()
    m.observe([
        Decision(1, "enter", "sweep"),
        {"ts": 1, "kind": "decision", "action": "block", "reason": "no_setup"},
        {"ts": 2, "kind": "decision", "action": "block", "reason": "no_setup"},
        {"ts": 1, "kind": "order", "status": "accepted"},
        {"ts": 1, "kind": "order", "status": "rejected", "reason": "min_qty"},
        FillEvent(1, "c", Side.BUY, 0.01, 1.0, 0.0, "taker", "entry"),
        {"ts": 3, "kind": "trade_closed", "net_pnl": -1.5},
        {"ts": 1, "kind": "journal", "x": 1},
    ])
    s.state.update(equity=10_012.5, market_data_age_s=2.5)
    s.state["position"] = {**s.state["position"], "qty": -0.02, "unrealized": 1.25}
    s.state["errors"] = {**s.state["errors"], "total": 4, "market_data": 3, "agent_error": 1}
    s.state["source"] = {**s.state["source"], "reconnects": 7}
    s.healthy = False
    got = _samples(m.exposition()[0].decode())
    assert got[("laptop_agents_candles_processed_total", ())] == 2
    assert got[("laptop_agents_decisions_total", (("action", "block"), ("reason", "no_setup")))] == 2
    assert got[("laptop_agents_decisions_total", (("action", "enter"), ("reason", "sweep")))] == 1
    assert got[("laptop_agents_orders_total", (("status", "rejected"),))] == 1
    assert got[("laptop_agents_fills_total", (("liquidity", "taker"), ("side", "BUY")))] == 1
    assert got[("laptop_agents_trades_closed_total", (("outcome", "loss"),))] == 1
    assert got[("laptop_agents_candle_latency_count", ())] == 1
    assert got[("laptop_agents_equity", ())] == 10_012.5
    assert got[("laptop_agents_position_qty", ())] == -0.02
    assert got[("laptop_agents_market_data_age_seconds", ())] == 2.5
    assert got[("laptop_agents_errors_total", (("kind", "market_data"),))] == 3
    assert got[("laptop_agents_errors_total", (("kind", "agent_error"),))] == 1
    assert ("laptop_agents_errors_total", (("kind", "total"),)) not in got
    assert got[("laptop_agents_reconnects_total", ())] == 7
    assert got[("laptop_agents_healthy", ())] == 0.0
    assert got[("laptop_agents_rss_bytes", ())] > 1_000_000
    # A private registry: nothing leaks into prometheus-client's global one.
    assert REGISTRY.get_sample_value("laptop_agents_candles_processed_total") is None
    assert SessionMetrics(s.view).exposition()[0] != m.exposition()[0]


def test_reason_labels_are_capped() -> None:
    m = SessionMetrics()
    m.observe(Decision(1, "block", f"price {i}") for i in range(MAX_LABEL_VALUES + 40))
    fams = {f.name: f for f in text_string_to_metric_families(m.exposition()[0].decode())}
    samples = [s for s in fams["laptop_agents_decisions"].samples if s.name.endswith("_total")]
    assert len(samples) == MAX_LABEL_VALUES + 1
    assert next(s.value for s in samples if s.labels["reason"] == "other") == 40


def test_loop_lag_monitor_records_a_blocked_loop() -> None:
    m = SessionMetrics()

    async def main() -> float:
        mon = LoopLagMonitor.for_metrics(m, interval_s=0.01).start()
        await asyncio.sleep(0.03)
        import time

        time.sleep(0.2)  # a blocking call on the loop: exactly what the monitor is for
        await asyncio.sleep(0.05)
        await mon.stop()
        return mon.max_s

    worst = asyncio.run(main())
    assert worst >= 0.15
    got = _samples(m.exposition()[0].decode())
    assert got[("laptop_agents_loop_lag_count", ())] >= 2


def test_metrics_are_scraped_from_the_dashboard_server() -> None:
    s = FakeSession()
    m = SessionMetrics(s.view)

    async def main() -> None:
        async with serving(s.view, metrics=m) as (_server, c):
            r = await c.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            before = _samples(r.text)[("laptop_agents_candles_processed_total", ())]
            for _ in range(3):
                s.candle()
                m.candle()
            after = _samples((await c.get("/metrics")).text)
            assert after[("laptop_agents_candles_processed_total", ())] == before + 3
            assert (await c.post("/metrics")).status_code == 405
        async with serving(s.view) as (_server, c):
            assert (await c.get("/metrics")).status_code == 404  # metrics not switched on

    asyncio.run(main())


def test_the_sample_grafana_dashboard_uses_only_metrics_we_export() -> None:
    import json
    import re
    from pathlib import Path

    dash = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    used = {name for p in dash["panels"] for t in p["targets"] for name in re.findall(r"laptop_agents_\w+", t["expr"])}
    s = FakeSession()
    m = SessionMetrics(s.view)
    m.candle(0.001)
    m.observe([{"ts": 1, "kind": "decision", "action": "a", "reason": "r"}, {"ts": 1, "kind": "order", "status": "accepted"},
               {"ts": 1, "kind": "fill", "side": "BUY", "liquidity": "maker"}, {"ts": 1, "kind": "trade_closed", "net_pnl": 1.0}])
    m.loop_lag.set(0.001)
    m.loop_lag_hist.observe(0.001)
    s.extra["last_price"] = 1.0
    s.state["position"]["qty"] = 0.5
    s.state["errors"]["market_data"] = 1
    exported = {k[0] for k in _samples(m.exposition()[0].decode())}
    assert used and used <= exported, used - exported
