"""Async client of the signed Bitunix REST endpoints: orders, positions, account.

Built on :class:`BitunixRestClient` (one transport, one envelope check, one
retry policy, one rate budget shared with the public client of the same
source), adding the signature and the rules for writes:

- **Reads** (order detail, open orders, history, positions, balance,
  leverage) and idempotent settings (set leverage / margin mode to a value)
  are retried with jittered backoff on rate limits and transient failures.
- **Placements and cancels are sent exactly once.** A definite refusal
  raises its typed error (nothing happened). A request that certainly never
  left raises :class:`NotSentError`. Anything else -- timeout, 5xx, dropped
  connection, unreadable reply, unknown code -- raises :class:`UnknownOutcome`
  with the client id: the caller resolves it with :meth:`resolve_by_client_id`,
  never by sending again.

Per-UID limits (10/s, cancels 5/s) are kept by a private limiter on top of
the shared per-IP budget. Keys and signatures never appear in an exception,
a log line or a repr.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from laptop_agents.exchange import protocol
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.errors import (
    AuthError,
    DuplicateClientIdError,
    ExchangeError,
    MalformedReplyError,
    MarketError,
    NotSentError,
    OrderNotFoundError,
    ParameterError,
    RateLimitedError,
    TradingError,
    UnknownOutcome,
    UnresolvedOrderError,
)
from laptop_agents.exchange.private_models import (
    Balance,
    CancelResult,
    LeverageMarginMode,
    Order,
    OrderAck,
    OrderRequest,
    Position,
    Trade,
    object_list,
    one_object,
    parse_model,
)
from laptop_agents.exchange.ratelimit import RateLimitBudget, SlidingWindowLimiter
from laptop_agents.exchange.rest import BitunixRestClient, RestOptions
from laptop_agents.exchange.signing import compact_json
from laptop_agents.logs import get_logger
from laptop_agents.wallclock import now_ms

log = get_logger("exchange.private")
Sleep = Callable[[float], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)



class NotPlaced(Enum):
    """:meth:`BitunixPrivateClient.resolve_by_client_id`: no order with that id exists."""

    NOT_PLACED = "not_placed"


NOT_PLACED = NotPlaced.NOT_PLACED

# Refusals: the exchange read the write and did nothing (or it never left).
_DEFINITE: tuple[type[ExchangeError], ...] = (AuthError, ParameterError, MarketError, TradingError, NotSentError) + (
    (RateLimitedError,) if pp.RATE_LIMITED_WRITE_NOT_EXECUTED else ()
)


@dataclass(frozen=True, slots=True)
class PrivateRestOptions:
    rest: RestOptions = RestOptions(timeout_s=10.0)
    per_uid_per_s: int = pp.PRIVATE_REST_PER_S
    cancel_per_s: int = pp.CANCEL_PER_S
    limit_margin_s: float = 0.1
    page_size: int = pp.PAGE_MAX_LIMIT
    max_pages: int = 100  # a history query stops there (and says so in the log)
    resolve_attempts: int = 6
    resolve_interval_s: float = 1.0
    resolve_not_found_confirmations: int = 2  # consecutive "not found" answers before concluding
    margin_coin: str = pp.MARGIN_COIN


class BitunixPrivateClient:
    """Signed REST client. ``budget`` should be the public client's budget (one
    per-IP window for both); ``clock_ms`` is the wall clock used in signatures,
    ``clock_offset_ms`` corrects a known skew against the exchange."""

    def __init__(
        self,
        credentials: ApiCredentials,
        base_url: str = protocol.REST_BASE_URL,
        *,
        budget: RateLimitBudget | None = None,
        options: PrivateRestOptions | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._creds = credentials
        self.options = options or PrivateRestOptions()
        self._rest = BitunixRestClient(
            base_url, budget=budget, options=self.options.rest, transport=transport, sleep=sleep, rng=rng
        )
        o = self.options
        self._uid_limiter = SlidingWindowLimiter(o.per_uid_per_s, 1.0 + o.limit_margin_s, sleep=sleep)
        self._cancel_limiter = SlidingWindowLimiter(o.cancel_per_s, 1.0 + o.limit_margin_s, sleep=sleep)
        self._sleep = sleep
        self._clock = clock_ms
        self.clock_offset_ms = 0
        self.unknown_outcomes = 0
        self.placed = 0
        self.rejected = 0

    def __repr__(self) -> str:
        return f"BitunixPrivateClient(base_url={self._rest.base_url!r})"

    @property
    def budget(self) -> RateLimitBudget:
        return self._rest.budget

    @property
    def rest(self) -> BitunixRestClient:
        """The underlying transport (request counters, last server time)."""
        return self._rest

    async def aclose(self) -> None:
        await self._rest.aclose()

    async def __aenter__(self) -> BitunixPrivateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport --------------------------------------------------------------------------
    def _sign(self, params: Mapping[str, str], body: str) -> Mapping[str, str]:
        return self._creds.rest_headers(self._clock() + self.clock_offset_ms, params, body)

    async def _limit(self, path: str) -> None:
        await self._uid_limiter.acquire()
        if path in pp.CANCEL_LIMITED_PATHS_ASSUMED:
            await self._cancel_limiter.acquire()

    async def _read(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        await self._limit(path)
        data, _ = await self._rest.request("GET", path, params, signer=self._sign)
        return data

    async def _setting(self, path: str, body: Mapping[str, Any]) -> Any:
        """An idempotent POST (set X to a value): safe to retry."""
        await self._limit(path)
        data, _ = await self._rest.request("POST", path, None, signer=self._sign, body=compact_json(dict(body)))
        return data

    async def _write_once(self, path: str, body: Mapping[str, Any], *, action: str,
                          client_id: str | None = None, order_id: str | None = None) -> Any:
        """A non-idempotent POST: one attempt; every non-definite failure is an unknown outcome."""
        await self._limit(path)
        try:
            data, _ = await self._rest.request(
                "POST", path, None, idempotent=False, signer=self._sign, body=compact_json(dict(body))
            )
        except _DEFINITE:
            self.rejected += 1
            raise
        except ExchangeError as exc:  # transient, malformed, unknown code
            raise self._unknown(action, exc, client_id=client_id, order_id=order_id) from None
        return data

    def _unknown(self, action: str, exc: ExchangeError, *, client_id: str | None = None,
                 order_id: str | None = None) -> UnknownOutcome:
        self.unknown_outcomes += 1
        who = f" client id {client_id}" if client_id else (f" order {order_id}" if order_id else "")
        log.warning("bitunix %s%s: outcome unknown: %s", action, who, exc)
        return UnknownOutcome(
            f"{action}{who}: outcome unknown ({exc}); resolve by querying, never resend",
            action=action, client_id=client_id, order_id=order_id, code=exc.code, http_status=exc.http_status,
        )

    # -- orders ---------------------------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> OrderAck:
        """Send one order, once. See the module docstring for what each failure means.

        A duplicate client id raises :class:`DuplicateClientIdError` (an order
        with that id exists: look it up)."""
        try:
            data = await self._write_once(
                pp.PATH_PLACE_ORDER, request.to_wire(), action="place", client_id=request.client_id
            )
        except DuplicateClientIdError as exc:
            exc.client_id = request.client_id
            raise
        try:
            ack = parse_model(OrderAck, one_object(data, "place_order"), "place_order")
        except MalformedReplyError as exc:  # code 0 said "done", but we cannot read what
            raise self._unknown("place", exc, client_id=request.client_id) from None
        if ack.client_id is None and request.client_id is not None:
            ack = ack.model_copy(update={"client_id": request.client_id})
        self.placed += 1
        return ack

    async def cancel_orders(
        self, symbol: str, *, order_ids: tuple[str, ...] | list[str] = (), client_ids: tuple[str, ...] | list[str] = ()
    ) -> CancelResult:
        """Ask to cancel orders (sent once). A success item does not prove the
        cancel happened (H): confirm from the order push or a query."""
        items = [{"orderId": oid} for oid in order_ids] + [{"clientId": cid} for cid in client_ids]
        if not items:
            raise ValueError("cancel_orders needs at least one order id or client id")
        first_cid = next(iter(client_ids), None)
        first_oid = next(iter(order_ids), None)
        data = await self._write_once(pp.PATH_CANCEL_ORDERS, {"symbol": symbol, "orderList": items},
                                      action="cancel", client_id=first_cid, order_id=first_oid)
        try:
            return parse_model(CancelResult, one_object(data or {}, "cancel_orders"), "cancel_orders")
        except MalformedReplyError as exc:
            raise self._unknown("cancel", exc, client_id=first_cid, order_id=first_oid) from None

    async def cancel_order(self, symbol: str, *, order_id: str | None = None, client_id: str | None = None) -> CancelResult:
        if (order_id is None) == (client_id is None):
            raise ValueError("cancel_order needs exactly one of order_id and client_id")
        return await self.cancel_orders(
            symbol, order_ids=[order_id] if order_id else [], client_ids=[client_id] if client_id else []
        )

    async def cancel_all_orders(self, symbol: str) -> CancelResult:
        data = await self._write_once(pp.PATH_CANCEL_ALL_ORDERS, {"symbol": symbol}, action="cancel_all")
        if data is None or data == [] or data == {}:
            return CancelResult()  # reply shape undocumented: an empty one means nothing to report
        try:
            return parse_model(CancelResult, one_object(data, "cancel_all_orders"), "cancel_all_orders")
        except MalformedReplyError as exc:
            raise self._unknown("cancel_all", exc) from None

    async def order_detail(self, *, order_id: str | None = None, client_id: str | None = None) -> Order:
        """One order by id or client id; :class:`OrderNotFoundError` when the exchange does not know it (yet)."""
        if order_id is None and client_id is None:
            raise ValueError("order_detail needs order_id or client_id")
        data = await self._read(pp.PATH_ORDER_DETAIL, {"orderId": order_id, "clientId": client_id})
        if data is None or data == [] or data == {}:
            raise OrderNotFoundError(f"{pp.PATH_ORDER_DETAIL}: empty reply for the order", code=pp.CODE_ORDER_NOT_FOUND)
        return parse_model(Order, one_object(data, "order detail"), "order detail")

    async def _paged(self, path: str, params: Mapping[str, Any], list_key: str, model: type[M]) -> list[M]:
        size = max(1, min(pp.PAGE_MAX_LIMIT, self.options.page_size))
        out: list[M] = []
        for page in range(self.options.max_pages):
            data = await self._read(path, {**params, "skip": page * size, "limit": size})
            rows = object_list(data.get(list_key) if isinstance(data, Mapping) else data, path)
            out.extend(parse_model(model, row, f"{path} row") for row in rows)
            if len(rows) < size:
                return out
        log.warning("bitunix %s: stopped after %d pages of %d", path, self.options.max_pages, size)
        return out

    async def open_orders(self, symbol: str | None = None, *, client_id: str | None = None) -> list[Order]:
        """Every open order (all pages: the server default page is only 10)."""
        return await self._paged(pp.PATH_PENDING_ORDERS, {"symbol": symbol, "clientId": client_id}, "orderList", Order)

    async def order_history(
        self,
        symbol: str | None = None,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        client_id: str | None = None,
        order_id: str | None = None,
    ) -> list[Order]:
        """Finished orders created in ``[since_ms, until_ms]`` (all pages)."""
        params = {"symbol": symbol, "startTime": since_ms, "endTime": until_ms, "clientId": client_id,
                  "orderId": order_id}
        return await self._paged(pp.PATH_HISTORY_ORDERS, params, "orderList", Order)

    async def trade_history(self, symbol: str | None = None, *, since_ms: int | None = None,
                            until_ms: int | None = None, order_id: str | None = None) -> list[Trade]:
        params = {"symbol": symbol, "startTime": since_ms, "endTime": until_ms, "orderId": order_id}
        return await self._paged(pp.PATH_HISTORY_TRADES, params, "tradeList", Trade)

    async def find_order(self, *, client_id: str, symbol: str | None = None) -> Order | None:
        """The order with this client id, wherever it is: detail, then open
        orders, then history (H: detail may not find closed orders by client id)."""
        try:
            return await self.order_detail(client_id=client_id)
        except OrderNotFoundError:
            pass
        for rows in (await self.open_orders(symbol, client_id=client_id),
                     await self.order_history(symbol, client_id=client_id)):
            for order in rows:
                if order.client_id == client_id:
                    return order
        return None

    async def resolve_by_client_id(
        self,
        client_id: str,
        *,
        symbol: str | None = None,
        attempts: int | None = None,
        interval_s: float | None = None,
        not_found_confirmations: int | None = None,
    ) -> Order | NotPlaced:
        """Settle an :class:`UnknownOutcome` placement: the order, or
        :data:`NOT_PLACED` once ``not_found_confirmations`` consecutive lookups
        (``interval_s`` apart: the record can lag) found nothing. Raises
        :class:`UnresolvedOrderError` when ``attempts`` lookups did not settle it
        (the exchange kept failing): the caller must stop, not resend."""
        o = self.options
        attempts = o.resolve_attempts if attempts is None else attempts
        interval = o.resolve_interval_s if interval_s is None else interval_s
        confirmations = max(1, o.resolve_not_found_confirmations if not_found_confirmations is None
                            else not_found_confirmations)
        misses = 0
        last_error: str | None = None
        for attempt in range(1, max(1, attempts) + 1):
            try:
                order = await self.find_order(client_id=client_id, symbol=symbol)
            except ExchangeError as exc:
                misses = 0  # a failed lookup proves nothing
                last_error = f"{exc.kind}: {exc}"
                log.warning("resolving client id %s: lookup %d failed: %s", client_id, attempt, exc)
            else:
                if order is not None:
                    return order
                misses += 1
                if misses >= confirmations:
                    return NOT_PLACED
            if attempt < attempts:
                await self._sleep(interval)
        why = f"last error: {last_error}" if last_error else f"only {misses} of {confirmations} not-found answers"
        raise UnresolvedOrderError(
            f"order with client id {client_id} is unresolved after {attempts} lookups ({why})",
            client_id=client_id, attempts=attempts,
        )

    # -- positions and account ------------------------------------------------------------------------
    async def positions(self, symbol: str | None = None) -> list[Position]:
        data = await self._read(pp.PATH_PENDING_POSITIONS, {"symbol": symbol})
        rows = object_list(data, "positions")
        return [parse_model(Position, row, "position") for row in rows]

    async def balance(self, margin_coin: str | None = None) -> Balance:
        coin = margin_coin or self.options.margin_coin
        data = await self._read(pp.PATH_ACCOUNT, {"marginCoin": coin})
        return parse_model(Balance, one_object(data, "account"), "account")

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        if leverage < 1:
            raise ValueError("leverage must be >= 1")
        await self._setting(pp.PATH_CHANGE_LEVERAGE,
                            {"symbol": symbol, "marginCoin": self.options.margin_coin, "leverage": int(leverage)})

    async def set_margin_mode(self, symbol: str, margin_mode: str) -> None:
        mode = margin_mode.upper()
        if mode not in pp.MARGIN_MODES:
            raise ValueError(f"margin mode must be one of {', '.join(pp.MARGIN_MODES)}, got {margin_mode!r}")
        await self._setting(pp.PATH_CHANGE_MARGIN_MODE,
                            {"symbol": symbol, "marginCoin": self.options.margin_coin, "marginMode": mode})

    async def leverage_margin_mode(self, symbol: str) -> LeverageMarginMode:
        data = await self._read(pp.PATH_LEVERAGE_MARGIN_MODE, {"symbol": symbol, "marginCoin": self.options.margin_coin})
        return parse_model(LeverageMarginMode, one_object(data, "leverage/margin mode"), "leverage/margin mode")


def is_definite_refusal(exc: BaseException) -> bool:
    """True when a failed write certainly did nothing on the exchange."""
    return isinstance(exc, _DEFINITE) and not isinstance(exc, UnknownOutcome)


__all__ = ["NOT_PLACED", "BitunixPrivateClient", "NotPlaced", "PrivateRestOptions", "is_definite_refusal"]
