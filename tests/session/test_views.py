"""Every read of the engine's status goes through session.views."""

from __future__ import annotations

from typing import Any

from laptop_agents.config import load_config
from laptop_agents.engine import build_engine
from laptop_agents.session.views import EngineView, read_engine
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.strategy import build_strategy


def test_the_view_of_a_real_engine() -> None:
    config = load_config("paper", {}, environ={}).config
    engine = build_engine(config, build_strategy(config))
    for c in SyntheticMarket(11, 1_767_225_600_000).candles(0, 3000):
        engine.on_candle(c)
        if engine.status().position.qty:
            break
    status = engine.status().to_dict()
    view = read_engine(engine)
    assert view.error is None
    assert view.equity == status["equity"] and view.position == status["position"]
    assert view.position_qty == status["position"]["qty"] != 0.0
    assert view.working_orders == status["working_orders"]
    assert view.working_order_count == len(status["working_orders"])
    assert view.breaker == status["breaker"] and view.last_candle_ts == engine.last_candle_ts
    assert view.last_price == status["last_price"] and view.fees_paid == status["fees_paid"] > 0
    assert (view.symbol, view.currency, view.strategy) == (status["symbol"], status["currency"], status["strategy"])


def test_a_status_that_raises_is_a_view_with_the_error_only() -> None:
    class Broken:
        def status(self) -> Any:
            raise ZeroDivisionError("status bug")

    view = read_engine(Broken())
    assert view == EngineView(error="ZeroDivisionError")
    assert view.equity is None and view.working_order_count is None and view.position_qty == 0.0
