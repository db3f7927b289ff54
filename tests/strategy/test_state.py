"""Explicit strategy state (``snapshot_state`` / ``restore_state``): exact,
complete, compact, and refused when it does not fit the configuration."""

from __future__ import annotations

import pickle
from collections import deque
from typing import Any

import pytest
from pydantic import BaseModel

from laptop_agents.config import AppConfig
from laptop_agents.domain.models import Candle, FundingRate, Instrument
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.strategy import build_strategy
from tests.strategy.test_supervisor import TinyAccount

CONFIG_TYPES = (BaseModel, Instrument)


def attribute_names(cls: type) -> tuple[str, ...]:
    """The instance attributes a class declares: its ``__slots__``, or in the
    compiled core (mypyc, where a class has no ``__slots__``) the attribute
    list mypyc records for pickling."""
    return tuple(cls.__dict__.get("__slots__", ())) or tuple(cls.__dict__.get("__mypyc_attrs__", ()))


def structure(obj: Any) -> Any:
    """Every slot of every object reachable from ``obj``, floats bit-exact,
    configuration objects (parameters, instrument) left out: two strategies
    with equal structures behave identically from here on."""
    if obj is None or isinstance(obj, bool | int | str | bytes):
        return obj
    if isinstance(obj, float):
        return obj.hex()
    if isinstance(obj, CONFIG_TYPES):
        return "<config>"
    if isinstance(obj, deque):
        return ("deque", obj.maxlen, [structure(x) for x in obj])
    if isinstance(obj, list | tuple):
        return (type(obj).__name__, [structure(x) for x in obj])
    if isinstance(obj, dict):
        return ("dict", [(k, structure(v)) for k, v in obj.items()])
    slots = [s for cls in type(obj).__mro__ for s in attribute_names(cls)]
    missing = object()
    fields = {s: structure(getattr(obj, s, missing)) if hasattr(obj, s) else "<unset>" for s in slots}
    # A class without __slots__ of its own (a strategy on the base) keeps its attributes in __dict__.
    fields.update((k, structure(v)) for k, v in getattr(obj, "__dict__", {}).items())
    return (type(obj).__name__, fields)


def candles(n: int) -> list[Candle]:
    return list(SyntheticMarket(seed=5, origin_ts=1_700_000_000_000).candles(0, n))


def run(strat: Any, cs: list[Candle], acct: TinyAccount, first: int) -> list[str]:
    """Candles ``first..`` of a run; funding cycles through OK, HALF, NO_TRADE
    and HALT every 240 candles (so every gate and the cooldown happen)."""
    lines: list[str] = []
    for i, c in enumerate(cs, first):
        if i % 240 == 0:
            strat.on_funding(FundingRate(c.ts, [0.0001, 0.00035, 0.0006, 0.0012][(i // 240) % 4]))
        lines.extend(repr(e) for e in acct.step(c, strat))
    return lines


def config(name: str, **strategy: Any) -> AppConfig:
    return AppConfig.model_validate({"strategy": {"name": name, **strategy}})


@pytest.mark.parametrize("name", ["default", "tight", "sma_cross"])
def test_restored_state_is_complete_and_continues_identically(name: str) -> None:
    cs = candles(2_400)
    strat, acct = build_strategy(config(name)), TinyAccount()
    checked = 0
    for start in range(0, 2_000, 250):
        run(strat, cs[start : start + 250], acct, start)
        state = strat.snapshot_state()  # type: ignore[attr-defined]
        fresh = build_strategy(config(name))
        fresh.restore_state(pickle.loads(pickle.dumps(state)))  # type: ignore[attr-defined]
        assert structure(fresh) == structure(strat)
        checked += 1
    acct_copy = pickle.loads(pickle.dumps(acct))
    assert run(fresh, cs[2_000:], acct_copy, 2_000) == run(strat, cs[2_000:], acct, 2_000)
    assert checked == 8


def test_every_stateful_field_was_exercised() -> None:
    """The completeness check above only proves something for fields that held
    a non-initial value at a snapshot: make sure the run got them there."""
    cs = candles(2_000)
    strat, acct = build_strategy(config("default")), TinyAccount()
    initial = structure(build_strategy(config("default")))
    changed: set[str] = set()
    for start in range(0, 2_000, 10):
        run(strat, cs[start : start + 10], acct, start)
        now = structure(strat)
        for agent, fields in now[1].items():
            if fields != initial[1][agent]:
                if isinstance(fields, tuple) and isinstance(fields[1], dict):
                    changed |= {f"{agent}.{k}" for k, v in fields[1].items() if v != initial[1][agent][1][k]}
                else:
                    changed.add(agent)
    for field in ("_bar", "_last_block", "market_intake.trend", "market_intake.regime", "cvd_divergence.signal",
                  "setup_signal.blocked", "setup_signal.blocked_setup", "execution_risk_sentinel.cooldown_until",
                  "pending_trigger.client_id", "journal_coach.pending", "journal_coach.open"):  # fmt: skip
        assert field in changed, field


def test_state_is_compact_and_does_not_grow() -> None:
    cs = candles(3_000)
    for name in ("default", "sma_cross"):
        strat, acct = build_strategy(config(name)), TinyAccount()
        run(strat, cs[:1_000], acct, 0)
        size = len(pickle.dumps(strat.snapshot_state(), pickle.HIGHEST_PROTOCOL))  # type: ignore[attr-defined]
        whole = len(pickle.dumps(strat, pickle.HIGHEST_PROTOCOL))
        run(strat, cs[1_000:], acct, 1_000)
        later = len(pickle.dumps(strat.snapshot_state(), pickle.HIGHEST_PROTOCOL))  # type: ignore[attr-defined]
        assert size < whole * 0.7, (name, size, whole)
        assert size < 3_000 and abs(later - size) < 300, (name, size, later)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("default", {"ema_fast": 21}),
        ("default", {"vwap_bars": 30}),
        ("default", {"lookback": 5}),
        ("default", {"lookback_bars": 12}),
        ("sma_cross", {"slow": 31}),
    ],
)
def test_state_of_other_periods_is_refused(name: str, overrides: dict[str, Any]) -> None:
    strat = build_strategy(config(name))
    for c in candles(300):
        strat.warmup(c)
    state = strat.snapshot_state()  # type: ignore[attr-defined]
    other = build_strategy(config(name), overrides=overrides)
    with pytest.raises(ValueError, match="differently shaped configuration"):
        other.restore_state(state)  # type: ignore[attr-defined]
    # other values (thresholds, multipliers) are configuration, not state: accepted
    build_strategy(config(name), overrides={"tp_r_mult": 3.0}).restore_state(state)  # type: ignore[attr-defined]


def test_state_of_another_strategy_kind_is_refused() -> None:
    sup, sma = build_strategy(config("default")), build_strategy(config("sma_cross"))
    with pytest.raises(ValueError, match="differently shaped configuration"):
        sup.restore_state(sma.snapshot_state())  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="differently shaped configuration"):
        sma.restore_state(sup.snapshot_state())  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "overrides"), [("default", {"vwap_bars": 30}), ("sma_cross", {"slow": 31})])
def test_a_refused_state_leaves_the_strategy_as_it_was(name: str, overrides: dict[str, Any]) -> None:
    cs = candles(400)
    source = build_strategy(config(name))
    for c in cs[:300]:
        source.warmup(c)
    target = build_strategy(config(name), overrides=overrides)
    for c in cs[:120]:
        target.warmup(c)
    before = structure(target)
    with pytest.raises(ValueError, match="differently shaped configuration"):
        target.restore_state(source.snapshot_state())  # type: ignore[attr-defined]
    assert structure(target) == before


def test_a_pickle_of_the_earlier_vwap_layout_still_loads() -> None:
    """State stores written before the VWAP window became two deques hold a
    pickled strategy whose VWAP has one deque of (tp*v, v) pairs in ``_buf``."""
    import copyreg
    import io

    from laptop_agents.strategy.indicators import RollingVWAP

    class LegacyPickler(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is RollingVWAP:
                slots = {s: getattr(obj, s) for s in attribute_names(RollingVWAP) if s not in ("_pvs", "_vs")}
                slots["_buf"] = deque(zip(obj._pvs, obj._vs, strict=True), maxlen=obj.period)
                return copyreg.__newobj__, (RollingVWAP,), (None, slots)
            return NotImplemented

    cs = candles(600)
    strat, acct = build_strategy(config("default")), TinyAccount()
    run(strat, cs[:400], acct, 0)
    buf = io.BytesIO()
    LegacyPickler(buf, pickle.HIGHEST_PROTOCOL).dump(strat)
    assert b"_buf" in buf.getvalue()
    old = pickle.loads(buf.getvalue())
    assert structure(old) == structure(strat)
    acct_copy = pickle.loads(pickle.dumps(acct))
    assert run(old, cs[400:], acct_copy, 400) == run(strat, cs[400:], acct, 400)
