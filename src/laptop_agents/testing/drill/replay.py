"""The reference: the market of a run replayed through the product's own
Engine, in memory, with the run's routing (each candle traded or warmed, as
the run's routing lines say).

The drill's market is built so that nothing but the routing can change an
Engine's decisions: the candles are the fake's seeded ones (the same from
the websocket and from REST), funding is constant, and every push of a
candle carries its final values (whatever push a session saw last, a market
order meets the close). So a run whose ledger (fills, closed trades,
position) differs from the replay of its own routing lost, doubled or
invented something -- whatever the faults did to it.

Blind candles (routing unknown: their line could not be written on a full
disk) are settled by the ledger: both ways are tried and the ones whose
fills disagree with the run's store are dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from laptop_agents.config import AppConfig
from laptop_agents.domain.models import Candle, FundingRate
from laptop_agents.engine import Engine, build_engine
from laptop_agents.strategy import build_strategy

FILL_KEYS = ("ts", "client_id", "side", "qty", "price", "fee", "liquidity", "reason")
TRADE_KEYS = ("client_id", "side", "qty", "entry_ts", "entry_price", "exit_ts", "exit_price", "pnl", "fees",
              "funding", "net_pnl", "exit_reason")
MAX_BRANCHES = 32


def fill_row(f: Any) -> dict[str, Any]:
    side = getattr(f.side, "value", f.side)
    return {"ts": f.ts, "client_id": f.client_id, "side": str(side), "qty": f.qty, "price": f.price, "fee": f.fee,
            "liquidity": f.liquidity, "reason": f.reason}


def key_of(row: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in keys)


@dataclass
class Replayed:
    fills: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    position_qty: float = 0.0
    equity: float = 0.0
    candles: int = 0
    blind_resolved: int = 0
    branches_max: int = 1
    settled: bool = True  # False: a blind candle could not be settled by the ledger


@dataclass
class _Branch:
    engine: Engine
    fills: list[dict[str, Any]]
    trades: list[dict[str, Any]]


def replay(config: AppConfig, candle_at: Callable[[int], Candle], routes: Mapping[int, str], blind: set[int],
           first_ts: int, last_ts: int, step: int, *, funding_rate: float,
           ledger: list[dict[str, Any]] | None = None) -> Replayed:
    """Feed candles ``first_ts..last_ts`` through a fresh Engine as routed.

    ``ledger`` (the run's fills, oldest first) settles blind candles; without
    it a blind candle is warmed (the conservative guess)."""
    engine = build_engine(config, build_strategy(config))
    branches = [_Branch(engine, [], [])]
    funded = False
    out = Replayed()
    want = [key_of(r, FILL_KEYS) for r in ledger] if ledger is not None else None
    ts = first_ts
    while ts <= last_ts:
        route = routes.get(ts)
        candle = candle_at(ts)
        if not funded and route in ("trade", "late"):
            for b in branches:
                b.engine.on_funding(FundingRate(ts, funding_rate))
            funded = True
        if route is None and ts in blind:
            out.blind_resolved += 1
            nxt: list[_Branch] = []
            for b in branches:
                twin = _Branch(copy.deepcopy(b.engine), list(b.fills), list(b.trades))
                _step(b, candle, "trade")
                _step(twin, candle, "warmup")
                nxt += [b, twin]
            branches = _prune(nxt, want)
            if not funded:
                for b in branches:
                    b.engine.on_funding(FundingRate(ts, funding_rate))
                funded = True
        elif route is not None:
            for b in branches:
                _step(b, candle, route)
            if want is not None and len(branches) > 1:
                branches = _prune(branches, want)
        out.branches_max = max(out.branches_max, len(branches))
        out.candles += 1
        ts += step
    if want is not None:
        full = [b for b in branches if [key_of(r, FILL_KEYS) for r in b.fills] == want]
        if full:
            branches = full
        elif len(branches) > 1:
            out.settled = False
    best = branches[0]
    out.fills, out.trades = best.fills, best.trades
    status = best.engine.status()
    out.position_qty = float(status.position.qty)
    out.equity = float(status.equity)
    return out


def _step(b: _Branch, candle: Candle, route: str) -> None:
    result = b.engine.on_candle(candle) if route == "trade" else b.engine.warmup(candle)
    b.fills.extend(fill_row(f) for f in result.fills)
    for ev in result.events:
        d = ev.to_dict()  # the journal's JSON edge: stable whatever the event classes look like
        if d.get("kind") == "trade_closed":
            b.trades.append({k: d.get(k) for k in TRADE_KEYS})


def _prune(branches: list[_Branch], want: list[tuple[Any, ...]] | None) -> list[_Branch]:
    """Keep the branches whose fills so far are a prefix of the run's ledger
    (all of them without a ledger), at most ``MAX_BRANCHES``."""
    if want is not None:
        kept = [b for b in branches if [key_of(r, FILL_KEYS) for r in b.fills] == want[: len(b.fills)]]
        branches = kept or branches[:1]
    return branches[:MAX_BRANCHES]
