"""Crash-only startup: the stored engine if there is one, else a fresh one.

A first start and a restart after ``kill -9`` run exactly this code. The
engine does not know the state store: it reads through :class:`StateSource`
(which :class:`laptop_agents.store.StateStore` implements), so the store may
depend on the engine and not the other way round.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import Strategy
from laptop_agents.engine.engine import Engine, build_engine
from laptop_agents.engine.state import EngineState


class StoredState(NamedTuple):
    """What a state source holds for one engine: its state and every client id
    it has processed (a repeated id is a duplicate, across restarts too)."""

    state: EngineState
    processed_ids: frozenset[str]


class StateSource(Protocol):
    """Where recovery reads a stored engine state from."""

    def read_state(self, config: AppConfig, strategy_name: str) -> StoredState | None:
        """The stored state, or None when nothing is stored. Raises the
        source's own error when the state belongs to another configuration
        (symbol, strategy, source, interval) or cannot be read."""
        ...

    def refused(self, exc: Exception) -> Exception:
        """The source's error for a stored state the configured engine could
        not continue from (``exc``: an ``EngineStateError`` when the strategy
        refused its state, anything else when the state is damaged)."""
        ...


def load_engine(
    source: StateSource, config: AppConfig, strategy: Strategy, *, now_ts: int | None = None
) -> Engine | None:
    """The engine continuing from ``source``, or None when nothing is stored.

    Working orders due by the last candle (or ``now_ts`` if later, e.g. the
    wall clock of a live restart) expire on load; their events go out with
    the next step."""
    stored = source.read_state(config, strategy.name)
    if stored is None:
        return None
    try:
        engine = Engine.from_state(config, strategy, stored.state, stored.processed_ids)
    except Exception as exc:
        raise source.refused(exc) from None
    check_ts = engine.last_candle_ts
    if now_ts is not None and (check_ts is None or now_ts > check_ts):
        check_ts = now_ts
    if check_ts is not None and stored.state.broker.orders:
        engine.expire_orders(check_ts)
    return engine


def open_engine(
    source: StateSource, config: AppConfig, strategy: Strategy, *, now_ts: int | None = None
) -> Engine:
    """The stored engine if there is one (see :func:`load_engine`), else a fresh one."""
    engine = load_engine(source, config, strategy, now_ts=now_ts)
    return engine if engine is not None else build_engine(config, strategy)
