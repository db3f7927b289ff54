"""Build the MarketSource a configuration asks for.

One place decides which source a session reads and how the runner should
treat its time, so the runner itself never branches on ``trading.source``:

- ``mock``: the synthetic market in simulated real time (``speed``);
- ``bitunix``: the exchange's websocket + REST, optionally recorded;
- ``replay``: a recording (``.jsonl``, parsed by the same code as live) or a
  candle file (CSV/Parquet), as fast as possible unless ``--realtime``.

Imports of the heavier sources are lazy so that a mock session does not load
the websocket and HTTP stacks (and a live one not pyarrow): each costs a
noticeable part of a second at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import MarketSource
from laptop_agents.domain.errors import InputDataError
from laptop_agents.domain.timeframes import interval_ms
from laptop_agents.sources.candle_source import CandleListSource
from laptop_agents.wallclock import now_ms

RECORDING_SUFFIXES = (".jsonl", ".ndjson")


class SourceConfigError(InputDataError):
    """The source cannot be built from this configuration (one line; exit BAD_INPUT)."""


@dataclass
class SessionSource:
    """A source plus what the runner needs to know about its clock.

    ``clock`` returns the market's "now" in UTC ms (simulated for the mock,
    wall for bitunix); None for replays, whose time is only the data's. With a
    clock the runner applies the duration limit (in market time) and routes
    candles that arrive more than ~2 intervals late to the warm-up path.
    ``speed`` is market seconds per wall second (None: as fast as possible).
    """

    source: MarketSource
    clock: Callable[[], int] | None
    speed: float | None
    live: bool
    recorder: Any = None
    description: str = ""
    # Candles that closed longer ago than this (market time) go to the warm-up
    # path: backfill after a websocket gap is never traded at a stale price.
    late_after_ms: int | None = None
    # The "now" that rule is judged by when it differs from ``clock``: a
    # recording replay has no clock (no duration limit) but must judge lateness
    # by the recorded receive time, exactly as the live run did.
    late_clock: Callable[[], int] | None = None
    # The data's own bar length (replays: the file's or the recording's), which
    # the session must use instead of the configured one.
    interval: str | None = None

    async def aclose(self) -> None:
        try:
            await self.source.aclose()
        finally:
            if self.recorder is not None:
                close = getattr(self.recorder, "close", None)
                if close is not None:
                    close()



def store_check_clock(config: AppConfig) -> tuple[Callable[[], int], str] | None:
    """The market "now" a workspace's state is checked against before a live
    session starts (a store ahead of it would skip every candle), and its name.

    bitunix: the wall clock. mock: None -- its simulated clock starts after the
    store's last candle by design (a fast session restarted continues), so it
    can never be behind it. Replays run on fresh in-memory state."""
    if config.trading.source == "bitunix":
        return now_ms, "wall clock"
    return None


def build_source(
    config: AppConfig,
    *,
    run_dir: Path | None = None,
    resume_after_ts: int | None = None,
    environ: dict[str, str] | None = None,
) -> SessionSource:
    """The source for ``config.trading.source``.

    ``run_dir`` is where ``--record`` writes ``market.jsonl``; ``resume_after_ts``
    is the last candle the store already processed (the mock resumes after it).
    """
    trading = config.trading
    if trading.source == "mock":
        from laptop_agents.sources.mock import MockSource, faults_from_env  # lazy: see the module docstring

        mock = MockSource(trading, resume_after_ts=resume_after_ts, faults=faults_from_env(environ))
        return SessionSource(
            mock, mock.now_ms, trading.speed, live=True,
            description=f"mock (seed {trading.seed}, speed {trading.speed:g}x)",
        )
    if trading.source == "bitunix":
        from laptop_agents.sources.bitunix import (  # lazy: websocket + HTTP stacks (~0.25 s)
            BitunixSource,
            ExchangeClock,
        )

        recorder = None
        if trading.record:
            if run_dir is None:
                raise SourceConfigError("--record needs a run directory")
            from laptop_agents.sources.recording import Recorder  # lazy: only with --record

            run_dir.mkdir(parents=True, exist_ok=True)
            recorder = Recorder(run_dir / "market.jsonl")
        # --speed with bitunix: the exchange's clock runs that fast (a fast fake
        # exchange), so market time follows the exchange's timestamps.
        fast = ExchangeClock(trading.speed) if trading.speed != 1.0 else None
        source = BitunixSource(trading, recorder=recorder, resume_after_ts=resume_after_ts, market_clock=fast)
        return SessionSource(
            source, fast.now_ms if fast is not None else now_ms, trading.speed, live=True, recorder=recorder,
            description=f"bitunix {trading.bitunix_ws_url}" + (f" (exchange at {trading.speed:g}x)" if fast else "")
            + (" (recording)" if recorder else ""),
            late_after_ms=2 * interval_ms(trading.interval),
        )
    if trading.source == "replay":
        return build_replay_source(config)
    raise SourceConfigError(f"unknown source {trading.source!r}: allowed mock, bitunix, replay")


def build_replay_source(config: AppConfig, path: Path | None = None, *, strict: bool = False,
                        time_column: str | None = None, time_unit: str | None = None) -> SessionSource:
    """A recording or a candle file, never the live state: see ``cmd_replay``."""
    trading = config.trading
    file = path or trading.replay_file
    if file is None:
        raise SourceConfigError("--source replay needs --replay-file FILE (a recording .jsonl or a candle CSV/Parquet)")
    file = Path(file).expanduser().resolve()
    if not file.is_file():
        raise SourceConfigError(f"replay file not found: {file}")
    speed = None if not trading.replay_realtime else 1.0
    if is_recording(file):
        from laptop_agents.sources.recording import RecordingError, RecordingReplaySource  # lazy: HTTP stack

        try:
            rec = RecordingReplaySource(file, realtime=trading.replay_realtime)
        except (RecordingError, OSError) as exc:
            raise SourceConfigError(str(exc)) from None
        return SessionSource(rec, None, speed, live=False, description=f"recording {file}",
                             late_after_ms=2 * interval_ms(rec.interval), late_clock=rec.recorded_now_ms,
                             interval=rec.interval)
    source, interval = _candle_file(file, realtime=trading.replay_realtime, strict=strict, time_column=time_column,
                                    time_unit=time_unit)
    return SessionSource(source, None, speed, live=False, description=f"candle file {file}", interval=interval)


def is_recording(file: Path) -> bool:
    """A market recording (``.jsonl``/``.ndjson``, also gzipped) rather than a candle file."""
    suffix = file.suffix.lower()
    if suffix == ".gz":
        suffix = Path(file.stem).suffix.lower()
    return suffix in RECORDING_SUFFIXES


def candle_file_source(file: Path, *, realtime: bool = False, strict: bool = False, time_column: str | None = None,
                       time_unit: str | None = None) -> MarketSource:
    """A candle file through the shared loader (same repairs and errors as backtest)."""
    return _candle_file(file, realtime=realtime, strict=strict, time_column=time_column, time_unit=time_unit)[0]


def _candle_file(file: Path, *, realtime: bool, strict: bool, time_column: str | None = None,
                 time_unit: str | None = None) -> tuple[MarketSource, str]:
    """The source and the file's interval (as the loader detected it)."""
    from laptop_agents.sources import candle_files  # lazy: pyarrow (~0.15 s), only for a candle file

    try:
        loaded = candle_files.load_candles(file, strict=strict, time_column=time_column, time_unit=time_unit)
    except candle_files.CandleFileError as exc:
        raise SourceConfigError(str(exc)) from None
    except OSError as exc:
        raise SourceConfigError(f"{file.name}: cannot read it ({exc.strerror or exc})") from None
    funding = {f.ts: f.rate for f in loaded.funding} or None
    return CandleListSource(loaded.candles, funding=funding, realtime=realtime, label=str(file)), loaded.interval
