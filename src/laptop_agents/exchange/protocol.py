"""Every Bitunix wire fact the client and the fake exchange rely on, in one place.

Source: ``docs/bitunix-protocol.md``. Facts marked (M) there were seen in
client code or live probes only, not in the official documentation; when one
turns out to be wrong, this module is the one to correct, and both the client
and the fake exchange follow (the fake imports the same constants, so a
correction here cannot leave the tests agreeing with a stale assumption on
one side only).
"""

from __future__ import annotations

from typing import Any

from laptop_agents.domain.models import DomainError
from laptop_agents.domain.timeframes import interval_ms, parse_interval

# -- base URLs (H) ------------------------------------------------------------
REST_BASE_URL = "https://fapi.bitunix.com"
WS_PUBLIC_URL = "wss://fapi.bitunix.com/public/"
WS_PRIVATE_URL = "wss://fapi.bitunix.com/private/"
WS_PUBLIC_PATH = "/public/"
WS_PRIVATE_PATH = "/private/"

# -- public REST paths (H) ----------------------------------------------------
PATH_KLINE = "/api/v1/futures/market/kline"
PATH_TICKERS = "/api/v1/futures/market/tickers"
PATH_DEPTH = "/api/v1/futures/market/depth"
PATH_FUNDING_RATE = "/api/v1/futures/market/funding_rate"
PATH_TRADING_PAIRS = "/api/v1/futures/market/trading_pairs"

# -- klines -------------------------------------------------------------------
KLINE_MAX_LIMIT = 200  # larger limits are silently capped (H)
KLINE_DEFAULT_LIMIT = 100  # (H)
KLINE_PRICE_TYPE = "LAST_PRICE"  # or MARK_PRICE (H)
# (M) rows arrive newest first and the newest row of an open-ended query is
# the still-forming candle. The client does not depend on the row order (it
# sorts), only on the forming-row rule.
KLINE_ROWS_NEWEST_FIRST = True
KLINE_NEWEST_ROW_IS_FORMING = True
# (M) the volume fields are swapped on the wire: ``quoteVol`` holds the base
# (BTC) amount and ``baseVol`` the quote (USDT) amount.
KLINE_BASE_VOLUME_FIELD = "quoteVol"
KLINE_QUOTE_VOLUME_FIELD = "baseVol"

# Canonical interval (domain/timeframes) -> REST name. 3m has no REST klines (H).
REST_INTERVALS: dict[str, str] = {
    "1m": "1m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "1h", "2h": "2h", "4h": "4h",
    "6h": "6h", "8h": "8h", "12h": "12h", "1d": "1d", "3d": "3d", "1w": "1w",
}
# Canonical interval -> websocket channel suffix: different names from REST (H).
WS_INTERVALS: dict[str, str] = {
    "1m": "1min", "3m": "3min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "60min",
    "2h": "2h", "4h": "4h", "6h": "6h", "8h": "8h", "12h": "12h", "1d": "1day", "3d": "3day",
    "1w": "1week",
}
WS_KLINE_PREFIX = "market_kline_"
WS_MARK_KLINE_PREFIX = "mark_kline_"
# (H) websocket kline data: b = base volume, q = quote volume (not swapped, as far as known).
WS_KLINE_BASE_VOLUME_FIELD = "b"
WS_KLINE_QUOTE_VOLUME_FIELD = "q"
WS_CHANNEL_TICKER = "ticker"
WS_CHANNEL_TICKERS = "tickers"
WS_CHANNEL_PRICE = "price"  # funding: {ip, mp, fr (percent), ft, nft}

# -- funding -----------------------------------------------------------------
# (M) ``fundingRate`` (REST) and ``fr`` (websocket) are percent: "0.01" = 0.0001.
FUNDING_RATE_IS_PERCENT = True
FUNDING_INTERVAL_H = 8

# -- websocket session rules ---------------------------------------------------
WS_PING_INTERVAL_S = 15.0  # the docs ask for 10-20 s (H)
WS_SERVER_PING_TIMEOUT_S = 60.0  # a socket that does not ping is closed after ~60-80 s (M)
WS_MAX_CLIENT_MSGS = 5  # client messages per window per connection, pings included (H)
WS_MSG_WINDOW_S = 1.0
WS_MAX_CHANNELS = 300  # per connection (H)

# -- rate limits (H) -----------------------------------------------------------
MARKET_REST_PER_S = 10  # market endpoints, per IP

# -- envelope error codes (H) --------------------------------------------------
CODE_OK = 0
CODES_PARAMETER = frozenset({10002, 10008})
CODES_AUTH = frozenset({10003, 10004, 10007})
CODES_RATE_LIMIT = frozenset({10005, 10006})
CODES_MARKET = frozenset({20001})
# Order/position rejections (insufficient balance, leverage, liquidation,
# quantity limits, reduce-only, duplicate client id...): used by live work.
CODES_TRADING = frozenset(
    {20003, 20005, 20006, 20007, 30001, 30002, 30003, 30013, 30016, 30017, 30018, 30019, 30039, 30042}
)
CODE_DUPLICATE_CLIENT_ID = 30042
CODE_ORDER_NOT_FOUND = 20007


class ProtocolError(DomainError):
    """A value the Bitunix protocol cannot express (e.g. 3m REST klines)."""


def rest_interval(interval: str) -> str:
    """The REST kline interval name for a canonical interval."""
    name = parse_interval(interval)
    try:
        return REST_INTERVALS[name]
    except KeyError:
        raise ProtocolError(
            f"interval {name!r} has no Bitunix REST klines: allowed are {', '.join(REST_INTERVALS)}"
        ) from None


def ws_interval(interval: str) -> str:
    """The websocket kline channel suffix for a canonical interval (1m -> 1min)."""
    return WS_INTERVALS[parse_interval(interval)]


def interval_from_ws(suffix: str) -> str:
    """Canonical interval of a websocket channel suffix (60min -> 1h)."""
    for canonical, name in WS_INTERVALS.items():
        if name == suffix:
            return canonical
    raise ProtocolError(f"unknown websocket kline interval {suffix!r}")


def kline_channel(interval: str) -> str:
    return WS_KLINE_PREFIX + ws_interval(interval)


def candle_open(ts: int, interval: str | int) -> int:
    """Open time of the candle containing ``ts``: pushes carry no start time (H/inferred).

    Epoch-aligned floor; for 1w this assumes Bitunix weeks start on the
    epoch's weekday (unknown: correct here if it is Monday-aligned).
    """
    ms = interval if isinstance(interval, int) else interval_ms(interval)
    return ts - ts % ms


def subscribe_message(symbol: str, channels: list[str], op: str = "subscribe") -> dict[str, Any]:
    return {"op": op, "args": [{"symbol": symbol, "ch": ch} for ch in channels]}


def ping_message(unix_s: int) -> dict[str, Any]:
    """Client heartbeat: a JSON ping with unix seconds; never protocol-level ping frames (M)."""
    return {"op": "ping", "ping": unix_s}


def pong_message(echo: Any, server_s: int) -> dict[str, Any]:
    return {"op": "ping", "pong": echo, "ping": server_s}


CONNECT_MESSAGE: dict[str, Any] = {"op": "connect", "data": {"result": True}}


def funding_fraction(raw_percent: float) -> float:
    """Wire funding value -> fraction per period (0.01 % -> 0.0001)."""
    value = raw_percent / 100.0 if FUNDING_RATE_IS_PERCENT else raw_percent
    # Round away the float noise of the division so equal wire values give equal rates.
    return round(value, 12)


def funding_wire(fraction: float) -> float:
    """Fraction -> wire value (used by the fake exchange)."""
    return round(fraction * 100.0, 10) if FUNDING_RATE_IS_PERCENT else fraction
