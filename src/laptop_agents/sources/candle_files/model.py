"""The loader's data: the columns it found, the bars it cleans, the problem report, the result.

:class:`Bars` is the one table every cleaning step takes and returns: the
price columns, times and the optional funding and close-time columns side by
side, selected together by :meth:`Bars.take` so that no step can forget one
of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from laptop_agents.domain.errors import InputDataError
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.domain.models import Candle, FundingRate

MAX_EXAMPLES = 3

# Problems that --strict refuses (zero volume alone is normal in some exports).
STRICT_REFUSED = (
    "bad_time", "non_monotonic", "invalid_values", "duplicates", "ohlc_inconsistent",
    "partial_last", "misaligned", "gaps",
)


class CandleFileError(InputDataError):
    """A candle file that cannot be used (or is refused with ``strict``); one line."""


def show(name: str, limit: int = 40) -> str:
    """A column name or text sample for a one-line message: printable, quoted, short."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(name))
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


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


@dataclass(frozen=True, slots=True)
class Bars:
    """Rows of a candle file as columns: ``ts`` in UTC ms (float64 with NaN for an
    unreadable time until the first cleaning step, int64 after it), prices and
    volume as float64, ``funding`` (fraction per 8 h, NaN where empty) and
    ``close_time`` (ms) when the file has them."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    funding: np.ndarray | None = None
    close_time: np.ndarray | None = None

    @classmethod
    def of(cls, ts: Any, open: Any, high: Any, low: Any, close: Any, volume: Any, *,
           funding: Any = None, close_time: Any = None) -> Bars:
        """Bars from sequences (tests, and the columns step)."""
        t = np.asarray(ts)
        return cls(
            ts=t, open=np.asarray(open, dtype=np.float64), high=np.asarray(high, dtype=np.float64),
            low=np.asarray(low, dtype=np.float64), close=np.asarray(close, dtype=np.float64),
            volume=np.asarray(volume, dtype=np.float64),
            funding=None if funding is None else np.asarray(funding, dtype=np.float64),
            close_time=None if close_time is None else np.asarray(close_time, dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.ts.size)

    def take(self, which: np.ndarray | slice) -> Bars:
        """The rows ``which`` selects (a boolean mask, indices or a slice), every column alike."""
        return Bars(
            ts=self.ts[which], open=self.open[which], high=self.high[which], low=self.low[which],
            close=self.close[which], volume=self.volume[which],
            funding=None if self.funding is None else self.funding[which],
            close_time=None if self.close_time is None else self.close_time[which],
        )

    def with_(self, **columns: np.ndarray) -> Bars:
        """The same rows with some columns replaced."""
        return replace(self, **columns)

    def times(self, idx: np.ndarray) -> list[str]:
        """The first few times of rows ``idx``, for a problem's examples."""
        return [ms_to_iso(int(self.ts[i])) for i in idx[:MAX_EXAMPLES]]


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
        return not any(p.kind in STRICT_REFUSED for p in self.problems)

    def problem(self, kind: str) -> Problem | None:
        return next((p for p in self.problems if p.kind == kind), None)

    def lines(self) -> list[str]:
        head = (
            f"{self.path}: {self.layout}, {self.rows_read} rows read, {self.rows_kept} candles kept, "
            f"interval {self.interval or '?'}"
        )
        if self.first_ts is not None and self.last_ts is not None:
            head += f", {ms_to_iso(self.first_ts)} -> {ms_to_iso(self.last_ts)}"
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
