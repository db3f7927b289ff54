"""The health endpoint over a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from laptop_agents.session.health import HealthServer


async def _get(url: str, method: str = "GET") -> httpx.Response:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: httpx.request(method, url, timeout=5.0))


def test_health_200_when_healthy_and_503_when_not() -> None:
    state: dict[str, Any] = {"healthy": True, "status": "running"}

    def snapshot() -> tuple[bool, dict[str, Any]]:
        return state["healthy"], {"status": state["status"], "market_data_age_s": 0.5, "equity": 10_000.0}

    async def main() -> None:
        server = await HealthServer(snapshot, 0).start()
        try:
            assert server.port and server.url == f"http://127.0.0.1:{server.port}/health"
            r = await _get(server.url)
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            body = r.json()
            assert body == {"status": "running", "market_data_age_s": 0.5, "equity": 10_000.0, "healthy": True}
            state.update(healthy=False, status="stopping")
            r = await _get(server.url)
            assert r.status_code == 503 and r.json()["healthy"] is False and r.json()["status"] == "stopping"
            r = await _get(f"http://127.0.0.1:{server.port}/nope")
            assert r.status_code == 404
            r = await _get(server.url, "POST")
            assert r.status_code == 405
            r = await _get(f"http://127.0.0.1:{server.port}/")
            assert r.status_code == 404  # no status page without --dashboard
            assert server.requests == 5
        finally:
            await server.close()

    asyncio.run(main())


def test_dashboard_page_and_failing_snapshot() -> None:
    def snapshot() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("boom")

    async def main() -> None:
        server = await HealthServer(snapshot, 0, dashboard=True).start()
        try:
            r = await _get(f"http://127.0.0.1:{server.port}/")
            assert r.status_code == 200 and "fetch('/health'" in r.text
            r = await _get(server.url)
            assert r.status_code == 503 and r.json()["status"] == "error"
        finally:
            await server.close()

    asyncio.run(main())


def test_garbage_request_does_not_break_the_server() -> None:
    async def main() -> None:
        server = await HealthServer(lambda: (True, {"status": "running"}), 0).start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"NONSENSE\r\n\r\n")
            await writer.drain()
            data = await reader.read()
            writer.close()
            assert data.startswith(b"HTTP/1.1 400")
            r = await _get(server.url)
            assert r.status_code == 200
        finally:
            await server.close()

    asyncio.run(main())
