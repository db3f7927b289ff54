"""The operator's console wired into a live session.

:class:`SessionConsole` builds the console's parts (``laptop_agents.console``)
around one runner and feeds them; none of them ever reaches into the runner:

- a :class:`~laptop_agents.console.view.LiveFeed`, fed after each committed
  step (candle, equity point, the step's events), with the ``session`` events
  (start, controls) and the log lines (:class:`FeedLogHandler`);
- the view: ``CompositeView(runner.health_snapshot, feed, extra)`` where
  ``extra`` adds a few account fields from the engine's status (through
  :func:`~laptop_agents.session.views.status_dict`, the dict edge) and the
  pause switch;
- the **dashboard** (``--dashboard``): uvicorn as a task of this loop on
  ``dashboard_host:dashboard_port``, with the session's controls
  (:class:`~laptop_agents.session.controls.SessionControls`), ``/health`` and
  ``/metrics``; ``--health-port`` adds (or, without a dashboard, is) a
  health-only server on 127.0.0.1 -- ``/health`` and ``/metrics``, no pages, no
  controls -- so a monitoring probe never gets a stop button;
- **metrics** (whenever a server runs): counters fed here, gauges read from
  the view at scrape time, the event loop's lag;
- **alerts** (``--notify``): a :class:`Notifier` (one background thread,
  bounded queue) and an :class:`AlertWatcher` on this loop; session start and
  stop, the kill switch and the daily summary are sent from here;
- the **terminal view** (``run`` on a terminal): the rich panel above the log
  lines, plain status lines when not a terminal.

The rule: the console never costs the candle path more than a few appends, and
nothing in it can stop a session -- every hook swallows (and counts) its own
failures, a server that cannot bind is logged and the session trades on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from laptop_agents.config import AppConfig
from laptop_agents.console.view import CompositeView, FeedLogHandler, LiveFeed
from laptop_agents.domain.contracts import StepResult
from laptop_agents.domain.events import Event
from laptop_agents.domain.models import Candle
from laptop_agents.session.parts import RunnerOptions, SessionParts
from laptop_agents.session.state import SessionState
from laptop_agents.session.views import status_dict
from laptop_agents.stop_reasons import StopReason

if TYPE_CHECKING:
    from laptop_agents.console.alerts import AlertWatcher, Notifier
    from laptop_agents.console.metrics import LoopLagMonitor, SessionMetrics
    from laptop_agents.console.server import DashboardServer
    from laptop_agents.console.terminal import TerminalView
    from laptop_agents.session.controls import SessionControls

DEFAULT_DASHBOARD_PORT = 8765
HEALTH_HOST = "127.0.0.1"
# Engine status fields the console shows besides the health body.
_STATUS_FIELDS = ("symbol", "currency", "last_price", "realized_pnl", "unrealized", "start_balance", "fees_paid",
                  "trades_closed", "entries_blocked")
_NOTIFY_FLUSH_S = 5.0  # the last alerts (stop) get this long at the end of a session, never more


class HealthEndpoint(NamedTuple):
    url: str
    port: int


def wanted(options: RunnerOptions) -> bool:
    """Does this session need a console at all? (Otherwise it pays nothing.)"""
    c = options.console
    return options.dashboard or options.health_port is not None or bool(c.notify_urls) or c.live_view


class SessionConsole:
    def __init__(
        self,
        config: AppConfig,
        parts: SessionParts[Any],
        options: RunnerOptions,
        state: SessionState,
        controls: SessionControls[Any],
        health_snapshot: Callable[[], tuple[bool, dict[str, Any]]],
        *,
        wall_clock: Callable[[], float],
        print_fn: Callable[[str], None],
        log: logging.Logger,
    ) -> None:
        self.config = config
        self.parts = parts
        self.opts = options
        self.copts = options.console
        self.state = state
        self.controls = controls
        self._wall = wall_clock
        self._print = print_fn
        self.log = log
        self.feed = LiveFeed()
        self.view = CompositeView(health_snapshot, self.feed, extra=self._extra)
        self.metrics: SessionMetrics | None = None
        self.loop_lag: LoopLagMonitor | None = None
        self.dashboard: DashboardServer | None = None
        self.health_server: DashboardServer | None = None
        self.notifier: Notifier | None = None
        self.watcher: AlertWatcher | None = None
        self.terminal: TerminalView | None = None
        self._log_handler: FeedLogHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.failures = 0

    # ------------------------------------------------------------ what the view adds
    def _extra(self) -> Mapping[str, Any]:
        status = status_dict(self.parts.engine)
        out = {k: status.get(k) for k in _STATUS_FIELDS}
        out["interval"] = self.config.trading.interval
        out["entries_paused"] = self.controls.paused
        out["flatten_on_kill"] = self.config.system.flatten_on_kill
        return out

    @property
    def health(self) -> HealthEndpoint | None:
        """The server answering ``/health`` (the health-only one, else the dashboard)."""
        server = self.health_server or self.dashboard
        if server is None or server.port is None:
            return None
        return HealthEndpoint(server.health_url, server.port)

    # ------------------------------------------------------------ start
    async def start(self) -> None:
        """Everything the options ask for; a part that fails is logged and left out."""
        self._log_handler = FeedLogHandler(self.feed)
        logging.getLogger("laptop_agents").addHandler(self._log_handler)
        opts = self.opts
        if opts.dashboard or opts.health_port is not None:
            await self._start_servers()
        if self.copts.notify_urls:
            self._start_alerts()
        if self.copts.live_view:
            self._start_terminal()

    async def _start_servers(self) -> None:
        from laptop_agents.console.metrics import LoopLagMonitor, SessionMetrics

        self.metrics = SessionMetrics(self.view)
        self.loop_lag = LoopLagMonitor.for_metrics(self.metrics).start()
        opts, c = self.opts, self.copts
        runs_dir = opts.run_dir.parent
        if opts.dashboard:
            port = c.dashboard_port if c.dashboard_port is not None else DEFAULT_DASHBOARD_PORT
            self.dashboard = await self._serve("dashboard", c.dashboard_host, port, runs_dir=runs_dir,
                                               fallback=c.dashboard_port is None)
            if self.dashboard is not None:
                self._print(f"dashboard: {self.dashboard.url}")
        # One server when the dashboard already listens on the health port; else a health-only one.
        hp = opts.health_port
        if hp is not None and (self.dashboard is None or hp == 0 or hp != self.dashboard.port):
            self.health_server = await self._serve("health endpoint", HEALTH_HOST, hp, health_only=True)
        endpoint = self.health
        if endpoint is not None:
            self._print(f"health: {endpoint.url}")

    async def _serve(self, what: str, host: str, port: int, *, runs_dir: Any = None, health_only: bool = False,
                     fallback: bool = False) -> DashboardServer | None:
        from laptop_agents.console.server import DashboardServer

        options = self.copts.dashboard_options
        if options is None:
            from laptop_agents.console.app import DashboardOptions

            options = DashboardOptions(title=f"btc-laptop-agents · {self.opts.run_id}")
        def make(p: int) -> DashboardServer:
            return DashboardServer(self.view, None if health_only else self.controls, host=host, port=p,
                                   token=None if health_only else self.copts.dashboard_token, runs_dir=runs_dir,
                                   metrics=self.metrics, options=options, health_only=health_only)

        try:
            try:
                return await make(port).start()
            except OSError as exc:
                if not (fallback and exc.errno == errno.EADDRINUSE):
                    raise
                self.log.info("%s: port %d is taken, using a free one", what, port)
                return await make(0).start()
        except Exception as exc:  # a console that cannot serve never stops the session
            self.log.error("%s could not start on %s:%s: %s", what, host, port, exc)
            self.state.spend("health" if health_only else "dashboard")
            return None

    def _start_alerts(self) -> None:
        from laptop_agents.console.alerts import AlertWatcher, Notifier, WatchRules, session_started

        try:
            self.notifier = Notifier.from_urls(self.copts.notify_urls, timeout_s=self.copts.notify_timeout_s)
        except Exception as exc:  # commands checked the URLs; a late surprise only costs the alerts
            self.log.error("alerts are off: %s", exc)
            return
        if self.notifier is None:
            return
        rules = self.copts.watch_rules or WatchRules()
        if self.copts.daily_summary_hour_utc is not None:
            rules.daily_summary_hour_utc = self.copts.daily_summary_hour_utc
        self.watcher = AlertWatcher(self.view, self.notifier, rules, wall_clock=self._wall)
        self._tasks.append(self.watcher.start(self.copts.watch_interval_s))
        self._tasks.append(asyncio.create_task(self._on_stop(), name="alert-on-stop"))
        self.notifier.send(session_started(self.opts.run_id, mode=self.opts.mode,
                                           source=self.parts.source.description or "",
                                           symbol=self.config.trading.symbol,
                                           dashboard_url=self.dashboard.url if self.dashboard else None))

    async def _on_stop(self) -> None:
        """The kill switch (file, dashboard, ``stop``) says so the moment it is pulled."""
        from laptop_agents.console.alerts import kill_switch

        await self.state.stop_event.wait()
        if self.state.reason is StopReason.KILL_SWITCH and self.notifier is not None:
            self.notifier.send(kill_switch(run_id=self.opts.run_id, detail=self.state.detail,
                                           flatten=self.flatten_on_stop()))

    def flatten_on_stop(self) -> bool:
        f = self.state.flatten
        return self.config.system.flatten_on_kill if f is None else f

    def _start_terminal(self) -> None:
        from laptop_agents.console.terminal import TerminalView

        try:
            self.terminal = TerminalView(self.view, title=f"btc-laptop-agents · {self.opts.run_id}").start()
        except Exception as exc:
            self.log.debug("terminal view off: %s", exc)
            self.terminal = None

    # ------------------------------------------------------------ the step listener
    def on_step(self, result: StepResult, candle: Candle | None, latency_ns: int | None) -> None:
        try:
            self.feed.on_step(candle, result)
            m = self.metrics
            if m is not None:
                if candle is not None:
                    m.candle(latency_ns / 1e9 if latency_ns is not None else None)
                if result.events:
                    m.observe(result.events)
            if self.dashboard is not None:
                self.dashboard.poke()
        except Exception as exc:  # the console must never cost a candle
            self._failed(exc)

    def on_events(self, events: Sequence[Event]) -> None:
        try:
            self.feed.on_events(events)
            if self.metrics is not None:
                self.metrics.observe(events)
            if self.dashboard is not None:
                self.dashboard.poke()
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures <= 3:
            self.log.warning("console update failed (the session goes on): %s: %s", type(exc).__name__, exc)

    # ------------------------------------------------------------ the end
    async def close(self, *, reason: StopReason, exit_code: int, detail: str = "", equity: Any = None,
                    net_pnl: Any = None) -> None:
        """The last alerts, the last dashboard update (stopped, with the reason),
        then everything stops; bounded in time whatever a service or browser does."""
        from laptop_agents.console.alerts import session_stopped

        if self.watcher is not None:
            with contextlib.suppress(Exception):
                self.watcher.check()  # what the last seconds changed (budget exhausted, the final trade)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.notifier is not None:
            self.notifier.send(session_stopped(self.opts.run_id, reason=reason.value, exit_code=exit_code,
                                               detail=detail, equity=equity, net_pnl=net_pnl))
        if self.terminal is not None:
            with contextlib.suppress(Exception):
                await self.terminal.stop()
        for server in (self.dashboard, self.health_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.close(final_push=True)
        if self.loop_lag is not None:
            await self.loop_lag.stop()
        if self._log_handler is not None:
            logging.getLogger("laptop_agents").removeHandler(self._log_handler)
        if self.notifier is not None:
            notifier = self.notifier
            # Off the loop: a delivery still in flight must not freeze it.
            await asyncio.to_thread(notifier.close, _NOTIFY_FLUSH_S)
            if notifier.pending:
                self.log.warning("%d alert(s) not delivered within %.0f s at the end of the session",
                                 notifier.pending, _NOTIFY_FLUSH_S)
