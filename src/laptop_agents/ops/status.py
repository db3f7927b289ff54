"""``laptop-agents status``: what is going on in a workspace, from its files only.

It never takes a lock, opens the state store or talks to a running session:
status must answer instantly and safely even while a session (or a hung one)
holds everything. The sources are the lock records, ``heartbeat.json``, the
kill file and the newest run directory's ``summary.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from laptop_agents.context import CommandContext
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.exit_codes import ExitCode
from laptop_agents.heartbeat import read_heartbeat
from laptop_agents.lock import WorkspaceLock
from laptop_agents.workspace import Workspace

# A heartbeat older than this many intervals is reported as stale.
STALE_INTERVALS = 3.0
SUMMARY_SKIP = frozenset({"files", "run_dir"})


def _iso_ms(ts_ms: Any) -> str | None:
    if isinstance(ts_ms, int | float) and not isinstance(ts_ms, bool):
        return ms_to_iso(int(ts_ms), "seconds")
    return None


def _lock_state(path: Path) -> dict[str, Any]:
    holder = WorkspaceLock(path).holder()
    if holder is None:
        return {"state": "free", "path": str(path)}
    alive = holder.get("alive")
    state = "held" if alive else ("stale" if alive is False else "unknown")
    return {"state": state, "path": str(path), "pid": holder.get("pid"), "host": holder.get("host"),
            "started_at": holder.get("started_at")}


def last_run_dir(ws: Workspace) -> Path | None:
    """The most recently modified run directory (run ids need not sort by time)."""
    try:
        runs = [p for p in ws.runs_dir.iterdir() if p.is_dir()]
    except OSError:
        return None
    if not runs:
        return None

    def mtime(p: Path) -> float:
        try:
            return max([p.stat().st_mtime] + [c.stat().st_mtime for c in p.iterdir() if c.is_file()])
        except OSError:
            return 0.0

    return max(runs, key=mtime)


def collect_status(ws: Workspace, *, heartbeat_interval_s: float = 5.0, now: float | None = None) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data (so tests and other tools can use it)."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {"workspace": str(ws.root), "exists": ws.root.is_dir()}
    out["lock"] = _lock_state(ws.lock)
    out["watchdog"] = _lock_state(ws.root / "watchdog.lock")

    hb = read_heartbeat(ws.heartbeat)
    if hb is None:
        out["heartbeat"] = None
    else:
        age = hb.age_s(now)
        fields = hb.to_dict() if hb.readable else {}
        fields["age_s"] = round(age, 1)
        fields["fresh"] = age <= STALE_INTERVALS * heartbeat_interval_s
        # A session that wrote its last "stopped" heartbeat ended on purpose:
        # its heartbeat is old, not stale.
        fields["state"] = "stopped" if hb.status == "stopped" else ("fresh" if fields["fresh"] else "stale")
        fields["last_candle_time"] = _iso_ms(hb.last_candle_ts)
        out["heartbeat"] = fields

    kill: dict[str, Any] = {"pending": ws.kill_file.exists(), "path": str(ws.kill_file)}
    if kill["pending"]:
        try:
            payload = json.loads(ws.kill_file.read_text(encoding="utf-8"))
            if isinstance(payload, dict):
                kill.update({k: payload.get(k) for k in ("reason", "requested_at", "pid")})
        except (OSError, ValueError):
            pass  # a hand-made kill file is still a kill file
    out["kill_file"] = kill

    pause: dict[str, Any] = {"paused": ws.pause_file.exists(), "path": str(ws.pause_file)}
    if pause["paused"]:
        try:
            payload = json.loads(ws.pause_file.read_text(encoding="utf-8"))
            if isinstance(payload, dict):
                pause.update({k: payload.get(k) for k in ("paused_at", "source", "run_id")})
        except (OSError, ValueError):
            pass  # any pause file is a pause
    out["pause"] = pause

    run = last_run_dir(ws)
    out["last_run"] = None
    if run is not None:
        summary: dict[str, Any] | None = None
        try:
            data = json.loads((run / "summary.json").read_text(encoding="utf-8"))
            summary = data if isinstance(data, dict) else None
        except (OSError, ValueError):
            summary = None
        out["last_run"] = {"path": str(run), "summary": summary}
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def _lock_row(info: dict[str, Any]) -> str:
    if info["state"] == "free":
        return "free"
    label = {"held": "held by a live process", "stale": "stale (holder is dead; will be taken over)",
             "unknown": "held (liveness unknown)"}[info["state"]]
    return f"{label}: pid {_fmt(info.get('pid'))}, since {_fmt(info.get('started_at'))}"


def render_status(status: dict[str, Any], console: Console) -> None:
    table = Table(title="btc-laptop-agents status", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("workspace", status["workspace"] + ("" if status["exists"] else " (does not exist)"))
    table.add_row("session lock", _lock_row(status["lock"]))
    table.add_row("watchdog", _lock_row(status["watchdog"]))

    hb = status["heartbeat"]
    if hb is None:
        table.add_row("heartbeat", "none")
    else:
        state = hb.get("state", "fresh" if hb.get("fresh") else "stale")
        label = {"stopped": "the session stopped", "fresh": "fresh"}.get(state, "STALE")
        table.add_row("heartbeat", f"{hb['age_s']:g} s ago ({label}), "
                                   f"status {_fmt(hb.get('status'))}, reason {_fmt(hb.get('reason'))}, "
                                   f"pid {_fmt(hb.get('pid'))}, run {_fmt(hb.get('run_id'))}")
        table.add_row("  equity", _fmt(hb.get("equity")))
        table.add_row("  position", _fmt(hb.get("position")))
        table.add_row("  working orders", _fmt(hb.get("working_orders")))
        table.add_row("  last candle", _fmt(hb.get("last_candle_time")))
        table.add_row("  market data age", _fmt(hb.get("market_data_age_s")) + " s")
        for key in ("errors", "breaker", "rss_mb"):
            if hb.get(key) is not None:
                table.add_row(f"  {key.replace('_', ' ')}", _fmt(hb.get(key)))

    kill = status["kill_file"]
    if kill["pending"]:
        table.add_row("kill file", f"PENDING {kill['path']} (reason {_fmt(kill.get('reason'))}, "
                                   f"at {_fmt(kill.get('requested_at'))}): a session will stop or refuse to "
                                   f"start; remove it to run again")
    else:
        table.add_row("kill file", "none")
    pause = status.get("pause") or {}
    if pause.get("paused"):
        table.add_row("entries", f"PAUSED since {_fmt(pause.get('paused_at'))} (from the {_fmt(pause.get('source'))}): "
                                 f"no new entries; resume from the dashboard, or delete {pause['path']} while "
                                 f"nothing runs")

    run = status["last_run"]
    if run is None:
        table.add_row("last run", "none")
    else:
        table.add_row("last run", run["path"])
        summary = run["summary"]
        if summary is None:
            table.add_row("  summary.json", "not written (run in progress, or it ended before its summary)")
        else:
            shown: dict[str, Any] = {}
            for key, value in summary.items():
                if key in SUMMARY_SKIP or isinstance(value, dict | list):
                    continue
                table.add_row(f"  {key}", _fmt(value))
                shown[key] = value
            metrics = summary.get("metrics")
            if isinstance(metrics, dict):
                for key, value in metrics.items():
                    if isinstance(value, dict | list):
                        continue
                    if key in shown:
                        # The summary and its metrics name some values twice; show
                        # one row, and both only when they disagree.
                        if _fmt(shown[key]) != _fmt(value):
                            table.add_row(f"  {key} (metrics)", _fmt(value))
                        continue
                    table.add_row(f"  {key}", _fmt(value))
    console.print(table)


def cmd_status(ctx: CommandContext) -> int:
    """``laptop-agents status``: print the workspace's state; always exit 0."""
    status = collect_status(ctx.workspace, heartbeat_interval_s=ctx.config.system.heartbeat_interval_s)
    render_status(status, Console(width=120))
    return int(ExitCode.OK)
