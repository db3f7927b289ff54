"""The sliding-window limiter (on a simulated clock), the shared budget's
penalty, and the request signing helper."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from laptop_agents.exchange.ratelimit import RateLimitBudget, SlidingWindowLimiter
from laptop_agents.exchange.signing import (
    compact_json,
    make_nonce,
    query_string_for_sign,
    rest_headers,
    sign_rest,
    sign_ws_login,
    ws_login_message,
)


class SimTime:
    """A monotonic clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_window_never_holds_more_than_max() -> None:
    sim = SimTime()
    limiter = SlidingWindowLimiter(5, 1.0, monotonic=sim.monotonic, sleep=sim.sleep)

    async def go() -> list[float]:
        stamps = []
        for _ in range(23):
            await limiter.acquire()
            stamps.append(sim.now)
        return stamps

    stamps = asyncio.run(go())
    for i in range(len(stamps)):
        inside = [t for t in stamps if stamps[i] <= t < stamps[i] + 1.0]
        assert len(inside) <= 5
    assert limiter.max_seen == 5 and limiter.total == 23
    assert stamps[5] - stamps[0] >= 1.0  # the sixth waited for the first to leave the window


def test_concurrent_acquirers_share_the_window() -> None:
    sim = SimTime()
    limiter = SlidingWindowLimiter(3, 1.0, monotonic=sim.monotonic, sleep=sim.sleep)
    stamps: list[float] = []

    async def worker() -> None:
        for _ in range(4):
            await limiter.acquire()
            stamps.append(sim.now)

    async def go() -> None:
        await asyncio.gather(*(worker() for _ in range(3)))

    asyncio.run(go())
    stamps.sort()
    assert len(stamps) == 12
    for i, t in enumerate(stamps):
        assert sum(1 for u in stamps[i:] if u < t + 1.0) <= 3


def test_budget_penalty_blocks_then_releases() -> None:
    sim = SimTime()
    budget = RateLimitBudget(10, margin_s=0.1, monotonic=sim.monotonic, sleep=sim.sleep)

    async def go() -> float:
        await budget.acquire()
        budget.penalize(2.5)
        start = sim.now
        await budget.acquire()
        return sim.now - start

    assert asyncio.run(go()) >= 2.5
    assert budget.penalties == 1
    free = RateLimitBudget.unlimited()
    free.penalize(100)
    asyncio.run(free.acquire())  # returns at once: replays never wait


def test_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 1.0)


# -- signing ---------------------------------------------------------------------
def test_query_string_sorted_without_separators() -> None:
    assert query_string_for_sign({"uid": 200, "id": 1}) == "id1uid200"  # the documented example
    assert query_string_for_sign({}) == "" and query_string_for_sign(None) == ""
    assert query_string_for_sign({"b": True, "a": "x"}) == "axbtrue"


def test_rest_sign_is_double_sha256_of_the_documented_concatenation() -> None:
    nonce, ts, key, secret = "n" * 32, 1_700_000_000_000, "key123", "secret456"
    body = compact_json({"symbol": "BTCUSDT", "qty": "0.01"})
    assert body == '{"symbol":"BTCUSDT","qty":"0.01"}'
    first = hashlib.sha256(("n" * 32 + "1700000000000" + "key123" + "id1uid200" + body).encode()).hexdigest()
    expected = hashlib.sha256((first + "secret456").encode()).hexdigest()
    assert sign_rest(key, secret, nonce, ts, {"uid": 200, "id": 1}, body) == expected
    headers = rest_headers(key, secret, timestamp_ms=ts, params={"uid": 200, "id": 1}, body=body, nonce=nonce)
    assert headers["sign"] == expected and headers["timestamp"] == "1700000000000" and headers["api-key"] == key


def test_ws_login_and_nonce() -> None:
    first = hashlib.sha256(b"abc1700000000key").hexdigest()
    assert sign_ws_login("key", "sec", "abc", 1_700_000_000) == hashlib.sha256((first + "sec").encode()).hexdigest()
    msg = ws_login_message("key", "sec", 1_700_000_000, nonce="abc")
    assert msg["op"] == "login" and msg["args"][0]["sign"] == sign_ws_login("key", "sec", "abc", 1_700_000_000)
    n1, n2 = make_nonce(), make_nonce()
    assert len(n1) == 32 and n1.isalnum() and n1 != n2
