"""Step 3 of loading a candle file: the repair policy, one function per step.

Each step takes the :class:`Bars` left by the one before, adds what it found
to the :class:`DataReport` (count, action, first examples) and returns the
bars it keeps; :func:`apply_policy` runs them in the documented order (see
:mod:`laptop_agents.sources.candle_files`). A step that finds nothing wrong
returns its input as it is: a clean year of minutes is never copied.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from laptop_agents.domain.fast import fast_init
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.domain.models import Candle, DomainError, FundingRate
from laptop_agents.domain.timeframes import SUPPORTED_INTERVALS, interval_ms, parse_interval
from laptop_agents.sources.candle_files.model import (
    MAX_EXAMPLES,
    STRICT_REFUSED,
    Bars,
    CandleFile,
    CandleFileError,
    DataReport,
    Problem,
)
from laptop_agents.sources.candle_files.times import SANE_RANGE


def drop_bad_times(bars: Bars, report: DataReport, *, first_row: int = 1, out_of_range: int = 0) -> Bars:
    """1. Rows whose time is unreadable (NaN; also the ``out_of_range`` ones the
    times step set to NaN) are dropped; examples name rows (``first_row`` is
    the file's row number of table row 0). The times become int64."""
    bad = ~np.isfinite(bars.ts)
    if bad.any():
        idx = np.flatnonzero(bad)
        unreadable = int(idx.size) - out_of_range
        detail = ""
        if out_of_range:
            detail = f"{out_of_range} outside {SANE_RANGE}" + (f", {unreadable} unreadable" if unreadable else "")
        report.problems.append(Problem("bad_time", int(idx.size), "dropped",
                                       [f"row {int(i) + first_row}" for i in idx[:MAX_EXAMPLES]], detail))
        bars = bars.take(~bad)
    return bars.with_(ts=bars.ts.astype(np.int64))


def order_by_time(bars: Bars, report: DataReport) -> Bars:
    """2. A file entirely newest first (exchange REST order) is reversed with a
    note; any other disorder is a problem, sorted (stable, so that the last
    of equal times stays last)."""
    if len(bars) < 2:
        return bars
    back = np.diff(bars.ts) < 0
    if back.all():
        report.notes.append("rows are newest first (exchange REST order): reversed")
        return bars.take(slice(None, None, -1))
    if back.any():
        idx = np.flatnonzero(back) + 1
        report.problems.append(Problem("non_monotonic", int(idx.size), "sorted by time", bars.times(idx)))
        return bars.take(np.argsort(bars.ts, kind="stable"))
    return bars


def drop_invalid_values(bars: Bars, report: DataReport) -> Bars:
    """3. Rows with a non-finite or non-positive price, or a non-finite or
    negative volume, are dropped."""
    o, h, lo, c, v = bars.open, bars.high, bars.low, bars.close, bars.volume
    finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
    with np.errstate(invalid="ignore"):
        invalid = ~finite | (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0) | (v < 0)
    if not invalid.any():
        return bars
    idx = np.flatnonzero(invalid)
    report.problems.append(Problem("invalid_values", int(idx.size), "dropped", bars.times(idx),
                                   "non-finite or non-positive price, or negative volume"))
    return bars.take(~invalid)


def drop_duplicates_keep_last(bars: Bars, report: DataReport) -> Bars:
    """4. Of rows with the same time (adjacent after the stable sort), the last
    in file order is kept."""
    ts = bars.ts
    if ts.size < 2:
        return bars
    later_same = np.append(ts[1:] == ts[:-1], False)  # row is followed by one with the same time
    if not later_same.any():
        return bars
    repeated = np.unique(ts[later_same])
    report.problems.append(Problem("duplicates", int(later_same.sum()), "kept the last row of each time",
                                   [ms_to_iso(int(x)) for x in repeated[:MAX_EXAMPLES]],
                                   f"{repeated.size} timestamps repeated"))
    return bars.take(~later_same)


def infer_interval(ts: np.ndarray, path: Path) -> str:
    """The interval whose length is the most common spacing of the bars."""
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


def widen_high_low(bars: Bars, report: DataReport) -> Bars:
    """5. A bar whose open or close lies outside low..high is repaired by
    widening high/low to include them: prices are kept, no bar is invented."""
    o, h, lo, c = bars.open, bars.high, bars.low, bars.close
    hi_new = np.maximum(np.maximum(h, o), np.maximum(c, lo))
    lo_new = np.minimum(np.minimum(lo, o), np.minimum(c, h))
    bad = (hi_new != h) | (lo_new != lo)
    if not bad.any():
        return bars
    report.problems.append(Problem("ohlc_inconsistent", int(bad.sum()),
                                   "repaired: high/low widened to include open and close",
                                   bars.times(np.flatnonzero(bad))))
    return bars.with_(high=hi_new, low=lo_new)


def grid_phase(ts: np.ndarray, step: int) -> int:
    """Where bars open within an interval: the most common ``ts % step`` (0 = on the grid)."""
    values, counts = np.unique(ts % step, return_counts=True)
    return int(values[np.argmax(counts)])


def drop_partial_last(bars: Bars, step: int, phase: int, report: DataReport) -> Bars:
    """6. The trailing bar is dropped when it is still forming: off the grid,
    closer than one interval to the bar before it, or with a ``close_time``
    before its interval ends."""
    ts = bars.ts
    last = ts.size - 1
    reason = ""
    if ts.size > 1 and ts[last] % step != phase:
        reason = "off the interval grid"
    elif ts.size > 1 and ts[last] - ts[last - 1] < step:
        reason = "less than one interval after the previous bar"
    elif bars.close_time is not None and np.isfinite(bars.close_time[last]) and \
            bars.close_time[last] < ts[last] + step - 1:
        reason = "close_time before the end of its interval"
    if not reason:
        return bars
    report.problems.append(Problem("partial_last", 1, "dropped", [ms_to_iso(int(ts[last]))], reason))
    return bars.take(slice(0, last))


def drop_off_grid(bars: Bars, step: int, phase: int, name: str, report: DataReport) -> Bars:
    """7. Bars off the interval grid (``ts % step != phase``) are dropped."""
    off = bars.ts % step != phase
    if not off.any():
        return bars
    report.problems.append(Problem("misaligned", int(off.sum()), f"dropped (not on the {name} grid)",
                                   bars.times(np.flatnonzero(off))))
    return bars.take(~off)


def report_gaps(bars: Bars, step: int, report: DataReport) -> None:
    """8. Gaps are left as gaps (no bar is invented) and reported: how many,
    how many bars are missing, the largest."""
    ts = bars.ts
    d = np.diff(ts)
    gap_idx = np.flatnonzero(d > step)
    if not gap_idx.size:
        return
    missing = int(((d[gap_idx] // step) - 1).sum())
    largest = int(d[gap_idx].max())
    report.problems.append(Problem(
        "gaps", int(gap_idx.size), "left as gaps (no bars invented)",
        [f"{ms_to_iso(int(ts[i]))} -> {ms_to_iso(int(ts[i + 1]))}" for i in gap_idx[:MAX_EXAMPLES]],
        f"{missing} missing bars, largest {duration(largest)}",
    ))


def report_zero_volume(bars: Bars, report: DataReport) -> None:
    """9. Zero-volume bars are kept and reported (some exports have many)."""
    zero = np.flatnonzero(bars.volume == 0)
    if zero.size:
        report.problems.append(Problem("zero_volume", int(zero.size), "kept", bars.times(zero)))


def refuse_if_strict(report: DataReport, path: Path) -> None:
    """``strict``: any of the problems 1-8 refuses the file, in one line."""
    refused = [p for p in report.problems if p.kind in STRICT_REFUSED]
    if refused:
        what = "; ".join(p.line(action=False) for p in refused)
        raise CandleFileError(
            f"{path.name}: refused with --strict: {what}; without --strict the loader repairs these (see its policy)"
        )


def apply_policy(bars: Bars, report: DataReport, path: Path, *, strict: bool, interval: str | None,
                 has_volume: bool, first_row: int = 1, out_of_range: int = 0) -> CandleFile:
    """The whole policy in its order, then the candles and funding updates."""
    bars = drop_bad_times(bars, report, first_row=first_row, out_of_range=out_of_range)
    bars = order_by_time(bars, report)
    bars = drop_invalid_values(bars, report)
    bars = drop_duplicates_keep_last(bars, report)
    if not len(bars):
        raise CandleFileError(f"{path.name}: no usable rows ({'; '.join(p.line() for p in report.problems)})")
    name = parse_interval(interval) if interval else infer_interval(bars.ts, path)
    step = interval_ms(name)
    report.interval = name
    bars = widen_high_low(bars, report)
    phase = grid_phase(bars.ts, step)
    if phase:
        report.notes.append(f"bars open {phase} ms after the {name} grid")
    bars = drop_partial_last(bars, step, phase, report)
    bars = drop_off_grid(bars, step, phase, name, report)
    if not len(bars):
        raise CandleFileError(f"{path.name}: no usable rows left after cleaning")
    report_gaps(bars, step, report)
    if has_volume:
        report_zero_volume(bars, report)
    if strict:
        refuse_if_strict(report, path)
    candles = build_candles(bars)
    funding = funding_updates(bars, path) if bars.funding is not None else []
    report.rows_kept = len(candles)
    report.first_ts, report.last_ts = candles[0].ts, candles[-1].ts
    return CandleFile(path=path, candles=candles, interval=name, interval_ms=step, funding=funding, report=report)


_trusted_candle = fast_init(Candle, validate=False)


def build_candles(bars: Bars) -> list[Candle]:
    """The cleaned bars as candles. ``Candle.__post_init__`` checks each bar
    one at a time (about half of a year's load time); here its exact
    conditions are checked for all rows at once with numpy, and only then are
    the candles built without re-checking. A row that fails (none should,
    after the cleaning above) goes through the checking constructor, which
    raises its usual error."""
    o, h, lo, c, v = bars.open, bars.high, bars.low, bars.close, bars.volume
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (
            np.isfinite(o + h + lo + c + v)
            & (lo <= o) & (o <= h) & (lo <= c) & (c <= h) & (v >= 0.0) & (lo > 0.0)
        )  # fmt: skip
    cols = (bars.ts.astype(np.int64).tolist(), o.tolist(), h.tolist(), lo.tolist(), c.tolist(), v.tolist())
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


def funding_updates(bars: Bars, path: Path) -> list[FundingRate]:
    """Funding as updates: one :class:`FundingRate` wherever the column's value changes."""
    out: list[FundingRate] = []
    if bars.funding is None:
        return out
    fund, ts = bars.funding, bars.ts
    rows = np.flatnonzero(np.isfinite(fund))
    if rows.size == 0:
        return out
    vals = fund[rows]
    changed = np.append(True, vals[1:] != vals[:-1])
    for i, rate in zip(rows[changed].tolist(), vals[changed].tolist(), strict=True):
        try:
            out.append(FundingRate(ts=int(ts[i]), rate=float(rate)))
        except DomainError as exc:
            raise CandleFileError(f"{path.name}: funding column at {ms_to_iso(int(ts[i]))}: {exc}") from None
    return out


def duration(ms: int) -> str:
    """``2d7h``, ``45m``: a gap's length for the report."""
    minutes = ms // 60_000
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins or not (days or hours) else ""]
    return "".join(parts)
