"""Control endpoints of the fake exchange (``/_fake/...``), for tests and drills.

- ``POST /_fake/faults``: a fault object or a list of them (see ``faults.py``)
- ``DELETE /_fake/faults``: disarm everything
- ``GET /_fake/stats``: counters, including the websocket rule violations
- ``GET /_fake/time``: the simulated clock
- ``GET /_fake/orders[?account=UID]``: the order log (every accepted,
  rejected, filled, cancelled order, funding, faults) and the orders as the
  exchange holds them -- what tests compare with the bot's records
- ``GET /_fake/positions``, ``GET /_fake/balances``: per-account state
- ``POST /_fake/trade_by_hand``: ``{"qty": 0.01, "account": UID}`` -- a trade
  outside the bot (negative qty sells)
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from laptop_agents.testing.fake_exchange.faults import Fault, FaultSpecError
from laptop_agents.testing.fake_exchange.state import FakeExchange


def _ex(request: Request) -> FakeExchange:
    ex: FakeExchange = request.app.state.exchange
    return ex


async def post_faults(request: Request) -> Response:
    try:
        body = json.loads(await request.body() or b"null")
        items = body if isinstance(body, list) else [body]
        faults = [Fault.from_dict(item) for item in items]
    except (ValueError, FaultSpecError) as exc:
        return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=400)
    for fault in faults:
        _ex(request).apply_fault(fault)
    return JSONResponse({"armed": [f.kind for f in faults]})


async def delete_faults(request: Request) -> Response:
    _ex(request).faults.clear()
    return JSONResponse({"cleared": True})


async def stats(request: Request) -> Response:
    return JSONResponse(_ex(request).snapshot())


async def sim_time(request: Request) -> Response:
    ex = _ex(request)
    return JSONResponse({"now_ms": ex.now_ms(), "speed": ex.config.speed, "interval": ex.config.interval})


async def orders(request: Request) -> Response:
    ex = _ex(request)
    ex.trading.advance()
    uid = request.query_params.get("account") or None
    return JSONResponse({"log": ex.trading.order_log(uid), "orders": ex.trading.orders_view(uid)})


async def positions(request: Request) -> Response:
    ex = _ex(request)
    ex.trading.advance()
    return JSONResponse({"positions": ex.trading.positions_view()})


async def balances(request: Request) -> Response:
    ex = _ex(request)
    ex.trading.advance()
    return JSONResponse({"balances": ex.trading.balances_view()})


async def trade_by_hand(request: Request) -> Response:
    try:
        body = json.loads(await request.body() or b"null")
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        fault = Fault(kind="position_by_hand", qty=float(body.get("qty", 0)), account=body.get("account"))
    except (ValueError, TypeError, FaultSpecError) as exc:
        return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=400)
    ex = _ex(request)
    if fault.account is not None and fault.account not in ex.trading.accounts:
        return JSONResponse({"error": f"unknown account {fault.account!r}"}, status_code=400)
    ex.apply_fault(fault)
    return JSONResponse({"done": True})


def routes() -> list[Route]:
    return [
        Route("/_fake/orders", orders, methods=["GET"]),
        Route("/_fake/positions", positions, methods=["GET"]),
        Route("/_fake/balances", balances, methods=["GET"]),
        Route("/_fake/trade_by_hand", trade_by_hand, methods=["POST"]),
        Route("/_fake/faults", post_faults, methods=["POST"]),
        Route("/_fake/faults", delete_faults, methods=["DELETE"]),
        Route("/_fake/stats", stats, methods=["GET"]),
        Route("/_fake/time", sim_time, methods=["GET"]),
    ]
