"""An in-process live session on the mock source with the console wired in, for tests.

The session is the real :class:`AsyncRunner` with the real engine, store,
journal, run writer and console; only the strategy may be one of the
harness's scripted ones (so that trades, a held position or a breaker trip
happen on cue) and the console's timings are fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from laptop_agents.config import AppConfig, load_config
from laptop_agents.console.app import DashboardOptions
from laptop_agents.engine import build_engine
from laptop_agents.report import RunWriter
from laptop_agents.session.clock import SessionClock
from laptop_agents.session.parts import ConsoleOptions
from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
from laptop_agents.sources.factory import SessionSource
from laptop_agents.sources.mock import MockFaults, MockSource
from laptop_agents.store import EventJournal, StateStore
from laptop_agents.strategy import build_strategy
from tests.session.harness import ScriptedStrategy

FAST_DASHBOARD = DashboardOptions(interval_s=0.05, min_interval_s=0.01, keepalive_s=1.0)


def config(**over: Any) -> AppConfig:
    base: dict[str, Any] = {"trading.speed": 600.0, "trading.warmup_bars": 5, "trading.duration_min": 600.0,
                            "system.kill_check_interval_s": 0.05, "system.heartbeat_interval_s": 0.2}
    return load_config("paper", {**base, **over}, environ={}).config


def session(tmp: Path, cfg: AppConfig, *, plan: str | None = None, faults: MockFaults | None = None,
            console: ConsoleOptions | None = None, run_id: str = "live-t", store: Path | str = ":memory:",
            wall: Callable[[], float] | None = None, **opts: Any) -> AsyncRunner[Any]:
    """A runner on ``tmp`` as its workspace (kill.txt, pause.json, heartbeat.json, runs/)."""
    mock = MockSource(cfg.trading, faults=faults)
    source = SessionSource(mock, mock.now_ms, cfg.trading.speed, live=True, description="mock")
    strategy: Any = ScriptedStrategy(plan) if plan else build_strategy(cfg)
    run_dir = tmp / "runs" / run_id
    parts = SessionParts(engine=build_engine(cfg, strategy), store=StateStore(store),
                         journal=EventJournal(run_dir / "events.jsonl"), source=source, writer=RunWriter(run_dir))
    c = console or ConsoleOptions()
    if c.dashboard_options is None:
        c = replace(c, dashboard_options=FAST_DASHBOARD)
    options = RunnerOptions(run_id=run_id, run_dir=run_dir, mode="live-session", heartbeat_path=tmp / "heartbeat.json",
                            kill_file=tmp / "kill.txt", pause_file=tmp / "pause.json", install_signal_handlers=False,
                            freeze_gc=False, workspace=tmp, console=c, **opts)
    clock = None
    if wall is not None:
        clock = SessionClock.for_source(source, wall=wall)
    return AsyncRunner(cfg, parts, options, print_fn=lambda _s: None, clock=clock)


async def until(pred: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.02)


def events(tmp: Path, run_id: str = "live-t") -> list[dict[str, Any]]:
    path = tmp / "runs" / run_id / "events.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def controls(tmp: Path, run_id: str = "live-t") -> list[dict[str, Any]]:
    return [e for e in events(tmp, run_id) if e["kind"] == "session" and e.get("event") == "control"]
