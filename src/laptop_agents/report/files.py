"""A run directory's files: their names and the columns of the CSV ones.

Shared by the writer that streams them and the reader that builds the summary
and report from them, so the two can never disagree about a name or a column.
"""

from __future__ import annotations

import pyarrow as pa

CANDLES_CSV = "candles.csv"
EQUITY_CSV = "equity.csv"
TRADES_CSV = "trades.csv"
SUMMARY_JSON = "summary.json"
REPORT_HTML = "report.html"
EVENTS_JSONL = "events.jsonl"

CANDLE_SCHEMA = pa.schema([
    ("ts", pa.int64()), ("open", pa.float64()), ("high", pa.float64()), ("low", pa.float64()),
    ("close", pa.float64()), ("volume", pa.float64()),
])
EQUITY_SCHEMA = pa.schema([
    ("ts", pa.int64()), ("close", pa.float64()), ("equity", pa.float64()), ("position_qty", pa.float64()),
    ("fees_paid", pa.float64()), ("funding_paid", pa.float64()),
])
TRADE_COLUMNS = (
    "n", "side", "qty", "entry_ts", "entry_price", "exit_ts", "exit_price", "stop", "target",
    "pnl", "fees", "funding", "net_pnl", "exit_reason",
)
