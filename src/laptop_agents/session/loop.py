"""The market-data task: the source's warm-up, then its stream, item by item.

Candles go through :class:`~laptop_agents.session.step.CandleStep`; ticks and
funding go straight to the engine; every real item resets the stale-data
clock and the consecutive-error count. A :class:`SourceError` is counted (N in
a row, or the error budget, stop the session). A stream that raises instead
of yielding one is counted the same way and re-opened after a pause -- unless
the exception came from the engine or the run output (a bug: re-raised as a
crash) or from a replay that no longer matches its recording (bad input).
A stream that ends by itself ends the session: ``source_ended`` for a live
source (restartable), ``end_of_data`` for a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Generic

from laptop_agents.domain.contracts import SourceError
from laptop_agents.domain.models import Candle, FundingRate, Tick
from laptop_agents.logs import scrub
from laptop_agents.session.parts import E, SessionParts
from laptop_agents.session.state import SessionFatal, SessionState
from laptop_agents.session.step import CandleStep
from laptop_agents.stop_reasons import StopReason

# Back-off before re-opening a stream that raised instead of yielding SourceError.
STREAM_RESTART_S = 1.0
# Seconds to wait for a stream (and, at shutdown, the tasks and the source) to wind down.
TASK_GRACE_S = 5.0


def replay_fatal(exc: BaseException) -> SessionFatal | None:
    """A recording that no longer matches what the replay asks for is bad input,
    not a market-data hiccup: counting it and re-opening the stream would replay
    on past the point where the run stopped being the recorded one."""
    if type(exc).__name__ == "RecordingError":  # by name: the session does not import the recorder
        return SessionFatal(StopReason.REPLAY_DIVERGED, scrub(str(exc)))
    return None


class MarketLoop(Generic[E]):
    def __init__(self, parts: SessionParts[E], state: SessionState, step: CandleStep[E],
                 log: logging.Logger) -> None:
        self.parts = parts
        self.state = state
        self.step = step
        self.log = log

    async def warmup(self) -> None:
        """The source's history before the stream (REST backfill, or the replay's first bars)."""
        try:
            candles = await self.parts.source.source.warmup()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fatal = replay_fatal(exc)
            if fatal is not None:
                raise fatal from exc
            self.source_error(SourceError("warmup", f"{type(exc).__name__}: {exc}"))
            return
        if candles:
            self.state.counts["warmup"] += await self.step.warm(list(candles))
            self.log.info("warm-up: %d candles", self.state.counts["warmup"])
            if self.step.cancel_deferred:
                self.step.cancel_deferred = False
                raise asyncio.CancelledError

    async def run(self) -> None:
        src, state, step = self.parts.source, self.state, self.step
        engine = self.parts.engine
        counts = state.counts
        clock = step.clock
        perf, cpu = clock.perf_ns, clock.cpu_ns
        while not state.stop_requested:
            stream = src.source.stream()
            try:
                async for item in stream:
                    arrived = perf()
                    if isinstance(item, Candle):
                        state.good_data()
                        await step.candle(item, arrived, cpu())
                    elif isinstance(item, Tick):
                        state.good_data()
                        counts["ticks"] += 1
                        step.engine_feed(engine.on_tick, item)
                    elif isinstance(item, FundingRate):
                        state.good_data()
                        counts["funding"] += 1
                        step.engine_feed(engine.on_funding, item)
                    elif isinstance(item, SourceError):
                        self.source_error(item)
                    else:
                        self.source_error(SourceError("bad_item", f"source yielded {type(item).__name__}"))
                    if step.cancel_deferred:  # cancelled while its step was committing: honour it now
                        step.cancel_deferred = False
                        raise asyncio.CancelledError
                    if state.stop_requested:
                        return
            except (asyncio.CancelledError, SessionFatal):
                raise
            except Exception as exc:
                if state.engine_broken or state.output_broken:
                    raise
                fatal = replay_fatal(exc)
                if fatal is not None:
                    raise fatal from exc
                # A source that raises instead of yielding SourceError: count it
                # like one and re-open the stream after a pause.
                self.source_error(SourceError("source_exception", f"{type(exc).__name__}: {exc}"))
                await asyncio.sleep(STREAM_RESTART_S)
                continue
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(aclose(), TASK_GRACE_S)
            # The stream ended by itself.
            if src.live:
                state.request_stop(StopReason.SOURCE_ENDED, f"{src.source.name} stream ended")
            else:
                state.request_stop(StopReason.END_OF_DATA, "end of the replay data")
            return

    def source_error(self, err: SourceError) -> None:
        state = self.state
        state.counts["source_errors"] += 1
        self.log.warning("market data error (%d in a row): %s: %s", state.errors.consecutive_md + 1, err.kind,
                         err.message, extra={"fields": {"kind": err.kind, "message": err.message}})
        reason = state.errors.market_data_error()
        if reason is StopReason.MARKET_DATA_ERRORS:
            state.request_stop(reason, f"{state.errors.consecutive_md} consecutive market-data errors "
                                       f"(last: {err.kind}: {err.message})")
        elif reason is StopReason.ERROR_BUDGET:
            state.request_stop(reason, f"{state.errors.total} errors >= budget {state.errors.budget} "
                                       "(last: market_data)")
