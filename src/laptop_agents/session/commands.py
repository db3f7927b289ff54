"""``laptop-agents run`` and ``laptop-agents replay``: build a session's parts, run it, say how it ended.

Everything here happens before the event loop starts or after it ended: the
checks that refuse a session with one line and an exit code (a bad run id,
a live-execution gate, a pending kill file, a held lock, a store that belongs
to another config or lies ahead of the market), the state store and engine
(crash-only: the stored engine if any), the source, the journal and the
report writer; then :class:`~laptop_agents.session.runner.AsyncRunner` runs,
and the outcome is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from laptop_agents import interrupts
from laptop_agents.config import SECRET_ENV_NAMES, AppConfig
from laptop_agents.context import CommandContext
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.engine import Engine
from laptop_agents.engine.recovery import open_engine
from laptop_agents.exit_codes import ExitCode
from laptop_agents.fileio import io_error_line
from laptop_agents.lock import AlreadyRunningError, WorkspaceLock
from laptop_agents.logs import get_logger, scrub
from laptop_agents.report import RunWriter
from laptop_agents.report.console import print_summary
from laptop_agents.session.parts import ConsoleOptions, RunnerOptions, SessionParts
from laptop_agents.session.preflight import print_results, run_preflight
from laptop_agents.session.runner import AsyncRunner
from laptop_agents.session.views import read_engine
from laptop_agents.sources.factory import (
    SessionSource,
    SourceConfigError,
    build_replay_source,
    build_source,
    store_check_clock,
)
from laptop_agents.stop_reasons import StopReason
from laptop_agents.store import (
    StateStore,
    StoreCorruptError,
    StoreMismatchError,
    StoreWriteError,
    check_store_clock,
)
from laptop_agents.store.journal import EventJournal
from laptop_agents.strategy import build_strategy
from laptop_agents.workspace import RunIdError, Workspace, new_run_id


def _err(msg: str) -> None:
    print(scrub(msg), file=sys.stderr)


def _print_summary(summary: dict[str, Any], report: Path | None) -> None:
    try:
        full = summary
        if report is not None and (report.parent / "summary.json").exists():
            full = json.loads((report.parent / "summary.json").read_text(encoding="utf-8"))
        print_summary(full)
        return
    except Exception as exc:  # the console summary must never turn a clean exit into a crash
        get_logger("session.commands").debug("rich summary failed: %s", exc)
    eq = summary.get("final_equity")
    pos = summary.get("position") or {}
    print(f"session {summary.get('run_id')}: {summary.get('reason')} (exit {summary.get('exit_code')}); "
          f"candles {summary.get('session', {}).get('candles')}, equity {eq}, position {pos.get('qty', pos)}")


def _live_gate(config: AppConfig) -> tuple[int, str] | None:
    t = config.trading
    if t.execution_mode != "live":
        return None
    missing = [n for n in SECRET_ENV_NAMES if not os.environ.get(n)]
    if not t.live_enabled:
        return ExitCode.LIVE_NOT_ALLOWED, "live execution needs --enable-live (trading.live_enabled) as well"
    if missing:
        return ExitCode.LIVE_NOT_ALLOWED, f"live execution needs {', '.join(missing)} in the environment"
    return None


TOKEN_ENV = "LA_DASHBOARD_TOKEN"


def console_options(config: AppConfig, *, live: bool) -> ConsoleOptions | int:
    """The console's options from the configuration, checked before anything
    starts: a dashboard bound off the loopback without ``LA_DASHBOARD_TOKEN``
    (or with a short one) and an unusable notification URL are refused with
    one line and exit 2. The console's modules load only for what is on."""
    system = config.system
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if system.dashboard:
        from laptop_agents.console.app import DashboardConfigError, check_token

        try:
            check_token(token, system.dashboard_host)
        except DashboardConfigError as exc:
            _err(f"dashboard error: {exc}")
            return ExitCode.CONFIG_ERROR
    urls: list[str] = []
    if live:
        from laptop_agents.console.alerts import notify_urls

        urls = notify_urls(config=system.notify_urls)
        if urls:
            from laptop_agents.console.alerts import AppriseSender

            try:
                AppriseSender(urls)  # the same check the notifier makes; no thread, no network
            except ValueError as exc:
                _err(f"alert error: {exc}")
                return ExitCode.CONFIG_ERROR
    return ConsoleOptions(
        dashboard_host=system.dashboard_host,
        dashboard_port=system.dashboard_port,
        dashboard_token=token if system.dashboard else None,
        notify_urls=tuple(urls),
        daily_summary_hour_utc=system.daily_summary_hour_utc,
        live_view=system.live_view and live,
    )


def _open_state(
    ctx: CommandContext,
    path: Path | str,
    *,
    now_ts: int | None,
    clock: tuple[Callable[[], int], str] | None = None,
) -> tuple[StateStore, Engine] | int:
    """Strategy + store + engine (crash-only: the stored engine if any), or an
    exit code after a one-line error. With ``clock`` (the market's now and its
    name) a store whose last candle lies ahead of the market is refused."""

    try:
        strategy = build_strategy(ctx.config)
    except (ValueError, OSError) as exc:
        _err(f"strategy error: {exc}")
        return ExitCode.CONFIG_ERROR
    try:
        store = StateStore(path)
    except StoreCorruptError as exc:
        _err(f"state store error: {exc}")
        return ExitCode.STORE_CORRUPT
    except (StoreWriteError, OSError) as exc:
        _err(f"state store error: cannot create {path}: {exc}")
        return ExitCode.DISK_FULL
    try:
        engine = open_engine(store, ctx.config, strategy, now_ts=now_ts)
        if clock is not None:
            check_store_clock(store, now_ms=clock[0](), interval=ctx.config.trading.interval, clock=clock[1])
    except StoreMismatchError as exc:
        store.close()
        _err(f"state store error: {exc}")
        return ExitCode.STORE_MISMATCH
    except StoreCorruptError as exc:
        store.close()
        _err(f"state store error: {exc}")
        return ExitCode.STORE_CORRUPT
    except StoreWriteError as exc:
        store.close()
        _err(f"state store error: {exc}")
        return ExitCode.DISK_FULL
    except BaseException:
        store.close()
        raise
    if engine.last_candle_ts is not None:
        _say_resumed(ctx, path, engine)
    return store, engine


def _say_resumed(ctx: CommandContext, path: Path | str, engine: Engine) -> None:
    """One INFO line when a session continues a stored state: after a crash or a
    hang the user (and a test) sees the position and orders it picked up."""
    st = engine.status()
    pos = st.position
    held = "flat" if not pos.qty else f"{pos.side} {pos.qty:.10g} @ {pos.entry_price:.10g}" if pos.entry_price \
        else f"{pos.side} {pos.qty:.10g}"
    ctx.log.info("resuming from the state store %s: last candle %s, position %s, %d working orders", path,
                 ms_to_iso(st.last_candle_ts) if st.last_candle_ts is not None else "none", held,
                 len(st.working_orders),
                 extra={"fields": {"last_candle_ts": st.last_candle_ts, "position": pos.to_dict(),
                                   "working_orders": len(st.working_orders)}})


def _session(
    ctx: CommandContext,
    *,
    mode: str,
    state_path: Path | str,
    run_id: str,
    build: Callable[[Engine], SessionSource],
    live: bool,
    console: ConsoleOptions,
) -> int:
    """Shared by run and replay: open state, build the source, run, summarise."""

    ws = ctx.workspace
    # The run directory is created first and exclusively: a reused --run-id
    # must never overwrite an earlier run's files or append to its events.
    try:
        run_dir = ws.new_run_dir(run_id)
    except RunIdError as exc:
        _err(str(exc))
        return ExitCode.CONFIG_ERROR
    except OSError as exc:
        _err(io_error_line(exc, ws.run_dir(run_id), "cannot create the run directory"))
        return ExitCode.DISK_FULL
    started = False
    try:
        opened = _open_state(ctx, state_path, now_ts=int(time.time() * 1000) if live else None,
                             clock=store_check_clock(ctx.config) if live else None)
        if isinstance(opened, int):
            return opened
        store, engine = opened
        try:
            source = build(engine)
        except SourceConfigError as exc:
            store.close()
            _err(f"source error: {exc}")
            return ExitCode.BAD_INPUT
        except BaseException:
            store.close()
            raise
        try:
            journal = EventJournal(run_dir / "events.jsonl")
            books = read_engine(engine)  # the account continues from the store: so do its fee and funding totals
            writer = RunWriter(run_dir, fees_paid=books.fees_paid, funding_paid=books.funding_paid,
                               plotly=ctx.config.system.report_plotly)
        except OSError as exc:
            store.close()
            _err(io_error_line(exc, getattr(exc, "filename", None) or run_dir, "cannot write the run directory"))
            return ExitCode.DISK_FULL
        started = True
    finally:
        if not started:  # nothing ran: leave no empty run directory behind
            with contextlib.suppress(OSError):
                run_dir.rmdir()
    system = ctx.config.system
    options = RunnerOptions(
        run_id=run_id,
        run_dir=run_dir,
        mode=mode,
        heartbeat_path=ws.heartbeat if live else run_dir / "heartbeat.json",
        kill_file=ws.kill_file if live else None,
        health_port=system.health_port,
        dashboard=system.dashboard,
        console=console,
        pause_file=ws.pause_file if live else None,
        workspace=ws.root,
    )
    print(f"workspace: {ws.root}")
    print(f"run dir:   {run_dir}")
    print(f"{mode}: {source.description}; {ctx.config.trading.symbol} {ctx.config.trading.interval}, "
          f"{ctx.config.trading.execution_mode}" + (f", {ctx.config.trading.duration_min:g} min" if source.clock else ""))
    if live:
        print(f"stop it with: laptop-agents stop --workspace {ws.root}   (or create {ws.kill_file})")
    execution = None
    if live and ctx.config.trading.execution_mode == "live":
        from laptop_agents.exchange.credentials import CredentialsError
        from laptop_agents.session.execution import build_execution  # lazy: the private stack, live only

        try:
            execution = build_execution(ctx.config, engine, store, run_id=run_id, log=ctx.log)
        except CredentialsError as exc:
            store.close()
            _err(str(exc))
            return ExitCode.LIVE_NOT_ALLOWED
        print(f"live execution: {ctx.config.trading.bitunix_rest_url} (orders are real)")
    parts = SessionParts(engine=engine, store=store, journal=journal, source=source, writer=writer,
                         execution=execution)
    runner = AsyncRunner(ctx.config, parts, options, log=ctx.log)
    # From here a Ctrl-C before the runner's own handlers (or one swallowed
    # during the start-up) is a graceful stop, recorded like SIGINT.
    with interrupts.diverted(lambda: runner.request_stop(StopReason.SIGNAL, "SIGINT")):
        outcome = asyncio.run(runner.run())
    if execution is not None:
        for line in execution.mismatch_lines:  # one line per difference the books cannot explain
            _err(f"reconcile: {line}")
    _print_summary(outcome.summary, outcome.report)
    print(f"stopped: {outcome.reason.value} (exit {outcome.exit_code})" + (f" - {outcome.detail}" if outcome.detail else ""))
    print(f"workspace: {ws.root}")
    print(f"run dir:   {run_dir}" + (f"  report: {outcome.report}" if outcome.report else ""))
    return outcome.exit_code


def _bad_run_id(ctx: CommandContext) -> bool:
    """Check ``--run-id`` before anything starts (one line, then exit CONFIG_ERROR).

    ``_session`` creates the directory exclusively as well; this early check
    only makes the refusal come before the lock, the store and the source."""
    given = getattr(ctx.args, "run_id", None)
    if given is None:
        return False
    try:
        ctx.workspace.check_new_run_id(given)
    except RunIdError as exc:
        _err(str(exc))
        return True
    return False


def cmd_run(ctx: CommandContext) -> int:
    """``laptop-agents run`` / ``--mode live-session``: the live session (paper by default)."""
    config = ctx.config
    if config.trading.source == "replay":
        return cmd_replay(ctx)
    if not config.system.run_async:
        _err("the live session is async-only: drop --sync (it applies to backtest and replay)")
        return ExitCode.CONFIG_ERROR
    gate = _live_gate(config)
    if gate is not None:
        _err(gate[1])
        return gate[0]
    ws: Workspace = ctx.workspace
    if _bad_run_id(ctx):
        return ExitCode.CONFIG_ERROR
    if getattr(ctx.args, "preflight", None):
        print(f"workspace: {ws.root}")
        if not print_results(run_preflight(config, ws)):
            return ExitCode.PREFLIGHT_FAILED
    if ws.kill_file.exists():
        _err(f"a stop request is pending ({ws.kill_file}); delete it to start a new session")
        return ExitCode.PREFLIGHT_FAILED
    console = console_options(config, live=True)
    if isinstance(console, int):
        return console
    lock = WorkspaceLock(ws.lock)
    try:
        took_over = lock.acquire()
    except AlreadyRunningError as exc:
        _err(str(exc))
        return ExitCode.ALREADY_RUNNING
    except OSError as exc:  # a directory in its place, a read-only or full workspace
        _err(io_error_line(exc, ws.lock, "cannot take the workspace lock"))
        return ExitCode.DISK_FULL
    try:
        interrupts.check()
        if took_over:
            ctx.log.warning("took over a stale workspace lock", extra={"fields": {"previous": took_over}})
        run_id = getattr(ctx.args, "run_id", None) or new_run_id("live", uuid.uuid4().hex[:6])
        run_dir = ws.run_dir(run_id)

        def build(engine: Engine) -> SessionSource:
            return build_source(config, run_dir=run_dir, resume_after_ts=engine.last_candle_ts)

        return _session(ctx, mode="live-session", state_path=ws.state_db, run_id=run_id, build=build, live=True,
                        console=console)
    finally:
        lock.release()


def cmd_replay(ctx: CommandContext) -> int:
    """``laptop-agents replay FILE`` / ``--source replay --replay-file FILE``: a recording
    or a candle file through the live runner, with fresh in-memory state.

    ``--sync`` is accepted here for the seed's sake, but changes nothing: there
    is one runner, and a replay through it is exactly what makes it a replay."""
    args = ctx.args
    raw = getattr(args, "file", None) or getattr(args, "data", None) or ctx.config.trading.replay_file
    if raw is None:
        _err("replay needs a file: --replay-file FILE (a recording .jsonl or a candle CSV/Parquet)")
        return ExitCode.CONFIG_ERROR
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        _err(f"replay file not found: {path}")
        return ExitCode.BAD_INPUT
    if _bad_run_id(ctx):
        return ExitCode.CONFIG_ERROR
    strict = bool(getattr(args, "strict", None))
    console = console_options(ctx.config, live=False)
    if isinstance(console, int):
        return console
    run_id = getattr(args, "run_id", None) or new_run_id("replay", uuid.uuid4().hex[:6])
    try:
        source = build_replay_source(ctx.config, path, strict=strict, time_column=getattr(args, "time_column", None),
                                     time_unit=getattr(args, "time_unit", None))
    except SourceConfigError as exc:
        _err(f"source error: {exc}")
        return ExitCode.BAD_INPUT
    # The data's bar length wins over the default; an explicit --interval
    # (flag or environment) that disagrees is an error, as in backtest.
    data_interval = source.interval
    if data_interval is not None and data_interval != ctx.config.trading.interval:
        origin = ctx.loaded.sources.get("trading.interval", "default")
        if origin == "cli" or origin.startswith("env"):
            with contextlib.suppress(Exception):
                asyncio.run(source.aclose())
            _err(f"replay file {path.name} has {data_interval} candles, but the interval "
                 f"{ctx.config.trading.interval} was given (from {origin}); drop it or pass {data_interval}")
            return ExitCode.BAD_INPUT
        config = ctx.config.model_copy(deep=True)
        config.trading.interval = data_interval
        ctx = dataclasses.replace(ctx, loaded=ctx.loaded.model_copy(update={"config": config}))

    def build(engine: Engine) -> SessionSource:
        return source

    return _session(ctx, mode="replay", state_path=":memory:", run_id=run_id, build=build, live=False,
                    console=console)
