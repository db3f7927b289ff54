"""Control endpoints of the fake exchange (``/_fake/...``), for tests and drills.

- ``POST /_fake/faults``: a fault object or a list of them (see ``faults.py``)
- ``DELETE /_fake/faults``: disarm everything
- ``GET /_fake/stats``: counters, including the websocket rule violations
- ``GET /_fake/time``: the simulated clock
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from laptop_agents.exchange.fake.faults import Fault, FaultSpecError
from laptop_agents.exchange.fake.state import FakeExchange


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


def routes() -> list[Route]:
    return [
        Route("/_fake/faults", post_faults, methods=["POST"]),
        Route("/_fake/faults", delete_faults, methods=["DELETE"]),
        Route("/_fake/stats", stats, methods=["GET"]),
        Route("/_fake/time", sim_time, methods=["GET"]),
    ]
