"""Step 1 of loading a candle file: the bytes into an Arrow table.

CSV (also ``.gz``, ``.zip`` with one CSV, ``.tsv``), Parquet or JSON, after
checking that the bytes are what the name says (gzip magic, not binary,
UTF-8), so that no later step chokes on them with a less clear message. CSV
banner lines (CryptoDataDownload's URL line) are skipped; a header is
optional: a first row of numbers is read in Binance kline order, a first row
of ``date, time, numbers`` in MetaTrader order.
"""

from __future__ import annotations

import gzip
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from laptop_agents.sources.candle_files.columns import ColumnNames
from laptop_agents.sources.candle_files.model import CandleFileError, show
from laptop_agents.sources.candle_files.times import DATE_RE, TOD_RE, is_number, parse_time_text

_SNIFF_BYTES = 1 << 16
_MAX_BANNER_LINES = 5

BINANCE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "ignore",
)
_METATRADER_COLUMNS = ("date", "time", "open", "high", "low", "close", "volume")


@dataclass(slots=True)
class RawTable:
    """A file read into a table, how it was laid out, and notes for the report."""

    table: pa.Table
    layout: str
    notes: list[str] = field(default_factory=list)
    first_row: int = 1  # number shown for table row 0 in examples ("row N")



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
    if n >= 5 and all(is_number(t) for t in clean):
        names = list(BINANCE_COLUMNS[:n]) + [f"extra{i}" for i in range(n - len(BINANCE_COLUMNS))]
        return names, "headerless klines (Binance order: open_time, open, high, low, close, volume, ...)"
    if n >= 6 and DATE_RE.match(clean[0]) and TOD_RE.match(clean[1]) and all(is_number(t) for t in clean[2:]):
        names = list(_METATRADER_COLUMNS[:n]) + [f"extra{i}" for i in range(n - len(_METATRADER_COLUMNS))]
        return names, "headerless MetaTrader export (date, time, open, high, low, close, volume)"
    if n >= 5 and all(is_number(t) for t in clean[1:]) and math.isfinite(parse_time_text(clean[0])):
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
    ColumnNames(names, path).refuse_duplicates()


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

