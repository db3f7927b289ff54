"""The tasks that watch a running session and end it through the one door.

- **kill switch**: polls ``<workspace>/kill.txt``; from the start, so a stop
  request during a long warm-up ends it too. A failed look (EACCES, EIO) is
  counted and retried: a dead kill-switch task would ignore the file for the
  rest of the session.
- **stale data**: no real market data for the stale timeout, or (live
  sources) market data arriving while no candle is processed for long enough
  -- a store ahead of the market skips every candle and must not look alive.
- **heartbeat**: writes the heartbeat and flushes the run files every
  ``heartbeat_interval_s``.
- **duration**: the configured minutes of market time, in wall seconds at the
  source's speed.

Each one only requests a stop; the runner treats a supervisor that dies as a
crash, because the session could no longer keep the promise it kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic

from laptop_agents.config import AppConfig
from laptop_agents.logs import scrub
from laptop_agents.session.guards import ProgressGuard
from laptop_agents.session.parts import E, SessionParts
from laptop_agents.session.snapshots import Pulse
from laptop_agents.session.state import SessionState
from laptop_agents.stop_reasons import StopReason


def kill_file_flatten(text: str) -> bool | None:
    """The kill file's own word on the position (``"flatten": true/false`` in its
    JSON, written by ``stop --flatten/--no-flatten`` or a watching dashboard);
    None (the configured default) for anything else, a hand-made file included."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get("flatten") if isinstance(data, dict) else None
    return value if isinstance(value, bool) else None


class Supervisors(Generic[E]):
    def __init__(self, config: AppConfig, parts: SessionParts[E], state: SessionState, pulse: Pulse,
                 log: logging.Logger) -> None:
        self.config = config
        self.parts = parts
        self.state = state
        self.pulse = pulse
        self.log = log

    async def kill_switch(self, path: Path) -> None:
        interval = min(1.0, self.config.system.kill_check_interval_s)
        state = self.state
        while True:
            try:
                seen = path.exists()
            except OSError as exc:
                self.log.warning("kill switch check failed: %s", exc)
                state.spend("kill_switch_check")
                seen = False
            if seen:
                try:
                    text = path.read_text(encoding="utf-8", errors="replace").strip()
                except OSError:
                    text = ""
                detail = scrub(text)[:300]
                state.request_stop(StopReason.KILL_SWITCH, f"{path}" + (f": {detail}" if detail else ""),
                                   flatten=kill_file_flatten(text))
                return
            await asyncio.sleep(interval)

    async def stale_data(self) -> None:
        state = self.state
        stale, progress = state.stale, state.progress
        step = max(0.01, min(1.0, stale.timeout_s / 4))
        while True:
            await asyncio.sleep(step)
            if stale.stale():
                state.request_stop(StopReason.STALE_DATA,
                                   f"no market data for {stale.age_s():.1f} s (timeout {stale.timeout_s:g} s)")
                return
            if progress is not None and progress.stalled():
                state.request_stop(StopReason.STALE_DATA, self._stall_detail(progress))
                return

    def _stall_detail(self, progress: ProgressGuard) -> str:
        last = self.parts.engine.last_candle_ts
        when = datetime.fromtimestamp(last / 1000.0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if last is not None else "none"
        head = (f"no candle processed for {progress.age_s():.1f} s (limit {progress.timeout_s:g} s) "
                f"although market data arrived")
        if progress.skipped_since:
            return (f"{head}: {progress.skipped_since} candles skipped as at or before the last processed "
                    f"candle {when}")
        return f"{head}: no closed candle came (last processed candle {when})"

    async def heartbeat(self) -> None:
        interval = self.config.system.heartbeat_interval_s
        while True:
            await asyncio.sleep(interval)
            self.pulse.beat()
            writer = self.parts.writer
            if writer is not None:
                try:
                    writer.flush()  # keep the run files current for `status` and readers
                except OSError as exc:
                    self.log.warning("run files flush failed: %s", exc)
                    self.state.spend("report_write")

    async def duration(self, wall_s: float) -> None:
        await asyncio.sleep(wall_s)
        self.state.request_stop(StopReason.DURATION, f"{self.config.trading.duration_min:g} min reached")
