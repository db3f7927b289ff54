"""The live terminal view: a compact rich panel above the scrolling log lines.

On a terminal, :class:`TerminalView` keeps a small panel (price, position,
unrealised PnL, equity, last decision, data age, errors) pinned at the bottom
of the screen with ``rich.live.Live``; log lines written meanwhile scroll
above it. Anywhere else (a pipe, a file, the watchdog's log) a panel would
only add escape codes, so it prints one plain line instead, at most every
``plain_every_s`` seconds and only when something changed.

It reads the same :class:`SessionView` as the dashboard and never touches the
session: starting, refreshing or failing to render cannot stop a candle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from laptop_agents.console.view import SessionView, last_decision
from laptop_agents.logs import get_logger, scrub

log = get_logger("console.terminal")


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _f(x: Any, d: int = 2) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:,.{d}f}"


def _signed(x: Any, d: int = 2) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:+,.{d}f}"


def _price(st: Mapping[str, Any], view: SessionView) -> float | None:
    p = _num(st.get("last_price"))
    if p is not None:
        return p
    candles = view.recent("candles", 0).items
    return _num(candles[-1].get("close")) if candles else None


def summarize(st: Mapping[str, Any], decision: Mapping[str, Any] | None, price: float | None) -> dict[str, str]:
    """The panel's fields as strings (shared by the panel and the plain line)."""
    pos = st.get("position") if isinstance(st.get("position"), Mapping) else {}
    pos = pos or {}
    qty = _num(pos.get("qty")) or 0.0
    if qty:
        position = f"{pos.get('side') or ('long' if qty > 0 else 'short')} {abs(qty):g} @ {_f(pos.get('entry_price'), 1)}"
    else:
        position = "flat"
    upnl = pos.get("unrealized", st.get("unrealized"))
    err = st.get("errors") if isinstance(st.get("errors"), Mapping) else {}
    err = err or {}
    errors = f"{err.get('total', 0)}/{err.get('budget', '?')}" if err else "–"
    age = _num(st.get("market_data_age_s"))
    if decision:
        dec = f"{decision.get('action', '?')} {decision.get('reason', '')}".strip()
    else:
        dec = "–"
    breaker = st.get("breaker") if isinstance(st.get("breaker"), Mapping) else {}
    status = str(st.get("status") or "?")
    if breaker and breaker.get("active"):
        status += " · breaker"
    if st.get("entries_paused"):
        status += " · paused"
    return {
        "status": status + ("" if st.get("healthy", True) or status.startswith(("stop", "start")) else " · unhealthy"),
        "price": _f(price, 1),
        "position": position,
        "upnl": _signed(upnl),
        "equity": _f(st.get("equity")),
        "decision": scrub(dec)[:60],
        "age": "–" if age is None else f"{age:.1f}s",
        "errors": errors,
    }


def render_panel(fields: Mapping[str, str], title: str = "btc-laptop-agents") -> Panel:
    grid = Table.grid(padding=(0, 2), expand=True)
    for _ in range(4):
        grid.add_column(no_wrap=True)
    upnl = fields["upnl"]
    upnl_style = "green" if upnl.startswith("+") else "red" if upnl.startswith("-") else ""
    grid.add_row(Text.assemble(("price ", "dim"), fields["price"]),
                 Text.assemble(("position ", "dim"), fields["position"]),
                 Text.assemble(("uPnL ", "dim"), (upnl, upnl_style)),
                 Text.assemble(("equity ", "dim"), fields["equity"]))
    grid.add_row(Text.assemble(("last decision ", "dim"), fields["decision"]),
                 Text.assemble(("data age ", "dim"), fields["age"]),
                 Text.assemble(("errors ", "dim"), fields["errors"]),
                 Text.assemble(("status ", "dim"), fields["status"]))
    return Panel(Group(grid), title=title, title_align="left", border_style="blue", padding=(0, 1))


def plain_line(fields: Mapping[str, str]) -> str:
    return (f"[{fields['status']}] price {fields['price']} | {fields['position']} | uPnL {fields['upnl']} | "
            f"equity {fields['equity']} | last {fields['decision']} | data {fields['age']} | errors {fields['errors']}")


def log_console(logger: str = "laptop_agents") -> Console | None:
    """The console of the session's rich log handler, if it has one.

    rich coordinates a live display only with output through the *same*
    Console (its consoles write past the stdout/stderr redirection on purpose),
    so the panel must share the log handler's console for log lines to scroll
    above it instead of tearing through it.
    """
    from rich.logging import RichHandler

    for handler in logging.getLogger(logger).handlers:
        if isinstance(handler, RichHandler):
            return handler.console
    return None


class TerminalView:
    """Start with :meth:`start` (on the loop), end with :meth:`stop`.

    ``console`` defaults to the rich log handler's console (see
    :func:`log_console`), else stdout; whether it is a terminal decides between
    the live panel and plain lines (``live`` forces either). Plain ``print``
    output meanwhile is redirected above the panel.
    """

    def __init__(
        self,
        view: SessionView,
        *,
        console: Console | None = None,
        live: bool | None = None,
        refresh_s: float = 1.0,
        plain_every_s: float = 60.0,
        title: str = "btc-laptop-agents",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.view = view
        self.console = console or log_console() or Console()
        self.live = self.console.is_terminal if live is None else live
        self.refresh_s = refresh_s
        self.plain_every_s = plain_every_s
        self.title = title
        self._mono = monotonic
        self._live: Live | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_plain = ""
        self._last_plain_at = -math.inf
        self.renders = 0
        self.failures = 0

    def fields(self) -> dict[str, str]:
        st = self.view.status()
        return summarize(st, last_decision(self.view), _price(st, self.view))

    def panel(self) -> Panel:
        return render_panel(self.fields(), self.title)

    def tick(self) -> None:
        """One refresh: update the panel, or print a plain line if due and changed."""
        try:
            if self._live is not None:
                self._live.update(self.panel(), refresh=True)
            else:
                fields = self.fields()
                line = plain_line(fields)
                now = self._mono()
                key = line.split(" | data ")[0]  # the data age alone is no news
                if key != self._last_plain and now - self._last_plain_at >= self.plain_every_s:
                    self.console.print(line, markup=False, highlight=False, soft_wrap=True)
                    self._last_plain, self._last_plain_at = key, now
            self.renders += 1
        except Exception as exc:  # the view is a convenience: never let it disturb the session
            self.failures += 1
            if self.failures <= 3:
                log.debug("terminal view refresh failed: %s", exc)

    def start(self) -> TerminalView:
        if self.live:
            self._live = Live(self.panel(), console=self.console, auto_refresh=False, transient=False,
                              redirect_stdout=True, redirect_stderr=True)
            self._live.start()
        self._task = asyncio.create_task(self._run(), name="terminal-view")
        return self

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.refresh_s)

    async def stop(self) -> None:
        """Stop refreshing; the live panel stays on screen with its last values."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        live, self._live = self._live, None
        if live is not None:
            with contextlib.suppress(Exception):
                live.update(self.panel(), refresh=True)
            live.stop()
