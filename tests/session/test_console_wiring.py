"""The console inside a real live session (in-process, mock source, real servers on 127.0.0.1):
the dashboard updates as candles are committed, its controls act on the session and are
journaled, a pause survives a restart, a stop carries its own flatten word, /health and
/metrics are served by the console app, counters move."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from laptop_agents.console.view import CompositeView, LiveFeed
from laptop_agents.session.parts import ConsoleOptions
from laptop_agents.stop_reasons import StopReason
from tests.console.helpers import SseReader
from tests.console.test_metrics import _samples
from tests.session.live import config, controls, events, session, until


def _dash_opts() -> ConsoleOptions:
    return ConsoleOptions(dashboard_port=0)


def test_dashboard_rides_the_session_and_its_controls_act_and_are_journaled(tmp_path: Path) -> None:
    """Candles, fills and status reach an open page by server-sent events after
    each commit; /metrics counters move; pause writes pause.json and blocks
    entries (the engine says why: "paused"), resume removes it; stop
    without flatten ends the session with kill_switch and keeps the position;
    the page's last update says "stopped (kill_switch)"."""
    cfg = config(**{"system.flatten_on_kill": True})
    runner = session(tmp_path, cfg, plan="hold", console=_dash_opts(), dashboard=True)

    async def main() -> dict[str, Any]:
        task = asyncio.create_task(runner.run())
        try:
            await until(lambda: runner.console and runner.console.dashboard and runner.console.dashboard.port,
                        what="dashboard up")
            server = runner.console.dashboard  # type: ignore[union-attr]
            assert server is not None
            csrf = {"X-LA-CSRF": server.dashboard.csrf}
            async with httpx.AsyncClient(base_url=server.url.rstrip("/"), timeout=10.0) as c:
                async with c.stream("GET", "/api/stream") as r:
                    sse = SseReader(r)
                    _, first = await sse.next()
                    assert first["reset"] and first["controls"] is True and first["status"]["run_id"] == "live-t"
                    seen: dict[str, int] = {}

                    def grows(d: dict[str, Any]) -> bool:
                        for name, part in d.get("streams", {}).items():
                            seen[name] = seen.get(name, 0) + len(part["items"])
                        return seen.get("candles", 0) >= 3 and seen.get("fills", 0) >= 1
                    await sse.until(grows, timeout=30)
                    m1 = _samples((await c.get("/metrics")).text)
                    await until(lambda: runner.counts["candles"] >= m1[("laptop_agents_candles_processed_total", ())] + 3,
                                what="more candles")
                    m2 = _samples((await c.get("/metrics")).text)
                    assert m2[("laptop_agents_candles_processed_total", ())] > m1[("laptop_agents_candles_processed_total", ())]
                    assert m2[("laptop_agents_fills_total", (("liquidity", "taker"), ("side", "BUY")))] >= 1
                    assert m2[("laptop_agents_position_qty", ())] == pytest.approx(0.01)

                    r = await c.post("/api/control/pause", json={}, headers=csrf)
                    assert r.status_code == 200 and r.json()["ok"] is True
                    assert runner.controls.paused and (tmp_path / "pause.json").is_file()
                    st = (await c.get("/api/status")).json()
                    assert st["entries_paused"] is True and st["entries_blocked"] == "paused"
                    r = await c.post("/api/control/resume", json={}, headers=csrf)
                    assert r.status_code == 200 and not runner.controls.paused
                    assert not (tmp_path / "pause.json").exists()

                    assert (await c.get("/api/control/stop")).status_code == 405
                    r = await c.post("/api/control/stop", json={"flatten": False}, headers=csrf)
                    assert r.status_code == 200 and r.json()["flatten"] is False
                    last = await sse.until(lambda d: d.get("status", {}).get("status") == "stopped", timeout=30)
                    assert last["status"]["reason"] == "kill_switch"
            return {"outcome": await asyncio.wait_for(task, 30)}
        finally:
            if not task.done():
                runner.request_stop(StopReason.SIGNAL, "test teardown")
                await task

    res = asyncio.run(main())
    outcome = res["outcome"]
    assert outcome.reason is StopReason.KILL_SWITCH and outcome.exit_code == 0
    assert outcome.detail == "dashboard stop (keep the position)"
    assert outcome.summary["position"]["qty"] == pytest.approx(0.01)  # flatten_on_kill said yes; the stop said no
    acts = [(e["action"], e["source"]) for e in controls(tmp_path)]
    assert acts == [("pause_entries", "dashboard"), ("resume_entries", "dashboard"), ("stop", "dashboard")]
    assert controls(tmp_path)[-1]["flatten"] is False


def _a_paused_start(tmp_path: Path, cfg: Any, run_id: str) -> list[tuple[str, Any]]:
    """Run a session on the workspace's pause file: it starts paused and no
    entry goes through (a strategy that ignores entries_blocked, so the
    broker's refusal shows). Returns its control events' (source, paused_at)."""
    runner = session(tmp_path, cfg, plan="roundtrip", run_id=run_id)

    async def main() -> Any:
        task = asyncio.create_task(runner.run())
        await until(lambda: runner.counts["candles"] >= 3, what="trading")
        assert runner.controls.paused
        runner.request_stop(StopReason.SIGNAL, "test")
        return await asyncio.wait_for(task, 30)

    out = asyncio.run(main())
    assert out.summary["position"]["qty"] == 0.0  # no entry while paused
    refused = [e for e in events(tmp_path, run_id) if e["kind"] == "order"]
    assert refused and all(e["status"] == "rejected" and e["reason"] == "paused" for e in refused)
    return [(e["source"], e.get("paused_at")) for e in controls(tmp_path, run_id)]


def test_a_pause_survives_a_restart_and_a_kill_file_carries_its_flatten_word(tmp_path: Path) -> None:
    cfg = config(**{"system.flatten_on_kill": False})
    first = session(tmp_path, cfg, plan="hold", run_id="live-a", store=tmp_path / "state.db")

    async def one() -> Any:
        task = asyncio.create_task(first.run())
        await until(lambda: first.counts["candles"] >= 2, what="trading")
        first.controls.pause_entries()
        (tmp_path / "kill.txt").write_text(json.dumps({"reason": "test", "flatten": True}))
        return await asyncio.wait_for(task, 30)

    out1 = asyncio.run(one())
    assert out1.reason is StopReason.KILL_SWITCH
    assert out1.summary["position"]["qty"] == 0.0  # the kill file's word beats flatten_on_kill=false
    assert (tmp_path / "pause.json").is_file() and not (tmp_path / "kill.txt").exists()
    paused_at = json.loads((tmp_path / "pause.json").read_text())["paused_at"]
    # The product's one time form (domain.isotime.ms_to_iso), as in kill.txt and the reports.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", paused_at), paused_at

    assert _a_paused_start(tmp_path, cfg, "live-b") == [("pause_file", paused_at)]
    assert (tmp_path / "pause.json").is_file()  # still paused for the next start


def test_a_pause_file_of_an_earlier_version_still_pauses(tmp_path: Path) -> None:
    """Before the pause was written in the ``Z`` form, ``paused_at`` ended in
    ``+00:00``; a user upgrading with such a file must still start paused."""
    old = {"paused_at": "2026-03-01T10:00:00+00:00", "run_id": "live-old", "source": "dashboard", "pid": 1}
    (tmp_path / "pause.json").write_text(json.dumps(old) + "\n")
    assert _a_paused_start(tmp_path, config(), "live-t") == [("pause_file", old["paused_at"])]
    assert json.loads((tmp_path / "pause.json").read_text()) == old  # left as it was


def test_health_port_alone_serves_health_and_metrics_but_no_pages_or_controls(tmp_path: Path) -> None:
    runner = session(tmp_path, config(), health_port=0)

    async def main() -> dict[str, Any]:
        task = asyncio.create_task(runner.run())
        try:
            await until(lambda: runner.health is not None and runner.counts["candles"] >= 2, what="health up")
            assert runner.health is not None and runner.console is not None and runner.console.dashboard is None
            base = runner.health.url.removesuffix("/health")
            async with httpx.AsyncClient(base_url=base, timeout=10.0) as c:
                h = await c.get("/health")
                got = {p: (await c.get(p)).status_code for p in ("/", "/api/status", "/api/stream")}
                stop = await c.post("/api/control/stop", json={"flatten": True})
                metrics = await c.get("/metrics")
            return {"health": h, "got": got, "stop": stop.status_code, "metrics": metrics.text}
        finally:
            runner.request_stop(StopReason.SIGNAL, "test")
            await task

    res = asyncio.run(main())
    h = res["health"]
    assert h.status_code == 200 and h.headers["content-type"] == "application/json"
    body = h.json()
    assert body["status"] == "running" and body["healthy"] is True and body["run_id"] == "live-t"
    assert list(body) == sorted(body)
    assert res["got"] == {"/": 404, "/api/status": 404, "/api/stream": 404} and res["stop"] in (404, 405)
    assert _samples(res["metrics"])[("laptop_agents_candles_processed_total", ())] >= 2


def test_the_health_only_app_keeps_the_old_contract() -> None:
    """What the hand-written server promised: 200/503 by health, sorted JSON with
    ``healthy``, 404 elsewhere, 405 for POST, 400 for garbage, 503 if the
    snapshot raises -- and it keeps serving."""
    from laptop_agents.console.server import DashboardServer

    state: dict[str, Any] = {"healthy": True, "status": "running", "boom": False}

    def snapshot() -> tuple[bool, dict[str, Any]]:
        if state["boom"]:
            raise RuntimeError("boom")
        return state["healthy"], {"status": state["status"], "market_data_age_s": 0.5, "equity": 10_000.0}

    async def main() -> None:
        server = await DashboardServer(CompositeView(snapshot, LiveFeed()), health_only=True).start()
        try:
            url = server.health_url
            async with httpx.AsyncClient(timeout=5.0) as c:
                r = await c.get(url)
                assert r.status_code == 200 and r.json() == {"status": "running", "market_data_age_s": 0.5,
                                                             "equity": 10_000.0, "healthy": True}
                state.update(healthy=False, status="stopping")
                r = await c.get(url)
                assert r.status_code == 503 and r.json()["status"] == "stopping"
                assert (await c.get(server.url + "nope")).status_code == 404
                assert (await c.post(url)).status_code == 405
                assert (await c.head(url)).status_code == 503
                state["boom"] = True
                r = await c.get(url)
                assert r.status_code == 503 and r.json()["status"] == "error"
                state.update(boom=False, healthy=True, status="running")
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"NONSENSE\r\n\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 5.0)
            writer.close()
            assert data.startswith(b"HTTP/1.1 400")
            async with httpx.AsyncClient(timeout=5.0) as c:
                assert (await c.get(url)).status_code == 200
        finally:
            await server.close()

    asyncio.run(main())
