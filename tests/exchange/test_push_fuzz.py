"""Property tests: the push parser raises nothing but BadFrameError on random
and mutated frames, and the candle assembler never emits a candle at or
before the last one, whatever order, duplicates or gaps the pushes come in."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laptop_agents.domain.models import Candle
from laptop_agents.exchange.errors import BadFrameError
from laptop_agents.exchange.feed import KlineAssembler
from laptop_agents.exchange.parsers import KlinePush, parse_push

BASE = 1_699_999_980_000
VALID = [
    {"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": BASE + 1234,
     "data": {"o": "60000", "h": "60010", "l": "59990", "c": "60005", "b": "1.5", "q": "90000"}},
    {"ch": "ticker", "symbol": "BTCUSDT", "ts": BASE + 5,
     "data": {"s": "BTCUSDT", "o": "59000", "h": "61000", "l": "58000", "la": "60000.5", "b": "10", "q": "1", "r": "0.01"}},
    {"ch": "price", "symbol": "BTCUSDT", "ts": BASE + 7,
     "data": {"ip": "60000", "mp": "60001", "fr": "0.01", "ft": BASE, "nft": BASE + 28_800_000}},
    {"op": "ping", "pong": 1_700_000_000, "ping": 1_700_000_001},
    {"op": "connect", "data": {"result": True}},
]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
odd_numbers = st.sampled_from(
    ["", " ", "1e999", "-0", "nan", "NaN", "inf", "0x10", "1_000", "١٢٣", "9" * 400, "1.2.3", "+.5", "-1", "0"]
)


def _parse(raw: str | bytes) -> None:
    try:
        parse_push(raw)
    except BadFrameError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_random_text_and_bytes(raw: str | bytes) -> None:
    _parse(raw)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_values(value: Any) -> None:
    _parse(json.dumps(value, allow_nan=True))


def _mutate(obj: Any, path: list[Any], value: Any, delete: bool) -> Any:
    """Replace or delete the node at ``path`` (a deep copy is mutated)."""
    root = json.loads(json.dumps(obj))
    node = root
    for key in path[:-1]:
        node = node[key]
    if delete and isinstance(node, dict):
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return root


def _paths(obj: Any, prefix: list[Any]) -> list[list[Any]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, [*prefix, k]))
    return out


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_mutated_valid_frames(data: st.DataObject) -> None:
    frame = data.draw(st.sampled_from(VALID))
    path = data.draw(st.sampled_from(_paths(frame, [])))
    value = data.draw(json_values | odd_numbers)
    delete = data.draw(st.booleans())
    mutated = _mutate(frame, path, value, delete)
    text = json.dumps(mutated, allow_nan=True)
    _parse(text)
    # Truncations and byte flips of the valid text as well.
    cut = data.draw(st.integers(0, len(text)))
    _parse(text[:cut])
    flip = data.draw(st.integers(0, max(0, len(text) - 1)))
    raw = bytearray(text.encode())
    if raw:
        raw[flip] ^= data.draw(st.integers(1, 255))
    _parse(bytes(raw))


# -- assembler -----------------------------------------------------------------
IV = 60_000


def _push(index: int, offset: int, price: float) -> KlinePush:
    open_ts = BASE + index * IV
    c = Candle(open_ts, price, price + 5, price - 5, price + 1, 1.0)
    return KlinePush(open_ts + offset, "BTCUSDT", "1m", c)


events = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 40), st.integers(0, IV - 1), st.floats(50_000, 70_000)),
        st.tuples(st.just("disconnect"), st.just(0), st.just(0), st.just(0.0)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(events, st.integers(-1, 10))
def test_assembler_emits_strictly_increasing(seq: list[tuple[str, int, int, float]], warm: int) -> None:
    asm = KlineAssembler("1m", max_gap_bars=30, max_backfill_attempts=2)
    emitted: list[int] = []
    if warm >= 0:
        asm.prime([Candle(BASE + i * IV, 1.0, 1.0, 1.0, 1.0, 0.0) for i in range(warm + 1)])
        emitted.append(BASE + warm * IV)
    for kind, index, offset, price in seq:
        if kind == "disconnect":
            asm.on_disconnect()
            continue
        step = asm.on_push(_push(index, offset, round(price, 1)))
        for c in step.emit:
            assert not emitted or c.ts > emitted[-1], "a candle at or before the last emitted one"
            assert c.ts < BASE + index * IV, "a candle emitted before it closed"
            emitted.append(c.ts)
        if step.backfill is not None:
            lo, hi = step.backfill
            assert lo <= hi < BASE + index * IV
            assert not emitted or lo > emitted[-1]
            # REST answers with the closed candles of the range, sometimes not all of them.
            fetched = [Candle(t, 1.0, 1.0, 1.0, 1.0, 0.0) for t in range(lo, hi + 1, IV) if (t // IV) % 3 != 1]
            out, _note = asm.on_backfill(fetched, lo, hi)
            for c in out:
                assert not emitted or c.ts > emitted[-1]
                emitted.append(c.ts)
