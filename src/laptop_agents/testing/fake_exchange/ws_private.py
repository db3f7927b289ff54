"""The fake exchange's private websocket (``/private/``).

Protocol as documented (see :mod:`protocol_private`): ``{"op":"connect"}`` on
open; a signed login (checked like REST: bad signature, stale timestamp,
reused nonce refused; the failure shape is a guess, L: ``result false`` plus
the code, then a close); subscribe to ``order``/``position``/``balance``
(pushed only when subscribed, the stricter reading); JSON ping answered with
a pong carrying the exchange's (simulated) seconds; the 5 messages per second
rule and the ping timeout as on the public socket. Pushes are
``{"ch", "ts", "data": {...}}`` -- an object, as live (M), or a one-item list
with the docs' shapes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from laptop_agents.exchange import protocol
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.testing.fake_exchange.state import FakeExchange, PrivateSession
from laptop_agents.testing.fake_exchange.ws_common import Socket, accept, dumps


def install(ex: FakeExchange) -> None:
    """Route the trading book's pushes to the private sockets of each account."""

    def fanout(uid: str, channel: str, data: dict[str, Any], delay_s: float) -> None:
        sessions = [s for s in ex.private_sessions.values() if s.uid == uid and channel in s.conn.channels]
        if not sessions:
            return
        payload = [data] if ex.trading.config.shapes == "doc" else data
        text = dumps({"ch": channel, "ts": ex.now_ms(), "data": payload})
        release = asyncio.get_running_loop().time() + delay_s
        if delay_s > 0:
            ex.stats["private_pushes_delayed"] = ex.stats.get("private_pushes_delayed", 0) + len(sessions)
        for session in sessions:
            session.outbox.put_nowait((release, text))

    ex.trading.on_push = fanout


class PrivateSocket(Socket):
    """A private connection: a login, then the account's pushes through its outbox."""

    frames_stat = "private_frames_sent"

    def __init__(self, ws: WebSocket, ex: FakeExchange, session: PrivateSession) -> None:
        super().__init__(ws, ex, session.conn)
        self.session = session

    async def on_op(self, op: Any, obj: dict[str, Any]) -> bool:
        ex, session, conn = self.ex, self.session, self.conn
        if op == pp.WS_LOGIN_OP:
            result = ex.auth.check_ws_login(obj.get("args"))
            if result.account is None:
                ex.stats["private_login_refused"] = ex.stats.get("private_login_refused", 0) + 1
                await self.send(dumps({"op": pp.WS_LOGIN_OP, "data": {"result": False},
                                       "code": result.code, "msg": result.msg}))
                conn.request_close(1008, f"login refused ({result.reason})")
                return False
            session.uid = result.account.uid
            ex.stats["private_logins"] = ex.stats.get("private_logins", 0) + 1
            await self.send(dumps({"op": pp.WS_LOGIN_OP, "data": {"result": True}}))
        elif op in ("subscribe", "unsubscribe"):
            args = obj.get("args")
            if session.uid is None or not isinstance(args, list):
                return True  # (L) not logged in: ignored, nothing will be pushed
            ex.stats["private_subscribes"] = ex.stats.get("private_subscribes", 0) + 1
            for arg in args:
                if not isinstance(arg, dict) or not isinstance(arg.get("ch"), str):
                    continue
                if op == "subscribe" and len(conn.channels) < protocol.WS_MAX_CHANNELS:
                    conn.channels[arg["ch"]] = ""
                elif op == "unsubscribe":
                    conn.channels.pop(arg["ch"], None)
        return True

    async def sender(self) -> None:
        loop = asyncio.get_running_loop()
        outbox = self.session.outbox
        while True:
            release, text = await outbox.get()
            wait = release - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.send(text)

    def closed(self) -> None:
        self.ex.close_private(self.session)


async def private_ws(ws: WebSocket) -> None:
    ex: FakeExchange = ws.app.state.exchange
    if await accept(ws, ex):
        await PrivateSocket(ws, ex, ex.open_private(asyncio.get_running_loop().time())).serve()


def routes() -> list[WebSocketRoute]:
    return [WebSocketRoute(protocol.WS_PRIVATE_PATH, private_ws)]
