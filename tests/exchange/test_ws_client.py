"""The websocket client against the real fake exchange: message limit, JSON
pings, idle timeout, reconnect with backoff and resubscribe."""

from __future__ import annotations

import asyncio
import socket
import time

from laptop_agents.exchange.ws import BitunixWsClient, WsClosed, WsEvent, WsFrame, WsOpened, WsOptions
from tests.exchange.support import fake_exchange, run

CHANNELS = ["market_kline_1min", "price"]


def ws_client(url: str, **opts: float) -> BitunixWsClient:
    params = {"ping_interval_s": 0.25, "idle_timeout_s": 1.5, "backoff_base_s": 0.05, "backoff_max_s": 0.4}
    params.update(opts)
    return BitunixWsClient(url, "BTCUSDT", CHANNELS, options=WsOptions(**params))


async def gather_events(client: BitunixWsClient, seconds: float | None = None,
                        until: object = None, timeout: float = 15.0) -> list[WsEvent]:
    out: list[WsEvent] = []
    deadline = time.monotonic() + (seconds if seconds is not None else timeout)
    events = client.events()
    try:
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                    ev = await anext(events)
            except TimeoutError:
                break
            out.append(ev)
            if callable(until) and until(out):
                break
    finally:
        await client.aclose()
    return out


def test_never_more_than_five_messages_a_second_and_always_pings() -> None:
    # The client wants to ping 50 times a second; the limiter must hold it to
    # the exchange's 5 messages per second, and the fake (which disconnects on
    # a violation and on 2 s without a ping) must report neither.
    with fake_exchange(ping_timeout_s=2.0) as fake:
        client = ws_client(fake.ws_url, ping_interval_s=0.02)
        events = run(gather_events(client, seconds=2.0))
        stats = fake.stats()
        assert stats["ws_rate_violations"] == 0 and stats["ws_ping_timeouts"] == 0
        assert stats["ws_connections"] == 1  # never disconnected
        assert 0 < stats["ws_max_msgs_in_window"] <= 5
        assert 5 <= stats["ws_pings"] <= 11  # the limiter, not the client (50/s), set the pace
        assert stats["ws_max_ping_gap_s"] < 2.0
        assert client.max_msgs_in_window <= 5
        assert not any(isinstance(e, WsClosed) for e in events)


def test_normal_ping_interval_keeps_the_connection() -> None:
    # A client pinging every 0.2 s against a server that closes after 1 s
    # without a ping: the margin (0.8 s) absorbs a loaded machine's stalls, and
    # the session lasts over two timeouts, so a client that did not ping would
    # have been closed (tests/exchange/test_fake_exchange.py shows the server does).
    ping_s, timeout_s = 0.2, 1.0
    with fake_exchange(ping_timeout_s=timeout_s) as fake:
        client = ws_client(fake.ws_url, ping_interval_s=ping_s)
        events = run(gather_events(client, seconds=2.2 * timeout_s))
        stats = fake.stats()
        assert stats["ws_ping_timeouts"] == 0 and stats["ws_connections"] == 1
        assert stats["ws_max_ping_gap_s"] < timeout_s
        assert sum(isinstance(e, WsFrame) for e in events) > 20


def test_silence_with_pongs_is_an_idle_timeout_then_reconnects() -> None:
    with fake_exchange() as fake:
        client = ws_client(fake.ws_url, ping_interval_s=0.1, idle_timeout_s=0.6)

        async def go() -> list[WsEvent]:
            async def arm() -> None:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(fake.inject, "silence", seconds=1.0)

            task = asyncio.create_task(arm())
            out = await gather_events(
                client, until=lambda evs: any(isinstance(e, WsOpened) and e.conn >= 2 for e in evs)
                and sum(isinstance(e, WsFrame) and '"ch"' in str(e.data) for e in evs[-5:]) >= 3,
            )
            await task
            return out

        events = run(go())
        idle = [e for e in events if isinstance(e, WsClosed) and e.idle]
        assert idle and "idle timeout" in idle[0].reason
        first_idle = events.index(idle[0])
        # Pongs kept arriving during the silence: they did not count as data.
        assert any(isinstance(e, WsFrame) and '"pong"' in str(e.data) for e in events[first_idle - 4:first_idle])
        assert client.idle_timeouts >= 1 and client.reconnects >= 1
        assert fake.stats()["ws_subscribes"] == fake.stats()["ws_connections"]  # resubscribed each time


def test_reconnect_with_backoff_and_resubscribe() -> None:
    with fake_exchange() as fake:
        # Idleness is another test's subject: a loaded machine's stall must not end connection 1 first.
        client = ws_client(fake.ws_url, idle_timeout_s=10.0)

        async def go() -> list[WsEvent]:
            async def arm() -> None:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(fake.inject, "reject_connect", count=3)
                await asyncio.to_thread(fake.inject, "disconnect")

            task = asyncio.create_task(arm())
            out = await gather_events(client, until=lambda evs: any(isinstance(e, WsOpened) and e.conn == 2 for e in evs))
            await task
            return out

        events = run(go())
        closes = [e for e in events if isinstance(e, WsClosed)]
        assert "injected disconnect" in closes[0].reason and closes[0].conn == 1
        assert [c.conn for c in closes[1:]] == [0, 0, 0]  # three refused handshakes
        assert all("connect failed" in c.reason for c in closes[1:])
        b = client.backoffs
        assert len(b) == 4
        for k, delay in enumerate(b):  # jittered exponential: base * 2^k * [0.5, 1]
            assert 0.05 * 2**k * 0.5 <= delay <= min(0.4, 0.05 * 2**k) + 1e-9
        stats = fake.stats()
        assert stats["ws_rejected"] == 3 and stats["ws_connections"] == 2
        assert [c["channels"] for c in stats["closed_connections"]] == [sorted(CHANNELS)] * 2  # resubscribed


def test_unreachable_server_is_reported_and_closable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ws_client(f"ws://127.0.0.1:{port}/public/", backoff_base_s=0.02, backoff_max_s=0.05)
    events = run(gather_events(client, until=lambda evs: len(evs) >= 3))
    assert all(isinstance(e, WsClosed) and e.conn == 0 and "connect failed" in e.reason for e in events)
    assert client.status()["state"] == "closed" and client.connect_failures >= 3


def test_backoff_history_is_bounded() -> None:
    """A session may reconnect for a month: the backoff history kept for status must not grow with it."""
    from laptop_agents.exchange import ws as ws_module

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cap = ws_module.BACKOFF_HISTORY
    client = ws_client(f"ws://127.0.0.1:{port}/public/", backoff_base_s=0.0001, backoff_max_s=0.0001)
    client.budget.enforce = False
    events = run(gather_events(client, until=lambda evs: len(evs) >= cap + 20, timeout=30))
    assert len(events) >= cap + 20 and client.reconnects >= cap + 20
    assert len(client.backoffs) == cap
