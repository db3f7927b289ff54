"""The web dashboard served for real by uvicorn on 127.0.0.1, talked to with httpx."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from laptop_agents.console.app import DashboardConfigError, DashboardOptions
from laptop_agents.console.server import DashboardServer, token_from_env
from tests.console.fakes import FakeControl, FakeSession
from tests.console.helpers import FAST, SseReader, raw_get, serving

TOKEN = "a-long-enough-dashboard-token-123"


def _csrf(page: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert m, "the page carries its CSRF token"
    return m.group(1)


def test_health_keeps_the_contract() -> None:
    s = FakeSession()

    async def main() -> None:
        async with serving(s.view) as (_server, c):
            r = await c.get("/health")
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            assert r.headers["cache-control"] == "no-store"
            assert r.json() == {**s.state, "healthy": True}
            assert r.text == json.dumps({**s.state, "healthy": True}, sort_keys=True, default=str) + "\n"
            s.healthy, s.state["status"] = False, "stopping"
            r = await c.get("/health")
            assert r.status_code == 503 and r.json()["healthy"] is False and r.json()["status"] == "stopping"
            r = await c.head("/health")
            assert r.status_code == 503 and r.content == b""
            assert (await c.post("/health")).status_code == 405
            assert (await c.get("/nope")).status_code == 404

            def boom() -> tuple[bool, dict[str, Any]]:
                raise RuntimeError("boom")

            s.view.health_fn = boom
            r = await c.get("/health")
            assert r.status_code == 503 and r.json() == {"status": "error", "error": "RuntimeError", "healthy": False}
            r = await c.get("/api/status")  # the console still answers
            assert r.status_code == 200 and r.json()["status"] == "error"

    asyncio.run(main())


def test_page_static_assets_and_headers() -> None:
    s = FakeSession()

    async def main() -> None:
        async with serving(s.view, FakeControl()) as (server, c):
            r = await c.get("/")
            assert r.status_code == 200 and "text/html" in r.headers["content-type"]
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
            assert _csrf(r.text) == server.dashboard.csrf
            assert "<script>" not in r.text  # no inline script: the CSP forbids it
            assert 'src="/static/plotly.min.js"' in r.text and "cdn" not in r.text.lower()
            js = await c.get("/static/plotly.min.js")
            assert js.status_code == 200 and len(js.content) > 1_000_000 and "javascript" in js.headers["content-type"]
            assert (await c.get("/static/dashboard.js")).status_code == 200
            assert (await c.get("/static/dashboard.css")).status_code == 200
            assert (await c.get("/static/nope.js")).status_code == 404
            raw = await raw_get(server.port or 0, "/static/..%2f..%2fapp.py")
            assert raw.startswith(b"HTTP/1.1 404")

    asyncio.run(main())


def test_event_stream_pushes_changes_of_the_view() -> None:
    s = FakeSession()
    s.candle(64_000.0)

    async def main() -> None:
        async with serving(s.view) as (server, c), c.stream("GET", "/api/stream") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            sse = SseReader(r)
            event, first = await sse.next()
            assert event == "update" and first["reset"] is True and first["controls"] is False
            assert first["status"]["run_id"] == "live-test" and first["status"]["last_price"] == 64_000.0
            assert [x["close"] for x in first["streams"]["candles"]["items"]] == [64_000.0]
            assert first["streams"]["candles"]["seq"] == 1

            # The session moves on: a candle, a decision, a fill, a log line, new equity.
            s.candle(64_100.0)
            s.events(("decision", {"action": "enter", "reason": "sweep", "stop": 63_900.0, "target": 64_500.0}),
                     ("fill", {"client_id": "e1", "side": "BUY", "qty": 0.01, "price": 64_100.0, "reason": "sweep"}))
            s.state["position"] = {**s.state["position"], "qty": 0.01, "side": "long", "entry_price": 64_100.0}
            s.feed.on_log({"time": "2026-01-01T00:00:00.000+00:00", "level": "INFO", "component": "x", "message": "hi"})
            server.poke()
            upd = await sse.until(lambda d: "candles" in d.get("streams", {}))
            assert [x["close"] for x in upd["streams"]["candles"]["items"]] == [64_100.0]
            assert upd["streams"]["candles"]["items"][0]["seq"] == 2
            got, status = await _collect(sse, upd, {"decisions", "fills", "logs", "equity"})
            assert got["decisions"][0]["action"] == "enter" and got["decisions"][0]["reason"] == "sweep"
            assert got["fills"][0]["price"] == 64_100.0 and got["logs"][0]["message"] == "hi"
            assert status["position"]["qty"] == 0.01 and status["position"]["side"] == "long"

            # Only changes are sent: nothing new in the streams means no stream items.
            s.state["errors"] = {**s.state["errors"], "total": 3}
            upd = await sse.until(lambda d: (d.get("status") or {}).get("errors", {}).get("total") == 3)
            assert "candles" not in upd.get("streams", {})

    asyncio.run(main())


async def _collect(sse: SseReader, first: dict[str, Any], names: set[str]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Stream items and the latest status over updates until every stream in ``names`` had items."""
    got: dict[str, list[Any]] = {}
    status: dict[str, Any] = {}
    data = first
    while True:
        status = data.get("status") or status
        for k, v in data.get("streams", {}).items():
            got.setdefault(k, []).extend(v["items"])
        if names <= got.keys() and status:
            return got, status
        _, data = await sse.next()


def test_controls_post_only_with_csrf_and_same_origin() -> None:
    s = FakeSession()
    ctl = FakeControl()

    async def main() -> None:
        async with serving(s.view, ctl) as (server, c):
            csrf = _csrf((await c.get("/")).text)
            base = f"http://127.0.0.1:{server.port}"
            good = {"X-LA-CSRF": csrf, "Content-Type": "application/json"}
            for path in ("/api/control/stop", "/api/control/pause", "/api/control/resume"):
                r = await c.get(path)
                assert r.status_code == 405 and "POST" in r.headers["allow"]
            assert ctl.calls == []
            # CSRF: missing, wrong, from another origin, cross-site fetch, a form post.
            assert (await c.post("/api/control/stop", json={"flatten": True})).status_code == 403
            assert (await c.post("/api/control/stop", json={}, headers={"X-LA-CSRF": "x" * 43})).status_code == 403
            r = await c.post("/api/control/stop", json={}, headers={**good, "Origin": "http://evil.example"})
            assert r.status_code == 403 and "origin" in r.json()["error"]
            r = await c.post("/api/control/pause", json={}, headers={**good, "Sec-Fetch-Site": "cross-site"})
            assert r.status_code == 403
            r = await c.post("/api/control/stop", content=b"flatten=true",
                             headers={"X-LA-CSRF": csrf, "Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 415
            r = await c.post("/api/control/stop", json={"flatten": "yes"}, headers=good)
            assert r.status_code == 400 and "flatten" in r.json()["error"]
            assert ctl.calls == []
            # The real thing, as the page sends it.
            r = await c.post("/api/control/pause", json={}, headers={**good, "Origin": base, "Sec-Fetch-Site": "same-origin"})
            assert r.status_code == 200 and r.json() == {"ok": True, "action": "pause_entries"}
            assert (await c.post("/api/control/resume", json={}, headers=good)).status_code == 200
            r = await c.post("/api/control/stop", json={"flatten": False}, headers=good)
            assert r.json() == {"ok": True, "action": "stop", "flatten": False}
            await c.post("/api/control/stop", json={"flatten": True}, headers=good)
            assert ctl.calls == [("pause", None), ("resume", None), ("stop", False), ("stop", True)]
            assert server.dashboard.controls_used == ["pause_entries", "resume_entries", "stop", "stop"]

    asyncio.run(main())


def test_read_only_dashboard_and_failing_control() -> None:
    s = FakeSession()

    class Broken(FakeControl):
        def stop(self, flatten: bool) -> None:
            raise RuntimeError("no")

    async def main() -> None:
        async with serving(s.view, None) as (_server, c):
            csrf = _csrf((await c.get("/")).text)
            r = await c.post("/api/control/stop", json={}, headers={"X-LA-CSRF": csrf})
            assert r.status_code == 501
        async with serving(s.view, Broken()) as (_server, c):
            csrf = _csrf((await c.get("/")).text)
            r = await c.post("/api/control/stop", json={}, headers={"X-LA-CSRF": csrf})
            assert r.status_code == 500 and r.json()["error"] == "RuntimeError"
            assert (await c.get("/health")).status_code == 200  # still serving

    asyncio.run(main())


def test_foreign_host_header_is_refused_on_a_loopback_bind() -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own host name: refuse it."""
    s = FakeSession()

    async def main() -> None:
        async with serving(s.view) as (server, c):
            for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example"):
                r = await c.get("/api/status", headers={"Host": host})
                assert r.status_code == 400, host
            for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost"):
                assert (await c.get("/api/status", headers={"Host": host})).status_code == 200, host

    asyncio.run(main())


def test_public_bind_needs_a_token_and_every_request_without_it_gets_401() -> None:
    s = FakeSession()
    with pytest.raises(DashboardConfigError, match="LA_DASHBOARD_TOKEN"):
        DashboardServer(s.view, host="0.0.0.0")
    with pytest.raises(DashboardConfigError, match="at least 16"):
        DashboardServer(s.view, host="0.0.0.0", token="short")
    assert token_from_env({"LA_DASHBOARD_TOKEN": "  "}) is None
    assert token_from_env({"LA_DASHBOARD_TOKEN": TOKEN}) == TOKEN

    async def main() -> None:
        # Configured for a public bind (any Host answered, token required), served on the loopback.
        async with serving(s.view, FakeControl(), host="0.0.0.0", token=TOKEN, bind="127.0.0.1") as (server, c):
            assert server.dashboard.allowed_hosts is None
            paths = ["/", "/health", "/api/status", "/api/stream", "/api/runs", "/metrics", "/static/plotly.min.js",
                     "/runs/x/report.html", "/nope"]
            for bad in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN},
                        {"Cookie": f"la_dashboard={TOKEN}"}, {"Host": "elsewhere.example"}):
                for p in paths:
                    r = await c.get(p, headers=bad)
                    assert r.status_code == 401, (p, bad)
                    assert TOKEN not in r.text
                r = await c.post("/api/control/stop", json={"flatten": True}, headers=bad)
                assert r.status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            r = await c.get("/", headers=auth)
            assert r.status_code == 200 and TOKEN not in r.text
            assert (await c.get("/health", headers=auth)).status_code == 200
            # A browser: the 401 page is a login form (without any secret) ...
            r = await c.get("/", headers={"Accept": "text/html"})
            assert r.status_code == 401 and '<form method="post" action="/login">' in r.text
            r = await c.post("/login", data={"token": "wrong-token-wrong-token"})
            assert r.status_code == 401 and "set-cookie" not in r.headers
            r = await c.post("/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"})
            assert r.status_code == 401
            # ... that trades the token for an HttpOnly, SameSite=Strict cookie which is not the token.
            r = await c.post("/login", data={"token": TOKEN})
            assert r.status_code == 303 and r.headers["location"] == "/"
            cookie = r.headers["set-cookie"]
            assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and TOKEN not in cookie
            value = cookie.split(";")[0].split("=", 1)[1]
            r = await c.get("/api/status", headers={"Cookie": f"la_dashboard={value}"})
            assert r.status_code == 200 and TOKEN not in r.text

    asyncio.run(main())


def test_flood_of_event_streams_is_capped_and_the_server_keeps_serving() -> None:
    s = FakeSession()
    opts = DashboardOptions(max_clients=3, queue_size=8, interval_s=0.05, min_interval_s=0.01, keepalive_s=1.0)

    async def main() -> None:
        async with serving(s.view, options=opts) as (server, c):
            streams = []
            for _ in range(3):
                cm = c.stream("GET", "/api/stream")
                r = await cm.__aenter__()
                assert r.status_code == 200
                sse = SseReader(r)
                await sse.next()
                streams.append((cm, sse))
            extra = await asyncio.gather(*(c.get("/api/stream") for _ in range(20)))
            assert {r.status_code for r in extra} == {503}
            assert all(r.headers["retry-after"] == "5" for r in extra)
            assert server.dashboard.hub.rejected == 20
            # A burst of ordinary requests meanwhile: all answered, none broken.
            many = await asyncio.gather(*(c.get("/health") for _ in range(60)))
            assert {r.status_code for r in many} <= {200, 503} and sum(r.status_code == 200 for r in many) >= 1
            # The capped clients still get live updates.
            s.candle(65_000.0)
            server.poke()
            for _, sse in streams:
                await sse.until(lambda d: "candles" in d.get("streams", {}))
            # A slot frees up when a client leaves.
            cm, _ = streams.pop()
            await cm.__aexit__(None, None, None)
            for _ in range(100):
                if len(server.dashboard.hub.clients) < 3:
                    break
                await asyncio.sleep(0.02)
            async with c.stream("GET", "/api/stream") as r:
                assert r.status_code == 200
            for cm, _ in streams:
                await cm.__aexit__(None, None, None)

    asyncio.run(main())


def test_a_client_that_stops_reading_is_bounded_and_resynced() -> None:
    """A stalled browser: its queue stays bounded (oldest dropped) and when it
    reads again it first gets a full snapshot, while others stay live."""
    s = FakeSession()
    opts = DashboardOptions(max_clients=4, queue_size=4, interval_s=0.02, min_interval_s=0.0, keepalive_s=1.0)
    big = "x" * 4000

    async def main() -> None:
        async with serving(s.view, options=opts) as (server, c):
            async with c.stream("GET", "/api/stream") as slow_r, c.stream("GET", "/api/stream") as fast_r:
                slow, fast = SseReader(slow_r), SseReader(fast_r)
                await slow.next()
                await fast.next()
                hub = server.dashboard.hub
                fast_got = 0

                async def drain() -> None:
                    nonlocal fast_got
                    while True:
                        await fast.next(timeout=30.0)
                        fast_got += 1

                drainer = asyncio.create_task(drain())
                for i in range(3000):  # until the loopback socket buffers fill and a queue overflows
                    for _ in range(20):
                        s.feed.on_log({"time": "", "level": "INFO", "component": "t", "message": f"{i} {big}"})
                    server.poke()
                    await asyncio.sleep(0.005)
                    assert all(len(cl.queue) <= opts.queue_size for cl in hub.clients)
                    if any(cl.dropped for cl in hub.clients):
                        break
                overflowed = [cl for cl in hub.clients if cl.dropped]
                assert len(overflowed) == 1, "only the stalled client's queue overflowed; the reading one kept up"
                assert fast_got > 0 and not drainer.done()
                drainer.cancel()
                # The stalled client reads again: after the bytes already in flight it gets a reset.
                data = await slow.until(lambda d: d.get("reset") is True, timeout=30.0)
                assert "status" in data and "streams" in data

    asyncio.run(main())


def test_past_runs_are_listed_and_served_read_only(tmp_path: Path) -> None:
    runs = tmp_path / "ws" / "runs"
    a = runs / "live-20260101-000000-aaaaaa"
    b = runs / "replay-20260102-000000-bbbbbb"
    a.mkdir(parents=True)
    b.mkdir()
    (a / "report.html").write_text("<html><body>report A</body></html>", encoding="utf-8")
    (a / "summary.json").write_text(json.dumps({"reason": "duration", "exit_code": 0, "final_equity": 10_010.5,
                                                "mode": "live-session", "started_at": "2026-01-01T00:00:00+00:00"}))
    (a / "trades.csv").write_text("n,side\n", encoding="utf-8")
    (b / "summary.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "ws" / "secret.txt").write_text("TOP SECRET", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.html").write_text("OUTSIDE", encoding="utf-8")
    (runs / "evil").symlink_to(outside, target_is_directory=True)
    (b / "report.html").symlink_to(tmp_path / "ws" / "secret.txt")
    s = FakeSession()

    async def main() -> None:
        async with serving(s.view, runs_dir=runs) as (server, c):
            listed = (await c.get("/api/runs")).json()
            ids = [r["run_id"] for r in listed]
            assert set(ids) == {a.name, b.name}  # the symlinked directory is not a run
            ra = next(r for r in listed if r["run_id"] == a.name)
            assert ra["report"] is True and ra["reason"] == "duration" and ra["final_equity"] == 10_010.5
            rb = next(r for r in listed if r["run_id"] == b.name)
            assert rb["summary"] is False
            r = await c.get(f"/runs/{a.name}/report.html")
            assert r.status_code == 200 and "report A" in r.text
            assert "sandbox" in r.headers["content-security-policy"]
            assert (await c.get(f"/runs/{a.name}/summary.json")).json()["exit_code"] == 0
            assert (await c.get(f"/runs/{a.name}/trades.csv")).status_code == 404  # not on the list of files
            assert (await c.get(f"/runs/{b.name}/report.html")).status_code == 404  # a symlink out of runs/
            assert (await c.get("/runs/evil/report.html")).status_code == 404
            assert (await c.post(f"/runs/{a.name}/report.html")).status_code == 405
            port = server.port or 0
            for target in ("/runs/../secret.txt", "/runs/..%2Fsecret.txt/report.html", "/runs/%2e%2e/report.html",
                           "/runs/%2e%2e/secret.txt", f"/runs/{a.name}/..%2F..%2Fsecret.txt",
                           f"/runs/{a.name}/%2e%2e%2f%2e%2e%2fsecret.txt", "/runs/..%5csecret.txt/report.html",
                           "/runs/%00/report.html", "/runs//etc/passwd", "/runs/evil/report.html"):
                raw = await raw_get(port, target)
                assert raw.split(b"\r\n", 1)[0] in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request"), target
                assert b"TOP SECRET" not in raw and b"OUTSIDE" not in raw, target
            # The page's live data carries the list with links the page builds.
            async with c.stream("GET", "/api/stream") as r:
                _, first = await SseReader(r).next()
                assert {x["run_id"] for x in first["runs"]} == {a.name, b.name}

    asyncio.run(main())


def test_the_server_leaves_signal_handlers_alone_and_port_zero_picks_a_port() -> None:
    s = FakeSession()
    seen: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = signal.getsignal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(1))
        try:
            a = await DashboardServer(s.view, options=FAST).start()
            b = await DashboardServer(s.view, options=FAST).start()
            try:
                assert a.port and b.port and a.port != b.port
                assert a.url == f"http://127.0.0.1:{a.port}/"
                assert signal.getsignal(signal.SIGTERM) is before
                signal.raise_signal(signal.SIGUSR1)
                await asyncio.sleep(0.05)
                assert seen == [1]
                with pytest.raises(OSError):  # the port is taken: a plain OSError, nothing served
                    await DashboardServer(s.view, port=a.port, options=FAST).start()
            finally:
                await a.close()
                await b.close()
            assert signal.getsignal(signal.SIGTERM) is before
            async with httpx.AsyncClient() as c:
                with pytest.raises(httpx.ConnectError):
                    await c.get(f"http://127.0.0.1:{a.port}/health")
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    asyncio.run(main())


def test_close_ends_open_streams_promptly() -> None:
    s = FakeSession()

    async def main() -> None:
        server = await DashboardServer(s.view, options=FAST).start()
        async with httpx.AsyncClient(timeout=10.0) as c, c.stream("GET", f"http://127.0.0.1:{server.port}/api/stream") as r:
            sse = SseReader(r)
            await sse.next()
            await server.close()
            assert server.forced_close is False  # every stream ended: a graceful stop
            with pytest.raises((EOFError, httpx.HTTPError)):
                while True:
                    await sse.next(timeout=5.0)

    asyncio.run(main())
