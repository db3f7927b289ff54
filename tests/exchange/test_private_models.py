"""Private records parse every documented doc-vs-wire variant; orders are
validated before the wire; fills are counted exactly once from snapshots."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from laptop_agents.domain.models import OrderType, Side
from laptop_agents.exchange.errors import BadFrameError, MalformedReplyError
from laptop_agents.exchange.private_models import (
    Balance,
    CancelResult,
    Order,
    OrderRequest,
    Position,
    iso_to_ms,
    one_object,
    parse_model,
    wire_number,
)
from laptop_agents.exchange.private_updates import (
    BalancePush,
    FillTracker,
    LoginAck,
    OrderPush,
    PositionPush,
    parse_private_frame,
)

REST_ORDER = {
    "orderId": "11111", "symbol": "BTCUSDT", "qty": "0.01", "tradeQty": "0", "positionMode": "ONE_WAY",
    "marginMode": "CROSS", "leverage": 20, "price": "60000", "side": "BUY", "orderType": "LIMIT", "effect": "GTC",
    "clientId": "abc1", "reduceOnly": False, "status": "NEW_", "fee": "0", "realizedPNL": "0",
    "ctime": "1767229200000", "mtime": 1767229200001,
}
WS_ORDER = {
    "event": "UPDATE", "orderId": "11111", "clientId": "abc1", "symbol": "BTCUSDT", "positionType": "CROSS",
    "positionMode": "ONE_WAY", "side": "Buy", "effect": "GTC", "type": "Limit", "qty": "0.01",
    "reductionOnly": False, "price": "60000", "ctime": "2026-01-01T00:00:00.000000000Z",
    "mtime": "2026-01-01T00:00:01.155255000Z", "leverage": "20", "orderStatus": "PART_FILLED", "fee": "0.12",
    "averagePrice": "60000", "dealAmount": "0.004", "tpStopType": "Last", "tpPrice": "61000",
}


def test_rest_and_ws_orders_parse_to_the_same_record() -> None:
    rest = parse_model(Order, REST_ORDER, "order")
    ws = parse_model(Order, WS_ORDER, "order")
    assert rest.status == "NEW" and rest.is_open and rest.ctime == 1_767_229_200_000 and rest.mtime == 1_767_229_200_001
    assert ws.side is Side.BUY and ws.order_type is OrderType.LIMIT and ws.status == "PART_FILLED"
    assert ws.filled_qty == 0.004 and ws.avg_price == 60000.0 and ws.margin_mode == "CROSS"
    assert ws.mtime == 1_767_225_601_155 and ws.ctime == 1_767_225_600_000 and ws.tp_stop_type == "LAST_PRICE"
    assert ws.remaining_qty == pytest.approx(0.006)
    market = parse_model(Order, {**REST_ORDER, "price": "market", "orderType": "MARKET", "status": "FILLED"}, "o")
    assert market.price is None and not market.is_open


def test_bad_values_raise_the_clients_error_naming_the_field() -> None:
    with pytest.raises(MalformedReplyError, match="qty"):
        parse_model(Order, {**REST_ORDER, "qty": "ten"}, "order")
    with pytest.raises(MalformedReplyError, match="side"):
        parse_model(Order, {**REST_ORDER, "side": ""}, "order")
    with pytest.raises(BadFrameError):
        parse_model(Order, [REST_ORDER], "order", BadFrameError)


def test_positions_balance_and_one_object_shapes() -> None:
    pos = parse_model(Position, {"positionId": 7, "symbol": "BTCUSDT", "qty": "0.5", "side": "SELL",
                                 "entryValue": "30000", "leverage": "10", "ctime": "1", "unrealizedPNL": ""}, "p")
    assert pos.side == "SHORT" and pos.signed_qty == -0.5 and pos.entry_price == 60000.0
    assert pos.position_id == "7" and pos.unrealized_pnl == 0.0
    account = {"marginCoin": "USDT", "available": "100.5", "frozen": 1, "margin": "2", "crossUnrealizedPNL": "-0.5"}
    for data in (account, [account]):  # the docs wrap it in a list, the wire does not
        bal = parse_model(Balance, one_object(data, "account"), "account")
        assert bal.available == 100.5 and bal.equity_estimate == pytest.approx(103.0)
    with pytest.raises(MalformedReplyError):
        one_object([account, account], "account")
    ws_balance = parse_model(Balance, {"coin": "USDT", "available": "5", "frozen": "0", "margin": "1"}, "b")
    assert ws_balance.margin_coin == "USDT" and ws_balance.margin == 1.0


def test_cancel_result_accepts_id_aliases_and_string_codes() -> None:
    res = parse_model(CancelResult, {
        "successList": [{"orderId": "1", "clientId": "a"}],
        "failureList": [{"id": "2", "clientId": "b", "errorMsg": "Order status error", "errorCode": "10013"},
                        {"orderId": "3", "errorCode": 20007}],
    }, "cancel")
    assert res.succeeded[0].order_id == "1"
    assert [(f.order_id, f.code) for f in res.failed] == [("2", 10013), ("3", 20007)]
    assert parse_model(CancelResult, {"successList": None, "failureList": None}, "c") == CancelResult()


def test_iso_times_and_wire_numbers() -> None:
    assert iso_to_ms("1970-01-01T00:00:01.5Z") == 1500
    assert iso_to_ms("1970-01-01T01:00:00+01:00") == 0
    assert iso_to_ms("2025-04-26T17:06:13.155255000Z") % 1000 == 155
    assert [wire_number(x) for x in (60000.0, 0.0001, 1e-05, 65827.3, 0.1 + 0.2)] == [
        "60000", "0.0001", "0.00001", "65827.3", "0.30000000000000004"]


def test_order_request_is_validated_and_rendered_for_the_wire() -> None:
    req = OrderRequest.limit("BTCUSDT", "BUY", 0.001, 60000.0, client_id="b0abc", reduce_only=False,
                             tp_price=61000.0, sl_price=59000.0, sl_stop_type="MARK_PRICE")
    assert req.to_wire() == {
        "symbol": "BTCUSDT", "side": "BUY", "orderType": "LIMIT", "qty": "0.001", "price": "60000",
        "effect": "GTC", "clientId": "b0abc", "tpPrice": "61000", "tpStopType": "LAST_PRICE",
        "tpOrderType": "MARKET", "slPrice": "59000", "slStopType": "MARK_PRICE", "slOrderType": "MARKET",
    }
    market = OrderRequest.market("BTCUSDT", Side.SELL, 0.002, reduce_only=True).to_wire()
    assert market == {"symbol": "BTCUSDT", "side": "SELL", "orderType": "MARKET", "qty": "0.002", "reduceOnly": True}
    bad = [
        {"order_type": OrderType.LIMIT},  # no price
        {"order_type": OrderType.MARKET, "price": 1.0},
        {"order_type": OrderType.MARKET, "effect": "POST_ONLY"},
        {"price": 1.0, "client_id": "has space"},
        {"price": 1.0, "client_id": "x" * 33},
        {"price": 1.0, "qty": 0},
        {"price": float("nan")},
        {"price": 1.0, "tp_order_type": OrderType.LIMIT, "tp_price": 2.0},  # no tp_order_price
        {"price": 1.0, "sl_stop_type": "MARK_PRICE"},  # no sl_price
    ]
    for kw in bad:
        params = {"symbol": "BTCUSDT", "side": Side.BUY, "qty": 0.001, **kw}
        with pytest.raises(ValidationError):
            OrderRequest(**params)


def _snap(filled: str, avg: str | None, fee: str, status: str, mtime: int) -> Order:
    return parse_model(Order, {**REST_ORDER, "tradeQty": filled, "avgPrice": avg, "fee": fee, "status": status,
                               "mtime": mtime}, "o")


def test_fill_tracker_counts_each_execution_once_whatever_the_order_of_snapshots() -> None:
    t = FillTracker()
    news, fill = t.observe(_snap("0", None, "0", "NEW", 1), ts=1, source="ws")
    assert news and fill is None
    _, f1 = t.observe(_snap("0.004", "60000", "0.048", "PART_FILLED", 2), ts=2, source="ws")
    assert f1 is not None and (f1.qty, f1.price, f1.fee, f1.fill_id) == (0.004, 60000.0, 0.048, "11111@0.004")
    # the REST gap fill sees the final state: only the rest is new
    _, f2 = t.observe(_snap("0.01", "60010", "0.12", "FILLED", 4), ts=4, source="rest")
    assert f2 is not None and f2.qty == pytest.approx(0.006) and f2.source == "rest"
    assert f2.price == pytest.approx((60010 * 0.01 - 60000 * 0.004) / 0.006)
    assert f2.fee == pytest.approx(0.072)
    # a delayed push of an older state, and a repeat of the last: nothing new
    assert t.observe(_snap("0.004", "60000", "0.048", "PART_FILLED", 2), ts=5, source="ws") == (False, None)
    assert t.observe(_snap("0.01", "60010", "0.12", "FILLED", 4), ts=6, source="ws") == (False, None)
    assert t.fills == 2 and t.open_order_ids() == []
    restored = FillTracker()
    restored.restore(json.loads(json.dumps(t.snapshot())))
    assert restored.observe(_snap("0.01", "60010", "0.12", "FILLED", 4), ts=7, source="rest") == (False, None)


def test_private_frames() -> None:
    assert parse_private_frame('{"op":"login","data":{"result":true}}') == LoginAck(True, '{"op":"login","data":{"result":true}}')
    assert not parse_private_frame('{"op":"login","data":{"result":false},"code":10007}').ok
    push = parse_private_frame(json.dumps({"ch": "order", "ts": 5, "data": WS_ORDER}))
    assert isinstance(push, OrderPush) and push.items[0][0] == "UPDATE" and push.items[0][1].filled_qty == 0.004
    listed = parse_private_frame(json.dumps({"ch": "order", "ts": 5, "data": [WS_ORDER, WS_ORDER]}))
    assert isinstance(listed, OrderPush) and len(listed.items) == 2
    pos = parse_private_frame(json.dumps({"ch": "position", "ts": 6, "data": {
        "event": "OPEN", "positionId": "9", "side": "LONG", "qty": "0.01", "symbol": "BTCUSDT",
        "ctime": "2026-01-01T00:00:00Z"}}))
    assert isinstance(pos, PositionPush) and pos.items[0][1].signed_qty == 0.01
    bal = parse_private_frame(json.dumps({"ch": "balance", "ts": 7, "data": {"coin": "USDT", "available": "1"}}))
    assert isinstance(bal, BalancePush) and bal.balances[0].available == 1.0
    for raw in ("nope", "[]", '{"ch":"order","ts":5,"data":{"orderId":"1"}}', '{"ch":"order","data":{}}',
                '{"x":1}', b"\xff"):
        with pytest.raises(BadFrameError):
            parse_private_frame(raw)
