"""Step 2b of loading a candle file: every time becomes float UTC epoch ms.

From epoch numbers (the unit told apart by magnitude, row by row, unless a
column-name suffix or ``--time-unit`` says), ISO or near-ISO text
(``2021.09.27 14:15``, ``2019-10-17 09-AM``), native timestamps, or a date
column plus a time-of-day column; NaN where a row's time is unreadable.

Times outside 2000-01-01 .. 2100-01-01 cannot be real candles (a unit mix-up
or a corrupt file): a few such rows become NaN (dropped and reported by the
cleaning); when they are most of the file it is refused with what the values
look like.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laptop_agents.domain.isotime import iso_to_ms, ms_to_iso
from laptop_agents.sources.candle_files.model import CandleFileError, Columns, show

TIME_UNITS: tuple[str, ...] = ("s", "ms", "us", "ns")
MIN_TS = 946_684_800_000  # 2000-01-01T00:00Z
MAX_TS = 4_102_444_800_000  # 2100-01-01T00:00Z
SANE_RANGE = "2000-01-01..2100-01-01"
_YEAR_10000_MS = 253_402_300_800_000

_MS_PER = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}

DATE_RE = re.compile(r"^(\d{4})[-./](\d{1,2})[-./](\d{1,2})$|^(\d{4})(\d{2})(\d{2})$")
TOD_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:\s*([AaPp])\.?[Mm]\.?)?$")
_LEADING_DATE = re.compile(r"^(\d{4})[./](\d{1,2})[./](\d{1,2})(?=$|[ T])")
# CryptoDataDownload's hourly files: "2019-10-17 09-AM", "2019-10-17 12-PM" (also "09 AM", "09:00 PM").
_AMPM_RE = re.compile(
    r"^(\d{4})[-./](\d{1,2})[-./](\d{1,2})[ T](\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*-?\s*([AaPp])\.?[Mm]\.?$"
)



def is_number(text: str) -> bool:
    try:
        float(text.strip().strip('"'))
    except ValueError:
        return False
    return True


def when(ms: float) -> str:
    """A time for messages, also for absurd values that no calendar can show."""
    if not math.isfinite(ms):
        return "?"
    if ms >= _YEAR_10000_MS:
        return f"epoch ms {ms:.0f} (beyond year 9999)"
    return ms_to_iso(math.floor(ms), "seconds")


def _magnitude_unit(a: np.ndarray) -> np.ndarray:
    """Index into TIME_UNITS per value, from its magnitude (real epochs in s, ms, us and ns
    are 1000x apart and never overlap)."""
    return np.searchsorted(np.array([1e11, 1e14, 1e17]), a, side="right")


def unit_guess(values: np.ndarray) -> str | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return TIME_UNITS[int(_magnitude_unit(np.array([float(np.median(np.abs(finite)))]))[0])]


def _epoch_ints(arr: pa.Array, unit: str | None) -> tuple[np.ndarray, str, np.ndarray]:
    """Integer epochs to float ms, in exact integer arithmetic (ns/us do not fit a float64).
    Without a given unit, each value's own magnitude decides (one pass when all agree)."""
    ints = pc.fill_null(pc.cast(arr, pa.int64()), 0).to_numpy(zero_copy_only=False)
    valid = pc.is_valid(arr).to_numpy(zero_copy_only=False) if arr.null_count else None
    vals = ints if valid is None else ints[valid]
    if unit is None and vals.size and int(vals.min()) >= 0:
        lo, hi = _magnitude_unit(np.array([vals.min(), vals.max()], dtype=np.float64))
        if lo == hi:
            unit = TIME_UNITS[int(lo)]
    if unit is not None:
        out = _int_ms(ints, unit)
        note = _unit_note(np.full(1 if vals.size else 0, TIME_UNITS.index(unit)), unit)
    else:
        idx = _magnitude_unit(np.abs(ints).astype(np.float64))
        out = np.choose(idx, [_int_ms(ints, u) for u in TIME_UNITS])
        note = _unit_note(idx if valid is None else idx[valid], None)
    result = out.astype(np.float64)
    if valid is not None:
        result[~valid] = np.nan
    return result, note, ints


def _int_ms(ints: np.ndarray, unit: str) -> np.ndarray:
    if unit == "s":
        return ints * 1000
    if unit == "ms":
        return ints
    return ints // (1000 if unit == "us" else 1_000_000)


def _epoch_floats(values: np.ndarray, unit: str | None) -> tuple[np.ndarray, str]:
    if unit is not None:
        idx = np.full(values.shape, TIME_UNITS.index(unit))
        return np.round(values * _MS_PER[unit]), _unit_note(idx[np.isfinite(values)], unit)
    finite = np.isfinite(values)
    idx = _magnitude_unit(np.abs(np.where(finite, values, 0.0)))
    factors = np.array([_MS_PER[u] for u in TIME_UNITS])
    return np.round(values * factors[idx]), _unit_note(idx[finite], None)


def _unit_note(idx: np.ndarray, given: str | None) -> str:
    if idx.size == 0:
        return f"epoch {given or 'ms'}"
    counts = np.bincount(idx, minlength=len(TIME_UNITS))
    used = [TIME_UNITS[i] for i in np.flatnonzero(counts)]
    if len(used) == 1:
        return f"epoch {used[0]}"
    main = TIME_UNITS[int(np.argmax(counts))]
    others = ", ".join(f"{int(counts[TIME_UNITS.index(u)])} rows in {u}" for u in used if u != main)
    return f"epoch {main} (mixed units told apart row by row: {others})"


def _epoch_one(value: float) -> float:
    if not math.isfinite(value):
        return math.nan
    return float(round(value * _MS_PER[TIME_UNITS[int(_magnitude_unit(np.array([abs(value)]))[0])]]))


def parse_time_text(raw: str) -> float:
    """One date-time text to epoch ms (NaN when unreadable): ISO 8601 (naive = UTC),
    dotted or slashed dates, ``2019-10-17 09-AM``, or an epoch number."""
    text = raw.strip().strip('"')
    if not text:
        return math.nan
    m = _AMPM_RE.match(text)
    if m:
        y, mo, d, hh, mi, ss, ap = m.groups()
        hour = int(hh)
        if not 1 <= hour <= 12:
            return math.nan
        hour = hour % 12 + (12 if ap.lower() == "p" else 0)
        try:
            dt = datetime(int(y), int(mo), int(d), hour, int(mi or 0), int(ss or 0), tzinfo=UTC)
        except ValueError:
            return math.nan
        return float(round(dt.timestamp() * 1000.0))
    m = _LEADING_DATE.match(text)
    if m:
        text = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}" + text[m.end():]
    try:
        return float(iso_to_ms(text))
    except ValueError:
        if is_number(text):
            return _epoch_one(float(text))
        return math.nan


def _parse_date_text(raw: str) -> float:
    m = DATE_RE.match(raw.strip().strip('"'))
    if not m:
        return math.nan
    y, mo, d = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
    try:
        return float(round(datetime(int(y), int(mo), int(d), tzinfo=UTC).timestamp() * 1000.0))
    except ValueError:
        return math.nan


def _parse_tod_text(raw: str) -> float:
    m = TOD_RE.match(raw.strip().strip('"'))
    if not m:
        return math.nan
    hh, mi, ss, frac, ap = m.groups()
    hour = int(hh)
    if ap:
        if not 1 <= hour <= 12:
            return math.nan
        hour = hour % 12 + (12 if ap.lower() == "p" else 0)
    minute, second = int(mi), int(ss or 0)
    if hour > 23 or minute > 59 or second > 60:
        return math.nan
    ms = ((hour * 60 + minute) * 60 + second) * 1000.0
    if frac:
        ms += round(float("0." + frac) * 1000.0)
    return ms


def map_text(arr: pa.Array, parse: Callable[[str], float]) -> np.ndarray:
    """Parse each distinct text once (a year of 1-minute bars has 1,440 distinct times of day)."""
    enc = pc.dictionary_encode(arr)
    uniq = enc.dictionary.to_pylist()
    table = np.array([parse(str(u)) for u in uniq] + [math.nan], dtype=np.float64)
    idx = pc.fill_null(enc.indices, len(uniq)).to_numpy(zero_copy_only=False)
    return table[idx]


def is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _unsupported(path: Path, name: str, t: pa.DataType, what: str) -> CandleFileError:
    return CandleFileError(f"{path.name}: {what} column {show(name)} of type {t} is not supported "
                           "(need epoch numbers, ISO date-times, or a date column plus a time-of-day column)")


def _one_column_ms(arr: pa.Array, name: str, path: Path, unit: str | None, unit_source: str,
                   ) -> tuple[np.ndarray, str, np.ndarray | None]:
    """A full time column -> (float ms, how it was read, raw numbers for unit hints or None)."""
    t = arr.type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
    if unit_source == "--time-unit" and not numeric and not is_text(t):
        raise CandleFileError(f"{path.name}: --time-unit applies to epoch numbers, but column {show(name)} holds "
                              f"{'date-times' if pa.types.is_timestamp(t) else t}; drop --time-unit")
    suffix = f" ({unit_source})" if unit_source and unit else ""
    if pa.types.is_timestamp(t):
        as_ms = pc.cast(pc.cast(arr, pa.timestamp("ms", tz=t.tz)), pa.int64())
        out = as_ms.to_numpy(zero_copy_only=False).astype("float64")
        return out, f"timestamps{' (' + t.tz + ')' if t.tz else ' (naive, taken as UTC)'}", None
    if pa.types.is_date(t):
        days = pc.cast(pc.cast(arr, pa.date32()), pa.int32()).to_numpy(zero_copy_only=False).astype("float64")
        return days * 86_400_000.0, "dates", None
    if pa.types.is_integer(t):
        out, note, raw = _epoch_ints(arr, unit)
        return out, note + suffix, raw
    if pa.types.is_floating(t):
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        out, note = _epoch_floats(values, unit)
        return out, note + suffix, values
    if is_text(t):
        sample = [v for v in arr.slice(0, 50).to_pylist() if v not in (None, "")][:20]
        if sample and all(is_number(str(v)) for v in sample):  # quoted epoch numbers
            values = map_text(arr, lambda s: float(s) if is_number(s) else math.nan)
            out, note = _epoch_floats(values, unit)
            return out, note + suffix, values
        if unit_source == "--time-unit":
            raise CandleFileError(f"{path.name}: --time-unit applies to epoch numbers, but column {show(name)} "
                                  "holds date-time text; drop --time-unit")
        if sample and all(TOD_RE.match(str(v).strip()) for v in sample):
            raise CandleFileError(f"{path.name}: column {show(name)} holds a time of day but there is no date "
                                  "column beside it; pass --time-column DATE,TIME")
        return map_text(arr, parse_time_text), "date-time text", None
    if pa.types.is_time(t):
        raise CandleFileError(f"{path.name}: column {show(name)} holds a time of day ({t}) but there is no date "
                              "column beside it; pass --time-column DATE,TIME")
    raise _unsupported(path, name, t, "time")


def _date_ms(arr: pa.Array, name: str, path: Path) -> np.ndarray:
    t = arr.type
    if pa.types.is_date(t):
        return pc.cast(pc.cast(arr, pa.date32()), pa.int32()).to_numpy(zero_copy_only=False).astype("float64") * 86_400_000.0
    if pa.types.is_timestamp(t):
        return pc.cast(pc.cast(arr, pa.timestamp("ms", tz=t.tz)), pa.int64()).to_numpy(
            zero_copy_only=False).astype("float64")
    if pa.types.is_integer(t):  # 20210927
        return map_text(pc.cast(arr, pa.string()), _parse_date_text)
    if is_text(t):
        return map_text(arr, _parse_date_text)
    raise CandleFileError(f"{path.name}: date column {show(name)} of type {t} is not supported "
                          "(need dates like 2021-09-27, 2021.09.27, 2021/09/27 or 20210927)")


def _tod_ms(arr: pa.Array, name: str, path: Path) -> np.ndarray:
    t = arr.type
    if pa.types.is_time(t):
        unit = t.unit
        ints = pc.cast(arr, pa.int64() if pa.types.is_time64(t) else pa.int32())
        values = pc.cast(ints, pa.float64()).to_numpy(zero_copy_only=False)
        return np.floor(values * {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}[unit])
    if is_text(t):
        return map_text(arr, _parse_tod_text)
    raise CandleFileError(f"{path.name}: time-of-day column {show(name)} of type {t} is not supported "
                          "(need times like 14:15 or 14:15:00)")


@dataclass(slots=True)
class Times:
    """Epoch ms per row (NaN = unreadable or outside the sane range), how they were read,
    and how many rows were outside the sane range."""

    ms: np.ndarray
    note: str
    out_of_range: int = 0


def time_ms(table: pa.Table, cols: Columns, path: Path) -> Times:
    """The time of every row (step 2b), checked against the sane range."""
    names = table.column_names
    raw: np.ndarray | None = None
    if len(cols.time) == 2:
        d, t = cols.time
        if cols.unit_source == "--time-unit":
            raise CandleFileError(f"{path.name}: --time-unit applies to epoch numbers, but the time comes from "
                                  f"a date and a time-of-day column ({show(names[d])} + {show(names[t])}); "
                                  "drop --time-unit")
        ms = _date_ms(table.column(d).combine_chunks(), names[d], path) + _tod_ms(
            table.column(t).combine_chunks(), names[t], path)
        how = f"time from columns {show(names[d])} + {show(names[t])} (date + time of day)"
        label = f"{show(names[d])} + {show(names[t])}"
    else:
        i = cols.time[0]
        ms, read_as, raw = _one_column_ms(table.column(i).combine_chunks(), names[i], path, cols.time_unit,
                                          cols.unit_source)
        flag = " (--time-column)" if cols.time_flag else ""
        how = f"time column {show(names[i])}{flag} read as {read_as}"
        label = show(names[i])
    finite = np.isfinite(ms)
    with np.errstate(invalid="ignore"):
        outside = finite & ((ms < MIN_TS) | (ms >= MAX_TS))
    n_out = int(outside.sum())
    if n_out and n_out * 2 > int(finite.sum()):
        seen = ms[outside]
        read = how.split(" read as ", 1)[-1] if " read as " in how else "dates and times"
        msg = (f"{path.name}: times in column {label} read as {read} fall in {when(float(seen.min()))} .. "
               f"{when(float(seen.max()))}, outside {SANE_RANGE}")
        guess = unit_guess(raw) if raw is not None else None
        used = cols.time_unit or (unit_guess(raw) if raw is not None else None)
        if guess is not None and cols.time_unit is not None and guess != cols.time_unit:
            msg += f"; the values look like epoch {guess}: check the unit (--time-unit {guess})"
        elif used is not None:
            msg += "; not real candle times (a unit mix-up or a corrupt file?)"
        raise CandleFileError(msg)
    if n_out:
        ms = ms.copy()
        ms[outside] = np.nan
    return Times(ms, how, n_out)


def close_time_ms(table: pa.Table, cols: Columns, path: Path) -> np.ndarray | None:
    """The close_time column (Binance) as ms, or None."""
    if cols.close_time is None:
        return None
    arr = table.column(cols.close_time).combine_chunks()
    try:
        return _one_column_ms(arr, table.column_names[cols.close_time], path, cols.close_time_unit, "")[0]
    except CandleFileError:
        return None  # an unreadable close_time only loses the partial-bar hint
