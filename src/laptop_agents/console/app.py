"""The web dashboard: a starlette app over a :class:`SessionView` and a :class:`SessionControl`.

Pages update by server-sent events (``/api/stream``): a *pump* task, running
only while at least one browser is connected, reads the view about once a
second (sooner after :meth:`Dashboard.poke`) and broadcasts what changed --
the status snapshot and the new items of each stream -- as one ``update``
message encoded once for all clients. The session's candle path therefore
never waits for a browser, and a dashboard nobody watches costs nothing.

Security, in the order a request meets it (:class:`_Guard`):

1. *Host*: on a loopback bind the ``Host`` header must name the loopback
   (127.x, localhost, ::1), which defeats DNS-rebinding pages that would
   otherwise read the dashboard through the user's browser.
2. *Token*: when a token is configured (required for a non-loopback bind;
   ``LA_DASHBOARD_TOKEN``), every request needs ``Authorization: Bearer
   <token>`` or the cookie that ``POST /login`` sets (an HMAC of the token,
   never the token itself); anything else gets 401.
3. *Controls* are POST-only (a GET gets 405) and need the per-server random
   CSRF token (in the page's ``<meta>``, sent back in the ``X-LA-CSRF``
   header, which a cross-site form cannot set), a JSON content type and, when
   the browser sends them, a same-origin ``Origin`` and ``Sec-Fetch-Site``.

No page ever contains the access token or any other secret; everything sent
is scrubbed of registered secrets. Past runs' files are served read-only from
the workspace's ``runs/`` directory by a fixed list of names, with run ids
checked against a strict pattern and the resolved path kept inside ``runs/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import ipaddress
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from laptop_agents.console.sse import SseHub, encode
from laptop_agents.console.view import (
    LATEST,
    STREAMS,
    ControlRefused,
    SessionControl,
    SessionView,
    clean_json,
)
from laptop_agents.domain.errors import UsageError
from laptop_agents.logs import SCRUBBER, get_logger, scrub_obj

log = get_logger("console.dashboard")

STATIC_DIR = Path(__file__).resolve().parent / "static"
CSRF_HEADER = "x-la-csrf"
COOKIE_NAME = "la_dashboard"
MIN_TOKEN_LEN = 16
# Files of a past run the dashboard may serve, with their content types.
RUN_FILES = {"report.html": "text/html; charset=utf-8", "summary.json": "application/json"}
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,159}")
_SUMMARY_MAX_BYTES = 1_000_000

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# A stored report is a self-contained page with inline scripts: sandboxed into an
# opaque origin it can run its charts but never call the controls with our cookie.
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'none'"
)
_COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class DashboardConfigError(UsageError):
    """A dashboard setting that cannot be used (e.g. a public bind without a token)."""


@dataclass
class DashboardOptions:
    """Tuning knobs; the defaults suit one laptop with a few browser tabs."""

    max_clients: int = 16  # concurrent event streams; more get 503
    queue_size: int = 64  # messages buffered per slow client before it is resynced
    interval_s: float = 1.0  # longest pause between updates (the data age keeps ticking)
    min_interval_s: float = 0.25  # shortest: bursts of candles are coalesced
    keepalive_s: float = 15.0  # a comment line on idle streams finds dead peers
    runs_refresh_s: float = 10.0
    max_runs: int = 200
    title: str = "btc-laptop-agents"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` (the only binds that need no token)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_token(token: str | None, host: str) -> str | None:
    """The token to use for a bind on ``host``, or a :class:`DashboardConfigError`."""
    if token is not None and len(token) < MIN_TOKEN_LEN:
        raise DashboardConfigError(f"the dashboard token must be at least {MIN_TOKEN_LEN} characters "
                                   f"(LA_DASHBOARD_TOKEN has {len(token)})")
    if token is None and not is_loopback(host):
        raise DashboardConfigError(f"binding the dashboard to {host} needs a token: set LA_DASHBOARD_TOKEN "
                                   f"(at least {MIN_TOKEN_LEN} characters) or bind to 127.0.0.1")
    return token


def _host_name(host_header: str) -> str:
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"la-dashboard-cookie-v1", hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- past runs


def list_runs(runs_dir: Path | None, limit: int = 200) -> list[dict[str, Any]]:
    """The newest run directories with a few summary fields, newest first."""
    if runs_dir is None or not runs_dir.is_dir():
        return []
    entries = []
    with contextlib.suppress(OSError):
        for p in runs_dir.iterdir():
            if not _RUN_ID.fullmatch(p.name) or p.is_symlink():
                continue
            with contextlib.suppress(OSError):
                if p.is_dir():
                    entries.append((p.stat().st_mtime, p))
    entries.sort(key=lambda e: e[0], reverse=True)
    out = []
    for mtime, p in entries[:limit]:
        row: dict[str, Any] = {"run_id": p.name, "mtime": round(mtime, 3),
                               "report": (p / "report.html").is_file(), "summary": False}
        summary = p / "summary.json"
        with contextlib.suppress(OSError, ValueError):
            if summary.is_file() and summary.stat().st_size <= _SUMMARY_MAX_BYTES:
                s = json.loads(summary.read_text(encoding="utf-8"))
                if isinstance(s, dict):
                    row["summary"] = True
                    for k in ("mode", "reason", "exit_code", "started_at", "ended_at", "starting_equity",
                              "final_equity", "symbol", "interval", "strategy"):
                        row[k] = s.get(k)
        out.append(row)
    return out


def run_file(runs_dir: Path, run_id: str, name: str) -> Path | None:
    """The path of ``runs/<run_id>/<name>`` if it is an allowed, existing file inside
    ``runs_dir`` (never outside it, whatever the input), else None."""
    if name not in RUN_FILES or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        return None
    root = runs_dir.resolve()
    try:
        path = (root / run_id / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(root) or path.parent.parent != root or not path.is_file():
        return None
    return path


# ---------------------------------------------------------------- the dashboard


class Dashboard:
    """State shared by the routes: the view, the control, the SSE hub and the pump."""

    def __init__(
        self,
        view: SessionView,
        control: SessionControl | None,
        *,
        token: str | None,
        runs_dir: Path | None,
        metrics: Any,
        options: DashboardOptions,
        allowed_hosts: frozenset[str] | None,
    ) -> None:
        self.view = view
        self.control = control
        self.token = token
        if token:
            SCRUBBER.register(token)
        self.cookie = _cookie_value(token) if token else None
        self.csrf = secrets.token_urlsafe(32)
        self.runs_dir = runs_dir
        self.metrics = metrics
        self.opt = options
        self.allowed_hosts = allowed_hosts
        self.hub = SseHub(max_clients=options.max_clients, queue_size=options.queue_size)
        self._poke = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._runs: list[dict[str, Any]] = []
        self._runs_at = -1e9
        self.pushes = 0
        self.pump_errors = 0
        self.controls_used: list[str] = []

    # --------------------------------------------------------- data
    def status(self) -> dict[str, Any]:
        try:
            st = dict(self.view.status())
        except Exception as exc:  # the page must still render
            st = {"status": "error", "error": type(exc).__name__, "healthy": False}
        return st

    async def runs(self, *, force: bool = False) -> list[dict[str, Any]]:
        now = time.monotonic()
        if force or now - self._runs_at >= self.opt.runs_refresh_s:
            self._runs_at = now
            try:
                self._runs = await asyncio.to_thread(list_runs, self.runs_dir, self.opt.max_runs)
            except Exception as exc:
                log.debug("listing runs failed: %s", exc)
        return self._runs

    async def snapshot(self) -> bytes:
        """The full state a (re)connecting client starts from."""
        streams = {}
        for s in STREAMS:
            r = self.view.recent(s, 0)
            streams[s] = {"seq": r.seq, "items": r.items}
        payload = {"reset": True, "status": self.status(), "streams": streams,
                   "runs": await self.runs(), "controls": self.control is not None}
        return encode("update", payload)

    # --------------------------------------------------------- pump
    def poke(self) -> None:
        """Something changed (a candle was committed): push soon, not at the next tick."""
        self._poke.set()

    def ensure_pump(self) -> None:
        if self._stopping:
            return
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.create_task(self._pump(), name="dashboard-pump")

    async def _poked(self, timeout: float) -> None:
        """Until poked or ``timeout``. ``asyncio.wait``, not ``wait_for``: on
        Python 3.11 ``wait_for`` can swallow a cancellation that arrives as the
        event is set, and a pump that survives its cancel never lets the server
        close."""
        waiter = asyncio.ensure_future(self._poke.wait())
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()

    async def _stop_pump(self) -> None:
        """Stop the pump for good (its loop also checks the flag: a cancel alone
        is not enough, see :meth:`_poked`); never waits more than a second."""
        self._stopping = True
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            self._poke.set()
            await asyncio.wait({task}, timeout=1.0)

    async def _pump(self) -> None:
        view, hub, opt = self.view, self.hub, self.opt
        cursors = {s: view.recent(s, LATEST).seq for s in STREAMS}
        last_status = ""
        last_runs = json.dumps(self._runs, sort_keys=True, default=str)
        while hub.clients and not hub.closed and not self._stopping:
            await self._poked(opt.interval_s)
            self._poke.clear()
            if not hub.clients or hub.closed or self._stopping:
                break
            try:
                payload: dict[str, Any] = {}
                status = self.status()
                text = json.dumps(clean_json(status), sort_keys=True, default=str)
                if text != last_status:
                    last_status = text
                    payload["status"] = status
                streams: dict[str, Any] = {}
                gap = False
                for s in STREAMS:
                    r = view.recent(s, cursors[s])
                    cursors[s] = r.seq
                    gap = gap or r.gap
                    if r.items:
                        streams[s] = {"seq": r.seq, "items": r.items}
                if streams:
                    payload["streams"] = streams
                runs = await self.runs()
                runs_text = json.dumps(runs, sort_keys=True, default=str)
                if runs_text != last_runs:
                    last_runs = runs_text
                    payload["runs"] = runs
                if gap:
                    hub.resync_all()  # this client fell behind the ring buffers: a snapshot, not deltas
                elif payload:
                    hub.broadcast(encode("update", payload))
                    self.pushes += 1
            except Exception as exc:  # a bad value must not end live updates for good
                self.pump_errors += 1
                log.warning("dashboard update failed: %s", exc)
            await asyncio.sleep(opt.min_interval_s)

    async def final_push(self) -> None:
        """Send every open page what changed since the pump's last update (the
        session's last status: stopped, with its reason) before the server goes."""
        await self._stop_pump()
        if not self.hub.clients:
            return
        try:
            self.hub.broadcast(await self.snapshot())
        except Exception as exc:  # the last word is a courtesy: never fail the shutdown for it
            log.debug("final dashboard update failed: %s", exc)
            return
        for _ in range(20):  # let the streams write it (bounded: a client that stopped reading is left)
            if not any(c.queue for c in self.hub.clients):
                break
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self.hub.close()
        await self._stop_pump()


# ---------------------------------------------------------------- routes


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(scrub_obj(clean_json(data)), default=str, sort_keys=True) + "\n"
    return Response(body, status_code=status, media_type="application/json")


def _dash(request: Request) -> Dashboard:
    return request.app.state.dashboard


async def health(request: Request) -> Response:
    """``/health`` with the contract of the old hand-written server: the runner's
    snapshot plus ``healthy``, sorted keys, 200 when healthy else 503."""
    d = _dash(request)
    try:
        healthy, body = d.view.health()
    except Exception as exc:  # the endpoint must answer even if a snapshot fails
        log.warning("health snapshot failed: %s", exc)
        healthy, body = False, {"status": "error", "error": type(exc).__name__}
    body = {**body, "healthy": healthy}
    data = json.dumps(scrub_obj(body), default=str, sort_keys=True) + "\n"
    return Response(data, status_code=200 if healthy else 503, media_type="application/json")


async def page(request: Request) -> Response:
    d = _dash(request)
    html = (STATIC_DIR / "dashboard.html").read_text(encoding="utf-8")
    html = html.replace("{{csrf}}", d.csrf).replace("{{title}}", _html_escape(d.opt.title))
    return HTMLResponse(html, headers={"content-security-policy": PAGE_CSP})


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_STATIC = {
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name == "plotly.min.js":
        return FileResponse(_plotly_js(), media_type="text/javascript; charset=utf-8",
                            headers={"cache-control": "public, max-age=86400"})
    entry = _STATIC.get(name)
    if entry is None:
        return PlainTextResponse("not found\n", status_code=404)
    return FileResponse(STATIC_DIR / entry[0], media_type=entry[1], headers={"cache-control": "no-cache"})


async def api_status(request: Request) -> Response:
    return _json(_dash(request).status())


async def api_runs(request: Request) -> Response:
    return _json(await _dash(request).runs(force=True))


async def run_files(request: Request) -> Response:
    d = _dash(request)
    run_id, name = request.path_params["run_id"], request.path_params["name"]
    path = run_file(d.runs_dir, run_id, name) if d.runs_dir is not None else None
    if path is None:
        return PlainTextResponse("not found\n", status_code=404)
    headers = {"cache-control": "no-cache"}
    if name.endswith(".html"):
        headers["content-security-policy"] = REPORT_CSP
    return FileResponse(path, media_type=RUN_FILES[name], headers=headers)


async def stream(request: Request) -> Response:
    d = _dash(request)
    peer = request.client.host if request.client else ""
    client = d.hub.add(peer)
    if client is None:
        return PlainTextResponse("too many dashboard streams; try again later\n", status_code=503,
                                 headers={"retry-after": "5"})
    try:
        first = await d.snapshot()
    except BaseException:
        d.hub.remove(client)
        raise
    d.ensure_pump()

    async def events() -> Any:
        try:
            yield b"retry: 3000\n\n" + first
            while not client.closed:
                try:
                    await asyncio.wait_for(client.wake.wait(), d.opt.keepalive_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                client.wake.clear()
                if client.resync:
                    client.resync = False
                    client.queue.clear()
                    yield await d.snapshot()
                while client.queue:
                    yield client.queue.popleft()
            while client.queue:  # closed: what was queued before (the final update) still goes out
                yield client.queue.popleft()
        finally:
            d.hub.remove(client)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def _csrf_problem(request: Request, d: Dashboard) -> str | None:
    """Why a state-changing request is refused, or None if it may proceed."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), d.csrf.encode()):
        return "missing or bad CSRF token (X-LA-CSRF)"
    return _origin_problem(request)


def _origin_problem(request: Request) -> str | None:
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin != f"{request.url.scheme}://{host}":
        return "cross-origin request refused"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return "cross-site request refused"
    return None


async def _control(request: Request, action: str, call: Callable[[SessionControl], Any],
                   body: dict[str, Any] | None = None) -> Response:
    d = _dash(request)
    problem = _csrf_problem(request, d)
    if problem is not None:
        log.warning("dashboard control %s refused: %s", action, problem)
        return _json({"ok": False, "error": problem}, 403)
    if d.control is None:
        return _json({"ok": False, "error": "this dashboard is read-only (no session to control)"}, 501)
    try:
        result = call(d.control)
        if inspect.isawaitable(result):
            await result
    except ControlRefused as exc:
        log.warning("dashboard control %s refused: %s", action, exc)
        return _json({"ok": False, "action": action, "error": str(exc)}, 409)
    except Exception as exc:
        log.error("dashboard control %s failed: %s", action, exc)
        return _json({"ok": False, "action": action, "error": type(exc).__name__}, 500)
    peer = request.client.host if request.client else "?"
    log.info("dashboard control: %s from %s", action, peer,
             extra={"fields": {"action": action, "peer": peer, **(body or {})}})
    d.controls_used.append(action)
    d.poke()
    return _json({"ok": True, "action": action, **(body or {})})


async def _json_body(request: Request) -> dict[str, Any] | Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return _json({"ok": False, "error": "send Content-Type: application/json"}, 415)
    raw = await request.body()
    if len(raw) > 4096:
        return _json({"ok": False, "error": "body too large"}, 413)
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return _json({"ok": False, "error": "body is not JSON"}, 400)
    if not isinstance(data, dict):
        return _json({"ok": False, "error": "body must be a JSON object"}, 400)
    return data


async def control_stop(request: Request) -> Response:
    data = await _json_body(request)
    if isinstance(data, Response):
        return data
    flatten = data.get("flatten", False)
    if not isinstance(flatten, bool):
        return _json({"ok": False, "error": "flatten must be true or false"}, 400)
    return await _control(request, "stop", lambda c: c.stop(flatten), {"flatten": flatten})


async def control_pause(request: Request) -> Response:
    data = await _json_body(request)
    if isinstance(data, Response):
        return data
    return await _control(request, "pause_entries", lambda c: c.pause_entries())


async def control_resume(request: Request) -> Response:
    data = await _json_body(request)
    if isinstance(data, Response):
        return data
    return await _control(request, "resume_entries", lambda c: c.resume_entries())


async def login(request: Request) -> Response:
    """Trade the token (typed into the 401 page's form) for an HttpOnly cookie."""
    d = _dash(request)
    if d.token is None:
        return PlainTextResponse("this dashboard needs no login\n", status_code=404)
    if _origin_problem(request) is not None:
        return _unauthorized(request, "cross-origin login refused")
    raw = await request.body()
    token = (parse_qs(raw[:4096].decode("utf-8", "replace")).get("token") or [""])[0]
    if not hmac.compare_digest(token.encode(), d.token.encode()):
        log.warning("dashboard login with a bad token from %s", request.client.host if request.client else "?")
        return _unauthorized(request, "bad token")
    assert d.cookie is not None
    resp = Response(status_code=303, headers={"location": "/"})
    resp.set_cookie(COOKIE_NAME, d.cookie, httponly=True, samesite="strict", path="/")
    return resp


_LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>login</title>
<style>body{font:15px system-ui,sans-serif;background:#111;color:#ddd;margin:4em}
input,button{font:inherit;padding:.4em}</style></head><body><h2>btc-laptop-agents dashboard</h2>
<p>This dashboard needs its access token (LA_DASHBOARD_TOKEN). MESSAGE</p>
<form method="post" action="/login"><input type="password" name="token" autocomplete="current-password"
 placeholder="token" autofocus> <button type="submit">Open</button></form></body></html>"""


def _unauthorized(request: Request | Headers, why: str) -> Response:
    headers = request.headers if isinstance(request, Request) else request
    hdrs = {"www-authenticate": 'Bearer realm="laptop-agents"'}
    if "text/html" in headers.get("accept", ""):
        return HTMLResponse(_LOGIN_PAGE.replace("MESSAGE", _html_escape(why)), status_code=401,
                            headers={**hdrs, "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                                        "form-action 'self'; frame-ancestors 'none'"})
    return PlainTextResponse(f"401: {why}: send Authorization: Bearer <LA_DASHBOARD_TOKEN>\n",
                             status_code=401, headers=hdrs)


# ---------------------------------------------------------------- the guard


class _Guard:
    """Host check, token check and common security headers for every HTTP request."""

    def __init__(self, app: ASGIApp, dashboard: Dashboard) -> None:
        self.app = app
        self.d = dashboard

    def _authorized(self, headers: Headers) -> bool:
        d = self.d
        assert d.token is not None and d.cookie is not None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), d.token.encode()):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE_NAME and hmac.compare_digest(value.encode(), d.cookie.encode()):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        d = self.d

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                for k, v in _COMMON_HEADERS:
                    if k.decode() not in h:
                        h.append(k.decode(), v.decode())
                if "cache-control" not in h:
                    h.append("cache-control", "no-store")
            await send(message)

        if d.allowed_hosts is not None and _host_name(headers.get("host", "")) not in d.allowed_hosts:
            resp: Response = PlainTextResponse("400: bad Host header (this dashboard answers on the loopback only)\n",
                                               status_code=400)
            await resp(scope, receive, send_with_headers)
            return
        if d.token is not None and not self._authorized(headers):
            if not (scope["path"] == "/login" and scope["method"] == "POST"):
                await _unauthorized(headers, "no or bad token")(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


def create_app(
    view: SessionView,
    control: SessionControl | None = None,
    *,
    token: str | None = None,
    runs_dir: Path | None = None,
    metrics: Any = None,
    allowed_hosts: frozenset[str] | None = frozenset({"127.0.0.1", "localhost", "::1"}),
    options: DashboardOptions | None = None,
    health_only: bool = False,
) -> Starlette:
    """The dashboard as an ASGI app; ``app.state.dashboard`` is its :class:`Dashboard`.

    ``token`` (if given) is required on every request. ``allowed_hosts`` are
    the ``Host`` header names answered (None: any; use it only with a token).
    ``metrics`` is a :class:`~laptop_agents.console.metrics.SessionMetrics`
    served at ``/metrics``. ``control=None`` makes a read-only dashboard.
    ``health_only`` serves ``/health`` and ``/metrics`` and nothing else (the
    ``--health-port`` of a monitoring system: no pages, no controls).
    """
    if token is not None and len(token) < MIN_TOKEN_LEN:
        check_token(token, "127.0.0.1")  # raises with the one-line reason
    if allowed_hosts is None and token is None:
        raise DashboardConfigError("a dashboard that answers any Host header needs a token")
    d = Dashboard(view, control, token=token, runs_dir=runs_dir, metrics=metrics,
                  options=options or DashboardOptions(), allowed_hosts=allowed_hosts)

    async def metrics_route(request: Request) -> Response:
        if d.metrics is None:
            return PlainTextResponse("metrics are not enabled\n", status_code=404)
        body, ctype = d.metrics.exposition()
        return Response(body, media_type=ctype)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
    ]
    if not health_only:
        routes += _page_routes()
    app = Starlette(routes=routes)
    app.state.dashboard = d
    app.add_middleware(_Guard, dashboard=d)
    return app


def _page_routes() -> list[Route]:
    return [
        Route("/", page, methods=["GET"]),
        Route("/api/status", api_status, methods=["GET"]),
        Route("/api/runs", api_runs, methods=["GET"]),
        Route("/api/stream", stream, methods=["GET"]),
        Route("/api/control/stop", control_stop, methods=["POST"]),
        Route("/api/control/pause", control_pause, methods=["POST"]),
        Route("/api/control/resume", control_resume, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/runs/{run_id}/{name}", run_files, methods=["GET"]),
    ]


def dashboard_of(app: Starlette) -> Dashboard:
    return app.state.dashboard
