"""Small builders for hand-made candle series used across the strategy tests."""

from __future__ import annotations

from laptop_agents.domain.contracts import AccountView
from laptop_agents.domain.models import Candle

T0 = 1_700_000_000_000
MINUTE = 60_000


def ts(i: int) -> int:
    return T0 + i * MINUTE


def bar(i: int, o: float, h: float, lo: float, c: float, v: float = 100.0) -> Candle:
    return Candle(ts(i), float(o), float(h), float(lo), float(c), float(v))


def closes_to_candles(closes: list[float], wick: float = 0.5, v: float = 100.0, start: int = 0) -> list[Candle]:
    """Candles that open at the previous close and have ``wick`` above/below the body."""
    out: list[Candle] = []
    prev = closes[0]
    for k, c in enumerate(closes):
        o = prev
        out.append(bar(start + k, o, max(o, c) + wick, min(o, c) - wick, c, v))
        prev = c
    return out


def flat(equity: float = 10_000.0, t: int = 0, **kw: object) -> AccountView:
    return AccountView(ts=t, equity=equity, **kw)  # type: ignore[arg-type]
