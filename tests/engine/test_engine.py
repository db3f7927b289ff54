"""The Engine: idempotence per candle, event order, isolation of strategy
errors, kill-switch shutdown, status, snapshot/restore and determinism."""

from __future__ import annotations

import json
from typing import Any

import pytest

from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import AccountView
from laptop_agents.domain.events import AgentError, Event, OrderCancelled, OrderEvent, TradeClosed
from laptop_agents.domain.models import Candle, FundingRate, OrderIntent, OrderType, Side, Tick
from laptop_agents.engine import Engine, EngineStateError, build_engine
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.store.journal import encode_event
from tests.broker.helpers import DAY, MIN, T0, candle, flat
from tests.engine.scripted import ChurnStrategy, ScriptedStrategy


def cfg(**risk: object) -> AppConfig:
    return AppConfig.model_validate({"risk": risk, "broker": {"slippage_bps": 0.0}})


def market_candles(n: int, seed: int = 3) -> list[Candle]:
    return SyntheticMarket(seed, T0).candles(0, n)


def test_candle_at_or_before_last_is_skipped_and_changes_nothing() -> None:
    s = ScriptedStrategy(lambda c, a: [OrderIntent(f"b{c.ts}", Side.BUY, OrderType.MARKET, 1.0)])
    e = build_engine(cfg(), s)
    assert e.last_candle_ts is None
    r = e.on_candle(flat(5, 100.0))
    assert r.processed and r.position_qty == 1.0 and e.last_candle_ts == T0 + 5 * MIN
    before = e.status()
    for again in (flat(5, 100.0), flat(3, 50.0)):
        r = e.on_candle(again)
        assert not r.processed and r.events == [] and r.fills == []
    assert e.status() == before and len(s.views) == 1


def test_events_in_deterministic_order_with_strategy_reactions_after_broker_events() -> None:
    def script(c: Candle, a: AccountView) -> list[OrderIntent]:
        if c.ts == T0:
            return [OrderIntent("lim", Side.BUY, OrderType.LIMIT, 1.0, price=95.0, stop=90.0)]
        if c.ts == T0 + MIN:
            return [OrderIntent("mkt", Side.BUY, OrderType.MARKET, 1.0)]
        return []

    s = ScriptedStrategy(script)
    e = build_engine(cfg(), s)
    r0 = e.on_candle(flat(0, 100.0))
    assert [ev.kind for ev in r0.events] == ["decision", "order"]
    r1 = e.on_candle(candle(1, 96, 97, 94, 96))
    assert [ev.kind for ev in r1.events] == ["fill", "journal", "decision", "order", "fill", "journal"]
    assert [f.client_id for f in r1.fills] == ["lim", "mkt"]
    assert r1.position_qty == 2.0
    assert s.views[1].working_orders == () and s.views[1].position_qty == 1.0
    assert s.views[0].working_orders == ()
    assert r1.equity == pytest.approx(e.broker.equity())


def test_account_view_shows_working_orders_blocked_entries_and_funding() -> None:
    s = ScriptedStrategy(
        lambda c, a: [OrderIntent("w", Side.BUY, OrderType.LIMIT, 1.0, price=50.0)] if c.ts == T0 else []
    )
    e = build_engine(cfg(), s)
    e.on_funding(FundingRate(T0, 0.0003))
    e.on_candle(flat(0, 100.0))
    e.on_candle(flat(1, 100.0))
    v = s.views[1]
    assert v.working_orders == ("w",) and v.funding_rate == 0.0003 and not v.entries_blocked
    assert v.equity == pytest.approx(10_000.0)
    assert s.funding == [0.0003]
    e.broker.breaker_active = True
    e.on_candle(flat(2, 100.0))
    assert s.views[2].entries_blocked


def test_strategy_errors_become_agent_error_events_and_the_engine_goes_on() -> None:
    class Faulty(ScriptedStrategy):
        def on_candle(self, candle, account):  # type: ignore[no-untyped-def]
            if candle.ts == T0 + MIN:
                raise RuntimeError("boom\nsecond line")
            return super().on_candle(candle, account)

        def on_funding(self, funding):  # type: ignore[no-untyped-def]
            raise ValueError("bad funding")

        def on_broker_event(self, event):  # type: ignore[no-untyped-def]
            raise KeyError("x")

    s = Faulty(lambda c, a: [OrderIntent(f"o{c.ts}", Side.BUY, OrderType.MARKET, 1.0)])
    e = build_engine(cfg(), s)
    e.on_candle(flat(0, 100.0))
    e.on_funding(FundingRate(T0 + 30_000, 0.0001))
    r = e.on_candle(flat(1, 100.0))
    errs = [(ev.agent, ev.error) for ev in r.events if isinstance(ev, AgentError)]
    assert errs == [("scripted", "ValueError: bad funding"), ("scripted", "RuntimeError: boom")]
    assert r.fills == [] and r.processed
    r = e.on_candle(flat(2, 100.0))
    assert [ev.kind for ev in r.events] == ["decision", "order", "agent_error", "fill", "agent_error"]


def test_shutdown_cancels_working_orders_and_flattens_at_last_price() -> None:
    def script(c: Candle, a: AccountView) -> list[OrderIntent]:
        if c.ts == T0:
            return [
                OrderIntent("pos", Side.SELL, OrderType.MARKET, 2.0),
                OrderIntent("w1", Side.SELL, OrderType.LIMIT, 1.0, price=150.0),
            ]
        return []

    e = build_engine(cfg(), ScriptedStrategy(script))
    e.on_candle(flat(0, 100.0))
    e.on_candle(flat(1, 90.0))
    e.on_tick(Tick(T0 + MIN + 5, 89.5, 90.5, 90.0))
    r = e.shutdown(T0 + 2 * MIN, flatten=True, reason="kill_switch")
    kinds = [ev.kind for ev in r.events]
    assert kinds == ["order_cancelled", "fill", "journal", "trade_closed"]
    assert r.events[0] == OrderCancelled(T0 + 2 * MIN, "w1", "kill_switch")
    (f,) = r.fills
    assert (f.side, f.qty, f.price, f.reason) == (Side.BUY, 2.0, 90.5, "flatten")
    assert isinstance(r.events[-1], TradeClosed) and r.events[-1].exit_reason == "flatten"
    assert r.position_qty == 0.0 and e.status().working_orders == ()
    # Without flatten the position stays.
    e2 = build_engine(cfg(), ScriptedStrategy(script))
    e2.on_candle(flat(0, 100.0))
    r2 = e2.shutdown(T0 + MIN, flatten=False, reason="sigterm")
    assert r2.position_qty == -2.0 and [ev.kind for ev in r2.events] == ["order_cancelled"]


def test_status_is_json_and_describes_the_account() -> None:
    s = ScriptedStrategy(
        lambda c, a: (
            [OrderIntent("p", Side.BUY, OrderType.MARKET, 1.0, stop=90.0, target=120.0)] if c.ts == T0 else []
        )
    )
    e = build_engine(cfg(), s)
    e.on_candle(flat(0, 100.0))
    e.on_candle(flat(1, 110.0))
    st = json.loads(json.dumps(e.status().to_dict()))
    assert st["symbol"] == "BTCUSDT" and st["strategy"] == "scripted" and st["currency"] == "USDT"
    assert st["position"]["side"] == "long" and st["position"]["qty"] == 1.0
    assert st["position"]["stop"] == 90.0 and st["unrealized"] == pytest.approx(10.0)
    assert st["equity"] == pytest.approx(10_000 + 10 - 100 * 6e-4)
    assert st["last_candle_ts"] == T0 + MIN and st["breaker"]["active"] is False


def test_warmup_feeds_indicators_only_and_advances_last_candle() -> None:
    s = ScriptedStrategy(lambda c, a: [OrderIntent(f"o{c.ts}", Side.BUY, OrderType.MARKET, 1.0)])
    e = build_engine(cfg(), s)
    for i in range(3):
        r = e.warmup(flat(i, 100.0))
        assert r.processed and r.fills == []
    assert s.warmed == [T0, T0 + MIN, T0 + 2 * MIN] and s.views == []
    assert not e.warmup(flat(2, 100.0)).processed
    assert not e.on_candle(flat(2, 100.0)).processed
    assert e.on_candle(flat(3, 100.0)).fills


def test_engine_breaker_trip_blocks_entries_until_next_day() -> None:
    s = ScriptedStrategy(
        lambda c, a: (
            [OrderIntent(f"o{c.ts}", Side.BUY, OrderType.MARKET, 10.0)]
            if c.ts in (T0, T0 + 2 * MIN, T0 + DAY)
            else []
        )
    )
    e = build_engine(cfg(breaker_drawdown_pct=5, max_daily_loss_pct=50), s)
    e.on_candle(flat(0, 1000.0))
    r = e.on_candle(flat(1, 900.0))
    assert [ev.kind for ev in r.events][0] == "breaker_trip"
    r = e.on_candle(flat(2, 900.0))
    assert [ev.reason for ev in r.events if isinstance(ev, OrderEvent)] == ["breaker"]
    assert s.views[-1].entries_blocked
    r = e.on_candle(flat(1440, 900.0))
    assert [ev.kind for ev in r.events][:1] == ["breaker_reset"] and r.fills


def _run(engine: Engine, candles: list[Candle]) -> list[str]:
    lines: list[str] = []
    for c in candles:
        if c.ts % (8 * 3_600_000) == 0:
            engine.on_funding(FundingRate(c.ts, 0.0001 if (c.ts // 3_600_000) % 16 else -0.0002))
        r = engine.on_candle(c)
        lines.extend(encode_event(ev) for ev in r.events)
    return lines


def test_same_input_gives_byte_identical_events() -> None:
    candles = market_candles(3000)
    a = _run(build_engine(cfg(), ChurnStrategy(5)), candles)
    b = _run(build_engine(cfg(), ChurnStrategy(5)), candles)
    assert a == b
    kinds = {json.loads(x)["kind"] for x in a}
    assert {"order", "fill", "trade_closed", "funding", "order_expired"} <= kinds


def test_snapshot_restore_continues_exactly_like_an_uninterrupted_run() -> None:
    candles = market_candles(3000)
    full = build_engine(cfg(), ChurnStrategy(9))
    expected = _run(full, candles)
    e = build_engine(cfg(), ChurnStrategy(9))
    got = _run(e, candles[:1234])
    blob = e.snapshot()
    e2 = Engine.restore(blob, cfg(), ChurnStrategy(0))
    assert e2.status() == e.status()
    got += _run(e2, candles)  # from the start: candles up to 1234 are skipped
    assert got == expected
    assert e2.status() == full.status()


def test_restore_refuses_another_symbol_or_strategy() -> None:
    e = build_engine(cfg(), ChurnStrategy(1))
    e.on_candle(flat(0, 100.0))
    blob = e.snapshot()
    with pytest.raises(EngineStateError, match="strategy"):
        Engine.restore(blob, cfg(), ScriptedStrategy())
    inverse = AppConfig.model_validate({"trading": {"symbol": "BTCUSD"}})
    with pytest.raises(EngineStateError, match="symbol"):
        Engine.restore(blob, inverse, ChurnStrategy(1))
    with pytest.raises(EngineStateError, match="unreadable"):
        Engine.restore(b"garbage", cfg(), ChurnStrategy(1))


def test_strategy_with_explicit_state_methods_is_restored_in_place() -> None:
    class Stateful(ScriptedStrategy):
        def __init__(self) -> None:
            super().__init__(name="stateful")
            self.count = 0

        def on_candle(self, candle, account):  # type: ignore[no-untyped-def]
            self.count += 1
            return super().on_candle(candle, account)

        def snapshot_state(self) -> int:
            return self.count

        def restore_state(self, state: int) -> None:
            self.count = state

    e = build_engine(cfg(), Stateful())
    for i in range(4):
        e.on_candle(flat(i, 100.0))
    target = Stateful()
    e2 = Engine.restore(e.snapshot(), cfg(), target)
    assert e2.strategy is target and target.count == 4


def test_bad_strategy_output_is_an_agent_error() -> None:
    class Bad(ScriptedStrategy):
        def on_candle(self, candle, account):  # type: ignore[no-untyped-def]
            out = super().on_candle(candle, account)
            out.intents.append("not an intent")  # type: ignore[arg-type]
            return out

    r = build_engine(cfg(), Bad()).on_candle(flat(0, 100.0))
    assert [ev.kind for ev in r.events] == ["decision", "agent_error"]


def test_events_are_plain_json() -> None:
    e = build_engine(cfg(), ChurnStrategy(2))
    for c in market_candles(800):
        for ev in e.on_candle(c).events:
            assert isinstance(ev, Event)
            json.loads(encode_event(ev))


def _real(name: str) -> tuple[AppConfig, Any]:
    strategy_mod = pytest.importorskip("laptop_agents.strategy")
    config = AppConfig.model_validate({"strategy": {"name": name}})
    return config, strategy_mod.build_strategy(config)


@pytest.mark.parametrize("name", ["default", "sma_cross"])
def test_real_strategies_restore_and_continue_identically(name: str) -> None:
    candles = market_candles(4000, seed=8)
    config, strategy = _real(name)
    full = build_engine(config, strategy)
    expected = _run(full, candles)
    assert any('"kind":"fill"' in line for line in expected)
    config, strategy = _real(name)
    e = build_engine(config, strategy)
    got = _run(e, candles[:2500])
    blob = e.snapshot()
    config, fresh = _real(name)
    e2 = Engine.restore(blob, config, fresh)
    # the real strategies have explicit compact state: restored into the freshly
    # built strategy, so its configuration objects are the fresh ones, not copies
    assert e2.strategy is fresh and getattr(e2.strategy, "instrument", None) is getattr(
        fresh, "instrument", None
    )
    got += _run(e2, candles[2500:])
    assert got == expected
    assert e2.status() == full.status()


def test_restore_refuses_a_differently_shaped_strategy_configuration() -> None:
    config, strategy = _real("default")
    e = build_engine(config, strategy)
    e.on_candle(flat(0, 100.0))
    blob = e.snapshot()

    with pytest.raises(EngineStateError, match="differently shaped configuration"):
        Engine.restore(blob, config, OtherShape(strategy.name))  # type: ignore[arg-type]


class OtherShape:
    """Same name as the stored strategy, but another configuration inside."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.params = AppConfig()  # a pydantic model of another type at index 0

    def warmup(self, c: Candle) -> None: ...

    def on_candle(self, c: Candle, a: AccountView) -> Any: ...

    def on_funding(self, f: FundingRate) -> None: ...

    def on_broker_event(self, ev: Event) -> list[Event]:
        return []


def test_starting_equity_from_config_else_strategy_params_else_default() -> None:
    class Risk:
        equity = 50_000.0

    class Params:
        risk = Risk()

    s = ScriptedStrategy()
    s.params = Params()  # type: ignore[attr-defined]
    assert build_engine(cfg(), s).status().equity == 50_000.0
    assert build_engine(cfg(starting_equity=2_000.0), s).status().equity == 2_000.0
    assert build_engine(cfg(), ScriptedStrategy()).status().equity == 10_000.0


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTCUSD"])
def test_account_view_and_step_equity_match_the_broker_accessors(symbol: str) -> None:
    """The per-candle view is built in one pass (and without the dataclass
    __init__); it must equal the one assembled from the broker's accessors,
    and the step's equity must be the broker's, bit for bit."""
    config = AppConfig.model_validate(
        {"trading": {"symbol": symbol}, "risk": {"max_daily_loss_pct": 0.5, "breaker_consecutive_losses": 4}}
    )
    strategy = ChurnStrategy(4, qty=0.3 if symbol == "BTCUSDT" else 9_000.0)
    e = build_engine(config, strategy)
    decide = strategy.on_candle
    seen = {"blocked": 0, "position": 0}

    def checked(c: Candle, view: AccountView) -> Any:
        b = e.broker
        pos = b.position
        expected = AccountView(
            ts=c.ts, equity=b.equity_quote(), position_qty=pos.qty if pos else 0.0,
            entry_price=pos.entry_price if pos else 0.0, working_orders=tuple(b.orders),
            entries_blocked=bool(b.entries_blocked()), funding_rate=b.funding_rate,
        )  # fmt: skip
        assert view == expected and type(view) is AccountView
        seen["blocked"] += view.entries_blocked
        seen["position"] += pos is not None
        return decide(c, view)

    strategy.on_candle = checked  # type: ignore[method-assign]
    for i, c in enumerate(market_candles(3000, seed=6)):
        if i % 480 == 0:
            e.on_funding(FundingRate(c.ts, 0.0003))
        r = e.on_candle(c)
        assert r.equity.hex() == e.broker.equity().hex() and r.position_qty == e.broker.position_qty
    assert seen["blocked"] > 0 and seen["position"] > 100


def test_paused_entries_are_refused_like_the_breaker_while_exits_keep_working() -> None:
    """The operator's pause: the strategy sees entries_blocked, a new entry is
    refused with reason "paused", a resting entry reaching its price is
    cancelled, and a reduction still fills; resume lets entries in again. The
    switch is not engine state: a snapshot neither carries nor clears it."""
    plan: dict[int, list[OrderIntent]] = {
        T0: [OrderIntent("long1", Side.BUY, OrderType.MARKET, 1.0),
             OrderIntent("rest", Side.BUY, OrderType.LIMIT, 1.0, price=95.0)],
        T0 + 2 * MIN: [OrderIntent("add", Side.BUY, OrderType.MARKET, 1.0),
                       OrderIntent("cut", Side.SELL, OrderType.MARKET, 0.5)],
        T0 + 4 * MIN: [OrderIntent("again", Side.BUY, OrderType.MARKET, 1.0)],
    }
    s = ScriptedStrategy(lambda c, a: plan.get(c.ts, []))
    e = build_engine(cfg(), s)
    e.on_candle(flat(0, 100.0))
    assert e.broker.position_qty == pytest.approx(1.0) and not e.entries_paused
    e.set_entries_paused(True)
    assert e.entries_paused and e.status().entries_blocked == "paused"
    r = e.on_candle(Candle(T0 + MIN, 100.0, 100.0, 90.0, 94.0, 10.0))  # trades through the resting limit
    assert [(ev.client_id, ev.reason) for ev in r.events if isinstance(ev, OrderCancelled)] == [
        ("rest", "paused")]
    assert s.views[-1].entries_blocked
    r = e.on_candle(flat(2, 100.0))
    orders = {ev.client_id: ev for ev in r.events if isinstance(ev, OrderEvent)}
    assert orders["add"].status == "rejected" and orders["add"].reason == "paused"
    assert orders["cut"].status == "accepted" and "cut" in {f.client_id for f in r.fills}
    assert e.broker.position_qty == pytest.approx(0.5)
    snap = Engine.restore(e.snapshot(), cfg(), ScriptedStrategy(lambda c, a: []))
    assert not snap.entries_paused  # the shell owns the switch (persisted in the workspace)
    e.set_entries_paused(False)
    e.on_candle(flat(3, 100.0))
    assert not s.views[-1].entries_blocked and e.status().entries_blocked is None
    e.on_candle(flat(4, 100.0))
    assert e.broker.position_qty == pytest.approx(1.5)
