from __future__ import annotations

import math

import pytest

from laptop_agents.domain import (
    Candle,
    DomainError,
    FundingRate,
    OrderIntent,
    OrderType,
    Side,
    SymbolError,
    Tick,
    instrument_for,
    interval_ms,
    normalize_symbol,
    parse_interval,
)


@pytest.mark.parametrize("raw", ["btc/usdt", "BTC-USDT", "btcusdt", " BTC_USDT ", "BTCUSDT", "btc:usdt", "BTCUSDT-PERP"])
def test_linear_spellings_normalise(raw: str) -> None:
    assert normalize_symbol(raw) == "BTCUSDT"


@pytest.mark.parametrize("raw", ["BTCUSD", "btc/usd", "BTC-USD"])
def test_inverse_symbol(raw: str) -> None:
    assert normalize_symbol(raw) == "BTCUSD"
    assert instrument_for(raw).kind.value == "inverse"


@pytest.mark.parametrize("raw", ["ETHUSDT", "BTCEUR", "", "BTC"])
def test_unknown_symbol_is_a_clear_error(raw: str) -> None:
    with pytest.raises(SymbolError) as exc:
        normalize_symbol(raw)
    message = str(exc.value)
    assert "BTCUSDT" in message and "BTCUSD" in message and "\n" not in message


def test_candle_validation_accepts_good_bar() -> None:
    c = Candle(1_700_000_000_000, 100.0, 101.0, 99.0, 100.5, 3.0)
    assert c.close == 100.5


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"open": math.nan}, "finite"),
        ({"high": math.inf}, "finite"),
        ({"low": 102.0}, "low <= open/close <= high"),
        ({"close": 105.0}, "low <= open/close <= high"),
        ({"volume": -1.0}, "volume"),
        ({"low": 0.0, "open": 0.0, "close": 0.0}, "low must be > 0"),
    ],
)
def test_candle_validation_rejects_bad_bar(kwargs: dict[str, float], fragment: str) -> None:
    base = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": 3.0}
    base.update(kwargs)
    with pytest.raises(DomainError, match=fragment):
        Candle(1_700_000_000_000, **base)


def test_candle_ts_must_be_int_ms() -> None:
    with pytest.raises(DomainError, match="int UTC milliseconds"):
        Candle(1.7e12, 1.0, 1.0, 1.0, 1.0, 0.0)  # type: ignore[arg-type]


def test_tick_and_funding_validation() -> None:
    with pytest.raises(DomainError):
        Tick(1, bid=101.0, ask=100.0, last=100.0)
    with pytest.raises(DomainError, match="fraction"):
        FundingRate(1, rate=0.5)  # 50 %: a percent passed where a fraction belongs


def test_order_intent_validation() -> None:
    with pytest.raises(DomainError, match="LIMIT"):
        OrderIntent("a", Side.BUY, OrderType.LIMIT, 1.0)
    with pytest.raises(DomainError, match="qty"):
        OrderIntent("a", Side.BUY, OrderType.MARKET, 0.0)
    assert Side.BUY.opposite() is Side.SELL and Side.SELL.sign == -1


def test_intervals() -> None:
    assert parse_interval("1min") == "1m"
    assert parse_interval("60min") == "1h"
    assert interval_ms("15m") == 900_000
    assert interval_ms("1d") == 86_400_000
    with pytest.raises(DomainError, match="allowed"):
        parse_interval("7m")
