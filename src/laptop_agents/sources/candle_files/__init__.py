"""Candle files (CSV, Parquet, JSON) in, clean ``list[Candle]`` out, with a report.

Real candle files are dirty: mixed UTC offsets, duplicated rows, gaps, bars
where ``high < close``, zero volume, a still-forming last bar. A backtest that
silently eats them gives numbers nobody can trust; one that crashes on them is
useless. So the loader *names* every problem (count and first examples) and
applies one documented policy, or refuses with ``strict=True``.

Layouts understood (steps 1 and 2: :mod:`.read`, :mod:`.columns`, :mod:`.times`)
--------------------------------------------------------------------------------
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

Policy (``strict=False``), applied in this order (step 3: :mod:`.clean`)
------------------------------------------------------------------------
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

Writing (:mod:`.write`): the canonical layout as CSV or Parquet, atomically.
"""

from __future__ import annotations

from pathlib import Path

from laptop_agents.sources.candle_files.clean import apply_policy
from laptop_agents.sources.candle_files.columns import named_columns
from laptop_agents.sources.candle_files.model import CandleFile, CandleFileError, DataReport, Problem, show
from laptop_agents.sources.candle_files.read import read_table
from laptop_agents.sources.candle_files.times import TIME_UNITS
from laptop_agents.sources.candle_files.write import candles_table, write_candles, write_table

__all__ = [
    "TIME_UNITS", "CandleFile", "CandleFileError", "DataReport", "Problem", "candles_table", "load_candles",
    "write_candles", "write_table",
]


def load_candles(
    path: str | Path,
    *,
    strict: bool = False,
    interval: str | None = None,
    time_column: str | None = None,
    time_unit: str | None = None,
) -> CandleFile:
    """Load, validate and clean a candle file (see the module docstring for the policy).

    Three steps: read the file into a table, name its columns and read the
    times, then clean by the policy. ``interval`` forces the bar length; by
    default it is inferred from the most common spacing. ``time_column``
    names the time column (or ``"DATE,TIME"``) when the aliases do not find
    it; ``time_unit`` (s, ms, us, ns) overrides the unit guessed from the
    magnitude. Raises :class:`CandleFileError` with one line on a file that
    cannot be used, or on any defect when ``strict``.
    """
    path = Path(path)
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise CandleFileError(f"{path.name}: bad --time-unit {show(time_unit)}: allowed {', '.join(TIME_UNITS)}")
    raw = read_table(path)
    rows = raw.table.num_rows
    if rows == 0:
        raise CandleFileError(f"{path.name}: no rows")
    named = named_columns(raw.table, path, time_column=time_column, time_unit=time_unit)
    report = DataReport(path=str(path), layout=raw.layout + named.layout_note, rows_read=rows,
                        notes=[*raw.notes, *named.notes])
    return apply_policy(named.bars, report, path, strict=strict, interval=interval, has_volume=named.has_volume,
                        first_row=raw.first_row, out_of_range=named.out_of_range)
