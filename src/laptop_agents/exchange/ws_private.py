"""The Bitunix private websocket: login, order/position/balance channels,
typed updates, and a gap signal after every reconnect.

The connection machinery (reconnect with jittered backoff, JSON pings, the
5-messages-a-second limit, the shared connect budget, the idle timeout) is
the public client's (:class:`BitunixWsClient`); this subclass adds the
session handshake on each connection -- wait for ``connect``, send the
signed login, wait for its ack, subscribe -- and the interpretation of
frames. A refused login ends the stream with :class:`AuthError` (retrying
with the same keys cannot help); a login that is not answered in time is a
connection failure and is retried.

The private socket may be silent for hours, so liveness is judged by pong
replies (every frame counts as a sign of life), not by data.

Pushes missed while disconnected are never replayed (L), so after every
re-login :meth:`BitunixPrivateWsClient.updates` yields a :class:`PrivateGap`
carrying the last exchange time the stream was known to be in sync (the
newest push or pong time, minus a safety margin): the caller fills it from
REST (see :mod:`private_feed`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

from laptop_agents.exchange import protocol
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.errors import AuthError, BadFrameError
from laptop_agents.exchange.parsers import Connected, Pong, ServerNotice
from laptop_agents.exchange.private_updates import (
    BalancePush,
    BalanceUpdate,
    FillTracker,
    LoginAck,
    OrderPush,
    OrderUpdate,
    PositionPush,
    PositionUpdate,
    PrivateConnected,
    PrivateDisconnected,
    PrivateGap,
    PrivateProblem,
    PrivateUpdate,
    parse_private_frame,
)
from laptop_agents.exchange.ratelimit import RateLimitBudget, SlidingWindowLimiter
from laptop_agents.exchange.ws import BitunixWsClient, WsClosed, WsFrame, WsOpened, WsOptions
from laptop_agents.logs import get_logger
from laptop_agents.wallclock import now_ms

log = get_logger("exchange.ws_private")

PRIVATE_WS_OPTIONS = WsOptions(
    ping_interval_s=pp.WS_PRIVATE_PING_INTERVAL_S, idle_timeout_s=pp.WS_PRIVATE_IDLE_TIMEOUT_S
)


class BitunixPrivateWsClient(BitunixWsClient):
    """A reconnecting, logged-in private socket. Consume :meth:`updates`.

    ``resume_from_ms``: exchange time up to which the caller already knows
    everything (e.g. from its store); the first login then also yields a
    :class:`PrivateGap` from there. ``gap_margin_ms`` is subtracted from the
    last in-sync time: overlap costs a few redundant REST rows, a hole would
    cost a fill."""

    idle_what = "pong or data"

    def __init__(
        self,
        credentials: ApiCredentials,
        url: str = protocol.WS_PRIVATE_URL,
        *,
        channels: tuple[str, ...] = pp.WS_PRIVATE_CHANNELS,
        options: WsOptions | None = None,
        budget: RateLimitBudget | None = None,
        clock_ms: Callable[[], int] = now_ms,
        rng: random.Random | None = None,
        login_timeout_s: float = 10.0,
        resume_from_ms: int | None = None,
        gap_margin_ms: int = 2_000,
        tracker: FillTracker | None = None,
    ) -> None:
        super().__init__(url, "", channels, options=options or PRIVATE_WS_OPTIONS, budget=budget,
                         clock_ms=clock_ms, rng=rng)
        self._creds = credentials
        self.login_timeout_s = login_timeout_s
        self.gap_margin_ms = gap_margin_ms
        self.tracker = tracker or FillTracker()
        self.synced_ms: int | None = resume_from_ms  # exchange time we were last known in sync
        self.logins = 0
        self.bad_frames = 0

    def __repr__(self) -> str:
        return f"BitunixPrivateWsClient(url={self.url!r}, state={self.state!r})"

    # -- session handshake (hook of the shared reconnect loop) ---------------------------------
    def _is_data(self, data: str | bytes) -> bool:
        return True  # pongs prove the connection alive; the private stream may be quiet for hours

    async def _on_open(self, ws: ClientConnection, limiter: SlidingWindowLimiter, conn: int) -> None:
        try:
            async with asyncio.timeout(self.login_timeout_s):
                if pp.WS_PRIVATE_WAIT_FOR_CONNECT:
                    while not isinstance(await self._recv_parsed(ws, conn), Connected):
                        pass
                login = self._creds.ws_login(pp.login_timestamp(self._clock()))
                await self._send(ws, limiter, login)
                while True:
                    msg = await self._recv_parsed(ws, conn)
                    if isinstance(msg, LoginAck):
                        if not msg.ok:
                            raise AuthError(f"private websocket login refused: {msg.text}")
                        break
                    if isinstance(msg, ServerNotice) and msg.error:
                        raise AuthError(f"private websocket login refused: {msg.text}")
        except TimeoutError:
            raise ConnectionError(f"no login acknowledgement within {self.login_timeout_s:g} s") from None
        self.logins += 1
        if pp.WS_PRIVATE_SUBSCRIBE:
            await self._send(ws, limiter, pp.private_subscribe_message(tuple(self.channels)))

    async def _recv_parsed(self, ws: ClientConnection, conn: int) -> Any:
        data = await ws.recv()
        await self._forward(conn, data)
        try:
            return parse_private_frame(data)
        except BadFrameError:
            return None

    # -- typed updates ------------------------------------------------------------------------
    async def updates(self) -> AsyncIterator[PrivateUpdate]:
        """Typed updates until :meth:`aclose`; raises the fatal error (e.g. a refused login) that ended it."""
        logged_in_before = False
        async for event in self.events():
            if isinstance(event, WsOpened):
                continue
            if isinstance(event, WsClosed):
                if event.conn:
                    yield PrivateDisconnected(event.conn, event.at_ms, event.reason)
                continue
            assert isinstance(event, WsFrame)
            for update in self._frame(event):
                if isinstance(update, PrivateConnected):
                    since = self.synced_ms
                    yield update
                    if logged_in_before or since is not None:
                        yield PrivateGap(None if since is None else since - self.gap_margin_ms, update.conn, update.at_ms)
                    logged_in_before = True
                else:
                    yield update
        if self.failure is not None:
            raise self.failure

    def _sync(self, ts_ms: int) -> None:
        self.synced_ms = ts_ms if self.synced_ms is None else max(self.synced_ms, ts_ms)

    def _frame(self, frame: WsFrame) -> list[PrivateUpdate]:
        try:
            msg = parse_private_frame(frame.data)
        except BadFrameError as exc:
            self.bad_frames += 1
            return [PrivateProblem("bad_frame", str(exc))]
        out: list[PrivateUpdate] = []
        if isinstance(msg, LoginAck):
            if msg.ok:
                out.append(PrivateConnected(frame.conn, frame.recv_ms))
        elif isinstance(msg, Pong):
            server_s = msg.server_s
            if isinstance(server_s, int | float) and not isinstance(server_s, bool) and server_s > 0:
                # A pong carries whole seconds: in sync up to the start of that second.
                self._sync(int(server_s) * 1000)
        elif isinstance(msg, OrderPush):
            self._sync(msg.ts)
            for event, order in msg.items:
                news, fill = self.tracker.observe(order, ts=msg.ts, source="ws")
                if news:
                    out.append(OrderUpdate(event, order, msg.ts, "ws"))
                if fill is not None:
                    out.append(fill)
        elif isinstance(msg, PositionPush):
            self._sync(msg.ts)
            out.extend(PositionUpdate(event, pos, msg.ts, "ws") for event, pos in msg.items)
        elif isinstance(msg, BalancePush):
            self._sync(msg.ts)
            out.extend(BalanceUpdate(b, msg.ts, "ws") for b in msg.balances)
        elif isinstance(msg, ServerNotice) and msg.error:
            out.append(PrivateProblem("server_notice", msg.text))
        return out

