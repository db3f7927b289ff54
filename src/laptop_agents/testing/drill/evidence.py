"""What a finished run left behind, read as a user or an auditor could.

- the **state store** through its public read API (``StateStore(...)``:
  ``fills()``, ``trades()``, ``processed_ids()``, ``last_candle_ts()``) and
  its integrity check (the store's own on open, plus SQLite's full
  ``PRAGMA integrity_check`` on a read-only connection, first, so that nothing
  is checkpointed before it is checked);
- the **logs** (``logs/system.jsonl*``): the session's routing lines (DEBUG
  ``session.route``: each step's candles, traded or warmed, written just before
  its commit, and each session's start with the candle it resumed after), the
  market-data errors, REST backfills and the watchdog's record of every exit;
- the **run directories**: each segment's ``events.jsonl`` (the journal),
  ``candles.csv`` and ``summary.json``.

Routing, exactly: a session's line is committed iff its last candle is at or
before the candle the *next* session resumed after (or the store's last one,
for the last session). So every candle of the window is accounted for as
traded, warmed, processed twice (a bug), or never processed (a bug) -- except
while the disk is full, when a line may fail to be written although its
commit succeeded: those candles are *blind* and the replay settles them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from laptop_agents.store import StateStore
from laptop_agents.store.journal import JournalError, read_events

ROUTE_COMPONENT = "laptop_agents.session.route"


@dataclass
class LogLine:
    wall: float
    level: str
    component: str
    message: str
    fields: dict[str, Any]


def read_logs(workspace: Path) -> list[LogLine]:
    """Every JSON log line of the workspace, rotated files included, in time order."""
    logs = workspace / "logs"
    files = sorted(logs.glob("system.jsonl*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    out: list[LogLine] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for raw in text.splitlines():
            try:
                obj = json.loads(raw)
                wall = datetime.fromisoformat(obj["time"]).timestamp()
            except (ValueError, KeyError, TypeError):
                continue  # a torn line (crash mid-write, full disk)
            fields = obj.get("fields")
            out.append(LogLine(wall, str(obj.get("level", "")), str(obj.get("component", "")),
                               str(obj.get("message", "")), fields if isinstance(fields, dict) else {}))
    out.sort(key=lambda ln: ln.wall)
    return out


def expand(runs: Iterable[Iterable[int]], step: int) -> list[int]:
    out: list[int] = []
    for first, last in runs:
        out.extend(range(int(first), int(last) + step, step))
    return out


@dataclass
class RouteLine:
    wall: float
    pid: int
    route: str  # trade | warmup | late
    ts: list[int]
    late_ms: int | None


@dataclass
class Segment:
    """One session process: the candle it resumed after, and its routing lines."""

    pid: int
    run_id: str | None
    started_wall: float
    resumed_after: int | None
    lines: list[RouteLine] = field(default_factory=list)
    resume_known: bool = True
    committed_until: int | None = None  # the next session's resume point (or the store's last candle)
    voided: int = 0  # candles of lines written but never committed


@dataclass
class Routing:
    """How every candle of a run was processed."""

    routes: dict[int, str]
    segments: list[Segment]
    duplicates: dict[int, list[str]]
    lost: list[int]
    blind: list[int]
    late_traded: list[tuple[int, int]]  # (candle, late ms) traded later than the rule allows
    first_ts: int | None
    last_ts: int | None
    voided: int

    def count(self, route: str) -> int:
        return sum(1 for r in self.routes.values() if r == route)


def routing(lines: list[LogLine], final_last_ts: int | None, step: int, *, late_limit_ms: int,
            blind_walls: Iterable[tuple[float, float]] = ()) -> Routing:
    segments: dict[int, Segment] = {}
    order: list[Segment] = []
    for ln in lines:
        if ln.component != ROUTE_COMPONENT:
            continue
        f = ln.fields
        pid = f.get("pid")
        if not isinstance(pid, int):
            continue
        seg = segments.get(pid)
        if f.get("route") == "resume":
            if seg is None:
                seg = segments[pid] = Segment(pid, f.get("run_id"), ln.wall, f.get("last_candle_ts"))
                order.append(seg)
            continue
        if seg is None:  # its start line was lost (a full disk): it resumed after an unknown candle
            seg = segments[pid] = Segment(pid, None, ln.wall, None, resume_known=False)
            order.append(seg)
        runs = f.get("runs") or []
        seg.lines.append(RouteLine(ln.wall, pid, str(f.get("route")), expand(runs, step), f.get("late_ms")))
    for i, seg in enumerate(order):
        # Committed = at or before where the next session resumed. A next session
        # whose start line was lost (full disk): the next one that said it.
        later = [s for s in order[i + 1:] if s.resume_known]
        seg.committed_until = later[0].resumed_after if later else final_last_ts
    routes: dict[int, str] = {}
    duplicates: dict[int, list[str]] = {}
    late_traded: list[tuple[int, int]] = []
    voided = 0
    for seg in order:
        for line in seg.lines:
            if not line.ts:
                continue
            if seg.committed_until is None or line.ts[-1] > seg.committed_until:
                seg.voided += len(line.ts)
                voided += len(line.ts)
                continue
            if line.route == "trade" and line.late_ms is not None and line.late_ms > late_limit_ms:
                late_traded.append((line.ts[-1], line.late_ms))
            for t in line.ts:
                if t in routes:
                    duplicates.setdefault(t, [routes[t]]).append(line.route)
                routes[t] = line.route
    first = min(routes) if routes else None
    last = final_last_ts if final_last_ts is not None else (max(routes) if routes else None)
    missing: list[int] = []
    if first is not None and last is not None:
        missing = [t for t in range(first, last + step, step) if t not in routes]
    blind_ts = _blind(order, blind_walls)
    blind = [t for t in missing if any(lo < t < hi for lo, hi in blind_ts)]
    lost = [t for t in missing if not any(lo < t < hi for lo, hi in blind_ts)]
    return Routing(routes, order, duplicates, lost, blind, late_traded, first, last, voided)


def _blind(order: list[Segment], walls: Iterable[tuple[float, float]]) -> list[tuple[int, int]]:
    """Candle ranges whose routing lines may be missing because the disk was
    full: between the last line before the disk filled and the first after it
    was freed (exclusive)."""
    out = []
    valid = [(ln.wall, ln.ts[0], ln.ts[-1]) for s in order for ln in s.lines
             if ln.ts and s.committed_until is not None and ln.ts[-1] <= s.committed_until]
    valid.sort()
    for w0, w1 in walls:
        before = [hi for wall, _, hi in valid if wall < w0]
        after = [lo for wall, lo, _ in valid if wall > w1]
        lo = max(before) if before else -1
        hi = min(after) if after else 1 << 62
        out.append((lo, hi))
    return out


@dataclass
class StoreView:
    path: Path
    opened: bool
    error: str | None
    integrity: str | None
    last_candle_ts: int | None = None
    fills: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    processed_ids: set[str] = field(default_factory=set)
    live_orders: list[dict[str, Any]] = field(default_factory=list)


def read_store(path: Path) -> StoreView:
    """The ledger through the public read API, after SQLite's full integrity check."""
    integrity: str | None
    try:
        ro = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = ro.execute("PRAGMA integrity_check").fetchall()
        finally:
            ro.close()
        integrity = "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:3])
    except sqlite3.Error as exc:
        integrity = f"cannot check: {exc}"
    try:
        store = StateStore(path)
    except Exception as exc:  # the store's own checks refused it: that is the finding
        return StoreView(path, False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}", integrity)
    try:
        return StoreView(path, True, None, integrity, store.last_candle_ts(), store.fills(), store.trades(),
                         store.processed_ids(), [asdict(o) for o in store.live_orders()])
    finally:
        store.close()


@dataclass
class RunFiles:
    """The run directories of a workspace: journals, candles seen, summaries."""

    journal_fills: list[dict[str, Any]]
    journal_errors: list[str]
    torn_tails: int  # journals and candles.csv files that end in a torn line
    candles_seen: dict[int, tuple[float, float, float, float, float]]
    candles_twice: list[int]
    summaries: dict[str, dict[str, Any]]
    run_ids: list[str]


def read_runs(workspace: Path) -> RunFiles:
    fills: list[dict[str, Any]] = []
    errors: list[str] = []
    torn = 0
    seen: dict[int, tuple[float, float, float, float, float]] = {}
    twice: list[int] = []
    summaries: dict[str, dict[str, Any]] = {}
    runs_dir = workspace / "runs"
    dirs = sorted((d for d in runs_dir.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime) \
        if runs_dir.is_dir() else []
    for d in dirs:
        journal = d / "events.jsonl"
        if journal.is_file():
            try:
                events = read_events(journal)
            except JournalError as exc:
                errors.append(str(exc))
                events = []
            raw = journal.read_bytes()
            if raw and not raw.endswith(b"\n"):
                torn += 1
            fills.extend(dict(e, run_id=d.name) for e in events if e.get("kind") == "fill")
        candles = d / "candles.csv"
        if candles.is_file():
            raw = candles.read_bytes()
            if raw and not raw.endswith(b"\n"):  # torn by a full disk or a kill mid-write: not a row
                torn += 1
                raw = raw[: raw.rfind(b"\n") + 1]
            with io.StringIO(raw.decode("utf-8", "replace"), newline="") as fh:
                for row in csv.DictReader(fh):
                    with contextlib.suppress(KeyError, ValueError, TypeError):
                        t = int(row["ts"])
                        values = (float(row["open"]), float(row["high"]), float(row["low"]), float(row["close"]),
                                  float(row["volume"]))
                        if t in seen:
                            twice.append(t)
                        seen[t] = values
        summary = d / "summary.json"
        if summary.is_file():
            with contextlib.suppress(OSError, ValueError):
                summaries[d.name] = json.loads(summary.read_text(encoding="utf-8"))
    return RunFiles(fills, errors, torn, seen, twice, summaries, [d.name for d in dirs])
