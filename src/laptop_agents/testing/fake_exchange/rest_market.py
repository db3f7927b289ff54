"""Public market REST endpoints of the fake exchange, as Bitunix documents them:
``{code, msg, data}`` envelopes with HTTP 200 for errors, klines newest first
with the 200-row cap and the forming row, percent funding, swapped volume
fields, a ``Date`` header in simulated time, and the per-IP request limit.

Private endpoints (orders, positions, account) will live in a sibling module
and be added to the route list by :func:`laptop_agents.testing.fake_exchange.app.build_app`.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.exchange import protocol
from laptop_agents.testing.fake_exchange.state import FakeExchange

Handler = Callable[[FakeExchange, Request], Awaitable[Response]]
_BLOCKING_FAULTS = ("http_status", "error_code", "slow")
_STATUS_TEXT = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                503: "Service Unavailable", 504: "Gateway Timeout"}


class _ParamError(LaptopAgentsError):
    pass


def date_header(ex: FakeExchange) -> dict[str, str]:
    """The HTTP Date in simulated time: clients read the exchange clock from it."""
    return {"date": email.utils.formatdate(ex.now_ms() / 1000.0, usegmt=True)}


def envelope(ex: FakeExchange, data: Any, code: int = 0, msg: str = "Success") -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg, "data": data}, headers=date_header(ex))


def _exchange(request: Request) -> FakeExchange:
    ex: FakeExchange = request.app.state.exchange
    return ex


def guarded(path: str, handler: Handler) -> Route:
    """A route that counts the request, enforces the rate limit and applies
    armed REST faults before the real handler runs."""

    async def endpoint(request: Request) -> Response:
        ex = _exchange(request)
        loop = asyncio.get_running_loop()
        client = request.client.host if request.client else "unknown"
        if not ex.note_rest(path, client, loop.time()):
            return envelope(ex, None, 10006, "Request too frequently")
        fault = ex.faults.take_rest_fault(path, _BLOCKING_FAULTS)
        if fault is not None:
            ex.stats["rest_faults"] += 1
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "http_status":
                status = int(fault.status or 500)
                headers = date_header(ex)
                if fault.retry_after is not None:
                    headers["retry-after"] = f"{fault.retry_after:g}"
                return PlainTextResponse(_STATUS_TEXT.get(status, "Error"), status_code=status, headers=headers)
            elif fault.kind == "error_code":
                return envelope(ex, None, int(fault.code or 10002), fault.msg or f"injected error {fault.code}")
        try:
            return await handler(ex, request)
        except _ParamError as exc:
            return envelope(ex, None, 10002, str(exc))

    return Route(path, endpoint, methods=["GET"])


def _int_param(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _ParamError(f"Parameter error: {name} must be an integer") from None


def _check_symbol(ex: FakeExchange, request: Request) -> JSONResponse | None:
    symbol = request.query_params.get("symbol")
    if not symbol:
        raise _ParamError("Parameter error: symbol is required")
    if symbol != ex.config.symbol:
        return envelope(ex, None, 20001, "Market does not exist")
    return None


async def kline(ex: FakeExchange, request: Request) -> Response:
    refused = _check_symbol(ex, request)
    if refused is not None:
        return refused
    interval = request.query_params.get("interval", "")
    if interval not in protocol.REST_INTERVALS.values():
        raise _ParamError(f"Parameter error: interval must be one of {', '.join(protocol.REST_INTERVALS.values())}")
    if interval != protocol.rest_interval(ex.config.interval):
        raise _ParamError(f"Parameter error: this fake exchange serves only interval {ex.config.interval}")
    limit = _int_param(request, "limit", protocol.KLINE_DEFAULT_LIMIT) or 0
    if limit < 1:
        raise _ParamError("Parameter error: limit must be >= 1")
    limit = min(limit, protocol.KLINE_MAX_LIMIT)
    start = _int_param(request, "startTime")
    end = _int_param(request, "endTime")
    now = ex.now_ms()
    market = ex.market
    iv = ex.interval_ms
    hi = market.index_at(now)
    if end is not None:
        hi = min(hi, (end - market.origin_ts) // iv)  # last open <= end
    lo = 0
    if start is not None and start > market.origin_ts:
        lo = -(-(start - market.origin_ts) // iv)  # first open >= start
    rows: list[dict[str, Any]] = []
    first = max(lo, hi - limit + 1, 0)
    # Generated oldest first (the synthetic market extends its cache forward
    # cheaply), sent newest first as Bitunix does.
    for i in range(first, hi + 1):
        c = ex.candle_at(i, now)
        rows.append({
            "open": ex.fmt(c.open, "open"),
            "high": ex.fmt(c.high, "high"),
            "low": ex.fmt(c.low, "low"),
            "close": ex.fmt(c.close, "close"),
            "time": c.ts,
            protocol.KLINE_BASE_VOLUME_FIELD: ex.fmt(c.volume, "quoteVol"),
            protocol.KLINE_QUOTE_VOLUME_FIELD: ex.fmt(round(c.volume * c.close, 4), "baseVol"),
            "type": request.query_params.get("type") or protocol.KLINE_PRICE_TYPE,
        })
    rows.reverse()
    fault = ex.faults.take_rest_fault(protocol.PATH_KLINE, ("rest_duplicate_rows", "rest_shuffle_rows"))
    if fault is not None and rows:
        ex.stats["rest_faults"] += 1
        if fault.kind == "rest_duplicate_rows":
            rows = [r for row in rows for r in (row, dict(row))][:limit]
        else:
            random.Random(ex.config.seed + len(rows)).shuffle(rows)
    return envelope(ex, rows)


def _wanted(request: Request, ex: FakeExchange) -> bool:
    raw = request.query_params.get("symbols")
    return not raw or ex.config.symbol in {s.strip() for s in raw.split(",")}


async def tickers(ex: FakeExchange, request: Request) -> Response:
    if not _wanted(request, ex):
        return envelope(ex, [])
    now = ex.now_ms()
    index = ex.market.index_at(now)
    last = ex.candle_at(index, now).close
    day_open, high, low, base_vol, quote_vol = ex.day_stats(index)
    return envelope(ex, [{
        "symbol": ex.config.symbol,
        "markPrice": ex.fmt(last, "markPrice"),
        "lastPrice": ex.fmt(last, "lastPrice"),
        "open": ex.fmt(day_open, "open"),
        "last": ex.fmt(last, "last"),
        protocol.KLINE_BASE_VOLUME_FIELD: ex.fmt(base_vol, "quoteVol"),
        protocol.KLINE_QUOTE_VOLUME_FIELD: ex.fmt(quote_vol, "baseVol"),
        "high": ex.fmt(max(high, last), "high"),
        "low": ex.fmt(min(low, last), "low"),
    }])


async def trading_pairs(ex: FakeExchange, request: Request) -> Response:
    if not _wanted(request, ex):
        return envelope(ex, [])
    quote_precision = max(0, round(-math.log10(ex.market.tick_size)))
    return envelope(ex, [{
        "symbol": ex.config.symbol,
        "base": "BTC",
        "quote": "USDT",
        "minTradeVolume": "0.0001",
        "minBuyPriceOffset": "-0.95",
        "maxSellPriceOffset": "100",
        "maxLimitOrderVolume": "500",
        "maxMarketOrderVolume": "100",
        "basePrecision": 4,
        "quotePrecision": quote_precision,
        "maxLeverage": 125,
        "minLeverage": 1,
        "defaultLeverage": 20,
        "defaultMarginMode": "CROSS",
        "symbolStatus": "OPEN",
    }])


async def funding_rate(ex: FakeExchange, request: Request) -> Response:
    refused = _check_symbol(ex, request)
    if refused is not None:
        return refused
    now = ex.now_ms()
    rate, _, next_ts = ex.funding(now)
    last = ex.candle_at(ex.market.index_at(now), now).close
    item = {
        "symbol": ex.config.symbol,
        "markPrice": ex.fmt(last, "markPrice"),
        "lastPrice": ex.fmt(last, "lastPrice"),
        "fundingRate": ex.fmt(protocol.funding_wire(rate), "fundingRate"),
        "fundingInterval": protocol.FUNDING_INTERVAL_H,
        "nextFundingTime": next_ts,
    }
    return envelope(ex, [item] if ex.config.funding_as_list else item)


def routes() -> list[Route]:
    return [
        guarded(protocol.PATH_KLINE, kline),
        guarded(protocol.PATH_TICKERS, tickers),
        guarded(protocol.PATH_TRADING_PAIRS, trading_pairs),
        guarded(protocol.PATH_FUNDING_RATE, funding_rate),
    ]
