"""The fake exchange's public websocket (``/public/``).

Protocol as documented: a connect message on open, subscribe without an ack,
JSON ping answered with a pong, pushes ``{ch, symbol, ts, data}`` every
``push_interval_s``. Rules enforced (and counted in the stats): more than 5
client messages in a second disconnects; no ping for ``ping_timeout_s``
disconnects. Kline pushes carry no open time and no closed flag; after a
rollover the closed candles are pushed once more with their final values
(timestamped in their own interval) so a client that assembles candles from
pushes gets the very candles REST history returns.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from laptop_agents.domain.models import Candle
from laptop_agents.exchange import protocol
from laptop_agents.testing.fake_exchange.state import FakeExchange, WsConn
from laptop_agents.testing.fake_exchange.ws_common import Socket, accept, dumps

_MALFORMED: tuple[Any, ...] = (
    "half",  # the real frame cut in half
    "<html><body>502 Bad Gateway</body></html>",
    '{"ch":"market_kline_1min","symbol":"BTCUSDT","ts":',
    b"\x00\xff\x80 not text",
)


def kline_payload(ex: FakeExchange, channel: str, symbol: str, ts: int, c: Candle) -> dict[str, Any]:
    return {
        "ch": channel,
        "symbol": symbol,
        "ts": ts,
        "data": {
            "o": ex.fmt(c.open, "o"),
            "h": ex.fmt(c.high, "h"),
            "l": ex.fmt(c.low, "l"),
            "c": ex.fmt(c.close, "c"),
            protocol.WS_KLINE_BASE_VOLUME_FIELD: ex.fmt(c.volume, "b"),
            protocol.WS_KLINE_QUOTE_VOLUME_FIELD: ex.fmt(round(c.volume * c.close, 4), "q"),
        },
    }


def _bad_shape(ex: FakeExchange, payload: dict[str, Any], n: int) -> str:
    """Valid JSON of the wrong shape, a different flavour each time."""
    p = json.loads(dumps(payload))
    variant = n % 7
    if variant == 0:
        p["data"] = [p["data"]["o"], p["data"]["c"]]
    elif variant == 1:
        del p["data"]["c"]
    elif variant == 2:
        p["data"]["h"], p["data"]["l"] = p["data"]["l"], ex.fmt(float(p["data"]["h"]) * 1.01, "l")
    elif variant == 3:
        p["data"]["o"] = "abc"
    elif variant == 4:
        del p["ts"]
    elif variant == 5:
        return dumps([1, 2, 3])
    else:
        p["data"]["l"] = ex.fmt(-1.0, "l")
    return dumps(p)


class _Pusher:
    """Builds the frames one connection receives at one push tick."""

    def __init__(self, ex: FakeExchange) -> None:
        self.ex = ex
        self.malformed_n = 0
        self.truncated_n = 0
        self.bad_shape_n = 0

    def kline_frames(self, conn: WsConn, channel: str, symbol: str, now: int) -> list[str | bytes]:
        ex = self.ex
        market = ex.market
        index = market.index_at(now)
        if ex.faults.kline_gap(asyncio.get_running_loop().time()):
            conn.last_index = index  # the candles of the gap are never pushed, not even as finals
            return []
        payloads: list[dict[str, Any]] = []
        if conn.last_index is not None and index > conn.last_index:
            first = max(conn.last_index, index - ex.config.max_final_pushes)
            for j in range(first, index):
                payloads.append(kline_payload(ex, channel, symbol, market.open_ts(j + 1) - 1, market.candle(j)))
        conn.last_index = index
        payloads.append(kline_payload(ex, channel, symbol, now, ex.candle_at(index, now)))
        frames: list[str | bytes] = []
        for payload in payloads:
            text = dumps(payload)
            fault = ex.faults.take_frame_fault()
            if fault == "malformed":
                bad = _MALFORMED[self.malformed_n % len(_MALFORMED)]
                self.malformed_n += 1
                frames.append(text[: len(text) // 2] if bad == "half" else bad)
                continue
            if fault == "truncated":
                cut = max(1, len(text) * (1 + self.truncated_n % 9) // 10)  # 10 % .. 90 % of the frame
                self.truncated_n += 1
                frames.append(text[:cut])
                continue
            if fault == "bad_shape":
                frames.append(_bad_shape(ex, payload, self.bad_shape_n))
                self.bad_shape_n += 1
                continue
            frames.append(text)
            if fault == "duplicate":
                frames.append(text)
            elif fault == "out_of_order" and index >= 2:
                old = index - 2
                frames.append(dumps(kline_payload(ex, channel, symbol, market.open_ts(old + 1) - 1, market.candle(old))))
        return frames

    def ticker_frame(self, symbol: str, now: int) -> str:
        ex = self.ex
        index = ex.market.index_at(now)
        last = ex.candle_at(index, now).close
        day_open, high, low, base_vol, quote_vol = ex.day_stats(index)
        return dumps({
            "ch": protocol.WS_CHANNEL_TICKER,
            "symbol": symbol,
            "ts": now,
            "data": {
                "s": symbol,
                "o": ex.fmt(day_open, "o"),
                "h": ex.fmt(max(high, last), "h"),
                "l": ex.fmt(min(low, last), "l"),
                "la": ex.fmt(last, "la"),
                "b": ex.fmt(base_vol, "b"),
                "q": ex.fmt(quote_vol, "q"),
                "r": ex.fmt(round((last - day_open) / day_open, 6), "r"),
            },
        })

    def price_frame(self, symbol: str, now: int) -> str:
        ex = self.ex
        rate, period_start, next_ts = ex.funding(now)
        last = ex.candle_at(ex.market.index_at(now), now).close
        return dumps({
            "ch": protocol.WS_CHANNEL_PRICE,
            "symbol": symbol,
            "ts": now,
            "data": {
                "ip": ex.fmt(last, "ip"),
                "mp": ex.fmt(last, "mp"),
                "fr": ex.fmt(protocol.funding_wire(rate), "fr"),
                "ft": period_start,
                "nft": next_ts,
            },
        })

    def frames(self, conn: WsConn) -> list[str | bytes]:
        ex = self.ex
        now = ex.now_ms()
        kline_channel = protocol.kline_channel(ex.config.interval)
        out: list[str | bytes] = []
        for channel, symbol in sorted(conn.channels.items()):
            if symbol != ex.config.symbol:
                continue
            if channel == kline_channel:
                out.extend(self.kline_frames(conn, channel, symbol, now))
            elif channel == protocol.WS_CHANNEL_TICKER:
                out.append(self.ticker_frame(symbol, now))
            elif channel == protocol.WS_CHANNEL_PRICE:
                out.append(self.price_frame(symbol, now))
        return out


class PublicSocket(Socket):
    """A public connection: subscriptions by channel and symbol, pushes every ``push_interval_s``."""

    frames_stat = "ws_frames_sent"

    async def on_op(self, op: Any, obj: dict[str, Any]) -> bool:
        if op in ("subscribe", "unsubscribe"):
            self.ex.stats["ws_subscribes"] += 1
            args = obj.get("args")
            if not isinstance(args, list):
                return True
            channels = self.conn.channels
            for arg in args:
                if not isinstance(arg, dict) or not isinstance(arg.get("ch"), str):
                    continue
                if op == "subscribe" and len(channels) < protocol.WS_MAX_CHANNELS:
                    channels[arg["ch"]] = str(arg.get("symbol", ""))
                elif op == "unsubscribe":
                    channels.pop(arg["ch"], None)
        return True

    async def sender(self) -> None:
        ex = self.ex
        loop = asyncio.get_running_loop()
        pusher = _Pusher(ex)
        while True:
            await asyncio.sleep(ex.config.push_interval_s)
            if ex.faults.silent(loop.time()):
                continue
            for frame in pusher.frames(self.conn):
                await self.send(frame)

    def closed(self) -> None:
        self.ex.note_ping_gap(self.conn, asyncio.get_running_loop().time())  # the silence before the close counts too
        self.ex.close_conn(self.conn)


async def public_ws(ws: WebSocket) -> None:
    ex: FakeExchange = ws.app.state.exchange
    if await accept(ws, ex):
        await PublicSocket(ws, ex, ex.open_conn(asyncio.get_running_loop().time())).serve()


def routes() -> list[WebSocketRoute]:
    return [WebSocketRoute(protocol.WS_PUBLIC_PATH, public_ws)]
