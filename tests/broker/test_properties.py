"""Property tests over random candle and order sequences, checked against an
independent ledger rebuilt from the fills and funding events alone:

- equity == starting equity + realized PnL - fees - funding + unrealized;
- position quantity == signed sum of fills;
- no client id ever fills more than it asked for, a repeated id never fills;
- the trades' net PnL adds up to the ledger's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import AccountView, StrategyOutput
from laptop_agents.domain.events import Event, Funding, OrderEvent, TradeClosed
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    FundingRate,
    OrderIntent,
    OrderType,
    Side,
)
from laptop_agents.engine import build_engine
from tests.broker.helpers import MIN, T0


@dataclass
class Action:
    kind: str  # market | limit | cancel | dup | close
    side: Side
    qty: float
    offset: float  # limit distance, fraction of price
    stop: float | None  # fraction of price, None = no stop
    target: float | None
    trailing: bool
    reduce_only: bool


@dataclass
class Step:
    gap: int  # minutes since the previous candle
    ret: float
    up: float
    down: float
    volume: float
    funding: float | None
    actions: list[Action] = field(default_factory=list)


actions = st.builds(
    Action,
    kind=st.sampled_from(["market", "market", "limit", "limit", "cancel", "dup", "close"]),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    qty=st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0]),
    offset=st.floats(-0.01, 0.02),
    stop=st.one_of(st.none(), st.floats(0.001, 0.03)),
    target=st.one_of(st.none(), st.floats(0.001, 0.05)),
    trailing=st.booleans(),
    reduce_only=st.sampled_from([False, False, False, True]),
)
steps = st.builds(
    Step,
    gap=st.sampled_from([1, 1, 1, 1, 7, 60, 480, 1500]),
    ret=st.floats(-0.03, 0.03),
    up=st.floats(0.0, 0.02),
    down=st.floats(0.0, 0.02),
    volume=st.sampled_from([0.0, 2.0, 10.0, 50.0, 1000.0]),
    funding=st.one_of(st.none(), st.floats(-0.002, 0.002)),
    actions=st.lists(actions, max_size=3),
)


class Replayer:
    """Turns the drawn actions into intents, one candle at a time."""

    name = "replayer"

    def __init__(self, plan: list[Step]) -> None:
        self.plan = plan
        self.i = -1
        self.submitted: dict[str, float] = {}

    def warmup(self, candle: Candle) -> None:  # pragma: no cover - not used here
        pass

    def on_funding(self, funding: FundingRate) -> None:
        pass

    def on_broker_event(self, event: Event) -> list[Event]:
        return []

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        self.i += 1
        out = StrategyOutput()
        px = candle.close
        for k, a in enumerate(self.plan[self.i].actions):
            cid = f"o{self.i}_{k}"
            s = a.side.sign
            if a.kind == "cancel":
                if account.working_orders:
                    out.intents.append(CancelIntent(account.working_orders[0]))
                continue
            if a.kind == "dup":
                if self.submitted:
                    old = sorted(self.submitted)[k % len(self.submitted)]
                    out.intents.append(OrderIntent(old, a.side, OrderType.MARKET, a.qty))
                continue
            if a.kind == "close":
                if account.position_qty:
                    side = Side.SELL if account.position_qty > 0 else Side.BUY
                    out.intents.append(
                        OrderIntent(cid, side, OrderType.MARKET, abs(account.position_qty), reduce_only=True)
                    )
                    self.submitted[cid] = abs(account.position_qty)
                continue
            price = px * (1 - s * a.offset) if a.kind == "limit" else None
            ref = price if price is not None else px
            out.intents.append(
                OrderIntent(
                    cid,
                    a.side,
                    OrderType.LIMIT if price is not None else OrderType.MARKET,
                    a.qty,
                    price=price,
                    stop=ref * (1 - s * a.stop) if a.stop is not None else None,
                    target=ref * (1 + s * a.target) if a.target is not None else None,
                    trailing=a.trailing,
                    reduce_only=a.reduce_only,
                    expire_ts=candle.ts + 90 * MIN if a.offset > 0.015 else None,
                )
            )
            self.submitted[cid] = a.qty
        return out


class Ledger:
    """Average-cost position accounting rebuilt from fills, independent of the broker."""

    def __init__(self, inverse: bool) -> None:
        self.inverse = inverse
        self.qty = 0.0
        self.avg = 0.0
        self.realized = 0.0
        self.fees = 0.0
        self.funding = 0.0

    def pnl(self, q: float, entry: float, exit_: float) -> float:
        return q * (1 / entry - 1 / exit_) if self.inverse else q * (exit_ - entry)

    def fill(self, signed: float, price: float, fee: float) -> None:
        self.fees += fee
        if self.qty == 0 or self.qty * signed > 0:
            new = self.qty + signed
            if self.inverse:
                self.avg = abs(new) / ((abs(self.qty) / self.avg if self.qty else 0.0) + abs(signed) / price)
            else:
                self.avg = (abs(self.qty) * self.avg + abs(signed) * price) / abs(new)
            self.qty = new
            return
        close = min(abs(signed), abs(self.qty))
        self.realized += self.pnl(math.copysign(close, self.qty), self.avg, price)
        rest = abs(signed) - close
        self.qty += math.copysign(close, signed)
        if abs(self.qty) < 1e-9:
            self.qty = 0.0
        if rest > 1e-9:
            self.qty = math.copysign(rest, signed)
            self.avg = price


def build_candles(plan: list[Step]) -> list[Candle]:
    out = []
    ts = T0
    px = 30_000.0
    for st_ in plan:
        ts += st_.gap * MIN
        o = px
        c = max(o * (1 + st_.ret), 1.0)
        h = max(o, c) * (1 + st_.up)
        lo = min(o, c) * (1 - st_.down)
        out.append(Candle(ts, o, h, lo, c, st_.volume))
        px = c
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(steps, min_size=1, max_size=40), inverse=st.booleans(), lev=st.sampled_from([3.0, 20.0]))
def test_ledger_invariants_hold_for_random_sequences(plan: list[Step], inverse: bool, lev: float) -> None:
    config = AppConfig.model_validate(
        {
            "trading": {"symbol": "BTCUSD" if inverse else "BTCUSDT"},
            "risk": {"max_leverage": lev, "breaker_consecutive_losses": 3},
        }
    )
    if inverse:  # contracts are 1 USD each: scale the drawn sizes up
        for step in plan:
            for a in step.actions:
                a.qty = float(max(1, round(a.qty * 20_000)))
    strategy = Replayer(plan)
    engine = build_engine(config, strategy)
    ledger = Ledger(inverse)
    filled: dict[str, float] = {}
    exit_ids: set[str] = set()
    closed_net = 0.0
    candles = build_candles(plan)
    start = 10_000.0 / candles[0].open if inverse else 10_000.0
    for step, c in zip(plan, candles, strict=True):
        if step.funding is not None:
            engine.on_funding(FundingRate(c.ts - 1, step.funding))
        r = engine.on_candle(c)
        assert r.processed
        for f in r.fills:
            ledger.fill(f.side.sign * f.qty, f.price, f.fee)
            if f.client_id in strategy.submitted:
                filled[f.client_id] = filled.get(f.client_id, 0.0) + f.qty
            else:
                assert f.client_id not in exit_ids, f"broker exit id {f.client_id} used twice"
                exit_ids.add(f.client_id)
        for ev in r.events:
            if isinstance(ev, Funding):
                ledger.funding += ev.amount
            elif isinstance(ev, TradeClosed):
                closed_net += ev.net_pnl
            elif isinstance(ev, OrderEvent) and ev.status == "duplicate":
                assert ev.client_id in strategy.submitted
        # position == signed sum of fills
        assert abs(r.position_qty - ledger.qty) <= 1e-9 * max(1.0, abs(ledger.qty))
        # equity == start + realized - fees - funding + unrealized
        unreal = ledger.pnl(ledger.qty, ledger.avg, c.close) if ledger.qty else 0.0
        expected = start + ledger.realized - ledger.fees - ledger.funding + unreal
        assert math.isclose(r.equity, expected, rel_tol=1e-9, abs_tol=1e-9 * start), (r.equity, expected)
        # no client id fills more than it asked for (a repeated id adds nothing)
        for cid, q in filled.items():
            assert q <= strategy.submitted[cid] + 1e-9, cid
        # trades + the open trade add up to the ledger
        pos = engine.broker.position
        open_part = (pos.pnl - pos.fees - pos.funding) if pos is not None else 0.0
        assert math.isclose(
            closed_net + open_part,
            ledger.realized - ledger.fees - ledger.funding,
            rel_tol=1e-9,
            abs_tol=1e-9 * start,
        )
