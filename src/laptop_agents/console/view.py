"""What the operator's console needs from a session, and a buffer that provides it.

The console parts (web dashboard, terminal view, alerts, metrics) never reach
into the runner: they read a :class:`SessionView` and steer through a
:class:`SessionControl`. Both are small Protocols so a test can hand in a
fake, the live runner an adapter, and a read-only ``dashboard`` command a view
built from a workspace's files.

:class:`LiveFeed` is the in-memory part of a view: bounded ring buffers of
recent candles, equity points, events, decisions, trades, fills and log
lines, each item numbered by a per-stream sequence so that readers ask for
"what is new since N" and notice when they fell behind (``gap``). Feeding it
is a few ``deque.append`` calls per candle: the conversion to JSON-able dicts
happens when somebody reads, so a session nobody watches pays next to
nothing.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol, get_args, runtime_checkable

from laptop_agents.domain.errors import UsageError
from laptop_agents.logs import ScrubFilter

Stream = Literal["candles", "equity", "events", "decisions", "trades", "fills", "logs"]
STREAMS: tuple[Stream, ...] = get_args(Stream)

# Larger than any sequence number a session reaches: ``recent(s, LATEST)``
# returns no items, only the current sequence number.
LATEST = 2**62


class Recent(NamedTuple):
    """Items of one stream newer than the reader's cursor.

    ``seq`` is the stream's latest sequence number (the reader's next cursor);
    ``gap`` is True when items between the cursor and the oldest buffered one
    were already dropped, so the reader should rebuild instead of appending.
    """

    seq: int
    items: list[dict[str, Any]]
    gap: bool = False


@runtime_checkable
class SessionView(Protocol):
    """A read-only window on a running (or finished) session.

    All methods are called on the event loop thread, often (the dashboard
    about once a second while a browser is open), and must be cheap and never
    raise for ordinary states.
    """

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, body)`` exactly as ``GET /health`` serves it (the runner's
        ``health_snapshot``): ``status``, ``reason``, ``run_id``, ``mode``,
        ``uptime_s``, ``market_data_age_s``, ``stale_timeout_s``, ``stale``,
        ``source`` (``ws_state``/``state``, ``reconnects``...), ``errors``
        (``total``, ``budget``, per kind), ``equity``, ``position``,
        ``working_orders``, ``breaker``, ``last_candle_ts``, ``counts``,
        ``latency``."""
        ...

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for the console: the health body plus, where
        known, ``healthy``, ``symbol``, ``interval``, ``currency``,
        ``last_price``, ``realized_pnl``, ``unrealized``, ``start_balance``,
        ``fees_paid``, ``trades_closed``, ``entries_blocked`` and
        ``entries_paused``. Every key is optional to the readers."""
        ...

    def recent(self, stream: Stream, after: int = 0) -> Recent:
        """Items of ``stream`` with a sequence number above ``after``, oldest first."""
        ...


class ControlRefused(UsageError):
    """A control this session cannot honour (a watching dashboard cannot pause,
    a pause that cannot be saved); the dashboard answers 409 with the message."""


@runtime_checkable
class SessionControl(Protocol):
    """The operator's levers. Each call only *requests* the change (the runner
    journals it and acts on the loop); it must return quickly."""

    def stop(self, flatten: bool) -> None:
        """Stop the session like the kill switch; ``flatten`` closes the position
        too (per request, whatever ``--no-flatten`` says)."""
        ...

    def pause_entries(self) -> None:
        """No new entries from now on; exits, stops and targets keep working."""
        ...

    def resume_entries(self) -> None:
        """Undo :meth:`pause_entries`."""
        ...


# ---------------------------------------------------------------- conversion


def clean_json(obj: Any) -> Any:
    """``obj`` with non-finite floats as None and tuples as lists: browsers'
    ``JSON.parse`` rejects the ``NaN`` that Python's json module writes."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return clean_json(to_dict())
    value = getattr(obj, "value", None)  # enums
    if isinstance(value, str | int):
        return value
    return str(obj)


def event_dict(event: Any) -> dict[str, Any]:
    """A flat ``{"ts", "kind", ...fields}`` dict from a typed event (its
    ``to_dict()``, the JSON edge) or a dict already in that shape."""
    if isinstance(event, Mapping):
        d = dict(event)
    else:
        to_dict = getattr(event, "to_dict", None)
        if callable(to_dict):
            d = dict(to_dict())
        else:
            d = {"ts": getattr(event, "ts", None), "kind": getattr(event, "kind", None)}
    if "data" in d and isinstance(d["data"], Mapping) and "kind" in d:
        d = {**{k: v for k, v in d.items() if k != "data"}, **d["data"]}
    return d


def _candle_dict(c: Any) -> dict[str, Any]:
    if isinstance(c, Mapping):
        return {k: c.get(k) for k in ("ts", "open", "high", "low", "close", "volume")}
    return {"ts": c.ts, "open": c.open, "high": c.high, "low": c.low, "close": c.close, "volume": c.volume}


def _identity(item: Any) -> dict[str, Any]:
    return dict(item)


# ---------------------------------------------------------------- the buffer


class _Ring:
    """One stream: ``(seq, raw item)`` pairs in a bounded deque."""

    __slots__ = ("buf", "convert", "seq")

    def __init__(self, size: int, convert: Callable[[Any], dict[str, Any]]) -> None:
        self.buf: deque[tuple[int, Any]] = deque(maxlen=size)
        self.seq = 0
        self.convert = convert

    def add(self, item: Any) -> None:
        self.seq += 1
        self.buf.append((self.seq, item))

    def since(self, after: int) -> Recent:
        latest = self.seq
        if after >= latest:
            return Recent(latest, [])
        snapshot = list(self.buf)  # a copy: a logging thread may append meanwhile
        oldest = snapshot[0][0] if snapshot else latest + 1
        gap = after < oldest - 1
        out = []
        for seq, raw in snapshot:
            if seq > after:
                d = clean_json(self.convert(raw))
                d["seq"] = seq
                out.append(d)
        return Recent(latest, out, gap)


@dataclass
class FeedSizes:
    """How many recent items each stream keeps (memory is bounded for any run length)."""

    candles: int = 1000
    equity: int = 1000
    events: int = 300
    decisions: int = 200
    trades: int = 200
    fills: int = 400
    logs: int = 300


class LiveFeed:
    """Ring buffers of what a session did recently; the data half of a :class:`SessionView`.

    The runner calls :meth:`on_step` after each committed step (and
    :meth:`on_events` for events outside a candle step); :class:`FeedLogHandler`
    adds log lines. Events are routed by kind: ``decision`` to *decisions*,
    ``trade_closed`` to *trades* (and *events*), ``fill`` to *fills* (and
    *events*), everything else to *events*.
    """

    def __init__(self, sizes: FeedSizes | None = None) -> None:
        s = sizes or FeedSizes()
        self._rings: dict[str, _Ring] = {
            "candles": _Ring(s.candles, _candle_dict),
            "equity": _Ring(s.equity, _identity),
            "events": _Ring(s.events, event_dict),
            "decisions": _Ring(s.decisions, event_dict),
            "trades": _Ring(s.trades, event_dict),
            "fills": _Ring(s.fills, event_dict),
            "logs": _Ring(s.logs, _identity),
        }
        self._log_lock = threading.Lock()
        self.listeners: list[Callable[[Iterable[Any]], None]] = []

    def on_candle(self, candle: Any) -> None:
        self._rings["candles"].add(candle)

    def on_equity(self, ts: int, equity: float, position_qty: float = 0.0) -> None:
        self._rings["equity"].add({"ts": ts, "equity": equity, "position_qty": position_qty})

    def on_step(self, candle: Any, result: Any) -> None:
        """One committed step: its candle (may be None), equity point and events."""
        if candle is not None:
            self.on_candle(candle)
            self.on_equity(result.ts, result.equity, result.position_qty)
        if result.events:
            self.on_events(result.events)

    def on_events(self, events: Iterable[Any]) -> None:
        rings = self._rings
        events = list(events)
        for e in events:
            kind = e.get("kind") if isinstance(e, Mapping) else getattr(e, "kind", None)
            if kind == "decision":
                rings["decisions"].add(e)
                continue
            if kind == "trade_closed":
                rings["trades"].add(e)
            elif kind == "fill":
                rings["fills"].add(e)
            rings["events"].add(e)
        for listener in self.listeners:
            listener(events)

    def on_log(self, line: dict[str, Any]) -> None:
        with self._log_lock:
            self._rings["logs"].add(line)

    def recent(self, stream: Stream, after: int = 0) -> Recent:
        ring = self._rings.get(stream)
        if ring is None:
            raise ValueError(f"unknown stream {stream!r}: allowed {', '.join(STREAMS)}")
        if stream == "logs":
            with self._log_lock:
                return ring.since(after)
        return ring.since(after)


class FeedLogHandler(logging.Handler):
    """Copies log records (scrubbed) into a :class:`LiveFeed` for the console."""

    def __init__(self, feed: LiveFeed, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.feed = feed
        self.addFilter(ScrubFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.feed.on_log({
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname,
                "component": record.name.removeprefix("laptop_agents."),
                "message": record.getMessage(),
            })
        except Exception:  # a log handler must never raise into the caller
            self.handleError(record)


@dataclass
class CompositeView:
    """A :class:`SessionView` from two callables and a :class:`LiveFeed`.

    ``health`` is the runner's ``health_snapshot``; ``extra`` (optional) adds
    console-only fields (last price, PnL, ``entries_paused``...) to
    :meth:`status`. The wiring step needs no class of its own.
    """

    health_fn: Callable[[], tuple[bool, dict[str, Any]]]
    feed: LiveFeed = field(default_factory=LiveFeed)
    extra: Callable[[], Mapping[str, Any]] | None = None

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.health_fn()

    def status(self) -> dict[str, Any]:
        try:
            healthy, body = self.health_fn()
        except Exception as exc:  # the console must render even if a snapshot fails
            healthy, body = False, {"status": "error", "error": type(exc).__name__}
        out = {**body, "healthy": healthy}
        if self.extra is not None:
            try:
                out.update(self.extra())
            except Exception as exc:
                out["status_error"] = type(exc).__name__
        return out

    def recent(self, stream: Stream, after: int = 0) -> Recent:
        return self.feed.recent(stream, after)


def last_decision(view: SessionView) -> dict[str, Any] | None:
    """The newest decision the view still holds, or None."""
    items = view.recent("decisions", 0).items
    return items[-1] if items else None


def is_pos_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def ts_iso(ts_ms: Any) -> str:
    """UTC ISO time of an event-time ms value, '' when absent."""
    if not is_pos_number(ts_ms):
        return ""
    return datetime.fromtimestamp(float(ts_ms) / 1000.0, UTC).strftime("%Y-%m-%d %H:%M:%S")

