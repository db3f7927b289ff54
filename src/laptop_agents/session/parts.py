"""What a session drives, what it is told, and what it returns.

The session never names a concrete Engine, store, journal or report writer:
it drives them through the Protocols below, so a test can hand it a stand-in
(a store that fails like a full disk, an engine that raises) and the command
handlers can hand it the real ones. ``SessionParts`` is generic in the engine
type because the store commits exactly the engine the session steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from laptop_agents.domain.contracts import StepResult
from laptop_agents.domain.events import Event
from laptop_agents.domain.models import Candle, FundingRate, Tick
from laptop_agents.session.views import HasStatus
from laptop_agents.sources.factory import SessionSource
from laptop_agents.stop_reasons import StopReason


class EngineLike(HasStatus, Protocol):
    """The deterministic core as the session steps it (``laptop_agents.engine.Engine``)."""

    @property
    def last_candle_ts(self) -> int | None: ...

    def on_candle(self, candle: Candle) -> StepResult: ...

    def warmup(self, candle: Candle) -> StepResult: ...

    def on_tick(self, tick: Tick) -> None: ...

    def on_funding(self, funding: FundingRate) -> None: ...

    def shutdown(self, ts: int, *, flatten: bool, reason: str) -> StepResult: ...

    @property
    def entries_paused(self) -> bool: ...

    def set_entries_paused(self, paused: bool) -> None: ...


E = TypeVar("E", bound=EngineLike)
E_contra = TypeVar("E_contra", contravariant=True)


class StoreLike(Protocol[E_contra]):
    """The state store: one transaction per step (``laptop_agents.store.StateStore``)."""

    def commit(self, engine: E_contra, result: StepResult) -> None: ...

    def close(self) -> None: ...


class JournalLike(Protocol):
    """``events.jsonl`` (``laptop_agents.store.EventJournal``); returns how many lines it wrote."""

    def write(self, events: Sequence[Event]) -> int: ...

    def close(self) -> None: ...


class WriterLike(Protocol):
    """The run's report files (``laptop_agents.report.RunWriter``)."""

    def on_step(self, candle: Candle, result: StepResult) -> None: ...

    def on_events(self, events: Sequence[Event]) -> None: ...

    def on_final(self, ts: int, price: float, equity: float, position_qty: float,
                 events: Sequence[Event] = ()) -> bool: ...

    def flush(self) -> None: ...

    def finish(self, summary_fields: Mapping[str, Any] | None = None) -> Path: ...


@dataclass
class SessionParts(Generic[E]):
    """Everything the runner drives; built by the command handlers
    (:mod:`laptop_agents.session.commands`) or by a test with stand-ins."""

    engine: E
    store: StoreLike[E]
    journal: JournalLike
    source: SessionSource
    writer: WriterLike | None = None
    # Live execution (session/execution.LiveExecution); None in paper and replay.
    execution: Any = None


@dataclass
class ConsoleOptions:
    """The operator's console of one session (see :mod:`laptop_agents.session.operator`).

    ``/health`` is served by the dashboard when it runs; ``health_port`` (on
    :class:`RunnerOptions`) adds a health-only server (``/health`` and
    ``/metrics``, no pages, no controls) on 127.0.0.1, or is the only server
    without a dashboard."""

    dashboard_host: str = "127.0.0.1"
    dashboard_port: int | None = None  # None: DEFAULT_DASHBOARD_PORT, or a free one when it is taken
    dashboard_token: str | None = None  # LA_DASHBOARD_TOKEN; required off the loopback
    notify_urls: tuple[str, ...] = ()
    notify_timeout_s: float = 10.0
    daily_summary_hour_utc: int | None = None
    live_view: bool = False  # the rich panel on a terminal, plain status lines elsewhere
    watch_interval_s: float = 2.0  # how often alerts look at the session
    dashboard_options: Any = None  # console.app.DashboardOptions (tests make it fast)
    watch_rules: Any = None  # console.alerts.WatchRules


@dataclass
class RunnerOptions:
    run_id: str
    run_dir: Path
    mode: str = "live-session"  # or "replay"
    heartbeat_path: Path | None = None
    kill_file: Path | None = None
    health_port: int | None = None
    dashboard: bool = False
    console: ConsoleOptions = field(default_factory=ConsoleOptions)
    # <workspace>/pause.json for a live session (a pause survives a restart); None for replays.
    pause_file: Path | None = None
    install_signal_handlers: bool = True
    workspace: Path | None = None
    # Move everything alive after start-up (imported modules, warm-up) out of
    # the garbage collector's sight: a full collection then costs ~0 ms instead
    # of 35+ ms, which would otherwise land on some candle's latency.
    freeze_gc: bool = True


@dataclass
class SessionOutcome:
    reason: StopReason
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)  # summary.json's content
    report: Path | None = None
    detail: str = ""
