"""Starting the real dashboard server on 127.0.0.1 and reading its event stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from laptop_agents.console.app import DashboardOptions
from laptop_agents.console.server import DashboardServer

FAST = DashboardOptions(interval_s=0.05, min_interval_s=0.01, keepalive_s=1.0)


@contextlib.asynccontextmanager
async def serving(view: Any, control: Any = None, *, bind: str | None = None,
                  **kwargs: Any) -> AsyncIterator[tuple[DashboardServer, httpx.AsyncClient]]:
    kwargs.setdefault("options", FAST)
    server = DashboardServer(view, control, **kwargs)
    await server.start(bind=bind)
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
            yield server, client
    finally:
        await server.close()


class SseReader:
    """Parses ``event:``/``data:`` messages from a streaming httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> tuple[str, dict[str, Any]]:
        event, data = "message", []
        async for line in self._lines:
            if line == "":
                if data:
                    return event, json.loads("\n".join(data))
                event = "message"
                continue
            if line.startswith(":") or line.startswith("retry:") or line.startswith("id:"):
                continue
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        raise EOFError("stream ended")

    async def until(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first update for which ``predicate(data)`` holds."""
        async def wait() -> dict[str, Any]:
            while True:
                _, data = await self._next()
                if predicate(data):
                    return data

        return await asyncio.wait_for(wait(), timeout)


async def raw_get(port: int, target: str, headers: str = "") -> bytes:
    """A GET with the request target sent byte for byte (httpx would normalise ``..``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
