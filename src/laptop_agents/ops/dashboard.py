"""``laptop-agents dashboard``: the web dashboard of a workspace whose session runs elsewhere.

A session started by the watchdog, by a service manager or in another
terminal (with or without ``--dashboard``) can be watched from its files
alone, like ``status`` does: the heartbeat (status, equity, position, errors,
breaker, market-data age), the current run's ``events.jsonl`` (decisions,
orders, fills, trades), its ``candles.csv`` and ``equity.csv`` (flushed at
every heartbeat), the pause file and the past runs. Nothing is locked or
opened for writing, so watching can never disturb the session.

The only control is the kill switch: "stop" (with or without flattening)
writes ``<workspace>/kill.txt`` as ``laptop-agents stop`` does, with the
flatten word in it. Pausing entries needs the session's own dashboard
(``run --dashboard``), which acts inside the session's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from laptop_agents.console.view import ControlRefused, LiveFeed, Recent, Stream
from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import ExitCode
from laptop_agents.heartbeat import Heartbeat, read_heartbeat
from laptop_agents.lock import WorkspaceLock
from laptop_agents.logs import get_logger, scrub
from laptop_agents.ops.killswitch import request_stop
from laptop_agents.ops.status import STALE_INTERVALS, last_run_dir
from laptop_agents.workspace import Workspace

log = get_logger("ops.dashboard")

DEFAULT_PORT = 8765
_MAX_READ = 4_000_000  # bytes read from one file per refresh (a huge backlog is skipped, not loaded)


class FileTail:
    """New complete lines of a growing file since the last read (a partial last
    line waits for its end). The first read of a long file starts near its end:
    a watcher wants the recent past, not a month of lines."""

    def __init__(self, path: Path, *, backlog: int = _MAX_READ) -> None:
        self.path = path
        self.offset: int | None = None
        self.backlog = backlog
        self._partial = b""

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, io.SEEK_END)
                if self.offset is None or size < self.offset:  # first read, or replaced / truncated
                    self.offset, self._partial = max(0, size - self.backlog), b""
                    fh.seek(self.offset)
                    if self.offset:
                        self.offset += len(fh.readline())  # drop the line the cut went through
                fh.seek(self.offset)
                data = fh.read(_MAX_READ)
        except OSError:
            return []
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return [ln.decode("utf-8", "replace").rstrip("\r") for ln in lines if ln.strip()]


def _floats(row: dict[str, str], *keys: str) -> dict[str, float] | None:
    try:
        return {k: float(row[k]) for k in keys}
    except (KeyError, TypeError, ValueError):
        return None


class WorkspaceWatch:
    """A :class:`~laptop_agents.console.view.SessionView` built from a workspace's files."""

    def __init__(self, ws: Workspace, *, heartbeat_interval_s: float = 5.0) -> None:
        self.ws = ws
        self.heartbeat_interval_s = heartbeat_interval_s
        self.feed = LiveFeed()
        self.run_dir: Path | None = None
        self.heartbeat: Heartbeat | None = None
        self.summary: dict[str, Any] | None = None
        self._tails: dict[str, FileTail] = {}
        self.refreshes = 0

    # --------------------------------------------------------- reading the files
    def refresh(self) -> None:
        """Read what changed (cheap: the heartbeat and the new bytes of three files)."""
        self.heartbeat = read_heartbeat(self.ws.heartbeat)
        run_dir = None
        if self.heartbeat is not None and self.heartbeat.run_id:
            candidate = self.ws.runs_dir / self.heartbeat.run_id
            if candidate.is_dir():
                run_dir = candidate
        if run_dir is None:
            run_dir = last_run_dir(self.ws)
        if run_dir != self.run_dir:  # a new run (a restart): start its streams afresh
            self.run_dir = run_dir
            self.feed = LiveFeed()
            self._tails = {}
            if run_dir is not None:
                self._tails = {"events": FileTail(run_dir / "events.jsonl"),
                               "candles": FileTail(run_dir / "candles.csv"),
                               "equity": FileTail(run_dir / "equity.csv")}
        self.summary = None
        if self.run_dir is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads((self.run_dir / "summary.json").read_text(encoding="utf-8"))
                self.summary = data if isinstance(data, dict) else None
        if not self._tails:
            return
        events = []
        for line in self._tails["events"].read():
            with contextlib.suppress(ValueError):
                e = json.loads(line)
                if isinstance(e, dict) and "kind" in e:
                    events.append(e)
        if events:
            self.feed.on_events(events)
        for row in self._csv("candles", ("ts", "open", "high", "low", "close", "volume")):
            c = _floats(row, "ts", "open", "high", "low", "close", "volume")
            if c is not None:
                self.feed.on_candle({**c, "ts": int(c["ts"])})
        for row in self._csv("equity", ("ts", "close", "equity", "position_qty", "fees_paid", "funding_paid")):
            q = _floats(row, "ts", "equity", "position_qty")
            if q is not None:
                self.feed.on_equity(int(q["ts"]), q["equity"], q["position_qty"])
        self.refreshes += 1

    def _csv(self, name: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
        lines = [ln for ln in self._tails[name].read() if not ln.startswith(columns[0] + ",")]
        return [dict(zip(columns, r, strict=False)) for r in csv.reader(lines)]

    # --------------------------------------------------------- SessionView
    def health(self) -> tuple[bool, dict[str, Any]]:
        hb = self.heartbeat
        if hb is None:
            return False, {"status": "no session", "reason": None, "watching": str(self.ws.root)}
        age = hb.age_s(time.time())
        fresh = age <= STALE_INTERVALS * self.heartbeat_interval_s
        status = hb.status or "unknown"
        if status in ("starting", "running") and not fresh:
            status = "not responding"
        body: dict[str, Any] = {
            "status": status, "reason": hb.reason, "run_id": hb.run_id, "mode": "watching",
            "watching": str(self.ws.root), "heartbeat_age_s": round(age, 1), "pid": hb.pid,
            "market_data_age_s": hb.market_data_age_s, "errors": hb.errors or {}, "equity": hb.equity,
            "position": hb.position, "breaker": hb.breaker or {}, "last_candle_ts": hb.last_candle_ts,
            "working_orders": [], "working_order_count": hb.working_orders,
            "counts": {"candles": hb.candles, "skipped": hb.skipped},
        }
        return fresh and hb.status == "running", body

    def status(self) -> dict[str, Any]:
        healthy, body = self.health()
        out = {**body, "healthy": healthy, "can_pause": False,
               "entries_paused": self.ws.pause_file.exists()}
        candles = self.feed.recent("candles", 0).items
        if candles:
            out["last_price"] = candles[-1].get("close")
        s = self.summary
        if s is not None:
            out.update({k: s.get(k) for k in ("symbol", "interval") if s.get(k) is not None})
            if body["status"] in ("stopped", "no session", "unknown"):
                out["reason"] = out.get("reason") or s.get("reason")
        return out

    def recent(self, stream: Stream, after: int = 0) -> Recent:
        return self.feed.recent(stream, after)


class KillFileControl:
    """A watching dashboard's only lever: the kill switch file."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def stop(self, flatten: bool) -> None:
        if not WorkspaceLock(self.ws.lock).in_use():
            raise ControlRefused(f"no session holds workspace {self.ws.root}: the kill switch was not armed")
        try:
            request_stop(self.ws.kill_file, "dashboard stop (watching)", flatten=flatten)
        except OSError as exc:
            raise ControlRefused(f"cannot arm the kill switch {self.ws.kill_file}: {exc.strerror or exc}") from exc
        log.info("kill switch armed from the watching dashboard (flatten=%s)", flatten)

    def pause_entries(self) -> None:
        raise ControlRefused("pausing entries needs the session's own dashboard (run --dashboard); "
                             "a watching dashboard can only stop the session")

    def resume_entries(self) -> None:
        self.pause_entries()


async def serve(watch: WorkspaceWatch, *, host: str, port: int, token: str | None, refresh_s: float = 1.0,
                stop: asyncio.Event | None = None, ready: Any = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM when none is given)."""
    from laptop_agents.console.app import DashboardOptions
    from laptop_agents.console.server import DashboardServer

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    await asyncio.to_thread(watch.refresh)
    server = DashboardServer(watch, KillFileControl(watch.ws), host=host, port=port, token=token,
                             runs_dir=watch.ws.runs_dir,
                             options=DashboardOptions(title=f"btc-laptop-agents · watching {watch.ws.root.name}"))
    try:
        await server.start()
    except BaseException:
        for sig in installed:
            loop.remove_signal_handler(sig)
        raise
    if ready is not None:
        ready(server)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), refresh_s)
            try:
                await asyncio.to_thread(watch.refresh)
            except Exception as exc:  # a torn file is the next refresh's problem
                log.debug("refresh failed: %s", exc)
            server.poke()
    finally:
        await server.close()
        for sig in installed:
            loop.remove_signal_handler(sig)


def cmd_dashboard(ctx: CommandContext) -> int:
    """``laptop-agents dashboard``: watch the workspace's session in a browser until Ctrl-C."""
    from laptop_agents.console.app import DashboardConfigError, check_token

    system = ctx.config.system
    host = getattr(ctx.args, "host", None) or system.dashboard_host
    port = getattr(ctx.args, "port", None)
    if port is None:
        port = system.dashboard_port if system.dashboard_port is not None else DEFAULT_PORT
    if not 0 <= port <= 65535:
        print(f"dashboard error: --port {port}: allowed 0..65535", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    token = os.environ.get("LA_DASHBOARD_TOKEN", "").strip() or None
    try:
        check_token(token, host)
    except DashboardConfigError as exc:
        print(f"dashboard error: {exc}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    watch = WorkspaceWatch(ctx.workspace, heartbeat_interval_s=system.heartbeat_interval_s)

    def ready(server: Any) -> None:
        print(f"workspace: {ctx.workspace.root}")
        print(f"dashboard: {server.url}  (watching; stop with Ctrl-C)", flush=True)

    try:
        asyncio.run(serve(watch, host=host, port=port, token=token, ready=ready))
    except OSError as exc:
        print(scrub(f"dashboard error: cannot listen on {host}:{port}: {exc.strerror or exc}"), file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    return int(ExitCode.OK)
