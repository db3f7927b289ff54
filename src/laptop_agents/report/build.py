"""Build summary.json and report.html from the files of a run directory.

The report is always rebuilt from what is on disk (candles.csv, equity.csv,
trades.csv, events.jsonl and the previous summary.json), never from memory, so
``laptop-agents report RUN_DIR`` reproduces what the run wrote at its end and a
crashed run can still get its report.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from laptop_agents.backtest.metrics import compute_metrics, drawdowns
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.domain.timeframes import SUPPORTED_INTERVALS, interval_ms
from laptop_agents.fileio import write_bytes_atomic, write_text_atomic
from laptop_agents.logs import scrub, scrub_obj
from laptop_agents.report.writer import (
    CANDLES_CSV,
    EQUITY_CSV,
    EVENTS_JSONL,
    REPORT_HTML,
    SUMMARY_JSON,
    TRADES_CSV,
)

MAX_DECISIONS = 500
MAX_JOURNAL = 200


class ReportError(LaptopAgentsError):
    """A run directory that cannot be reported on; one line."""


@dataclass
class RunData:
    """Everything the report shows, loaded from a run directory."""

    run_dir: Path
    fields: dict[str, Any]
    candles: dict[str, np.ndarray]
    equity: dict[str, np.ndarray]
    trades: list[dict[str, Any]]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    decision_counts: dict[str, int] = field(default_factory=dict)
    journal: list[dict[str, Any]] = field(default_factory=list)
    events_total: int = 0
    events_file: bool = False  # events.jsonl exists (it may hold no decision at all)
    interval_ms: int = 60_000


def _read_csv_columns(path: Path, schema: Mapping[str, pa.DataType]) -> dict[str, np.ndarray]:
    if not path.exists() or path.stat().st_size == 0:
        return {name: np.zeros(0, dtype=np.int64 if name == "ts" else float) for name in schema}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=dict(schema)))
    except pa.ArrowInvalid as exc:
        raise ReportError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
    return {
        name: table.column(name).to_numpy() if name in table.column_names else np.zeros(table.num_rows)
        for name in schema
    }


def _num(value: Any) -> Any:
    if value in ("", None):
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and abs(number) > 1e11 else number


def read_trades(path: Path) -> list[dict[str, Any]]:
    """trades.csv rows with numbers parsed (ts as int)."""
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            {k: (v if k in ("side", "exit_reason") else _num(v)) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


def _scan_events(path: Path, data: RunData) -> None:
    """Bounded scan of events.jsonl: decision counts, the last decisions and journal lines."""
    if not path.exists():
        return
    data.events_file = True
    decisions: deque[dict[str, Any]] = deque(maxlen=MAX_DECISIONS)
    journal: deque[dict[str, Any]] = deque(maxlen=MAX_JOURNAL)
    counts: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"decision"' not in line and '"journal"' not in line and '"agent_error"' not in line:
                total += 1
                continue
            total += 1
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("kind")
            if kind == "decision":
                action = str(ev.get("action", "?"))
                counts[f"{action}: {ev.get('reason', '')}"] += 1
                if action not in ("hold", "none", "skip"):
                    decisions.append(ev)
            elif kind in ("journal", "agent_error"):
                journal.append(ev)
    data.decisions = list(decisions)
    data.decision_counts = dict(counts.most_common(30))
    data.journal = list(journal)
    data.events_total = total


def _infer_interval_ms(ts: np.ndarray) -> int:
    d = np.diff(ts)
    d = d[d > 0]
    if d.size == 0:
        return 60_000
    values, counts = np.unique(d, return_counts=True)
    return int(values[np.argmax(counts)])


def load_run(run_dir: str | Path, summary_fields: Mapping[str, Any] | None = None) -> RunData:
    """Read a run directory; ``summary_fields`` override those of an existing summary.json."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"run directory not found: {run_dir}")
    if not (run_dir / EQUITY_CSV).exists():
        raise ReportError(f"{run_dir} is not a run directory: no {EQUITY_CSV} (expected runs/<run_id>/)")
    fields: dict[str, Any] = {}
    summary_path = run_dir / SUMMARY_JSON
    if summary_path.exists():
        try:
            old = json.loads(summary_path.read_text(encoding="utf-8"))
            if isinstance(old, dict):
                fields = {k: v for k, v in old.items() if k not in _DERIVED}
        except ValueError:
            fields = {}
    fields.update(dict(summary_fields or {}))
    candles = _read_csv_columns(run_dir / CANDLES_CSV, {
        "ts": pa.int64(), "open": pa.float64(), "high": pa.float64(), "low": pa.float64(),
        "close": pa.float64(), "volume": pa.float64(),
    })
    equity = _read_csv_columns(run_dir / EQUITY_CSV, {
        "ts": pa.int64(), "close": pa.float64(), "equity": pa.float64(), "position_qty": pa.float64(),
        "fees_paid": pa.float64(), "funding_paid": pa.float64(),
    })
    trades = read_trades(run_dir / TRADES_CSV)
    iv = fields.get("interval")
    step = interval_ms(iv) if isinstance(iv, str) and iv in SUPPORTED_INTERVALS else _infer_interval_ms(equity["ts"])
    data = RunData(run_dir=run_dir, fields=fields, candles=candles, equity=equity, trades=trades, interval_ms=step)
    _scan_events(run_dir / EVENTS_JSONL, data)
    return data


# Keys build_report computes; an old summary's values for them are replaced.
_DERIVED = ("metrics", "candles", "first_ts", "last_ts", "first_time", "last_time", "files", "run_dir",
            "decision_counts")


def summarize(data: RunData) -> dict[str, Any]:
    """The summary.json document of a loaded run."""
    eq = data.equity
    start = data.fields.get("starting_equity")
    if start is None:
        start = float(eq["equity"][0]) if eq["equity"].size else 0.0
    metrics = compute_metrics(
        starting_equity=float(start),
        equity=eq["equity"],
        position_qty=eq["position_qty"],
        trade_net_pnl=[float(t["net_pnl"]) for t in data.trades if isinstance(t.get("net_pnl"), float | int)],
        interval_ms=data.interval_ms,
        fees_paid=float(eq["fees_paid"][-1]) if eq["fees_paid"].size else 0.0,
        funding_paid=float(eq["funding_paid"][-1]) if eq["funding_paid"].size else 0.0,
    )
    # Candle counts and times come from candles.csv: equity.csv may end with
    # one more row, the account after a session's shutdown (RunWriter.on_final).
    ts = data.candles["ts"] if data.candles["ts"].size else eq["ts"]
    first = int(ts[0]) if ts.size else None
    last = int(ts[-1]) if ts.size else None
    summary = dict(data.fields)
    summary.update({
        "run_dir": str(data.run_dir),
        "candles": int(ts.size),
        "first_ts": first,
        "last_ts": last,
        "first_time": ms_to_iso(first) if first is not None else None,
        "last_time": ms_to_iso(last) if last is not None else None,
        "metrics": metrics,
        "decision_counts": data.decision_counts,
        "files": sorted(p.name for p in data.run_dir.iterdir() if p.is_file() and not p.name.endswith(".tmp")),
    })
    return summary


def shared_plotly(run_dir: Path) -> str | None:
    """The workspace's copy of plotly.js for a run in ``<workspace>/runs/<run_id>``, written
    once (atomically; again if damaged), as a URL relative to the run directory; None when
    the run directory is not in a ``runs/`` folder (no shared place: the report embeds it).
    Not fsynced: every report checks its size and writes it again when damaged."""
    from laptop_agents.report.html import ASSETS_DIR, plotly_bundle

    run_dir = run_dir.absolute()
    if run_dir.parent.name != "runs":
        return None
    bundle = plotly_bundle()
    assets = run_dir.parent.parent / ASSETS_DIR
    target = assets / bundle.asset_name
    try:
        fresh = target.stat().st_size == len(bundle.data)
    except OSError:
        fresh = False
    if not fresh:
        assets.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, bundle.data)
    return f"../../{ASSETS_DIR}/{bundle.asset_name}"


def build_report(
    run_dir: str | Path, summary_fields: Mapping[str, Any] | None = None, *, html: bool = True,
    plotly: str = "shared",
) -> Path:
    """(Re)build summary.json and report.html of ``run_dir`` from its files.

    ``plotly`` says where the report's plotly.js comes from (see
    :mod:`laptop_agents.report.html`). Returns the path of report.html (of
    summary.json when ``html`` is false). Raises :class:`ReportError` when
    ``run_dir`` is not a run directory.

    Both files are replaced atomically (a failed write leaves the old file and
    no ``*.tmp``) but not fsynced: they are derived, ``laptop-agents report``
    rebuilds them, and the files they are built from are not fsynced either,
    so a flush here would buy nothing after a power cut.
    """
    data = load_run(run_dir, summary_fields)
    summary = summarize(data)
    if html and REPORT_HTML not in summary["files"]:
        summary["files"] = sorted([*summary["files"], REPORT_HTML])
    summary_path = data.run_dir / SUMMARY_JSON
    if SUMMARY_JSON not in summary["files"]:
        summary["files"] = sorted([*summary["files"], SUMMARY_JSON])
    write_text_atomic(summary_path, scrub(json.dumps(scrub_obj(_jsonable(summary)), indent=2, allow_nan=False)) + "\n")
    if not html:
        return summary_path
    from laptop_agents.report.html import render_report

    _, dd_pct = drawdowns(summary["metrics"]["starting_equity"], data.equity["equity"])
    src = shared_plotly(data.run_dir) if plotly == "shared" else None
    mode = "inline" if plotly == "shared" and src is None else plotly
    report_path = data.run_dir / REPORT_HTML
    write_text_atomic(report_path, render_report(data, summary, dd_pct, plotly=mode, plotly_src=src))
    return report_path


def _jsonable(obj: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so summary.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
