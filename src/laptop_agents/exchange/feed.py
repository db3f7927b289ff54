"""From Bitunix wire traffic to domain items: the code a live session and a
replay of its recording share.

:class:`KlineAssembler` (pure, no I/O) turns kline pushes -- which carry no
open time and no closed flag -- into closed candles by rollover, and says
which candles must be fetched over REST (after a disconnect, silence, or at
start). :class:`MarketFeed` drives it from websocket events and a REST
client and yields ``Candle | Tick | FundingRate | SourceError``.

Guarantees, whatever the wire does: closed candles come out strictly
increasing in time (never one at or before the last emitted), a duplicate or
late push never produces a candle, and every problem becomes a
``SourceError`` item, never an exception. Outputs depend only on the frames
and REST replies (their ``ts``), never on the receive clock, so feeding the
recorded frames and replies back gives the same items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from laptop_agents.domain.contracts import MarketItem, SourceError
from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.domain.models import Candle, DomainError, FundingRate, Tick
from laptop_agents.domain.timeframes import interval_ms as interval_to_ms
from laptop_agents.exchange import protocol
from laptop_agents.exchange.errors import BadFrameError, ExchangeError
from laptop_agents.exchange.parsers import (
    Connected,
    Ignored,
    KlinePush,
    Pong,
    PricePush,
    ServerNotice,
    TickerPush,
    parse_push,
)
from laptop_agents.exchange.rest import BitunixRestClient
from laptop_agents.exchange.ws import WsClosed, WsEvent, WsFrame, WsOpened
from laptop_agents.logs import get_logger

log = get_logger("exchange.feed")


@dataclass(frozen=True, slots=True)
class FeedOptions:
    subscribe_ticker: bool = False  # kline pushes already give a tick twice a second
    subscribe_funding: bool = True  # the ``price`` channel
    initial_funding: bool = True  # one REST funding read when the stream starts
    max_gap_bars: int = 1440  # a push further ahead than this is refused as a bad frame
    max_backfill_attempts: int = 3  # then the hole is skipped and reported
    # A restart warms every candle since the store's last one, up to this many
    # (then the older ones are reported as lost): bars missed while the process
    # was down must still reach the broker (stops, targets) and the indicators.
    max_resume_bars: int = 10_080

    def channels(self, interval: str) -> list[str]:
        out = [protocol.kline_channel(interval)]
        if self.subscribe_funding:
            out.append(protocol.WS_CHANNEL_PRICE)
        if self.subscribe_ticker:
            out.append(protocol.WS_CHANNEL_TICKER)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "subscribe_ticker": self.subscribe_ticker,
            "subscribe_funding": self.subscribe_funding,
            "initial_funding": self.initial_funding,
            "max_gap_bars": self.max_gap_bars,
            "max_backfill_attempts": self.max_backfill_attempts,
            "max_resume_bars": self.max_resume_bars,
        }


@dataclass(slots=True)
class KlineStep:
    """What one kline push did: candles now closed (in order), an optional
    REST backfill ``(first_open, last_open)`` to run next, whether the push
    was accepted (False: stale, duplicate-old or refused) and is the newest
    view of the forming candle (then it is worth a Tick)."""

    emit: list[Candle] = field(default_factory=list)
    backfill: tuple[int, int] | None = None
    accepted: bool = True
    newest: bool = True
    error: str | None = None


class KlineAssembler:
    """Closed candles from kline pushes by rollover. Pure: no I/O, no clock.

    State: the last emitted candle, and the forming candle (latest values
    seen). A candle closes when a push for a later interval arrives; its last
    values are emitted if every push of it could have been seen, otherwise
    (a disconnect happened while it formed) it is fetched over REST with any
    other missed candle.
    """

    def __init__(self, interval: str, *, max_gap_bars: int = 1440, max_backfill_attempts: int = 3) -> None:
        self.interval = interval
        self.iv = interval_to_ms(interval)
        self.max_gap_bars = max_gap_bars
        self.max_backfill_attempts = max_backfill_attempts
        self.last_emitted: int | None = None
        self.forming: Candle | None = None
        self.forming_push_ts = -1
        self.dirty = False  # the connection dropped while ``forming`` was open
        self._retry_gate: int | None = None  # no new backfill until a push opens after this
        self._attempts = 0
        self._attempt_lo: int | None = None
        self.stale_pushes = 0
        # A push that jumps more than one interval past the forming candle on a
        # connection that never dropped is held until a second push confirms
        # it: one bad frame stamped in the future must not become the forming
        # candle (every real push after it would then be refused as stale).
        self._jump_candidate: int | None = None
        self.suspect_pushes = 0

    def prime(self, candles: list[Candle]) -> None:
        """Warm-up candles were handed out: continue after the last one."""
        if candles:
            last = max(c.ts for c in candles)
            self.last_emitted = last if self.last_emitted is None else max(self.last_emitted, last)

    def on_disconnect(self) -> None:
        if self.forming is not None:
            self.dirty = True

    def on_push(self, push: KlinePush) -> KlineStep:
        step = KlineStep()
        t = push.candle.ts
        forming_ts = self.forming.ts if self.forming is not None else None
        if (self.last_emitted is not None and t <= self.last_emitted) or (forming_ts is not None and t < forming_ts):
            self.stale_pushes += 1
            step.accepted = step.newest = False
            return step
        ref = forming_ts if forming_ts is not None else self.last_emitted
        if ref is not None and (t - ref) // self.iv > self.max_gap_bars:
            step.accepted = step.newest = False
            step.error = (
                f"kline push at {push.ts} opens {(t - ref) // self.iv} intervals after the last known candle "
                f"(more than {self.max_gap_bars}): refused"
            )
            return step
        if forming_ts is not None and not self.dirty and t - forming_ts > self.iv:
            if self._jump_candidate is None or t < self._jump_candidate:
                self._jump_candidate = t
                self.suspect_pushes += 1
                step.accepted = step.newest = False
                return step
        self._jump_candidate = None
        closed: Candle | None = None
        old_forming_ts = forming_ts
        if forming_ts is not None and t > forming_ts and not self.dirty:
            closed = self.forming
        if forming_ts is None or t > forming_ts:
            self.forming, self.forming_push_ts, self.dirty = push.candle, push.ts, False
        elif push.ts >= self.forming_push_ts:
            self.forming, self.forming_push_ts = push.candle, push.ts
        else:
            step.newest = False  # an older view of the forming candle: keep the newer values
        if self.last_emitted is None and closed is not None:
            step.emit.append(closed)
            self.last_emitted = closed.ts
            closed = None
        if self.last_emitted is not None:
            lo: int | None = self.last_emitted + self.iv
        else:
            lo = old_forming_ts if old_forming_ts is not None and old_forming_ts < t else None
        hi = t - self.iv
        if lo is not None and lo <= hi:
            if closed is not None and closed.ts == lo == hi:
                step.emit.append(closed)
                self.last_emitted = closed.ts
            elif self._retry_gate is None or t > self._retry_gate:
                step.backfill = (lo, hi)
                self._retry_gate = t
        return step

    def on_backfill(self, candles: list[Candle], lo: int, hi: int) -> tuple[list[Candle], str | None]:
        """Candles fetched for ``[lo, hi]``: the ones to emit, and a gap note
        when the hole is given up on after repeated empty answers."""
        fresh = sorted(
            (c for c in candles if lo <= c.ts <= hi and (self.last_emitted is None or c.ts > self.last_emitted)),
            key=lambda c: c.ts,
        )
        out: list[Candle] = []
        for c in fresh:
            if out and c.ts == out[-1].ts:
                continue
            out.append(c)
        if out:
            self.last_emitted = out[-1].ts
            self._attempts = 0
            self._attempt_lo = None
            # Holes before the newest fetched candle can never be emitted now;
            # a missing tail is asked for again at the next rollover.
            skipped = (out[-1].ts - lo) // self.iv + 1 - len(out)
            return out, (f"{skipped} candle(s) between {lo} and {out[-1].ts} missing from REST" if skipped > 0 else None)
        return [], self._count_failure(lo, hi)

    def on_backfill_failed(self, lo: int, hi: int) -> str | None:
        return self._count_failure(lo, hi)

    def _count_failure(self, lo: int, hi: int) -> str | None:
        if self._attempt_lo != lo:
            self._attempt_lo, self._attempts = lo, 0
        self._attempts += 1
        if self._attempts >= self.max_backfill_attempts:
            self.last_emitted = hi if self.last_emitted is None else max(self.last_emitted, hi)
            self._attempts, self._attempt_lo = 0, None
            return f"gave up on candles {lo}..{hi} after {self.max_backfill_attempts} backfill attempts"
        return None


class MarketFeed:
    """Websocket events + REST -> market items, for one symbol and interval."""

    def __init__(self, symbol: str, interval: str, rest: BitunixRestClient, options: FeedOptions | None = None) -> None:
        self.symbol = symbol
        self.interval = interval
        self.rest = rest
        self.options = options or FeedOptions()
        self.assembler = KlineAssembler(
            interval, max_gap_bars=self.options.max_gap_bars,
            max_backfill_attempts=self.options.max_backfill_attempts,
        )
        self.kline_channel = protocol.kline_channel(interval)
        self.last_funding: float | None = None
        self.connected = False
        self.counts: dict[str, int] = {
            "frames": 0, "bad_frames": 0, "ignored": 0, "pongs": 0, "candles": 0, "ticks": 0,
            "funding": 0, "backfills": 0, "backfill_failures": 0, "backfilled_candles": 0,
            "disconnects": 0, "server_errors": 0,
        }
        self.last_candle_ts: int | None = None
        self.last_data_ts: int | None = None

    async def warmup(self, count: int, resume_after_ts: int | None = None) -> list[Candle]:
        """The latest ``count`` closed candles over REST, and every closed candle
        since ``resume_after_ts`` (the store's last one) when that reaches further
        back, up to ``max_resume_bars``; the stream continues after them."""
        candles = await self.rest.closed_candles(self.symbol, self.interval, count)
        iv = self.assembler.iv
        if resume_after_ts is not None and candles and candles[0].ts > resume_after_ts + iv:
            first_missed = resume_after_ts + iv
            lo = max(first_missed, candles[0].ts - self.options.max_resume_bars * iv)
            older = await self.rest.candles_between(self.symbol, self.interval, lo, candles[0].ts - iv)
            candles = sorted({c.ts: c for c in (*older, *candles)}.values(), key=lambda c: c.ts)
            if lo > first_missed:
                log.warning("restart after a long downtime: %d candle(s) from %s to %s are older than "
                            "max_resume_bars (%d) and were not warmed", (lo - first_missed) // iv,
                            ms_to_iso(first_missed), ms_to_iso(lo - iv), self.options.max_resume_bars,
                            extra={"fields": {"from_ts": first_missed, "to_ts": lo - iv}})
        self.assembler.prime(candles)
        if candles:
            self.last_candle_ts = candles[-1].ts
        return candles

    async def start(self) -> list[MarketItem]:
        """Items to yield when the stream opens: the current funding rate."""
        if not self.options.initial_funding:
            return []
        try:
            info = await self.rest.funding_rate(self.symbol)
        except ExchangeError as exc:
            return [SourceError(f"funding_{exc.kind}", str(exc))]
        ts = self.rest.last_server_ms or (self.last_candle_ts or 0)
        return self._funding(ts, info.rate)

    def _funding(self, ts: int, rate: float) -> list[MarketItem]:
        if rate == self.last_funding:
            return []
        try:
            item = FundingRate(ts, rate)
        except DomainError as exc:
            return [SourceError("bad_funding", str(exc))]
        self.last_funding = rate
        self.counts["funding"] += 1
        return [item]

    async def handle(self, event: WsEvent) -> list[MarketItem]:
        if isinstance(event, WsFrame):
            return await self._frame(event)
        if isinstance(event, WsOpened):
            self.connected = True
            return []
        if isinstance(event, WsClosed):
            self.connected = False
            self.counts["disconnects"] += 1
            self.assembler.on_disconnect()
            kind = "ws_idle" if event.idle else ("ws_connect_failed" if event.conn == 0 else "ws_disconnect")
            return [SourceError(kind, event.reason)]
        return []  # pragma: no cover - WsEvent is a closed union

    async def _frame(self, frame: WsFrame) -> list[MarketItem]:
        self.counts["frames"] += 1
        try:
            msg = parse_push(frame.data)
        except BadFrameError as exc:
            self.counts["bad_frames"] += 1
            return [SourceError("bad_frame", str(exc))]
        except Exception as exc:  # a parser bug must not end the session: report it like a bad frame
            self.counts["bad_frames"] += 1
            return [SourceError("bad_frame", f"parser failure {type(exc).__name__}: {exc}")]
        if isinstance(msg, KlinePush):
            if msg.symbol != self.symbol or msg.interval != self.interval:
                self.counts["ignored"] += 1
                return []
            return await self._kline(msg)
        if isinstance(msg, TickerPush):
            if msg.symbol != self.symbol:
                self.counts["ignored"] += 1
                return []
            self.counts["ticks"] += 1
            self.last_data_ts = msg.ts
            return [msg.tick]
        if isinstance(msg, PricePush):
            if msg.symbol != self.symbol:
                self.counts["ignored"] += 1
                return []
            self.last_data_ts = msg.ts
            return self._funding(msg.ts, msg.funding.rate)
        if isinstance(msg, Pong):
            self.counts["pongs"] += 1
            return []
        if isinstance(msg, Connected):
            return [] if msg.ok else [SourceError("ws_refused", "server refused the connection (connect result false)")]
        if isinstance(msg, ServerNotice):
            if msg.error:
                self.counts["server_errors"] += 1
                return [SourceError("ws_error", msg.text)]
            return []
        if isinstance(msg, Ignored):
            self.counts["ignored"] += 1
        return []

    async def _kline(self, push: KlinePush) -> list[MarketItem]:
        step = self.assembler.on_push(push)
        if step.error is not None:
            self.counts["bad_frames"] += 1
            return [SourceError("bad_frame", step.error)]
        items: list[MarketItem] = []
        for candle in step.emit:
            items.append(candle)
            self.counts["candles"] += 1
            self.last_candle_ts = candle.ts
        if step.backfill is not None:
            items.extend(await self._backfill(*step.backfill))
        if step.accepted and step.newest:
            c = push.candle.close
            items.append(Tick(push.ts, c, c, c))
            self.counts["ticks"] += 1
            self.last_data_ts = push.ts
        return items

    async def _backfill(self, lo: int, hi: int) -> list[MarketItem]:
        self.counts["backfills"] += 1
        try:
            candles = await self.rest.candles_between(self.symbol, self.interval, lo, hi)
        except ExchangeError as exc:
            self.counts["backfill_failures"] += 1
            items: list[MarketItem] = [SourceError(f"backfill_{exc.kind}", f"candles {lo}..{hi}: {exc}")]
            note = self.assembler.on_backfill_failed(lo, hi)
            if note:
                items.append(SourceError("gap", note))
            return items
        emitted, note = self.assembler.on_backfill(candles, lo, hi)
        log.info("REST backfill: %d candles from %s to %s (%d new)", len(candles), ms_to_iso(lo), ms_to_iso(hi), len(emitted),
                 extra={"fields": {"from_ts": lo, "to_ts": hi, "fetched": len(candles), "new": len(emitted)}})
        out: list[MarketItem] = list(emitted)
        self.counts["candles"] += len(emitted)
        self.counts["backfilled_candles"] += len(emitted)
        if emitted:
            self.last_candle_ts = emitted[-1].ts
        if note:
            out.append(SourceError("gap", note))
        return out

    def status(self) -> dict[str, Any]:
        return {
            **self.counts,
            "stale_pushes": self.assembler.stale_pushes,
            "suspect_pushes": self.assembler.suspect_pushes,
            "last_candle_ts": self.last_candle_ts,
            "last_data_ts": self.last_data_ts,
            "funding_rate": self.last_funding,
        }
