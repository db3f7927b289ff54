"""The backtest loop: candles from a file (or the mock market) through the Engine.

It drives the very ``Engine`` + strategy + ``PaperBroker`` the live session
drives, in a tight synchronous loop; nothing about the trading is specific to
backtests. What is specific: no state store (a backtest must never touch the
live ``state.db``; the engine's state simply lives in memory), no clock, no
guards, and output written in batches.

Funding: updates from the file's funding column are given to the engine just
before the first candle at or after their time (as a live source refreshes
them); ``constant_funding`` sets one rate for the whole run. Without either, the
broker charges no funding and the default strategy's funding gate sees
"missing funding" (half size), as it would live without a funding feed.
"""

from __future__ import annotations

import gc
import json
import math
import sys
import time
from array import array
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from laptop_agents.config import AppConfig
from laptop_agents.domain.events import Event, FillEvent, Funding, TradeClosed
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.domain.timeframes import interval_ms
from laptop_agents.engine import build_engine
from laptop_agents.report.files import EVENTS_JSONL, SUMMARY_JSON
from laptop_agents.report.metrics import compute_metrics
from laptop_agents.report.writer import RunWriter
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.store.journal import EventJournal
from laptop_agents.strategy import build_strategy

if TYPE_CHECKING:
    from laptop_agents.engine.status import EngineStatus

MOCK_ORIGIN_TS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: a fixed origin makes mock backtests reproducible
_JOURNAL_BATCH = 4096
_ROWS_CHUNK = 8192  # processed steps per hand-over to the run writer


@dataclass
class BacktestResult:
    """What a backtest produced. ``metrics`` are computed in memory from the
    same numbers the run's files hold; ``trades`` are the ``trade_closed`` events."""

    metrics: dict[str, Any]
    trades: list[TradeClosed]
    steps: int
    warmup: int
    elapsed_s: float
    starting_equity: float
    final_status: EngineStatus
    run_dir: Path | None = None
    report: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    # The equity after each processed (non-warm-up) candle: the per-bar returns
    # a walk-forward study pools across folds.
    equity: array = field(default_factory=lambda: array("d"))

    @property
    def candles_per_s(self) -> float:
        return self.steps / self.elapsed_s if self.elapsed_s > 0 else math.inf


def mock_candles(config: AppConfig, *, minutes: float | None = None) -> list[Candle]:
    """The mock market's candles for ``trading.duration_min`` minutes (or
    ``minutes``) from :data:`MOCK_ORIGIN_TS`, seeded by ``trading.seed``."""
    step = interval_ms(config.trading.interval)
    total_ms = (config.trading.duration_min if minutes is None else minutes) * 60_000
    n = max(1, int(total_ms // step))
    market = SyntheticMarket(config.trading.seed, MOCK_ORIGIN_TS, step)
    return market.candles(0, n)


def mock_funding(config: AppConfig, candles: Sequence[Candle]) -> list[FundingRate]:
    """The mock market's funding rate at the start and at each 8-hour period change."""
    if not candles:
        return []
    market = SyntheticMarket(config.trading.seed, MOCK_ORIGIN_TS, interval_ms(config.trading.interval))
    period = 8 * 3_600_000
    out: list[FundingRate] = []
    last = None
    for c in candles:
        p = c.ts // period
        if p != last:
            out.append(FundingRate(ts=c.ts, rate=market.funding_rate(c.ts)))
            last = p
    return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No automatic cycle collection during the loop.

    The loop allocates millions of short-lived, acyclic objects (events,
    step results, rows) next to the run's long-lived candles; every automatic
    full collection re-scans all of those candles, about 15 % of a year's
    run. Reference counting still frees everything at once; the collector's
    previous state is restored afterwards, also on error."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _progress(total: int, enabled: bool | None) -> Any:
    """A rich progress bar on a TTY for long runs, else None."""
    if enabled is None:
        enabled = sys.stderr.isatty() and total >= 20_000
    if not enabled:
        return None
    prog = Progress(
        TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    )
    return prog


def run_backtest(
    config: AppConfig,
    candles: Sequence[Candle],
    *,
    funding: Sequence[FundingRate] = (),
    constant_funding: float | None = None,
    overrides: Mapping[str, Any] | None = None,
    warmup: int = 0,
    run_dir: Path | None = None,
    summary_fields: Mapping[str, Any] | None = None,
    html: bool = True,
    progress: bool | None = None,
    journal: bool = True,
) -> BacktestResult:
    """Backtest ``candles`` (oldest first) with ``config``'s strategy and broker.

    The first ``warmup`` candles only prime the indicators (``Engine.warmup``)
    and are not part of the results; a walk-forward test fold passes its train
    window that way. ``overrides`` go to ``build_strategy`` (a validate grid).
    With ``run_dir`` the run's files (events.jsonl, candles/equity/trades.csv,
    summary.json and, with ``html``, report.html) are written there.
    """
    strategy = build_strategy(config, overrides=overrides)
    engine = build_engine(config, strategy)
    step_ms = interval_ms(config.trading.interval)

    writer = None
    jrnl = None
    if run_dir is not None:
        writer = RunWriter(run_dir, plotly=config.system.report_plotly)
        if journal:
            jrnl = EventJournal(Path(run_dir) / EVENTS_JSONL)

    fund = sorted(funding, key=lambda f: f.ts)
    if constant_funding is not None and candles:
        fund = [FundingRate(ts=candles[0].ts, rate=constant_funding)]
    fi, nf = 0, len(fund)

    equity = array("d")
    position = array("d")
    trades: list[TradeClosed] = []
    fees = funding_paid = 0.0
    pending: list[Event] = []
    n = len(candles)
    warm = max(0, min(warmup, n))
    t0 = time.perf_counter()
    prog = _progress(n, progress)
    task = prog.add_task("backtest", total=n, rate="") if prog is not None else None
    if prog is not None:
        prog.start()
    never = math.inf
    next_funding = fund[0].ts if nf else never
    # Rows for the run writer, handed over in chunks (writer.on_steps): the
    # candles of the processed steps since the last chunk and the steps that
    # had events (index in the chunk, events); equity/position are the arrays.
    rows: list[Candle] = []
    events_at: list[tuple[int, list[Event]]] = []
    written = 0

    def write_rows() -> None:
        nonlocal rows, events_at, written
        if writer is not None and rows:
            end = written + len(rows)
            writer.on_steps(rows, equity[written:end], position[written:end], events_at)
            written = end
            rows, events_at = [], []

    try:
        with _gc_paused():
            on_candle, on_warmup, on_funding = engine.on_candle, engine.warmup, engine.on_funding
            eq_append, pos_append = equity.append, position.append
            for i in range(n):
                c = candles[i]
                if c.ts >= next_funding:
                    while fi < nf and fund[fi].ts <= c.ts:
                        on_funding(fund[fi])
                        fi += 1
                    next_funding = fund[fi].ts if fi < nf else never
                if i < warm:
                    result = on_warmup(c)
                else:
                    result = on_candle(c)
                    if not result.processed:
                        continue
                    eq_append(result.equity)
                    pos_append(result.position_qty)
                    if writer is not None:
                        if result.events:
                            events_at.append((len(rows), result.events))
                        rows.append(c)
                        if len(rows) >= _ROWS_CHUNK:
                            write_rows()
                if result.events:
                    for ev in result.events:
                        if isinstance(ev, FillEvent):
                            fees += ev.fee
                        elif isinstance(ev, Funding):
                            funding_paid += ev.amount
                        elif isinstance(ev, TradeClosed):
                            trades.append(ev)
                    if jrnl is not None:
                        pending.extend(result.events)
                        if len(pending) >= _JOURNAL_BATCH:
                            jrnl.write(pending)
                            pending = []
                if prog is not None and (i & 4095) == 0:
                    el = time.perf_counter() - t0
                    prog.update(task, completed=i, rate=f"{i / el:,.0f} candles/s" if el > 0 else "")
        write_rows()
    finally:
        if prog is not None:
            prog.stop()
        if jrnl is not None:
            if pending:
                jrnl.write(pending)
            jrnl.close()
    elapsed = time.perf_counter() - t0

    status = engine.status()
    start_eq = status.start_balance
    if start_eq is None:
        start_eq = float(config.risk.starting_equity or 0.0)
    # Inverse accounts are in BTC: warmup-only runs never set the balance.
    start_eq = float(start_eq)
    metrics = compute_metrics(
        starting_equity=start_eq, equity=equity, position_qty=position,
        trade_net_pnl=[t.net_pnl for t in trades],
        interval_ms=step_ms, fees_paid=fees, funding_paid=funding_paid,
    )
    result_obj = BacktestResult(
        metrics=metrics, trades=trades, steps=len(equity), warmup=warm, elapsed_s=elapsed,
        starting_equity=start_eq, final_status=status, run_dir=run_dir, equity=equity,
    )
    if writer is not None:
        fields: dict[str, Any] = {
            "mode": "backtest",
            "strategy": strategy.name,
            "symbol": config.trading.symbol,
            "interval": config.trading.interval,
            "starting_equity": start_eq,
            "currency": status.currency,
            "warmup_candles": warm,
            "elapsed_s": round(elapsed, 3),
            "candles_per_s": round(len(equity) / elapsed, 1) if elapsed > 0 else None,
            "overrides": dict(overrides or {}),
        }
        fields.update(summary_fields or {})
        result_obj.report = writer.finish(fields, html=html)
        result_obj.summary = json.loads((Path(run_dir) / SUMMARY_JSON).read_text(encoding="utf-8"))  # type: ignore[arg-type]
    return result_obj
