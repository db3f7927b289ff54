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
import json
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from laptop_agents.exchange import protocol
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.testing.fake_exchange.state import FakeExchange, PrivateSession
from laptop_agents.testing.fake_exchange.ws_public import _ping_watch

_COMPACT = (",", ":")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=_COMPACT)


def install(ex: FakeExchange) -> None:
    """Route the trading book's pushes to the private sockets of each account."""

    def fanout(uid: str, channel: str, data: dict[str, Any], delay_s: float) -> None:
        sessions = [s for s in ex.private_sessions.values() if s.uid == uid and channel in s.conn.channels]
        if not sessions:
            return
        payload = [data] if ex.trading.config.shapes == "doc" else data
        text = _dumps({"ch": channel, "ts": ex.now_ms(), "data": payload})
        release = asyncio.get_running_loop().time() + delay_s
        if delay_s > 0:
            ex.stats["private_pushes_delayed"] = ex.stats.get("private_pushes_delayed", 0) + len(sessions)
        for session in sessions:
            session.outbox.put_nowait((release, text))

    ex.trading.on_push = fanout


async def _send(ws: WebSocket, session: PrivateSession, ex: FakeExchange, text: str) -> None:
    await ws.send_text(text)
    session.conn.frames_sent += 1
    ex.stats["private_frames_sent"] = ex.stats.get("private_frames_sent", 0) + 1


async def _sender(ws: WebSocket, session: PrivateSession, ex: FakeExchange) -> None:
    loop = asyncio.get_running_loop()
    while True:
        release, text = await session.outbox.get()
        wait = release - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        await _send(ws, session, ex, text)


async def _reader(ws: WebSocket, session: PrivateSession, ex: FakeExchange) -> None:
    loop = asyncio.get_running_loop()
    conn = session.conn
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            if conn.close_reason is None:
                conn.close_reason = "client closed"
            return
        now = loop.time()
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", "replace")
        if not ex.note_client_message(conn, now):
            conn.request_close(1008, f"more than {ex.config.max_client_msgs} messages per second")
            return
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        op = obj.get("op")
        if op == "ping":
            ex.note_ping(conn, now)
            if not ex.faults.pongs_silent(now):
                # Straight out, not through the outbox: delayed fills stall pushes, not pongs.
                await _send(ws, session, ex, _dumps(protocol.pong_message(obj.get("ping"), ex.now_ms() // 1000)))
        elif op == pp.WS_LOGIN_OP:
            result = ex.auth.check_ws_login(obj.get("args"))
            if result.account is None:
                ex.stats["private_login_refused"] = ex.stats.get("private_login_refused", 0) + 1
                await _send(ws, session, ex, _dumps({"op": pp.WS_LOGIN_OP, "data": {"result": False},
                                                     "code": result.code, "msg": result.msg}))
                conn.request_close(1008, f"login refused ({result.reason})")
                return
            session.uid = result.account.uid
            ex.stats["private_logins"] = ex.stats.get("private_logins", 0) + 1
            await _send(ws, session, ex, _dumps({"op": pp.WS_LOGIN_OP, "data": {"result": True}}))
        elif op in ("subscribe", "unsubscribe"):
            args = obj.get("args")
            if session.uid is None or not isinstance(args, list):
                continue  # (L) not logged in: ignored, nothing will be pushed
            ex.stats["private_subscribes"] = ex.stats.get("private_subscribes", 0) + 1
            for arg in args:
                if not isinstance(arg, dict) or not isinstance(arg.get("ch"), str):
                    continue
                if op == "subscribe" and len(conn.channels) < protocol.WS_MAX_CHANNELS:
                    conn.channels[arg["ch"]] = ""
                elif op == "unsubscribe":
                    conn.channels.pop(arg["ch"], None)


async def private_ws(ws: WebSocket) -> None:
    ex: FakeExchange = ws.app.state.exchange
    if ex.faults.take_reject_connect():
        ex.stats["ws_rejected"] += 1
        await ws.close(code=1013)
        return
    await ws.accept()
    loop = asyncio.get_running_loop()
    session = ex.open_private(loop.time())
    conn = session.conn
    tasks = [
        asyncio.create_task(_reader(ws, session, ex)),
        asyncio.create_task(_sender(ws, session, ex)),
        asyncio.create_task(_ping_watch(conn, ex)),
        asyncio.create_task(conn.close_request.wait()),
    ]
    try:
        await _send(ws, session, ex, _dumps(protocol.CONNECT_MESSAGE))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except Exception:  # the client vanished mid-send: nothing more to do for it
        conn.close_reason = conn.close_reason or "send failed"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ex.close_private(session)
        try:
            await ws.close(code=conn.close_code, reason=(conn.close_reason or "")[:100])
        except Exception:  # already closed by the client
            conn.close_reason = conn.close_reason or "closed by client"


def routes() -> list[WebSocketRoute]:
    return [WebSocketRoute(protocol.WS_PRIVATE_PATH, private_ws)]
