"""The EngineState codec: plain data only, versioned, stable, and refusing
anything that names a class (on write and on read)."""

from __future__ import annotations

import pickle
import pickletools
from enum import Enum
from typing import Any

import pytest

from laptop_agents.broker.state import BrokerState, Position, WorkingOrder
from laptop_agents.config import AppConfig
from laptop_agents.domain.models import FundingRate, OrderType, Side
from laptop_agents.engine import Engine, EngineState, EngineStateError, build_engine
from laptop_agents.engine.state import (
    STATE_VERSION,
    StateEncoder,
    decode_state,
    decode_v1,
    encode_state,
    plain_dumps,
    plain_loads,
)
from laptop_agents.sources.synthetic import SyntheticMarket
from tests.broker.helpers import T0
from tests.engine.scripted import ChurnStrategy

POS = Position(0.5, 100.0, T0, "c-1", 95.0, 110.0, True, 5.0, False, 0.5, 0.0, 0.03, 0.0, 0.0, 0.0)
ORDER = WorkingOrder("w-1", Side.SELL, OrderType.LIMIT, 0.25, 0.0, 105.0, None, None, False, True, "tp", T0, T0 + 60)
BROKER = BrokerState(
    10_000.0, 9_999.97, 0.0, 0.03, 0.0, 0, 1, POS, 0.0001, 100.5, T0, 12.0, T0 + 28_800_000, T0 + 86_400_000,
    10_000.0, False, "", 0, 0, (T0,), (ORDER,),
)  # fmt: skip
STATE = EngineState(T0, FundingRate(T0 - 1, 0.0001), BROKER, ("churn/1", 3, [1.5, None], {"k": (True, "x")}))


def _globals(blob: bytes) -> list[str]:
    return [op.name for op, _, _ in pickletools.genops(blob) if "GLOBAL" in op.name or op.name == "REDUCE"]


def test_round_trip_with_the_working_orders_kept_apart() -> None:
    blob = encode_state(STATE)
    assert _globals(blob) == []  # no class reference anywhere in the bytes
    assert decode_state(blob, [ORDER]) == STATE
    assert decode_state(blob).broker.orders == ()
    assert STATE.version == STATE_VERSION == plain_loads(blob)[0]


def test_the_encoding_is_stable() -> None:
    """The bytes of a known state: a change of layout must come with a new
    version (and a migration), never silently."""
    plain = plain_loads(encode_state(STATE))
    assert plain == (
        2, T0, (T0 - 1, 0.0001),
        (10_000.0, 9_999.97, 0.0, 0.03, 0.0, 0, 1,
         (0.5, 100.0, T0, "c-1", 95.0, 110.0, True, 5.0, False, 0.5, 0.0, 0.03, 0.0, 0.0, 0.0),
         0.0001, 100.5, T0, 12.0, T0 + 28_800_000, T0 + 86_400_000, 10_000.0, False, "", 0, 0, (T0,)),
        ("churn/1", 3, [1.5, None], {"k": (True, "x")}),
    )  # fmt: skip
    assert ORDER.to_row() == ("w-1", "SELL", "LIMIT", 0.25, 0.0, 105.0, None, None, False, True, "tp", T0, T0 + 60)
    assert WorkingOrder.from_row(ORDER.to_row()) == ORDER


def test_the_reusable_encoder_writes_the_same_bytes_every_time() -> None:
    enc = StateEncoder()
    other = STATE._replace(last_candle_ts=T0 + 1, strategy=("x/1",))
    assert enc.encode(STATE) == encode_state(STATE)
    assert enc.encode(other) == encode_state(other)
    with pytest.raises(EngineStateError):
        enc.encode(STATE._replace(strategy=("x/1", Side.BUY)))
    assert enc.encode(STATE) == encode_state(STATE)  # a refused state leaves nothing behind


class Color(Enum):
    RED = "red"


@pytest.mark.parametrize("bad", [Color.RED, Side.BUY, FundingRate(1, 0.0), object()])
def test_a_strategy_state_that_is_not_plain_data_is_refused_on_write(bad: Any) -> None:
    with pytest.raises(EngineStateError, match=r"snapshot_state\(\) holds a value that .* is not plain data"):
        encode_state(STATE._replace(strategy=("tag/1", [bad])))


def test_a_blob_naming_a_class_is_refused_and_never_built() -> None:
    built: list[str] = []

    class Trap:
        def __reduce__(self) -> Any:
            return (built.append, ("executed",))

    evil = pickle.dumps((2, None, None, Trap(), ()))
    with pytest.raises(EngineStateError, match="unreadable"):
        decode_state(evil)
    assert built == []
    with pytest.raises(EngineStateError, match="unreadable"):
        decode_state(b"\x80\x05garbage")
    with pytest.raises(EngineStateError, match="version 1 is not supported"):
        decode_state(plain_dumps((1, None, None, (), ())))
    with pytest.raises(EngineStateError, match="another shape"):
        decode_state(plain_dumps((2, None, None, (1, 2, 3), ())))


def test_version_1_blobs_decode_to_the_same_state() -> None:
    v1_broker = (
        1, 10_000.0, 9_999.97, 0.0, 0.03, 0.0, 0.0001, 100.5, T0, 12.0, T0 + 86_400_000, T0 + 28_800_000,
        10_000.0, False, "", 0, 0, (T0,), tuple(POS), 0, 1,
    )  # fmt: skip
    core = pickle.dumps((T0, (T0 - 1, 0.0001), v1_broker), 5)
    strategy = pickle.dumps(("state", STATE.strategy), 5)
    assert decode_v1(core, strategy, [ORDER]) == STATE
    with pytest.raises(EngineStateError, match="pickled object .* fresh workspace"):
        decode_v1(core, b"LA-REFS1" + pickle.dumps(object()))
    with pytest.raises(EngineStateError, match="unreadable"):
        decode_v1(core, pickle.dumps(("objects", 1)))


def test_engine_state_and_from_state_continue_identically() -> None:
    candles = SyntheticMarket(5, T0).candles(0, 2000)
    ref = build_engine(AppConfig(), ChurnStrategy(5))
    for c in candles:
        ref.on_candle(c)
    e = build_engine(AppConfig(), ChurnStrategy(5))
    for c in candles[:777]:
        e.on_candle(c)
    assert len(e.broker.state()) == len(BrokerState._fields)  # built with tuple.__new__ on the hot path
    assert e.broker.state()._asdict()["fill_count"] == e.broker.fill_count
    state = decode_state(encode_state(e.state()), e.state().broker.orders)
    again = Engine.from_state(AppConfig(), ChurnStrategy(0), state, e.broker.processed_ids)
    assert again.state() == e.state() and again.status() == e.status()
    for c in candles[777:]:
        again.on_candle(c)
    assert again.status() == ref.status() and again.state() == ref.state()
