"""Bitunix public websocket client: one connection kept alive forever.

It connects, subscribes, sends the JSON heartbeat the server requires, and
hands every received frame (with its receive time) to the consumer as a
:class:`WsFrame`, bracketed by :class:`WsOpened` / :class:`WsClosed`. It
does not interpret market data: the market source does, so that a recording
of these events can be fed back through the same code.

Rules it keeps, each because the exchange or the product demands it:

- at most 5 client messages per second per connection, pings included (the
  server disconnects otherwise): every send goes through a per-connection
  sliding-window limiter with a safety margin;
- a JSON ping every ``ping_interval_s`` (the server closes silent clients
  after ~60 s; protocol-level ping frames are not used);
- an idle timeout: a connection that delivers no *data* (pongs and the
  connect message do not count) for ``idle_timeout_s`` is treated as broken,
  closed and reopened -- a socket can stay up while the feed is dead;
- reconnects with jittered exponential backoff, each connect drawing from
  the budget shared with the REST client, and resubscribing every channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from laptop_agents.exchange import protocol
from laptop_agents.exchange.errors import ExchangeError
from laptop_agents.exchange.parsers import is_heartbeat
from laptop_agents.exchange.ratelimit import RateLimitBudget, SlidingWindowLimiter
from laptop_agents.logs import get_logger, scrub
from laptop_agents.wallclock import now_ms

log = get_logger("exchange.ws")
# websockets logs every frame at DEBUG, shortened but with its start: the
# private login frame's API key and a piece of its signature among them. The
# connections log through this logger instead, which never goes below INFO
# (opening, closing and errors stay visible).
PROTOCOL_LOG = logging.getLogger("laptop_agents.exchange.ws.protocol")
PROTOCOL_LOG.setLevel(logging.INFO)

# Recent backoff delays kept for status and tests; a month of reconnects must
# not grow the process.
BACKOFF_HISTORY = 64



@dataclass(frozen=True, slots=True)
class WsOptions:
    ping_interval_s: float = protocol.WS_PING_INTERVAL_S
    idle_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    msg_margin_s: float = 0.5  # added to the 1 s message window: server-side receive jitter
    max_queue: int = 10_000
    max_frame_bytes: int = 1 << 20


@dataclass(frozen=True, slots=True)
class WsFrame:
    conn: int
    recv_ms: int
    data: str | bytes


@dataclass(frozen=True, slots=True)
class WsOpened:
    conn: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class WsClosed:
    """A connection ended or could not be opened (``conn`` 0). ``idle`` marks
    a close by the idle timeout."""

    conn: int
    at_ms: int
    reason: str
    idle: bool = False


WsEvent = WsFrame | WsOpened | WsClosed


def _describe_close(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    if rcvd is None:
        return "connection lost without a close frame"
    return f"closed by server (code {rcvd.code}{': ' + rcvd.reason if rcvd.reason else ''})"


class BitunixWsClient:
    """A reconnecting public-websocket connection subscribed to ``channels`` of ``symbol``."""

    def __init__(
        self,
        url: str,
        symbol: str,
        channels: Sequence[str],
        *,
        options: WsOptions | None = None,
        budget: RateLimitBudget | None = None,
        clock_ms: Callable[[], int] = now_ms,
        rng: random.Random | None = None,
    ) -> None:
        if not channels or len(channels) > protocol.WS_MAX_CHANNELS:
            raise ValueError(f"need 1..{protocol.WS_MAX_CHANNELS} channels, got {len(channels)}")
        self.url = url
        self.symbol = symbol
        self.channels = list(channels)
        self.options = options or WsOptions()
        self.budget = budget or RateLimitBudget()
        self._clock = clock_ms
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[WsEvent | None] = asyncio.Queue(self.options.max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._ws: ClientConnection | None = None
        host = urlparse(url).hostname or ""
        self._loopback = host in ("127.0.0.1", "::1", "localhost")
        # status
        self.state = "idle"
        self.connects = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.idle_timeouts = 0
        self.frames = 0
        self.msgs_sent = 0
        self.pings_sent = 0
        self.max_msgs_in_window = 0
        self.last_close_reason: str | None = None
        self.last_data_mono: float | None = None
        self.backoffs: deque[float] = deque(maxlen=BACKOFF_HISTORY)
        self._got_data = False
        self._down_since: float | None = None  # monotonic time the last connection ended
        # The exception that ended the stream (a bug, or a subclass's fatal
        # error such as a refused private login); None while running or after aclose.
        self.failure: BaseException | None = None

    # What the idle timeout waits for, in its close reason.
    idle_what = "market data"

    # -- public ------------------------------------------------------------------
    async def events(self) -> AsyncIterator[WsEvent]:
        """Frames and connection events, until :meth:`aclose`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bitunix-ws")
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def aclose(self) -> None:
        self._closing = True
        self.state = "closed"
        task, self._task = self._task, None
        ws = self._ws
        if ws is not None:
            # Closing the socket ends a pending recv even if a cancellation is lost.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.options.close_timeout_s + 1):
                    await ws.close()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass  # the consumer is gone or behind; it stops on the next get anyway

    def status(self) -> dict[str, Any]:
        age = None if self.last_data_mono is None else round(time.monotonic() - self.last_data_mono, 3)
        return {
            "state": self.state,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "idle_timeouts": self.idle_timeouts,
            "frames": self.frames,
            "msgs_sent": self.msgs_sent,
            "pings_sent": self.pings_sent,
            "max_msgs_in_window": self.max_msgs_in_window,
            "last_data_age_s": age,
            "last_close_reason": self.last_close_reason,
        }

    # -- hooks for subclasses (the private client) --------------------------------------
    async def _on_open(self, ws: ClientConnection, limiter: SlidingWindowLimiter, conn: int) -> None:
        """Start the session on a fresh connection, before pings start: the public
        stream subscribes. A subclass that reads frames here hands them on with
        :meth:`_forward`; raising ``OSError`` reconnects, anything else ends the stream."""
        await self._send(ws, limiter, protocol.subscribe_message(self.symbol, self.channels))

    def _is_data(self, data: str | bytes) -> bool:
        """Whether a frame resets the idle timer (public: pongs and the connect message do not)."""
        return not is_heartbeat(data)

    async def _forward(self, conn: int, data: str | bytes) -> None:
        self.frames += 1
        if self._is_data(data):
            self.last_data_mono = time.monotonic()
            self._got_data = True
        await self._queue.put(WsFrame(conn, self._clock(), data))

    # -- internals -----------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        o = self.options
        return min(o.backoff_max_s, o.backoff_base_s * (2**attempt)) * (0.5 + 0.5 * self._rng.random())

    async def _send(self, ws: ClientConnection, limiter: SlidingWindowLimiter, message: dict[str, Any]) -> None:
        await limiter.acquire()
        await ws.send(json.dumps(message, separators=(",", ":")))
        self.msgs_sent += 1
        self.max_msgs_in_window = max(self.max_msgs_in_window, limiter.max_seen)

    async def _pinger(self, ws: ClientConnection, limiter: SlidingWindowLimiter) -> None:
        try:
            while True:
                await asyncio.sleep(self.options.ping_interval_s)
                await self._send(ws, limiter, protocol.ping_message(self._clock() // 1000))
                self.pings_sent += 1
        except (ConnectionClosed, OSError):
            return  # the reader sees the close and reports it

    async def _read(self, ws: ClientConnection, conn: int) -> bool:
        """Forward frames until the connection closes (raises) or goes idle (returns True)."""
        idle_s = self.options.idle_timeout_s
        last_data = time.monotonic()
        while not self._closing:
            remaining = last_data + idle_s - time.monotonic()
            if remaining <= 0:
                return True
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that coincides with a frame arriving.
            try:
                async with asyncio.timeout(remaining):
                    data = await ws.recv()
            except TimeoutError:
                continue
            if self._is_data(data):
                last_data = time.monotonic()
            await self._forward(conn, data)
        return False

    async def _connect(self) -> ClientConnection:
        kwargs: dict[str, Any] = {
            "ping_interval": None,  # JSON pings only (M: no protocol-level ping frames)
            "ping_timeout": None,
            "open_timeout": self.options.open_timeout_s,
            "close_timeout": self.options.close_timeout_s,
            "max_size": self.options.max_frame_bytes,
            "user_agent_header": f"btc-laptop-agents websockets/{websockets.__version__}",
            "logger": PROTOCOL_LOG,
        }
        if self._loopback:
            kwargs["proxy"] = None
        return await connect(self.url, **kwargs)

    async def _run(self) -> None:
        try:
            await self._connect_loop()
        except asyncio.CancelledError:
            raise
        except ExchangeError as exc:  # a subclass's fatal protocol error (e.g. login refused)
            log.error("bitunix websocket client stopped: %s", exc)
            self.failure = exc
            self.state = "failed"
        except Exception as exc:  # a bug here must end the stream visibly, not hang its consumer
            log.exception("bitunix websocket client failed")
            self.failure = exc
            self.state = "failed"
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)  # the consumer's events() ends

    async def _connect_loop(self) -> None:
        attempt = 0
        conn_seq = 0
        while not self._closing:
            self.state = "connecting" if self.connects == 0 else "reconnecting"
            await self.budget.acquire()
            self._got_data = False
            conn = 0
            idle = False
            try:
                ws = await self._connect()
            except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
                self.connect_failures += 1
                reason = f"connect failed: {type(exc).__name__}: {str(exc)[:160]}"
            else:
                conn_seq += 1
                conn = conn_seq
                self._ws = ws
                self.connects += 1
                self.state = "connected"
                if self._down_since is None:
                    log.info("bitunix websocket connected: %s", self.url)
                else:
                    log.info("bitunix websocket reconnected after %.1f s down (attempt %d): %s",
                             time.monotonic() - self._down_since, attempt, self.url,
                             extra={"fields": {"reconnects": self.reconnects, "attempt": attempt}})
                    self._down_since = None
                await self._queue.put(WsOpened(conn, self._clock()))
                limiter = SlidingWindowLimiter(
                    protocol.WS_MAX_CLIENT_MSGS, protocol.WS_MSG_WINDOW_S + self.options.msg_margin_s
                )
                pinger: asyncio.Task[None] | None = None
                try:
                    await self._on_open(ws, limiter, conn)
                    pinger = asyncio.create_task(self._pinger(ws, limiter))
                    idle = await self._read(ws, conn)
                    if idle:
                        self.idle_timeouts += 1
                        reason = f"no {self.idle_what} for {self.options.idle_timeout_s:g} s (idle timeout)"
                    else:
                        reason = "client closing"
                except ConnectionClosed as exc:
                    reason = _describe_close(exc)
                except (OSError, WebSocketException) as exc:
                    reason = f"{type(exc).__name__}: {str(exc)[:160]}"
                finally:
                    if pinger is not None:
                        pinger.cancel()
                        await asyncio.gather(pinger, return_exceptions=True)
                    self._ws = None
                    try:
                        async with asyncio.timeout(self.options.close_timeout_s + 1):
                            await ws.close()
                    except (OSError, TimeoutError, WebSocketException):
                        pass  # closing a broken socket: nothing more to learn
            if self._closing:
                break
            reason = scrub(reason)
            self.last_close_reason = reason
            if self._down_since is None:
                self._down_since = time.monotonic()
            log.warning("bitunix websocket %s: %s", "connection" if conn else "connect", reason)
            await self._queue.put(WsClosed(conn, self._clock(), reason, idle))
            if self._got_data:
                attempt = 0
            delay = self._backoff(attempt)
            attempt += 1
            self.backoffs.append(delay)
            self.reconnects += 1
            self.state = "reconnecting"
            await asyncio.sleep(delay)
