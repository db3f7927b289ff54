"""Async rate limiting: sliding windows and the one budget REST and websocket share.

A token bucket would allow ``burst + rate`` requests in some one-second
windows; the exchange counts requests per window, so a sliding window ("at most
N events in any ``window_s``") is what matches its rule. A safety margin on the
window absorbs the network jitter between our send time and the server's
receive time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from laptop_agents.exchange import protocol

Sleep = Callable[[float], Awaitable[None]]


class SlidingWindowLimiter:
    """At most ``max_events`` acquisitions in any ``window_s`` seconds.

    ``acquire`` waits (FIFO) until a slot is free. ``max_seen`` is the largest
    number of events ever inside one window, for tests and status.
    """

    def __init__(
        self,
        max_events: int,
        window_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_events <= 0 or window_s <= 0:
            raise ValueError("max_events and window_s must be positive")
        self.max_events = max_events
        self.window_s = window_s
        self._now = monotonic
        self._sleep = sleep
        self._events: deque[float] = deque()
        self._lock: asyncio.Lock | None = None
        self._blocked_until = 0.0
        self.max_seen = 0
        self.total = 0
        self.waited_s = 0.0

    def _trim(self, now: float) -> None:
        while self._events and self._events[0] <= now - self.window_s:
            self._events.popleft()

    def block_for(self, seconds: float) -> None:
        """Refuse every acquisition for ``seconds`` (a rate-limit penalty)."""
        self._blocked_until = max(self._blocked_until, self._now() + max(0.0, seconds))

    @property
    def blocked_s(self) -> float:
        return max(0.0, self._blocked_until - self._now())

    async def acquire(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while True:
                now = self._now()
                wait = self._blocked_until - now
                if wait <= 0:
                    self._trim(now)
                    if len(self._events) < self.max_events:
                        self._events.append(now)
                        self.total += 1
                        self.max_seen = max(self.max_seen, len(self._events))
                        return
                    wait = self._events[0] + self.window_s - now
                wait = max(wait, 0.001)
                self.waited_s += wait
                await self._sleep(wait)


class RateLimitBudget:
    """The per-IP budget of one market source: its REST client and its
    websocket (re)connects draw from the same window, and a rate-limit reply
    seen by either blocks both for the penalty time."""

    def __init__(
        self,
        per_s: int = protocol.MARKET_REST_PER_S,
        *,
        margin_s: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        enforce: bool = True,
    ) -> None:
        self.limiter = SlidingWindowLimiter(per_s, 1.0 + margin_s, monotonic=monotonic, sleep=sleep)
        self.enforce = enforce
        self.penalties = 0

    async def acquire(self) -> None:
        if self.enforce:
            await self.limiter.acquire()

    def penalize(self, seconds: float) -> None:
        self.penalties += 1
        if self.enforce:
            self.limiter.block_for(seconds)

    @classmethod
    def unlimited(cls) -> RateLimitBudget:
        """A budget that never waits (replays: the recording already paced them)."""
        return cls(enforce=False)


def ws_message_limiter(margin_s: float = 0.5) -> SlidingWindowLimiter:
    """The per-connection client message limit (pings included), with margin."""
    return SlidingWindowLimiter(protocol.WS_MAX_CLIENT_MSGS, protocol.WS_MSG_WINDOW_S + margin_s)
