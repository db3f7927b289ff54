"""The Engine's state as one versioned, typed record, and its plain-data codec.

:class:`EngineState` is everything an Engine needs to continue exactly where
it stopped: the last processed candle, the last funding update, the broker's
:class:`~laptop_agents.broker.state.BrokerState` and the strategy's
``snapshot_state()``. The processed client ids live beside it (an ever-growing
set: the store appends them as rows, the snapshot lists them).

The encoding holds plain data only — tuples, lists, dicts, str, int, float,
bool, None, bytes — and never a class reference: moving or renaming a module
can never make a stored state unreadable, and no stored file can make the
loader build an object. It is pickle (protocol 5) of those plain values,
written by a pickler that refuses anything else and read by an unpickler that
refuses every global: the fastest encoding of plain tuples in the standard
library (a state is written every candle; JSON costs 15 times more).

Formats, each tagged by its version:

- version 2 (this one): ``(2, last_candle_ts, (funding ts, rate) | None,
  BrokerState.to_plain(), strategy snapshot)``; working orders are kept apart
  (the store's rows) and passed to :func:`decode_state`.
- version 1 (state-store schema 1): two blobs, the pickled
  ``(last_candle_ts, funding, 21-field broker tuple)`` and
  ``("state", strategy snapshot)``; read by :func:`decode_v1` to migrate.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from typing import Any, NamedTuple

from laptop_agents.broker.state import BrokerState, WorkingOrder
from laptop_agents.domain.contracts import StateTuple
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.models import FundingRate

STATE_VERSION = 2
_PROTOCOL = 5
_V1_REFS_MAGIC = b"LA-REFS1"  # schema-1 strategies without snapshot_state: pickled objects


class EngineStateError(LaptopAgentsError, ValueError):
    """A snapshot or stored state that does not belong to this configuration
    (other symbol, other strategy) or cannot be read."""


class EngineState(NamedTuple):
    """Everything but the processed ids that an Engine continues from (see the module docstring)."""

    last_candle_ts: int | None
    funding: FundingRate | None
    broker: BrokerState
    strategy: StateTuple
    version: int = STATE_VERSION


# ---------------------------------------------------------------- plain data


class _PlainPickler(pickle.Pickler):
    # The C pickler writes None, bools, ints, floats, str, bytes, tuples,
    # lists, dicts and sets itself and asks this hook about everything else.
    def reducer_override(self, obj: Any) -> Any:
        raise TypeError(f"{type(obj).__module__}.{type(obj).__qualname__} is not plain data")


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a stored state may not name a class ({module}.{name})")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a stored state may not hold references")


def plain_dumps(value: Any) -> bytes:
    """``value`` as bytes; ``TypeError`` naming the first value that is not plain data."""
    buf = io.BytesIO()
    _PlainPickler(buf, _PROTOCOL).dump(value)
    return buf.getvalue()


class StateEncoder:
    """:func:`encode_state` for a caller that encodes every candle (the state
    store): one pickler and buffer, reused. Building a pickler costs about as
    much as pickling a small state, so this saves a microsecond a candle.
    Not thread-safe: one per store, used by the thread that commits."""

    __slots__ = ("_buf", "_pickler")

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._pickler = _PlainPickler(self._buf, _PROTOCOL)

    def encode(self, state: EngineState) -> bytes:
        """The same bytes as :func:`encode_state`."""
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        self._pickler.clear_memo()
        try:
            self._pickler.dump(state_to_plain(state))
        except TypeError as exc:
            raise EngineStateError(f"the strategy's snapshot_state() holds a value that {exc}") from None
        return buf.getvalue()


def plain_loads(blob: bytes) -> Any:
    """The inverse of :func:`plain_dumps`; refuses any blob that names a class."""
    return _PlainUnpickler(io.BytesIO(blob)).load()


# ---------------------------------------------------------------- version 2


def state_to_plain(state: EngineState) -> tuple[Any, ...]:
    """The state as plain values, working orders aside."""
    f = state.funding
    return (STATE_VERSION, state.last_candle_ts, None if f is None else (f.ts, f.rate), state.broker.to_plain(),
            state.strategy)  # fmt: skip


def state_from_plain(plain: Any, orders: Sequence[WorkingOrder] = ()) -> EngineState:
    """The inverse of :func:`state_to_plain`; :class:`EngineStateError` for anything else."""
    if not isinstance(plain, tuple) or not plain or plain[0] != STATE_VERSION:
        version = plain[0] if isinstance(plain, tuple) and plain else None
        raise EngineStateError(f"engine state version {version!r} is not supported (expected {STATE_VERSION})")
    try:
        _, last, funding, broker, strategy = plain
        return EngineState(
            last, None if funding is None else FundingRate(int(funding[0]), float(funding[1])),
            BrokerState.from_plain(broker, tuple(orders)), strategy,
        )  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise EngineStateError(f"engine state of another shape: {exc}") from None


def encode_state(state: EngineState) -> bytes:
    """The bytes the state store writes each candle (working orders are its rows)."""
    try:
        return plain_dumps(state_to_plain(state))
    except TypeError as exc:
        raise EngineStateError(f"the strategy's snapshot_state() holds a value that {exc}") from None


def decode_state(blob: bytes, orders: Sequence[WorkingOrder] = ()) -> EngineState:
    """The inverse of :func:`encode_state`, with the stored working orders."""
    try:
        plain = plain_loads(blob)
    except Exception as exc:
        raise EngineStateError(f"engine state is unreadable: {type(exc).__name__}: {exc}") from None
    return state_from_plain(plain, orders)


# ---------------------------------------------------------------- version 1


def decode_v1(core: bytes, strategy: bytes, orders: Sequence[WorkingOrder] = ()) -> EngineState:
    """The two blobs of a schema-1 store as a current :class:`EngineState`.

    Their pickles hold plain tuples only, so they are read with the same
    class-refusing unpickler. A schema-1 strategy without ``snapshot_state``
    was stored as a pickled object; that cannot be continued and is refused."""
    if strategy.startswith(_V1_REFS_MAGIC):
        raise EngineStateError(
            "the stored strategy state is a pickled object of the schema-1 release (a strategy without "
            "snapshot_state), which this version cannot read; use a fresh workspace"
        )
    try:
        last, funding, broker = plain_loads(core)
        mode, snapshot = plain_loads(strategy)
        if mode != "state":
            raise ValueError(f"unknown strategy snapshot mode {mode!r}")
        return EngineState(
            last, None if funding is None else FundingRate(int(funding[0]), float(funding[1])),
            BrokerState.from_v1(broker, tuple(orders)), snapshot,
        )  # fmt: skip
    except EngineStateError:
        raise
    except Exception as exc:
        raise EngineStateError(f"schema-1 engine state is unreadable: {type(exc).__name__}: {exc}") from None
