"""Typed events: one record per kind, one JSON edge (``to_dict``) and the way back."""

from __future__ import annotations

import json

import pytest

from laptop_agents.domain.events import (
    EVENT_TYPES,
    AgentError,
    BreakerReset,
    BreakerTrip,
    Decision,
    Event,
    FillEvent,
    Funding,
    Journal,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    Reconciled,
    SessionEvent,
    TradeClosed,
    event_from_dict,
)
from laptop_agents.domain.models import OrderType, Side
from laptop_agents.store.journal import encode_event

# One of each kind, and the JSON fields (after ts and kind) events.jsonl has always carried.
SAMPLES: list[tuple[Event, list[str]]] = [
    (OrderEvent(1, "c-1", Side.BUY, OrderType.LIMIT, 0.5, 100.0, 90.0, None, "working", "pullback"),
     ["client_id", "side", "type", "qty", "price", "stop", "target", "status", "reason"]),
    (FillEvent(2, "c-1", Side.SELL, 0.5, 101.0, 0.03, "maker", "exit"),
     ["client_id", "side", "qty", "price", "fee", "liquidity", "reason"]),
    (TradeClosed(3, "short", 0.5, 1, 100.0, 3, 99.0, 0.5, 0.06, 0.01, 0.43, "target", "c-1"),
     ["side", "qty", "entry_ts", "entry_price", "exit_ts", "exit_price", "pnl", "fees", "funding", "net_pnl",
      "exit_reason", "client_id"]),
    (OrderCancelled(4, "c-2", "breaker"), ["client_id", "reason"]),
    (OrderExpired(5, "c-3", 5, 0.25), ["client_id", "expire_ts", "remaining_qty"]),
    (Funding(6, 0.0001, 0.5, 0.1, 0, 50_000.0), ["rate", "amount", "position_qty", "boundary_ts", "price"]),
    (BreakerTrip(7, "drawdown", 5.2, 86_400_000), ["reason", "value", "until_ts"]),
    (BreakerReset(8, 9_500.0), ["day_start_equity"]),
    (Decision(9, "enter", "pullback", "BUY", 0.1, "d-9-0", {"setup": "pullback", "rr": 2.0}),
     ["setup", "rr", "action", "reason", "side", "qty", "client_id"]),
    (Journal(10, "plan filled", ("filled", "sweep"), "d-9-0"), ["text", "tags", "plan_id"]),
    (AgentError(11, "setup_signal", "KeyError: 'x'"), ["agent", "error"]),
    (SessionEvent(12, "stop", {"reason": "kill_switch", "exit_code": 0, "detail": None}),
     ["event", "reason", "exit_code", "detail"]),
    (Reconciled(13, "filled_while_down", "c-4", "0.01 at 100.0"), ["what", "client_id", "detail"]),
]  # fmt: skip


def test_every_kind_has_a_sample() -> None:
    assert {type(e) for e, _ in SAMPLES} == set(EVENT_TYPES.values())
    assert {e.kind for e, _ in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize(("event", "keys"), SAMPLES, ids=[e.kind for e, _ in SAMPLES])
def test_to_dict_is_the_journal_shape_and_comes_back(event: Event, keys: list[str]) -> None:
    d = event.to_dict()
    assert list(d) == ["ts", "kind", *keys]
    assert d["ts"] == event.ts and d["kind"] == event.kind
    # plain JSON values only (enums as their strings, tuples as lists)
    assert json.loads(json.dumps(d)) == d
    assert event_from_dict(d) == event
    assert event_from_dict(json.loads(encode_event(event))) == event


def test_a_decision_omits_the_fields_it_does_not_set() -> None:
    d = Decision(1, "cancel", "pending_expired", client_id="x-1").to_dict()
    assert d == {"ts": 1, "kind": "decision", "action": "cancel", "reason": "pending_expired", "client_id": "x-1"}
    block = Decision(2, "block", "entries_blocked", "SELL", context={"setup": "sma_cross", "fast": 1.5})
    assert list(block.to_dict()) == ["ts", "kind", "setup", "fast", "action", "reason", "side"]


def test_agent_error_text_is_one_line_with_the_exception_type() -> None:
    assert AgentError.from_exception(1, "a", RuntimeError("boom\nsecond line")).error == "RuntimeError: boom"
    assert AgentError.from_exception(1, "a", KeyError()).error == "KeyError"
    long = AgentError.from_exception(1, "a", ValueError("x" * 1000))
    assert long.error.startswith("ValueError: xxx") and len(long.error) == 300


def test_events_are_immutable_records() -> None:
    ev = OrderCancelled(1, "c", "x")
    with pytest.raises(AttributeError):
        ev.reason = "y"  # type: ignore[misc]
    assert ev == OrderCancelled(1, "c", "x") and ev != OrderCancelled(2, "c", "x")


def test_a_bad_event_dict_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'nope'"):
        event_from_dict({"ts": 1, "kind": "nope"})
    with pytest.raises(ValueError, match="order_cancelled event"):
        event_from_dict({"ts": 1, "kind": "order_cancelled", "client_id": "c"})
    with pytest.raises(ValueError):
        event_from_dict({"ts": 1, "kind": "fill", "client_id": "c", "side": "UP", "qty": 1.0, "price": 1.0,
                         "fee": 0.0, "liquidity": "maker", "reason": ""})
