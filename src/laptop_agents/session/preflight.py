"""Preflight: everything a session needs, checked before anything starts.

An unattended session that fails at 3 a.m. because the disk was full, the
clock was off or another instance held the workspace is a session that should
never have started. Each check returns PASS, FAIL or SKIP (not applicable to
this configuration, e.g. exchange checks for the mock source) with a one-line
reason; ``laptop-agents preflight`` and ``run --preflight`` print them all and
exit ``PREFLIGHT_FAILED`` on any FAIL.

Checks: config (cross-field rules the models cannot see: replay file, live
gates, strategy parameters), workspace writable, free disk space, no other
instance (the workspace lock, with a live-PID check), no pending stop request,
state store readable, exchange REST reachable, clock skew against the
exchange's HTTP ``Date`` header (Bitunix has no server-time endpoint), API
keys present for live execution.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from laptop_agents.config import SECRET_ENV_NAMES, AppConfig
from laptop_agents.context import CommandContext
from laptop_agents.exchange.errors import ExchangeError
from laptop_agents.exchange.ratelimit import RateLimitBudget
from laptop_agents.exchange.rest import BitunixRestClient, RestOptions
from laptop_agents.exit_codes import ExitCode
from laptop_agents.fileio import problem, remove_quietly
from laptop_agents.logs import scrub
from laptop_agents.workspace import Workspace

MIN_FREE_MB = 200.0
MAX_CLOCK_SKEW_S = 5.0
HTTP_TIMEOUT_S = 5.0

Status = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    reason: str

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<16} {self.reason}"


def _pass(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "PASS", reason)


def _fail(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "FAIL", scrub(reason))


def _skip(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "SKIP", reason)


def needs_exchange(config: AppConfig) -> bool:
    return config.trading.source == "bitunix" or config.trading.execution_mode == "live"


# -- the checks -------------------------------------------------------------------


def check_config(config: AppConfig, environ: Mapping[str, str]) -> CheckResult:
    t = config.trading
    if t.source == "replay":
        if t.replay_file is None:
            return _fail("config", "source replay needs --replay-file FILE")
        if not Path(t.replay_file).expanduser().is_file():
            return _fail("config", f"replay file not found: {t.replay_file}")
    if t.execution_mode == "live" and not t.live_enabled:
        return _fail("config", "execution_mode live needs the explicit switch --enable-live (trading.live_enabled)")
    if t.execution_mode == "live" and t.source == "mock":
        return _fail("config", "live execution needs real market data: use --source bitunix")
    try:
        from laptop_agents.strategy import build_strategy
    except ImportError as exc:
        return _fail("config", f"strategy package unavailable: {exc}")
    try:
        strategy = build_strategy(config)
    except (ValueError, OSError) as exc:  # StrategyConfigError is a ValueError
        return _fail("config", f"strategy: {exc}")
    return _pass("config", f"valid (source {t.source}, {t.execution_mode}, {t.symbol} {t.interval}, "
                           f"strategy {getattr(strategy, 'name', config.strategy.name)})")


def check_workspace_writable(ws: Workspace) -> CheckResult:
    probe = ws.root / f".preflight-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        ws.ensure()
        probe.write_bytes(b"ok")
    except OSError as exc:
        return _fail("workspace", f"{ws.root} is not writable: {problem(exc)}")
    finally:
        remove_quietly(probe)  # a full disk creates the file, then fails the write
    return _pass("workspace", f"{ws.root} writable")


def check_disk_space(ws: Workspace, min_free_mb: float = MIN_FREE_MB) -> CheckResult:
    try:
        free_mb = shutil.disk_usage(ws.root).free / 1_048_576
    except OSError as exc:
        return _fail("disk space", f"cannot read free space of {ws.root}: {exc.strerror or exc}")
    if free_mb < min_free_mb:
        return _fail("disk space", f"{free_mb:.0f} MB free at {ws.root}, need at least {min_free_mb:.0f} MB")
    return _pass("disk space", f"{free_mb:,.0f} MB free (need {min_free_mb:.0f} MB)")


def check_single_instance(ws: Workspace) -> CheckResult:
    """Reads the lock holder without taking the lock, so preflight never blocks a starting session."""
    from laptop_agents.lock import WorkspaceLock

    holder = WorkspaceLock(ws.lock).holder()
    if holder is None:
        return _pass("single instance", "no other session on this workspace")
    pid = holder.get("pid")
    if holder.get("alive") is True:
        return _fail("single instance", f"another session is running on this workspace (pid {pid}, "
                                        f"started {holder.get('started_at', '?')}); lock {ws.lock}")
    if holder.get("alive") is None and pid is not None:
        return _fail("single instance", f"lock {ws.lock} is held by pid {pid} on host "
                                        f"{holder.get('host', '?')}, which cannot be checked from here")
    return _pass("single instance", f"stale lock of dead pid {pid} will be taken over")


def check_no_pending_stop(ws: Workspace) -> CheckResult:
    if ws.kill_file.exists():
        return _fail("kill switch", f"a stop request is pending: {ws.kill_file} (delete it to allow a new session)")
    return _pass("kill switch", f"no stop request pending ({ws.kill_file})")


def check_state_store(ws: Workspace) -> CheckResult:
    """Open state.db read-only and run a quick integrity check (never modifies it)."""
    db = ws.state_db
    if not db.exists():
        return _pass("state store", f"no state yet; {db} will be created")
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)
        try:
            row = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return _fail("state store", f"{db} is unreadable: {exc}")
    if not row or row[0] != "ok":
        return _fail("state store", f"{db} failed its integrity check: {row[0] if row else 'no answer'}")
    return _pass("state store", f"{db} readable ({db.stat().st_size / 1024:.0f} KB, integrity ok)")


@dataclass(frozen=True, slots=True)
class _Probe:
    result: CheckResult
    server_time: float | None = None  # from the Date header, epoch s
    local_mid: float | None = None


def _probe_exchange(config: AppConfig, timeout_s: float, wall: Callable[[], float]) -> _Probe:
    """One trading-pairs request through the session's own REST client (same
    transport, envelope checks and typed errors; one attempt, no retries: a
    preflight reports, it does not wait out an outage). Also proves the
    symbol is listed. Runs its own event loop: preflight is called before the
    session's loop starts."""
    base = config.trading.bitunix_rest_url
    symbol = config.trading.symbol
    options = RestOptions(timeout_s=timeout_s, max_attempts=1)

    async def ask() -> tuple[int | None, ExchangeError | None]:
        async with BitunixRestClient(base, options=options, budget=RateLimitBudget.unlimited()) as rest:
            try:
                await rest.trading_pair(symbol)
            except ExchangeError as exc:
                return rest.last_server_ms, exc
            return rest.last_server_ms, None

    t0 = wall()
    try:
        server_ms, error = asyncio.run(ask())
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:  # a URL httpx cannot use
        return _Probe(_fail("exchange REST", f"{base} unreachable: {type(exc).__name__}: {exc}"))
    t1 = wall()
    ms = (t1 - t0) * 1000
    server_time = None if server_ms is None else server_ms / 1000.0
    if error is None:
        return _Probe(_pass("exchange REST", f"{base} reachable ({ms:.0f} ms)"), server_time, (t0 + t1) / 2)
    if server_ms is None and error.http_status is None and error.code is None:  # no reply at all
        return _Probe(_fail("exchange REST", f"{base} unreachable: {error}"))
    return _Probe(_fail("exchange REST", f"{base} answered in {ms:.0f} ms: {error}"), server_time, (t0 + t1) / 2)


def check_clock_skew(probe: _Probe, max_skew_s: float = MAX_CLOCK_SKEW_S) -> CheckResult:
    """The Date header has 1 s resolution (truncated): allow that second on top of the bound."""
    if probe.local_mid is None:
        return _fail("clock skew", "no answer from the exchange to compare clocks with")
    if probe.server_time is None:
        return _fail("clock skew", "the exchange sent no usable Date header")
    skew = probe.server_time + 0.5 - probe.local_mid
    if abs(skew) > max_skew_s + 0.5:
        return _fail("clock skew", f"local clock is {-skew:+.1f} s off the exchange (allowed ±{max_skew_s:g} s); "
                                   "sync the system clock (NTP)")
    return _pass("clock skew", f"{-skew:+.1f} s vs the exchange Date header (allowed ±{max_skew_s:g} s)")


def check_api_keys(config: AppConfig, environ: Mapping[str, str]) -> CheckResult:
    if config.trading.execution_mode != "live":
        return _skip("API keys", "not needed for paper execution")
    missing = [name for name in SECRET_ENV_NAMES if not environ.get(name)]
    if missing:
        return _fail("API keys", f"live execution needs {', '.join(missing)} in the environment")
    return _pass("API keys", f"{', '.join(SECRET_ENV_NAMES)} present (values not shown)")


def run_preflight(
    config: AppConfig,
    workspace: Workspace,
    *,
    environ: Mapping[str, str] | None = None,
    http_timeout_s: float = HTTP_TIMEOUT_S,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
    min_free_mb: float = MIN_FREE_MB,
    wall_clock: Callable[[], float] = time.time,
) -> list[CheckResult]:
    """Run every check (none stops the others) and return the results in order."""
    env = os.environ if environ is None else environ
    results = [
        _guarded("config", lambda: check_config(config, env)),
        _guarded("workspace", lambda: check_workspace_writable(workspace)),
        _guarded("disk space", lambda: check_disk_space(workspace, min_free_mb)),
        _guarded("single instance", lambda: check_single_instance(workspace)),
        _guarded("kill switch", lambda: check_no_pending_stop(workspace)),
        _guarded("state store", lambda: check_state_store(workspace)),
    ]
    if needs_exchange(config):
        probe = _probe_exchange(config, http_timeout_s, wall_clock)
        results += [probe.result, check_clock_skew(probe, max_skew_s)]
    else:
        why = f"not needed for source {config.trading.source} with paper execution"
        results += [_skip("exchange REST", why), _skip("clock skew", why)]
    results.append(check_api_keys(config, env))
    return results


def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """A check that raises is a FAIL naming the error, never a preflight crash."""
    try:
        return check()
    except OSError as exc:
        return _fail(name, f"{type(exc).__name__}: {exc.strerror or exc} ({exc.filename or ''})".replace(" ()", ""))
    except Exception as exc:
        return _fail(name, f"check failed: {type(exc).__name__}: {exc}")


def print_results(results: list[CheckResult], print_fn: Callable[[str], None] = print) -> bool:
    """Print one line per check and a verdict; True when nothing failed."""
    for r in results:
        print_fn(r.line())
    failed = [r.name for r in results if r.status == "FAIL"]
    print_fn(f"preflight: {'FAILED (' + ', '.join(failed) + ')' if failed else 'all checks passed'}")
    return not failed


def cmd_preflight(ctx: CommandContext) -> int:
    """``laptop-agents preflight``: print PASS/FAIL/SKIP per check; exit PREFLIGHT_FAILED on any FAIL."""
    print(f"workspace: {ctx.workspace.root}")
    results = run_preflight(ctx.config, ctx.workspace)
    ok = print_results(results)
    ctx.log.info("preflight", extra={"fields": {"ok": ok, "checks": {r.name: r.status for r in results}}})
    return ExitCode.OK if ok else ExitCode.PREFLIGHT_FAILED
