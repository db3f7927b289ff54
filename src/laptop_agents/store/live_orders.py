"""The live orders table: every exchange order the bot decided to send.

A row is written in the same transaction as the step whose intent it carries
(state ``committed``) -- BEFORE the order is sent -- so a crash at any instant
leaves either no order (nothing was committed, nothing sent) or a row whose
client id a restart asks the exchange about. The row then follows the
exchange's word: ``acked`` (the exchange has it, ``order_id`` known), ``final``
(filled, cancelled, rejected: nothing more will happen) or ``not_placed``
(a lookup proved it never reached the exchange). ``filled``/``value``/``fee``
are the cumulative quantity, value and fee already booked; they are committed
with the fills they booked, so a fill is counted once across any restart.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

OPEN_STATES = frozenset({"committed", "acked"})


@dataclass
class LiveOrder:
    exchange_id: str  # the client id the exchange knows (exchange/client_ids.py)
    intent_id: str  # the intent's (or the broker exit's) client id in the books
    run_id: str
    candle_ts: int
    seq: int
    side: str  # BUY | SELL
    type: str  # LIMIT | MARKET
    qty: float
    price: float | None
    reduce_only: bool
    state: str = "committed"  # committed | acked | final | not_placed
    order_id: str | None = None
    filled: float = 0.0
    value: float = 0.0
    fee: float = 0.0
    status: str = ""  # the exchange's last status word

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    def to_row(self) -> tuple[object, ...]:
        return astuple(self)

    @classmethod
    def from_row(cls, row: tuple[object, ...] | list[object]) -> LiveOrder:
        values = list(row)
        values[9] = bool(values[9])
        return cls(*values)  # type: ignore[arg-type]


LIVE_ORDER_FIELDS = tuple(f.name for f in fields(LiveOrder))
CREATE_LIVE_ORDERS = """CREATE TABLE live_orders (
    exchange_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, run_id TEXT NOT NULL, candle_ts INTEGER NOT NULL,
    seq INTEGER NOT NULL, side TEXT NOT NULL, type TEXT NOT NULL, qty REAL NOT NULL, price REAL,
    reduce_only INTEGER NOT NULL, state TEXT NOT NULL, order_id TEXT, filled REAL NOT NULL, value REAL NOT NULL,
    fee REAL NOT NULL, status TEXT NOT NULL)"""
UPSERT_LIVE_ORDER = (
    f"INSERT OR REPLACE INTO live_orders ({', '.join(LIVE_ORDER_FIELDS)}) "
    f"VALUES ({', '.join('?' * len(LIVE_ORDER_FIELDS))})"
)
SELECT_LIVE_ORDERS = f"SELECT {', '.join(LIVE_ORDER_FIELDS)} FROM live_orders ORDER BY candle_ts, seq, exchange_id"
