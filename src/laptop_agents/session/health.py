"""The health endpoint: ``GET /health`` on 127.0.0.1, served inside the runner's loop.

Why ``asyncio.start_server`` and not starlette + uvicorn: the endpoint answers
two GET paths with tiny bodies, and uvicorn's server installs its own signal
handlers, which would fight the runner's graceful shutdown. A few dozen lines
of HTTP/1.1 (one request per connection, ``Connection: close``) keep it
light, keep the core importable without a web stack and start in
microseconds.

``/health`` returns the runner's snapshot as JSON with HTTP 200 when healthy
and 503 when the data is stale or the session is stopping; ``/`` (for
``--dashboard``) is a small page that polls ``/health``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from laptop_agents.logs import get_logger, scrub_obj

log = get_logger("session.health")

HOST = "127.0.0.1"
_MAX_REQUEST_BYTES = 8192
_READ_TIMEOUT_S = 5.0

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>btc-laptop-agents</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;background:#111;color:#ddd}
.ok{color:#4c4}.bad{color:#e44}pre{background:#1b1b1b;padding:1em;border-radius:6px}</style></head>
<body><h2>btc-laptop-agents <span id="s"></span></h2><pre id="h">loading…</pre>
<script>
async function poll(){
  try{const r=await fetch('/health',{cache:'no-store'});const j=await r.json();
    const s=document.getElementById('s');s.textContent=j.status+(j.healthy?'':' (unhealthy)');
    s.className=j.healthy?'ok':'bad';document.getElementById('h').textContent=JSON.stringify(j,null,2);}
  catch(e){document.getElementById('s').textContent='unreachable';}
}
poll();setInterval(poll,2000);
</script></body></html>
"""

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request", 503: "Service Unavailable"}


class HealthServer:
    """Serves ``snapshot()`` -> ``(healthy, body)`` at ``/health``.

    ``port=0`` picks a free port; :attr:`port` and :attr:`url` tell which.
    """

    def __init__(self, snapshot: Callable[[], tuple[bool, dict[str, Any]]], port: int = 0,
                 *, dashboard: bool = False) -> None:
        self._snapshot = snapshot
        self._requested_port = port
        self.dashboard = dashboard
        self._server: asyncio.Server | None = None
        self.port: int | None = None
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/health"

    async def start(self) -> HealthServer:
        self._server = await asyncio.start_server(self._handle, HOST, self._requested_port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except TimeoutError:
                pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                return
            if len(head) > _MAX_REQUEST_BYTES:
                await self._send(writer, 400, "text/plain", b"request too large\n")
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            if len(parts) != 3:
                await self._send(writer, 400, "text/plain", b"bad request\n")
                return
            method, target = parts[0], parts[1].split("?", 1)[0]
            self.requests += 1
            if method not in ("GET", "HEAD"):
                await self._send(writer, 405, "text/plain", b"only GET\n", head_only=False)
                return
            if target == "/health":
                try:
                    healthy, body = self._snapshot()
                except Exception as exc:  # the endpoint must answer even if a snapshot fails
                    log.warning("health snapshot failed: %s", exc)
                    healthy, body = False, {"status": "error", "error": type(exc).__name__}
                body = {**body, "healthy": healthy}
                data = (json.dumps(scrub_obj(body), default=str, sort_keys=True) + "\n").encode()
                await self._send(writer, 200 if healthy else 503, "application/json", data, head_only=method == "HEAD")
            elif target in ("/", "/index.html") and self.dashboard:
                await self._send(writer, 200, "text/html; charset=utf-8", _PAGE.encode(), head_only=method == "HEAD")
            else:
                await self._send(writer, 404, "text/plain", b"not found: try /health\n", head_only=method == "HEAD")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad client must not disturb the session
            log.debug("health request failed: %s", exc)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, ctype: str, body: bytes, *, head_only: bool = False) -> None:
        header = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        writer.write(header if head_only else header + body)
        await writer.drain()
