"""Build summary.json and report.html from the files of a run directory.

The report is always rebuilt from what is on disk (candles.csv, equity.csv,
trades.csv, events.jsonl and the previous summary.json), never from memory, so
``laptop-agents report RUN_DIR`` reproduces what the run wrote at its end and a
crashed run can still get its report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.fileio import write_bytes_atomic, write_text_atomic
from laptop_agents.logs import scrub, scrub_obj
from laptop_agents.report.files import REPORT_HTML, SUMMARY_JSON
from laptop_agents.report.html import ASSETS_DIR, plotly_bundle, render_report
from laptop_agents.report.metrics import compute_metrics, drawdowns
from laptop_agents.report.run_data import ReportError, RunData, load_run

__all__ = ["ReportError", "build_report", "load_run", "shared_plotly", "summarize"]


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
