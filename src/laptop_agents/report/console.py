"""The console summary printed at the end of every run (backtest, replay, live)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

_ROWS = (
    ("net_pnl", "net PnL", "{:,.2f}"), ("return_pct", "return %", "{:,.2f}"),
    ("final_equity", "final equity", "{:,.2f}"), ("trades", "trades", "{:,}"),
    ("win_rate_pct", "win rate %", "{:.1f}"), ("profit_factor", "profit factor", "{:.2f}"),
    ("expectancy", "expectancy / trade", "{:,.2f}"), ("max_drawdown", "max drawdown", "{:,.2f}"),
    ("max_drawdown_pct", "max drawdown %", "{:.2f}"), ("sharpe", "Sharpe (ann.)", "{:.2f}"),
    ("sortino", "Sortino (ann.)", "{:.2f}"), ("exposure_pct", "exposure %", "{:.1f}"),
    ("fees_paid", "fees paid", "{:,.2f}"), ("funding_paid", "funding paid", "{:,.2f}"),
)


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def summary_table(summary: Mapping[str, Any]) -> Table:
    """A rich table of the run's identity and metrics."""
    metrics = summary.get("metrics") or {}
    title = f"{summary.get('mode', 'run')} {summary.get('run_id', '')}".strip()
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="dim")
    table.add_column("value", justify="right")
    for key, label in (("strategy", "strategy"), ("symbol", "symbol"), ("currency", "currency"), ("interval", "interval"),
                       ("first_time", "from"), ("last_time", "to"), ("candles", "candles"), ("reason", "stopped")):
        if summary.get(key) not in (None, ""):
            table.add_row(label, str(summary[key]))
    btc = summary.get("currency") == "BTC"  # inverse contracts: money in BTC needs more decimals
    for key, label, pattern in _ROWS:
        if btc and pattern == "{:,.2f}" and key not in ("return_pct",):
            pattern = "{:,.6f}"
        value = metrics.get(key)
        text = _fmt(value, pattern)
        if key in ("net_pnl", "return_pct") and isinstance(value, float):
            text = f"[green]{text}[/]" if value > 0 else f"[red]{text}[/]" if value < 0 else text
        table.add_row(label, text)
    if summary.get("run_dir"):
        table.add_row("run dir", str(summary["run_dir"]))
    return table


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the summary table (to stdout unless a console is given)."""
    (console or Console()).print(summary_table(summary))
