"""Parsing and validation of everything Bitunix sends: REST envelopes and
payloads, websocket pushes. Pure functions, no I/O, no clock.

Every wire number may be a JSON number or a string; both are accepted, and
nothing non-finite, boolean or malformed gets through. REST parsers raise
:class:`MalformedReplyError`; :func:`parse_push` raises only
:class:`BadFrameError` (a fuzz test holds it to that), because a bad frame
must be counted and reported, never crash the session.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from laptop_agents.domain.models import Candle, DomainError, FundingRate, Tick
from laptop_agents.exchange import protocol
from laptop_agents.exchange.errors import (
    BadFrameError,
    MalformedReplyError,
    error_for_code,
)

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_MAX_TS = 10**14  # year ~5100: anything larger is garbage, not a time
_SNIPPET = 120


def snippet(raw: str | bytes, limit: int = _SNIPPET) -> str:
    """A short printable excerpt of a frame or body for error messages."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[:limit] + "..."


# -- primitives ----------------------------------------------------------------
def number(value: Any, name: str, *, err: type[MalformedReplyError] = MalformedReplyError) -> float:
    """A finite float from a JSON number or numeric string."""
    if isinstance(value, bool) or value is None:
        raise err(f"{name}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        try:
            out = float(value)
        except OverflowError:
            raise err(f"{name}: number out of range") from None
    elif isinstance(value, str):
        if len(value) > 64 or not _NUMBER.fullmatch(value):
            raise err(f"{name}: expected a numeric string, got {snippet(value, 40)!r}")
        out = float(value)
    else:
        raise err(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(out):
        raise err(f"{name}: expected a finite number, got {snippet(str(value), 40)!r}")
    return out


def timestamp_ms(value: Any, name: str, *, err: type[MalformedReplyError] = MalformedReplyError) -> int:
    """An int UTC ms timestamp from an int, an integral float or a digit string."""
    if isinstance(value, bool) or value is None:
        raise err(f"{name}: expected a millisecond timestamp, got {value!r}")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        out = int(value)
    elif isinstance(value, str) and 0 < len(value) <= 16 and value.isascii() and value.isdigit():
        out = int(value)
    else:
        raise err(f"{name}: expected a millisecond timestamp, got {snippet(repr(value), 40)}")
    if not 0 < out < _MAX_TS:
        raise err(f"{name}: timestamp {out} is out of range")
    return out


def parse_json(raw: str | bytes, what: str, *, err: type[MalformedReplyError] = MalformedReplyError) -> Any:
    """JSON text -> value, every decoding failure as ``err``."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        return json.loads(text)
    except UnicodeDecodeError:
        raise err(f"{what}: not UTF-8 text") from None
    except RecursionError:
        raise err(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, int digit limits
        raise err(f"{what}: invalid JSON ({str(exc)[:60]}): {snippet(raw)!r}") from None


def _field(obj: Mapping[str, Any], key: str, what: str, err: type[MalformedReplyError]) -> Any:
    if key not in obj:
        raise err(f"{what}: missing field {key!r}")
    return obj[key]


# -- REST ---------------------------------------------------------------------
def unwrap_envelope(payload: Any, where: str, *, http_status: int | None = None) -> Any:
    """``{code, msg, data}`` -> data; a non-zero code raises its typed error.

    Bitunix sends errors with HTTP 200, so this runs on every reply."""
    if not isinstance(payload, dict) or "code" not in payload:
        raise MalformedReplyError(f"{where}: reply is not a {{code, msg, data}} envelope: {snippet(json.dumps(payload))!r}")
    code = payload["code"]
    if isinstance(code, str) and code.lstrip("-").isdigit():
        code = int(code)
    if isinstance(code, bool) or not isinstance(code, int):
        raise MalformedReplyError(f"{where}: envelope code is not an integer: {code!r}")
    if code != protocol.CODE_OK:
        msg = payload.get("msg")
        raise error_for_code(code, str(msg) if msg is not None else "", http_status=http_status, where=where)
    return payload.get("data")


def parse_kline_rows(data: Any, interval_ms: int) -> list[Candle]:
    """Kline rows in wire order (newest first on Bitunix), validated.

    The base (BTC) volume comes from the field named in
    :data:`protocol.KLINE_BASE_VOLUME_FIELD` (the wire swaps them)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise MalformedReplyError(f"kline: data must be a list of rows, got {type(data).__name__}")
    out: list[Candle] = []
    for i, row in enumerate(data):
        what = f"kline row {i}"
        if not isinstance(row, dict):
            raise MalformedReplyError(f"{what}: expected an object, got {type(row).__name__}")
        ts = timestamp_ms(_field(row, "time", what, MalformedReplyError), f"{what} time")
        if ts % interval_ms:
            raise MalformedReplyError(f"{what}: time {ts} is not aligned to the {interval_ms} ms interval")
        o, h, lo, c = (number(_field(row, k, what, MalformedReplyError), f"{what} {k}") for k in ("open", "high", "low", "close"))
        vol_raw = row.get(protocol.KLINE_BASE_VOLUME_FIELD, 0)
        vol = number(vol_raw, f"{what} {protocol.KLINE_BASE_VOLUME_FIELD}")
        try:
            out.append(Candle(ts, o, h, lo, c, vol))
        except DomainError as exc:
            raise MalformedReplyError(f"{what}: {exc}") from None
    return out


@dataclass(frozen=True, slots=True)
class TradingPair:
    symbol: str
    base: str
    quote: str
    min_qty: float
    base_precision: int
    quote_precision: int
    tick_size: float  # 10^-quotePrecision: the wire has no tickSize field
    qty_step: float  # 10^-basePrecision
    max_limit_qty: float | None
    max_market_qty: float | None
    min_leverage: int | None
    max_leverage: int | None
    default_leverage: int | None
    status: str


def _precision(value: Any, name: str) -> int:
    p = number(value, name)
    if not p.is_integer() or not 0 <= p <= 18:
        raise MalformedReplyError(f"{name}: precision must be an integer 0..18, got {value!r}")
    return int(p)


def _opt_number(row: Mapping[str, Any], key: str, what: str) -> float | None:
    value = row.get(key)
    return None if value is None or value == "" else number(value, f"{what} {key}")


def _opt_int(row: Mapping[str, Any], key: str, what: str) -> int | None:
    value = _opt_number(row, key, what)
    return None if value is None else int(value)


def parse_trading_pairs(data: Any) -> list[TradingPair]:
    if not isinstance(data, list):
        raise MalformedReplyError(f"trading_pairs: data must be a list, got {type(data).__name__}")
    out = []
    for i, row in enumerate(data):
        what = f"trading pair {i}"
        if not isinstance(row, dict):
            raise MalformedReplyError(f"{what}: expected an object")
        bp = _precision(_field(row, "basePrecision", what, MalformedReplyError), f"{what} basePrecision")
        qp = _precision(_field(row, "quotePrecision", what, MalformedReplyError), f"{what} quotePrecision")
        out.append(
            TradingPair(
                symbol=str(_field(row, "symbol", what, MalformedReplyError)),
                base=str(row.get("base", "")),
                quote=str(row.get("quote", "")),
                min_qty=number(_field(row, "minTradeVolume", what, MalformedReplyError), f"{what} minTradeVolume"),
                base_precision=bp,
                quote_precision=qp,
                tick_size=float(f"1e-{qp}"),
                qty_step=float(f"1e-{bp}"),
                max_limit_qty=_opt_number(row, "maxLimitOrderVolume", what),
                max_market_qty=_opt_number(row, "maxMarketOrderVolume", what),
                min_leverage=_opt_int(row, "minLeverage", what),
                max_leverage=_opt_int(row, "maxLeverage", what),
                default_leverage=_opt_int(row, "defaultLeverage", what),
                status=str(row.get("symbolStatus", "OPEN")),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class FundingInfo:
    symbol: str
    rate: float  # fraction per period (0.0001 = 0.01 %)
    mark_price: float | None
    last_price: float | None
    interval_h: float | None
    next_funding_ts: int | None


def parse_funding(data: Any) -> FundingInfo:
    """``data`` may be an object or a one-item list (M); the rate is in percent (M)."""
    if isinstance(data, list):
        if len(data) != 1:
            raise MalformedReplyError(f"funding_rate: expected one item, got {len(data)}")
        data = data[0]
    if not isinstance(data, dict):
        raise MalformedReplyError(f"funding_rate: data must be an object, got {type(data).__name__}")
    what = "funding_rate"
    rate = protocol.funding_fraction(number(_field(data, "fundingRate", what, MalformedReplyError), f"{what} fundingRate"))
    nft = data.get("nextFundingTime")
    return FundingInfo(
        symbol=str(data.get("symbol", "")),
        rate=rate,
        mark_price=_opt_number(data, "markPrice", what),
        last_price=_opt_number(data, "lastPrice", what),
        interval_h=_opt_number(data, "fundingInterval", what),
        next_funding_ts=None if nft in (None, "") else timestamp_ms(nft, f"{what} nextFundingTime"),
    )


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last: float
    mark: float | None
    open: float | None
    high: float | None
    low: float | None
    base_volume: float | None
    quote_volume: float | None


def parse_tickers(data: Any) -> list[Ticker]:
    if not isinstance(data, list):
        raise MalformedReplyError(f"tickers: data must be a list, got {type(data).__name__}")
    out = []
    for i, row in enumerate(data):
        what = f"ticker {i}"
        if not isinstance(row, dict):
            raise MalformedReplyError(f"{what}: expected an object")
        last = row.get("lastPrice", row.get("last"))
        out.append(
            Ticker(
                symbol=str(_field(row, "symbol", what, MalformedReplyError)),
                last=number(last, f"{what} lastPrice"),
                mark=_opt_number(row, "markPrice", what),
                open=_opt_number(row, "open", what),
                high=_opt_number(row, "high", what),
                low=_opt_number(row, "low", what),
                # Same swap as klines is assumed for tickers' volume fields (M).
                base_volume=_opt_number(row, protocol.KLINE_BASE_VOLUME_FIELD, what),
                quote_volume=_opt_number(row, protocol.KLINE_QUOTE_VOLUME_FIELD, what),
            )
        )
    return out


# -- websocket -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KlinePush:
    """One kline push: the forming candle as of ``ts`` (its open is derived)."""

    ts: int
    symbol: str
    interval: str
    candle: Candle


@dataclass(frozen=True, slots=True)
class TickerPush:
    ts: int
    symbol: str
    tick: Tick


@dataclass(frozen=True, slots=True)
class PricePush:
    """Funding channel: mark/index price and the funding rate (as a fraction)."""

    ts: int
    symbol: str
    mark_price: float | None
    index_price: float | None
    funding: FundingRate
    next_funding_ts: int | None


@dataclass(frozen=True, slots=True)
class Pong:
    echo: Any
    server_s: Any


@dataclass(frozen=True, slots=True)
class Connected:
    ok: bool


@dataclass(frozen=True, slots=True)
class ServerNotice:
    """An ``op`` message other than connect/pong (e.g. an error or an ack)."""

    op: str
    error: bool
    text: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed push on a channel this client does not use."""

    channel: str


WsMessage = KlinePush | TickerPush | PricePush | Pong | Connected | ServerNotice | Ignored


def is_heartbeat(raw: str | bytes) -> bool:
    """True for pongs and the connect message: traffic that is not market data
    and must not reset the idle timer. Cheap: no full validation."""
    if isinstance(raw, bytes | bytearray) or '"op"' not in raw:
        return False
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("op") in ("ping", "pong", "connect")


def _bad(msg: str) -> BadFrameError:
    return BadFrameError(msg)


def _num(obj: Mapping[str, Any], key: str, what: str) -> float:
    if key not in obj:
        raise _bad(f"{what}: missing field {key!r}")
    return number(obj[key], f"{what} {key}", err=BadFrameError)


def _opt_num(obj: Mapping[str, Any], key: str, what: str) -> float | None:
    value = obj.get(key)
    return None if value is None or value == "" else number(value, f"{what} {key}", err=BadFrameError)


def _parse_kline(channel: str, ts: int, symbol: str, data: Mapping[str, Any]) -> KlinePush:
    suffix = channel[len(protocol.WS_KLINE_PREFIX):]
    try:
        interval = protocol.interval_from_ws(suffix)
    except DomainError as exc:
        raise _bad(f"{channel}: {exc}") from None
    what = channel
    o, h, lo, c = (_num(data, k, what) for k in ("o", "h", "l", "c"))
    vol = _opt_num(data, protocol.WS_KLINE_BASE_VOLUME_FIELD, what) or 0.0
    try:
        candle = Candle(protocol.candle_open(ts, interval), o, h, lo, c, vol)
    except DomainError as exc:
        raise _bad(f"{what}: {exc}") from None
    return KlinePush(ts, symbol, interval, candle)


def _parse_ticker(channel: str, ts: int, symbol: str, data: Mapping[str, Any]) -> TickerPush:
    last = _num(data, "la", channel)
    bid = _opt_num(data, "bd", channel)
    ask = _opt_num(data, "ak", channel)
    try:
        tick = Tick(ts, bid if bid is not None else last, ask if ask is not None else last, last)
    except DomainError as exc:
        raise _bad(f"{channel}: {exc}") from None
    return TickerPush(ts, symbol, tick)


def _parse_price(channel: str, ts: int, symbol: str, data: Mapping[str, Any]) -> PricePush:
    rate = protocol.funding_fraction(_num(data, "fr", channel))
    nft = data.get("nft")
    try:
        funding = FundingRate(ts, rate)
    except DomainError as exc:
        raise _bad(f"{channel}: {exc}") from None
    mark = _opt_num(data, "mp", channel)
    index = _opt_num(data, "ip", channel)
    if (mark is not None and mark <= 0) or (index is not None and index <= 0):
        raise _bad(f"{channel}: mark/index price must be > 0")
    return PricePush(
        ts, symbol, mark, index, funding,
        None if nft in (None, "") else timestamp_ms(nft, f"{channel} nft", err=BadFrameError),
    )


def parse_push(raw: str | bytes) -> WsMessage:
    """Parse and validate one websocket frame. Raises only :class:`BadFrameError`."""
    obj = parse_json(raw, "websocket frame", err=BadFrameError)
    if not isinstance(obj, dict):
        raise _bad(f"websocket frame: expected an object, got {type(obj).__name__}: {snippet(raw)!r}")
    op = obj.get("op")
    if op is not None:
        if not isinstance(op, str):
            raise _bad(f"websocket frame: op must be a string, got {snippet(repr(op), 40)}")
        if op == "ping" and "pong" in obj:
            return Pong(obj.get("pong"), obj.get("ping"))
        if op == "connect":
            data = obj.get("data")
            ok = isinstance(data, dict) and data.get("result") is True
            return Connected(ok)
        code = obj.get("code")
        error = op == "error" or (isinstance(code, int | str) and str(code) not in ("0", ""))
        return ServerNotice(op, error, snippet(raw))
    channel = obj.get("ch")
    if not isinstance(channel, str) or not channel:
        if "code" in obj:
            return ServerNotice("code", str(obj.get("code")) != "0", snippet(raw))
        raise _bad(f"websocket frame: neither op nor ch: {snippet(raw)!r}")
    known = (
        channel.startswith(protocol.WS_KLINE_PREFIX)
        or channel in (protocol.WS_CHANNEL_TICKER, protocol.WS_CHANNEL_TICKERS, protocol.WS_CHANNEL_PRICE)
    )
    if not known:
        return Ignored(channel)
    ts = timestamp_ms(obj.get("ts"), f"{channel} ts", err=BadFrameError)
    symbol = obj.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise _bad(f"{channel}: missing symbol")
    data = obj.get("data")
    if not isinstance(data, dict):
        raise _bad(f"{channel}: data must be an object, got {type(data).__name__}")
    if channel.startswith(protocol.WS_KLINE_PREFIX):
        return _parse_kline(channel, ts, symbol, data)
    if channel == protocol.WS_CHANNEL_PRICE:
        return _parse_price(channel, ts, symbol, data)
    return _parse_ticker(channel, ts, symbol, data)
