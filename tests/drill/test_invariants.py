"""The invariants on hand-made evidence: a run equal to the Engine's replay of
its routing passes; a doubled, lost or invented fill, a wrong candle, a
candle traded late or a run that differs from the baseline before any routing
difference fails, naming what and where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laptop_agents.config import AppConfig, load_config
from laptop_agents.domain.models import Candle
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.testing.drill import invariants as inv
from laptop_agents.testing.drill.evidence import Routing, RunFiles, StoreView
from laptop_agents.testing.drill.replay import replay

M = 60_000
ORIGIN = 1_700_000_040_000
N = 1500


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> AppConfig:
    f = tmp_path_factory.mktemp("drill") / "strategy.json"
    f.write_text(json.dumps({"strategy": "sma_cross", "fast": 5, "slow": 20, "stop_bps": 100, "attach_stop": True,
                             "tp_r_mult": 3.0, "risk": {"equity": 100000, "risk_pct": 10.0}}))
    return load_config("paper", {"trading.source": "bitunix", "strategy.file": str(f)}).config


MARKET = SyntheticMarket(5, ORIGIN, M, epoch_ts=ORIGIN)


def candle_at(ts: int) -> Candle:
    return MARKET.candle(MARKET.index_at(ts))


def routes(late: range = range(0)) -> dict[int, str]:
    out = {ORIGIN + i * M: ("warmup" if i < 50 else "trade") for i in range(N)}
    for i in late:
        out[ORIGIN + i * M] = "late"
    return out


def evidence(name: str, config: AppConfig, rt: dict[int, str], *, fills: list | None = None) -> inv.RunEvidence:
    last = ORIGIN + (N - 1) * M
    rp = replay(config, candle_at, rt, set(), ORIGIN, last, M, funding_rate=0.0001)
    store_fills = [dict(f, seq=i + 1) for i, f in enumerate(rp.fills)] if fills is None else fills
    store = StoreView(Path("x"), True, None, "ok", last, store_fills, [dict(t) for t in rp.trades], set())
    routing = Routing(rt, [], {}, [], [], [], ORIGIN, last, 0)
    files = RunFiles([dict(f, kind="fill") for f in store_fills], [], 0, {}, [], {}, [])
    return inv.RunEvidence(name, store, routing, files, replay(config, candle_at, rt, set(), ORIGIN, last, M,
                                                               funding_rate=0.0001, ledger=store_fills), [], last)


def test_a_run_equal_to_its_replay_passes_and_the_engine_is_deterministic(config: AppConfig) -> None:
    ev = evidence("faulted", config, routes())
    assert len(ev.store.fills) >= 10 and len(ev.store.trades) >= 4  # the strategy really trades here
    assert inv.ledger_matches_replay([ev]).ok
    assert inv.fills_not_doubled([ev]).ok and inv.fills_not_lost([ev]).ok
    assert inv.matches_baseline(ev, evidence("baseline", config, routes())).ok


def test_a_doubled_fill_breaks_two_invariants(config: AppConfig) -> None:
    good = evidence("faulted", config, routes())
    doubled = [*good.store.fills[:3], dict(good.store.fills[2], seq=99), *good.store.fills[3:]]
    ev = evidence("faulted", config, routes(), fills=doubled)
    check = inv.fills_not_doubled([ev])
    assert not check.ok and "1 fill(s) recorded twice in the store" in check.detail
    check = inv.ledger_matches_replay([ev])
    assert not check.ok and "fills differ from the replay at #4" in check.detail


def test_a_lost_fill_and_a_journal_fill_missing_from_the_store_are_found(config: AppConfig) -> None:
    good = evidence("faulted", config, routes())
    lost = good.store.fills[:5] + good.store.fills[6:]
    ev = evidence("faulted", config, routes(), fills=lost)
    ev.files.journal_fills.append(dict(good.store.fills[5], kind="fill"))
    assert not inv.ledger_matches_replay([ev]).ok
    check = inv.fills_not_lost([ev])
    assert not check.ok and "1 journaled fill(s) missing from the state store" in check.detail


def test_late_candles_change_trades_only_after_the_first_routing_difference(config: AppConfig) -> None:
    base = evidence("baseline", config, routes())
    faulted = evidence("faulted", config, routes(late=range(700, 760)))
    assert inv.ledger_matches_replay([faulted, base]).ok
    check = inv.matches_baseline(faulted, base)
    assert check.ok, check.detail
    assert check.measured["first_difference"] == ORIGIN + 700 * M
    assert check.measured["routed_differently"] == 60
    # A difference before any routing difference is a failure.
    early = [dict(f) for f in faulted.store.fills]
    early[0]["price"] += 1.0
    bad = evidence("faulted", config, routes(late=range(700, 760)), fills=early)
    check = inv.matches_baseline(bad, base)
    assert not check.ok and "fills differ before any candle was routed differently" in check.detail


def test_a_wrong_candle_or_a_late_trade_is_found(config: AppConfig) -> None:
    ev = evidence("faulted", config, routes())
    c = candle_at(ORIGIN + 100 * M)
    ev.files.candles_seen[c.ts] = (c.open, c.high, c.low, c.close * 1.001, c.volume)
    ev.routing.late_traded.append((ORIGIN + 200 * M, 200_000))
    check = inv.candles_true([ev], candle_at, 2 * M)
    assert not check.ok and "1 traded candle(s) differ from the market" in check.detail
    assert "traded although 200 s late" in check.detail


def test_resources_too_short_to_judge_are_not_passed(config: AppConfig) -> None:
    from laptop_agents.testing.drill.runs import Sample

    samples = [Sample(1000.0 + i, 0, 7, "running", 7, 0, 0, True, rss_mb=100.0, fds=10, tasks=8, wal_bytes=1)
               for i in range(20)]
    (check,) = inv.resources("faulted", samples, soak=True)
    assert not check.ok and "not measured" in check.detail
    grow = [Sample(1000.0 + i, 0, 7, "running", 7, 0, 0, True, rss_mb=100.0 + i * 0.2, fds=10 + i // 20,
                   tasks=8, wal_bytes=1 << 20) for i in range(200)]
    checks = {c.name: c for c in inv.resources("faulted", grow, soak=True)}
    assert not checks["rss_flat"].ok and not checks["fds_flat"].ok
    assert checks["tasks_flat"].ok and checks["wal_bounded"].ok
