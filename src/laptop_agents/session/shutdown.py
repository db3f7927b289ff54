"""How every session ends, whatever ended it: four steps, in this order.

1. **The final step and commit**: a user stop (kill switch, signal) runs the
   engine's shutdown (cancel working orders, flatten if configured); any
   other stop commits what arrived since the last candle (a funding rate...).
   Never on a broken engine, a corrupt store or a full disk: the store keeps
   the last good state and a restart resumes from it. A clean stop whose
   final commit fails becomes that failure's stop (or a crash).
2. **The outputs**: the ``session`` stop event, summary.json and the report
   (summary.json alone if the report fails).
3. **Closing**: store, source, then the ``stopped`` heartbeat with the reason.
4. **The kill file** is consumed only now, and only after a successful final
   commit: if the session dies during its shutdown the file stays, the
   watchdog does not restart, and the user sees the pending stop.
5. **The console** last: the stop alert, the dashboard's last update
   (``stopped``, with the reason), then its servers close -- bounded in time.

A user stop flattens the position as the stop request said (the dashboard's
"stop" / "stop & flatten", a kill file with ``"flatten"``), else as
``system.flatten_on_kill`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic

from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import StepResult
from laptop_agents.fileio import write_json_atomic
from laptop_agents.logs import scrub_obj
from laptop_agents.session.clock import SessionClock
from laptop_agents.session.loop import TASK_GRACE_S
from laptop_agents.session.parts import E, RunnerOptions, SessionOutcome, SessionParts
from laptop_agents.session.snapshots import Pulse, summary
from laptop_agents.session.state import SessionFatal, SessionState
from laptop_agents.session.step import CandleStep, store_error_reason
from laptop_agents.session.views import EngineView, read_engine
from laptop_agents.stop_reasons import USER_STOPS, StopReason, exit_code_for

if TYPE_CHECKING:
    from laptop_agents.session.operator import SessionConsole

# Stops that end well unless the final commit fails; then that failure is the reason.
_CLEAN_STOPS = frozenset({StopReason.DURATION, StopReason.END_OF_DATA, StopReason.KILL_SWITCH, StopReason.SIGNAL})


def write_summary_fallback(run_dir: Path, fields: dict[str, Any]) -> None:
    """summary.json without the report machinery (no writer, or the report failed)."""
    with contextlib.suppress(OSError):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "summary.json", scrub_obj(fields))


class Shutdown(Generic[E]):
    def __init__(self, config: AppConfig, parts: SessionParts[E], options: RunnerOptions, state: SessionState,
                 step: CandleStep[E], pulse: Pulse, clock: SessionClock, *, interval_ms: int,
                 log: logging.Logger) -> None:
        self.config = config
        self.parts = parts
        self.opts = options
        self.state = state
        self.step = step
        self.pulse = pulse
        self.clock = clock
        self.interval_ms = interval_ms
        self.log = log

    async def run(self, *, first: EngineView, started_wall: float,
                  console: SessionConsole | None = None) -> SessionOutcome:
        state = self.state
        self.pulse.beat("stopping")
        reason, final_ok = await self._final_step(state.reason or StopReason.CRASH)
        code = exit_code_for(reason)
        fields = summary(config=self.config, options=self.opts, source=self.parts.source.description, state=state,
                         first=first, now=read_engine(self.parts.engine), reason=reason, exit_code=code,
                         final_commit=final_ok, started_wall=started_wall, ended_wall=self.clock.wall())
        self.step.journal_session("stop", reason=reason.value, exit_code=code, detail=state.detail)
        report = self._outputs(fields)
        await self._close()
        self.pulse.beat("stopped")
        kill_file = self.opts.kill_file
        if reason is StopReason.KILL_SWITCH and final_ok and kill_file is not None:
            with contextlib.suppress(FileNotFoundError):
                kill_file.unlink()
        self.log.info("session stopped: %s (exit %d)%s", reason.value, code,
                      f" - {state.detail}" if state.detail else "",
                      extra={"fields": {"reason": reason.value, "exit_code": code, "detail": state.detail,
                                        "candles": state.counts["candles"], "errors": state.errors.snapshot()}})
        if console is not None:
            equity, start = fields.get("final_equity"), fields.get("starting_equity")
            pnl = equity - start if isinstance(equity, int | float) and isinstance(start, int | float) else None
            try:
                await console.close(reason=reason, exit_code=code, detail=state.detail, equity=equity, net_pnl=pnl)
            except Exception as exc:  # the outcome stands whatever the console does
                self.log.warning("console close failed: %s", exc)
        return SessionOutcome(reason, code, fields, report, state.detail)

    async def _final_step(self, reason: StopReason) -> tuple[StopReason, bool]:
        """The last engine step, committed and published; the reason it leaves and whether it committed."""
        state, engine = self.state, self.parts.engine
        if state.engine_broken or reason in (StopReason.STORE_CORRUPT, StopReason.DISK_FULL):
            return reason, True
        result: StepResult | None = None
        try:
            ts = self.clock.event_ts(engine.last_candle_ts, self.interval_ms)
            execution = self.parts.execution
            if reason in USER_STOPS and execution is not None:
                # Live: the exchange cancels and closes (and is asked whether
                # anything is left); its fills came back through the engine.
                flatten = self.config.system.flatten_on_kill if state.flatten is None else state.flatten
                try:
                    left = await execution.stop(flatten=flatten)
                except Exception as exc:
                    left = f"the stop could not finish on the exchange: {exc}"
                if left:
                    reason = StopReason.FLATTEN_INCOMPLETE
                    state.reason = reason
                    state.detail = left
                view = read_engine(engine)
                result = StepResult(ts=ts, processed=True, equity=float(view.equity or 0.0),
                                    position_qty=view.position_qty)
            elif reason in USER_STOPS:
                flatten = self.config.system.flatten_on_kill if state.flatten is None else state.flatten
                result = engine.shutdown(ts, flatten=flatten, reason=reason.value)
            else:
                if execution is not None and reason is not StopReason.ORDER_UNRESOLVED:
                    try:
                        await execution.settle()
                    except Exception as exc:  # the restart's reconciliation catches up
                        self.log.warning("could not settle the open orders: %s", exc)
                view = read_engine(engine)
                result = StepResult(ts=ts, processed=True, equity=float(view.equity or 0.0),
                                    position_qty=view.position_qty)
            await self.step.commit(result)
        except Exception as exc:
            self.log.error("final state commit failed: %s", exc, exc_info=exc)
            if reason in _CLEAN_STOPS:
                own = exc.reason if isinstance(exc, SessionFatal) else store_error_reason(exc)
                reason = own or StopReason.CRASH
                state.reason = reason
                state.detail = f"final commit failed: {exc}"
            return reason, False
        try:
            self.step.publish(result, None, final=True)
        except SessionFatal as exc:  # the state is committed; only output lines are lost
            self.log.error("could not journal the final step: %s", exc.detail)
        except Exception as exc:  # the same, from a bug: the summary must still be written
            self.log.error("could not journal the final step: %s", exc, exc_info=exc)
        return reason, True

    def _outputs(self, fields: dict[str, Any]) -> Path | None:
        parts = self.parts
        with contextlib.suppress(Exception):
            parts.journal.close()
        if parts.writer is not None:
            try:
                return parts.writer.finish(fields)
            except Exception as exc:
                self.log.error("report failed: %s", exc, exc_info=exc)
        write_summary_fallback(self.opts.run_dir, fields)
        return None

    async def _close(self) -> None:
        if self.parts.execution is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.parts.execution.aclose(), TASK_GRACE_S)
        with contextlib.suppress(Exception):
            self.parts.store.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.parts.source.aclose(), TASK_GRACE_S)
