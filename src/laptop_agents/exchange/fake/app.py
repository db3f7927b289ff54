"""Assemble the fake exchange's ASGI app: public REST, public websocket,
control API, and the fault schedule running beside them.

Later private endpoints (signed REST, the private websocket) join by adding
their route list here; they share :class:`FakeExchange` state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from laptop_agents.exchange.fake import control, rest_market, ws_public
from laptop_agents.exchange.fake.state import FakeExchange
from laptop_agents.logs import get_logger

log = get_logger("exchange.fake")


async def _run_schedule(ex: FakeExchange) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for item in ex.config.faults:
        delay = start + item.at_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        log.info("fake exchange: scheduled fault %s", item.fault.kind)
        ex.apply_fault(item.fault)


def build_app(ex: FakeExchange) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ex.loop = asyncio.get_running_loop()
        schedule = asyncio.create_task(_run_schedule(ex)) if ex.config.faults else None
        try:
            yield
        finally:
            if schedule is not None:
                schedule.cancel()
            for conn in list(ex.conns.values()):
                conn.request_close(1001, "server shutting down")

    routes: list[BaseRoute] = [*rest_market.routes(), *ws_public.routes(), *control.routes()]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.exchange = ex
    return app
