"""The Engine, the one object that backtest, replay and live all drive
(see :mod:`laptop_agents.engine.engine`)."""

from laptop_agents.engine.engine import (
    Engine,
    EngineStateError,
    PersistPayload,
    build_engine,
    starting_equity,
)

__all__ = ["Engine", "EngineStateError", "PersistPayload", "build_engine", "starting_equity"]
