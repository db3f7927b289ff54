"""Start the fake exchange for real: uvicorn on a loopback socket, in a thread
of the calling process (tests, drills) or in the foreground (the CLI).

The server has its own event loop in its own thread, so a test's client code
(sync or async) talks to it over real sockets exactly as it would to Bitunix.
The handle's ``inject``/``stats`` hop onto the server loop thread-safely.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.exchange import protocol
from laptop_agents.testing.fake_exchange.app import build_app
from laptop_agents.testing.fake_exchange.faults import Fault, parse_schedule
from laptop_agents.testing.fake_exchange.state import FakeExchange, FakeExchangeConfig
from laptop_agents.testing.fake_exchange.trading import FakeAccount


class FakeExchangeError(LaptopAgentsError, RuntimeError):
    """The fake exchange could not start (bad host, port in use...)."""


def check_loopback(host: str) -> str:
    """The fake exchange never listens beyond this machine."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise FakeExchangeError(f"fake exchange host {host!r} is not an IP address: use 127.0.0.1 or ::1") from None
    if not ip.is_loopback:
        raise FakeExchangeError(f"fake exchange host {host!r} is not a loopback address: use 127.0.0.1 or ::1")
    return host


def bind_socket(host: str, port: int) -> socket.socket:
    host = check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then
    # (with proto 0 every reply waited ~40 ms for Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FakeExchangeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def uvicorn_server(ex: FakeExchange) -> uvicorn.Server:
    config = uvicorn.Config(
        build_app(ex),
        log_config=None,  # never reconfigure the host process's logging
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws_ping_interval=None,  # the real server never pings: clients must
        ws_ping_timeout=None,
        date_header=False,  # our Date header carries simulated time
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


class FakeExchangeHandle:
    """A running fake exchange. ``rest_url``/``ws_url`` are what a client is
    configured with; ``exchange`` is the server-side state (read it only via
    :meth:`stats`, it lives on the server thread)."""

    def __init__(self, ex: FakeExchange, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket) -> None:
        self.exchange = ex
        self._server = server
        self._thread = thread
        self._sock = sock
        addr = sock.getsockname()
        self.host = addr[0]
        self.port = int(addr[1])
        netloc = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        self.rest_url = f"http://{netloc}"
        self.ws_url = f"ws://{netloc}{protocol.WS_PUBLIC_PATH}"
        self.private_ws_url = f"ws://{netloc}{protocol.WS_PRIVATE_PATH}"

    def _call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        loop = self.exchange.loop
        if loop is None or not self._thread.is_alive():
            raise FakeExchangeError("fake exchange is not running")

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def inject(self, fault: Fault | str, **params: Any) -> None:
        """Arm a fault now: ``inject("malformed", count=3)`` or ``inject(Fault(...))``."""
        f = fault if isinstance(fault, Fault) else Fault(kind=fault, **params)
        self._call(lambda: self.exchange.apply_fault(f))

    def clear_faults(self) -> None:
        self._call(self.exchange.faults.clear)

    def armed(self, kind: str) -> int:
        """How many requests or fills an armed fault of ``kind`` will still hit
        (0: consumed, or never armed) -- queued REST and private faults only."""
        def count() -> int:
            book = self.exchange.faults
            return sum(f.count for f in book.rest_faults + book.private_faults if f.kind == kind)
        result: int = self._call(count)
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self.exchange.snapshot)
        return result

    def now_ms(self) -> int:
        return self.exchange.now_ms()

    # -- the private side (read on the server thread) ------------------------------------
    @property
    def accounts(self) -> tuple[FakeAccount, ...]:
        """The fake's API users (fake keys, configured on the fake)."""
        return self.exchange.config.trading.accounts

    def order_log(self, account: str | None = None) -> list[dict[str, Any]]:
        """The exchange's own record: every accepted/rejected/filled/cancelled order, funding, faults."""
        def read() -> list[dict[str, Any]]:
            self.exchange.trading.advance()
            return self.exchange.trading.order_log(account)
        result: list[dict[str, Any]] = self._call(read)
        return result

    def orders(self, account: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(lambda: self.exchange.trading.orders_view(account))
        return result

    def positions(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            self.exchange.trading.advance()
            return self.exchange.trading.positions_view()
        result: list[dict[str, Any]] = self._call(read)
        return result

    def balances(self) -> dict[str, dict[str, float]]:
        result: dict[str, dict[str, float]] = self._call(self.exchange.trading.balances_view)
        return result

    def trade_by_hand(self, qty: float, account: str | None = None) -> None:
        """Someone trades on the account behind the bot's back."""
        self.inject(Fault(kind="position_by_hand", qty=qty, account=account))

    @property
    def config(self) -> FakeExchangeConfig:
        return self.exchange.config

    def stop(self) -> None:
        """Stop serving, close every connection, join the thread."""
        self._server.should_exit = True
        self._thread.join(10)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> FakeExchangeHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fake_exchange(
    config: FakeExchangeConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout_s: float = 15.0,
    **overrides: Any,
) -> FakeExchangeHandle:
    """Serve a fake exchange on ``host:port`` (0 = a free port) in a background
    thread and return once it accepts connections.

    ``overrides`` are :class:`FakeExchangeConfig` fields, e.g.
    ``start_fake_exchange(seed=3, speed=600, push_interval_s=0.05)``;
    ``faults`` may also be a schedule string (``"disconnect@30,silence@90:20"``)."""
    if isinstance(overrides.get("faults"), str):
        overrides["faults"] = tuple(parse_schedule(overrides["faults"]))
    cfg = dataclasses.replace(config or FakeExchangeConfig(), **overrides)
    ex = FakeExchange(cfg)
    sock = bind_socket(host, port)
    server = uvicorn_server(ex)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the starting thread below
            errors.append(exc)

    thread = threading.Thread(target=serve, name=f"fake-exchange-{sock.getsockname()[1]}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not (server.started and ex.loop is not None):
        if errors or not thread.is_alive():
            sock.close()
            raise FakeExchangeError(f"fake exchange failed to start: {errors[0] if errors else 'thread ended'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise FakeExchangeError("fake exchange did not start in time")
        time.sleep(0.01)
    return FakeExchangeHandle(ex, server, thread, sock)
