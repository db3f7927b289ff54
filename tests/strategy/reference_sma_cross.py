"""The ``sma_cross`` strategy as it was before the strategy base (240 lines),
frozen here as the oracle of ``test_sma_cross_parity.py``: the strategy on
the base must produce exactly its intents, events and state. Do not "fix"
this file; it is the old behaviour by definition."""

# ruff: noqa
from __future__ import annotations

import re
from typing import Any

from laptop_agents.domain.contracts import AccountView, Intent, StrategyOutput
from laptop_agents.domain.events import AgentError, Event
from laptop_agents.domain.models import Candle, FundingRate, Instrument, OrderIntent, OrderType, Side
from laptop_agents.strategy.emit import decision_event
from laptop_agents.strategy.agents import JournalCoach
from laptop_agents.strategy.indicators import SMA
from laptop_agents.strategy.params import SmaCrossParams
from laptop_agents.strategy.sizing import floor_to_step, position_size, round_to_tick



def id_prefix(name: str) -> str:  # as it was in strategy/supervisor.py
    stem = re.sub(r"\.(json|ya?ml)$", "", name.replace("\\", "/").rsplit("/", 1)[-1], flags=re.IGNORECASE)
    clean = re.sub(r"[^A-Za-z0-9]", "", stem)[:12]
    return clean or "strat"


def agent_error(ts: int, agent: str, exc: BaseException) -> Event:  # as it was in strategy/supervisor.py
    text = f"{type(exc).__name__}: {exc}"
    return AgentError(ts, agent, text[:300])

_STATE_TAG = "sma_cross/1"  # names the snapshot_state layout


class ReferenceSmaCross:
    """See the module docstring. Implements the ``Strategy`` protocol."""

    __slots__ = (
        "_bar",
        "_block_reported",
        "_last_entry_dir",
        "direction",
        "fast",
        "id_prefix",
        "instrument",
        "journal_coach",
        "max_leverage",
        "max_notional",
        "name",
        "params",
        "risk_pct",
        "slow",
    )

    def __init__(
        self,
        params: SmaCrossParams,
        instrument: Instrument,
        *,
        risk_pct: float | None = None,
        max_notional: float = 200_000.0,
        max_leverage: float = 20.0,
        name: str = "sma_cross",
    ) -> None:
        self.params = params
        self.instrument = instrument
        self.name = name
        self.id_prefix = id_prefix(name)
        self.risk_pct = params.risk.risk_pct if risk_pct is None else risk_pct
        self.max_notional = max_notional
        self.max_leverage = max_leverage
        self.fast = SMA(params.fast)
        self.slow = SMA(params.slow)
        self.direction = 0
        self._last_entry_dir = 0
        self._block_reported = False
        self._bar = 0
        self.journal_coach = JournalCoach()

    def warmup(self, candle: Candle) -> None:
        self._bar += 1
        self._advance(candle.close)

    def on_funding(self, funding: FundingRate) -> None:
        """Funding does not change this strategy's decisions."""

    def _advance(self, close: float) -> None:
        f = self.fast.update(close)
        s = self.slow.update(close)
        if f is not None and s is not None:
            if f > s:
                self.direction = 1
            elif f < s:
                self.direction = -1

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        self._bar += 1
        try:
            self._advance(candle.close)
        except Exception as exc:
            return StrategyOutput([], [agent_error(candle.ts, "sma_cross", exc)])
        d = self.direction
        if d == 0 or account.working_orders:
            return StrategyOutput([], [])
        pos = account.position_qty
        if pos == 0.0:
            if d == self._last_entry_dir:
                return StrategyOutput([], [])
            return self._enter(candle, account, d, 0.0)
        if (pos > 0.0) == (d > 0):
            self._last_entry_dir = d
            return StrategyOutput([], [])
        return self._enter(candle, account, d, abs(pos))

    def _enter(self, c: Candle, account: AccountView, d: int, close_qty: float) -> StrategyOutput:
        ts, price = c.ts, c.close
        p = self.params
        inst = self.instrument
        side = Side.BUY if d > 0 else Side.SELL
        cid = f"{self.id_prefix}-{ts}-0"
        events: list[Event] = []
        intents: list[Intent] = []
        dist = price * p.stop_bps / 10_000.0
        stop = round_to_tick(price - d * dist, inst.tick_size)
        target = round_to_tick(price + d * abs(price - stop) * p.tp_r_mult, inst.tick_size) if p.tp_r_mult else None
        base: dict[str, Any] = {
            "setup": "sma_cross",
            "side": side.value,
            "type": "MARKET",
            "entry": price,
            "fast": self.fast.value,
            "slow": self.slow.value,
        }
        if account.entries_blocked:
            if close_qty == 0.0 and self._block_reported:
                return StrategyOutput(intents, events)
            self._block_reported = True
            events.append(decision_event(ts, dict(base, action="block", reason="entries_blocked")))
            if close_qty > 0.0:
                qty = floor_to_step(close_qty, inst.qty_step) or close_qty
                intents.append(
                    OrderIntent(cid, side, OrderType.MARKET, qty, reduce_only=True, reason="sma_cross_exit")
                )
                events.append(decision_event(ts, dict(base, action="exit", reason="cross", qty=qty, client_id=cid)))
                self._last_entry_dir = 0
            return StrategyOutput(intents, events)
        size, reason = position_size(
            equity=account.equity,
            risk_pct=self.risk_pct,
            size_mult=1.0,
            entry=price,
            stop=stop,
            instrument=inst,
            max_notional=self.max_notional,
            max_leverage=self.max_leverage,
        )
        if reason:
            events.append(decision_event(ts, dict(base, action="block", reason=reason)))
            if close_qty > 0.0:
                # Cannot size the new leg: still honour the cross by closing.
                intents.append(
                    OrderIntent(cid, side, OrderType.MARKET, close_qty, reduce_only=True, reason="sma_cross_exit")
                )
                events.append(
                    decision_event(ts, dict(base, action="exit", reason="cross", qty=close_qty, client_id=cid))
                )
            self._last_entry_dir = d
            return StrategyOutput(intents, events)
        self._block_reported = False
        qty = round(close_qty + size, 12)
        intents.append(
            OrderIntent(
                cid,
                side,
                OrderType.MARKET,
                qty,
                stop=stop if p.attach_stop else None,
                target=target,
                reason="sma_cross_reverse" if close_qty else "sma_cross",
            )
        )
        self._last_entry_dir = d
        data = dict(base, action="enter", reason="cross" if close_qty else "initial", qty=qty, size=size,
                    client_id=cid)
        if p.attach_stop:
            data["stop"] = stop
        if target is not None:
            data["target"] = target
        events.append(decision_event(ts, data))
        events.append(
            self.journal_coach.plan_created(
                ts, cid, "sma_cross", d, "MARKET", price, stop if p.attach_stop else None, target, qty, self._bar
            )
        )
        return StrategyOutput(intents, events)

    def on_broker_event(self, event: Event) -> list[Event]:
        try:
            return self.journal_coach.on_event(event, self._bar)
        except Exception as exc:
            return [agent_error(event.ts, "journal_coach", exc)]

    def snapshot_state(self) -> tuple[Any, ...]:
        """The running state as plain tuples (see ``Supervisor.snapshot_state``
        for why not a pickle of the object)."""
        return (_STATE_TAG, self.fast.dump(), self.slow.dump(), self.direction, self._last_entry_dir,
                self._block_reported, self._bar, self.journal_coach.dump())  # fmt: skip

    def restore_state(self, state: tuple[Any, ...]) -> None:
        """Load :meth:`snapshot_state` output into this (freshly built) strategy;
        ``ValueError`` when it does not fit the configured SMA periods, and
        then the strategy keeps the state it had."""
        if not isinstance(state, tuple) or not state or state[0] != _STATE_TAG:
            raise ValueError(
                "the stored strategy state is not an sma_cross state of this version: "
                "the stored strategy was built from a differently shaped configuration"
            )
        before = self.snapshot_state()
        try:
            self._load(state)
        except BaseException:
            self._load(before)
            raise

    def _load(self, state: tuple[Any, ...]) -> None:
        _, fast, slow, direction, last_dir, block_reported, bar, journal = state
        self.fast.load(fast)
        self.slow.load(slow)
        self.journal_coach.load(journal)
        self.direction, self._last_entry_dir, self._block_reported, self._bar = (
            direction, last_dir, block_reported, bar
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {"strategy": self.name, "bar": self._bar, "direction": self.direction}
