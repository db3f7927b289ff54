"""Helpers for the private-API tests: a fast fake exchange that trades, the
fake's keys as credentials, and clients with test-speed options."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.private_rest import BitunixPrivateClient, PrivateRestOptions
from laptop_agents.exchange.private_updates import PrivateUpdate
from laptop_agents.exchange.rest import RestOptions
from laptop_agents.exchange.ws import WsOptions
from laptop_agents.exchange.ws_private import BitunixPrivateWsClient
from laptop_agents.testing.fake_exchange import DEFAULT_ACCOUNT, FakeExchangeHandle, FakeTradingConfig
from tests.exchange.support import fake_exchange

SYMBOL = "BTCUSDT"
FAST_REST = RestOptions(timeout_s=3.0, max_attempts=4, backoff_base_s=0.02, backoff_max_s=0.2, rate_limit_penalty_s=0.1)
FAST_PRIVATE = PrivateRestOptions(rest=FAST_REST, resolve_attempts=4, resolve_interval_s=0.05)
FAST_WS = WsOptions(ping_interval_s=0.25, idle_timeout_s=1.5, backoff_base_s=0.05, backoff_max_s=0.3, open_timeout_s=5.0)


def creds(account: Any = DEFAULT_ACCOUNT) -> ApiCredentials:
    return ApiCredentials(account.api_key, account.secret_key)


@contextmanager
def trading_fake(trading: FakeTradingConfig | None = None, **overrides: Any) -> Iterator[FakeExchangeHandle]:
    """The test fake (speed 600: a 1m candle every 0.1 s) with the private side configured."""
    params: dict[str, Any] = {"trading": trading or FakeTradingConfig()}
    params.update(overrides)
    with fake_exchange(**params) as fake:
        yield fake


def private_client(fake: FakeExchangeHandle, credentials: ApiCredentials | None = None,
                   **options: Any) -> BitunixPrivateClient:
    opts = dataclasses.replace(FAST_PRIVATE, **options)
    return BitunixPrivateClient(credentials or creds(), fake.rest_url, options=opts)


def private_ws(fake: FakeExchangeHandle, credentials: ApiCredentials | None = None,
               **kw: Any) -> BitunixPrivateWsClient:
    return BitunixPrivateWsClient(credentials or creds(), fake.private_ws_url, options=FAST_WS,
                                  login_timeout_s=3.0, **kw)


async def collect_updates(stream: Any, until: Callable[[list[PrivateUpdate]], bool],
                          timeout: float = 15.0) -> list[PrivateUpdate]:
    """Updates from an async iterator until ``until(items)`` holds (TimeoutError otherwise)."""
    items: list[PrivateUpdate] = []
    async with asyncio.timeout(timeout):
        async for item in stream:
            items.append(item)
            if until(items):
                break
    return items


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)
