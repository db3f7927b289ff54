"""Candle files (CSV, Parquet, JSON) in, clean ``list[Candle]`` out, with a report.

Real candle files are dirty: mixed UTC offsets, duplicated rows, gaps, bars
where ``high < close``, zero volume, a still-forming last bar. A backtest that
silently eats them gives numbers nobody can trust; one that crashes on them is
useless. So the loader *names* every problem (count and first examples) and
applies one documented policy, or refuses with ``strict=True``.

Layouts understood (read by :mod:`laptop_agents.sources.candle_layouts`)
----------------------------------------------------------------------
- A header row with any case / spacing / punctuation of: time ``Datetime |
  timestamp | open_time | unix | ts | t | time | Date`` (a unit suffix such as
  ``open_time_s`` or ``timestamp_ms`` says the unit), or a ``Date`` column plus
  a time-of-day ``Time`` column (TradingView, MetaTrader ``<DATE> <TIME>``);
  ``open | o``; ``high | h``; ``low | l``; ``close | c`` (``Adj Close`` is
  ignored); ``volume | vol | v | Volume BTC``; optional ``funding |
  funding_rate`` (a *fraction* per 8 h, 0.0001 = 0.01 %). ``--time-column``
  names any other time column (or ``DATE,TIME`` pair) and ``--time-unit`` its
  epoch unit. A column the loader uses may not appear twice.
- Exchange and charting exports: Binance klines (12 columns, with or without
  the header, ms or µs times; any headerless numeric file is read in that
  column order; a ``.zip`` holding one CSV as downloaded); CryptoDataDownload
  (a banner line before the header, newest first, ``unix``/``date`` columns,
  dates like ``2019-10-17 09-AM``); MetaTrader 4 (headerless ``2021.09.27,14:15,
  open, high, low, close, volume``) and 5 (tab separated); Bitunix kline rows
  (``time, open, high, low, close, quoteVol, baseVol``) as CSV/Parquet or as
  the REST reply saved to ``.json``. Bitunix swaps its volume fields, so
  ``quoteVol`` (the BTC amount) is used as the volume when there is no plain
  ``volume`` column.
- Times: epoch seconds, milliseconds, microseconds or nanoseconds (told apart by
  magnitude, row by row), ISO 8601 with or without offsets (naive times are
  taken as UTC), dotted/slashed dates, native Parquet timestamps. Everything
  becomes ``int`` UTC milliseconds. Times outside 2000..2100 are not real
  candles: a few are dropped as unreadable, a file of them is refused.

Policy (``strict=False``), applied in this order
------------------------------------------------
1. rows with an unreadable time (or one outside 2000..2100) are dropped;
2. a file that is entirely newest-first (Bitunix REST order) is reversed
   silently; otherwise out-of-order rows are **sorted** (stable);
3. rows with a non-finite or non-positive price or a non-finite/negative
   volume are **dropped**;
4. duplicated timestamps: the **last** row in file order is kept;
5. bars whose open/close lie outside low..high are **repaired** by widening
   high/low to include open and close (prices are kept; the bar is not invented);
6. the trailing bar is **dropped** when it is partial: off the interval grid,
   closer than one interval to the previous bar, or with a ``close_time``
   before its interval ends;
7. bars off the interval grid elsewhere are **dropped**;
8. gaps are **left as gaps** (no bars are invented) and reported;
9. zero-volume bars are **kept** and reported.

With ``strict=True`` any of 1-8 raises :class:`CandleFileError` (one line);
zero volume alone is not refused because it is normal in some exports.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from laptop_agents.domain.fast import fast_init
from laptop_agents.domain.models import Candle, DomainError, FundingRate
from laptop_agents.domain.timeframes import SUPPORTED_INTERVALS, interval_ms, parse_interval
from laptop_agents.sources.candle_layouts import (
    SANE_RANGE,
    TIME_UNITS,
    CandleFileError,
    close_time_ms,
    floats,
    pick_columns,
    read_table,
    show,
    time_ms,
)

__all__ = [
    "TIME_UNITS", "CandleFile", "CandleFileError", "DataReport", "Problem", "candles_table", "iso", "load_candles",
    "write_candles", "write_table",
]

MAX_EXAMPLES = 3

_STRICT_REFUSED = (
    "bad_time", "non_monotonic", "invalid_values", "duplicates", "ohlc_inconsistent",
    "partial_last", "misaligned", "gaps",
)


@dataclass(slots=True)
class Problem:
    """One kind of defect found in a file, what was done about it, and examples."""

    kind: str
    count: int
    action: str
    examples: list[str] = field(default_factory=list)
    detail: str = ""

    def line(self, *, action: bool = True) -> str:
        ex = f" e.g. {', '.join(self.examples)}" if self.examples else ""
        detail = f" ({self.detail})" if self.detail else ""
        did = f" -> {self.action}" if action else ""
        return f"{self.kind}: {self.count}{detail}{did}{ex}"


@dataclass(slots=True)
class DataReport:
    """What the loader found and did; printed by the CLI, stored in summary.json."""

    path: str
    layout: str
    rows_read: int
    rows_kept: int = 0
    interval: str = ""
    first_ts: int | None = None
    last_ts: int | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(p.kind in _STRICT_REFUSED for p in self.problems)

    def problem(self, kind: str) -> Problem | None:
        return next((p for p in self.problems if p.kind == kind), None)

    def lines(self) -> list[str]:
        head = (
            f"{self.path}: {self.layout}, {self.rows_read} rows read, {self.rows_kept} candles kept, "
            f"interval {self.interval or '?'}"
        )
        if self.first_ts is not None and self.last_ts is not None:
            head += f", {iso(self.first_ts)} -> {iso(self.last_ts)}"
        return [head, *self.notes, *(p.line() for p in self.problems)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "layout": self.layout,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "interval": self.interval,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "clean": self.clean,
            "notes": list(self.notes),
            "problems": [
                {"kind": p.kind, "count": p.count, "action": p.action, "examples": p.examples, "detail": p.detail}
                for p in self.problems
            ],
        }


@dataclass(slots=True)
class CandleFile:
    """A loaded file: clean candles (oldest first), their interval, funding
    updates (only where the rate changes) and the problem report."""

    path: Path
    candles: list[Candle]
    interval: str
    interval_ms: int
    funding: list[FundingRate]
    report: DataReport


def iso(ts: int) -> str:
    """UTC ISO time of an epoch-ms value, for messages and reports only (ms shown when not whole seconds)."""
    dt = datetime.fromtimestamp(ts / 1000.0, UTC)
    if ts % 1000 == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------
# validation and policy
# ---------------------------------------------------------------------------
def _examples(ts: np.ndarray, idx: np.ndarray) -> list[str]:
    return [iso(int(ts[i])) for i in idx[:MAX_EXAMPLES]]


def _infer_interval(ts: np.ndarray, path: Path) -> str:
    diffs = np.diff(ts)
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        raise CandleFileError(f"{path.name}: cannot infer the interval from fewer than 2 distinct times; pass --interval")
    values, counts = np.unique(diffs, return_counts=True)
    mode = int(values[np.argmax(counts)])
    for name in SUPPORTED_INTERVALS:
        if interval_ms(name) == mode:
            return name
    raise CandleFileError(
        f"{path.name}: the most common bar spacing is {mode} ms, not a supported interval "
        f"({', '.join(SUPPORTED_INTERVALS)}); pass --interval"
    )


def load_candles(
    path: str | Path,
    *,
    strict: bool = False,
    interval: str | None = None,
    time_column: str | None = None,
    time_unit: str | None = None,
) -> CandleFile:
    """Load, validate and clean a candle file (see the module docstring for the policy).

    Three steps: read the file into a table, pick the columns and read the
    times (both in :mod:`~laptop_agents.sources.candle_layouts`), then clean by
    the policy (here). ``interval`` forces the bar length; by default it is
    inferred from the most common spacing. ``time_column`` names the time
    column (or ``"DATE,TIME"``) when the aliases do not find it; ``time_unit``
    (s, ms, us, ns) overrides the unit guessed from the magnitude. Raises
    :class:`CandleFileError` with one line on a file that cannot be used, or
    on any defect when ``strict``.
    """
    path = Path(path)
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise CandleFileError(f"{path.name}: bad --time-unit {show(time_unit)}: allowed {', '.join(TIME_UNITS)}")
    raw = read_table(path)
    table = raw.table
    rows = table.num_rows
    if rows == 0:
        raise CandleFileError(f"{path.name}: no rows")
    cols = pick_columns(raw, path, time_column=time_column, time_unit=time_unit)
    report = DataReport(path=str(path), layout=raw.layout + cols.layout_note, rows_read=rows, notes=list(raw.notes))
    times = time_ms(table, cols, path)
    ts_f = times.ms
    report.notes.append(times.note)
    o = floats(table, cols.open, rows, path)
    h = floats(table, cols.high, rows, path)
    lo = floats(table, cols.low, rows, path)
    c = floats(table, cols.close, rows, path)
    v = floats(table, cols.volume, rows, path)
    if cols.volume is None:
        report.notes.append("no volume column: volume set to 0")
    elif table.column_names[cols.volume].strip().lower() not in ("volume", "vol", "v"):
        report.notes.append(f"volume from column {show(table.column_names[cols.volume])}")
    fund = floats(table, cols.funding, rows, path) if cols.funding is not None else None
    close_t = close_time_ms(table, cols, path)
    return _clean(path, report, ts_f, times.out_of_range, raw.first_row, o, h, lo, c, v, fund, close_t,
                  strict=strict, interval=interval, has_volume=cols.volume is not None)


def _clean(
    path: Path, report: DataReport, ts_f: np.ndarray, out_of_range: int, first_row: int,
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray,
    fund: np.ndarray | None, close_t: np.ndarray | None, *, strict: bool, interval: str | None, has_volume: bool,
) -> CandleFile:
    """Step 3: the repair policy of the module docstring, in its order, on the raw columns."""
    # 1. unreadable times (and times outside the sane range, already NaN)
    bad_t = ~np.isfinite(ts_f)
    keep = ~bad_t
    if bad_t.any():
        idx = np.flatnonzero(bad_t)
        unreadable = int(idx.size) - out_of_range
        detail = ""
        if out_of_range:
            detail = f"{out_of_range} outside {SANE_RANGE}" + (f", {unreadable} unreadable" if unreadable else "")
        report.problems.append(Problem("bad_time", int(idx.size), "dropped",
                                       [f"row {int(i) + first_row}" for i in idx[:MAX_EXAMPLES]], detail))
    order = np.flatnonzero(keep)
    ts = ts_f[order].astype(np.int64)

    # 2. order: reversed (newest first) is a layout, anything else is sorted.
    if ts.size > 1:
        d = np.diff(ts)
        if (d < 0).all():
            order = order[::-1]
            report.notes.append("rows are newest first (exchange REST order): reversed")
        elif (d < 0).any():
            back = np.flatnonzero(d < 0) + 1
            report.problems.append(Problem("non_monotonic", int(back.size), "sorted by time",
                                           _examples(ts, back)))
            order = order[np.argsort(ts, kind="stable")]
        ts = ts_f[order].astype(np.int64)

    # 3. invalid values
    o, h, lo, c, v = o[order], h[order], lo[order], c[order], v[order]
    if fund is not None:
        fund = fund[order]
    if close_t is not None:
        close_t = close_t[order]
    finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
    with np.errstate(invalid="ignore"):
        invalid = ~finite | (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0) | (v < 0)
    if invalid.any():
        idx = np.flatnonzero(invalid)
        report.problems.append(Problem("invalid_values", int(idx.size), "dropped", _examples(ts, idx),
                                       "non-finite or non-positive price, or negative volume"))
    good = ~invalid

    # 4. duplicates: keep the last row in file order (the sort above is stable).
    sel = np.flatnonzero(good)
    tsg = ts[sel]
    if tsg.size > 1:
        later_same = np.append(tsg[1:] == tsg[:-1], False)  # row is followed by one with the same time
        if later_same.any():
            dup_idx = sel[later_same]
            distinct = np.unique(ts[dup_idx]).size
            report.problems.append(Problem("duplicates", int(dup_idx.size), "kept the last row of each time",
                                           [iso(int(x)) for x in np.unique(ts[dup_idx])[:MAX_EXAMPLES]],
                                           f"{distinct} timestamps repeated"))
            sel = sel[~later_same]
    ts, o, h, lo, c, v = ts[sel], o[sel], h[sel], lo[sel], c[sel], v[sel]
    if fund is not None:
        fund = fund[sel]
    if close_t is not None:
        close_t = close_t[sel]
    if ts.size == 0:
        raise CandleFileError(f"{path.name}: no usable rows ({'; '.join(p.line() for p in report.problems)})")

    # 5. interval
    name = parse_interval(interval) if interval else _infer_interval(ts, path)
    step = interval_ms(name)
    report.interval = name

    # 5b. OHLC consistency: widen high/low to include open and close.
    hi_new = np.maximum(np.maximum(h, o), np.maximum(c, lo))
    lo_new = np.minimum(np.minimum(lo, o), np.minimum(c, h))
    bad_ohlc = (hi_new != h) | (lo_new != lo)
    if bad_ohlc.any():
        idx = np.flatnonzero(bad_ohlc)
        report.problems.append(Problem("ohlc_inconsistent", int(idx.size),
                                       "repaired: high/low widened to include open and close", _examples(ts, idx)))
        h, lo = hi_new, lo_new

    # 6. partial last bar
    keep_mask = np.ones(ts.size, dtype=bool)
    phases = ts % step
    vals, counts = np.unique(phases, return_counts=True)
    phase = int(vals[np.argmax(counts)])
    if phase:
        report.notes.append(f"bars open {phase} ms after the {name} grid")
    last = ts.size - 1
    partial_reason = ""
    if ts.size > 1 and phases[last] != phase:
        partial_reason = "off the interval grid"
    elif ts.size > 1 and ts[last] - ts[last - 1] < step:
        partial_reason = "less than one interval after the previous bar"
    elif close_t is not None and np.isfinite(close_t[last]) and close_t[last] < ts[last] + step - 1:
        partial_reason = "close_time before the end of its interval"
    if partial_reason:
        keep_mask[last] = False
        report.problems.append(Problem("partial_last", 1, "dropped", [iso(int(ts[last]))], partial_reason))

    # 7. misaligned bars elsewhere
    misaligned = (phases != phase) & keep_mask
    if misaligned.any():
        idx = np.flatnonzero(misaligned)
        report.problems.append(Problem("misaligned", int(idx.size), f"dropped (not on the {name} grid)",
                                       _examples(ts, idx)))
        keep_mask &= ~misaligned
    if not keep_mask.all():
        ts, o, h, lo, c, v = ts[keep_mask], o[keep_mask], h[keep_mask], lo[keep_mask], c[keep_mask], v[keep_mask]
        if fund is not None:
            fund = fund[keep_mask]
    if ts.size == 0:
        raise CandleFileError(f"{path.name}: no usable rows left after cleaning")

    # 8. gaps (left as gaps)
    d = np.diff(ts)
    gap_idx = np.flatnonzero(d > step)
    if gap_idx.size:
        missing = int(((d[gap_idx] // step) - 1).sum())
        largest = int(d[gap_idx].max())
        report.problems.append(Problem(
            "gaps", int(gap_idx.size), "left as gaps (no bars invented)",
            [f"{iso(int(ts[i]))} -> {iso(int(ts[i + 1]))}" for i in gap_idx[:MAX_EXAMPLES]],
            f"{missing} missing bars, largest {_duration(largest)}",
        ))

    # 9. zero volume (kept)
    zero = np.flatnonzero(v == 0)
    if zero.size and has_volume:
        report.problems.append(Problem("zero_volume", int(zero.size), "kept", _examples(ts, zero)))

    if strict and not report.clean:
        refused = [p for p in report.problems if p.kind in _STRICT_REFUSED]
        what = "; ".join(p.line(action=False) for p in refused)
        raise CandleFileError(
            f"{path.name}: refused with --strict: {what}; without --strict the loader repairs these (see its policy)"
        )

    candles = _build_candles(ts, o, h, lo, c, v)
    funding = _funding_updates(ts, fund, path) if fund is not None else []
    report.rows_kept = len(candles)
    report.first_ts, report.last_ts = candles[0].ts, candles[-1].ts
    return CandleFile(path=path, candles=candles, interval=name, interval_ms=step, funding=funding, report=report)


_trusted_candle = fast_init(Candle, validate=False)


def _build_candles(
    ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
) -> list[Candle]:
    """The cleaned columns as candles. ``Candle.__post_init__`` checks each bar
    one at a time (about half of a year's load time); here its exact
    conditions are checked for all rows at once with numpy, and only then are
    the candles built without re-checking. A row that fails (none should,
    after the cleaning above) goes through the checking constructor, which
    raises its usual error."""
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (
            np.isfinite(o + h + lo + c + v)
            & (lo <= o) & (o <= h) & (lo <= c) & (c <= h) & (v >= 0.0) & (lo > 0.0)
        )  # fmt: skip
    cols = (ts.astype(np.int64).tolist(), o.tolist(), h.tolist(), lo.tolist(), c.tolist(), v.tolist())
    make = _trusted_candle if bool(ok.all()) else Candle
    # Half a million new objects that all survive: each automatic collection
    # would re-scan every candle built so far (the classic bulk-load case).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return list(map(make, *cols))
    finally:
        if was_enabled:
            gc.enable()


def _funding_updates(ts: np.ndarray, fund: np.ndarray, path: Path) -> list[FundingRate]:
    """Funding as updates: one :class:`FundingRate` wherever the column's value changes."""
    out: list[FundingRate] = []
    rows = np.flatnonzero(np.isfinite(fund))
    if rows.size == 0:
        return out
    vals = fund[rows]
    changed = np.append(True, vals[1:] != vals[:-1])
    for i, rate in zip(rows[changed].tolist(), vals[changed].tolist(), strict=True):
        try:
            out.append(FundingRate(ts=int(ts[i]), rate=float(rate)))
        except DomainError as exc:
            raise CandleFileError(f"{path.name}: funding column at {iso(int(ts[i]))}: {exc}") from None
    return out


def _duration(ms: int) -> str:
    minutes = ms // 60_000
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins or not (days or hours) else ""]
    return "".join(parts)


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------
def candles_table(candles: Iterable[Candle], funding: Sequence[float | None] | None = None) -> pa.Table:
    """Candles as an Arrow table with the canonical columns (ts in UTC ms)."""
    rows = list(candles)
    cols: dict[str, Any] = {
        "ts": pa.array([x.ts for x in rows], pa.int64()),
        "open": pa.array([x.open for x in rows], pa.float64()),
        "high": pa.array([x.high for x in rows], pa.float64()),
        "low": pa.array([x.low for x in rows], pa.float64()),
        "close": pa.array([x.close for x in rows], pa.float64()),
        "volume": pa.array([x.volume for x in rows], pa.float64()),
    }
    if funding is not None:
        cols["funding"] = pa.array(list(funding), pa.float64())
    return pa.table(cols)


def write_table(path: str | Path, table: pa.Table) -> Path:
    """Write atomically (temp file + rename) as Parquet or CSV, chosen by suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise CandleFileError(f"{path.name}: output must end in .parquet or .csv")
    try:
        if path.suffix.lower() == ".csv":
            pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(quoting_style="needed"))
        else:
            pq.write_table(table, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temp file
        raise
    return path


def write_candles(path: str | Path, candles: Iterable[Candle], funding: Sequence[float | None] | None = None) -> Path:
    """Write candles to ``path`` (.csv or .parquet) in the canonical layout."""
    return write_table(path, candles_table(candles, funding))
