"""What the session shows the outside world: the heartbeat, ``/health`` and summary.json.

Each is built from the session's state and the engine's view
(:mod:`laptop_agents.session.views`) when asked for, so none of them holds a
copy that could go stale.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from laptop_agents.config import AppConfig
from laptop_agents.heartbeat import HeartbeatWriter
from laptop_agents.session.parts import EngineLike, RunnerOptions
from laptop_agents.session.state import SessionState
from laptop_agents.session.views import EngineView, read_engine
from laptop_agents.stop_reasons import StopReason


def heartbeat_fields(engine: EngineLike, state: SessionState, mode: str) -> dict[str, Any]:
    """The live part of a heartbeat, by :class:`~laptop_agents.heartbeat.Heartbeat` field name."""
    view = read_engine(engine)
    progress = state.progress
    return {
        "equity": view.equity,
        "position": view.position,
        "working_orders": view.working_order_count,
        "last_candle_ts": view.last_candle_ts if view.error is None else engine.last_candle_ts,
        "market_data_age_s": round(state.stale.age_s(), 3),
        "errors": state.errors.snapshot(),
        "breaker": view.breaker or {},
        "mode": mode,
        "candles": state.counts["candles"],
        "skipped": state.counts["skipped"],
        "last_processed_age_s": round(progress.age_s(), 3) if progress is not None else None,
    }


class Pulse:
    """The session's heartbeat file (if it has one) and its status word."""

    def __init__(self, writer: HeartbeatWriter | None, state: SessionState, log: logging.Logger) -> None:
        self.writer = writer
        self.state = state
        self.log = log

    def beat(self, status: str | None = None) -> None:
        """Write a heartbeat, moving to ``status`` first; a failed write spends the error budget."""
        state = self.state
        if status is not None:
            state.status = status
        if self.writer is None:
            return
        try:
            self.writer.beat(status, state.reason.value if state.reason else None)
        except OSError as exc:
            self.log.warning("heartbeat write failed: %s", exc)
            state.spend("heartbeat")


def health_body(engine: EngineLike, source_status: dict[str, Any], state: SessionState, options: RunnerOptions,
                uptime_s: float) -> dict[str, Any]:
    """``GET /health``'s JSON (the console's ``SessionView.health()`` contract)."""
    view = read_engine(engine)
    return {
        "status": state.status,
        "reason": state.reason.value if state.reason else None,
        "run_id": options.run_id,
        "mode": options.mode,
        "uptime_s": round(uptime_s, 3),
        "market_data_age_s": round(state.stale.age_s(), 3),
        "stale_timeout_s": state.stale.timeout_s,
        "stale": state.stale.stale(),
        "progress": state.progress.snapshot() if state.progress is not None else None,
        "source": source_status,
        "errors": state.errors.snapshot(),
        "equity": view.equity,
        "position": view.position,
        "working_orders": view.working_orders,
        "breaker": view.breaker,
        "last_candle_ts": view.last_candle_ts,
        "counts": dict(state.counts),
        "latency": state.latency.snapshot(),
    }


def _iso(wall_s: float) -> str:
    return datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="seconds")


def summary(*, config: AppConfig, options: RunnerOptions, source: str, state: SessionState, first: EngineView,
            now: EngineView, reason: StopReason, exit_code: int, final_commit: bool, started_wall: float,
            ended_wall: float) -> dict[str, Any]:
    """The session's fields of summary.json (the report adds its metrics and files)."""
    t = config.trading
    return {
        "run_id": options.run_id,
        "mode": options.mode,
        "source": source,
        "symbol": t.symbol,
        "interval": t.interval,
        "execution_mode": t.execution_mode,
        "strategy": now.strategy if now.strategy is not None else config.strategy.name,
        "reason": reason.value,
        "reason_detail": state.detail,
        "exit_code": exit_code,
        "final_commit": final_commit,
        "started_at": _iso(started_wall),
        "ended_at": _iso(ended_wall),
        "wall_s": round(ended_wall - started_wall, 3),
        "starting_equity": first.equity,
        "final_equity": now.equity,
        "position": now.position,
        "working_orders": now.working_orders,
        "breaker": now.breaker,
        "session": dict(state.counts),
        "errors": state.errors.snapshot(),
        "latency": {"commit": state.latency.snapshot(), "commit_cpu": state.cpu_latency.snapshot(),
                    "step": state.step_latency.snapshot()},
        "workspace": str(options.workspace) if options.workspace else None,
    }
