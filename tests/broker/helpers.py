"""Small builders for broker tests: a UTC-midnight origin and minute candles."""

from __future__ import annotations

from typing import Any

from laptop_agents.broker.paper import PaperBroker
from laptop_agents.config import BrokerConfig, RiskConfig
from laptop_agents.domain.events import Event
from laptop_agents.domain.models import Candle, OrderIntent, OrderType, Side
from laptop_agents.domain.symbols import instrument_for

T0 = 1_699_920_000_000  # 2023-11-14 00:00:00 UTC
MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def candle(i: int, o: float, h: float, lo: float, c: float, v: float = 1000.0, *, t0: int = T0) -> Candle:
    return Candle(t0 + i * MIN, o, h, lo, c, v)


def flat(i: int, px: float, v: float = 1000.0, *, t0: int = T0) -> Candle:
    """A candle that trades only at ``px``."""
    return candle(i, px, px, px, px, v, t0=t0)


def make_broker(
    symbol: str = "BTCUSDT",
    equity: float = 10_000.0,
    *,
    risk: dict[str, Any] | None = None,
    **broker: Any,
) -> PaperBroker:
    """A broker with round-number defaults: no slippage, 2/6 bps fees."""
    cfg = {"slippage_bps": 0.0, **broker}
    return PaperBroker(instrument_for(symbol), BrokerConfig(**cfg), RiskConfig(**(risk or {})), equity)


def buy(cid: str, qty: float, **kw: Any) -> OrderIntent:
    typ = OrderType.LIMIT if kw.get("price") is not None else OrderType.MARKET
    return OrderIntent(cid, Side.BUY, typ, qty, **kw)


def sell(cid: str, qty: float, **kw: Any) -> OrderIntent:
    typ = OrderType.LIMIT if kw.get("price") is not None else OrderType.MARKET
    return OrderIntent(cid, Side.SELL, typ, qty, **kw)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def of_kind(events: list[Event], kind: str) -> list[dict[str, Any]]:
    """The JSON fields (``to_dict`` without ts and kind) of the events of ``kind``:
    the broker tests pin the journal's shape, not only the records'."""
    return [{k: v for k, v in e.to_dict().items() if k not in ("ts", "kind")} for e in events if e.kind == kind]
