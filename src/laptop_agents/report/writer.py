"""Run output files, streamed while a run goes: candles.csv, equity.csv, trades.csv.

One writer serves the backtest and the live session, so both leave the same
files and the same report. Memory is bounded: candle and equity rows are
buffered in column lists and written in chunks through Arrow's CSV writer
(fast number formatting, which matters for a year of one-minute bars); a
closed trade is written and flushed at once because it is rare and precious.
``finish`` flushes everything and builds summary.json and report.html *from
the files*, exactly as ``laptop-agents report RUN_DIR`` would later.

``events.jsonl`` is not written here: the engine's EventJournal owns it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from laptop_agents.domain.contracts import StepResult
from laptop_agents.domain.events import Event, FillEvent, Funding, OrderEvent, TradeClosed
from laptop_agents.domain.models import Candle
from laptop_agents.logs import scrub
from laptop_agents.report.build import build_report
from laptop_agents.report.files import (
    CANDLE_SCHEMA,
    CANDLES_CSV,
    EQUITY_CSV,
    EQUITY_SCHEMA,
    TRADE_COLUMNS,
    TRADES_CSV,
)


class _ChunkedCsv:
    """An Arrow CSV writer fed one record batch of columns at a time."""

    def __init__(self, path: Path, schema: pa.Schema, *, append: bool) -> None:
        self.schema = schema
        header = not (append and path.exists() and path.stat().st_size > 0)
        self._fh = open(path, "ab" if append else "wb")
        if header:  # Arrow quotes header names; a plain header reads better everywhere.
            self._fh.write((",".join(schema.names) + "\n").encode())
        self._writer = pacsv.CSVWriter(
            self._fh, schema, write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed")
        )

    def write(self, cols: list[list[Any]]) -> None:
        arrays = [pa.array(col, type=f.type) for col, f in zip(cols, self.schema, strict=True)]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._writer.close()
        self._fh.close()


def _last_ts(path: Path) -> int | None:
    """The ``ts`` of the last data row of a CSV we wrote (first column), if any."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb") as fh:
        fh.seek(0, io.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        return int(lines[-1].split(b",")[0])
    except ValueError:
        return None


class RunWriter:
    """Streams one run's candles, equity and trades into ``run_dir``.

    ``on_step(candle, result)`` after every Engine step (skipped results are
    ignored); ``on_events(events)`` for steps without a candle (warm-up,
    funding); ``on_final(...)`` for the last step of a session (the shutdown's
    flatten), which ends the equity curve at the account as it was left;
    ``flush()`` whenever the caller wants the files current (the live session:
    on each heartbeat); ``finish(summary_fields)`` at the end.

    ``resume=True`` appends to existing files and ignores candles at or before
    the last one already written, so a restarted live session continues its run
    directory instead of truncating it.

    ``fees_paid`` / ``funding_paid`` are the account's totals when the run
    starts: a live session continues an account from the state store, and
    equity.csv's fee and funding columns are the account's, like its equity
    column (cumulative over restarts, not per run).
    """

    def __init__(self, run_dir: str | Path, *, flush_every: int = 8192, resume: bool = False,
                 fees_paid: float = 0.0, funding_paid: float = 0.0, plotly: str = "shared") -> None:
        self.run_dir = Path(run_dir)
        self.plotly = plotly  # where report.html gets plotly.js (system.report_plotly)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.flush_every = max(1, int(flush_every))
        self._last_ts = _last_ts(self.run_dir / EQUITY_CSV) if resume else None
        self._candles = _ChunkedCsv(self.run_dir / CANDLES_CSV, CANDLE_SCHEMA, append=resume)
        self._equity = _ChunkedCsv(self.run_dir / EQUITY_CSV, EQUITY_SCHEMA, append=resume)
        trades_path = self.run_dir / TRADES_CSV
        self._n_trades = 0
        if resume and trades_path.exists():
            with open(trades_path, encoding="utf-8") as fh:
                self._n_trades = max(0, sum(1 for _ in fh) - 1)
            self._fees, self._funding = self._resume_totals()
        else:
            self._fees, self._funding = float(fees_paid), float(funding_paid)
        new_trades = not (resume and trades_path.exists() and trades_path.stat().st_size > 0)
        self._trades_fh = open(trades_path, "a" if resume else "w", encoding="utf-8", newline="")
        self._trades = csv.writer(self._trades_fh)
        if new_trades:
            self._trades.writerow(TRADE_COLUMNS)
            self._trades_fh.flush()
        # Protective prices of working entries (by client id) and of the open position.
        self._brackets: dict[str, tuple[float | None, float | None]] = {}
        self._position_bracket: tuple[float | None, float | None] = (None, None)
        self._rows: list[tuple[Candle, float, float, float, float]] = []
        # (equity, position, fees, funding) of the last equity row, for on_final.
        self._last_account: tuple[float, float, float, float] | None = None
        self._closed = False
        self.steps = 0

    def _resume_totals(self) -> tuple[float, float]:
        path = self.run_dir / EQUITY_CSV
        if not path.exists() or path.stat().st_size == 0:
            return 0.0, 0.0
        with open(path, "rb") as fh:
            fh.seek(0, io.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
        try:
            parts = lines[-1].split(b",")
            return float(parts[4]), float(parts[5])
        except (IndexError, ValueError):
            return 0.0, 0.0

    # -- streaming ----------------------------------------------------------
    def on_step(self, candle: Candle, result: StepResult) -> None:
        """Record one processed candle: its row, the equity after it, its events."""
        if not result.processed or (self._last_ts is not None and candle.ts <= self._last_ts):
            return
        if result.events:
            self.on_events(result.events)
        self._rows.append((candle, result.equity, result.position_qty, self._fees, self._funding))
        self._last_account = (result.equity, result.position_qty, self._fees, self._funding)
        self._last_ts = candle.ts
        self.steps += 1
        if len(self._rows) >= self.flush_every:
            self.flush()

    def on_steps(
        self,
        candles: Sequence[Candle],
        equity: Sequence[float],
        position: Sequence[float],
        events_at: Sequence[tuple[int, Sequence[Event]]] = (),
    ) -> None:
        """``on_step`` for a run of consecutive processed steps at once (the
        backtest's path; a call per candle cost as much as the CSV formatting).

        ``candles[i]`` ended with ``equity[i]`` and ``position[i]``;
        ``events_at`` lists ``(i, events)`` for the steps that had events, in
        order. The candles must be in increasing time order (as the steps of
        one engine are); leading ones at or before the last row written are
        skipped, as ``on_step`` does after a resume. Rows and totals come out
        exactly as from ``on_step`` per step."""
        n = len(candles)
        if not (len(equity) == len(position) == n):
            raise ValueError(f"on_steps: {n} candles, {len(equity)} equity and {len(position)} position values")
        if not all(a.ts < b.ts for a, b in zip(candles, candles[1:], strict=False)):
            raise ValueError("on_steps: candles must be in increasing time order")
        first = 0
        if self._last_ts is not None:  # resumed: skip what is already in the files
            while first < n and candles[first].ts <= self._last_ts:
                first += 1
        if first >= n:
            return
        fees: list[float] = []
        funding: list[float] = []
        done = first
        for i, events in events_at:
            if i < first:
                continue
            fees.extend([self._fees] * (i - done))
            funding.extend([self._funding] * (i - done))
            if events:
                self.on_events(events)
            fees.append(self._fees)
            funding.append(self._funding)
            done = i + 1
        fees.extend([self._fees] * (n - done))
        funding.extend([self._funding] * (n - done))
        self.flush()  # rows buffered by on_step go first
        self._write_rows(candles[first:], equity[first:], position[first:], fees, funding)
        self._last_account = (equity[n - 1], position[n - 1], fees[-1], funding[-1])
        self._last_ts = candles[n - 1].ts
        self.steps += n - first

    def on_final(self, ts: int, price: float, equity: float, position_qty: float,
                 events: Iterable[Event] = ()) -> bool:
        """The session's last step, which has no candle: its events, then -- if
        the account changed since the last row (a flatten's fill and fee, a
        late bar's stop) -- one more equity row at ``ts``, after the last
        candle's. Without it the curve, and the net PnL and fees computed from
        it, would miss what the shutdown did while trades.csv has it. The row
        has no candles.csv counterpart; ``price`` fills its ``close`` column
        (the flatten's fill price, else the last price). Returns whether a row
        was added."""
        self.on_events(events)
        account = (equity, position_qty, self._fees, self._funding)
        if account == self._last_account or (self._last_ts is not None and ts <= self._last_ts):
            return False
        if self._closed:
            raise ValueError(f"run writer for {self.run_dir} is closed")
        self.flush()  # rows buffered by on_step go first
        self._equity.write([[ts], [price], [equity], [position_qty], [self._fees], [self._funding]])
        self._last_account = account
        self._last_ts = ts
        return True

    def on_events(self, events: Iterable[Event]) -> None:
        """Account fees, funding and closed trades from a batch of events."""
        for ev in events:
            if isinstance(ev, FillEvent):
                self._fees += ev.fee
                if ev.client_id in self._brackets and ev.reason in ("entry", "reverse", ""):
                    self._position_bracket = self._brackets[ev.client_id]
            elif isinstance(ev, Funding):
                self._funding += ev.amount
            elif isinstance(ev, OrderEvent):
                if ev.status in ("accepted", "working") and (ev.stop or ev.target):
                    self._brackets[ev.client_id] = (ev.stop, ev.target)
                    if len(self._brackets) > 256:  # bounded: old brackets are never needed again
                        self._brackets.pop(next(iter(self._brackets)))
            elif isinstance(ev, TradeClosed):
                self._write_trade(ev)

    def _write_trade(self, t: TradeClosed) -> None:
        self._n_trades += 1
        stop, target = self._position_bracket
        row = [
            self._n_trades, t.side, t.qty, t.entry_ts, t.entry_price, t.exit_ts, t.exit_price,
            "" if stop is None else stop, "" if target is None else target, t.pnl, t.fees, t.funding,
            t.net_pnl, scrub(t.exit_reason),
        ]  # fmt: skip
        self._trades.writerow(row)
        self._trades_fh.flush()

    def _write_rows(
        self,
        candles: Sequence[Candle],
        equity: Sequence[float],
        position: Sequence[float],
        fees: Sequence[float],
        funding: Sequence[float],
    ) -> None:
        if self._closed:
            raise ValueError(f"run writer for {self.run_dir} is closed")
        chunk = self.flush_every
        for a in range(0, len(candles), chunk):
            cs = candles[a : a + chunk]
            ts = [c.ts for c in cs]
            close = [c.close for c in cs]
            self._candles.write([ts, [c.open for c in cs], [c.high for c in cs], [c.low for c in cs], close,
                                 [c.volume for c in cs]])  # fmt: skip
            self._equity.write([ts, close, list(equity[a : a + chunk]), list(position[a : a + chunk]),
                                list(fees[a : a + chunk]), list(funding[a : a + chunk])])  # fmt: skip

    def flush(self) -> None:
        """Write buffered rows so the files on disk are current."""
        rows = self._rows
        if rows and not self._closed:
            # One tuple per step while running; transposed here, once per chunk.
            self._write_rows([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                             [r[3] for r in rows], [r[4] for r in rows])  # fmt: skip
            rows.clear()
        if not self._closed:
            self._candles.flush()
            self._equity.flush()
            self._trades_fh.flush()

    def close(self) -> None:
        """Flush and close the files without building the summary or report."""
        if not self._closed:
            self.flush()
            self._candles.close()
            self._equity.close()
            self._trades_fh.close()
            self._closed = True

    def finish(self, summary_fields: Mapping[str, Any] | None = None, *, html: bool = True) -> Path:
        """Close the files and build summary.json (and report.html unless ``html``
        is false) from them. Returns the report's path (summary.json's without html)."""
        self.close()
        return build_report(self.run_dir, summary_fields, html=html, plotly=self.plotly)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
