"""No API key, secret or signature in anything the account commands and the
private clients produce: stdout, stderr, log files, exception texts, results,
or any file written -- on success and on every failure path (a signature the
exchange refuses, 5xx, timeouts, an unknown placement outcome).

The keys are distinctive values the fake exchange is configured with. The
real signatures the CLI sends are taken off the wire by a loopback TCP proxy
between the CLI and the fake, so the check knows exactly which strings must
not appear; and no 64-hex-digit run (any signature: REST or websocket login)
may appear at all."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.errors import AuthError
from laptop_agents.exchange.flatten import flatten_all
from laptop_agents.exchange.private_models import OrderRequest
from laptop_agents.exchange.private_updates import PrivateConnected, PrivateGap
from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import FakeAccount, FakeExchangeHandle, FakeTradingConfig
from tests.exchange.private_support import (
    FAST_REST,
    SYMBOL,
    collect_updates,
    private_client,
    private_ws,
    trading_fake,
)
from tests.exchange.support import run
from tests.session.helpers import session_env

KEY = "KEYacctQ7w8e9r0t1y2u3i4"
SECRET = "SECRETacctZ9x8c7v6b5n4m3"
WRONG = "WRONGacctP0o9i8u7y6t5r4"
ACCOUNT = FakeAccount(KEY, SECRET, uid="424242")
HEX_RUN = re.compile(r"[0-9a-fA-F]{16}")
FRAGMENT = 8
SIGN_HEADER = re.compile(rb"(?im)^sign:\s*([0-9a-f]+)\r?$")


class RecordingProxy:
    """A TCP relay on 127.0.0.1 that keeps every byte a client sent (HTTP
    requests are plain text here, so their ``sign`` headers can be read back)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent = bytearray()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            try:
                while data := await src.read(65536):
                    if record:
                        self.sent.extend(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signatures(self) -> list[str]:
        return [m.decode() for m in SIGN_HEADER.findall(bytes(self.sent))]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def fake() -> Iterator[FakeExchangeHandle]:
    with trading_fake(FakeTradingConfig(accounts=(ACCOUNT,))) as handle:
        yield handle


def _tick(x: float) -> float:
    return round(round(x / 0.1) * 0.1, 1)


def _creds(secret: str = SECRET) -> ApiCredentials:
    return ApiCredentials(KEY, secret)


def _open_position(fake: FakeExchangeHandle, resting: int = 1) -> None:
    async def go() -> None:
        async with private_client(fake, _creds()) as c:
            await c.place_order(OrderRequest.market(SYMBOL, "BUY", 0.01))
            last = (await c.rest.tickers([SYMBOL]))[0].last
            for i in range(resting):
                await c.place_order(OrderRequest.limit(SYMBOL, "BUY", 0.001, _tick(last * (0.97 - i / 100))))
        await asyncio.sleep(1.1)  # the fake's per-account 10/s window starts over

    run(go())


def _every_file_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def _assert_clean(everything: str, signatures: list[str]) -> None:
    """Not the values, and not a piece of one either (a library that shortens
    what it logs still leaks a prefix): no 8 characters of a key or secret in
    a row, no 16 hex digits in a row (a signature is 64)."""
    for secret in (KEY, SECRET, WRONG, *signatures):
        assert secret not in everything, f"leaked: {secret[:4]}..."
        for i in range(len(secret) - FRAGMENT + 1):
            piece = secret[i:i + FRAGMENT]
            assert piece not in everything, f"a piece of a secret: ...{_around(everything, everything.index(piece))}"
    found = HEX_RUN.search(everything)
    assert found is None, f"a run of hex digits (a signature?): ...{_around(everything, found.start())}"


def _around(text: str, at: int) -> str:
    return text[max(0, at - 60):at + 30].replace(KEY, "<KEY>")


def test_the_account_commands_never_show_a_secret(fake: FakeExchangeHandle, tmp_path: Path) -> None:
    proxy = RecordingProxy(fake.port)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    ws = tmp_path / "ws"
    texts: list[str] = []
    codes: dict[str, int] = {}

    def cli(name: str, *args: str, secret: str = SECRET) -> None:
        env = {k: v for k, v in session_env(ws).items() if not k.startswith("BITUNIX_")}
        env.update(BITUNIX_API_KEY=KEY, BITUNIX_API_SECRET=secret)
        proc = subprocess.run(
            [sys.executable, "-m", "laptop_agents", *args, "--bitunix-rest-url", proxy.url, "--log-level", "DEBUG"],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        texts.extend([proc.stdout, proc.stderr])
        codes[name] = proc.returncode

    try:
        _open_position(fake)
        cli("orders", "orders")
        cli("positions_json", "positions", "--json")
        cli("balance", "balance")
        cli("bad_signature", "balance", secret=WRONG)
        cli("bad_signature_flatten", "flatten", "--yes", secret=WRONG)
        fake.inject("http_status", status=503, count=4, path=pp.PATH_PENDING_ORDERS)
        cli("server_error", "orders")
        fake.inject("slow", seconds=1.0, count=4, path=pp.PATH_PENDING_POSITIONS)
        cli("timeout", "positions", "--timeout", "0.3")
        fake.clear_faults()
        fake.inject("place_timeout", seconds=1.0, accepted=True)
        cli("flatten_unknown_outcome", "flatten", "--yes", "--timeout", "0.4")
        _open_position(fake, resting=0)
        fake.inject("reject_order", code=20003, count=1000)
        cli("flatten_incomplete", "flatten", "--yes", "--json")
        fake.clear_faults()
        texts.append(str(fake.stats()))
        texts.append(str(fake.order_log()))
    finally:
        proxy.stop()
    assert codes == {
        "orders": 0, "positions_json": 0, "balance": 0, "bad_signature": ExitCode.LIVE_NOT_ALLOWED,
        "bad_signature_flatten": ExitCode.LIVE_NOT_ALLOWED, "server_error": ExitCode.MARKET_DATA_ERRORS,
        "timeout": ExitCode.MARKET_DATA_ERRORS, "flatten_unknown_outcome": 0,
        "flatten_incomplete": ExitCode.FLATTEN_INCOMPLETE,
    }, "\n".join(texts)
    signatures = proxy.signatures()
    assert len(signatures) >= 20 and all(len(s) == 64 for s in signatures)  # there was plenty to leak
    logs = ws / "logs" / "system.jsonl"
    assert logs.is_file() and "outcome unknown" in logs.read_text()  # the failure paths were logged
    everything = "\n".join(texts) + _every_file_text(ws) + _every_file_text(cwd)
    _assert_clean(everything, signatures)


def test_flatten_and_the_private_clients_in_process_never_show_a_secret(
        fake: FakeExchangeHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def note(obj: Any) -> None:
        texts.extend([str(obj), repr(obj)])

    _open_position(fake, resting=2)

    async def go() -> None:
        slow = dataclasses.replace(FAST_REST, timeout_s=0.4)
        async with private_client(fake, _creds(), rest=slow, resolve_attempts=2) as good, \
                private_client(fake, _creds(WRONG)) as bad:
            note(good)
            note(await flatten_all(bad, SYMBOL, backoff_s=0.02, rounds=1))  # every read refused: not verified
            fake.inject("cancel_5xx", status=502, accepted=False)
            fake.inject("place_timeout", seconds=1.0, accepted=True)
            result = await flatten_all(good, SYMBOL, backoff_s=0.05)
            assert result.done and result.problems
            note(result)
            texts.append(result.describe())
            texts.extend(result.problems)
            ws = private_ws(fake, credentials=_creds())
            items: list[Any] = []
            injected_at: int | None = None
            async with asyncio.timeout(30):
                async for item in ws.updates():  # connect, log in, get dropped, log in again
                    items.append(item)
                    if injected_at is None and isinstance(item, PrivateConnected):
                        await asyncio.to_thread(fake.inject, "private_disconnect")
                        injected_at = len(items)
                    if injected_at is not None and any(isinstance(i, PrivateGap) for i in items[injected_at:]):
                        break
            note(items)
            note(ws)
            texts.append(str(ws.status()))
            await ws.aclose()
            bad_ws = private_ws(fake, credentials=_creds(WRONG))
            with pytest.raises(AuthError) as refused:
                await collect_updates(bad_ws.updates(), lambda got: False)
            note(refused.value)
            texts.append(str(bad_ws.status()))
            await bad_ws.aclose()

    run(go(), timeout=90)
    texts.append(caplog.text)
    texts.extend(r.getMessage() for r in caplog.records)
    texts.extend(str(getattr(r, "fields", "")) for r in caplog.records)
    assert any("outcome unknown" in r.getMessage() for r in caplog.records)
    _assert_clean("\n".join(texts), [])
