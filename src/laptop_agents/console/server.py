"""Serve the dashboard with uvicorn inside the caller's running event loop.

uvicorn's ``Server.serve`` normally replaces the SIGINT/SIGTERM handlers with
its own (``signal.signal``), which would silently take the session's graceful
shutdown away; :class:`_LoopServer` leaves signals alone, so the session keeps
the one door out it already has. The listening socket is bound here, before
uvicorn starts, so a port in use is a plain ``OSError`` from :meth:`start`,
and ``port=0`` picks a free port (:attr:`DashboardServer.port`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

from laptop_agents.console.app import (
    Dashboard,
    DashboardOptions,
    check_token,
    create_app,
    dashboard_of,
    is_loopback,
)
from laptop_agents.console.view import SessionControl, SessionView
from laptop_agents.logs import get_logger

log = get_logger("console.server")

TOKEN_ENV = "LA_DASHBOARD_TOKEN"
DEFAULT_HOST = "127.0.0.1"
_STOP_GRACE_S = 3.0


def token_from_env(environ: dict[str, str] | None = None) -> str | None:
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return value or None


class _LoopServer(uvicorn.Server):
    """A uvicorn server that never touches the process's signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class DashboardServer:
    """The dashboard app on ``host:port``, run as a task of the current loop.

    ``await DashboardServer(view, control).start()`` binds and serves;
    ``await server.close()`` ends every event stream and stops within a few
    seconds. A non-loopback ``host`` needs a ``token`` (``LA_DASHBOARD_TOKEN``):
    :class:`~laptop_agents.console.app.DashboardConfigError` otherwise, before
    anything is bound.
    """

    def __init__(
        self,
        view: SessionView,
        control: SessionControl | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str | None = None,
        runs_dir: Path | None = None,
        metrics: Any = None,
        options: DashboardOptions | None = None,
        health_only: bool = False,
    ) -> None:
        self.host = host
        self.health_only = health_only
        self.token = check_token(token, host)
        self._requested_port = port
        loopback = is_loopback(host)
        self.app = create_app(
            view, control, token=self.token, runs_dir=runs_dir, metrics=metrics, options=options,
            health_only=health_only, allowed_hosts=frozenset({"127.0.0.1", "localhost", "::1", host.strip("[]").lower()}) if loopback else None,
        )
        self.options = options or DashboardOptions()
        self._server: _LoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.forced_close = False  # close() had to cancel the server (a connection would not end)

    @property
    def dashboard(self) -> Dashboard:
        return dashboard_of(self.app)

    @property
    def url(self) -> str:
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def poke(self) -> None:
        """Tell open pages that something changed (cheap; call after each step, on the loop thread)."""
        self.dashboard.poke()

    async def start(self, *, bind: str | None = None) -> DashboardServer:
        """Bind and serve. ``bind`` listens on another address than ``host``
        while keeping the app configured for ``host`` (tests use it to serve a
        public-bind configuration on the loopback)."""
        sock = _bind(bind or self.host, self._requested_port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            server_header=False,
            proxy_headers=False,
            # Connections beyond this get 503 from uvicorn itself: event streams
            # are capped by the app, this bounds everything else in a flood.
            limit_concurrency=self.options.max_clients + 64,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=int(_STOP_GRACE_S),
        )
        server = _LoopServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="dashboard-server")
        while not server.started:
            if self._task.done():
                sock.close()
                exc = self._task.exception() if not self._task.cancelled() else None
                raise OSError(f"dashboard server did not start: {exc!r}")
            await asyncio.sleep(0.01)
        return self

    @property
    def health_url(self) -> str:
        return self.url + "health"

    async def close(self, *, final_push: bool = False) -> None:
        """Stop serving; ``final_push`` first sends open pages the last status."""
        server, task = self._server, self._task
        self._server = self._task = None
        if final_push and server is not None:
            await self.dashboard.final_push()
        await self.dashboard.close()  # ends every event stream, so connections can close
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_GRACE_S + 2.0)
        except TimeoutError:
            self.forced_close = True
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception as exc:
            log.debug("dashboard server ended with %s", exc)
