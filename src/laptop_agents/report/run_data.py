"""A run directory read back: the columns, trades and a bounded view of the
events that summary.json and report.html are built from.

Reading never trusts memory: a crashed run, or a run reported again later
with ``laptop-agents report``, is read exactly as its end would have read it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.timeframes import SUPPORTED_INTERVALS, interval_ms
from laptop_agents.report.files import (
    CANDLE_SCHEMA,
    CANDLES_CSV,
    EQUITY_CSV,
    EQUITY_SCHEMA,
    EVENTS_JSONL,
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


def _torn(path: Path) -> bool:
    """The file ends in the middle of a line: the process died, or the disk
    filled, while writing its last row (rows are written whole, newline last)."""
    with open(path, "rb") as fh:
        fh.seek(-1, io.SEEK_END)
        return fh.read(1) != b"\n"


def _whole_rows(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def _read_csv_columns(path: Path, schema: Mapping[str, pa.DataType]) -> dict[str, np.ndarray]:
    if not path.exists() or path.stat().st_size == 0:
        return {name: np.zeros(0, dtype=np.int64 if name == "ts" else float) for name in schema}
    # A torn last row (see _torn) is not data, like the journal's torn tail.
    source: Any = pa.BufferReader(_whole_rows(path)) if _torn(path) else path
    try:
        table = pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(column_types=dict(schema)))
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
    if path.stat().st_size and _torn(path):
        lines: Any = io.StringIO(_whole_rows(path).decode("utf-8", "replace"), newline="")
    else:
        lines = open(path, encoding="utf-8", newline="")
    with lines as fh:
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
    candles = _read_csv_columns(run_dir / CANDLES_CSV, dict(zip(CANDLE_SCHEMA.names, CANDLE_SCHEMA.types,
                                                                strict=True)))
    equity = _read_csv_columns(run_dir / EQUITY_CSV, dict(zip(EQUITY_SCHEMA.names, EQUITY_SCHEMA.types,
                                                              strict=True)))
    trades = read_trades(run_dir / TRADES_CSV)
    iv = fields.get("interval")
    step = interval_ms(iv) if isinstance(iv, str) and iv in SUPPORTED_INTERVALS else _infer_interval_ms(equity["ts"])
    data = RunData(run_dir=run_dir, fields=fields, candles=candles, equity=equity, trades=trades, interval_ms=step)
    _scan_events(run_dir / EVENTS_JSONL, data)
    return data


# Keys build_report computes; an old summary's values for them are replaced.
_DERIVED = ("metrics", "candles", "first_ts", "last_ts", "first_time", "last_time", "files", "run_dir",
            "decision_counts")

