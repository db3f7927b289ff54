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

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from laptop_agents.broker.live import ExchangeUpdate, LiveBroker
from laptop_agents.broker.paper import DEFAULT_STARTING_EQUITY, PaperBroker
from laptop_agents.broker.state import WorkingOrder
from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import StepResult, Strategy, StrategyOutput
from laptop_agents.domain.events import AgentError, Event, event_from_dict
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    Fill,
    FundingRate,
    OrderIntent,
    Tick,
)
from laptop_agents.domain.symbols import instrument_for
from laptop_agents.engine.state import (
    EngineState,
    EngineStateError,
    plain_dumps,
    plain_loads,
    state_from_plain,
    state_to_plain,
)
from laptop_agents.engine.status import BreakerStatus, EngineStatus, PositionStatus

SNAPSHOT_TAG = "engine-snapshot/2"
_INTENTS = (OrderIntent, CancelIntent)
_agent_error = AgentError.from_exception


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


class EngineIdentity(NamedTuple):
    """Whose history an engine's state is: the state store records it with
    the first commit and refuses a config that differs (continuing another
    market's position, or a mock's simulated times in a live session, would
    be wrong)."""

    symbol: str
    strategy: str
    contract: str  # linear | inverse
    starting_equity: float  # quote currency
    source: str
    interval: str


class PersistPayload(NamedTuple):
    """What the state store writes for the step just taken: the state, the
    client ids seen since the last commit, and whether the working orders
    changed (the store rewrites their rows only then). A named tuple: built
    once per candle."""

    identity: EngineIdentity
    state: EngineState
    new_ids: tuple[str, ...]
    orders_changed: bool


class Engine:
    """Strategy + broker (paper, or live: ``broker/live.py``) + event ordering for one symbol.

    ``engine.strategy`` is always the instance passed in: a restore loads the
    stored state into it (``Strategy.restore_state``).
    """

    def __init__(self, config: AppConfig, strategy: Strategy, broker: PaperBroker | None = None) -> None:
        self.config = config
        self.strategy = strategy
        self.instrument = instrument_for(config.trading.symbol)
        # Live execution swaps the broker, never the engine: the live broker
        # checks and books like the paper one, the exchange does the trading.
        kind = LiveBroker if config.trading.execution_mode == "live" else PaperBroker
        self.broker = broker or kind(
            self.instrument, config.broker, config.risk, starting_equity(config, strategy)
        )
        self.identity = EngineIdentity(
            self.instrument.symbol, strategy.name, self.instrument.kind.value,
            self.broker.starting_equity_quote, config.trading.source, config.trading.interval,
        )  # fmt: skip
        self.last_candle_ts: int | None = None
        self.funding: FundingRate | None = None
        # Events produced outside a step (a strategy error on a funding update,
        # expiry on load); they go out with the next StepResult, so they are
        # committed and journaled with it.
        self._pending: list[Event] = []

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
        if b.ledger.position is not None or b.events:
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
                # Checked, not trusted: a strategy may put anything in the list
                # (and the compiled core would reject a wrong type on reading it).
                intents: Sequence[object] = out.intents
                for intent in intents:
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
        pos = b.ledger.position
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

    # ------------------------------------------------------------------ live execution
    @property
    def live(self) -> bool:
        return isinstance(self.broker, LiveBroker)

    def on_exchange(self, updates: Iterable[ExchangeUpdate], ts: int, notes: Iterable[tuple[str, str | None, str]] = ()
                    ) -> StepResult:
        """What the exchange did (fills, orders gone), fed in by the session's
        execution client between candles: an input like a candle, so the
        same sequence of inputs always gives the same books. ``notes`` are
        reconciliations to journal with it (what, client id, detail).
        Returns the step to commit; ``last_candle_ts`` does not move."""
        b = self.broker
        if not isinstance(b, LiveBroker):
            raise TypeError("on_exchange needs the live broker (trading.execution_mode=live)")
        events: list[Event] = self._pending
        self._pending = []
        fills: list[Fill] = []
        for what, cid, detail in notes:
            b.note(ts, what, cid, detail)
        for update in updates:
            b.apply(update)
            if b.events:
                self._relay(events, fills)
        if fills and b.mark is not None:
            b.check_breaker(ts)
        self._relay(events, fills)
        return StepResult(ts=ts, processed=True, events=events, fills=fills, equity=b.equity(),
                          position_qty=b.position_qty)

    def adopt_position(self, qty: float, entry_price: float, ts: int, detail: str) -> StepResult:
        """``--adopt``: the exchange's position becomes the books' (journaled)."""
        b = self.broker
        if not isinstance(b, LiveBroker):
            raise TypeError("adopt_position needs the live broker")
        b.adopt_position(qty, entry_price, ts, detail)
        return self.on_exchange((), ts)

    def take_outbox(self) -> tuple[list[WorkingOrder], list[str]]:
        """Orders to send and client ids to cancel since the last call (live only)."""
        b = self.broker
        if not isinstance(b, LiveBroker):
            return [], []
        return b.take_outbox()

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

    def status(self) -> EngineStatus:
        """The account summary for the heartbeat, /health and ``status``."""
        b = self.broker
        pos = b.position
        unrealized = b.unrealized()
        breaker = b.breaker
        if pos is None:
            position = PositionStatus(0.0, "flat", None, None, None, None, False, unrealized)
        else:
            position = PositionStatus(
                pos.qty, "long" if pos.qty > 0 else "short", pos.entry_price, pos.entry_ts, pos.stop, pos.target,
                pos.trail_active, unrealized,
            )  # fmt: skip
        return EngineStatus(
            symbol=self.instrument.symbol,
            strategy=self.strategy.name,
            currency="BTC" if b.inverse else "USDT",
            equity=b.equity(),
            equity_quote=b.equity_quote(),
            balance=b.balance,
            start_balance=b.start_balance,
            realized_pnl=b.realized_pnl,
            fees_paid=b.fees_paid,
            funding_paid=b.funding_paid,
            unrealized=unrealized,
            last_price=b.mark,
            last_candle_ts=self.last_candle_ts,
            funding_rate=b.funding_rate,
            position=position,
            working_orders=tuple(b.orders.values()),
            breaker=BreakerStatus(
                breaker.active, breaker.reason or None, breaker.until if breaker.active else None,
                breaker.consecutive_losses, breaker.day_start_equity,
            ),  # fmt: skip
            entries_blocked=b.entries_blocked() or None,
            trades_closed=b.trades_closed,
            fills=b.fill_count,
        )

    # ------------------------------------------------------------------ state
    def state(self) -> EngineState:
        """Everything but the processed ids that a restart continues from."""
        # The strategy's word, taken as it is (Any): the state codec checks it
        # and names a bad value; the compiled core must not reject it earlier.
        strategy: Any = self.strategy
        return EngineState(self.last_candle_ts, self.funding, self.broker.state(), strategy.snapshot_state())

    def persist_payload(self) -> PersistPayload:
        """The state to write for the step just taken (see :class:`PersistPayload`).
        Call :meth:`persisted` once the write has committed."""
        b = self.broker
        return PersistPayload(self.identity, self.state(), tuple(b.new_ids) if b.new_ids else (), b.orders_dirty)

    def persisted(self) -> None:
        """Acknowledge that the last :meth:`persist_payload` is durable."""
        self.broker.new_ids = []
        self.broker.orders_dirty = False

    @classmethod
    def from_state(
        cls, config: AppConfig, strategy: Strategy, state: EngineState, processed_ids: Iterable[str] = ()
    ) -> Engine:
        """An engine continuing from ``state``: the broker's state is loaded and
        the strategy's snapshot restored into ``strategy`` (freshly built from
        the config). :class:`EngineStateError` when the strategy refuses it."""
        engine = cls(config, strategy)
        engine.last_candle_ts = state.last_candle_ts
        engine.funding = state.funding
        engine.broker.load_state(state.broker, set(processed_ids))
        restore = getattr(strategy, "restore_state", None)
        if restore is None:
            raise EngineStateError(
                "the stored strategy was built from a differently shaped configuration "
                f"(explicit state, but {type(strategy).__name__} cannot restore one); "
                "use a fresh workspace for the new strategy settings"
            )
        stored: Any = state  # the stored snapshot as it is: the strategy checks it, not the compiled core
        try:
            restore(stored.strategy)
        except ValueError as exc:  # the strategy's word that the state does not fit its configuration
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EngineStateError(f"{first}; use a fresh workspace for the new strategy settings") from None
        return engine

    def snapshot(self) -> bytes:
        """The whole engine as one blob of plain data (the state codec of
        :mod:`laptop_agents.engine.state`, plus working orders, processed ids
        and the events waiting for the next step)."""
        state = self.state()
        try:
            return plain_dumps((
                SNAPSHOT_TAG, self.instrument.symbol, self.strategy.name, state_to_plain(state),
                [o.to_row() for o in state.broker.orders], sorted(self.broker.processed_ids),
                [e.to_dict() for e in self._pending],
            ))  # fmt: skip
        except TypeError as exc:
            raise EngineStateError(f"the engine state holds a value that {exc}") from None

    @classmethod
    def restore(cls, blob: bytes, config: AppConfig, strategy: Strategy) -> Engine:
        """Rebuild an engine from :meth:`snapshot`; refuses another symbol or strategy."""
        try:
            tag, symbol, name, plain, orders, ids, pending = plain_loads(blob)
        except Exception as exc:
            raise EngineStateError(f"engine snapshot is unreadable: {type(exc).__name__}") from None
        if tag != SNAPSHOT_TAG:
            raise EngineStateError(f"engine snapshot format {tag!r} is not supported (expected {SNAPSHOT_TAG!r})")
        configured = instrument_for(config.trading.symbol).symbol
        if symbol != configured:
            raise EngineStateError(f"snapshot is for symbol {symbol}, config trades {configured}")
        if name != strategy.name:
            raise EngineStateError(f"snapshot is for strategy {name!r}, config uses {strategy.name!r}")
        try:
            state = state_from_plain(plain, [WorkingOrder.from_row(r) for r in orders])
            events = [event_from_dict(d) for d in pending]
        except ValueError as exc:
            raise EngineStateError(f"engine snapshot is unreadable: {exc}") from None
        engine = cls.from_state(config, strategy, state, ids)
        engine._pending = events
        return engine


def build_engine(config: AppConfig, strategy: Strategy) -> Engine:
    """A fresh engine (no history) for ``config``'s symbol with ``strategy``."""
    return Engine(config, strategy)
