"""fast_init: the same instances as the dataclass constructors, cheaper."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from laptop_agents.domain.events import Decision, FillEvent
from laptop_agents.domain.fast import fast_init
from laptop_agents.domain.models import Candle, DomainError, Fill, OrderIntent, OrderType, Side

new_intent = fast_init(OrderIntent)
new_decision = fast_init(Decision)
new_fill_event = fast_init(FillEvent)
new_fill = fast_init(Fill)
trusted_candle = fast_init(Candle, validate=False)


def test_builds_equal_instances_with_the_same_defaults() -> None:
    cases = [
        (new_intent("a-1", Side.BUY, OrderType.LIMIT, 1.5, price=10.0, stop=9.0, trailing=True),
         OrderIntent("a-1", Side.BUY, OrderType.LIMIT, 1.5, price=10.0, stop=9.0, trailing=True)),
        (new_intent("a-2", Side.SELL, OrderType.MARKET, 2.0), OrderIntent("a-2", Side.SELL, OrderType.MARKET, 2.0)),
        (new_decision(5, "enter", "x", context={"qty": 1.0}), Decision(5, "enter", "x", context={"qty": 1.0})),
        (new_fill_event(5, "c", Side.BUY, 1.0, 2.0, 0.1, "taker", "entry"),
         FillEvent(5, "c", Side.BUY, 1.0, 2.0, 0.1, "taker", "entry")),
        (new_fill(1, "c", Side.BUY, 1.0, 2.0, 0.1, "taker"), Fill(1, "c", Side.BUY, 1.0, 2.0, 0.1, "taker")),
        (trusted_candle(1, 2.0, 3.0, 1.0, 2.5, 0.0), Candle(1, 2.0, 3.0, 1.0, 2.5, 0.0)),
    ]  # fmt: skip
    for fast, slow in cases:
        assert type(fast) is type(slow)
        assert fast == slow and repr(fast) == repr(slow)
        if not isinstance(fast, Decision):  # a Decision holds a dict: unhashable either way
            assert hash(fast) == hash(slow)
        assert pickle.loads(pickle.dumps(fast)) == slow
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(fast, dataclasses.fields(fast)[0].name, 0)


def test_default_factory_gives_a_fresh_value_each_time() -> None:
    a, b = new_decision(1, "x"), new_decision(1, "x")
    assert a.context == {} and a.context is not b.context


def test_inherited_fields_of_a_slots_base_are_set() -> None:
    """The events' ``ts`` is a slot of their base class."""
    ev = new_fill_event(7, "c", Side.SELL, 1.0, 2.0, 0.1, "maker", "exit")
    assert ev.ts == 7 and ev.kind == "fill" and ev == FillEvent(7, "c", Side.SELL, 1.0, 2.0, 0.1, "maker", "exit")


def test_validation_runs_unless_the_caller_validated_already() -> None:
    with pytest.raises(DomainError, match="qty must be > 0"):
        new_intent("a", Side.BUY, OrderType.MARKET, 0.0)
    with pytest.raises(DomainError, match="LIMIT order needs a positive price"):
        new_intent("a", Side.BUY, OrderType.LIMIT, 1.0)
    with pytest.raises(DomainError, match="low must be > 0"):
        fast_init(Candle)(1, 1.0, 1.0, 0.0, 1.0, 0.0)
    assert trusted_candle(1, 1.0, 1.0, 0.0, 1.0, 0.0).low == 0.0  # the caller's promise, not checked


def test_missing_argument_is_a_type_error_like_the_dataclass() -> None:
    with pytest.raises(TypeError):
        new_fill(1, "c")


def test_refuses_classes_it_cannot_reproduce() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Computed:
        x: int
        y: int = dataclasses.field(init=False, default=0)

    for cls in (NoSlots, Computed, int):
        with pytest.raises(TypeError):
            fast_init(cls)  # type: ignore[arg-type]
