"""Server-sent events fan-out with a client cap and bounded per-client queues.

A browser that stops reading (a laptop lid closed, a tab in the background, a
slow link) must cost the session a bounded amount of memory and no time: each
client has a queue of at most ``queue_size`` encoded messages; when it is full
the oldest is dropped and the client is marked for a *resync* -- its next
message is a fresh full snapshot instead of the deltas it missed, so a slow
client sees a coherent page again as soon as it catches up. More than
``max_clients`` streams at once are refused (the route answers 503).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from laptop_agents.console.view import clean_json
from laptop_agents.logs import scrub_obj


def encode(event: str, data: Any, *, msg_id: int | None = None) -> bytes:
    """One SSE message (``event:``/``data:`` lines and a blank line); the data is
    JSON on one line, scrubbed of secrets."""
    import json

    text = json.dumps(scrub_obj(clean_json(data)), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    head = f"id: {msg_id}\n" if msg_id is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n".encode()


class SseClient:
    """One connected stream: a bounded queue and a wake-up event."""

    __slots__ = ("closed", "dropped", "peer", "queue", "resync", "wake")

    def __init__(self, queue_size: int, peer: str = "") -> None:
        self.queue: deque[bytes] = deque(maxlen=queue_size)
        self.wake = asyncio.Event()
        self.resync = False
        self.closed = False
        self.dropped = 0
        self.peer = peer

    def put(self, message: bytes) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            self.resync = True  # the deltas it keeps no longer add up: send a snapshot next
        self.queue.append(message)
        self.wake.set()

    def request_resync(self) -> None:
        self.resync = True
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class SseHub:
    """The set of connected clients; ``broadcast`` never waits for any of them."""

    def __init__(self, *, max_clients: int = 16, queue_size: int = 64) -> None:
        if max_clients < 1 or queue_size < 1:
            raise ValueError("max_clients and queue_size must be >= 1")
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.clients: set[SseClient] = set()
        self.closed = False
        self.rejected = 0
        self.served = 0
        self.changed = asyncio.Event()  # set when the set of clients changes

    def add(self, peer: str = "") -> SseClient | None:
        """A new client, or None when the hub is full or closing."""
        if self.closed or len(self.clients) >= self.max_clients:
            self.rejected += 1
            return None
        client = SseClient(self.queue_size, peer)
        self.clients.add(client)
        self.served += 1
        self.changed.set()
        return client

    def remove(self, client: SseClient) -> None:
        self.clients.discard(client)
        client.close()
        self.changed.set()

    def broadcast(self, message: bytes) -> None:
        for client in list(self.clients):
            client.put(message)

    def resync_all(self) -> None:
        for client in list(self.clients):
            client.request_resync()

    @property
    def dropped(self) -> int:
        return sum(c.dropped for c in self.clients)

    def close(self) -> None:
        self.closed = True
        for client in list(self.clients):
            client.close()
        self.changed.set()
