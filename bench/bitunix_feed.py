"""Throughput of the Bitunix market-data path: push parsing, candle assembly,
replay of a recording, and the fake exchange's REST kline pages.

Usage: ``python bench/bitunix_feed.py [--frames 200000] [--candles 40]``

Lines (best of 3 where it is cheap):

- ``parse_push``: kline frames parsed and validated per second;
- ``feed``: websocket frames through the MarketFeed (parse + assembler +
  items) per second, 5 pushes per candle, no REST;
- ``replay``: a recording of a live session against the fake exchange,
  replayed through RecordingReplaySource, websocket events per second;
- ``rest kline page`` / ``paging``: 200-row kline pages from the fake exchange
  over loopback, requests per second (the client's 10 req/s budget switched
  off), for recent rows and walking back through history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from laptop_agents.config import TradingConfig
from laptop_agents.domain.models import Candle
from laptop_agents.exchange.feed import MarketFeed
from laptop_agents.exchange.parsers import parse_push
from laptop_agents.exchange.ratelimit import RateLimitBudget
from laptop_agents.exchange.rest import BitunixRestClient
from laptop_agents.exchange.ws import WsFrame, WsOptions
from laptop_agents.sources.bitunix import BitunixSource, BitunixSourceOptions
from laptop_agents.sources.recording import Recorder, RecordingReplaySource
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.testing.fake_exchange import start_fake_exchange

BASE = 1_767_225_600_000


def frames(n: int) -> list[str]:
    market = SyntheticMarket(3, BASE)
    out = []
    for k in range(n):
        index, step = divmod(k, 5)
        elapsed = step * 12_000 + 500
        c = market.partial(index, elapsed)
        out.append(json.dumps({"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": c.ts + elapsed,
                               "data": {"o": str(c.open), "h": str(c.high), "l": str(c.low), "c": str(c.close),
                                        "b": str(c.volume), "q": "1"}}, separators=(",", ":")))
    return out


def best_of(n: int, fn: callable) -> float:  # type: ignore[valid-type]
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_parse(texts: list[str]) -> None:
    secs = best_of(3, lambda: [parse_push(t) for t in texts])
    print(f"parse_push        {len(texts) / secs:12,.0f} frames/s  ({secs * 1e6 / len(texts):.2f} us/frame)")


def bench_feed(texts: list[str]) -> None:
    async def go() -> int:
        rest = BitunixRestClient("http://127.0.0.1:9")
        feed = MarketFeed("BTCUSDT", "1m", rest)
        n = 0
        for t in texts:
            n += sum(isinstance(i, Candle) for i in await feed.handle(WsFrame(1, 0, t)))
        await rest.aclose()
        return n

    result: dict[str, int] = {}
    secs = best_of(3, lambda: result.update(n=asyncio.run(go())))
    print(f"feed              {len(texts) / secs:12,.0f} frames/s  ({result['n']} candles closed)")


def bench_replay(candles: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, start_fake_exchange(speed=600, push_interval_s=0.02) as fake:
        path = Path(tmp) / "market.jsonl"
        recorder = Recorder(path)
        trading = TradingConfig(source="bitunix", bitunix_rest_url=fake.rest_url, bitunix_ws_url=fake.ws_url,
                                warmup_bars=200)
        source = BitunixSource(trading, recorder=recorder,
                               options=BitunixSourceOptions(ws=WsOptions(ping_interval_s=1.0)))

        async def record() -> None:
            await source.warmup()
            n = 0
            async for item in source.stream():
                n += isinstance(item, Candle)
                if n >= candles:
                    break
            await source.aclose()
            recorder.close()

        asyncio.run(record())

        async def replay() -> int:
            src = RecordingReplaySource(path)
            await src.warmup()
            async for _ in src.stream():
                pass
            await src.aclose()
            return src.events

        events: dict[str, int] = {}
        secs = best_of(3, lambda: events.update(n=asyncio.run(replay())))
        size = path.stat().st_size
        print(f"replay            {events['n'] / secs:12,.0f} ws events/s  ({events['n']} events + warm-up pages, "
              f"{size / 1024:.0f} KiB, {secs * 1000:.0f} ms)")


def bench_rest(pages: int) -> None:
    with start_fake_exchange(speed=1.0, rest_limit_per_s=0) as fake:

        async def go(walk_back: bool) -> None:
            async with BitunixRestClient(fake.rest_url, budget=RateLimitBudget.unlimited()) as rest:
                end = fake.now_ms()
                for k in range(pages):
                    await rest.kline_page("BTCUSDT", "1m", end_ms=end - (k * 60_000 * 200 if walk_back else 0))

        secs = best_of(3, lambda: asyncio.run(go(False)))
        print(f"rest kline page   {pages / secs:12,.0f} req/s      (200 recent rows each, fake exchange on loopback)")
        secs = best_of(1, lambda: asyncio.run(go(True)))
        print(f"rest kline paging {pages / secs:12,.0f} req/s      (walking back 200 rows a page: the synthetic "
              "market regenerates old candles)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--candles", type=int, default=40)
    p.add_argument("--pages", type=int, default=60)
    args = p.parse_args(argv)
    texts = frames(args.frames)
    print(f"python {sys.version.split()[0]}")
    bench_parse(texts)
    bench_feed(texts)
    bench_replay(args.candles)
    bench_rest(args.pages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
