"""REST and websocket parsing: envelopes, typed errors, numbers as strings or
numbers, the swapped volume fields, percent funding, precisions -> tick/step."""

from __future__ import annotations

import json

import pytest

from laptop_agents.domain.models import Candle
from laptop_agents.exchange import protocol
from laptop_agents.exchange.errors import (
    AuthError,
    BadFrameError,
    DuplicateClientIdError,
    ExchangeError,
    InsufficientBalanceError,
    MalformedReplyError,
    MarketError,
    OrderNotFoundError,
    OrderStatusError,
    ParameterError,
    PriceLimitError,
    QuantityError,
    RateLimitedError,
    ReduceOnlyError,
    TradingError,
    TransientError,
    error_for_status,
)
from laptop_agents.exchange.parsers import (
    Connected,
    Ignored,
    KlinePush,
    Pong,
    PricePush,
    ServerNotice,
    TickerPush,
    is_heartbeat,
    parse_funding,
    parse_kline_rows,
    parse_push,
    parse_tickers,
    parse_trading_pairs,
    unwrap_envelope,
)


def test_envelope_success_returns_data() -> None:
    assert unwrap_envelope({"code": 0, "msg": "Success", "data": [1]}, "x") == [1]
    assert unwrap_envelope({"code": "0", "msg": "", "data": None}, "x") is None


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (10002, ParameterError), (10008, ParameterError), (10003, AuthError), (10004, AuthError),
        (10007, AuthError), (10005, RateLimitedError), (10006, RateLimitedError), (20001, MarketError),
        (20003, InsufficientBalanceError), (30042, DuplicateClientIdError), (20007, OrderNotFoundError),
        (30018, ReduceOnlyError), (30014, PriceLimitError), (30016, QuantityError), (10013, OrderStatusError),
        (20002, TradingError), (10001, TransientError), (300105, TransientError), (99999, ExchangeError),
    ],
)
def test_envelope_error_codes_map_to_families(code: int, cls: type[ExchangeError]) -> None:
    with pytest.raises(cls) as info:
        unwrap_envelope({"code": code, "msg": "boom", "data": None}, "/p", http_status=200)
    assert type(info.value) is cls
    assert info.value.code == code
    assert f"bitunix code {code}: boom" in str(info.value)
    assert "/p" in str(info.value)


@pytest.mark.parametrize("payload", [[], "x", {"msg": "no code"}, {"code": True}, {"code": "abc"}, None])
def test_envelope_malformed(payload: object) -> None:
    with pytest.raises(MalformedReplyError):
        unwrap_envelope(payload, "/p")


def test_http_status_families() -> None:
    assert isinstance(error_for_status(429, ""), RateLimitedError)
    assert isinstance(error_for_status(502, ""), TransientError)
    assert isinstance(error_for_status(503, ""), TransientError)
    assert isinstance(error_for_status(403, ""), AuthError)
    assert isinstance(error_for_status(404, ""), ParameterError)
    assert error_for_status(429, "", retry_after_s=2.0).retry_after_s == 2.0
    assert RateLimitedError.retryable and TransientError.retryable and not ParameterError.retryable


def test_kline_rows_strings_or_numbers_and_swapped_volume() -> None:
    rows = [
        {"open": "60010.5", "high": "60050", "low": "59990.1", "close": "60020", "time": 1_700_000_040_000,
         "quoteVol": "12.5", "baseVol": "750000", "type": "LAST_PRICE"},
        {"open": 60000, "high": 60020.0, "low": 59950, "close": 60010.5, "time": "1699999980000",
         "quoteVol": 3, "baseVol": 180000.0},
    ]
    out = parse_kline_rows(rows, 60_000)
    assert out == [
        Candle(1_700_000_040_000, 60010.5, 60050.0, 59990.1, 60020.0, 12.5),  # quoteVol is the BTC amount
        Candle(1_699_999_980_000, 60000.0, 60020.0, 59950.0, 60010.5, 3.0),
    ]
    assert protocol.KLINE_BASE_VOLUME_FIELD == "quoteVol"


@pytest.mark.parametrize(
    ("mutation", "needle"),
    [
        ({"open": "nan"}, "numeric string"),
        ({"high": "inf"}, "numeric string"),
        ({"close": True}, "expected a number"),
        ({"low": None}, "expected a number"),
        ({"time": "abc"}, "timestamp"),
        ({"time": 1_699_999_980_001}, "not aligned"),
        ({"high": "59000"}, "low <= open/close <= high"),
        ({"quoteVol": "-1"}, "volume"),
    ],
)
def test_kline_row_rejections_name_the_field(mutation: dict[str, object], needle: str) -> None:
    row = {"open": "60000", "high": "60010", "low": "59990", "close": "60005", "time": 1_699_999_980_000,
           "quoteVol": "1", "baseVol": "60000"}
    row.update(mutation)
    with pytest.raises(MalformedReplyError, match=needle):
        parse_kline_rows([row], 60_000)


def test_kline_rows_missing_field_and_bad_container() -> None:
    with pytest.raises(MalformedReplyError, match="missing field 'close'"):
        parse_kline_rows([{"open": 1, "high": 1, "low": 1, "time": 60_000}], 60_000)
    with pytest.raises(MalformedReplyError, match="list of rows"):
        parse_kline_rows({"rows": []}, 60_000)
    assert parse_kline_rows(None, 60_000) == []


def test_trading_pair_tick_and_step_from_precisions() -> None:
    (pair,) = parse_trading_pairs([{
        "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "minTradeVolume": "0.0001",
        "basePrecision": 4, "quotePrecision": "1", "maxLimitOrderVolume": "500", "maxMarketOrderVolume": "100",
        "minLeverage": 1, "maxLeverage": "125", "defaultLeverage": 20, "symbolStatus": "OPEN",
    }])
    assert pair.tick_size == 0.1 and pair.qty_step == 0.0001 and pair.min_qty == 0.0001
    assert pair.max_leverage == 125 and pair.status == "OPEN"
    with pytest.raises(MalformedReplyError, match="precision"):
        parse_trading_pairs([{"symbol": "X", "minTradeVolume": 1, "basePrecision": 1.5, "quotePrecision": 1}])


@pytest.mark.parametrize("as_list", [False, True])
def test_funding_percent_to_fraction_object_or_list(as_list: bool) -> None:
    item = {"symbol": "BTCUSDT", "markPrice": "60000", "lastPrice": "60001", "fundingRate": "0.01",
            "fundingInterval": 8, "nextFundingTime": "1700028800000"}
    info = parse_funding([item] if as_list else item)
    assert info.rate == 0.0001
    assert info.next_funding_ts == 1_700_028_800_000
    assert parse_funding({"fundingRate": -0.0375}).rate == -0.000375


def test_funding_bad_shapes() -> None:
    with pytest.raises(MalformedReplyError):
        parse_funding([])
    with pytest.raises(MalformedReplyError):
        parse_funding("0.01")
    with pytest.raises(MalformedReplyError, match="fundingRate"):
        parse_funding({"symbol": "BTCUSDT"})


def test_tickers() -> None:
    (t,) = parse_tickers([{"symbol": "BTCUSDT", "markPrice": "1", "lastPrice": "60000.5", "open": "59000",
                           "last": "60000.5", "quoteVol": "10", "baseVol": "600000", "high": "61000", "low": "58000"}])
    assert t.last == 60000.5 and t.base_volume == 10.0 and t.quote_volume == 600000.0


# -- websocket ------------------------------------------------------------------
def _kline(ts: int = 1_700_000_030_000, **data: object) -> str:
    d: dict[str, object] = {"o": "60000", "h": "60010", "l": "59990", "c": "60005", "b": "1.5", "q": "90000"}
    d.update(data)
    return json.dumps({"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": ts, "data": d})


def test_kline_push_open_time_is_floor_of_ts() -> None:
    msg = parse_push(_kline())
    assert isinstance(msg, KlinePush)
    assert msg.interval == "1m" and msg.ts == 1_700_000_030_000
    assert msg.candle == Candle(1_699_999_980_000, 60000.0, 60010.0, 59990.0, 60005.0, 1.5)
    hourly = parse_push(_kline().replace("market_kline_1min", "market_kline_60min"))
    assert isinstance(hourly, KlinePush) and hourly.interval == "1h"
    assert hourly.candle.ts == 1_700_000_030_000 - 1_700_000_030_000 % 3_600_000


def test_ws_interval_names_differ_from_rest() -> None:
    assert protocol.kline_channel("1m") == "market_kline_1min"
    assert protocol.kline_channel("1h") == "market_kline_60min"
    assert protocol.kline_channel("1d") == "market_kline_1day"
    assert protocol.rest_interval("1h") == "1h"
    with pytest.raises(protocol.ProtocolError, match="3m"):
        protocol.rest_interval("3m")


def test_ticker_and_price_pushes() -> None:
    t = parse_push(json.dumps({"ch": "ticker", "symbol": "BTCUSDT", "ts": 1_700_000_000_500,
                               "data": {"s": "BTCUSDT", "la": "60000.5", "o": "1", "h": "2", "l": "1"}}))
    assert isinstance(t, TickerPush) and t.tick.bid == t.tick.ask == t.tick.last == 60000.5
    t2 = parse_push(json.dumps({"ch": "tickers", "symbol": "BTCUSDT", "ts": 1_700_000_000_500,
                                "data": {"la": "60000.5", "bd": "60000.4", "ak": "60000.6"}}))
    assert isinstance(t2, TickerPush) and (t2.tick.bid, t2.tick.ask) == (60000.4, 60000.6)
    p = parse_push(json.dumps({"ch": "price", "symbol": "BTCUSDT", "ts": 1_700_000_000_500,
                               "data": {"ip": "60000", "mp": "60001", "fr": "0.0125", "ft": 1, "nft": 1_700_028_800_000}}))
    assert isinstance(p, PricePush) and p.funding.rate == 0.000125 and p.next_funding_ts == 1_700_028_800_000


def test_op_messages() -> None:
    assert parse_push('{"op":"ping","pong":1700000000,"ping":1700000001}') == Pong(1700000000, 1700000001)
    assert parse_push('{"op":"connect","data":{"result":true}}') == Connected(True)
    assert parse_push('{"op":"connect","data":{"result":false}}') == Connected(False)
    notice = parse_push('{"op":"error","msg":"bad"}')
    assert isinstance(notice, ServerNotice) and notice.error
    ack = parse_push('{"op":"subscribe","code":0}')
    assert isinstance(ack, ServerNotice) and not ack.error
    assert parse_push('{"ch":"depth_book1","symbol":"BTCUSDT","ts":1,"data":{}}') == Ignored("depth_book1")
    assert is_heartbeat('{"op":"ping","pong":1,"ping":2}') and is_heartbeat('{"op":"connect","data":{}}')
    assert not is_heartbeat(_kline()) and not is_heartbeat(b"\xff") and not is_heartbeat("{not json")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("{", "invalid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ("[1,2]", "expected an object"),
        ("[" * 100_000, "JSON"),
        ('{"ch":"market_kline_1min","symbol":"BTCUSDT","data":{}}', "timestamp"),
        (_kline(c="abc"), "kline_1min c"),
        (_kline(h="1"), "low <= open/close <= high"),
        (_kline(l="-5"), "candle"),
        (_kline(ts=True), "timestamp"),
        (_kline().replace('"symbol": "BTCUSDT", ', ""), "symbol"),
        (_kline().replace("1min", "7min"), "unknown websocket kline interval"),
        (json.dumps({"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": 1, "data": [1]}), "data must be an object"),
        (json.dumps({"ch": "price", "symbol": "BTCUSDT", "ts": 1, "data": {"fr": "50"}}), "funding rate"),
        (json.dumps({"ch": "tickers", "symbol": "BTCUSDT", "ts": 1, "data": {"la": 1, "bd": 2, "ak": 1}}), "bid"),
        ('{"foo":1}', "neither op nor ch"),
        ('{"op":5}', "op must be a string"),
    ],
)
def test_bad_frames_raise_only_bad_frame_error(raw: str | bytes, needle: str) -> None:
    with pytest.raises(BadFrameError, match=needle):
        parse_push(raw)
