"""Writing candles: the canonical layout (``ts`` in UTC ms, open, high, low, close,
volume[, funding]) as Parquet or CSV, replaced atomically."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from laptop_agents.domain.models import Candle
from laptop_agents.fileio import replacing
from laptop_agents.sources.candle_files.model import CandleFileError


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
    """Write as Parquet or CSV (chosen by suffix), replacing ``path`` atomically.

    Durable (``fsync``): ``fetch-candles`` checkpoints hours of rate-limited
    downloads into this file and resumes from it; a power cut must leave the
    last checkpoint, not an empty file. One flush per checkpoint is cheap
    beside the requests."""
    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise CandleFileError(f"{path.name}: output must end in .parquet or .csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, fsync=True) as tmp:
        if path.suffix.lower() == ".csv":
            pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(quoting_style="needed"))
        else:
            pq.write_table(table, tmp)
    return path


def write_candles(path: str | Path, candles: Iterable[Candle], funding: Sequence[float | None] | None = None) -> Path:
    """Write candles to ``path`` (.csv or .parquet) in the canonical layout."""
    return write_table(path, candles_table(candles, funding))
