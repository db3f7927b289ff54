"""The live broker: the paper broker's checks and books, the exchange's fills.

Every intent is checked exactly as in paper (hard limits refused and
journaled before anything could be sent); what passes waits in the outbox,
and only the exchange's word (apply_fill / apply_status) moves the books."""

from __future__ import annotations

from typing import Any

from laptop_agents.broker.live import ExchangeFill, ExchangeStatus, LiveBroker
from laptop_agents.broker.paper import PaperBroker
from laptop_agents.config import BrokerConfig, RiskConfig
from laptop_agents.domain.models import CancelIntent, OrderIntent, Side
from laptop_agents.domain.symbols import instrument_for
from tests.broker.helpers import MIN, T0, buy, candle, flat, kinds, make_broker, of_kind, sell


def live(equity: float = 10_000.0, **risk: Any) -> LiveBroker:
    return LiveBroker(instrument_for("BTCUSDT"), BrokerConfig(slippage_bps=0.0), RiskConfig(**risk), equity)


def primed(**risk: Any) -> LiveBroker:
    b = live(**risk)
    b.on_candle(flat(0, 50_000.0))
    b.drain()
    return b


def test_an_accepted_intent_waits_in_the_outbox_and_nothing_is_filled() -> None:
    b = primed()
    b.submit(buy("e1", 0.01), T0)
    events, fills = b.drain()
    assert fills == [] and b.position is None
    assert of_kind(events, "order")[0]["status"] == "submitted"
    orders, cancels = b.take_outbox()
    assert [o.client_id for o in orders] == ["e1"] and cancels == []
    assert b.take_outbox() == ([], [])  # taken once
    assert "e1" in b.orders  # on the books until the exchange says what happened


def test_every_hard_limit_is_checked_before_anything_is_sent() -> None:
    b = primed(max_position_notional=1_000.0, max_orders_per_minute=2)
    b.submit(buy("big", 1.0), T0)  # 50 000 notional: over the cap
    b.submit(buy("ok1", 0.01), T0)
    b.submit(buy("ok2", 0.01), T0)
    b.submit(buy("third", 0.001), T0)  # the third order this minute
    b.submit(buy("ok1", 0.01), T0 + MIN)  # a processed id again
    events, _ = b.drain()
    statuses = [(o["client_id"], o["status"], o["reason"]) for o in of_kind(events, "order")]
    assert statuses[0][0] == "big" and statuses[0][1] == "rejected"
    assert statuses[1][:2] == ("ok1", "submitted") and statuses[2][:2] == ("ok2", "submitted")
    assert statuses[3] == ("third", "rejected", "max_orders_per_minute")
    assert statuses[4][:2] == ("ok1", "duplicate")
    assert [o.client_id for o in b.take_outbox()[0]] == ["ok1", "ok2"]


def test_working_entries_count_against_the_position_cap() -> None:
    """Two entries sent in one candle must not together break max position notional."""
    b = primed(max_position_notional=800.0)
    b.submit(buy("a", 0.01), T0)  # 500
    b.submit(buy("b", 0.01), T0)  # 500 more: over 800 with the first
    events, _ = b.drain()
    statuses = [(o["client_id"], o["status"], o["reason"]) for o in of_kind(events, "order")]
    assert statuses == [("a", "submitted", ""), ("b", "rejected", "max_notional")]


def test_exchange_fills_book_like_paper_fills_with_the_exchange_fee() -> None:
    b = primed()
    b.submit(buy("e1", 0.02, stop=49_000.0, target=52_000.0), T0)
    b.drain()
    b.apply_fill(ExchangeFill("e1", Side.BUY, 0.01, 50_010.0, 0.3, T0 + 1, "taker"))
    b.apply_fill(ExchangeFill("e1", Side.BUY, 0.01, 50_030.0, 0.3, T0 + 2, "taker"))
    events, fills = b.drain()
    assert [f.qty for f in fills] == [0.01, 0.01] and [f.fee for f in fills] == [0.3, 0.3]
    assert kinds(events) == ["fill", "fill"]
    pos = b.position
    assert pos is not None and abs(pos.qty - 0.02) < 1e-12 and abs(pos.entry_price - 50_020.0) < 1e-9
    assert pos.stop == 49_000.0 and pos.target == 52_000.0  # the bracket came with the order
    assert "e1" not in b.orders  # fully filled
    assert abs(b.balance - (10_000.0 - 0.6)) < 1e-9 and b.fees_paid == 0.6
    b.submit(sell("x1", 0.02, reduce_only=True), T0 + MIN)
    b.drain()
    b.apply_fill(ExchangeFill("x1", Side.SELL, 0.02, 50_120.0, 0.6, T0 + MIN + 1, "taker"))
    events, _ = b.drain()
    trade = of_kind(events, "trade_closed")[0]
    assert abs(trade["pnl"] - 2.0) < 1e-9 and abs(trade["fees"] - 1.2) < 1e-9 and b.position is None


def test_a_stop_reached_asks_once_for_a_reduce_only_market_exit() -> None:
    b = primed()
    b.submit(buy("e1", 0.01, stop=49_500.0), T0)
    b.apply_fill(ExchangeFill("e1", Side.BUY, 0.01, 50_000.0, 0.3, T0, "taker"))
    b.take_outbox()
    b.drain()
    b.on_candle(candle(1, 50_000.0, 50_000.0, 49_400.0, 49_450.0))
    b.on_candle(candle(2, 49_450.0, 49_460.0, 49_300.0, 49_350.0))  # still below: no second exit
    orders, _ = b.take_outbox()
    assert len(orders) == 1 and orders[0].reduce_only and orders[0].side is Side.SELL and orders[0].qty == 0.01
    assert b.position is not None  # until the exchange fills the exit
    b.apply_fill(ExchangeFill(orders[0].client_id, Side.SELL, 0.01, 49_380.0, 0.3, T0 + 2 * MIN, "taker"))
    events, _ = b.drain()
    assert of_kind(events, "trade_closed")[0]["exit_reason"] == "stop" and b.position is None


def test_cancels_and_expiry_are_requests_the_exchange_confirms() -> None:
    b = primed()
    b.submit(buy("l1", 0.01, price=49_000.0, expire_ts=T0 + 5 * MIN), T0)
    b.submit(buy("l2", 0.01, price=48_000.0), T0)
    b.take_outbox()
    b.drain()
    b.submit(CancelIntent("l2", "changed my mind"), T0 + MIN)
    b.on_candle(flat(5, 50_000.0))  # l1 expires
    assert b.take_outbox()[1] == ["l2", "l1"]
    assert set(b.orders) == {"l1", "l2"}
    b.on_candle(flat(6, 50_000.0))
    assert b.take_outbox()[1] == []  # asked once
    b.apply_status(ExchangeStatus("l2", "cancelled", T0 + 6 * MIN, "exchange: canceled"))
    b.apply_status(ExchangeStatus("l1", "expired", T0 + 6 * MIN))
    events, _ = b.drain()
    assert kinds(events) == ["order_cancelled", "order_expired"] and b.orders == {}


def test_the_same_inputs_give_the_same_books() -> None:
    def run() -> list[dict[str, Any]]:
        b = primed()
        out = []
        b.submit(buy("e1", 0.01), T0)
        b.apply_fill(ExchangeFill("e1", Side.BUY, 0.01, 50_000.0, 0.3, T0, "taker"))
        b.on_candle(flat(1, 50_500.0))
        b.submit(sell("x1", 0.01, reduce_only=True), T0 + MIN)
        b.apply_fill(ExchangeFill("x1", Side.SELL, 0.01, 50_490.0, 0.3, T0 + MIN, "taker"))
        events, _ = b.drain()
        out += [e.to_dict() for e in events]
        out.append({"state": repr(b.state())})
        return out

    assert run() == run()


def test_max_leverage_and_the_daily_loss_refuse_before_a_send() -> None:
    b = live(equity=1_000.0, max_leverage=2.0)
    b.on_candle(flat(0, 50_000.0))
    b.drain()
    b.submit(buy("lev", 0.05), T0)  # 2 500 notional on 1 000 equity: 2.5x
    b.submit(buy("fits", 0.03), T0)  # 1 500: 1.5x
    events, _ = b.drain()
    assert [(o["client_id"], o["status"], o["reason"]) for o in of_kind(events, "order")] == [
        ("lev", "rejected", "max_leverage"), ("fits", "submitted", "")]
    b.apply_fill(ExchangeFill("fits", Side.BUY, 0.03, 50_000.0, 0.9, T0, "taker"))
    b.take_outbox()
    b.on_candle(flat(1, 48_000.0))  # -60 on 1 000: beyond the 5 % daily loss
    b.drain()
    b.submit(buy("more", 0.001), T0 + MIN)
    b.submit(sell("out", 0.03, reduce_only=True), T0 + MIN)  # exits stay allowed
    events, _ = b.drain()
    assert [(o["client_id"], o["status"]) for o in of_kind(events, "order")] == [
        ("more", "rejected"), ("out", "submitted")]
    assert [o.client_id for o in b.take_outbox()[0]] == ["out"]


def test_paper_and_live_refuse_the_same_intents_for_the_same_reasons() -> None:
    """Both brokers take intents through one intake: each refusal, and the
    note of what passes, is the same in both (only the status of an accepted
    order differs: the paper broker trades it, the live one sends it)."""
    cases: list[tuple[str, list[OrderIntent], str]] = [
        ("no price yet", [buy("n", 0.01)], "rejected no_price_yet"),
        ("below minimum size", [buy("m", 0.00001)], "rejected min_qty"),
        ("below minimum notional", [buy("t", 0.001, price=1.0)], "rejected min_notional"),
        ("stop on the wrong side", [buy("s", 0.01, stop=51_000.0)], "rejected stop_on_wrong_side"),
        ("target on the wrong side", [buy("g", 0.01, target=49_000.0)], "rejected target_on_wrong_side"),
        ("over the position cap", [buy("c", 1.0)], "rejected max_notional"),
        ("a processed id", [buy("d", 0.01), buy("d", 0.01)], "duplicate client id already processed"),
        ("orders per minute", [buy("r1", 0.01), buy("r2", 0.01), buy("r3", 0.01)], "rejected max_orders_per_minute"),
        ("accepted", [buy("a", 0.01, stop=49_000.0, reason="entry")], "* entry"),
    ]
    for name, intents, expected in cases:
        risk = {"max_position_notional": 5_000.0, "max_orders_per_minute": 2}
        paper = make_broker(risk=risk)
        brokers: list[PaperBroker] = [paper, live(**risk)]
        seen = []
        for b in brokers:
            if name != "no price yet":
                b.on_candle(flat(0, 50_000.0))
                b.drain()
            for intent in intents:
                b.submit(intent, T0 + MIN)
            b.submit(CancelIntent("unknown"), T0 + MIN)  # nothing to cancel: no event in either
            events, _ = b.drain()
            last = of_kind(events, "order")[-1]
            seen.append((last["client_id"], last["status"], last["reason"]))
        (pcid, pstatus, preason), (lcid, lstatus, lreason) = seen
        assert pcid == lcid == intents[-1].client_id, name
        assert preason == lreason, name
        if expected.startswith("*"):
            assert (pstatus, lstatus) == ("accepted", "submitted"), name
            assert preason == expected[2:], name
        else:
            assert pstatus == lstatus and f"{pstatus} {preason}" == expected, name
