"""Alerts through apprise: one URL reaches Telegram, Discord, Slack, e-mail, ntfy, a webhook...

The rule that shapes this module: **a notifier never slows or stops the
session**. :meth:`Notifier.send` only appends to a bounded in-memory queue
(dropping the oldest alert, counted, when full) and returns; one worker
*thread* delivers, with apprise's per-call timeout, so a service that hangs,
refuses or answers 500 costs the caller nothing but a dropped alert. The
thread is a daemon: a delivery stuck past its timeout never keeps the process
alive at exit.

Before an alert is queued it passes two filters:

- *dedup*: an alert whose ``key`` was sent less than ``dedup_s`` ago is dropped
  (a stale feed that stays stale alerts once, not every check);
- *rate limit*: a token bucket (``burst`` alerts, refilled at ``per_minute``);
  alerts over it are dropped and counted, and the next alert that goes out
  says how many were suppressed. Session stop alerts bypass the bucket (the
  last word of a session is never rate-limited away), and so does the daily
  summary.

:class:`AlertWatcher` turns a :class:`SessionView` into alerts (trades, stale
data, reconnect storms, error budget, breaker, daily summary) by looking at it
periodically; session start/stop, kill switch and watchdog restarts are sent
by whoever sees them, with the builders below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from laptop_agents.console.view import LATEST, SessionView, ts_iso
from laptop_agents.logs import SCRUBBER, get_logger, scrub

log = get_logger("console.alerts")

NOTIFY_ENV = "LA_NOTIFY_URLS"


class AlertKind(StrEnum):
    SESSION_STARTED = "session_started"
    SESSION_STOPPED = "session_stopped"
    TRADE_OPENED = "trade_opened"
    TRADE_CLOSED = "trade_closed"
    STALE_DATA = "stale_data"
    RECONNECT_STORM = "reconnect_storm"
    ERROR_BUDGET_HALF = "error_budget_half"
    ERROR_BUDGET_EXHAUSTED = "error_budget_exhausted"
    BREAKER_TRIPPED = "breaker_tripped"
    KILL_SWITCH = "kill_switch"
    WATCHDOG_RESTART = "watchdog_restart"
    DAILY_SUMMARY = "daily_summary"


class Level(StrEnum):
    """apprise's notification types."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


# Never dropped by the rate limit: the last word of a session, and the daily
# summary (once a day by its dedup key; dropped, the day would have none).
UNLIMITED = frozenset({AlertKind.SESSION_STOPPED, AlertKind.KILL_SWITCH, AlertKind.ERROR_BUDGET_EXHAUSTED,
                       AlertKind.DAILY_SUMMARY})


@dataclass(frozen=True)
class Alert:
    """One message. ``key`` identifies "the same alert" for deduplication."""

    kind: AlertKind
    title: str
    body: str
    level: Level = Level.INFO
    key: str = ""

    @property
    def dedup_key(self) -> str:
        return self.key or f"{self.kind.value}:{self.title}:{self.body}"


def _f(x: Any, d: int = 2) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return "?"
    return f"{x:,.{d}f}"


def _signed(x: Any, d: int = 2) -> str:
    s = _f(x, d)
    return ("+" + s) if isinstance(x, int | float) and x > 0 else s


def _name(run_id: str | None) -> str:
    return f" [{run_id}]" if run_id else ""


# ---------------------------------------------------------------- builders


def session_started(run_id: str, *, mode: str = "", source: str = "", symbol: str = "",
                    dashboard_url: str | None = None) -> Alert:
    body = f"{mode} session {run_id} started: {source} {symbol}".strip()
    if dashboard_url:
        body += f"\ndashboard: {dashboard_url}"
    return Alert(AlertKind.SESSION_STARTED, f"Session started{_name(run_id)}", body, Level.INFO,
                 key=f"started:{run_id}")


def session_stopped(run_id: str, *, reason: str, exit_code: int, detail: str = "",
                    equity: Any = None, net_pnl: Any = None) -> Alert:
    clean = exit_code == 0
    body = f"stopped: {reason} (exit {exit_code})"
    if detail:
        body += f"\n{detail}"
    if equity is not None:
        body += f"\nequity {_f(equity)}" + (f", session PnL {_signed(net_pnl)}" if net_pnl is not None else "")
    return Alert(AlertKind.SESSION_STOPPED, f"Session stopped{_name(run_id)}: {reason}", body,
                 Level.INFO if clean else Level.FAILURE, key=f"stopped:{run_id}")


def trade_opened(*, side: str, qty: Any, price: Any, stop: Any = None, target: Any = None,
                 reason: str = "", client_id: str = "", symbol: str = "") -> Alert:
    body = f"{side} {_f(qty, 4)} {symbol} @ {_f(price, 1)}".replace("  ", " ")
    if stop is not None or target is not None:
        body += f"\nstop {_f(stop, 1)}, target {_f(target, 1)}"
    if reason:
        body += f"\nreason: {reason}"
    return Alert(AlertKind.TRADE_OPENED, f"Trade opened: {side}", body, Level.INFO,
                 key=f"open:{client_id}" if client_id else "")


def trade_closed(*, side: str, qty: Any, entry_price: Any, exit_price: Any, net_pnl: Any,
                 exit_reason: str = "", client_id: str = "", symbol: str = "") -> Alert:
    win = isinstance(net_pnl, int | float) and net_pnl > 0
    body = (f"{side} {_f(qty, 4)} {symbol} {_f(entry_price, 1)} -> {_f(exit_price, 1)}".replace("  ", " ")
            + f"\nnet PnL {_signed(net_pnl)}" + (f" ({exit_reason})" if exit_reason else ""))
    return Alert(AlertKind.TRADE_CLOSED, f"Trade closed: {_signed(net_pnl)}", body,
                 Level.SUCCESS if win else Level.WARNING, key=f"close:{client_id}" if client_id else "")


def stale_data(*, age_s: float, timeout_s: float | None = None, source: str = "") -> Alert:
    body = f"no market data for {age_s:.0f} s" + (f" (the session stops at {timeout_s:g} s)" if timeout_s else "")
    if source:
        body += f"\nsource: {source}"
    return Alert(AlertKind.STALE_DATA, "Stale market data", body, Level.WARNING, key="stale")


def reconnect_storm(*, reconnects: int, window_s: float, state: str = "") -> Alert:
    body = f"{reconnects} websocket reconnects in {window_s / 60:.0f} min" + (f"; socket {state}" if state else "")
    return Alert(AlertKind.RECONNECT_STORM, "Reconnect storm", body, Level.WARNING, key="reconnect_storm")


def error_budget(*, total: int, budget: int, by_kind: Mapping[str, Any] | None = None) -> Alert:
    exhausted = total >= budget
    kinds = ", ".join(f"{k} {v}" for k, v in sorted((by_kind or {}).items()))
    body = f"{total} of {budget} errors spent" + (f" ({kinds})" if kinds else "")
    if exhausted:
        return Alert(AlertKind.ERROR_BUDGET_EXHAUSTED, "Error budget exhausted", body + "\nthe session stops",
                     Level.FAILURE, key="budget:exhausted")
    return Alert(AlertKind.ERROR_BUDGET_HALF, "Error budget half spent", body, Level.WARNING, key="budget:half")


def breaker_tripped(*, reason: str, until_ts: Any = None, value: Any = None) -> Alert:
    body = f"circuit breaker tripped: {reason}" + (f" ({_f(value, 4)})" if value is not None else "")
    if until_ts:
        body += f"\nentries blocked until {ts_iso(until_ts)} UTC"
    return Alert(AlertKind.BREAKER_TRIPPED, "Breaker tripped", body, Level.WARNING,
                 key=f"breaker:{reason}:{until_ts}")


def kill_switch(*, run_id: str = "", detail: str = "", flatten: bool | None = None) -> Alert:
    body = "kill switch: the session is stopping" + (
        "" if flatten is None else (" and flattening" if flatten else ", position kept"))
    if detail:
        body += f"\n{detail}"
    return Alert(AlertKind.KILL_SWITCH, f"Kill switch{_name(run_id)}", body, Level.WARNING, key=f"kill:{run_id}")


def watchdog_restart(*, restart: int, exit_code: int, reason: str = "", delay_s: float | None = None) -> Alert:
    body = f"the session exited with {exit_code}" + (f" ({reason})" if reason else "") + f"; restart #{restart}"
    if delay_s is not None:
        body += f" in {delay_s:g} s"
    return Alert(AlertKind.WATCHDOG_RESTART, "Watchdog restart", body, Level.WARNING, key=f"restart:{restart}")


def daily_summary(*, day: date, equity: Any, day_pnl: Any = None, trades: Any = None,
                  position: Mapping[str, Any] | None = None, errors: Any = None, run_id: str = "") -> Alert:
    pos = position or {}
    qty = pos.get("qty") or 0
    lines = [f"equity {_f(equity)}" + (f", day PnL {_signed(day_pnl)}" if day_pnl is not None else "")]
    if trades is not None:
        lines.append(f"trades closed today: {trades}")
    lines.append(f"position: {pos.get('side', 'flat')} {_f(abs(qty), 4)}" if qty else "position: flat")
    if errors is not None:
        lines.append(f"errors: {errors}")
    return Alert(AlertKind.DAILY_SUMMARY, f"Daily summary {day.isoformat()}{_name(run_id)}", "\n".join(lines),
                 Level.INFO, key=f"daily:{day.isoformat()}")


# ---------------------------------------------------------------- delivery


class Sender(Protocol):
    """Delivers one alert to every configured service; True if all accepted."""

    def __call__(self, alert: Alert) -> bool: ...


def redact_url(url: str) -> str:
    """``scheme://host/…`` only: notification URLs carry tokens in paths and users."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<bad url>"
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{'/…' if parts.path.strip('/') or parts.query else ''}"


class AppriseSender:
    """An apprise object behind the :class:`Sender` interface, with a per-call timeout."""

    def __init__(self, urls: Iterable[str], *, timeout_s: float = 10.0) -> None:
        import apprise

        _quiet_apprise()
        self.timeout_s = timeout_s
        self._apprise = apprise.Apprise()
        self.urls: list[str] = []
        bad: list[str] = []
        for url in urls:
            SCRUBBER.register(url)  # tokens inside a URL must never reach a log line
            for part in _url_secrets(url):
                SCRUBBER.register(part)
            if self._apprise.add(url):
                self.urls.append(url)
            else:
                bad.append(redact_url(url))
        if bad:
            raise ValueError(f"unusable notification URL(s): {', '.join(bad)} (see apprise's URL formats)")

    def __call__(self, alert: Alert) -> bool:
        result = self._apprise.notify(body=alert.body, title=alert.title, notify_type=alert.level.value,
                                      timeout=self.timeout_s)
        return bool(result)


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    out = [p for p in (parts.password, parts.username) if p]
    out += [seg for seg in parts.path.split("/") if len(seg) >= 12]
    return out


def _quiet_apprise() -> None:
    """apprise logs failures (with URLs) on its own logger; ours reports them, scrubbed."""
    lg = logging.getLogger("apprise")
    if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
        lg.addHandler(logging.NullHandler())
    lg.propagate = False


def notify_urls(cli: Iterable[str] | None = None, config: Iterable[str] | None = None,
                environ: Mapping[str, str] | None = None) -> list[str]:
    """Notification URLs from ``--notify`` (repeatable), the config and
    ``$LA_NOTIFY_URLS`` (whitespace- or comma-separated), in that order, without repeats.
    The environment is the place for URLs that carry a token."""
    env = os.environ if environ is None else environ
    raw = list(cli or []) + list(config or []) + env.get(NOTIFY_ENV, "").replace(",", " ").split()
    seen: list[str] = []
    for u in (u.strip() for u in raw):
        if u and u not in seen:
            seen.append(u)
    return seen


@dataclass
class NotifierStats:
    queued: int = 0
    sent: int = 0
    failed: int = 0
    dropped_full: int = 0
    deduplicated: int = 0
    rate_limited: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Notifier:
    """Queues alerts and delivers them from one background thread.

    ``send`` is safe from any thread and from the event loop; it never blocks
    on the network. ``sender`` is an :class:`AppriseSender` (or any callable
    taking an :class:`Alert`, for tests).
    """

    def __init__(
        self,
        sender: Sender,
        *,
        queue_size: int = 100,
        dedup_s: float = 600.0,
        burst: int = 10,
        per_minute: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_size < 1 or burst < 1 or per_minute <= 0:
            raise ValueError("queue_size and burst must be >= 1 and per_minute > 0")
        self.sender = sender
        self.dedup_s = dedup_s
        self.burst = burst
        self.per_minute = per_minute
        self._clock = clock
        self._queue: deque[tuple[Alert, int]] = deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._recent: dict[str, float] = {}
        self._tokens = float(burst)
        self._refilled = clock()
        self._suppressed = 0
        self._busy = False
        self._closed = False
        self.stats = NotifierStats()
        self._thread = threading.Thread(target=self._work, name="notifier", daemon=True)
        self._thread.start()

    @classmethod
    def from_urls(cls, urls: Iterable[str], *, timeout_s: float = 10.0, **kwargs: Any) -> Notifier | None:
        """A notifier for ``urls``, or None when there are none (alerts off)."""
        urls = list(urls)
        if not urls:
            return None
        return cls(AppriseSender(urls, timeout_s=timeout_s), **kwargs)

    # --------------------------------------------------------- the caller's side
    def send(self, alert: Alert) -> bool:
        """Queue ``alert`` unless it is a duplicate or over the rate limit; True if queued."""
        now = self._clock()
        with self._cond:
            if self._closed:
                return False
            key = alert.dedup_key
            last = self._recent.get(key)
            if last is not None and now - last < self.dedup_s:
                self.stats.deduplicated += 1
                return False
            self._refill(now)
            if alert.kind not in UNLIMITED:
                if self._tokens < 1.0:
                    self.stats.rate_limited += 1
                    self._suppressed += 1
                    return False
                self._tokens -= 1.0
            self._recent[key] = now
            if len(self._recent) > 1000:  # bounded memory: forget the oldest keys
                for k in sorted(self._recent, key=self._recent.__getitem__)[:500]:
                    del self._recent[k]
            if len(self._queue) == self._queue.maxlen:
                self.stats.dropped_full += 1
            suppressed, self._suppressed = self._suppressed, 0
            self._queue.append((alert, suppressed))
            self.stats.queued += 1
            self._cond.notify()
            return True

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled)
        self._refilled = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.per_minute / 60.0)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    # --------------------------------------------------------- the worker
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                alert, suppressed = self._queue.popleft()
                self._busy = True
            if suppressed:
                alert = Alert(alert.kind, alert.title, alert.body + f"\n({suppressed} earlier alerts suppressed by the rate limit)",
                              alert.level, alert.key)
            ok = False
            try:
                ok = bool(self.sender(alert))
            except Exception as exc:  # a broken service is a dropped alert, never a crash
                log.warning("alert %s could not be sent: %s", alert.kind.value, scrub(f"{type(exc).__name__}: {exc}"))
            with self._cond:
                self._busy = False
                if ok:
                    self.stats.sent += 1
                    self.stats.by_kind[alert.kind.value] = self.stats.by_kind.get(alert.kind.value, 0) + 1
                else:
                    self.stats.failed += 1
                self._cond.notify_all()
            if not ok:
                log.warning("alert %s was not delivered (service failed or timed out)", alert.kind.value)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait (at most ``timeout_s``) until the queue is empty; True if it is.
        For the end of a session and tests only: never on the candle path."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout_s``), then stop the worker;
        a delivery still hanging is abandoned with the daemon thread."""
        self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(0.5)


# ---------------------------------------------------------------- watching a session


@dataclass
class WatchRules:
    """When the watcher speaks up."""

    stale_after_s: float | None = None  # None: half the session's stale timeout
    reconnect_storm: int = 5  # reconnects ...
    reconnect_window_s: float = 600.0  # ... within this window
    daily_summary_hour_utc: int | None = None  # 0..23, None: no daily summary


def next_daily(now_s: float, hour_utc: int) -> float:
    """The next wall-clock time (epoch s) at ``hour_utc``:00 UTC strictly after ``now_s``."""
    if not 0 <= hour_utc <= 23:
        raise ValueError(f"daily summary hour {hour_utc}: allowed 0..23 (UTC)")
    now = datetime.fromtimestamp(now_s, UTC)
    at = now.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    if at <= now:
        at += timedelta(days=1)
    return at.timestamp()


class AlertWatcher:
    """Looks at a :class:`SessionView` every few seconds and sends alerts for
    what changed: trades opened/closed, stale data, reconnect storms, the error
    budget at 50 % and exhausted, breaker trips, and the daily summary.

    :meth:`check` is synchronous and takes the wall time, so tests drive it
    step by step; :meth:`run` calls it periodically on the loop.
    """

    def __init__(self, view: SessionView, notifier: Notifier, rules: WatchRules | None = None, *,
                 wall_clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.view = view
        self.notifier = notifier
        self.rules = rules or WatchRules()
        self._wall = wall_clock
        self._mono = monotonic
        self._cursors = {"fills": view.recent("fills", LATEST).seq, "trades": view.recent("trades", LATEST).seq,
                         "events": view.recent("events", LATEST).seq}
        self._reconnects: deque[tuple[float, int]] = deque()
        self._last_reconnects: int | None = None
        self._stale_sent = False
        self._budget_level = 0  # 0: below half, 1: half sent, 2: exhausted sent
        self._daily_at: float | None = None
        self._day_start_equity: float | None = None
        self._day_trades = 0
        self.sent: list[AlertKind] = []
        if self.rules.daily_summary_hour_utc is not None:
            self._daily_at = next_daily(wall_clock(), self.rules.daily_summary_hour_utc)

    def _send(self, alert: Alert) -> None:
        if self.notifier.send(alert):
            self.sent.append(alert.kind)

    def check(self) -> None:
        st = self.view.status()
        if self._day_start_equity is None and isinstance(st.get("equity"), int | float):
            self._day_start_equity = float(st["equity"])
        self._check_trades(st)
        self._check_events()
        self._check_stale(st)
        self._check_reconnects(st)
        self._check_budget(st)
        self._check_daily(st)

    def _check_trades(self, st: Mapping[str, Any]) -> None:
        """Opened: a fill that opened the current position (same time and
        direction) or that a closed trade names as its opening order. Closed:
        each ``trade_closed`` event. Exits and partial fills never alert as opens."""
        symbol = str(st.get("symbol") or "")
        fills = self.view.recent("fills", self._cursors["fills"])
        trades = self.view.recent("trades", self._cursors["trades"])
        self._cursors["fills"], self._cursors["trades"] = fills.seq, trades.seq
        closed = {str(t.get("client_id")): t for t in trades.items if t.get("client_id")}
        pos = st.get("position") if isinstance(st.get("position"), Mapping) else {}
        pos = pos or {}
        qty = pos.get("qty") or 0
        for f in fills.items:
            cid = str(f.get("client_id") or "")
            trade = closed.get(cid)
            if trade is not None and trade.get("entry_ts") == f.get("ts"):
                side, stop, target = str(trade.get("side") or ""), None, None
            elif qty and pos.get("entry_ts") == f.get("ts") and (qty > 0) == (str(f.get("side")).upper() == "BUY"):
                side, stop, target = str(pos.get("side") or ""), pos.get("stop"), pos.get("target")
            else:
                continue  # an exit, or a fill of a position opened earlier
            self._send(trade_opened(side=side, qty=f.get("qty"), price=f.get("price"), stop=stop, target=target,
                                    reason=str(f.get("reason") or ""), client_id=cid, symbol=symbol))
        for t in trades.items:
            self._day_trades += 1
            self._send(trade_closed(side=str(t.get("side", "")), qty=t.get("qty"), entry_price=t.get("entry_price"),
                                    exit_price=t.get("exit_price"), net_pnl=t.get("net_pnl"),
                                    exit_reason=str(t.get("exit_reason") or ""), client_id=str(t.get("client_id") or ""),
                                    symbol=symbol))

    def _check_events(self) -> None:
        r = self.view.recent("events", self._cursors["events"])
        self._cursors["events"] = r.seq
        for e in r.items:
            if e.get("kind") == "breaker_trip":
                self._send(breaker_tripped(reason=str(e.get("reason") or ""), until_ts=e.get("until_ts"),
                                           value=e.get("value")))

    def _check_stale(self, st: Mapping[str, Any]) -> None:
        age = st.get("market_data_age_s")
        timeout = st.get("stale_timeout_s")
        limit = self.rules.stale_after_s
        if limit is None and isinstance(timeout, int | float):
            limit = timeout / 2
        if not isinstance(age, int | float) or limit is None or st.get("status") not in (None, "running"):
            return
        if age >= limit:
            if not self._stale_sent:
                src = st.get("source") or {}
                self._send(stale_data(age_s=float(age), timeout_s=timeout if isinstance(timeout, int | float) else None,
                                      source=str(src.get("source") or "") if isinstance(src, Mapping) else ""))
                self._stale_sent = True
        elif age < limit / 2:
            self._stale_sent = False  # fresh again: the next stale spell alerts again

    def _check_reconnects(self, st: Mapping[str, Any]) -> None:
        src = st.get("source")
        n = src.get("reconnects") if isinstance(src, Mapping) else None
        if not isinstance(n, int) or isinstance(n, bool):
            return
        now = self._mono()
        if self._last_reconnects is not None and n > self._last_reconnects:
            self._reconnects.append((now, n - self._last_reconnects))
        self._last_reconnects = n
        window = self.rules.reconnect_window_s
        while self._reconnects and now - self._reconnects[0][0] > window:
            self._reconnects.popleft()
        count = sum(k for _, k in self._reconnects)
        if count >= self.rules.reconnect_storm:
            self._send(reconnect_storm(reconnects=count, window_s=window,
                                       state=str(src.get("ws_state") or "") if isinstance(src, Mapping) else ""))
            self._reconnects.clear()

    def _check_budget(self, st: Mapping[str, Any]) -> None:
        err = st.get("errors")
        if not isinstance(err, Mapping):
            return
        total, budget = err.get("total"), err.get("budget")
        if not isinstance(total, int) or not isinstance(budget, int) or budget <= 0:
            return
        level = 2 if total >= budget else 1 if total * 2 >= budget else 0
        if level > self._budget_level:
            kinds = {k: v for k, v in err.items()
                     if k not in ("total", "budget", "consecutive_market_data", "max_consecutive_market_data")}
            self._send(error_budget(total=total, budget=budget, by_kind=kinds))
            self._budget_level = level

    def _check_daily(self, st: Mapping[str, Any]) -> None:
        if self._daily_at is None or self.rules.daily_summary_hour_utc is None:
            return
        now = self._wall()
        if now < self._daily_at:
            return
        day = datetime.fromtimestamp(self._daily_at, UTC).date()  # the summary of the 24 h up to now
        equity = st.get("equity")
        pnl = (equity - self._day_start_equity if isinstance(equity, int | float) and self._day_start_equity is not None
               else None)
        err = st.get("errors")
        self._send(daily_summary(day=day, equity=equity, day_pnl=pnl, trades=self._day_trades,
                                 position=st.get("position") if isinstance(st.get("position"), Mapping) else None,
                                 errors=err.get("total") if isinstance(err, Mapping) else None,
                                 run_id=str(st.get("run_id") or "")))
        self._day_start_equity = float(equity) if isinstance(equity, int | float) else None
        self._day_trades = 0
        self._daily_at = next_daily(now, self.rules.daily_summary_hour_utc)

    async def run(self, interval_s: float = 2.0) -> None:
        """Check every ``interval_s`` until cancelled; a failing check is logged, never fatal."""
        while True:
            try:
                self.check()
            except Exception as exc:
                log.warning("alert check failed: %s", exc)
            await asyncio.sleep(interval_s)

    def start(self, interval_s: float = 2.0) -> asyncio.Task[None]:
        return asyncio.create_task(self.run(interval_s), name="alert-watcher")


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
