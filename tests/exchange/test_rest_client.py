"""The REST market client against the real fake exchange over loopback:
paging, the forming row, envelopes and typed errors, retries and backoff."""

from __future__ import annotations

import dataclasses

import pytest

from laptop_agents.exchange import protocol
from laptop_agents.exchange.errors import MarketError, ParameterError, RateLimitedError, TransientError
from laptop_agents.exchange.ratelimit import RateLimitBudget
from laptop_agents.exchange.rest import BitunixRestClient, RestOptions
from tests.exchange.support import assert_contiguous, fake_exchange, run

FAST = RestOptions(timeout_s=5.0, max_attempts=4, backoff_base_s=0.02, backoff_max_s=0.2, rate_limit_penalty_s=0.1)


def client(url: str, **kw: object) -> BitunixRestClient:
    opts = dataclasses.replace(FAST, **kw)
    return BitunixRestClient(url, options=opts)


def test_closed_candles_page_backwards_and_drop_the_forming_row() -> None:
    with fake_exchange(speed=1.0) as fake:
        market = fake.exchange.market

        async def go() -> tuple[list, int, dict]:
            async with client(fake.rest_url) as rest:
                out = await rest.closed_candles("BTCUSDT", "1m", 450)
                return out, rest.requests, {}

        candles, requests, _ = run(go())
        now_index = market.index_at(fake.now_ms())
        assert len(candles) == 450 and requests == 3  # 200 + 200 + 50, the first with the forming row dropped
        assert_contiguous(candles)
        last_index = market.index_at(candles[-1].ts)
        assert last_index in (now_index - 1, now_index - 2)  # the newest *closed* candle (a close may race)
        assert candles == market.candles(last_index - 449, 450)


def test_candles_between_and_short_history() -> None:
    with fake_exchange(speed=1.0, history_bars=120) as fake:
        market = fake.exchange.market

        async def go() -> tuple[list, list]:
            async with client(fake.rest_url) as rest:
                window = await rest.candles_between("BTCUSDT", "1m", market.open_ts(10), market.open_ts(59))
                everything = await rest.closed_candles("BTCUSDT", "1m", 5000)
                return window, everything

        window, everything = run(go())
        assert window == market.candles(10, 50)
        assert 119 <= len(everything) <= 121 and everything[0] == market.candle(0)
        assert_contiguous(everything)


def test_duplicate_and_shuffled_rows_are_deduplicated() -> None:
    with fake_exchange(speed=1.0) as fake:
        market = fake.exchange.market
        fake.inject("rest_duplicate_rows", count=1)
        fake.inject("rest_shuffle_rows", count=1)

        async def go() -> tuple[list, list]:
            async with client(fake.rest_url) as rest:
                a = await rest.candles_between("BTCUSDT", "1m", market.open_ts(100), market.open_ts(149))
                b = await rest.candles_between("BTCUSDT", "1m", market.open_ts(100), market.open_ts(149))
                return a, b

        a, b = run(go())
        assert a == b == market.candles(100, 50)
        assert fake.stats()["rest_faults"] == 2


def test_pairs_funding_tickers_and_server_time() -> None:
    with fake_exchange(speed=1.0, funding_as_list=True, numbers="mixed") as fake:
        ex = fake.exchange

        async def go() -> tuple:
            async with client(fake.rest_url) as rest:
                pair = await rest.trading_pair("BTCUSDT")
                funding = await rest.funding_rate("BTCUSDT")
                (ticker,) = await rest.tickers(["BTCUSDT"])
                server = await rest.server_time_ms()
                return pair, funding, ticker, server

        pair, funding, ticker, server = run(go())
        assert pair.tick_size == 0.1 and pair.qty_step == 0.0001 and pair.min_qty == 0.0001
        assert funding.rate == pytest.approx(ex.market.funding_rate(fake.now_ms()), abs=1e-12)
        assert abs(funding.rate) < 0.01  # a fraction, not percent
        assert ticker.symbol == "BTCUSDT" and ticker.last > 0
        assert server is not None and abs(server - fake.now_ms()) < 5_000  # Date header in simulated time


def test_429_burst_is_backed_off_and_shared_with_the_budget() -> None:
    with fake_exchange(speed=1.0) as fake:
        fake.inject("http_status", status=429, count=3, retry_after=0.15)

        async def go() -> tuple[int, list[float], int, int]:
            async with client(fake.rest_url) as rest:
                await rest.closed_candles("BTCUSDT", "1m", 10)
                return rest.retries, rest.backoffs, rest.budget.penalties, rest.requests

        retries, backoffs, penalties, requests = run(go())
        assert retries == 3 and requests == 4
        assert all(b >= 0.15 for b in backoffs)  # never sooner than Retry-After
        assert penalties == 3  # each 429 blocked the shared budget (the websocket's connects wait too)
        stats = fake.stats()
        assert stats["rest_faults"] == 3 and stats["rest_rate_limited"] == 0


def test_rate_limit_code_with_http_200_and_5xx_are_retried() -> None:
    with fake_exchange(speed=1.0) as fake:
        fake.inject("error_code", code=10006, count=1)
        fake.inject("http_status", status=502, count=1)

        async def go() -> tuple[int, float]:
            async with client(fake.rest_url) as rest:
                info = await rest.funding_rate("BTCUSDT")
                return rest.retries, info.rate

        retries, _ = run(go())
        assert retries == 2


def test_exhausted_retries_raise_the_typed_error() -> None:
    with fake_exchange(speed=1.0) as fake:
        fake.inject("http_status", status=503, count=10)

        async def go() -> None:
            async with client(fake.rest_url, max_attempts=3) as rest:
                await rest.funding_rate("BTCUSDT")

        with pytest.raises(TransientError, match="HTTP 503"):
            run(go())
        assert fake.stats()["rest_requests"]["/api/v1/futures/market/funding_rate"] == 3


def test_parameter_and_market_errors_are_not_retried() -> None:
    with fake_exchange(speed=1.0) as fake:

        async def bad_symbol() -> None:
            async with client(fake.rest_url) as rest:
                await rest.funding_rate("ETHUSDT")

        async def bad_param() -> None:
            async with client(fake.rest_url) as rest:
                await rest.request("GET", "/api/v1/futures/market/kline", {"symbol": "BTCUSDT", "interval": "7m"})

        with pytest.raises(MarketError, match="20001"):
            run(bad_symbol())
        with pytest.raises(ParameterError, match="10002"):
            run(bad_param())
        reqs = fake.stats()["rest_requests"]
        assert reqs["/api/v1/futures/market/funding_rate"] == 1 and reqs["/api/v1/futures/market/kline"] == 1


def test_slow_reply_times_out_then_succeeds() -> None:
    # The timeout leaves room for a loaded machine to answer the retry; the one
    # slow reply is three timeouts long, so it cannot slip under it.
    timeout_s = 1.0
    with fake_exchange(speed=1.0) as fake:
        fake.inject("slow", seconds=3 * timeout_s, count=1)

        async def go() -> tuple[int, float]:
            async with client(fake.rest_url, timeout_s=timeout_s) as rest:
                info = await rest.funding_rate("BTCUSDT")
                return rest.retries, info.rate

        retries, rate = run(go())
        assert retries == 1 and abs(rate) < 0.01  # one timed-out attempt, then the answer


def test_non_idempotent_calls_are_never_retried() -> None:
    with fake_exchange(speed=1.0) as fake:
        fake.inject("http_status", status=429, count=5)

        async def go() -> None:
            async with client(fake.rest_url) as rest:
                await rest.request("GET", "/api/v1/futures/market/tickers", {}, idempotent=False)

        with pytest.raises(RateLimitedError):
            run(go())
        assert fake.stats()["rest_requests"]["/api/v1/futures/market/tickers"] == 1


def test_budget_keeps_a_burst_under_the_servers_per_ip_limit() -> None:
    # The server counts a request when it *receives* it, the budget when it lets
    # it go; the budget's margin must cover the delay between the two. The
    # default (0.1 s) is sized for the network to the exchange; on a loaded test
    # machine one stalled thread delays a request longer than that, so the test
    # sizes the margin for the machine and checks that the budget (not
    # slowness) did the pacing: more requests than the server allows per window.
    burst = protocol.MARKET_REST_PER_S + 4
    with fake_exchange(speed=1.0) as fake:

        async def go() -> tuple[int, float]:
            budget = RateLimitBudget(margin_s=0.5)
            async with BitunixRestClient(fake.rest_url, options=FAST, budget=budget) as rest:
                for _ in range(burst):
                    await rest.tickers(["BTCUSDT"])
                return budget.limiter.max_seen, budget.limiter.waited_s

        max_seen, waited_s = run(go())
        stats = fake.stats()
        assert stats["rest_requests"]["/api/v1/futures/market/tickers"] == burst
        assert stats["rest_rate_limited"] == 0
        assert max_seen == protocol.MARKET_REST_PER_S and waited_s > 0  # the budget held the rest back
