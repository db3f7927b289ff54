"""No API key, secret or signature in any log line, exception text, repr or
status -- checked with distinctive values, the signatures taken off the wire."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import re
from typing import Any

import httpx
import pytest

from laptop_agents.exchange.credentials import ApiCredentials, CredentialsError
from laptop_agents.exchange.errors import AuthError, UnknownOutcome, UnresolvedOrderError
from laptop_agents.exchange.private_models import OrderRequest
from laptop_agents.exchange.private_rest import BitunixPrivateClient
from laptop_agents.testing.fake_exchange import FakeAccount, FakeTradingConfig
from tests.exchange.private_support import (
    FAST_PRIVATE,
    FAST_REST,
    SYMBOL,
    collect_updates,
    private_ws,
    trading_fake,
)
from tests.exchange.support import run

KEY = "KEYdistinctQ7w8e9r0t1y2"
SECRET = "SECRETdistinctZ9x8c7v6b5n4"
WRONG = "WRONGsecretP0o9i8u7y6t5"
HEX64 = re.compile(r"[0-9a-f]{64}")


class RecordingTransport(httpx.AsyncBaseTransport):
    """The real transport, noting every signature sent."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.signs: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "sign" in request.headers:
            self.signs.append(request.headers["sign"])
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_credentials_never_show_themselves() -> None:
    c = ApiCredentials(KEY, SECRET)
    for text in (repr(c), str(c), f"{c}", repr([c]), repr({"c": c})):
        assert KEY not in text and SECRET not in text
    with pytest.raises(TypeError):
        pickle.dumps(c)
    with pytest.raises(CredentialsError) as missing:
        ApiCredentials.from_env({"BITUNIX_API_KEY": KEY})
    assert "BITUNIX_API_SECRET" in str(missing.value) and KEY not in str(missing.value)
    with pytest.raises(CredentialsError) as spaced:
        ApiCredentials(KEY + " ", SECRET)
    assert KEY not in str(spaced.value)
    assert ApiCredentials.from_env({"BITUNIX_API_KEY": KEY, "BITUNIX_API_SECRET": SECRET}) == c


def test_no_secret_in_logs_errors_reprs_or_status(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    account = FakeAccount(KEY, SECRET, uid="777")
    texts: list[str] = []
    transport = RecordingTransport()

    def note(obj: Any) -> None:
        texts.extend([str(obj), repr(obj)])

    with trading_fake(FakeTradingConfig(accounts=(account,))) as fake:

        async def go() -> None:
            good = BitunixPrivateClient(ApiCredentials(KEY, SECRET), fake.rest_url, options=dataclasses.replace(
                FAST_PRIVATE, rest=dataclasses.replace(FAST_REST, timeout_s=0.4), resolve_attempts=2),
                transport=transport)
            bad = BitunixPrivateClient(ApiCredentials(KEY, WRONG), fake.rest_url, options=FAST_PRIVATE,
                                       transport=transport)
            async with good, bad:
                note(good)
                await good.balance()
                await good.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="s1"))
                with pytest.raises(AuthError) as auth:
                    await bad.positions()
                note(auth.value)
                fake.inject("place_timeout", seconds=1.0)
                with pytest.raises(UnknownOutcome) as unknown:
                    await good.place_order(OrderRequest.market(SYMBOL, "BUY", 0.001, client_id="s2"))
                note(unknown.value)
                fake.inject("http_status", status=503, count=100, path="/api/v1/futures/trade/get_")
                with pytest.raises(UnresolvedOrderError) as unresolved:
                    await good.resolve_by_client_id("s3")
                note(unresolved.value)
                fake.clear_faults()
                texts.append(str(good.rest.last_error))
            ws = private_ws(fake, credentials=ApiCredentials(KEY, SECRET))
            await collect_updates(ws.updates(), lambda items: len(items) >= 1)
            note(ws)
            texts.append(json.dumps(ws.status()))
            await ws.aclose()
            bad_ws = private_ws(fake, credentials=ApiCredentials(KEY, WRONG))
            with pytest.raises(AuthError) as ws_auth:
                await collect_updates(bad_ws.updates(), lambda items: False)
            note(ws_auth.value)
            texts.append(json.dumps(bad_ws.status()))
            await bad_ws.aclose()

        run(go())
        texts.append(json.dumps(fake.stats()))
        texts.append(json.dumps(fake.order_log()))
    texts.append(caplog.text)
    texts.extend(r.getMessage() for r in caplog.records)
    assert len(transport.signs) >= 5 and caplog.records  # there was something to leak
    everything = "\n".join(texts)
    for secret in (KEY, SECRET, WRONG, *transport.signs):
        assert secret not in everything
    assert not HEX64.search(everything)  # no signature of any kind (REST or websocket login)
