"""Step 2 of loading a candle file: which column is which, and the file as named columns.

Columns are found by alias (any case, spacing or punctuation: "Open Time" is
``open_time``), a time column may name its unit (``open_time_s``,
``timestamp_ms``), ``--time-column`` names one the aliases miss (or a
``DATE,TIME`` pair); a used name that appears twice is refused. Then every
time is read (:mod:`~laptop_agents.sources.candle_files.times`) and every
price and volume becomes float64, giving the :class:`Bars` the cleaning works on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laptop_agents.sources.candle_files.model import Bars, CandleFileError, Columns, show
from laptop_agents.sources.candle_files.times import TOD_RE, close_time_ms, is_text, map_text, time_ms

# A time column whose name is one of these holds a full date-time (or epoch number).
_TIME_ALIASES = ("opentime", "timestamp", "datetime", "unix", "unixtime", "unixtimestamp", "timems", "starttime",
                 "opents", "ts", "t")
_DATE_ALIASES = ("date",)
_TOD_ALIASES = ("time",)
_OPEN_ALIASES = ("open", "o", "openprice")
_HIGH_ALIASES = ("high", "h", "highprice")
_LOW_ALIASES = ("low", "l", "lowprice")
_CLOSE_ALIASES = ("close", "c", "closeprice", "last")
_VOLUME_ALIASES = ("volume", "vol", "v", "basevolume", "volumebtc", "volbtc", "amount")
_FUNDING_ALIASES = ("funding", "fundingrate", "funding8h", "fundingrate8h")
_CLOSE_TIME_ALIASES = ("closetime",)

# "open_time_s", "timestamp_ms", "time (us)", "ts-ns": a time column that names its unit.
_UNIT_SUFFIX = re.compile(r"^(?P<stem>.*?[a-z0-9])(?:[\s_\-]+|[\s_\-]*[(\[])(?P<unit>s|sec|secs|ms|msec|us|µs|usec|ns|nsec)[)\]]?$")
_UNIT_WORDS = {"s": "s", "sec": "s", "secs": "s", "ms": "ms", "msec": "ms", "us": "us", "µs": "us", "usec": "us",
               "ns": "ns", "nsec": "ns"}

_PLAIN_VOLUME_NAMES = ("volume", "vol", "v")


def _norm(name: str) -> str:
    """Column names compared without case, spaces or punctuation: "Open Time" == "open_time"."""
    return "".join(ch for ch in name.strip().lower() if ch.isalnum())


class ColumnNames:
    """Column lookup by normalised alias; suffixed time names (``open_time_s``) are
    found under their stem, with the unit."""

    def __init__(self, names: Sequence[str], path: Path) -> None:
        self.names = list(names)
        self.path = path
        self.plain: dict[str, list[int]] = {}
        self.suffixed: dict[str, list[tuple[int, str]]] = {}
        for i, raw in enumerate(self.names):
            self.plain.setdefault(_norm(raw), []).append(i)
            m = _UNIT_SUFFIX.match(raw.strip().lower())
            if m:
                self.suffixed.setdefault(_norm(m.group("stem")), []).append((i, _UNIT_WORDS[m.group("unit")]))

    def _one(self, hits: list[int], role: str) -> int:
        if len(hits) > 1:
            shown = [self.names[i] for i in hits]
            if len(set(shown)) == 1:
                raise CandleFileError(
                    f"{self.path.name}: column {show(shown[0])} appears {len(hits)} times; "
                    + ("columns need distinct names" if role == "same"
                       else f"the {role} column must be one column with a distinct name")
                )
            raise CandleFileError(
                f"{self.path.name}: columns {' and '.join(show(s) for s in shown)} both look like the {role} column; "
                "rename or remove one"
            )
        return hits[0]

    def find(self, aliases: Sequence[str], role: str, *, suffixes: bool = False) -> tuple[int, str | None] | None:
        for alias in aliases:
            if alias in self.plain:
                return self._one(self.plain[alias], role), None
            if suffixes and alias in self.suffixed:
                hits = self.suffixed[alias]
                i = self._one([h[0] for h in hits], role)
                return i, hits[0][1]
        return None

    def named(self, name: str) -> int:
        """A column named by the user (``--time-column``): exact name first, then by alias rules."""
        exact = [i for i, n in enumerate(self.names) if n == name]
        if exact:
            return self._one(exact, "time")
        hits = self.plain.get(_norm(name), [])
        if not hits:
            raise CandleFileError(
                f"{self.path.name}: no column {show(name)} (--time-column); columns: {self.listing()}"
            )
        return self._one(hits, "time")

    def refuse_duplicates(self) -> None:
        for name in dict.fromkeys(self.names):
            hits = [i for i, n in enumerate(self.names) if n == name]
            if len(hits) > 1:
                self._one(hits, "same")

    def listing(self) -> str:
        shown = ", ".join(show(n)[1:-1] for n in self.names[:12])
        return shown + (", ..." if len(self.names) > 12 else "")



def _looks_time_of_day(col: pa.ChunkedArray) -> bool:
    t = col.type
    if pa.types.is_time(t):
        return True
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        sample = [v for v in col.slice(0, 50).to_pylist() if v not in (None, "")][:20]
        return bool(sample) and all(TOD_RE.match(str(v).strip()) for v in sample)
    return False



def pick_columns(table: pa.Table, path: Path, *, time_column: str | None = None,
                 time_unit: str | None = None) -> Columns:
    """Which column is which; refuses missing and doubled columns with one line."""
    names = ColumnNames(table.column_names, path)
    missing: list[str] = []

    def need(aliases: Sequence[str], role: str) -> int:
        hit = names.find(aliases, role)
        if hit is None:
            missing.append(role)
            return -1
        return hit[0]

    time: list[int] = []
    unit: str | None = None
    unit_source = ""
    layout_note = ""
    if time_column:
        parts = [p.strip() for p in time_column.split(",") if p.strip()]
        if not 1 <= len(parts) <= 2:
            raise CandleFileError(f"{path.name}: --time-column takes one column name, or a date and a time column "
                                  f"as DATE,TIME; got {show(time_column)}")
        time = [names.named(p) for p in parts]
    else:
        full = names.find(_TIME_ALIASES, "time", suffixes=True)
        date = names.find(_DATE_ALIASES, "date")
        tod = names.find(_TOD_ALIASES, "time", suffixes=True)
        if full is not None:
            time, unit = [full[0]], full[1]
        elif date is not None and tod is not None and _looks_time_of_day(table.column(tod[0])):
            time = [date[0], tod[0]]
        elif tod is not None:
            time, unit = [tod[0]], tod[1]
        elif date is not None:
            time = [date[0]]
    if unit is not None:
        unit_source = "from the column name"
    if time_unit is not None:
        unit, unit_source = time_unit, "--time-unit"
    cols = Columns(
        time=time,
        open=need(_OPEN_ALIASES, "open"),
        high=need(_HIGH_ALIASES, "high"),
        low=need(_LOW_ALIASES, "low"),
        close=need(_CLOSE_ALIASES, "close"),
        volume=None, funding=None, close_time=None,
        time_unit=unit, unit_source=unit_source, time_flag=bool(time_column),
    )
    vol = names.find(_VOLUME_ALIASES, "volume")
    if vol is None and "quotevol" in names.plain:
        cols.volume = names._one(names.plain["quotevol"], "volume")  # Bitunix: quoteVol holds the base (BTC) amount
        layout_note = " (Bitunix kline rows: volume from quoteVol)"
    elif vol is not None:
        cols.volume = vol[0]
    fund = names.find(_FUNDING_ALIASES, "funding")
    cols.funding = fund[0] if fund else None
    close_t = names.find(_CLOSE_TIME_ALIASES, "close_time", suffixes=True)
    if close_t is not None:
        cols.close_time, cols.close_time_unit = close_t
    cols.layout_note = layout_note
    if not time:
        missing.insert(0, "time")
    if missing:
        hint = ""
        if "time" in missing:
            hint = ("; expected a time column named like Datetime, Date (+ Time), timestamp, time, open_time, unix "
                    "or ts (a unit suffix such as _ms is fine), or pass --time-column NAME")
        else:
            hint = "; expected open, high, low, close[, volume] columns"
        raise CandleFileError(f"{path.name}: no {'/'.join(missing)} column; found: {names.listing()}{hint}")
    return cols



@dataclass(slots=True)
class Named:
    """The file as named columns: the bars (times still float, NaN = unreadable),
    how many times were outside the sane range, whether there was a volume
    column, and notes for the report."""

    bars: Bars
    out_of_range: int
    has_volume: bool
    layout_note: str = ""
    notes: list[str] = field(default_factory=list)


def named_columns(table: pa.Table, path: Path, *, time_column: str | None = None,
                  time_unit: str | None = None) -> Named:
    """Step 2: pick the columns, read the times and the numbers (one-line errors)."""
    rows = table.num_rows
    cols = pick_columns(table, path, time_column=time_column, time_unit=time_unit)
    times = time_ms(table, cols, path)
    notes = [times.note]
    o = floats(table, cols.open, rows, path)
    h = floats(table, cols.high, rows, path)
    lo = floats(table, cols.low, rows, path)
    c = floats(table, cols.close, rows, path)
    v = floats(table, cols.volume, rows, path)
    if cols.volume is None:
        notes.append("no volume column: volume set to 0")
    elif table.column_names[cols.volume].strip().lower() not in _PLAIN_VOLUME_NAMES:
        notes.append(f"volume from column {show(table.column_names[cols.volume])}")
    fund = floats(table, cols.funding, rows, path) if cols.funding is not None else None
    close_t = close_time_ms(table, cols, path)
    bars = Bars(ts=times.ms, open=o, high=h, low=lo, close=c, volume=v, funding=fund, close_time=close_t)
    return Named(bars, times.out_of_range, cols.volume is not None, cols.layout_note, notes)


def floats(table: pa.Table, index: int | None, rows: int, path: Path) -> np.ndarray:
    """A price/volume column as float64 (NaN where unreadable)."""
    if index is None:
        return np.zeros(rows)
    col = table.column(index).combine_chunks()
    if is_text(col.type):
        col = _text_floats(col)
    try:
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype("float64", copy=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise CandleFileError(f"{path.name}: column {show(table.column_names[index])} is not numeric: "
                              f"{str(exc).splitlines()[0][:120]}") from None


def _text_floats(col: pa.Array) -> pa.Array:
    def num(v: str) -> float:
        try:
            return float(v) if v.strip() else math.nan
        except ValueError:
            return math.nan

    return pa.array(map_text(col, num), pa.float64())
