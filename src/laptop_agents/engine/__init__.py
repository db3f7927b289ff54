"""The Engine, the one object that backtest, replay and live all drive
(:mod:`~laptop_agents.engine.engine`), its state record and codec
(:mod:`~laptop_agents.engine.state`), its status record
(:mod:`~laptop_agents.engine.status`) and crash-only recovery
(:mod:`~laptop_agents.engine.recovery`)."""

from laptop_agents.engine.engine import (
    Engine,
    EngineIdentity,
    PersistPayload,
    build_engine,
    starting_equity,
)
from laptop_agents.engine.recovery import StateSource, StoredState, load_engine, open_engine
from laptop_agents.engine.state import EngineState, EngineStateError
from laptop_agents.engine.status import BreakerStatus, EngineStatus, PositionStatus

__all__ = [
    "BreakerStatus",
    "Engine",
    "EngineIdentity",
    "EngineState",
    "EngineStateError",
    "EngineStatus",
    "PersistPayload",
    "PositionStatus",
    "StateSource",
    "StoredState",
    "build_engine",
    "load_engine",
    "open_engine",
    "starting_equity",
]
