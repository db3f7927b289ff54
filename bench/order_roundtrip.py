"""Order round trip to the fake exchange: intent -> acknowledgement, p50/p99.

An "intent" here is what the live execution client will do for each order:
derive the deterministic client id, build and validate the OrderRequest,
sign, send, and parse the acknowledgement. Measured over loopback against the
fake exchange (real HTTP server, real signature checks, real matching):

- ``market``: a market order (filled on arrival), intent -> ack;
- ``limit``: a post-only limit far from the price (rests), intent -> ack;
- ``cancel``: cancelling that limit, request -> reply;
- ``fill seen``: market intent -> its fill parsed off the private websocket
  (the push often arrives before the REST acknowledgement does).

By default both rate limits (the client's 10 req/s budget, the fake's
per-account limit) are off, so the numbers are latency, not pacing;
``--paced`` keeps them on and reports the time spent waiting for a slot.
Wall times on a shared machine are noisy; compare runs, not single numbers.

    .venv/bin/python bench/order_roundtrip.py [--orders 200] [--paced]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from laptop_agents.exchange.client_ids import client_order_id
from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.private_models import OrderRequest
from laptop_agents.exchange.private_rest import BitunixPrivateClient, PrivateRestOptions
from laptop_agents.exchange.private_updates import FillUpdate
from laptop_agents.exchange.ratelimit import RateLimitBudget
from laptop_agents.exchange.ws import WsOptions
from laptop_agents.exchange.ws_private import BitunixPrivateWsClient
from laptop_agents.testing.fake_exchange import DEFAULT_ACCOUNT, FakeTradingConfig, start_fake_exchange

SYMBOL = "BTCUSDT"
START_MS = 1_767_225_600_000 + 3_600_000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, ms: list[float]) -> str:
    return (f"{name:<10} n={len(ms):<4} p50 {pct(ms, 0.50):6.2f} ms   p99 {pct(ms, 0.99):6.2f} ms   "
            f"mean {statistics.fmean(ms):6.2f} ms   max {max(ms):6.2f} ms")


async def bench(n: int, paced: bool) -> int:
    trading = FakeTradingConfig(private_limit_per_s=10 if paced else 0, cancel_limit_per_s=5 if paced else 0)
    fake = start_fake_exchange(seed=5, speed=1.0, start_ms=START_MS, history_bars=500, trading=trading,
                               rest_limit_per_s=0)
    creds = ApiCredentials(DEFAULT_ACCOUNT.api_key, DEFAULT_ACCOUNT.secret_key)
    budget = RateLimitBudget() if paced else RateLimitBudget.unlimited()
    options = PrivateRestOptions() if paced else PrivateRestOptions(per_uid_per_s=1_000_000, cancel_per_s=1_000_000)
    fills: dict[str, float] = {}
    ws = BitunixPrivateWsClient(creds, fake.private_ws_url, options=WsOptions(ping_interval_s=2.0, idle_timeout_s=10.0))

    async def listen() -> None:
        async for update in ws.updates():
            if isinstance(update, FillUpdate):
                fills.setdefault(update.order_id, time.perf_counter())

    listener = asyncio.create_task(listen())
    market_ms: list[float] = []
    limit_ms: list[float] = []
    cancel_ms: list[float] = []
    push_ms: list[float] = []
    acks: dict[str, float] = {}
    try:
        async with BitunixPrivateClient(creds, fake.rest_url, budget=budget, options=options) as client:
            last = (await client.rest.tickers([SYMBOL]))[0].last
            far = round(round(last * 0.97 / 0.1) * 0.1, 1)
            while ws.logins == 0:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            for i in range(n):
                t0 = time.perf_counter()
                side = "BUY" if i % 2 == 0 else "SELL"
                req = OrderRequest.market(SYMBOL, side, 0.001, client_id=client_order_id("bench", START_MS, 2 * i))
                ack = await client.place_order(req)
                market_ms.append((time.perf_counter() - t0) * 1000)
                acks[ack.order_id] = t0
                t0 = time.perf_counter()
                req = OrderRequest.limit(SYMBOL, "BUY", 0.001, far, effect="POST_ONLY",
                                         client_id=client_order_id("bench", START_MS, 2 * i + 1))
                resting = await client.place_order(req)
                limit_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                await client.cancel_order(SYMBOL, order_id=resting.order_id)
                cancel_ms.append((time.perf_counter() - t0) * 1000)
            deadline = time.monotonic() + 5
            while len(fills) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            push_ms = [(fills[oid] - t) * 1000 for oid, t in acks.items() if oid in fills]
            waited = budget.limiter.waited_s
    finally:
        await ws.aclose()
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        fake.stop()
    print(f"order round trip to the fake exchange over loopback ({n} of each; rate limits "
          f"{'on' if paced else 'off'})")
    for name, ms in (("market", market_ms), ("limit", limit_ms), ("cancel", cancel_ms), ("fill seen", push_ms)):
        if ms:
            print(line(name, ms))
    if paced:
        print(f"waited for the rate budget: {waited:.2f} s in total")
    if len(push_ms) < n:
        print(f"only {len(push_ms)} of {n} fills were seen on the private websocket", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--paced", action="store_true", help="keep the 10 req/s limits on (slower)")
    args = parser.parse_args()
    return asyncio.run(bench(max(1, args.orders), args.paced))


if __name__ == "__main__":
    sys.exit(main())
