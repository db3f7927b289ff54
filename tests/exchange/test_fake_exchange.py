"""The fake exchange speaks the documented protocol and enforces its rules,
checked with plain httpx/websockets clients (not ours)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from laptop_agents.exchange import protocol
from laptop_agents.testing.fake_exchange import (
    FakeExchangeError,
    Fault,
    FaultSpecError,
    parse_schedule,
    start_fake_exchange,
)
from tests.exchange.support import START_MS, fake_exchange, run

SUB = {"op": "subscribe", "args": [{"symbol": "BTCUSDT", "ch": "market_kline_1min"}]}


async def _closed_by_server(ws: Any, *send: str) -> int | None:
    """Send ``send``, then read until the server closes the connection; its
    close code (None: none sent). A send may meet the close already."""
    try:
        for frame in send:
            await ws.send(frame)
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


def test_kline_rest_newest_first_capped_with_forming_row() -> None:
    with fake_exchange(speed=1.0) as fake:
        market = fake.exchange.market
        r = httpx.get(fake.rest_url + protocol.PATH_KLINE, params={"symbol": "BTCUSDT", "interval": "1m", "limit": 500})
        body = r.json()
        assert r.status_code == 200 and body["code"] == 0
        rows = body["data"]
        assert len(rows) == 200  # silently capped
        times = [row["time"] for row in rows]
        assert times == sorted(times, reverse=True)  # newest first
        now_index = market.index_at(fake.now_ms())
        assert market.index_at(times[0]) == now_index  # the forming candle is included
        closed = rows[1]
        assert float(closed["quoteVol"]) == market.candle(now_index - 1).volume  # swapped: quoteVol is BTC
        assert "date" in r.headers
        default = httpx.get(fake.rest_url + protocol.PATH_KLINE, params={"symbol": "BTCUSDT", "interval": "1m"})
        assert len(default.json()["data"]) == 100
        bad = httpx.get(fake.rest_url + protocol.PATH_KLINE, params={"symbol": "BTCUSDT", "interval": "2m"}).json()
        assert r.status_code == 200 and bad["code"] == 10002  # errors come with HTTP 200


def test_funding_is_in_percent() -> None:
    with fake_exchange(speed=1.0) as fake:
        data = httpx.get(fake.rest_url + protocol.PATH_FUNDING_RATE, params={"symbol": "BTCUSDT"}).json()["data"]
        fraction = fake.exchange.market.funding_rate(fake.now_ms())
        assert float(data["fundingRate"]) == pytest.approx(fraction * 100)


def test_ws_connect_message_no_ack_ping_pong_and_pushes() -> None:
    with fake_exchange() as fake:

        async def go() -> tuple[list[dict], dict]:
            async with connect(fake.ws_url, ping_interval=None) as ws:
                first = json.loads(await ws.recv())
                await ws.send(json.dumps(SUB))
                await ws.send(json.dumps({"op": "ping", "ping": 1234}))
                got = [json.loads(await ws.recv()) for _ in range(8)]
                return [first, *got], {}

        msgs, _ = run(go())
        assert msgs[0] == {"op": "connect", "data": {"result": True}}
        assert not any(m.get("op") == "subscribe" for m in msgs)  # no ack
        pong = [m for m in msgs if m.get("op") == "ping"]
        assert pong and pong[0]["pong"] == 1234 and isinstance(pong[0]["ping"], int)
        pushes = [m for m in msgs if m.get("ch") == "market_kline_1min"]
        assert pushes and set(pushes[0]["data"]) == {"o", "h", "l", "c", "b", "q"}
        assert all("time" not in p["data"] for p in pushes)  # no open time, no closed flag


def test_rollover_repushes_the_closed_candle_with_final_values() -> None:
    with fake_exchange() as fake:
        market = fake.exchange.market

        async def go() -> list[dict]:
            async with connect(fake.ws_url, ping_interval=None) as ws:
                await ws.recv()
                await ws.send(json.dumps(SUB))
                return [json.loads(await ws.recv()) for _ in range(40)]

        pushes = run(go())
        finals = [p for p in pushes if p["ts"] % 60_000 == 59_999]
        assert finals
        for p in finals:
            c = market.candle(market.index_at(p["ts"]))
            assert (float(p["data"]["h"]), float(p["data"]["c"]), float(p["data"]["b"])) == (c.high, c.close, c.volume)


def test_silent_client_is_closed_after_the_ping_timeout() -> None:
    with fake_exchange(ping_timeout_s=0.6) as fake:

        async def go() -> int | None:
            async with connect(fake.ws_url, ping_interval=None) as ws:
                await ws.send(json.dumps(SUB))
                return await _closed_by_server(ws)

        assert run(go()) == 1000
        stats = fake.stats()
        assert stats["ws_ping_timeouts"] == 1
        assert stats["closed_connections"][0]["close_reason"].startswith("no ping")


def test_more_than_five_messages_a_second_disconnects() -> None:
    with fake_exchange() as fake:

        async def go() -> int | None:
            async with connect(fake.ws_url, ping_interval=None) as ws:
                await ws.recv()
                return await _closed_by_server(ws, *(json.dumps({"op": "ping", "ping": i}) for i in range(8)))

        assert run(go()) == 1008
        stats = fake.stats()
        assert stats["ws_rate_violations"] == 1 and stats["ws_max_msgs_in_window"] == 6


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_both_sockets_keep_the_same_connection_rules(private: bool) -> None:
    """The public and the private socket live one connection life: a refused
    handshake when the fault is armed, the connect message, a pong, the close
    on a sixth message in a second (1008) and on a missing ping (1000)."""
    with fake_exchange(ping_timeout_s=0.6) as fake:
        url = fake.private_ws_url if private else fake.ws_url

        async def go() -> tuple[bool, Any, Any, int | None, int | None]:
            await asyncio.to_thread(fake.inject, "reject_connect", count=1)
            try:
                async with connect(url, ping_interval=None):
                    refused = False
            except websockets.InvalidStatus:
                refused = True
            async with connect(url, ping_interval=None) as ws:
                first = json.loads(await ws.recv())
                await ws.send(json.dumps({"op": "ping", "ping": 7}))
                pong = json.loads(await ws.recv())
                too_many = await _closed_by_server(ws, *(json.dumps({"op": "ping", "ping": i}) for i in range(5)))
            async with connect(url, ping_interval=None) as ws:
                silent = await _closed_by_server(ws)
            return refused, first, pong, too_many, silent

        refused, first, pong, too_many, silent = run(go())
        assert refused and first == protocol.CONNECT_MESSAGE
        assert pong["op"] == "ping" and pong["pong"] == 7
        assert START_MS // 1000 <= pong["ping"] <= fake.now_ms() // 1000  # the exchange's (simulated) seconds
        assert (too_many, silent) == (1008, 1000)
        stats = fake.stats()
        assert stats["ws_rejected"] == 1 and stats["ws_rate_violations"] == 1 and stats["ws_ping_timeouts"] == 1
        closed = stats["closed_connections"]
        assert [c["close_reason"] for c in closed] == ["more than 5 messages per second", "no ping for 0.6 s"]
        assert all(bool(c.get("private")) is private for c in closed)


def test_control_endpoint_arms_and_rejects_faults() -> None:
    with fake_exchange(speed=1.0) as fake:
        ok = httpx.post(fake.rest_url + "/_fake/faults", json=[{"kind": "http_status", "status": 503, "count": 1}])
        assert ok.status_code == 200 and ok.json() == {"armed": ["http_status"]}
        r = httpx.get(fake.rest_url + protocol.PATH_TICKERS)
        assert r.status_code == 503
        assert httpx.get(fake.rest_url + protocol.PATH_TICKERS).status_code == 200
        bad = httpx.post(fake.rest_url + "/_fake/faults", json={"kind": "explode"})
        assert bad.status_code == 400 and "unknown fault kind 'explode'" in bad.json()["error"]
        bad2 = httpx.post(fake.rest_url + "/_fake/faults", json={"kind": "slow", "speed": 3})
        assert bad2.status_code == 400 and "unknown fault field" in bad2.json()["error"]
        httpx.post(fake.rest_url + "/_fake/faults", json={"kind": "error_code", "code": 10006, "count": 5})
        assert httpx.delete(fake.rest_url + "/_fake/faults").json() == {"cleared": True}
        assert httpx.get(fake.rest_url + protocol.PATH_TICKERS).json()["code"] == 0
        assert httpx.get(fake.rest_url + "/_fake/time").json()["speed"] == 1.0


def test_schedule_syntax() -> None:
    sched = parse_schedule("silence@90:20, disconnect@30, http=429@10:5, code=10006@5:2, slow@1:2.5, malformed@2:3")
    assert [s.at_s for s in sched] == [1, 2, 5, 10, 30, 90]
    by_kind = {s.fault.kind: s.fault for s in sched}
    assert by_kind["silence"].seconds == 20 and by_kind["silence"].pong
    assert by_kind["http_status"].status == 429 and by_kind["http_status"].count == 5
    assert by_kind["error_code"].code == 10006 and by_kind["slow"].seconds == 2.5
    assert by_kind["malformed"].count == 3
    assert not parse_schedule("silence_all@1:2")[0].fault.pong
    for bad in ("boom@1", "disconnect", "http=429@x", "silence@-1:2", "http=200@1"):
        with pytest.raises(FaultSpecError):
            parse_schedule(bad)
    with pytest.raises(FaultSpecError):
        Fault("malformed", count=0)


def test_scheduled_fault_fires() -> None:
    with fake_exchange(speed=1.0, faults=tuple(parse_schedule("http=500@0:1"))) as fake:
        deadline = time.monotonic() + 5
        while "http_status" not in fake.stats()["faults_fired"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert httpx.get(fake.rest_url + protocol.PATH_TICKERS).status_code == 500


def test_refuses_non_loopback_hosts() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(FakeExchangeError, match="loopback|not an IP"):
            start_fake_exchange(host=host)


def test_cli_serves_and_refuses_public_hosts(tmp_path: object) -> None:
    ws = str(tmp_path)
    bad = subprocess.run(
        [sys.executable, "-m", "laptop_agents", "fake-exchange", "--workspace", ws, "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2 and "not a loopback address" in bad.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "laptop_agents", "fake-exchange", "--workspace", ws, "--port", "0", "--seed", "3",
         "--speed", "60", "--faults", "disconnect@100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake exchange: REST http://127.0.0.1:"), line
        rest_url = line.split()[3]
        r = httpx.get(rest_url + protocol.PATH_KLINE, params={"symbol": "BTCUSDT", "interval": "1m", "limit": 2})
        assert r.json()["code"] == 0 and len(r.json()["data"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0
