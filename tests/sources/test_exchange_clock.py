"""The market clock of a session on a fast exchange (``--speed`` with
``--source bitunix``): the exchange's own time, advanced at its speed, only
ever forward; at speed 1 the session keeps the wall clock."""

from __future__ import annotations

import pytest

from laptop_agents.config import load_config
from laptop_agents.sources.bitunix import ExchangeClock
from laptop_agents.sources.factory import build_source


class Ticker:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_it_follows_the_exchange_at_its_speed_and_never_goes_back() -> None:
    mono = Ticker()
    clock = ExchangeClock(600.0, monotonic=mono, wall_ms=lambda: 42)
    assert clock.now_ms() == 42  # nothing heard from the exchange yet: the wall clock
    clock.observe(1_000_000)
    assert clock.now_ms() == 1_000_000
    mono.t += 0.5
    assert clock.now_ms() == 1_300_000  # half a wall second is 300 market seconds
    clock.observe(1_200_000)  # a delayed frame, behind the estimate: ignored
    assert clock.now_ms() == 1_300_000
    clock.observe(2_000_000)  # the exchange is ahead (or jumped): follow it
    assert clock.now_ms() == 2_000_000
    clock.observe(None)
    assert clock.now_ms() == 2_000_000
    with pytest.raises(ValueError):
        ExchangeClock(0.0)


def test_a_bitunix_session_uses_it_only_when_the_exchange_is_fast() -> None:
    fast = load_config("paper", {"trading.source": "bitunix", "trading.speed": 720.0}).config
    src = build_source(fast, resume_after_ts=123)
    assert src.speed == 720.0 and src.source.market_clock is not None  # type: ignore[attr-defined]
    assert src.clock == src.source.market_clock.now_ms  # type: ignore[attr-defined]
    assert src.source.resume_after_ts == 123  # type: ignore[attr-defined]
    assert "exchange at 720x" in src.description
    real = load_config("paper", {"trading.source": "bitunix"}).config
    src = build_source(real)
    assert src.speed == 1.0 and src.source.market_clock is None  # type: ignore[attr-defined]
