"""Signed private REST endpoints of the fake exchange (orders, positions, account).

Each request: counted, authenticated (``auth.py``: bad signature, stale
timestamp, reused nonce refused with the documented codes), held to the
per-account limits (10/s, cancels 5/s -> 10006), exposed to the armed REST
faults (HTTP status, envelope code, slow) like the public routes, then the
book is advanced to "now" and the handler runs. Private faults act inside
the handlers, where "accepted, then the reply failed" can be told apart from
"refused": ``place_timeout``, ``cancel_5xx``, ``reject_order``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from laptop_agents.exchange import protocol_private as pp
from laptop_agents.testing.fake_exchange.rest_market import date_header, envelope
from laptop_agents.testing.fake_exchange.state import FakeExchange
from laptop_agents.testing.fake_exchange.trading import FAccount, FOrder, OrderRefused, TradingBook, num_text

Handler = Callable[[FakeExchange, TradingBook, FAccount, "Call"], Awaitable[Response]]
_BLOCKING_FAULTS = ("http_status", "error_code", "slow")


class Call:
    """The parsed request a handler sees: query parameters and the JSON body."""

    def __init__(self, request: Request, query: dict[str, str], body: Any) -> None:
        self.request = request
        self.query = query
        self.body = body

    def q(self, name: str) -> str | None:
        value = self.query.get(name)
        return value if value not in (None, "") else None

    def q_int(self, name: str, default: int | None = None) -> int | None:
        raw = self.q(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: {name} must be an integer") from None

    def b(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


def _book(ex: FakeExchange) -> TradingBook:
    return ex.trading


def private_route(path: str, handler: Handler, method: str) -> Route:
    async def endpoint(request: Request) -> Response:
        ex: FakeExchange = request.app.state.exchange
        book = _book(ex)
        loop = asyncio.get_running_loop()
        reqs = ex.stats["rest_requests"]
        reqs[path] = reqs.get(path, 0) + 1
        raw = await request.body() if method == "POST" else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return envelope(ex, None, pp.CODE_PARAMETER, "Parameter error: body is not UTF-8")
        query = dict(request.query_params.multi_items())
        result = ex.auth.check_rest(request.headers, query, text)
        if result.account is None:
            ex.stats["private_auth_rejected"] = ex.stats.get("private_auth_rejected", 0) + 1
            return envelope(ex, None, result.code, result.msg)
        uid = result.account.uid
        if not book.note_request(uid, path, loop.time()):
            ex.stats["private_rate_limited"] = ex.stats.get("private_rate_limited", 0) + 1
            return envelope(ex, None, pp.CODE_TOO_FREQUENT, "Request too frequently")
        fault = ex.faults.take_rest_fault(path, _BLOCKING_FAULTS)
        if fault is not None:
            ex.stats["rest_faults"] += 1
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "http_status":
                return PlainTextResponse("Error", status_code=int(fault.status or 500), headers=date_header(ex))
            elif fault.kind == "error_code":
                return envelope(ex, None, int(fault.code or pp.CODE_PARAMETER), fault.msg or f"injected error {fault.code}")
        body: Any = None
        if method == "POST":
            try:
                body = json.loads(text) if text else None
            except ValueError:
                return envelope(ex, None, pp.CODE_PARAMETER, "Parameter error: body is not JSON")
            if not isinstance(body, dict):
                return envelope(ex, None, pp.CODE_PARAMETER, "Parameter error: body must be a JSON object")
        book.advance()
        try:
            return await handler(ex, book, book.accounts[uid], Call(request, query, body))
        except OrderRefused as exc:
            return envelope(ex, None, exc.code, exc.msg)

    return Route(path, endpoint, methods=[method])


def _symbol(book: TradingBook, value: Any, required: bool = True) -> str | None:
    if value in (None, ""):
        if required:
            raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: symbol is required")
        return None
    if value != book.symbol:
        raise OrderRefused(pp.CODE_MARKET_NOT_EXISTS, "Market not exists")
    return str(value)


def _as_data(book: TradingBook, obj: Any) -> Any:
    """The docs wrap several objects in a one-item list; the wire does not (M)."""
    return [obj] if book.config.shapes == "doc" else obj


# -- orders ---------------------------------------------------------------------------------
async def place_order(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    uid = acct.cfg.uid
    timeout = ex.faults.take_private("place_timeout", uid)
    if timeout is not None and not timeout.accepted:
        book.record("fault", uid, fault="place_timeout", accepted=False, client_id=call.b("clientId"))
        await asyncio.sleep(timeout.seconds)
        return envelope(ex, None, pp.CODE_NETWORK_ERROR, "Network Error")
    try:
        order = book.place(uid, call.body)
    except OrderRefused as exc:
        book.stats["orders_rejected"] += 1
        book.record("rejected", uid, client_id=call.b("clientId"), code=exc.code, reason=exc.msg)
        if timeout is not None:  # the fault is used up here too: the refusal's reply is the one lost
            book.record("fault", uid, fault="place_timeout", accepted=False, refused=exc.code,
                        client_id=call.b("clientId"))
            await asyncio.sleep(timeout.seconds)
        raise
    if timeout is not None:
        book.record("fault", uid, fault="place_timeout", accepted=True, order_id=order.order_id,
                     client_id=order.client_id)
        await asyncio.sleep(timeout.seconds)
    return envelope(ex, {"orderId": order.order_id, "clientId": order.client_id})


def _order_list(call: Call) -> list[Any]:
    items = call.b("orderList")
    if not isinstance(items, list) or not items:
        raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: orderList is required")
    return items


async def _cancel_with_faults(ex: FakeExchange, book: TradingBook, acct: FAccount,
                              run: Callable[[], dict[str, Any]]) -> Response:
    fault = ex.faults.take_private("cancel_5xx", acct.cfg.uid)
    if fault is not None and not fault.accepted:
        book.record("fault", acct.cfg.uid, fault="cancel_5xx", accepted=False)
        return PlainTextResponse("Bad Gateway", status_code=int(fault.status or 502), headers=date_header(ex))
    result = run()
    if fault is not None:
        book.record("fault", acct.cfg.uid, fault="cancel_5xx", accepted=True,
                     cancelled=[i["orderId"] for i in result["successList"]])
        return PlainTextResponse("Bad Gateway", status_code=int(fault.status or 502), headers=date_header(ex))
    return envelope(ex, result)


async def cancel_orders(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    symbol = _symbol(book, call.b("symbol"))
    assert symbol is not None
    items = _order_list(call)
    return await _cancel_with_faults(ex, book, acct, lambda: book.cancel(acct.cfg.uid, symbol, items))


async def cancel_all_orders(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    symbol = _symbol(book, call.b("symbol"))
    assert symbol is not None
    return await _cancel_with_faults(ex, book, acct, lambda: book.cancel_all(acct.cfg.uid, symbol))


def _find(acct: FAccount, call: Call) -> FOrder | None:
    oid = call.q("orderId")
    cid = call.q("clientId")
    if oid is not None:
        return acct.orders.get(oid)
    if cid is not None:
        found = acct.client_ids.get(cid)
        return acct.orders.get(found) if found else None
    raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: orderId or clientId is required")


async def order_detail(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    order = _find(acct, call)
    if order is None:
        return envelope(ex, None, pp.CODE_ORDER_NOT_FOUND, "Order not found, please try it later")
    return envelope(ex, book.order_rest(order))


def _page(book: TradingBook, call: Call, rows: list[FOrder] | list[dict[str, Any]]) -> tuple[list[Any], int]:
    skip = call.q_int("skip", 0) or 0
    limit = call.q_int("limit", pp.PAGE_DEFAULT_LIMIT) or pp.PAGE_DEFAULT_LIMIT
    if skip < 0 or limit < 1:
        raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: skip >= 0 and limit >= 1")
    limit = min(limit, pp.PAGE_MAX_LIMIT)
    return list(rows[skip:skip + limit]), len(rows)


def _total(book: TradingBook, n: int) -> Any:
    return str(n) if book.config.shapes == "wire" else n  # "total" is a string on the wire (M)


def _filter_orders(book: TradingBook, acct: FAccount, call: Call, *, open_: bool) -> list[FOrder]:
    symbol = _symbol(book, call.q("symbol"), required=False)
    start = call.q_int("startTime")
    end = call.q_int("endTime")
    status = call.q("status")
    kind = call.q("type")
    oid = call.q("orderId")
    cid = call.q("clientId")
    rows = [
        o for o in acct.orders.values()
        if o.is_open == open_
        and (symbol is None or o.symbol == symbol)
        and (oid is None or o.order_id == oid)
        and (cid is None or o.client_id == cid)
        and (status is None or o.status == status)
        and (kind is None or o.order_type == kind)
        # (L) the time filter applies to the creation time
        and (start is None or o.ctime >= start)
        and (end is None or o.ctime <= end)
    ]
    rows.sort(key=lambda o: (o.ctime, int(o.order_id)), reverse=True)  # newest first (H)
    return rows


async def pending_orders(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    rows, total = _page(book, call, _filter_orders(book, acct, call, open_=True))
    return envelope(ex, {"orderList": [book.order_rest(o) for o in rows], "total": _total(book, total)})


async def history_orders(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    rows, total = _page(book, call, _filter_orders(book, acct, call, open_=False))
    return envelope(ex, {"orderList": [book.order_rest(o) for o in rows], "total": _total(book, total)})


async def history_trades(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    symbol = _symbol(book, call.q("symbol"), required=False)
    start = call.q_int("startTime")
    end = call.q_int("endTime")
    oid = call.q("orderId")
    rows = [
        t for t in reversed(acct.trades)
        if (symbol is None or t["symbol"] == symbol) and (oid is None or t["orderId"] == oid)
        and (start is None or t["ctime"] >= start) and (end is None or t["ctime"] <= end)
    ]
    page, total = _page(book, call, rows)
    wire = book.config.shapes == "wire"
    out = [
        {**t, "qty": num_text(t["qty"]), "price": num_text(t["price"]), "fee": num_text(t["fee"]),
         "realizedPNL": num_text(t["realizedPNL"]), "ctime": str(t["ctime"]) if wire else t["ctime"]}
        for t in page
    ]
    return envelope(ex, {"tradeList": out, "total": _total(book, total)})


# -- positions & account ----------------------------------------------------------------------------
async def pending_positions(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    symbol = _symbol(book, call.q("symbol"), required=False)
    pid = call.q("positionId")
    last = book.price_now()[2]
    rows = [
        book.position_rest(p, last) for p in acct.positions.values()
        if (symbol is None or p.symbol == symbol) and (pid is None or p.position_id == pid)
    ]
    return envelope(ex, rows)


async def account(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    coin = call.q("marginCoin")
    if coin is None:
        raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: marginCoin is required")
    if coin != pp.MARGIN_COIN:
        raise OrderRefused(pp.CODE_PARAMETER, f"Parameter error: marginCoin must be {pp.MARGIN_COIN}")
    return envelope(ex, _as_data(book, book.account_rest(acct)))


async def change_leverage(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    symbol = _symbol(book, call.b("symbol"))
    assert symbol is not None
    raw = call.b("leverage")
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
        raise OrderRefused(pp.CODE_PARAMETER, "Parameter error: leverage must be an integer")
    book.set_leverage(acct.cfg.uid, symbol, int(raw))
    return envelope(ex, _as_data(book, {"marginCoin": pp.MARGIN_COIN, "leverage": int(raw), "symbol": symbol}))


async def change_margin_mode(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    symbol = _symbol(book, call.b("symbol"))
    assert symbol is not None
    mode = str(call.b("marginMode") or "")
    book.set_margin_mode(acct.cfg.uid, symbol, mode)
    return envelope(ex, _as_data(book, {"marginMode": mode, "symbol": symbol, "marginCoin": pp.MARGIN_COIN}))


async def leverage_margin_mode(ex: FakeExchange, book: TradingBook, acct: FAccount, call: Call) -> Response:
    symbol = _symbol(book, call.q("symbol"))
    assert symbol is not None
    return envelope(ex, {"symbol": symbol, "marginCoin": pp.MARGIN_COIN,
                         "leverage": book.leverage_of(acct, symbol), "marginMode": book.margin_mode_of(acct, symbol)})


def routes() -> list[Route]:
    return [
        private_route(pp.PATH_PLACE_ORDER, place_order, "POST"),
        private_route(pp.PATH_CANCEL_ORDERS, cancel_orders, "POST"),
        private_route(pp.PATH_CANCEL_ALL_ORDERS, cancel_all_orders, "POST"),
        private_route(pp.PATH_ORDER_DETAIL, order_detail, "GET"),
        private_route(pp.PATH_PENDING_ORDERS, pending_orders, "GET"),
        private_route(pp.PATH_HISTORY_ORDERS, history_orders, "GET"),
        private_route(pp.PATH_HISTORY_TRADES, history_trades, "GET"),
        private_route(pp.PATH_PENDING_POSITIONS, pending_positions, "GET"),
        private_route(pp.PATH_ACCOUNT, account, "GET"),
        private_route(pp.PATH_CHANGE_LEVERAGE, change_leverage, "POST"),
        private_route(pp.PATH_CHANGE_MARGIN_MODE, change_margin_mode, "POST"),
        private_route(pp.PATH_LEVERAGE_MARGIN_MODE, leverage_margin_mode, "GET"),
    ]
