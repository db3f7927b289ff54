"""What the fake exchange's two websockets (``/public/``, ``/private/``) share.

Both follow the same rules, so one connection's life is written once here
and a rule changed for one socket changes for the other: a refused connect
when the fault is armed, the connect message on open, the 5 messages per
second limit, JSON pings answered with a pong in the exchange's seconds, the
ping timeout, and the close with the code and reason the server chose. The
subclasses say what differs: what a client's other ops do, what the server
sends unasked (the public pushes, the private outbox) and the bookkeeping.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.websockets import WebSocket

from laptop_agents.exchange import protocol
from laptop_agents.testing.fake_exchange.state import FakeExchange, WsConn

_COMPACT = (",", ":")


def dumps(obj: Any) -> str:
    """Compact JSON, as the exchange sends it."""
    return json.dumps(obj, separators=_COMPACT)


async def accept(ws: WebSocket, ex: FakeExchange) -> bool:
    """Accept the connection, or refuse it (code 1013) when the fault is armed."""
    if ex.faults.take_reject_connect():
        ex.stats["ws_rejected"] += 1
        await ws.close(code=1013)
        return False
    await ws.accept()
    return True


async def ping_watch(conn: WsConn, ex: FakeExchange) -> None:
    """Close the connection when the client has not pinged for ``ping_timeout_s``."""
    loop = asyncio.get_running_loop()
    timeout = ex.config.ping_timeout_s
    while True:
        await asyncio.sleep(min(1.0, timeout / 4))
        if loop.time() - conn.last_ping > timeout:
            ex.stats["ws_ping_timeouts"] += 1
            conn.request_close(1000, f"no ping for {timeout:g} s")
            return


class Socket:
    """One accepted connection: its reader, the subclass's sender, the ping
    watch and the close request run side by side until the first ends."""

    frames_stat = ""  # the stats counter of frames sent on this kind of socket

    def __init__(self, ws: WebSocket, ex: FakeExchange, conn: WsConn) -> None:
        self.ws = ws
        self.ex = ex
        self.conn = conn

    async def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_text(frame)
        self.conn.frames_sent += 1
        stats = self.ex.stats
        stats[self.frames_stat] = stats.get(self.frames_stat, 0) + 1

    async def on_op(self, op: Any, obj: dict[str, Any]) -> bool:
        """A client message other than a ping; False ends the connection."""
        raise NotImplementedError

    async def sender(self) -> None:
        """What the server sends unasked, for as long as the connection lives."""
        raise NotImplementedError

    def closed(self) -> None:
        """The connection is over: the exchange's bookkeeping."""
        raise NotImplementedError

    async def reader(self) -> None:
        ex, conn = self.ex, self.conn
        loop = asyncio.get_running_loop()
        while True:
            message = await self.ws.receive()
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
                    # Straight out, not through an outbox: delayed fills stall pushes, not pongs.
                    await self.send(dumps(protocol.pong_message(obj.get("ping"), ex.now_ms() // 1000)))
            elif not await self.on_op(op, obj):
                return

    async def serve(self) -> None:
        conn = self.conn
        tasks = [
            asyncio.create_task(self.reader()),
            asyncio.create_task(self.sender()),
            asyncio.create_task(ping_watch(conn, self.ex)),
            asyncio.create_task(conn.close_request.wait()),
        ]
        try:
            await self.send(dumps(protocol.CONNECT_MESSAGE))
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except Exception:  # the client vanished mid-send: nothing more to do for it
            conn.close_reason = conn.close_reason or "send failed"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.closed()
            try:
                await self.ws.close(code=conn.close_code, reason=(conn.close_reason or "")[:100])
            except Exception:  # already closed by the client
                conn.close_reason = conn.close_reason or "closed by client"
