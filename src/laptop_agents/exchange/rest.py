"""Async Bitunix REST client for the public market endpoints.

Each call: one slot of the shared :class:`RateLimitBudget`, one HTTP request,
the ``{code, msg, data}`` envelope checked (errors come with HTTP 200), then a
typed payload. Reads are idempotent and retried with jittered exponential
backoff on rate limits, transient failures and malformed replies; a rate
limit also blocks the shared budget so the websocket's reconnects back off
too. The ``transport`` hook lets a recorder (or a replay of a recording) sit
under the very same code path.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from laptop_agents.domain.models import Candle
from laptop_agents.domain.timeframes import interval_ms as interval_to_ms
from laptop_agents.exchange import protocol
from laptop_agents.exchange.errors import (
    ExchangeError,
    NotSentError,
    RateLimitedError,
    TransientError,
    error_for_code,
    error_for_status,
)
from laptop_agents.exchange.parsers import (
    FundingInfo,
    Ticker,
    TradingPair,
    parse_funding,
    parse_json,
    parse_kline_rows,
    parse_tickers,
    parse_trading_pairs,
    snippet,
    unwrap_envelope,
)
from laptop_agents.exchange.ratelimit import RateLimitBudget
from laptop_agents.logs import get_logger

# Recent retry waits kept for status and tests.
BACKOFF_HISTORY = 64

log = get_logger("exchange.rest")
Sleep = Callable[[float], Awaitable[None]]
# (query params as sent, body text) -> auth headers of one attempt
Signer = Callable[[Mapping[str, str], str], Mapping[str, str]]


def query_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """The query strings exactly as sent (and signed): no None or empty values
    (the official demo leaves empty values out of the signature), booleans as
    ``true``/``false`` (``str(True)`` would put ``True`` in the URL)."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if text != "":
            out[key] = text
    return out


@dataclass(frozen=True, slots=True)
class RestOptions:
    timeout_s: float = 10.0
    max_attempts: int = 4  # for idempotent reads; writes get exactly one
    backoff_base_s: float = 0.5
    backoff_max_s: float = 10.0
    rate_limit_penalty_s: float = 1.0  # when a rate-limit reply names no Retry-After


@dataclass(frozen=True, slots=True)
class KlinePage:
    """One kline reply: candles in wire order, the server's Date (ms, 1 s
    resolution) if it sent one, and whether the query was open-ended (no
    ``endTime``), in which case its newest row is the forming candle."""

    candles: tuple[Candle, ...]
    server_ms: int | None
    open_ended: bool
    limit: int


def closed_candles_of(page: KlinePage, interval_ms: int) -> list[Candle]:
    """The rows of ``page`` that are certainly closed.

    Drops the newest row of an open-ended query (it is still forming, M) and,
    when the server sent its time, any row whose close is after it."""
    rows = list(page.candles)
    if page.open_ended and protocol.KLINE_NEWEST_ROW_IS_FORMING and rows:
        newest = max(c.ts for c in rows)
        rows = [c for c in rows if c.ts != newest]
    if page.server_ms is not None:
        rows = [c for c in rows if c.ts + interval_ms <= page.server_ms]
    return rows


def _server_ms(headers: httpx.Headers) -> int | None:
    raw = headers.get("date")
    if not raw:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(raw).timestamp() * 1000)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _retry_after(headers: httpx.Headers) -> float | None:
    raw = headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ExchangeError) and exc.retryable


class BitunixRestClient:
    """Public market REST endpoints. ``budget`` is shared with the websocket
    client of the same source; ``sleep`` and ``rng`` are injectable so that a
    replay does not wait and tests can see the backoff."""

    def __init__(
        self,
        base_url: str = protocol.REST_BASE_URL,
        *,
        budget: RateLimitBudget | None = None,
        options: RestOptions | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.budget = budget or RateLimitBudget()
        self.options = options or RestOptions()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.options.timeout_s,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "btc-laptop-agents"},
        )
        self.requests = 0
        self.retries = 0
        self.errors = 0
        # recent retry waits, for status and tests (bounded: a month-long session)
        self.backoffs: deque[float] = deque(maxlen=BACKOFF_HISTORY)
        self.last_server_ms: int | None = None
        self.last_error: str | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> BitunixRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport -------------------------------------------------------------
    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        *,
        signer: Signer | None = None,
        body_text: str | None = None,
    ) -> tuple[Any, int | None]:
        await self.budget.acquire()
        self.requests += 1
        # Signed per attempt: a retried read gets a fresh nonce and timestamp.
        headers = dict(signer(params, body_text or "")) if signer is not None else None
        content = body_text.encode("utf-8") if body_text is not None else None
        try:
            resp = await self._http.request(method, path, params=params, headers=headers, content=content)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing was sent: a write certainly did nothing.
            raise NotSentError(f"{path}: not sent ({type(exc).__name__})") from None
        except httpx.TimeoutException as exc:
            raise TransientError(f"{path}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{path}: {type(exc).__name__}: {str(exc)[:100] or 'transport error'}") from None
        server_ms = _server_ms(resp.headers)
        if server_ms is not None:
            self.last_server_ms = server_ms
        body = resp.content
        status = resp.status_code
        if status >= 400:
            err: ExchangeError | None = None
            try:
                payload = parse_json(body, path)
            except ExchangeError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("code"), int) and payload["code"] != 0:
                err = error_for_code(payload["code"], str(payload.get("msg", "")), http_status=status, where=path)
            if status == 429 and not isinstance(err, RateLimitedError):
                err = error_for_status(429, snippet(body, 80), where=path, retry_after_s=_retry_after(resp.headers))
            if err is None:
                err = error_for_status(status, snippet(body, 80), where=path, retry_after_s=_retry_after(resp.headers))
            raise err
        payload = parse_json(body, path)
        return unwrap_envelope(payload, path, http_status=status), server_ms

    def _wait(self, state: RetryCallState) -> float:
        o = self.options
        exp = min(o.backoff_max_s, o.backoff_base_s * (2 ** (state.attempt_number - 1)))
        wait = exp * (0.5 + 0.5 * self._rng.random())
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimitedError):
            wait = max(wait, exc.retry_after_s if exc.retry_after_s is not None else o.rate_limit_penalty_s)
        return wait

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.upcoming_sleep
        self.retries += 1
        self.backoffs.append(wait)
        if isinstance(exc, RateLimitedError):
            self.budget.penalize(wait)
        log.warning("bitunix REST retry %d in %.2fs: %s", state.attempt_number, wait, exc)

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotent: bool = True,
        signer: Signer | None = None,
        body: str | None = None,
    ) -> tuple[Any, int | None]:
        """Envelope-checked ``data`` and the server time of the reply.

        Only ``idempotent`` calls are retried: an order placement must never be
        repeated blindly (its outcome is resolved by querying the client id).
        ``signer`` (private endpoints) gets the exact query strings and body
        text sent; ``body`` is sent byte for byte as given."""
        clean = query_params(params)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.options.max_attempts if idempotent else 1),
            retry=retry_if_exception(_is_retryable),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(method, path, clean, signer=signer, body_text=body)
        except ExchangeError as exc:
            self.errors += 1
            self.last_error = str(exc)
            raise
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    # -- endpoints ---------------------------------------------------------------
    async def kline_page(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = protocol.KLINE_MAX_LIMIT,
        price_type: str = protocol.KLINE_PRICE_TYPE,
    ) -> KlinePage:
        """One page of klines (at most 200 rows, the newest in the window)."""
        limit = max(1, min(protocol.KLINE_MAX_LIMIT, int(limit)))
        params = {
            "symbol": symbol,
            "interval": protocol.rest_interval(interval),
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
            "type": price_type,
        }
        data, server_ms = await self.request("GET", protocol.PATH_KLINE, params)
        candles = parse_kline_rows(data, interval_to_ms(interval))
        return KlinePage(tuple(candles), server_ms, end_ms is None, limit)

    async def closed_candles(self, symbol: str, interval: str, count: int) -> list[Candle]:
        """The latest ``count`` closed candles, oldest first (fewer if the
        history is shorter), paging backwards with ``endTime``."""
        if count <= 0:
            return []
        iv = interval_to_ms(interval)
        got: dict[int, Candle] = {}
        end: int | None = None
        for _ in range(count // protocol.KLINE_MAX_LIMIT + 4):
            need = count - len(got)
            if need <= 0:
                break
            page = await self.kline_page(symbol, interval, end_ms=end, limit=need + (1 if end is None else 0))
            if not page.candles:
                break
            for c in closed_candles_of(page, iv):
                got.setdefault(c.ts, c)
            oldest = min(c.ts for c in page.candles)
            if len(page.candles) < page.limit or (end is not None and oldest > end):
                break  # history exhausted, or the server ignored endTime
            end = oldest - 1
        return sorted(got.values(), key=lambda c: c.ts)[-count:]

    async def candles_between(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> list[Candle]:
        """Closed candles whose open time is in ``[start_ms, end_ms]``, oldest first."""
        if end_ms < start_ms:
            return []
        iv = interval_to_ms(interval)
        got: dict[int, Candle] = {}
        end = end_ms
        for _ in range((end_ms - start_ms) // iv // protocol.KLINE_MAX_LIMIT + 4):
            page = await self.kline_page(symbol, interval, start_ms=start_ms, end_ms=end)
            if not page.candles:
                break
            for c in closed_candles_of(page, iv):
                if start_ms <= c.ts <= end_ms:
                    got.setdefault(c.ts, c)
            oldest = min(c.ts for c in page.candles)
            if len(page.candles) < page.limit or oldest <= start_ms or oldest > end:
                break
            end = oldest - 1
        return sorted(got.values(), key=lambda c: c.ts)

    async def trading_pairs(self, symbols: list[str] | None = None) -> list[TradingPair]:
        data, _ = await self.request(
            "GET", protocol.PATH_TRADING_PAIRS, {"symbols": ",".join(symbols) if symbols else None}
        )
        return parse_trading_pairs(data)

    async def trading_pair(self, symbol: str) -> TradingPair:
        for pair in await self.trading_pairs([symbol]):
            if pair.symbol == symbol:
                return pair
        raise ExchangeError(f"trading_pairs: {symbol} is not listed")

    async def funding_rate(self, symbol: str) -> FundingInfo:
        data, _ = await self.request("GET", protocol.PATH_FUNDING_RATE, {"symbol": symbol})
        return parse_funding(data)

    async def tickers(self, symbols: list[str] | None = None) -> list[Ticker]:
        data, _ = await self.request("GET", protocol.PATH_TICKERS, {"symbols": ",".join(symbols) if symbols else None})
        return parse_tickers(data)

    async def server_time_ms(self, symbol: str = "BTCUSDT") -> int | None:
        """The exchange's clock from the HTTP Date header (there is no time endpoint)."""
        _, server_ms = await self.request("GET", protocol.PATH_TICKERS, {"symbols": symbol})
        return server_ms
