"""Assemble the fake exchange's ASGI app: public REST, public websocket,
control API, and the fault schedule running beside them.

The private side (signed REST, the private websocket) shares the
:class:`FakeExchange` state; a matcher task advances its trading book with
the simulated market so resting orders fill while no request arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from laptop_agents.logs import get_logger
from laptop_agents.testing.fake_exchange import control, rest_market, rest_private, ws_private, ws_public
from laptop_agents.testing.fake_exchange.state import FakeExchange

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


async def _run_matcher(ex: FakeExchange) -> None:
    while True:
        await asyncio.sleep(ex.config.trading.match_interval_s)
        try:
            ex.trading.advance()
        except Exception:  # a bug in matching must be seen, not kill the server silently
            log.exception("fake exchange: matching failed")
            raise


def build_app(ex: FakeExchange) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ex.loop = asyncio.get_running_loop()
        schedule = asyncio.create_task(_run_schedule(ex)) if ex.config.faults else None
        matcher = asyncio.create_task(_run_matcher(ex))
        try:
            yield
        finally:
            if schedule is not None:
                schedule.cancel()
            matcher.cancel()
            for conn in list(ex.conns.values()):
                conn.request_close(1001, "server shutting down")
            for session in list(ex.private_sessions.values()):
                session.conn.request_close(1001, "server shutting down")

    ws_private.install(ex)
    routes: list[BaseRoute] = [
        *rest_market.routes(), *rest_private.routes(), *ws_public.routes(), *ws_private.routes(), *control.routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.exchange = ex
    return app
