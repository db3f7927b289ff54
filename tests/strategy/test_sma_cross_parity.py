"""``sma_cross`` on the strategy base behaves exactly as the 240-line
implementation it replaced (kept in ``reference_sma_cross.py``): through the
real Engine and paper broker, every step's events (as written to
events.jsonl), fills and strategy state are identical, in every path of the
rules (initial entry, reversal, stop-out, entries blocked by the breaker,
sizes refused, stop and target attached, inverse contracts), and a state
written by the old implementation loads into the new one and continues
identically."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from laptop_agents.config import AppConfig
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.domain.symbols import instrument_for
from laptop_agents.engine import Engine
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.strategy import SmaCross, build_strategy
from tests.strategy.reference_sma_cross import ReferenceSmaCross

SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "stop-and-target": {"strategy": {"stop_bps": 40.0, "tp_r": 1.5}},
    "inverse": {"trading": {"symbol": "BTCUSD"}, "strategy": {"stop_bps": 60.0}},
    "breaker": {"risk": {"breaker_consecutive_losses": 1, "breaker_drawdown_pct": 0.5},
                "strategy": {"stop_bps": 30.0}},
    # Sizes near the minimum quantity: some entries are refused, some reversals only close.
    "tiny-size": {"risk": {"risk_pct": 0.00072}},
}
OVERRIDES = {"fast": 3, "slow": 8}


def _config(scenario: dict[str, Any]) -> AppConfig:
    data = {k: dict(v) for k, v in scenario.items()}
    data.setdefault("strategy", {})["name"] = "sma_cross"
    return AppConfig.model_validate(data)


def _pair(config: AppConfig) -> tuple[SmaCross, ReferenceSmaCross]:
    new = build_strategy(config, overrides=OVERRIDES)
    assert isinstance(new, SmaCross)
    old = ReferenceSmaCross(new.params, instrument_for(config.trading.symbol), risk_pct=new.risk_pct,
                            max_notional=new.max_notional, max_leverage=new.max_leverage, name=new.name)
    return new, old


def _candles(n: int) -> list[Candle]:
    return list(SyntheticMarket(seed=11, origin_ts=1_700_000_000_000).candles(0, n))


def _step(engine: Engine, c: Candle, i: int) -> str:
    if i % 480 == 0:
        engine.on_funding(FundingRate(c.ts, 0.0001))
    r = engine.warmup(c) if i < 20 else engine.on_candle(c)
    return json.dumps({"events": [e.to_dict() for e in r.events], "fills": [repr(f) for f in r.fills],
                       "equity": r.equity, "pos": r.position_qty,
                       "state": repr(engine.strategy.snapshot_state())})  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_events_fills_and_state_as_the_old_implementation(name: str) -> None:
    config = _config(SCENARIOS[name])
    new, old = _pair(config)
    e_new, e_old = Engine(config, new), Engine(config, old)
    decisions: Counter[tuple[str, str]] = Counter()
    steps: set[tuple[tuple[str, str], ...]] = set()  # the decisions of one candle, when more than one
    for i, c in enumerate(_candles(3_000)):
        line = _step(e_new, c, i)
        assert line == _step(e_old, c, i), f"candle {i}"
        step = tuple((ev["action"], ev["reason"]) for ev in json.loads(line)["events"] if ev["kind"] == "decision")
        decisions.update(step)
        if len(step) > 1:
            steps.add(step)
    assert e_new.status() == e_old.status()
    assert decisions[("enter", "initial")] and decisions[("enter", "cross")], decisions
    if name == "breaker":  # a cross while blocked only closes
        assert (("block", "entries_blocked"), ("exit", "cross")) in steps, steps
    if name == "tiny-size":  # a reversal whose new leg cannot be sized still closes
        assert (("block", "size_below_min_notional"), ("exit", "cross")) in steps, steps
    if name == "stop-and-target":
        assert decisions[("enter", "initial")] > 1  # re-entries after stop-outs


@pytest.mark.parametrize("name", ["defaults", "breaker"])
def test_a_state_of_the_old_implementation_continues_identically(name: str) -> None:
    config = _config(SCENARIOS[name])
    cs = _candles(2_000)
    new, old = _pair(config)
    e_old, e_ref = Engine(config, old), Engine(config, _pair(config)[1])
    for i, c in enumerate(cs[:1_200]):
        _step(e_old, c, i)
        _step(e_ref, c, i)
    new.restore_state(old.snapshot_state())
    e_new = Engine(config, new, broker=e_old.broker)
    e_new.last_candle_ts = e_old.last_candle_ts
    for i, c in enumerate(cs[1_200:], 1_200):
        assert _step(e_new, c, i) == _step(e_ref, c, i), f"candle {i}"
