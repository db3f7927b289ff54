"""Closed candles per second through the full strategy (Supervisor and sma_cross).

Usage: ``python bench/strategy_throughput.py [--candles 100000] [--seed 1] [--profile]``

Candles: a seeded numpy random walk of one-minute BTC bars (GARCH-like
volatility clustering, wicks, log-normal volume with some zero-volume bars),
built before timing. Funding arrives every 480 candles (8 h).

Two account models, so that both the quiet path and the decision path are
measured:

- ``sim``: a minimal in-bench fill model gives the strategy a realistic
  account (limit fills when the bar trades through the price, market fills at
  the next open, bracket stop/target exits; fill and trade_closed events are
  fed back to ``on_broker_event``). This is the number to quote.
- ``flat``: the account is always flat with no working order, so the
  Supervisor searches, sizes and gates a setup on every candle (worst case).

Each run is recorded once (account views, broker events, funding) and then
replayed into fresh strategies: the time is the strategy's alone
(``on_candle`` + ``on_broker_event`` + ``on_funding``), reported as CPU time
(stable on a shared machine) and wall time, best of ``--repeat`` replays.
``--profile`` prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from typing import Any

import numpy as np

from laptop_agents.config import AppConfig, StrategyConfig
from laptop_agents.domain.contracts import AccountView, Strategy
from laptop_agents.domain.events import Decision, Event, FillEvent, TradeClosed
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    FundingRate,
    OrderIntent,
    OrderType,
)
from laptop_agents.strategy import build_strategy

T0 = 1_700_000_000_000
MINUTE = 60_000


def make_candles(n: int, seed: int) -> list[Candle]:
    """A seeded random walk with volatility clustering; prices on a 0.1 tick."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    var = np.empty(n)
    base = 0.0009**2
    v, r_prev = base, 0.0
    for i in range(n):  # GARCH(1,1) variance path
        v = base * 0.02 + 0.08 * r_prev * r_prev + 0.90 * v
        var[i] = v
        r_prev = z[i] * np.sqrt(v)
    rets = z * np.sqrt(var)
    closes = 60_000.0 * np.exp(np.cumsum(rets))
    opens = np.concatenate(([60_000.0], closes[:-1]))
    wick = np.sqrt(var) * 0.6
    highs = np.maximum(opens, closes) * np.exp(np.abs(rng.standard_normal(n)) * wick)
    lows = np.minimum(opens, closes) * np.exp(-np.abs(rng.standard_normal(n)) * wick)
    vols = rng.lognormal(mean=3.0, sigma=0.8, size=n) * (1.0 + 200.0 * np.abs(rets))
    vols[rng.random(n) < 0.01] = 0.0
    out: list[Candle] = []
    for i in range(n):
        o = round(float(opens[i]), 1)
        c = round(float(closes[i]), 1)
        h = max(round(float(highs[i]), 1), o, c)
        lo = min(round(float(lows[i]), 1), o, c)
        out.append(Candle(T0 + i * MINUTE, o, h, lo, c, round(float(vols[i]), 4)))
    return out


class MiniAccount:
    """Just enough broker to give the strategy a realistic account: not the
    product's PaperBroker (no fees, slippage, partials or limits)."""

    def __init__(self, equity: float) -> None:
        self.equity = equity
        self.pos = 0.0
        self.entry = 0.0
        self.entry_ts = 0
        self.stop: float | None = None
        self.target: float | None = None
        self.working: dict[str, OrderIntent] = {}
        self.view = AccountView(ts=0, equity=equity)
        self.dirty = False

    def _open(self, o: OrderIntent, price: float, ts: int, events: list[Event]) -> None:
        sign = 1.0 if o.side.value == "BUY" else -1.0
        rest = o.qty - abs(self.pos)
        if self.pos != 0.0:  # net against the position (sma_cross reversals)
            events.append(self._close(price, ts, "reverse"))
        if o.reduce_only or rest <= 0.0:
            return
        self.pos, self.entry, self.entry_ts = sign * rest, price, ts
        self.stop, self.target = o.stop, o.target
        events.append(FillEvent(ts, o.client_id, o.side, o.qty, price, 0.0, "taker", "entry"))

    def _close(self, price: float, ts: int, reason: str) -> Event:
        pnl = (price - self.entry) * self.pos
        self.equity += pnl
        ev = TradeClosed(ts, "long" if self.pos > 0 else "short", abs(self.pos), self.entry_ts, self.entry, ts,
                         price, pnl, 0.0, 0.0, pnl, reason, "")
        self.pos, self.stop, self.target = 0.0, None, None
        return ev

    def on_candle(self, c: Candle) -> list[Event]:
        events: list[Event] = []
        for cid, o in list(self.working.items()):
            if o.type is OrderType.MARKET:
                del self.working[cid]
                self._open(o, c.open, c.ts, events)
            elif o.price is not None and c.low <= o.price <= c.high:
                del self.working[cid]
                self._open(o, o.price, c.ts, events)
        if self.pos != 0.0:
            long = self.pos > 0
            if self.stop is not None and (c.low <= self.stop if long else c.high >= self.stop):
                events.append(self._close(self.stop, c.ts, "stop"))
            elif self.target is not None and (c.high >= self.target if long else c.low <= self.target):
                events.append(self._close(self.target, c.ts, "target"))
        if events:
            self.dirty = True
        return events

    def apply(self, intents: list[Any]) -> None:
        for it in intents:
            self.dirty = True
            if isinstance(it, CancelIntent):
                self.working.pop(it.client_id, None)
            else:
                self.working[it.client_id] = it

    def account(self, ts: int) -> AccountView:
        if self.dirty:  # the Engine would build one per candle; the bench only when it changed
            self.view = AccountView(ts=ts, equity=self.equity, position_qty=self.pos, entry_price=self.entry,
                                    working_orders=tuple(self.working))
            self.dirty = False
        return self.view


Step = tuple[Candle, AccountView, list[Event], FundingRate | None]


def record(strategy: Strategy, candles: list[Candle], mode: str) -> tuple[list[Step], dict[str, int]]:
    """Drive ``strategy`` once and record every input it saw (account views,
    broker events, funding). The strategy is deterministic, so a fresh one fed
    the same script makes the same decisions: replaying the script measures
    the strategy alone, without the fill model's cost."""
    acct = MiniAccount(10_000.0)
    flat = AccountView(ts=0, equity=10_000.0)
    counts: dict[str, int] = {}
    script: list[Step] = []
    for i, c in enumerate(candles):
        funding = FundingRate(c.ts, 0.0001 if (i // 480) % 5 else 0.0004) if i % 480 == 0 else None
        if funding is not None:
            strategy.on_funding(funding)
        broker_events = acct.on_candle(c) if mode == "sim" else []
        view = acct.account(c.ts) if mode == "sim" else flat
        out = strategy.on_candle(c, view)
        journal = [j for e in broker_events for j in strategy.on_broker_event(e)]
        if mode == "sim":
            acct.apply(out.intents)
        script.append((c, view, broker_events, funding))
        for e in out.events + journal:
            key = f"decision:{e.action}" if isinstance(e, Decision) else e.kind
            counts[key] = counts.get(key, 0) + 1
    return script, counts


def replay(strategy: Strategy, script: list[Step]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the strategy over the recorded script."""
    on_candle, on_event, on_funding = strategy.on_candle, strategy.on_broker_event, strategy.on_funding
    cpu, wall = time.thread_time(), time.perf_counter()
    for c, view, broker_events, funding in script:
        if funding is not None:
            on_funding(funding)
        on_candle(c, view)
        for e in broker_events:
            on_event(e)
    return time.thread_time() - cpu, time.perf_counter() - wall


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--candles", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="best of N replays (the machine is shared)")
    ap.add_argument("--profile", action="store_true", help="cProfile the default strategy (sim mode)")
    args = ap.parse_args()

    t = time.perf_counter()
    candles = make_candles(args.candles, args.seed)
    print(f"generated {len(candles):,} one-minute candles in {time.perf_counter() - t:.2f} s (not timed below)")
    print(f"{'strategy':10s} {'account':7s} {'cpu candles/s':>14s} {'wall candles/s':>15s}  events")
    scripts: dict[str, list[Step]] = {}
    for name in ("default", "tight", "sma_cross"):
        cfg = AppConfig(strategy=StrategyConfig(name=name))
        for mode in ("sim", "flat"):
            if name == "sma_cross" and mode == "flat":
                continue
            script, counts = record(build_strategy(cfg), candles, mode)
            scripts[f"{name}/{mode}"] = script
            best_cpu = best_wall = float("inf")
            for _ in range(args.repeat):
                cpu, wall = replay(build_strategy(cfg), script)
                best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
            n = len(candles)
            print(f"{name:10s} {mode:7s} {n / best_cpu:14,.0f} {n / best_wall:15,.0f}  {counts}")

    if args.profile:
        strat = build_strategy(AppConfig())
        prof = cProfile.Profile()
        prof.enable()
        replay(strat, scripts["default/sim"])
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(16)
        print(buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
