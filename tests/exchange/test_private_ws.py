"""The private websocket against the fake: login, subscribe, typed updates,
a refused login, reconnect with a gap signal, and the REST gap fill that
finds fills made while disconnected -- each counted exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.errors import AuthError
from laptop_agents.exchange.private_feed import PrivateFeed, fill_gap
from laptop_agents.exchange.private_models import OrderRequest
from laptop_agents.exchange.private_updates import (
    BalanceUpdate,
    FillUpdate,
    GapFilled,
    OrderUpdate,
    PositionUpdate,
    PrivateConnected,
    PrivateDisconnected,
    PrivateGap,
    PrivateUpdate,
)
from laptop_agents.testing.fake_exchange import DEFAULT_ACCOUNT
from tests.exchange.private_support import (
    SYMBOL,
    collect_updates,
    private_client,
    private_ws,
    trading_fake,
    wait_for,
)
from tests.exchange.support import run


class Collector:
    """Consumes a stream in the background so the test can act meanwhile."""

    def __init__(self, stream: Any) -> None:
        self.items: list[PrivateUpdate] = []
        self.error: BaseException | None = None
        self._stream = stream
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for item in self._stream:
                self.items.append(item)
        except Exception as exc:
            self.error = exc

    def of(self, kind: type) -> list[Any]:
        return [i for i in self.items if isinstance(i, kind)]

    async def until(self, predicate: Any, timeout: float = 10.0) -> None:
        await wait_for(lambda: predicate(self.items), timeout)


def test_login_subscribe_and_typed_updates() -> None:
    with trading_fake() as fake:

        async def go() -> list[PrivateUpdate]:
            ws = private_ws(fake)
            col = Collector(ws.updates())
            try:
                await col.until(lambda items: any(isinstance(i, PrivateConnected) for i in items))
                await asyncio.sleep(0.1)  # the subscribe follows the login ack
                async with private_client(fake) as c:
                    ack = await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.01, client_id="ws1"))
                await col.until(lambda items: any(isinstance(i, BalanceUpdate) for i in items))
                assert ack.order_id in {u.order.order_id for u in col.of(OrderUpdate)}
                await asyncio.sleep(0.6)  # pings keep flowing
            finally:
                await ws.aclose()
            return col.items

        items = run(go())
        kinds = [type(i).__name__ for i in items]
        assert kinds[:2] == ["PrivateConnected", "OrderUpdate"]
        orders = [i for i in items if isinstance(i, OrderUpdate)]
        assert [(o.event, o.order.status) for o in orders] == [("CREATE", "NEW"), ("CLOSE", "FILLED")]
        [fill] = [i for i in items if isinstance(i, FillUpdate)]
        [logged] = [e for e in fake.order_log() if e["kind"] == "fill"]
        assert (fill.qty, fill.price, fill.client_id) == (0.01, logged["price"], "ws1")
        assert fill.fee == pytest.approx(logged["fee"]) and fill.source == "ws"
        [pos] = [i for i in items if isinstance(i, PositionUpdate)]
        assert pos.event == "OPEN" and pos.position.signed_qty == 0.01
        assert not any(isinstance(i, PrivateGap) for i in items)  # first login, no resume point
        stats = fake.stats()
        assert stats["private_logins"] == 1 and stats["private_subscribes"] == 1
        assert stats["ws_ping_timeouts"] == 0 and stats["ws_rate_violations"] == 0 and stats["ws_pings"] >= 2
        [closed] = [c for c in stats["closed_connections"] if c.get("private")]
        assert closed["channels"] == sorted(pp.WS_PRIVATE_CHANNELS)


def test_a_refused_login_ends_the_stream_with_an_auth_error() -> None:
    with trading_fake() as fake:
        bad = ApiCredentials(DEFAULT_ACCOUNT.api_key, "notTheSecret12345")

        async def go() -> None:
            ws = private_ws(fake, credentials=bad)
            try:
                with pytest.raises(AuthError, match="login refused"):
                    await collect_updates(ws.updates(), lambda items: False, timeout=10)
                assert ws.state == "failed" and ws.logins == 0
            finally:
                await ws.aclose()

        run(go())
        stats = fake.stats()
        assert stats["private_login_refused"] == 1 and stats["private"]["auth_rejected"] == {"bad_signature": 1}


def _future_limit(fake: Any) -> tuple[float, int]:
    """A buy limit the market will not reach for 10 simulated minutes, then will:
    (price, simulated time it trades through)."""
    book = fake.exchange.trading
    now = fake.now_ms()
    points = list(book.trade_points(now, now + 12 * 3_600_000))
    early = [p for t, p in points if t <= now + 600_000]
    limit = round(min(early) - 0.1, 1)
    t_fill = next(t for t, p in points if t > now + 600_000 and p < limit)
    return limit, t_fill


def test_reconnect_signals_a_gap_and_rest_finds_the_fills_made_while_disconnected() -> None:
    with trading_fake() as fake:

        async def go() -> tuple[list[PrivateUpdate], dict[str, str]]:
            ws = private_ws(fake)
            async with private_client(fake) as rest:
                feed = PrivateFeed(ws, rest, SYMBOL)
                col = Collector(feed.updates())
                try:
                    await col.until(lambda items: any(isinstance(i, PrivateConnected) for i in items))
                    await asyncio.sleep(0.1)
                    limit, _ = _future_limit(fake)
                    resting = await rest.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.01, limit, client_id="rest1"))
                    await col.until(lambda items: any(isinstance(i, OrderUpdate) for i in items))
                    created = (await rest.order_detail(order_id=resting.order_id)).ctime or 0
                    await wait_for(lambda: (ws.synced_ms or 0) > created + 10_000)  # a pong after it
                    # The connection drops and stays down while both orders fill.
                    await asyncio.to_thread(fake.inject, "reject_connect", count=10_000)
                    await asyncio.to_thread(fake.inject, "private_disconnect")
                    await col.until(lambda items: any(isinstance(i, PrivateDisconnected) for i in items))
                    gap_mkt = await rest.place_order(OrderRequest.market(SYMBOL, "BUY", 0.02, client_id="gap1"))
                    await wait_for(lambda: {o["client_id"]: o["status"] for o in fake.orders()}.get("rest1") == "FILLED",
                                   timeout=20)
                    assert not col.of(FillUpdate)  # nothing seen yet
                    await asyncio.to_thread(fake.clear_faults)
                    await col.until(lambda items: any(isinstance(i, GapFilled) for i in items), timeout=15)
                    await asyncio.sleep(0.5)  # anything late would show up now
                finally:
                    await feed.aclose()
                    await col.task
            return col.items, {"resting": resting.order_id, "market": gap_mkt.order_id}

        items, ids = run(go(), timeout=60)
        connected = [i for i in items if isinstance(i, PrivateConnected)]
        assert len(connected) == 2  # re-login after the reconnect
        [gap] = [i for i in items if isinstance(i, PrivateGap)]
        assert gap.since_ms is not None
        fills = [i for i in items if isinstance(i, FillUpdate)]
        assert sorted(f.order_id for f in fills) == sorted(ids.values())  # each fill exactly once
        assert {f.source for f in fills} == {"rest"}
        logged = {e["order_id"]: e for e in fake.order_log() if e["kind"] == "fill"}
        for f in fills:
            assert (f.qty, f.price) == (logged[f.order_id]["qty"], logged[f.order_id]["price"])
        resting_ctime = next(o["ctime"] for o in fake.orders() if o["order_id"] == ids["resting"])
        assert resting_ctime < gap.since_ms  # history (by creation time) could not have found it...
        assert fake.stats()["rest_requests"][pp.PATH_ORDER_DETAIL] >= 1  # ...the re-read of known open orders did
        [done] = [i for i in items if isinstance(i, GapFilled)]
        assert done.fills == 2 and [p.signed_qty for p in done.positions] == [pytest.approx(0.03)]
        assert fake.stats()["private_logins"] == 2 and fake.stats()["private_subscribes"] == 2


def test_a_delayed_push_after_the_rest_read_is_not_counted_again() -> None:
    with trading_fake() as fake:

        async def go() -> list[PrivateUpdate]:
            ws = private_ws(fake)
            col = Collector(ws.updates())
            async with private_client(fake) as rest:
                try:
                    await col.until(lambda items: any(isinstance(i, PrivateConnected) for i in items))
                    await asyncio.sleep(0.1)
                    fake.inject("delay_fills", seconds=1.0)
                    await rest.place_order(OrderRequest.market(SYMBOL, "SELL", 0.01, client_id="slow1"))
                    early = await fill_gap(rest, ws, PrivateGap(None, 1, 0), SYMBOL)
                    assert [f.qty for f in early if isinstance(f, FillUpdate)] == [0.01]
                    await col.until(lambda items: any(isinstance(i, BalanceUpdate) for i in items))
                    await asyncio.sleep(0.3)
                finally:
                    await ws.aclose()
                    await col.task
            return col.items

        items = run(go())
        assert not any(isinstance(i, FillUpdate) for i in items)  # the late push carried nothing new
        assert fake.stats().get("private_pushes_delayed", 0) >= 1


def test_a_position_changed_by_hand_shows_up_on_the_stream() -> None:
    with trading_fake() as fake:

        async def go() -> list[PrivateUpdate]:
            ws = private_ws(fake)
            col = Collector(ws.updates())
            try:
                await col.until(lambda items: any(isinstance(i, PrivateConnected) for i in items))
                await asyncio.sleep(0.1)
                with httpx.Client() as http:  # through the control API, as a drill would
                    r = http.post(fake.rest_url + "/_fake/trade_by_hand", json={"qty": -0.004})
                    assert r.status_code == 200
                await col.until(lambda items: any(isinstance(i, PositionUpdate) for i in items))
            finally:
                await ws.aclose()
                await col.task
            return col.items

        items = run(go())
        [pos] = [i for i in items if isinstance(i, PositionUpdate)]
        assert pos.position.signed_qty == pytest.approx(-0.004)
        [fill] = [i for i in items if isinstance(i, FillUpdate)]
        assert fill.client_id is None and fill.qty == 0.004
        assert [e["source"] for e in fake.order_log() if e["kind"] == "accepted"] == ["manual"]
