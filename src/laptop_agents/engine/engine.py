"""The Engine: the one object that backtest, replay and live all drive.

One closed candle (or a tick, or a funding update) goes in; the decisions,
orders, fills, journal entries and the new account state come out as a
:class:`~laptop_agents.domain.contracts.StepResult`. The Engine does no I/O and
never reads the clock, so the caller decides how to persist (the state store
commits one transaction per candle) and a replay reproduces a live session byte
for byte. Parity between modes is by construction: there is no second engine.

Idempotence per candle is the crash-only rule: a candle at or before
``last_candle_ts`` is skipped, so a restart that sees candles again (websocket
snapshot, REST backfill, a replay read from the start) never counts one twice.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from typing import Any, NamedTuple

from laptop_agents.broker.paper import DEFAULT_STARTING_EQUITY, PaperBroker, WorkingOrder
from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import StepResult, Strategy, StrategyOutput
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    Event,
    Fill,
    FundingRate,
    OrderIntent,
    Tick,
)
from laptop_agents.domain.symbols import instrument_for

SNAPSHOT_VERSION = 1
_INTENTS = (OrderIntent, CancelIntent)
_PICKLE = pickle.HIGHEST_PROTOCOL if pickle.HIGHEST_PROTOCOL >= 5 else 5


class EngineStateError(LaptopAgentsError, ValueError):
    """A snapshot or stored state that does not belong to this configuration
    (other symbol, other strategy) or cannot be read."""


def starting_equity(config: AppConfig, strategy: object | None = None) -> float:
    """The account's starting equity in quote currency (USD/USDT):
    ``risk.starting_equity`` when configured, else the strategy file's
    ``risk.equity`` (read from the strategy's parameters, so the broker and the
    strategy's sizing agree), else 10 000."""
    if config.risk.starting_equity is not None:
        return float(config.risk.starting_equity)
    equity = getattr(getattr(getattr(strategy, "params", None), "risk", None), "equity", None)
    if isinstance(equity, int | float) and not isinstance(equity, bool) and equity > 0:
        return float(equity)
    return DEFAULT_STARTING_EQUITY


class PersistPayload(NamedTuple):
    """What changed since the last successful commit, for the state store.

    ``orders`` is None when the working orders did not change (the store then
    leaves their rows alone); ``new_ids`` are client ids seen since then.
    A named tuple: built once per candle, and a frozen dataclass costs a
    microsecond more to construct."""

    last_candle_ts: int | None
    core: bytes
    strategy: bytes
    new_ids: tuple[str, ...]
    orders: tuple[tuple[Any, ...], ...] | None


class Engine:
    """Strategy + paper broker + event ordering for one symbol.

    ``engine.strategy`` is the live strategy object: after :meth:`restore` (or
    a load from the store) it may be the unpickled stored one rather than the
    instance passed in, because strategies keep their state in attributes.
    """

    def __init__(self, config: AppConfig, strategy: Strategy, broker: PaperBroker | None = None) -> None:
        self.config = config
        self.strategy = strategy
        self.instrument = instrument_for(config.trading.symbol)
        self.broker = broker or PaperBroker(
            self.instrument, config.broker, config.risk, starting_equity(config, strategy)
        )
        self.last_candle_ts: int | None = None
        self.funding: FundingRate | None = None
        # Events produced outside a step (a strategy error on a funding update,
        # expiry on load); they go out with the next StepResult, so they are
        # committed and journaled with it.
        self._pending: list[Event] = []
        self._refs: _ConfigRefs | None = None

    # ------------------------------------------------------------------ inputs
    def on_candle(self, candle: Candle) -> StepResult:
        """Process one closed candle: broker first (what the market did to the
        account during the bar), then the strategy decides on the close with
        an :class:`AccountView`, then its intents go to the broker.

        This runs once per candle of every backtest, so the quiet path (no
        broker event, no intent) does no more than it must: the account view
        is built in one pass and its equity reused for the result."""
        ts = candle.ts
        last = self.last_candle_ts
        b = self.broker
        if last is not None and ts <= last:
            return StepResult(ts=ts, processed=False, equity=b.equity(), position_qty=b.position_qty)
        events: list[Event] = self._pending
        self._pending = []
        fills: list[Fill] = []
        b.on_candle(candle)
        if b.position is not None or b.events:
            b.check_breaker(ts)
        if b.events:
            self._relay(events, fills)
        view = b.account_view(ts)
        strategy = self.strategy
        try:
            out = strategy.on_candle(candle, view)
        except Exception as exc:  # an agent that raises must not take the session down
            events.append(_agent_error(ts, strategy.name, exc))
            out = None
        submitted = False
        if out is not None:
            if not isinstance(out, StrategyOutput):
                events.append(
                    _agent_error(ts, strategy.name, TypeError(f"on_candle returned {type(out).__name__}"))
                )
            else:
                if out.events:
                    events.extend(out.events)
                for intent in out.intents:
                    if not isinstance(intent, _INTENTS):
                        events.append(_agent_error(ts, strategy.name, TypeError(f"bad intent {intent!r}")))
                        continue
                    submitted = True
                    b.submit(intent, ts)
                    if b.events:
                        self._relay(events, fills)
                if fills:
                    b.check_breaker(ts)
                    if b.events:
                        self._relay(events, fills)
        self.last_candle_ts = ts
        pos = b.position
        return StepResult(
            ts,
            True,
            events,
            fills,
            b.equity() if submitted else b.view_equity,
            pos.qty if pos is not None else 0.0,
        )

    def warmup(self, candle: Candle) -> StepResult:
        """Feed a historical candle without trading on it: the strategy only
        updates its indicators, while the broker still applies what the bar did
        to an existing position (stops, targets, funding, expiry). Used for
        backfill before trading and for bars missed while the process was down,
        which must not be traded at stale prices."""
        ts = candle.ts
        b = self.broker
        if self.last_candle_ts is not None and ts <= self.last_candle_ts:
            return StepResult(ts=ts, processed=False, equity=b.equity(), position_qty=b.position_qty)
        events: list[Event] = self._pending
        self._pending = []
        fills: list[Fill] = []
        b.on_candle(candle)
        b.check_breaker(ts)
        self._relay(events, fills)
        try:
            self.strategy.warmup(candle)
        except Exception as exc:
            events.append(_agent_error(ts, self.strategy.name, exc))
        self.last_candle_ts = ts
        return StepResult(
            ts=ts, processed=True, events=events, fills=fills, equity=b.equity(), position_qty=b.position_qty
        )

    def on_tick(self, tick: Tick) -> None:
        """Remember the touch for market fills; nothing durable changes."""
        self.broker.tick = tick

    def on_funding(self, funding: FundingRate) -> None:
        """The latest funding rate: charged at the next 8-hour boundary and
        passed to the strategy (its derivatives gate)."""
        self.funding = funding
        self.broker.funding_rate = funding.rate
        try:
            self.strategy.on_funding(funding)
        except Exception as exc:
            self._pending.append(_agent_error(funding.ts, self.strategy.name, exc))

    def shutdown(self, ts: int, *, flatten: bool, reason: str) -> StepResult:
        """Kill switch / signal: cancel every working order and, if asked,
        close the position at the last price. The caller commits the result."""
        b = self.broker
        events: list[Event] = self._pending
        self._pending = []
        fills: list[Fill] = []
        for cid in list(b.orders):
            b.cancel(cid, ts, reason)
        if flatten:
            b.flatten(ts)
        self._relay(events, fills)
        return StepResult(
            ts=ts, processed=True, events=events, fills=fills, equity=b.equity(), position_qty=b.position_qty
        )

    @property
    def entries_paused(self) -> bool:
        return self.broker.entries_paused

    def set_entries_paused(self, paused: bool) -> None:
        """The operator's pause: no new entries (opening, adding, reversing; a
        resting entry that reaches its price is cancelled) while exits, stops and
        targets keep working, exactly like a tripped breaker. An input from the
        shell between steps, like a funding rate: the core reads no file for it.
        It is not engine state (not in a snapshot or ``state.db``); the live
        session keeps it in the workspace so a restart keeps it too."""
        self.broker.entries_paused = bool(paused)

    def expire_orders(self, now_ts: int) -> int:
        """Expire working orders due at ``now_ts`` (used on load); the events go
        out with the next step. Returns how many expired."""
        before = len(self.broker.orders)
        self.broker.expire(now_ts)
        self._relay(self._pending, [])
        return before - len(self.broker.orders)

    def _relay(self, events: list[Event], fills: list[Fill]) -> None:
        """Move broker output into the step, each event followed by the
        strategy's reaction to it (journal lines...)."""
        new_events, new_fills = self.broker.drain()
        if new_fills:
            fills.extend(new_fills)
        strategy = self.strategy
        for ev in new_events:
            events.append(ev)
            try:
                extra = strategy.on_broker_event(ev)
            except Exception as exc:
                events.append(_agent_error(ev.ts, strategy.name, exc))
                continue
            if extra:
                events.extend(extra)

    # ------------------------------------------------------------------ views
    @property
    def pending_events(self) -> list[Event]:
        """Events waiting to go out with the next step (read-only view)."""
        return list(self._pending)

    def status(self) -> dict[str, Any]:
        """JSON-able account summary for the heartbeat, /health and ``status``."""
        b = self.broker
        pos = b.position
        return {
            "symbol": self.instrument.symbol,
            "strategy": self.strategy.name,
            "currency": "BTC" if b.inverse else "USDT",
            "equity": b.equity(),
            "equity_quote": b.equity_quote(),
            "balance": b.balance,
            "start_balance": b.start_balance,
            "realized_pnl": b.realized_pnl,
            "fees_paid": b.fees_paid,
            "funding_paid": b.funding_paid,
            "unrealized": b.unrealized(),
            "last_price": b.mark,
            "last_candle_ts": self.last_candle_ts,
            "funding_rate": b.funding_rate,
            "position": {
                "qty": pos.qty if pos else 0.0,
                "side": ("long" if pos.qty > 0 else "short") if pos else "flat",
                "entry_price": pos.entry_price if pos else None,
                "entry_ts": pos.entry_ts if pos else None,
                "stop": pos.stop if pos else None,
                "target": pos.target if pos else None,
                "trailing_active": pos.trail_active if pos else False,
                "unrealized": b.unrealized(),
            },
            "working_orders": [o.to_dict() for o in b.orders.values()],
            "breaker": {
                "active": b.breaker_active,
                "reason": b.breaker_reason or None,
                "until_ts": b.breaker_until if b.breaker_active else None,
                "consecutive_losses": b.consecutive_losses,
                "day_start_equity": b.day_start_equity,
            },
            "entries_blocked": b.entries_blocked() or None,
            "trades_closed": b.trades_closed,
            "fills": b.fill_count,
        }

    # ------------------------------------------------------------------ state
    def _strategy_blob(self) -> bytes:
        s: Any = self.strategy
        snap = getattr(s, "snapshot_state", None)
        if snap is not None and hasattr(s, "restore_state"):
            return pickle.dumps(("state", snap()), _PICKLE)
        if self._refs is None:
            self._refs = _ConfigRefs(s)
        return self._refs.dumps(s)

    def _load_strategy(self, blob: bytes) -> None:
        fresh = self.strategy
        if not blob.startswith(_REFS_MAGIC):
            mode, payload = pickle.loads(blob)
            if mode != "state":
                raise EngineStateError(f"unknown strategy snapshot mode {mode!r}")
            restore = getattr(fresh, "restore_state", None)
            if restore is None:
                raise EngineStateError(
                    "the stored strategy was built from a differently shaped configuration "
                    f"(explicit state, but {type(fresh).__name__} cannot restore one); "
                    "use a fresh workspace for the new strategy settings"
                )
            try:
                restore(payload)
            except ValueError as exc:  # the strategy's word that the state does not fit its configuration
                raise EngineStateError(f"{str(exc).splitlines()[0]}; use a fresh workspace for the new strategy settings") from None
            return
        refs = _ConfigRefs(fresh)
        payload = refs.loads(blob)
        if getattr(payload, "name", None) != fresh.name:
            raise EngineStateError(
                f"stored strategy {getattr(payload, 'name', '?')!r} differs from configured {fresh.name!r}"
            )
        self.strategy = payload
        self._refs = refs

    def _core_blob(self) -> bytes:
        f = self.funding
        return pickle.dumps(
            (self.last_candle_ts, None if f is None else (f.ts, f.rate), self.broker.state()), _PICKLE
        )

    def _load_core(self, blob: bytes) -> None:
        last, funding, state = pickle.loads(blob)
        self.last_candle_ts = last
        self.funding = None if funding is None else FundingRate(ts=funding[0], rate=funding[1])
        self.broker.load_state(state)

    def persist_payload(self) -> PersistPayload:
        """The state to write for the step just taken (see :class:`PersistPayload`).
        Call :meth:`persisted` once the write has committed."""
        b = self.broker
        return PersistPayload(
            self.last_candle_ts,
            self._core_blob(),
            self._strategy_blob(),
            tuple(b.new_ids) if b.new_ids else (),
            tuple([o.to_row() for o in b.orders.values()]) if b.orders_dirty else None,
        )

    def persisted(self) -> None:
        """Acknowledge that the last :meth:`persist_payload` is durable."""
        self.broker.new_ids = []
        self.broker.orders_dirty = False

    @classmethod
    def from_parts(
        cls,
        config: AppConfig,
        strategy: Strategy,
        core: bytes,
        strategy_blob: bytes,
        orders: list[tuple[Any, ...]],
        processed_ids: set[str],
    ) -> Engine:
        """Rebuild from stored pieces (the state store's load path)."""
        engine = cls(config, strategy)
        engine._load_core(core)
        engine.broker.orders = {row[0]: WorkingOrder.from_row(row) for row in orders}
        engine.broker.processed_ids = set(processed_ids)
        engine._load_strategy(strategy_blob)
        return engine

    def snapshot(self) -> bytes:
        """The whole engine state as one blob (pickle protocol 5)."""
        b = self.broker
        return pickle.dumps(
            {
                "v": SNAPSHOT_VERSION,
                "symbol": self.instrument.symbol,
                "strategy": self.strategy.name,
                "core": self._core_blob(),
                "strategy_state": self._strategy_blob(),
                "orders": [o.to_row() for o in b.orders.values()],
                "ids": sorted(b.processed_ids),
                "pending": [(e.ts, e.kind, e.data) for e in self._pending],
            },
            _PICKLE,
        )

    @classmethod
    def restore(cls, blob: bytes, config: AppConfig, strategy: Strategy) -> Engine:
        """Rebuild an engine from :meth:`snapshot`; refuses another symbol or strategy."""
        try:
            data = pickle.loads(blob)
            version = data["v"]
        except Exception as exc:
            raise EngineStateError(f"engine snapshot is unreadable: {type(exc).__name__}") from None
        if version != SNAPSHOT_VERSION:
            raise EngineStateError(
                f"engine snapshot version {version} is not supported (expected {SNAPSHOT_VERSION})"
            )
        symbol = instrument_for(config.trading.symbol).symbol
        if data["symbol"] != symbol:
            raise EngineStateError(f"snapshot is for symbol {data['symbol']}, config trades {symbol}")
        if data["strategy"] != strategy.name:
            raise EngineStateError(
                f"snapshot is for strategy {data['strategy']!r}, config uses {strategy.name!r}"
            )
        engine = cls.from_parts(
            config, strategy, data["core"], data["strategy_state"], data["orders"], set(data["ids"])
        )
        engine._pending = [Event(ts, kind, dict(d)) for ts, kind, d in data["pending"]]
        return engine


_REFS_MAGIC = b"LA-REFS1"


def _config_ref(index: int, qualname: str) -> Any:  # pragma: no cover - replaced while loading
    raise EngineStateError("a strategy configuration reference can only be resolved while restoring")


class _ConfigRefs:
    """Strategy snapshots without the strategy's configuration.

    A strategy holds its parameters (pydantic models) and the instrument next
    to its indicator state. Those are rebuilt from the config on every start,
    so they are not state; pickling them every candle cost about a third of the
    snapshot. They are written as references (index in a deterministic
    traversal of the strategy built from the current config) and resolved to
    that strategy's objects on restore; a changed configuration structure is
    detected by type name and refused rather than mis-wired.
    """

    def __init__(self, strategy: object) -> None:
        from pydantic import BaseModel

        from laptop_agents.domain.models import Instrument

        found: list[Any] = []
        seen: set[int] = set()
        config_types = (BaseModel, Instrument)

        class _Finder(pickle.Pickler):
            def reducer_override(self, obj: Any) -> Any:
                if isinstance(obj, config_types) and id(obj) not in seen:
                    seen.add(id(obj))
                    found.append(obj)
                return NotImplemented

        _Finder(_NullWriter(), _PICKLE).dump(strategy)
        self.objects = found  # strong references keep their ids reserved
        self.index = {id(o): i for i, o in enumerate(found)}
        table = dict(copyreg.dispatch_table)
        for obj in found:
            table[type(obj)] = self._reduce
        self.table = table

    def _reduce(self, obj: Any) -> Any:
        i = self.index.get(id(obj))
        if i is None:  # not one of the configured objects: pickle it by value
            return obj.__reduce_ex__(_PICKLE)
        return _config_ref, (i, type(obj).__qualname__)

    def dumps(self, strategy: object) -> bytes:
        buf = io.BytesIO()
        buf.write(_REFS_MAGIC)
        p = pickle.Pickler(buf, _PICKLE)
        p.dispatch_table = self.table
        p.dump(strategy)
        return buf.getvalue()

    def resolve(self, index: int, qualname: str) -> Any:
        if index >= len(self.objects) or type(self.objects[index]).__qualname__ != qualname:
            raise EngineStateError(
                "the stored strategy was built from a differently shaped configuration; "
                "use a fresh workspace for the new strategy settings"
            )
        return self.objects[index]

    def loads(self, blob: bytes) -> Any:
        refs = self

        class _Loader(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if module == __name__ and name == "_config_ref":
                    return refs.resolve
                return super().find_class(module, name)

        return _Loader(io.BytesIO(blob[len(_REFS_MAGIC) :])).load()


class _NullWriter:
    def write(self, data: bytes) -> int:
        return len(data)


def build_engine(config: AppConfig, strategy: Strategy) -> Engine:
    """A fresh engine (no history) for ``config``'s symbol with ``strategy``."""
    return Engine(config, strategy)


def _agent_error(ts: int, agent: str, exc: BaseException) -> Event:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return Event(ts, "agent_error", {"agent": agent, "error": f"{type(exc).__name__}: {text}".rstrip(": ")})
