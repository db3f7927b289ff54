"""Reading candle files: the bytes, the layout, the columns and the times.

The first two steps of :func:`laptop_agents.sources.candle_files.load_candles`
(the third, cleaning, stays there with the repair policy):

1. **read** (:func:`read_table`): CSV (also ``.gz``, ``.zip`` with one CSV,
   ``.tsv``), Parquet or JSON into an Arrow table, after checking that the
   bytes are what the name says (gzip magic, not binary, UTF-8). CSV banner
   lines (CryptoDataDownload's URL line) are skipped; a header is optional:
   a first row of numbers is read in Binance kline order, a first row of
   ``date, time, numbers`` in MetaTrader order.
2. **columns and times** (:func:`pick_columns`, :func:`time_ms`): which column
   is which (aliases, a unit suffix such as ``open_time_s``, or
   ``--time-column``), refusing a used name that appears twice; then every
   time becomes float UTC epoch ms (NaN where unreadable), from epoch numbers
   (unit by magnitude, row by row, unless a suffix or ``--time-unit`` says),
   ISO or near-ISO text (``2021.09.27 14:15``, ``2019-10-17 09-AM``), native
   timestamps, or a date column plus a time-of-day column.

Times outside 2000-01-01 .. 2100-01-01 cannot be real candles (a unit mix-up
or a corrupt file): a few such rows are dropped and reported; when they are
most of the file it is refused with what the values look like.

Every failure is a :class:`CandleFileError` with one line naming the file.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from laptop_agents.domain.errors import InputDataError

TIME_UNITS: tuple[str, ...] = ("s", "ms", "us", "ns")
MIN_TS = 946_684_800_000  # 2000-01-01T00:00Z
MAX_TS = 4_102_444_800_000  # 2100-01-01T00:00Z
SANE_RANGE = "2000-01-01..2100-01-01"

_SNIFF_BYTES = 1 << 16
_MAX_BANNER_LINES = 5

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

BINANCE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "ignore",
)
_METATRADER_COLUMNS = ("date", "time", "open", "high", "low", "close", "volume")

# "open_time_s", "timestamp_ms", "time (us)", "ts-ns": a time column that names its unit.
_UNIT_SUFFIX = re.compile(r"^(?P<stem>.*?[a-z0-9])(?:[\s_\-]+|[\s_\-]*[(\[])(?P<unit>s|sec|secs|ms|msec|us|µs|usec|ns|nsec)[)\]]?$")
_UNIT_WORDS = {"s": "s", "sec": "s", "secs": "s", "ms": "ms", "msec": "ms", "us": "us", "µs": "us", "usec": "us",
               "ns": "ns", "nsec": "ns"}
_MS_PER = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}

_DATE_RE = re.compile(r"^(\d{4})[-./](\d{1,2})[-./](\d{1,2})$|^(\d{4})(\d{2})(\d{2})$")
_TOD_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:\s*([AaPp])\.?[Mm]\.?)?$")
_LEADING_DATE = re.compile(r"^(\d{4})[./](\d{1,2})[./](\d{1,2})(?=$|[ T])")
# CryptoDataDownload's hourly files: "2019-10-17 09-AM", "2019-10-17 12-PM" (also "09 AM", "09:00 PM").
_AMPM_RE = re.compile(
    r"^(\d{4})[-./](\d{1,2})[-./](\d{1,2})[ T](\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*-?\s*([AaPp])\.?[Mm]\.?$"
)


class CandleFileError(InputDataError):
    """A candle file that cannot be used (or is refused with ``strict``); one line."""


@dataclass(slots=True)
class RawTable:
    """A file read into a table, how it was laid out, and notes for the report."""

    table: pa.Table
    layout: str
    notes: list[str] = field(default_factory=list)
    first_row: int = 1  # number shown for table row 0 in examples ("row N")


@dataclass(slots=True)
class Columns:
    """Which table column (by index) plays which part; ``time`` is one column,
    or two (a date and a time of day)."""

    time: list[int]
    open: int
    high: int
    low: int
    close: int
    volume: int | None
    funding: int | None
    close_time: int | None
    time_unit: str | None = None  # from a suffix or --time-unit; None = by magnitude
    unit_source: str = ""
    close_time_unit: str | None = None
    time_flag: bool = False  # chosen by --time-column
    layout_note: str = ""


def show(name: str, limit: int = 40) -> str:
    """A column name or text sample for a one-line message: printable, quoted, short."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(name))
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _norm(name: str) -> str:
    """Column names compared without case, spaces or punctuation: "Open Time" == "open_time"."""
    return "".join(ch for ch in name.strip().lower() if ch.isalnum())


def _is_number(text: str) -> bool:
    try:
        float(text.strip().strip('"'))
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# 1. reading
# ---------------------------------------------------------------------------
def _cannot_read(path: Path, exc: OSError) -> CandleFileError:
    return CandleFileError(f"{path.name}: cannot read it ({exc.strerror or type(exc).__name__})")


def _gzip_head(path: Path) -> bytes:
    """The first decompressed bytes of a ``.gz`` file, after checking it is gzip at all."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    if magic != b"\x1f\x8b":
        raise CandleFileError(f"{path.name}: named .gz but is not gzip data; rename it without .gz or compress it")
    try:
        with gzip.open(path, "rb") as fh:
            return bytes(fh.read(_SNIFF_BYTES))
    except EOFError:
        raise CandleFileError(f"{path.name}: the gzip data is truncated (the file was cut short)") from None
    except (OSError, zlib.error) as exc:
        raise CandleFileError(f"{path.name}: corrupt gzip data ({exc})") from None


def _check_text(path: Path, head: bytes, *, whole: bool = False) -> str:
    """The head of a text file (or all of it, ``whole``) as text; binary data and
    non-UTF-8 text are refused here so that no later step chokes on them with a
    less clear message."""
    if head.startswith(b"\x1f\x8b"):
        raise CandleFileError(f"{path.name}: is gzip data; name it {path.name}.gz")
    if head.startswith(b"PK\x03\x04"):
        raise CandleFileError(f"{path.name}: is a ZIP archive; name it .zip (one CSV inside) or unzip it")
    if b"\x00" in head[:8192]:
        raise CandleFileError(f"{path.name}: not a text file (binary data; UTF-16 text must be saved as UTF-8)")
    # A head cut at _SNIFF_BYTES may end inside a character: decode up to its last newline.
    cut = head if whole or len(head) < _SNIFF_BYTES else head[: head.rfind(b"\n") + 1] or head[:-4]
    try:
        return cut.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CandleFileError(
            f"{path.name}: not UTF-8 text (byte 0x{cut[exc.start]:02x} at offset {exc.start}); save it as UTF-8 CSV"
        ) from None


def _fields(line: str) -> tuple[str, int]:
    delimiter = max((",", ";", "\t", "|"), key=line.count)
    return delimiter, line.count(delimiter) + 1


def _headerless_names(tokens: list[str]) -> tuple[list[str], str] | None:
    """Column names for a file whose first row is data, or None when it is a header."""
    clean = [t.strip().strip('"') for t in tokens]
    n = len(clean)
    if n >= 5 and all(_is_number(t) for t in clean):
        names = list(BINANCE_COLUMNS[:n]) + [f"extra{i}" for i in range(n - len(BINANCE_COLUMNS))]
        return names, "headerless klines (Binance order: open_time, open, high, low, close, volume, ...)"
    if n >= 6 and _DATE_RE.match(clean[0]) and _TOD_RE.match(clean[1]) and all(_is_number(t) for t in clean[2:]):
        names = list(_METATRADER_COLUMNS[:n]) + [f"extra{i}" for i in range(n - len(_METATRADER_COLUMNS))]
        return names, "headerless MetaTrader export (date, time, open, high, low, close, volume)"
    if n >= 5 and all(_is_number(t) for t in clean[1:]) and math.isfinite(parse_time_text(clean[0])):
        names = ["time", "open", "high", "low", "close", "volume"][:n] + [f"extra{i}" for i in range(n - 6)]
        return names, "headerless rows (time, open, high, low, close, volume)"
    return None


def _read_csv(path: Path, head: bytes, source: Any, compressed: bool) -> RawTable:
    text = _check_text(path, head)
    lines = text.splitlines()
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    if not nonblank:
        raise CandleFileError(f"{path.name}: the file is empty")
    # Banner lines (a URL, a title) before the header have one or two fields.
    start = nonblank[0]
    banner: list[str] = []
    for i in nonblank[:_MAX_BANNER_LINES]:
        if _fields(lines[i])[1] > 2:
            start = i
            break
        banner.append(lines[i].strip())
    else:
        banner = []
    header = lines[start]
    delimiter, _ = _fields(header)
    guess = _headerless_names(header.split(delimiter))
    notes = [f"skipped {len(banner)} banner line(s) before the header: {show(banner[0])}"] if banner else []
    read = pacsv.ReadOptions(skip_rows=start, column_names=guess[0] if guess else None)
    try:
        table = pacsv.read_csv(source, read_options=read, parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except pa.ArrowInvalid as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CandleFileError(f"{path.name}: cannot parse as CSV: {show(first, 200)[1:-1]}") from None
    except (OSError, EOFError, zlib.error) as exc:
        if compressed:
            raise CandleFileError(f"{path.name}: the gzip data is truncated or corrupt ({exc})") from None
        raise _cannot_read(path, exc) if isinstance(exc, OSError) else CandleFileError(f"{path.name}: {exc}") from None
    if guess:
        return RawTable(table, guess[1], notes, first_row=start + 1)
    return RawTable(table, "CSV with header", notes, first_row=start + 2)


def _read_zip(path: Path) -> RawTable:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            if len(members) != 1:
                raise CandleFileError(f"{path.name}: a ZIP must hold exactly one CSV file, it holds {len(members)}")
            data = zf.read(members[0])
            inner = members[0].filename
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise CandleFileError(f"{path.name}: not a readable ZIP archive (truncated or corrupt: {exc})") from None
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    raw = _read_csv(path, data[:_SNIFF_BYTES], pa.BufferReader(data), compressed=False)
    raw.layout += f" (in ZIP: {show(inner)})"
    return raw


def _read_json(path: Path, gz: bool) -> RawTable:
    try:
        data = _gzip_all(path) if gz else path.read_bytes()
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    text = _check_text(path, data, whole=True)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise CandleFileError(f"{path.name}: JSON nested too deeply to be kline rows") from None
    except ValueError as exc:
        raise CandleFileError(f"{path.name}: cannot parse as JSON: {exc}") from None
    rows = doc.get("data", doc) if isinstance(doc, dict) else doc
    if isinstance(rows, dict):  # {"data": {"list": [...]}} variants
        rows = next((v for v in rows.values() if isinstance(v, list)), None)
    if not isinstance(rows, list) or not rows:
        raise CandleFileError(f"{path.name}: expected a list of kline rows (or {{'data': [...]}}), found none")
    if all(isinstance(r, list) for r in rows):
        width = len(rows[0])
        names = list(BINANCE_COLUMNS[:width]) + [f"extra{i}" for i in range(width - 12)]
        rows = [dict(zip(names, r, strict=False)) for r in rows]
    if not all(isinstance(r, dict) for r in rows):
        raise CandleFileError(f"{path.name}: kline rows must be objects or arrays")
    # Bitunix sends numbers as strings or numbers; make each column one type.
    cols: dict[str, list[Any]] = {}
    for r in rows:
        for k in r:
            cols.setdefault(str(k), [])
    for k in cols:
        values = [r.get(k) for r in rows]
        if k.lower() != "type":
            try:
                values = [None if v is None or v == "" else float(v) if isinstance(v, str) else v for v in values]
            except ValueError:
                pass
        cols[k] = values
    try:
        table = pa.table(cols)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CandleFileError(f"{path.name}: inconsistent kline rows: {str(exc).splitlines()[0]}") from None
    return RawTable(table, "JSON kline rows")


def _gzip_all(path: Path) -> bytes:
    _gzip_head(path)  # the checks, with their messages
    try:
        with gzip.open(path, "rb") as fh:
            return bytes(fh.read())
    except EOFError:
        raise CandleFileError(f"{path.name}: the gzip data is truncated (the file was cut short)") from None
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise CandleFileError(f"{path.name}: corrupt gzip data ({exc})") from None


def _parquet_duplicates(path: Path) -> None:
    """pyarrow cannot read a Parquet file whose columns share a name; say which."""
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError):
        return
    _Names(names, path).refuse_duplicates()


def read_table(path: Path) -> RawTable:
    """The file as an Arrow table (step 1); one-line errors for anything unreadable."""
    if not path.exists():
        raise CandleFileError(f"candle file not found: {path}")
    if not path.is_file():
        raise CandleFileError(f"{path.name}: not a file: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    last = suffixes[-1] if suffixes else ""
    if ".parquet" in suffixes or ".pq" in suffixes:
        try:
            return RawTable(pq.read_table(path), "Parquet")
        except (pa.ArrowException, OSError) as exc:
            _parquet_duplicates(path)
            raise CandleFileError(f"{path.name}: cannot read as Parquet: {str(exc).splitlines()[0][:200]}") from None
    if ".json" in suffixes:
        return _read_json(path, gz=last == ".gz")
    if last == ".zip":
        return _read_zip(path)
    if last not in (".csv", ".txt", ".gz", ".tsv", ""):
        raise CandleFileError(
            f"{path.name}: unsupported file type; allowed: .csv, .csv.gz, .tsv, .txt, .zip (one CSV), .parquet, .json"
        )
    if last == ".gz":
        return _read_csv(path, _gzip_head(path), str(path), compressed=True)
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    return _read_csv(path, head, str(path), compressed=False)


# ---------------------------------------------------------------------------
# 2a. columns
# ---------------------------------------------------------------------------
class _Names:
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
        return bool(sample) and all(_TOD_RE.match(str(v).strip()) for v in sample)
    return False


def pick_columns(raw: RawTable, path: Path, *, time_column: str | None = None,
                 time_unit: str | None = None) -> Columns:
    """Which column is which (step 2a); refuses missing and doubled columns with one line."""
    table = raw.table
    names = _Names(table.column_names, path)
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


# ---------------------------------------------------------------------------
# 2b. times
# ---------------------------------------------------------------------------
def when(ms: float) -> str:
    """A time for messages, also for absurd values that datetime cannot show."""
    if not math.isfinite(ms):
        return "?"
    try:
        return datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"epoch ms {ms:.0f} (beyond year 9999)" if ms > 0 else f"epoch ms {ms:.0f}"


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
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        if _is_number(text):
            return _epoch_one(float(text))
        return math.nan
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return float(round(dt.timestamp() * 1000.0))


def _parse_date_text(raw: str) -> float:
    m = _DATE_RE.match(raw.strip().strip('"'))
    if not m:
        return math.nan
    y, mo, d = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
    try:
        return float(round(datetime(int(y), int(mo), int(d), tzinfo=UTC).timestamp() * 1000.0))
    except ValueError:
        return math.nan


def _parse_tod_text(raw: str) -> float:
    m = _TOD_RE.match(raw.strip().strip('"'))
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


def _map_text(arr: pa.Array, parse: Callable[[str], float]) -> np.ndarray:
    """Parse each distinct text once (a year of 1-minute bars has 1,440 distinct times of day)."""
    enc = pc.dictionary_encode(arr)
    uniq = enc.dictionary.to_pylist()
    table = np.array([parse(str(u)) for u in uniq] + [math.nan], dtype=np.float64)
    idx = pc.fill_null(enc.indices, len(uniq)).to_numpy(zero_copy_only=False)
    return table[idx]


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _unsupported(path: Path, name: str, t: pa.DataType, what: str) -> CandleFileError:
    return CandleFileError(f"{path.name}: {what} column {show(name)} of type {t} is not supported "
                           "(need epoch numbers, ISO date-times, or a date column plus a time-of-day column)")


def _one_column_ms(arr: pa.Array, name: str, path: Path, unit: str | None, unit_source: str,
                   ) -> tuple[np.ndarray, str, np.ndarray | None]:
    """A full time column -> (float ms, how it was read, raw numbers for unit hints or None)."""
    t = arr.type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
    if unit_source == "--time-unit" and not numeric and not _is_text(t):
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
    if _is_text(t):
        sample = [v for v in arr.slice(0, 50).to_pylist() if v not in (None, "")][:20]
        if sample and all(_is_number(str(v)) for v in sample):  # quoted epoch numbers
            values = _map_text(arr, lambda s: float(s) if _is_number(s) else math.nan)
            out, note = _epoch_floats(values, unit)
            return out, note + suffix, values
        if unit_source == "--time-unit":
            raise CandleFileError(f"{path.name}: --time-unit applies to epoch numbers, but column {show(name)} "
                                  "holds date-time text; drop --time-unit")
        if sample and all(_TOD_RE.match(str(v).strip()) for v in sample):
            raise CandleFileError(f"{path.name}: column {show(name)} holds a time of day but there is no date "
                                  "column beside it; pass --time-column DATE,TIME")
        return _map_text(arr, parse_time_text), "date-time text", None
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
        return _map_text(pc.cast(arr, pa.string()), _parse_date_text)
    if _is_text(t):
        return _map_text(arr, _parse_date_text)
    raise CandleFileError(f"{path.name}: date column {show(name)} of type {t} is not supported "
                          "(need dates like 2021-09-27, 2021.09.27, 2021/09/27 or 20210927)")


def _tod_ms(arr: pa.Array, name: str, path: Path) -> np.ndarray:
    t = arr.type
    if pa.types.is_time(t):
        unit = t.unit
        ints = pc.cast(arr, pa.int64() if pa.types.is_time64(t) else pa.int32())
        values = pc.cast(ints, pa.float64()).to_numpy(zero_copy_only=False)
        return np.floor(values * {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}[unit])
    if _is_text(t):
        return _map_text(arr, _parse_tod_text)
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


def floats(table: pa.Table, index: int | None, rows: int, path: Path) -> np.ndarray:
    """A price/volume column as float64 (NaN where unreadable)."""
    if index is None:
        return np.zeros(rows)
    col = table.column(index).combine_chunks()
    if _is_text(col.type):
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

    return pa.array(_map_text(col, num), pa.float64())
