"""Deterministic test strategies implementing the ``Strategy`` protocol.

``ChurnStrategy`` trades a lot on purpose (market and limit entries, brackets,
trailing stops, reversals, cancels, the odd repeated client id) from a seeded
generator kept in its own state, so a snapshot/restore or a crash/restart must
reproduce its decisions exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from laptop_agents.domain.contracts import AccountView, Intent, StrategyOutput
from laptop_agents.domain.events import Decision, Event, FillEvent, Journal
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    FundingRate,
    OrderIntent,
    OrderType,
    Side,
)


class ScriptedStrategy:
    """Emits the intents a script returns for each candle; records what it saw."""

    def __init__(
        self, script: Callable[[Candle, AccountView], list[Intent]] | None = None, name: str = "scripted"
    ) -> None:
        self.name = name
        self.script = script
        self.views: list[AccountView] = []
        self.broker_events: list[str] = []
        self.warmed: list[int] = []
        self.funding: list[float] = []

    def warmup(self, candle: Candle) -> None:
        self.warmed.append(candle.ts)

    # The script is code (a closure), so only the recorded data is state.
    def snapshot_state(self) -> tuple[list[int], list[float]]:
        return list(self.warmed), list(self.funding)

    def restore_state(self, state: tuple[list[int], list[float]]) -> None:
        self.warmed, self.funding = list(state[0]), list(state[1])

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        self.views.append(account)
        intents = self.script(candle, account) if self.script else []
        return StrategyOutput(
            intents=list(intents), events=[Decision(candle.ts, "scripted")]
        )

    def on_funding(self, funding: FundingRate) -> None:
        self.funding.append(funding.rate)

    def on_broker_event(self, event: Event) -> list[Event]:
        self.broker_events.append(event.kind)
        if isinstance(event, FillEvent):
            return [Journal(event.ts, f"filled {event.client_id}")]
        return []


class ChurnStrategy:
    """A busy, seeded, deterministic trader for crash and property tests."""

    name = "churn"

    def __init__(self, seed: int = 1, qty: float = 0.1) -> None:
        self.rng = random.Random(seed)
        self.qty = qty
        self.n = 0
        self.last_ids: list[str] = []
        self.fills_seen = 0
        self.funding_rate = 0.0

    def warmup(self, candle: Candle) -> None:
        self.n += 1

    # Everything that changes while trading, the generator's state included,
    # so that a restore continues with the very same draws.
    def snapshot_state(self) -> tuple[Any, ...]:
        return ("churn/1", self.rng.getstate(), self.n, tuple(self.last_ids), self.fills_seen, self.funding_rate)

    def restore_state(self, state: tuple[Any, ...]) -> None:
        if not isinstance(state, tuple) or not state or state[0] != "churn/1":
            raise ValueError("not a churn state")
        _, rng, self.n, last_ids, self.fills_seen, self.funding_rate = state
        self.rng.setstate(rng)
        self.last_ids = list(last_ids)

    def on_funding(self, funding: FundingRate) -> None:
        self.funding_rate = funding.rate

    def on_broker_event(self, event: Event) -> list[Event]:
        if event.kind == "fill":
            self.fills_seen += 1
        return []

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        self.n += 1
        r = self.rng
        out = StrategyOutput()
        roll = r.random()
        px = candle.close
        if roll < 0.08:
            side = Side.BUY if r.random() < 0.5 else Side.SELL
            s = side.sign
            risk = px * r.uniform(0.002, 0.01)
            cid = f"c{self.n}"
            limit = r.random() < 0.5
            price = px - s * risk * r.uniform(0.0, 1.0) if limit else None
            entry = price if price is not None else px
            out.intents.append(
                OrderIntent(
                    client_id=cid,
                    side=side,
                    type=OrderType.LIMIT if limit else OrderType.MARKET,
                    qty=round(self.qty * r.uniform(0.2, 2.0), 4),
                    price=round(price, 1) if price is not None else None,
                    stop=round(entry - s * risk, 1),
                    target=round(entry + s * risk * r.uniform(1.0, 3.0), 1) if r.random() < 0.7 else None,
                    trailing=r.random() < 0.4,
                    reason="churn",
                    expire_ts=candle.ts + r.choice((5, 30, 2000)) * 60_000 if limit else None,
                )
            )
            self.last_ids = [*self.last_ids[-4:], cid]
        elif 0.08 <= roll < 0.10 and account.position_qty != 0:
            side = Side.SELL if account.position_qty > 0 else Side.BUY
            qty = abs(account.position_qty) * r.choice((0.5, 1.0, 2.0))
            out.intents.append(OrderIntent(f"x{self.n}", side, OrderType.MARKET, round(max(qty, 0.0001), 4)))
        elif 0.10 <= roll < 0.12 and account.working_orders:
            out.intents.append(CancelIntent(account.working_orders[0], reason="churn_cancel"))
        elif 0.12 <= roll < 0.125 and self.last_ids:
            # A repeated client id (e.g. a retry): must never fill twice.
            cid = r.choice(self.last_ids)
            out.intents.append(OrderIntent(cid, Side.BUY, OrderType.MARKET, self.qty))
        if roll < 0.10:
            out.events.append(Decision(candle.ts, "enter", context={"n": self.n}))
        return out
