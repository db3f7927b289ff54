"""The signed REST client against the fake exchange over loopback: every call,
typed refusals, signature checks, reads retried, writes never resent, and
unknown outcomes resolved by client id."""

from __future__ import annotations

import dataclasses
import json
import socket
import time

import httpx
import pytest

from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.errors import (
    AuthError,
    DuplicateClientIdError,
    InsufficientBalanceError,
    LeverageError,
    NotSentError,
    OrderNotFoundError,
    PriceLimitError,
    RateLimitedError,
    ReduceOnlyError,
    UnknownOutcome,
    UnresolvedOrderError,
)
from laptop_agents.exchange.private_models import Order, OrderRequest
from laptop_agents.exchange.private_rest import NOT_PLACED, BitunixPrivateClient
from laptop_agents.exchange.ratelimit import RateLimitBudget
from laptop_agents.exchange.rest import BitunixRestClient
from laptop_agents.testing.fake_exchange import DEFAULT_ACCOUNT, FakeTradingConfig
from tests.exchange.private_support import (
    FAST_PRIVATE,
    FAST_REST,
    SYMBOL,
    creds,
    private_client,
    trading_fake,
)
from tests.exchange.support import run


def _tick(x: float) -> float:
    return round(round(x / 0.1) * 0.1, 1)


def test_every_order_call_against_the_fake() -> None:
    with trading_fake() as fake:

        async def go() -> None:
            async with private_client(fake) as c:
                bal0 = await c.balance()
                assert bal0.available == DEFAULT_ACCOUNT.balance and bal0.margin == 0
                ack = await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.01, client_id="mkt1"))
                assert ack.client_id == "mkt1" and ack.order_id
                by_id = await c.order_detail(order_id=ack.order_id)
                by_cid = await c.order_detail(client_id="mkt1")
                assert by_id == by_cid and by_id.status == "FILLED" and by_id.filled_qty == 0.01
                assert by_id.avg_price is not None and by_id.price is None  # "market" on the wire
                [pos] = await c.positions(SYMBOL)
                assert pos.side == "LONG" and pos.qty == 0.01 and pos.entry_price == by_id.avg_price
                last = pos.entry_price or 0.0
                post = await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.01, _tick(last * 0.97),
                                                              effect="POST_ONLY", client_id="post1"))
                ro = await c.place_order(OrderRequest.limit(SYMBOL, "SELL", 0.01, _tick(last * 1.03),
                                                            reduce_only=True, client_id="ro1"))
                tpsl = await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.01, _tick(last * 0.96),
                                                              tp_price=_tick(last * 1.02), sl_price=_tick(last * 0.9),
                                                              client_id="tpsl1"))
                opened = {o.client_id: o for o in await c.open_orders(SYMBOL)}
                assert set(opened) == {"post1", "ro1", "tpsl1"}
                assert opened["ro1"].reduce_only and opened["post1"].effect == "POST_ONLY"
                assert opened["tpsl1"].tp_price == _tick(last * 1.02) and opened["tpsl1"].sl_stop_type == "LAST_PRICE"
                bal1 = await c.balance()
                assert bal1.frozen > 0 and bal1.margin > 0 and bal1.available < bal0.available
                one = await c.cancel_order(SYMBOL, client_id="post1")
                assert [(i.order_id, i.client_id) for i in one.succeeded] == [(post.order_id, "post1")]
                again = await c.cancel_order(SYMBOL, order_id=post.order_id)
                assert again.failed[0].code == pp.CODE_ORDER_STATUS and not again.succeeded
                rest = await c.cancel_all_orders(SYMBOL)
                assert {i.order_id for i in rest.succeeded} == {ro.order_id, tpsl.order_id}
                assert await c.open_orders(SYMBOL) == []
                history = await c.order_history(SYMBOL, since_ms=by_id.ctime)
                assert {o.client_id: o.status for o in history} == {
                    "mkt1": "FILLED", "post1": "CANCELED", "ro1": "CANCELED", "tpsl1": "CANCELED"}
                [trade] = await c.trade_history(SYMBOL)
                assert trade.order_id == ack.order_id and trade.role == "TAKER" and trade.qty == 0.01
                assert await c.find_order(client_id="post1") is not None
                assert await c.find_order(client_id="never1") is None
                with pytest.raises(OrderNotFoundError):
                    await c.order_detail(client_id="never1")

        run(go())
        log = fake.order_log()
        assert [e["client_id"] for e in log if e["kind"] == "accepted"] == ["mkt1", "post1", "ro1", "tpsl1"]
        assert fake.stats()["private"]["auth_rejected"] == {}


def test_open_orders_and_history_page_through_everything() -> None:
    with trading_fake() as fake:

        async def go() -> tuple[int, int]:
            async with private_client(fake, page_size=3) as c:
                last = (await c.rest.tickers([SYMBOL]))[0].last
                for i in range(7):
                    await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.001, _tick(last * (0.97 - i / 1000)),
                                                           client_id=f"page{i}"))
                n_open = len(await c.open_orders(SYMBOL))
                await c.cancel_all_orders(SYMBOL)
                n_hist = len(await c.order_history(SYMBOL))
                return n_open, n_hist

        n_open, n_hist = run(go())
        assert n_open == 7 and n_hist == 7
        stats = fake.stats()["rest_requests"]
        assert stats[pp.PATH_PENDING_ORDERS] == 3 and stats[pp.PATH_HISTORY_ORDERS] == 3  # 3 + 3 + 1 rows


def test_leverage_and_margin_mode_set_and_read() -> None:
    with trading_fake() as fake:

        async def go() -> None:
            async with private_client(fake) as c:
                assert (await c.leverage_margin_mode(SYMBOL)).leverage == 20
                await c.set_leverage(SYMBOL, 10)
                await c.set_margin_mode(SYMBOL, "isolation")
                now = await c.leverage_margin_mode(SYMBOL)
                assert (now.leverage, now.margin_mode) == (10, "ISOLATION")
                with pytest.raises(LeverageError) as bad:
                    await c.set_leverage(SYMBOL, 500)
                assert bad.value.code == pp.CODE_INVALID_LEVERAGE
                last = (await c.rest.tickers([SYMBOL]))[0].last
                await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.001, _tick(last * 0.97)))
                with pytest.raises(LeverageError) as blocked:
                    await c.set_leverage(SYMBOL, 5)
                assert blocked.value.code == pp.CODE_OPEN_ORDERS_BLOCK_CHANGE
                with pytest.raises(ValueError):
                    await c.set_margin_mode(SYMBOL, "ISOLATED")

        run(go())


def test_refusals_are_typed_and_are_not_unknown_outcomes() -> None:
    with trading_fake() as fake:

        async def go() -> None:
            async with private_client(fake) as c:
                last = (await c.rest.tickers([SYMBOL]))[0].last
                with pytest.raises(InsufficientBalanceError):
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 10.0))
                with pytest.raises(PriceLimitError) as band:
                    await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.01, _tick(last * 1.2)))
                assert band.value.code == pp.CODE_MAX_BUY_PRICE
                with pytest.raises(ReduceOnlyError):
                    await c.place_order(OrderRequest.market(SYMBOL, "SELL", 0.01, reduce_only=True))
                await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="same1"))
                with pytest.raises(DuplicateClientIdError) as dup:
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="same1"))
                assert dup.value.client_id == "same1" and dup.value.code == pp.CODE_DUPLICATE_CLIENT_ID
                fake.inject("reject_order", code=20003)
                with pytest.raises(InsufficientBalanceError):
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001))
                assert c.unknown_outcomes == 0 and c.rejected == 5

        run(go())
        log = fake.order_log()
        assert [e["code"] for e in log if e["kind"] == "rejected"] == [20003, 30014, 30018, 30042, 20003]


def test_signature_checks_refuse_with_the_documented_codes() -> None:
    with trading_fake() as fake:
        key, secret = DEFAULT_ACCOUNT.api_key, DEFAULT_ACCOUNT.secret_key

        async def go() -> dict[str, int]:
            codes: dict[str, int] = {}
            cases = {
                "bad_signature": private_client(fake, ApiCredentials(key, secret + "x")),
                "unknown_key": private_client(fake, ApiCredentials("someoneElsesKey123", secret)),
            }
            for name, client in cases.items():
                async with client as c:
                    with pytest.raises(AuthError) as info:
                        await c.balance()
                    codes[name] = info.value.code or 0
            skewed = private_client(fake)
            skewed.clock_offset_ms = -2 * pp.RECV_WINDOW_MS
            async with skewed as c:
                with pytest.raises(AuthError) as stale:
                    await c.balance()
                codes["stale_timestamp"] = stale.value.code or 0
                skewed.clock_offset_ms = 0
                assert (await c.balance()).available > 0  # corrected clock: accepted
            return codes

        codes = run(go())
        assert codes == {"bad_signature": 10007, "unknown_key": 10007, "stale_timestamp": 10007}
        assert fake.stats()["private"]["auth_rejected"] == {"bad_signature": 1, "unknown_key": 1, "stale_timestamp": 1}

        # Raw requests (not our client): a replayed nonce, a missing key, a body
        # signed and sent with spaces (the server hashes the raw bytes).
        c = creds()
        url = fake.rest_url + pp.PATH_ACCOUNT
        params = {"marginCoin": "USDT"}
        headers = c.rest_headers(int(time.time() * 1000), params)
        with httpx.Client() as http:
            first = http.get(url, params=params, headers=headers).json()
            replay = http.get(url, params=params, headers=headers).json()
            no_key = http.get(url, params=params, headers={**headers, "api-key": ""}).json()
            body = json.dumps({"symbol": SYMBOL, "side": "BUY", "orderType": "MARKET", "qty": "0.001"})
            assert " " in body
            spaced = http.post(fake.rest_url + pp.PATH_PLACE_ORDER, content=body.encode(),
                               headers=c.rest_headers(int(time.time() * 1000), None, body)).json()
            tampered = http.post(fake.rest_url + pp.PATH_PLACE_ORDER, content=body.replace("0.001", "0.002").encode(),
                                 headers=c.rest_headers(int(time.time() * 1000), None, body)).json()
        assert first["code"] == 0 and replay["code"] == pp.CODE_NONCE_REUSED and no_key["code"] == 10003
        assert spaced["code"] == 0 and tampered["code"] == 10007
        assert fake.stats()["private"]["auth_rejected"]["nonce_reused"] == 1


def test_reads_are_retried_but_a_placement_is_sent_once() -> None:
    with trading_fake() as fake:

        async def go() -> object:
            async with private_client(fake) as c:
                fake.inject("http_status", status=503, count=2, path=pp.PATH_PENDING_ORDERS)
                assert await c.open_orders(SYMBOL) == []
                assert c.rest.retries == 2
                fake.inject("http_status", status=503, count=1, path=pp.PATH_PLACE_ORDER)
                with pytest.raises(UnknownOutcome) as info:
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="x503"))
                assert info.value.action == "place" and info.value.client_id == "x503" and info.value.http_status == 503
                assert c.unknown_outcomes == 1
                return await c.resolve_by_client_id("x503", symbol=SYMBOL)

        assert run(go()) is NOT_PLACED  # the 5xx came before the exchange acted
        assert fake.stats()["rest_requests"][pp.PATH_PLACE_ORDER] == 1  # never resent
        assert not [e for e in fake.order_log() if e["kind"] == "accepted"]


def test_armed_counts_what_a_queued_fault_will_still_hit() -> None:
    """The drill waits on it: a placement fault stays armed until a placement comes."""
    with trading_fake() as fake:
        assert fake.armed("place_timeout") == 0
        fake.inject("place_timeout", seconds=0.1)
        fake.inject("http_status", status=502, count=2, path=pp.PATH_PLACE_ORDER)
        fake.inject("delay_fills", seconds=0.1, count=3)
        assert (fake.armed("place_timeout"), fake.armed("http_status"), fake.armed("delay_fills")) == (1, 2, 3)

        async def go() -> None:
            async with private_client(fake) as c:
                with pytest.raises(UnknownOutcome):
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="arm1"))

        run(go())
        assert fake.armed("http_status") == 1 and fake.armed("place_timeout") == 1  # the 502 came first
        fake.clear_faults()
        assert fake.armed("http_status") == fake.armed("delay_fills") == 0


def test_a_timeout_after_acceptance_resolves_as_placed_and_is_never_doubled() -> None:
    with trading_fake() as fake:
        fake.inject("place_timeout", seconds=1.5, accepted=True)

        async def go() -> tuple[object, object]:
            async with private_client(fake, rest=dataclasses.replace(FAST_REST, timeout_s=0.4)) as c:
                req = OrderRequest.market(SYMBOL, "BUY", 0.002, client_id="late1")
                with pytest.raises(UnknownOutcome) as info:
                    await c.place_order(req)
                assert info.value.client_id == "late1" and "never resend" in str(info.value)
                resolved = await c.resolve_by_client_id("late1")
                with pytest.raises(DuplicateClientIdError):  # a resend would be refused anyway
                    await c.place_order(req)
                return resolved, await c.positions(SYMBOL)

        resolved, positions = run(go())
        assert isinstance(resolved, Order)
        assert resolved.client_id == "late1" and resolved.status == "FILLED"
        assert [p.qty for p in positions] == [0.002]
        accepted = [e for e in fake.order_log() if e["kind"] == "accepted"]
        assert [e["client_id"] for e in accepted] == ["late1"]


def test_a_timeout_before_acceptance_resolves_as_never_placed() -> None:
    with trading_fake() as fake:
        fake.inject("place_timeout", seconds=1.0, accepted=False)

        async def go() -> object:
            async with private_client(fake, rest=dataclasses.replace(FAST_REST, timeout_s=0.3)) as c:
                with pytest.raises(UnknownOutcome):
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.002, client_id="lost1"))
                return await c.resolve_by_client_id("lost1", not_found_confirmations=3, interval_s=0.05)

        assert run(go()) is NOT_PLACED
        assert not [e for e in fake.order_log() if e["kind"] == "accepted"]
        assert fake.stats()["rest_requests"][pp.PATH_ORDER_DETAIL] == 3


def test_a_timeout_on_a_refused_placement_is_recorded_and_resolves_as_never_placed() -> None:
    """The fault is used up by whatever placement comes next, a refused one too: its reply is lost
    like any other (the client cannot tell), and the exchange's record says the fault fired."""
    with trading_fake() as fake:
        fake.inject("place_timeout", seconds=1.0, accepted=True)

        async def go() -> object:
            async with private_client(fake, rest=dataclasses.replace(FAST_REST, timeout_s=0.3)) as c:
                with pytest.raises(UnknownOutcome):  # far beyond the account's margin: refused, reply lost
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 1000.0, client_id="huge1"))
                return await c.resolve_by_client_id("huge1", not_found_confirmations=3, interval_s=0.05)

        assert run(go()) is NOT_PLACED
        log = fake.order_log()
        assert not [e for e in log if e["kind"] == "accepted"]
        faults = [e for e in log if e["kind"] == "fault"]
        assert len(faults) == 1 and faults[0]["fault"] == "place_timeout" and faults[0]["client_id"] == "huge1"
        assert faults[0]["accepted"] is False and faults[0]["refused"]


def test_resolution_gives_up_after_its_bound_and_names_the_order() -> None:
    with trading_fake() as fake:

        async def go() -> None:
            async with private_client(fake, resolve_attempts=3) as c:
                fake.inject("http_status", status=503, count=1000, path="/api/v1/futures/trade/get_")
                with pytest.raises(UnresolvedOrderError) as info:
                    await c.resolve_by_client_id("gone1")
                assert info.value.client_id == "gone1" and info.value.attempts == 3
                assert "gone1" in str(info.value) and "HTTP 503" in str(info.value)

        run(go())
        assert fake.stats()["rest_requests"][pp.PATH_ORDER_DETAIL] == 3 * FAST_REST.max_attempts


def test_a_5xx_on_cancel_is_an_unknown_outcome_and_the_query_tells_what_happened() -> None:
    with trading_fake() as fake:

        async def go() -> None:
            async with private_client(fake) as c:
                last = (await c.rest.tickers([SYMBOL]))[0].last
                a = await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.001, _tick(last * 0.97), client_id="ca"))
                b = await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.001, _tick(last * 0.96), client_id="cb"))
                fake.inject("cancel_5xx", status=502, accepted=True)
                with pytest.raises(UnknownOutcome) as done:
                    await c.cancel_order(SYMBOL, order_id=a.order_id)
                assert done.value.action == "cancel" and done.value.order_id == a.order_id
                assert (await c.order_detail(order_id=a.order_id)).status == "CANCELED"
                fake.inject("cancel_5xx", status=502, accepted=False)
                with pytest.raises(UnknownOutcome):
                    await c.cancel_order(SYMBOL, client_id="cb")
                assert (await c.order_detail(order_id=b.order_id)).status == "NEW"

        run(go())
        assert fake.stats()["rest_requests"][pp.PATH_CANCEL_ORDERS] == 2


def test_the_docs_shapes_parse_as_well_as_the_wire_ones() -> None:
    with trading_fake(FakeTradingConfig(shapes="doc")) as fake:

        async def go() -> None:
            async with private_client(fake) as c:
                await c.set_leverage(SYMBOL, 7)
                await c.place_order(OrderRequest.market(SYMBOL, "SELL", 0.003))
                [pos] = await c.positions(SYMBOL)
                assert pos.side == "SHORT" and pos.signed_qty == -0.003 and pos.leverage == 7
                assert (await c.balance()).margin > 0
                [order] = await c.order_history(SYMBOL)
                assert order.status == "FILLED" and order.price is None

        run(go())


def test_public_and_private_clients_share_one_rate_budget() -> None:
    with trading_fake(rest_limit_per_s=10) as fake:
        budget = RateLimitBudget()

        async def go() -> None:
            public = BitunixRestClient(fake.rest_url, budget=budget, options=FAST_REST)
            async with private_client(fake) as c:
                c2 = type(c)(creds(), fake.rest_url, budget=budget, options=c.options)
                async with public, c2:
                    for _ in range(8):
                        await public.tickers([SYMBOL])
                        await c2.balance()

        run(go())
        assert budget.limiter.total == 16 and budget.limiter.max_seen <= 10
        stats = fake.stats()
        assert stats["rest_rate_limited"] == 0 and stats.get("private_rate_limited", 0) == 0


def test_unknown_codes_unreadable_acks_and_unsent_requests() -> None:
    with trading_fake() as fake:

        async def go() -> None:
            async with private_client(fake) as c:
                fake.inject("error_code", code=300105, path=pp.PATH_PLACE_ORDER, msg="System error")
                with pytest.raises(UnknownOutcome) as system:  # a code not in the table: may have happened
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="sys1"))
                assert system.value.code == 300105
                assert await c.resolve_by_client_id("sys1") is NOT_PLACED
                fake.inject("error_code", code=10006, path=pp.PATH_PLACE_ORDER, msg="Request too frequently")
                with pytest.raises(RateLimitedError):  # not executed (L): a definite refusal, not unknown
                    await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="rl1"))
                assert c.unknown_outcomes == 1

        run(go())

    # A reply with code 0 whose data cannot be read: the order may well exist.
    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": 0, "msg": "Success", "data": ["not", "an", "ack"]})

    async def unreadable() -> None:
        async with BitunixPrivateClient(creds(), "http://127.0.0.1:9", transport=httpx.MockTransport(garbage)) as c:
            with pytest.raises(UnknownOutcome) as info:
                await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="odd1"))
            assert info.value.client_id == "odd1"

    run(unreadable())

    # Nothing listening: the request never left, a definite "not placed".
    async def refused() -> None:
        async with private_client_at(free_url()) as c:
            with pytest.raises(NotSentError):
                await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="off1"))
            assert c.unknown_outcomes == 0

    run(refused())


def free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def private_client_at(url: str) -> BitunixPrivateClient:
    return BitunixPrivateClient(creds(), url, options=FAST_PRIVATE)
