"""Plain data shared by every layer: candles, ticks, funding, orders, fills
(events are in :mod:`laptop_agents.domain.events`).

Time is always an ``int`` of UTC milliseconds. Nothing here reads the clock or
does I/O; validation happens in constructors so that a bad value is rejected at
the edge where it enters, with a message naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from laptop_agents.domain.errors import LaptopAgentsError


class DomainError(LaptopAgentsError, ValueError):
    """A value that violates a domain invariant (bad candle, bad order...)."""


class Side(StrEnum):
    """Order side. Position direction is the sign of the position quantity."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class ContractKind(StrEnum):
    """Linear contracts are margined and settled in USDT; inverse ones in BTC."""

    LINEAR = "linear"
    INVERSE = "inverse"


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise DomainError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar; ``ts`` is its open time in UTC ms.

    Validated on construction because every indicator downstream assumes
    finite prices and ``low <= open/close <= high``; a bad bar must be
    rejected where it enters, not discovered as a NaN equity curve later.
    """

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def __post_init__(self) -> None:
        if not isinstance(self.ts, int) or isinstance(self.ts, bool):
            raise DomainError(f"candle ts must be int UTC milliseconds, got {self.ts!r}")
        o, h, lo, c, v = self.open, self.high, self.low, self.close, self.volume
        # One combined fast check; the slow path only names the culprit.
        if not (
            math.isfinite(o + h + lo + c + v)
            and lo <= o <= h
            and lo <= c <= h
            and v >= 0.0
            and lo > 0.0
        ):
            for name in ("open", "high", "low", "close", "volume"):
                _finite(f"candle {name}", getattr(self, name))
            if lo <= 0.0:
                raise DomainError(f"candle at {self.ts}: low must be > 0, got {lo}")
            if not (lo <= o <= h and lo <= c <= h):
                raise DomainError(
                    f"candle at {self.ts}: need low <= open/close <= high, got o={o} h={h} l={lo} c={c}"
                )
            raise DomainError(f"candle at {self.ts}: volume must be >= 0, got {v}")


@dataclass(frozen=True, slots=True)
class Tick:
    """Best bid/ask (and last) at event time ``ts``."""

    ts: int
    bid: float
    ask: float
    last: float

    def __post_init__(self) -> None:
        for name in ("bid", "ask", "last"):
            _finite(f"tick {name}", getattr(self, name))
        if self.bid <= 0 or self.ask <= 0 or self.bid > self.ask:
            raise DomainError(f"tick at {self.ts}: need 0 < bid <= ask, got bid={self.bid} ask={self.ask}")


@dataclass(frozen=True, slots=True)
class FundingRate:
    """Funding rate as a *fraction* per 8 h (0.0001 = 0.01 %), observed at ``ts``."""

    ts: int
    rate: float

    def __post_init__(self) -> None:
        _finite("funding rate", self.rate)
        if abs(self.rate) > 0.05:
            raise DomainError(f"funding rate {self.rate} is outside +/-0.05 (expected a fraction, not percent)")


@dataclass(frozen=True, slots=True)
class Instrument:
    """Contract specification: what the broker needs to size, round and price PnL."""

    symbol: str
    kind: ContractKind
    tick_size: float
    qty_step: float
    min_qty: float
    min_notional: float
    # For inverse contracts, the USD face value of one contract.
    contract_size: float = 1.0


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy asks the broker to do: open or reverse a position.

    ``stop`` and ``target`` are attached protective prices (bracket). ``qty`` is
    in base units (BTC) for linear contracts and in contracts for inverse.
    ``client_id`` must be deterministic (derived from event time and strategy
    state) so that a replay produces the same ids and the broker can refuse a
    repeated one.
    """

    client_id: str
    side: Side
    type: OrderType
    qty: float
    price: float | None = None
    stop: float | None = None
    target: float | None = None
    trailing: bool = False
    reduce_only: bool = False
    reason: str = ""
    # Event time after which an unfilled working order expires (None = broker default).
    expire_ts: int | None = None

    def __post_init__(self) -> None:
        _finite("order qty", self.qty)
        if self.qty <= 0:
            raise DomainError(f"order {self.client_id}: qty must be > 0, got {self.qty}")
        if self.type is OrderType.LIMIT and (self.price is None or not self.price > 0):
            raise DomainError(f"order {self.client_id}: a LIMIT order needs a positive price")
        if not self.client_id:
            raise DomainError("order client_id must not be empty")


@dataclass(frozen=True, slots=True)
class CancelIntent:
    """Cancel a working order by client id (e.g. a pending trigger that expired)."""

    client_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. ``fee`` is positive when paid; in quote currency (USDT) for
    linear contracts and in BTC for inverse."""

    ts: int
    client_id: str
    side: Side
    qty: float
    price: float
    fee: float
    liquidity: str  # "maker" | "taker"
    reason: str = ""  # entry | stop | target | trailing_stop | flatten | reverse ...
