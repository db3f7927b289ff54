"""The strategy base: what every strategy needs and none should write again.

A strategy used to re-implement client ids, sizing, the journal, block
reporting, its state and error isolation (``sma_cross`` took 240 lines). Here
they are written once:

- :class:`StrategyCore` -- the plumbing every strategy of ours shares (the
  Supervisor pipeline too): name, deterministic client-id prefix, the
  :class:`~laptop_agents.strategy.agents.JournalCoach`, the bar count,
  journal lines for broker events, and ``snapshot_state`` / ``restore_state``
  with a layout tag, refused with ``ValueError`` when the stored state does
  not fit, all or nothing.
- :class:`BaseStrategy` -- what a user subclasses. They declare a pydantic
  ``Params`` model, their indicators (once, in :meth:`BaseStrategy.indicators`;
  the base feeds them every candle, warmup included, and keeps them in the
  state), optional plain state fields (``state_fields``), and write one
  :meth:`BaseStrategy.decide` method with small order helpers
  (:meth:`~BaseStrategy.buy`, :meth:`~BaseStrategy.sell`,
  :meth:`~BaseStrategy.close`, :meth:`~BaseStrategy.cancel`). Sizing, rounding,
  the netting reversal, the ``entries_blocked`` rule, decision and journal
  events and client ids come from the base.

Every event a strategy produces is made by one of the three makers in
:mod:`~laptop_agents.strategy.emit` (decision, journal line, agent error),
so the record type of events changes in one place.

Determinism is the contract: ``decide`` sees the candle, the account view and
the strategy's own state, nothing else; the base never reads the clock, does
no I/O and draws no random numbers, and a strategy on it must not either (see
``docs/strategies.md``).
"""

from __future__ import annotations

import copy
import inspect
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar

from mypy_extensions import mypyc_attr
from pydantic import BaseModel

from laptop_agents.domain.contracts import AccountView, StrategyOutput
from laptop_agents.domain.events import Event
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    FundingRate,
    Instrument,
    OrderIntent,
    OrderType,
    Side,
)
from laptop_agents.strategy.agents import JournalCoach
from laptop_agents.strategy.emit import agent_error, decision_event
from laptop_agents.strategy.params import Parameters
from laptop_agents.strategy.sizing import BELOW_MIN_QTY, floor_to_step, position_size, round_to_tick

__all__ = [
    "BaseStrategy",
    "Feed",
    "Outcome",
    "Parameters",
    "StrategyCore",
    "agent_error",
    "decision_event",
    "feed",
    "id_prefix",
]

DEFAULT_RISK_PCT = 1.0

# What an entry helper did (see BaseStrategy.enter).
Outcome = Literal["entered", "blocked", "closed", "refused"]
CANDLE_FIELDS = ("open", "high", "low", "close", "volume")


def id_prefix(name: str) -> str:
    """A short, exchange-safe client-id prefix from a strategy name or path
    (for ``file.py:Class`` the class name)."""
    stem = re.sub(r"\.(json|ya?ml)$", "", name.replace("\\", "/").rsplit("/", 1)[-1], flags=re.IGNORECASE)
    stem = stem.rsplit(":", 1)[-1]
    clean = re.sub(r"[^A-Za-z0-9]", "", stem)[:12]
    return clean or "strat"


def _default_risk_pct(params: object) -> float:
    value = getattr(getattr(params, "risk", None), "risk_pct", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return DEFAULT_RISK_PCT


def _not_fitting(what: str) -> ValueError:
    return ValueError(f"{what}: the stored strategy was built from a differently shaped configuration")


# The compiled core (mypyc): users' strategies derive from these in Python, and strategies pickle.
@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class StrategyCore:
    """Plumbing shared by every strategy of ours (see the module docstring).

    ``risk_pct`` is a percent (default: the parameters' ``risk.risk_pct``,
    else 1.0); ``max_notional`` (USD) and ``max_leverage`` come from the risk
    configuration. ``name`` is the strategy's identity (labels, the state
    store's record of which strategy it holds); client ids are
    ``f"{id_prefix}-{candle.ts}-{seq}"``, so a replay yields the same ids.

    A subclass sets ``state_tag`` ("layout/version") and implements
    :meth:`_dump_state` / :meth:`_load_state`.
    """

    __slots__ = ("_bar", "id_prefix", "instrument", "journal_coach", "max_leverage", "max_notional", "name",
                 "params", "risk_pct")  # fmt: skip

    state_tag: ClassVar[str] = ""

    def __init__(
        self,
        params: Any,
        instrument: Instrument,
        *,
        risk_pct: float | None = None,
        max_notional: float = 200_000.0,
        max_leverage: float = 20.0,
        name: str = "",
    ) -> None:
        self.params = params
        self.instrument = instrument
        self.name = name
        self.id_prefix = id_prefix(name)
        self.risk_pct = _default_risk_pct(params) if risk_pct is None else float(risk_pct)
        self.max_notional = max_notional
        self.max_leverage = max_leverage
        self.journal_coach = JournalCoach()
        self._bar = 0

    def on_broker_event(self, event: Event) -> list[Event]:
        """Journal lines for this strategy's plans (filled, exited, cancelled...)."""
        try:
            return self.journal_coach.on_event(event, self._bar)
        except Exception as exc:
            return [agent_error(event.ts, JournalCoach.name, exc)]

    def on_funding(self, funding: FundingRate) -> None:
        """Funding does not change the decisions unless a subclass says so."""

    # -- state ---------------------------------------------------------------

    def _dump_state(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def _load_state(self, values: Sequence[Any]) -> None:
        raise NotImplementedError

    def snapshot_state(self) -> tuple[Any, ...]:
        """The running state as plain data, led by ``state_tag``. Parameters,
        instrument and names are configuration, rebuilt on every start, so
        they are not in it."""
        return (self.state_tag, *self._dump_state())

    def restore_state(self, state: object) -> None:
        """Load :meth:`snapshot_state` output into this (freshly built)
        strategy. All or nothing: a state that does not fit the configured
        strategy raises ``ValueError`` and leaves the strategy as it was
        (stored data is untrusted: any object is checked, not assumed)."""
        if not isinstance(state, tuple | list) or not state or state[0] != self.state_tag:
            stored = state[0] if isinstance(state, tuple | list) and state else type(state).__name__
            raise _not_fitting(f"the stored strategy state is {stored!r}, not a {self.state_tag!r} state")
        before = self._dump_state()
        try:
            self._load_state(state[1:])
        except BaseException as exc:
            self._load_state(before)
            if isinstance(exc, ValueError) or not isinstance(exc, Exception):
                raise
            # A custom indicator's load() may fail another way: still "does not fit".
            raise _not_fitting(f"the stored {self.state_tag} state does not load ({type(exc).__name__}: {exc})") from None


# -- the user-facing base ------------------------------------------------------------


class Feed:
    """An indicator and the candle fields it is fed (see :func:`feed`)."""

    __slots__ = ("fields", "indicator")

    def __init__(self, indicator: Any, fields: tuple[str, ...]) -> None:
        bad = [f for f in fields if f not in CANDLE_FIELDS]
        if not fields or bad:
            raise ValueError(f"feed(): fields must be some of {', '.join(CANDLE_FIELDS)}, got {fields!r}")
        self.indicator = indicator
        self.fields = fields


def feed(indicator: Any, *fields: str) -> Feed:
    """Declare which candle fields an indicator gets, e.g.
    ``feed(RollingMax(20), "high")``. Without it an indicator whose ``update``
    takes one value gets the close, three get (high, low, close), four get
    (high, low, close, volume)."""
    return Feed(indicator, tuple(fields))


_DEFAULT_FIELDS = {1: ("close",), 3: ("high", "low", "close"), 4: ("high", "low", "close", "volume")}


def _arity(update: Callable[..., Any]) -> int | None:
    try:
        params = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    return sum(1 for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``obj -> (obj.a, obj.b, ...)`` for ``names`` (attrgetter returns a bare
    value for one name)."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        get = operator.attrgetter(names[0])
        return lambda obj: (get(obj),)
    return lambda obj: ()


P = TypeVar("P", bound=BaseModel)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class BaseStrategy(StrategyCore, Generic[P]):
    """Subclass this to write a strategy; see ``docs/strategies.md``.

    Declare:

    - ``Params``: a pydantic model of the parameters (derive it from
      :class:`Parameters`); ``self.params`` is the validated instance.
    - :meth:`indicators`: ``{name: indicator}``; each becomes ``self.<name>``,
      is fed every candle (warmup included) and is part of the state.
    - ``state_fields``: ``{name: initial value}`` of plain values (numbers,
      strings, bools, None, tuples of them) that :meth:`decide` or
      :meth:`observe` change; they are part of the state too.
    - ``kind``: the setup name in events and the state tag (default: the class
      name); ``state_version``: bump it when the indicators or state fields
      change, so an old state is refused instead of mis-read.

    Write :meth:`decide` (and optionally :meth:`observe`, :meth:`context`).
    An exception in them becomes an ``agent_error`` event; that candle then
    sends nothing.
    """

    __slots__ = ("_account", "_block_reported", "_candle", "_close_feeds", "_dumpers", "_field_names",
                 "_get_fields", "_indicator_list", "_other_feeds", "_out")  # fmt: skip

    Params: ClassVar[type[BaseModel]]
    kind: ClassVar[str] = ""
    state_version: ClassVar[int] = 1
    state_fields: ClassVar[Mapping[str, Any]] = {}
    params: P

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not vars(cls).get("kind"):
            cls.kind = cls.__name__
        cls.state_tag = f"{cls.kind}/{cls.state_version}"

    def __init__(
        self,
        params: P,
        instrument: Instrument,
        *,
        risk_pct: float | None = None,
        max_notional: float = 200_000.0,
        max_leverage: float = 20.0,
        name: str | None = None,
    ) -> None:
        super().__init__(params, instrument, risk_pct=risk_pct, max_notional=max_notional,
                         max_leverage=max_leverage, name=name or self.kind)  # fmt: skip
        self._block_reported = False
        self._candle: Candle | None = None
        self._account: AccountView | None = None
        self._out: StrategyOutput | None = None
        reserved = set(dir(BaseStrategy))
        for fname, initial in self.state_fields.items():
            if fname in reserved:
                raise ValueError(f"state field {fname!r} clashes with a BaseStrategy attribute; rename it")
            setattr(self, fname, copy.deepcopy(initial))
        self._field_names = tuple(self.state_fields)
        declared = self.indicators(params)
        if not isinstance(declared, Mapping):
            raise TypeError(f"indicators() must return a dict of name -> indicator, got {type(declared).__name__}")
        close_feeds: list[Callable[[float], Any]] = []
        other_feeds: list[tuple[Callable[..., Any], Callable[[Candle], Any], bool]] = []
        named: list[tuple[str, Any]] = []
        for iname, spec in declared.items():
            ind, fields = (spec.indicator, spec.fields) if isinstance(spec, Feed) else (spec, None)
            fields = self._check_indicator(iname, ind, fields, reserved)
            setattr(self, iname, ind)
            named.append((iname, ind))
            if fields == ("close",):
                close_feeds.append(ind.update)
            else:
                other_feeds.append((ind.update, operator.attrgetter(*fields), len(fields) > 1))
        self._indicator_list = tuple(named)
        # The state is taken after every persisted candle: its getters are made once.
        self._dumpers = tuple(ind.dump for _, ind in named)
        self._get_fields = _tuple_getter(self._field_names)
        self._close_feeds = tuple(close_feeds)
        self._other_feeds = tuple(other_feeds)

    def _check_indicator(
        self, iname: str, ind: Any, fields: tuple[str, ...] | None, reserved: set[str]
    ) -> tuple[str, ...]:
        if not isinstance(iname, str) or not iname.isidentifier():
            raise ValueError(f"indicator name {iname!r} is not a Python identifier")
        if iname in reserved or iname in self.state_fields:
            raise ValueError(f"indicator name {iname!r} clashes with a BaseStrategy attribute or a state field")
        missing = [m for m in ("update", "dump", "load") if not callable(getattr(ind, m, None))]
        if missing or not hasattr(ind, "value"):
            raise ValueError(
                f"indicator {iname!r} ({type(ind).__name__}) needs update(), value, dump() and load() "
                f"(missing {', '.join(missing) or 'value'})"
            )
        n = _arity(ind.update)
        if fields is None:
            if n not in _DEFAULT_FIELDS:
                raise ValueError(
                    f"indicator {iname!r}: its update() takes {n if n is not None else 'a variable number of'} "
                    "values; say which candle fields with feed(indicator, 'high', ...)"
                )
            return _DEFAULT_FIELDS[n]
        if n is not None and n != len(fields):
            raise ValueError(f"indicator {iname!r}: update() takes {n} values, feed() gives {len(fields)}")
        return fields

    # -- what a strategy writes -------------------------------------------------

    def indicators(self, params: P) -> Mapping[str, Any]:
        """``{name: indicator}`` built from the parameters (default: none)."""
        return {}

    def observe(self, candle: Candle) -> None:
        """Runs after the indicators on every candle, warmup included: keep
        state derived from them here (default: nothing)."""

    def decide(self, candle: Candle, account: AccountView) -> None:
        """The decision on a closed candle: call the order helpers."""
        raise NotImplementedError(f"{type(self).__name__} must define decide(self, candle, account)")

    def context(self) -> dict[str, Any]:
        """Extra fields of every decision event (default: each indicator's value)."""
        return {iname: ind.value for iname, ind in self._indicator_list}

    # -- Strategy protocol ---------------------------------------------------------

    def warmup(self, candle: Candle) -> None:
        """Advance the indicators (and :meth:`observe`) only: no decision."""
        self._bar += 1
        close = candle.close
        for update in self._close_feeds:
            update(close)
        if self._other_feeds:
            self._feed_others(candle)
        self.observe(candle)

    def _feed_others(self, candle: Candle) -> None:
        for update, get, many in self._other_feeds:
            if many:
                update(*get(candle))
            else:
                update(get(candle))

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        # The quiet path (no order) runs once per candle of every backtest:
        # it does no more than feed, observe and decide.
        self._bar += 1
        try:
            close = candle.close
            for update in self._close_feeds:
                update(close)
            if self._other_feeds:
                self._feed_others(candle)
            self.observe(candle)
        except Exception as exc:
            return StrategyOutput([], [agent_error(candle.ts, self.kind, exc)])
        self._candle = candle
        self._account = account
        try:
            self.decide(candle, account)
        except Exception as exc:  # nothing half-decided reaches the broker
            self._out = self._candle = self._account = None
            return StrategyOutput([], [agent_error(candle.ts, self.kind, exc)])
        self._candle = self._account = None
        out = self._out
        if out is None:
            return StrategyOutput([], [])
        self._out = None
        return out

    @property
    def bar(self) -> int:
        """Candles seen so far, warmup included (1 on the first candle)."""
        return self._bar

    def status(self) -> dict[str, Any]:
        """A JSON-able view for reports: the bar count and the public state fields."""
        out: dict[str, Any] = {"strategy": self.name, "bar": self._bar}
        for fname in self._field_names:
            if not fname.startswith("_"):
                out[fname] = getattr(self, fname)
        return out

    # -- order helpers (inside decide) ----------------------------------------------

    def _now(self) -> tuple[Candle, AccountView, StrategyOutput]:
        candle, account = self._candle, self._account
        if candle is None or account is None:
            raise RuntimeError("order helpers can only be called inside decide()")
        out = self._out
        if out is None:
            out = self._out = StrategyOutput([], [])
        return candle, account, out

    def client_id(self, ts: int, seq: int = 0) -> str:
        """The deterministic client id of this strategy's ``seq``-th order at ``ts``."""
        return f"{self.id_prefix}-{ts}-{seq}"

    def buy(
        self, *, stop: float | None = None, stop_bps: float | None = None, target: float | None = None,
        target_r: float | None = None, qty: float | None = None, limit: float | None = None,
        attach_stop: bool = True, trailing: bool = False, size_mult: float = 1.0, reason: str = "signal",
        setup: str | None = None,
    ) -> Outcome:  # fmt: skip
        """Go long: :meth:`enter` with direction +1."""
        return self.enter(1, stop=stop, stop_bps=stop_bps, target=target, target_r=target_r, qty=qty, limit=limit,
                          attach_stop=attach_stop, trailing=trailing, size_mult=size_mult, reason=reason,
                          setup=setup)  # fmt: skip

    def sell(
        self, *, stop: float | None = None, stop_bps: float | None = None, target: float | None = None,
        target_r: float | None = None, qty: float | None = None, limit: float | None = None,
        attach_stop: bool = True, trailing: bool = False, size_mult: float = 1.0, reason: str = "signal",
        setup: str | None = None,
    ) -> Outcome:  # fmt: skip
        """Go short: :meth:`enter` with direction -1."""
        return self.enter(-1, stop=stop, stop_bps=stop_bps, target=target, target_r=target_r, qty=qty, limit=limit,
                          attach_stop=attach_stop, trailing=trailing, size_mult=size_mult, reason=reason,
                          setup=setup)  # fmt: skip

    def enter(
        self,
        direction: int,
        *,
        stop: float | None = None,
        stop_bps: float | None = None,
        target: float | None = None,
        target_r: float | None = None,
        qty: float | None = None,
        limit: float | None = None,
        attach_stop: bool = True,
        trailing: bool = False,
        size_mult: float = 1.0,
        reason: str = "signal",
        setup: str | None = None,
    ) -> Outcome:
        """Enter in ``direction`` (+1 long, -1 short) at the close (MARKET), or
        at ``limit`` (LIMIT). An opposite position is reversed by ONE order of
        ``|position| + new size`` that the broker nets.

        Stop: a price (``stop``) or a distance from the entry in basis points
        (``stop_bps``); it sizes the order (``risk_pct`` % of equity lost at
        the stop, capped by max notional and leverage, floored to the
        quantity step) and is sent as a protective stop unless
        ``attach_stop=False``. Target: a price (``target``) or a multiple of
        the entry-to-stop distance R (``target_r``). ``qty`` sizes the order
        directly instead. Prices are rounded to the tick.

        Returns ``"entered"``; ``"blocked"`` while the account's
        ``entries_blocked`` is set (reported once until an entry goes
        through); ``"closed"`` when blocked but an opposite position was
        closed instead; ``"refused"`` when no valid size exists (the reason is
        in a decision event; an opposite position is still closed).
        """
        candle, account = self._candle, self._account
        if candle is None or account is None:
            raise RuntimeError("order helpers can only be called inside decide()")
        d = 1 if direction > 0 else -1
        pos = account.position_qty
        close_qty = abs(pos) if pos * d < 0.0 else 0.0
        if close_qty == 0.0 and self._block_reported and account.entries_blocked:
            return "blocked"  # reported already, nothing to close: nothing to say or do (a tripped breaker's day)
        out = self._out
        if out is None:
            out = self._out = StrategyOutput([], [])
        ts = candle.ts
        inst = self.instrument
        side = Side.BUY if d > 0 else Side.SELL
        entry = candle.close if limit is None else limit
        tick = inst.tick_size
        if stop is not None:
            stop_px: float | None = round_to_tick(stop, tick)
        elif stop_bps is not None:
            dist = entry * stop_bps / 10_000.0
            stop_px = round_to_tick(entry - d * dist, tick)
        else:
            stop_px = None
        if target is not None:
            target_px: float | None = round_to_tick(target, tick)
        elif target_r and stop_px is not None:
            target_px = round_to_tick(entry + d * abs(entry - stop_px) * target_r, tick)
        else:
            target_px = None
        setup = setup or self.kind
        cid = self.client_id(ts, len(out.intents))
        base: dict[str, Any] = {"setup": setup, "side": side.value, "type": "MARKET" if limit is None else "LIMIT",
                                "entry": entry, **self.context()}  # fmt: skip
        if account.entries_blocked:
            self._block_reported = True
            out.events.append(decision_event(ts, dict(base, action="block", reason="entries_blocked")))
            if close_qty > 0.0:
                self._exit(out, ts, cid, side, floor_to_step(close_qty, inst.qty_step) or close_qty, base, reason,
                           setup)  # fmt: skip
                return "closed"
            return "blocked"
        if qty is not None:
            size = floor_to_step(qty, inst.qty_step)
            why = "" if size > 0.0 and size >= inst.min_qty - 1e-12 else BELOW_MIN_QTY
        elif stop_px is None:
            raise ValueError("enter() needs stop, stop_bps or qty to size the order")
        else:
            size, why = position_size(equity=account.equity, risk_pct=self.risk_pct, size_mult=size_mult,
                                      entry=entry, stop=stop_px, instrument=inst, max_notional=self.max_notional,
                                      max_leverage=self.max_leverage)  # fmt: skip
        if why:
            out.events.append(decision_event(ts, dict(base, action="block", reason=why)))
            if close_qty > 0.0:  # cannot size the new leg: still honour the signal by closing
                self._exit(out, ts, cid, side, close_qty, base, reason, setup)
            return "refused"
        self._block_reported = False
        total = round(close_qty + size, 12)
        sent_stop = stop_px if attach_stop else None
        out.intents.append(OrderIntent(
            cid, side, OrderType.MARKET if limit is None else OrderType.LIMIT, total, price=limit, stop=sent_stop,
            target=target_px, trailing=trailing, reason=f"{setup}_reverse" if close_qty else setup,
        ))  # fmt: skip
        data = dict(base, action="enter", reason=reason, qty=total, size=size, client_id=cid)
        if sent_stop is not None:
            data["stop"] = sent_stop
        if target_px is not None:
            data["target"] = target_px
        out.events.append(decision_event(ts, data))
        out.events.append(self.journal_coach.plan_created(ts, cid, setup, d, base["type"], entry, sent_stop,
                                                          target_px, total, self._bar))  # fmt: skip
        return "entered"

    def close(self, *, reason: str = "signal", setup: str | None = None) -> bool:
        """Close the whole position with a reduce-only MARKET order (always
        allowed: it only lowers risk). False when flat."""
        candle, account, out = self._now()
        pos = account.position_qty
        if pos == 0.0:
            return False
        setup = setup or self.kind
        side = Side.SELL if pos > 0.0 else Side.BUY
        qty = floor_to_step(abs(pos), self.instrument.qty_step) or abs(pos)
        base: dict[str, Any] = {"setup": setup, "side": side.value, "type": "MARKET", "entry": candle.close,
                                **self.context()}  # fmt: skip
        self._exit(out, candle.ts, self.client_id(candle.ts, len(out.intents)), side, qty, base, reason, setup)
        return True

    def cancel(self, client_id: str, *, reason: str = "signal") -> None:
        """Cancel one of this strategy's working orders (``account.working_orders``)."""
        candle, _, out = self._now()
        out.intents.append(CancelIntent(client_id, reason))
        out.events.append(decision_event(candle.ts, {"action": "cancel", "reason": reason, "client_id": client_id}))

    def _exit(self, out: StrategyOutput, ts: int, cid: str, side: Side, qty: float, base: dict[str, Any],
              reason: str, setup: str) -> None:  # fmt: skip
        out.intents.append(OrderIntent(cid, side, OrderType.MARKET, qty, reduce_only=True, reason=f"{setup}_exit"))
        out.events.append(decision_event(ts, dict(base, action="exit", reason=reason, qty=qty, client_id=cid)))

    # -- state -------------------------------------------------------------------

    def snapshot_state(self) -> tuple[Any, ...]:
        """``(state_tag, *indicator dumps, *state fields, block reported, bar,
        journal plans)``: plain data (see :meth:`StrategyCore.snapshot_state`)."""
        out: list[Any] = [self.state_tag]
        for dump in self._dumpers:
            out.append(dump())
        out.extend(self._get_fields(self))
        out += (self._block_reported, self._bar, self.journal_coach.dump())
        return tuple(out)

    def _dump_state(self) -> tuple[Any, ...]:
        return self.snapshot_state()[1:]

    def _load_state(self, values: Sequence[Any]) -> None:
        inds, names = self._indicator_list, self._field_names
        want = len(inds) + len(names) + 3
        if len(values) != want:
            raise _not_fitting(
                f"the stored {self.state_tag} state has {len(values)} values, this strategy has {want} "
                f"({len(inds)} indicators, {len(names)} state fields and 3 of the base)"
            )
        for (_, ind), dumped in zip(inds, values, strict=False):
            ind.load(dumped)
        for fname, value in zip(names, values[len(inds):], strict=False):
            setattr(self, fname, value)
        self._block_reported, self._bar, journal = values[-3:]
        self.journal_coach.load(journal)
