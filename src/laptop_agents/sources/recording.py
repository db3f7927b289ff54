"""Record a Bitunix session's raw market traffic, and replay it exactly.

:class:`Recorder` writes one JSON line per raw message the session receives,
with its receive time (``t``, UTC ms): every websocket frame, every
connection open/close, and every REST reply (warm-up, backfill, funding)
including failed attempts. It is written by the live source, flushed about
once a second, and lives at ``runs/<run_id>/market.jsonl``.

:class:`RecordingReplaySource` feeds a recording back through the *same*
code as the live source -- the REST client (its paging, envelope checks and
retries run against the recorded replies), the push parser and the candle
assembler -- so the session's inputs, and hence its decisions, are the same
as in the original run. Recording lines:

- ``{"k":"meta","v":1,"t":..,"symbol":..,"interval":..,"warmup_bars":..,"feed":{..},"rest":{..}}`` (first line)
- ``{"k":"rest","t":..,"method":"GET","path":..,"params":{..},"status":200,"date":..,"body":"..."}``
  (or ``"error"``/``"message"`` for a transport failure; ``body_b64`` for non-UTF-8 bodies)
- ``{"k":"ws_open","t":..,"conn":1}`` · ``{"k":"ws","t":..,"conn":1,"data":"<frame>"}``
  (``data_b64`` for binary frames) · ``{"k":"ws_close","t":..,"conn":1,"reason":..,"idle":false}``

Public market data holds no secrets and no request headers are recorded, so
raw frames are written unchanged (scrubbing could alter them and break the
replay); reasons that come from exceptions are scrubbed.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import IO, Any

import httpx

from laptop_agents.domain.contracts import MarketItem
from laptop_agents.domain.errors import InputDataError
from laptop_agents.domain.models import Candle
from laptop_agents.domain.symbols import normalize_symbol
from laptop_agents.domain.timeframes import parse_interval
from laptop_agents.exchange.feed import FeedOptions, MarketFeed
from laptop_agents.exchange.ratelimit import RateLimitBudget
from laptop_agents.exchange.rest import BitunixRestClient, RestOptions
from laptop_agents.exchange.ws import WsClosed, WsEvent, WsFrame, WsOpened
from laptop_agents.logs import scrub
from laptop_agents.wallclock import now_ms

FORMAT_VERSION = 1
_KEPT_HEADERS = ("content-type", "date", "retry-after")


class RecordingError(InputDataError):
    """A recording that cannot be replayed (bad line, or the replay diverged from it)."""



def _put_data(entry: dict[str, Any], key: str, data: str | bytes) -> None:
    if isinstance(data, str):
        entry[key] = data
        return
    try:
        entry[key] = data.decode("utf-8")
    except UnicodeDecodeError:
        entry[key + "_b64"] = base64.b64encode(data).decode("ascii")
        return
    entry[key + "_bytes"] = True  # decodable, but it arrived as bytes


def _get_data(entry: dict[str, Any], key: str) -> str | bytes:
    if key + "_b64" in entry:
        return base64.b64decode(entry[key + "_b64"])
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise RecordingError(f"recording field {key!r} must be a string")
    return value.encode("utf-8") if entry.get(key + "_bytes") else value


class Recorder:
    """Append-only JSON-lines writer of raw market traffic."""

    def __init__(
        self,
        path: str | Path,
        *,
        flush_every_s: float = 1.0,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._flush_every_s = flush_every_s
        self._last_flush = time.monotonic()
        self.clock_ms = clock_ms
        self.lines = 0

    def write(self, entry: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n")
        self.lines += 1
        now = time.monotonic()
        if now - self._last_flush >= self._flush_every_s:
            self._fh.flush()
            self._last_flush = now

    def meta(self, **fields: Any) -> None:
        self.write({"k": "meta", "v": FORMAT_VERSION, "t": self.clock_ms(), **fields})

    def ws_event(self, event: WsEvent) -> None:
        if isinstance(event, WsFrame):
            entry: dict[str, Any] = {"k": "ws", "t": event.recv_ms, "conn": event.conn}
            _put_data(entry, "data", event.data)
            self.write(entry)
        elif isinstance(event, WsOpened):
            self.write({"k": "ws_open", "t": event.at_ms, "conn": event.conn})
        elif isinstance(event, WsClosed):
            self.write({"k": "ws_close", "t": event.at_ms, "conn": event.conn, "reason": scrub(event.reason),
                        "idle": event.idle})

    def rest(self, request: httpx.Request, response: httpx.Response | None, body: bytes | None,
             error: BaseException | None = None) -> None:
        entry: dict[str, Any] = {
            "k": "rest",
            "t": self.clock_ms(),
            "method": request.method,
            "path": request.url.path,
            "params": dict(request.url.params.multi_items()),
        }
        if error is not None:
            entry["error"] = type(error).__name__
            entry["message"] = scrub(str(error))[:300]
        elif response is not None:
            entry["status"] = response.status_code
            for name in _KEPT_HEADERS:
                if name in response.headers:
                    entry[name.replace("-", "_")] = response.headers[name]
            _put_data(entry, "body", body or b"")
        self.write(entry)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
            self._fh = None


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport and records every REST reply (or failure)."""

    def __init__(self, recorder: Recorder, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.recorder = recorder
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            self.recorder.rest(request, None, None, exc)
            raise
        self.recorder.rest(request, response, body)
        headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- replay ----------------------------------------------------------------------
_HTTPX_ERRORS: dict[str, type[httpx.TransportError]] = {
    cls.__name__: cls
    for cls in (
        httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout,
        httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.LocalProtocolError,
        httpx.ProxyError, httpx.UnsupportedProtocol, httpx.NetworkError, httpx.TimeoutException,
    )
}


class _RecordingReader:
    """One pass over the file; REST replies and websocket events are taken in
    their own order (the REST client asks for the next reply while the feed
    handles the frame that triggered it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            if path.suffix.lower() == ".gz":
                with path.open("rb") as raw:
                    if raw.read(2) != b"\x1f\x8b":
                        raise RecordingError(f"{path}: named .gz but is not gzip data; rename it without .gz")
                self._fh: IO[str] | None = gzip.open(path, "rt", encoding="utf-8")
            else:
                self._fh = path.open("r", encoding="utf-8")
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {exc.strerror or exc}") from None
        self._lines = self._iter_lines()
        self._rest: deque[dict[str, Any]] = deque()
        self._ws: deque[dict[str, Any]] = deque()
        self.line_no = 0
        first = self._next_entry()
        if first is None or first.get("k") != "meta":
            raise RecordingError(f"{path} is not a market recording: its first line must be a 'meta' entry")
        if first.get("v") != FORMAT_VERSION:
            raise RecordingError(f"{path}: recording format version {first.get('v')!r}, this build reads {FORMAT_VERSION}")
        self.meta = first

    def _iter_lines(self) -> Generator[str, None, None]:
        """The file's lines; undecodable or cut-short data is a :class:`RecordingError`,
        so that the replay stops as bad input rather than as a crash."""
        assert self._fh is not None
        with self._fh:
            try:
                yield from self._fh
            except UnicodeDecodeError as exc:
                raise RecordingError(f"{self._near()}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
                                     "not a market recording") from None
            except EOFError:
                raise RecordingError(f"{self._near()}: the gzip data is truncated (the file was cut short)") from None
            except (OSError, zlib.error) as exc:
                raise RecordingError(f"{self._near()}: cannot read it ({exc})") from None

    def _near(self) -> str:
        return f"{self.path} (after line {self.line_no})" if self.line_no else str(self.path)

    def _next_entry(self) -> dict[str, Any] | None:
        for line in self._lines:
            self.line_no += 1
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except RecursionError:
                raise RecordingError(f"{self.path}:{self.line_no}: JSON nested too deeply") from None
            except ValueError:
                if not line.endswith("\n"):
                    return None  # a torn last line (the process was killed mid-write)
                raise RecordingError(f"{self.path}:{self.line_no}: not a JSON line") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("k"), str):
                raise RecordingError(f"{self.path}:{self.line_no}: expected an object with a 'k' kind")
            return entry
        return None

    def _fill(self, want: str) -> dict[str, Any] | None:
        queue = self._rest if want == "rest" else self._ws
        while not queue:
            entry = self._next_entry()
            if entry is None:
                return None
            kind = entry["k"]
            if kind == "rest":
                self._rest.append(entry)
            elif kind in ("ws", "ws_open", "ws_close"):
                self._ws.append(entry)
            # other kinds (meta, notes) are informational
        return queue.popleft()

    def next_rest(self) -> dict[str, Any] | None:
        return self._fill("rest")

    def next_ws(self) -> dict[str, Any] | None:
        return self._fill("ws")

    def close(self) -> None:
        self._lines.close()


class ReplayTransport(httpx.AsyncBaseTransport):
    """Serves the recorded REST replies in order; a request that differs from
    the recorded one means the replay diverged, which is an error, not data."""

    def __init__(self, reader: _RecordingReader) -> None:
        self.reader = reader

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        entry = self.reader.next_rest()
        params = dict(request.url.params.multi_items())
        if entry is None:
            raise RecordingError(
                f"replay diverged: {request.method} {request.url.path} {params} has no recorded reply left"
            )
        if (entry.get("method"), entry.get("path"), entry.get("params")) != (request.method, request.url.path, params):
            raise RecordingError(
                f"replay diverged at {self.reader.path}:{self.reader.line_no}: requested {request.method} "
                f"{request.url.path} {params}, recorded {entry.get('method')} {entry.get('path')} {entry.get('params')}"
            )
        if "error" in entry:
            cls = _HTTPX_ERRORS.get(str(entry["error"]), httpx.TransportError)
            raise cls(str(entry.get("message", "")), request=request)
        headers = {name: entry[name.replace("-", "_")] for name in _KEPT_HEADERS if name.replace("-", "_") in entry}
        body = _get_data(entry, "body")
        content = body.encode("utf-8") if isinstance(body, str) else body
        return httpx.Response(int(entry.get("status", 200)), headers=headers, content=content, request=request)


def _event(entry: dict[str, Any]) -> WsEvent:
    kind = entry["k"]
    t = int(entry.get("t", 0))
    conn = int(entry.get("conn", 0))
    if kind == "ws":
        return WsFrame(conn, t, _get_data(entry, "data"))
    if kind == "ws_open":
        return WsOpened(conn, t)
    return WsClosed(conn, t, str(entry.get("reason", "")), bool(entry.get("idle", False)))


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


class RecordingReplaySource:
    """A :class:`MarketSource` over a recording made by the bitunix source.

    ``realtime=False`` replays as fast as possible; ``True`` keeps the
    recorded spacing between websocket events. Warm-up uses the recorded
    ``warmup_bars`` (and the store's last candle the live run resumed after),
    whatever the replaying session's setting, because the recorded REST pages
    answer exactly those requests."""

    name = "replay"

    def __init__(self, path: str | Path, realtime: bool = False, *, speed: float = 1.0) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.speed = speed
        self._reader = _RecordingReader(self.path)
        meta = self._reader.meta
        try:
            self.symbol = normalize_symbol(str(meta["symbol"]))
            self.interval = parse_interval(str(meta["interval"]))
            self.warmup_bars = int(meta.get("warmup_bars", 0))
            resume = meta.get("resume_after_ts")
            self.resume_after_ts = None if resume is None else int(resume)
            feed_opts = FeedOptions(**meta.get("feed", {}))
            rest_opts = RestOptions(**meta.get("rest", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordingError(f"{self.path}: bad meta line: {exc}") from None
        self.rest = BitunixRestClient(
            str(meta.get("rest_url") or "http://replay.invalid"),
            budget=RateLimitBudget.unlimited(),
            options=rest_opts,
            transport=ReplayTransport(self._reader),
            sleep=_no_sleep,
        )
        self.feed = MarketFeed(self.symbol, self.interval, self.rest, feed_opts)
        self._warmed = False
        self.events = 0
        self.finished = False
        self._now_ms = 0

    async def warmup(self) -> list[Candle]:
        self._warmed = True
        return await self.feed.warmup(self.warmup_bars, self.resume_after_ts)

    async def stream(self) -> AsyncIterator[MarketItem]:
        if not self._warmed:
            # The live run primed its candle assembler with the warm-up; do the same.
            await self.warmup()
        for item in await self.feed.start():
            yield item
        prev_t: int | None = None
        while True:
            entry = self._reader.next_ws()
            if entry is None:
                self.finished = True
                return
            event = _event(entry)
            t = int(entry.get("t", 0))
            if self.realtime and prev_t is not None and t > prev_t:
                await asyncio.sleep((t - prev_t) / 1000.0 / self.speed)
            prev_t = t
            self._now_ms = max(self._now_ms, t)
            self.events += 1
            for item in await self.feed.handle(event):
                yield item
            if not self.realtime and self.events % 256 == 0:
                await asyncio.sleep(0)  # let the runner's supervisors breathe

    def recorded_now_ms(self) -> int:
        """The recorded receive time of the websocket event being replayed: the
        replay's stand-in for the live run's wall clock."""
        return self._now_ms

    def status(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "file": str(self.path),
            "events": self.events,
            "finished": self.finished,
            "ws_state": "replay",
            **self.feed.status(),
            "rest": {"requests": self.rest.requests, "retries": self.rest.retries, "errors": self.rest.errors},
        }

    async def aclose(self) -> None:
        await self.rest.aclose()
        self._reader.close()
