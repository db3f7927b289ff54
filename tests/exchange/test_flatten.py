"""flatten_all against the fake exchange on loopback: orders cancelled, long and
short positions closed with reduce-only market orders under deterministic
client ids, faults (5xx on cancel, a placement timeout after acceptance, a
close that keeps being refused, an unresolvable placement) survived without a
blind resend, and what is left reported as left."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from laptop_agents.exchange import client_ids
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.flatten import FLATTEN_RUN_ID, FlattenResult, flatten_all, split_qty
from laptop_agents.exchange.private_models import OrderRequest
from laptop_agents.exchange.private_rest import BitunixPrivateClient
from laptop_agents.testing.fake_exchange import (
    DEFAULT_ACCOUNT,
    FakeAccount,
    FakeExchangeHandle,
    FakeTradingConfig,
)
from tests.exchange.private_support import FAST_REST, SYMBOL, private_client, trading_fake
from tests.exchange.support import run

START = 1_767_230_000_000


def _tick(x: float) -> float:
    return round(round(x / 0.1) * 0.1, 1)


async def _setup(c: BitunixPrivateClient, position_qty: float, resting: int) -> None:
    """A position of signed ``position_qty`` and ``resting`` limit orders far from the market."""
    if position_qty:
        side = "BUY" if position_qty > 0 else "SELL"
        await c.place_order(OrderRequest.market(SYMBOL, side, abs(position_qty), client_id=f"open{side}"))
    last = (await c.rest.tickers([SYMBOL]))[0].last
    for i in range(resting):
        await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.001, _tick(last * (0.97 - i / 1000)),
                                               client_id=f"rest{i}"))


def _flatten(fake: FakeExchangeHandle, position_qty: float, resting: int, *, before: Any = None,
             client_opts: dict[str, Any] | None = None, **kw: Any) -> FlattenResult:
    async def go() -> FlattenResult:
        async with private_client(fake) as setup:
            await _setup(setup, position_qty, resting)
        await asyncio.sleep(1.1)  # another process: the fake's per-account 10/s window starts over
        if before is not None:
            before()
        async with private_client(fake, **(client_opts or {})) as c:
            return await flatten_all(c, SYMBOL, start_ms=START, backoff_s=0.05, **kw)

    return run(go(), timeout=60)


def _closing_accepted(fake: FakeExchangeHandle) -> list[dict[str, Any]]:
    return [e for e in fake.order_log() if e["kind"] == "accepted" and e.get("reduce_only")]


def _exchange_flat(fake: FakeExchangeHandle) -> bool:
    open_orders = [o for o in fake.orders() if o["status"] in pp.OPEN_STATUSES]
    return not open_orders and not [p for p in fake.positions() if p["qty"]]


def test_a_long_position_and_open_orders_are_closed_and_verified() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0.01, 3)
        assert result.done and result.verified and result.left == ()
        assert sorted(o.client_id or "" for o in result.cancelled) == ["rest0", "rest1", "rest2"]
        [close] = result.closing
        assert close.outcome == "placed" and close.side == "SELL" and close.qty == 0.01
        assert close.client_id == client_ids.client_order_id(FLATTEN_RUN_ID, START, 0)
        assert client_ids.is_from_run(close.client_id, FLATTEN_RUN_ID)
        [accepted] = _closing_accepted(fake)
        assert accepted["client_id"] == close.client_id and accepted["order_type"] == "MARKET"
        assert accepted["side"] == "SELL" and accepted["qty"] == 0.01
        assert _exchange_flat(fake)
        assert result.describe() == "flatten BTCUSDT: flat (3 order(s) cancelled, 1 closing order(s) placed)"


def test_a_short_position_is_closed_with_a_reduce_only_buy() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, -0.02, 0, run_id="sessionA")
        assert result.done and result.cancelled == ()
        [close] = result.closing
        assert close.side == "BUY" and close.qty == 0.02
        assert client_ids.is_from_run(close.client_id, "sessionA")
        [accepted] = _closing_accepted(fake)
        assert accepted["side"] == "BUY" and accepted["reduce_only"] is True
        assert _exchange_flat(fake)


def test_nothing_open_sends_nothing() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0, 0)
        assert result.done and result.closing == () and result.cancelled == ()
        stats = fake.stats()["rest_requests"]
        assert pp.PATH_CANCEL_ALL_ORDERS not in stats and pp.PATH_PLACE_ORDER not in stats
        assert "flat (0 order(s) cancelled, 0 closing order(s) placed)" in result.describe()


def test_close_positions_false_cancels_orders_and_keeps_the_position() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0.01, 2, close_positions=False)
        assert result.done and len(result.cancelled) == 2 and result.closing == ()
        assert [p["qty"] for p in fake.positions()] == [0.01]
        assert not [o for o in fake.orders() if o["status"] in pp.OPEN_STATUSES]


def test_a_5xx_on_cancel_is_followed_by_a_read_and_a_second_cancel() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0.01, 2, before=lambda: fake.inject("cancel_5xx", status=502, accepted=False))
        assert result.done and len(result.cancelled) == 2
        assert any("cancel all: outcome unknown" in p for p in result.problems)
        assert fake.stats()["rest_requests"][pp.PATH_CANCEL_ALL_ORDERS] == 2
        assert _exchange_flat(fake)


def test_a_5xx_after_the_cancel_happened_is_not_cancelled_again() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0, 2, before=lambda: fake.inject("cancel_5xx", status=502, accepted=True))
        assert result.done and len(result.cancelled) == 2
        assert fake.stats()["rest_requests"][pp.PATH_CANCEL_ALL_ORDERS] == 1  # the read said: gone


def test_a_placement_timeout_after_acceptance_is_resolved_not_resent() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0.01, 0, before=lambda: fake.inject("place_timeout", seconds=1.5, accepted=True),
                          client_opts={"rest": dataclasses.replace(FAST_REST, timeout_s=0.4)})
        assert result.done
        [close] = result.closing
        assert close.outcome == "placed" and close.order_id and close.detail == "FILLED"
        assert any("outcome unknown" in p and "resolving by client id" in p for p in result.problems)
        assert len(_closing_accepted(fake)) == 1  # never sent twice
        assert _exchange_flat(fake)


def test_a_placement_lost_before_acceptance_is_resent_under_a_new_id() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0.01, 0, before=lambda: fake.inject("place_timeout", seconds=1.0, accepted=False),
                          client_opts={"rest": dataclasses.replace(FAST_REST, timeout_s=0.3),
                                       "resolve_interval_s": 0.05})
        assert result.done
        assert [c.outcome for c in result.closing] == ["not_placed", "placed"]
        first, second = result.closing
        assert first.client_id != second.client_id
        assert [e["client_id"] for e in _closing_accepted(fake)] == [second.client_id]


def test_a_position_that_cannot_be_closed_is_reported_as_left() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0.01, 1, before=lambda: fake.inject("reject_order", code=20003, count=100),
                          rounds=3)
        assert not result.done and result.verified
        assert result.left_orders == () and len(result.cancelled) == 1
        [pos] = result.left_positions
        assert pos.side == "LONG" and pos.qty == 0.01
        assert [c.outcome for c in result.closing] == ["refused"] * 3
        assert len({c.client_id for c in result.closing}) == 3
        text = result.describe()
        assert text.startswith("flatten BTCUSDT: INCOMPLETE") and "LONG position 0.01" in text
        assert "code 20003" in text and "\n" not in text
        assert [p["qty"] for p in fake.positions()] == [0.01]


def test_an_unresolvable_placement_stops_all_closing_and_is_named() -> None:
    with trading_fake() as fake:
        def faults() -> None:
            fake.inject("place_timeout", seconds=1.5, accepted=False)
            fake.inject("http_status", status=503, count=100, path=pp.PATH_ORDER_DETAIL)

        result = _flatten(fake, -0.01, 0, before=faults, rounds=3,
                          client_opts={"rest": dataclasses.replace(FAST_REST, timeout_s=0.4, max_attempts=1),
                                       "resolve_attempts": 2, "resolve_interval_s": 0.05})
        assert not result.done
        [close] = result.closing
        assert close.outcome == "unresolved" and result.unresolved == (close.client_id,)
        assert [p.side for p in result.left_positions] == ["SHORT"]
        assert close.client_id in result.describe()
        assert fake.stats()["rest_requests"][pp.PATH_PLACE_ORDER] == 2  # the setup's open + one close, no more


def test_a_failing_last_read_is_reported_as_not_verified() -> None:
    with trading_fake() as fake:
        result = _flatten(fake, 0, 1, before=lambda: fake.inject("http_status", status=503, count=1000,
                                                                   path=pp.PATH_PENDING_ORDERS),
                          rounds=1, client_opts={"rest": dataclasses.replace(FAST_REST, max_attempts=1)})
        assert not result.done and not result.verified
        assert "NOT verified" in result.describe() and "HTTP 503" in result.describe()


def test_keys_the_exchange_refuses_stop_the_flatten_at_once() -> None:
    with trading_fake() as fake:
        async def go() -> FlattenResult:
            async with private_client(fake) as setup:
                await _setup(setup, 0.01, 1)
            async with private_client(fake, ApiCredentials(DEFAULT_ACCOUNT.api_key, "notTheSecret1")) as c:
                return await flatten_all(c, SYMBOL, backoff_s=0.05)

        result = run(go())
        assert result.auth_refused and not result.verified and not result.done
        assert len(result.problems) == 1 and "code" in result.problems[0]
        assert fake.stats()["private"]["auth_rejected"] == {"bad_signature": 1}  # one read, no retries, no rounds
        assert "NOT verified" in result.describe()


def test_split_qty() -> None:
    assert split_qty(0.5, None) == [0.5] and split_qty(0.5, 1.0) == [0.5] and split_qty(1.0, 1.0) == [1.0]
    assert split_qty(250.0, 100.0) == [100.0, 100.0, 50.0]
    assert split_qty(0.3, 0.1) == [0.1, 0.1, 0.1]
    assert split_qty(0.35, 0.1) == [0.1, 0.1, 0.1, 0.05]


def test_a_position_bigger_than_the_largest_market_order_is_closed_in_parts() -> None:
    rich = FakeAccount(DEFAULT_ACCOUNT.api_key, DEFAULT_ACCOUNT.secret_key, DEFAULT_ACCOUNT.uid, balance=2_000_000.0)
    with trading_fake(FakeTradingConfig(accounts=(rich,))) as fake:
        async def go() -> FlattenResult:
            async with private_client(fake) as c:
                for _ in range(2):  # 150 needs two orders to open, too (the fake's maximum is 100)
                    await c.place_order(OrderRequest.market(SYMBOL, "SELL", 75.0))
                await asyncio.sleep(1.1)
                return await flatten_all(c, SYMBOL, start_ms=START, backoff_s=0.05)

        result = run(go())
        assert result.done
        assert [(c.side, c.qty, c.outcome) for c in result.closing] == [("BUY", 100.0, "placed"), ("BUY", 50.0, "placed")]
        assert [e["qty"] for e in _closing_accepted(fake)] == [100.0, 50.0]
        assert _exchange_flat(fake)
