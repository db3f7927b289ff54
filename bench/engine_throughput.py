"""Candles per second through Engine + paper broker, with and without the state store.

Usage: ``python bench/engine_throughput.py [--candles 30000] [--seed 1] [--full]``

Candles come from the seeded synthetic BTC market (1-minute bars with
volatility clustering, gaps and spikes), generated before timing. Funding
arrives every 8 h of event time. Lines:

- ``engine``: Engine + broker + strategy, no persistence (the backtest loop);
- ``engine+sqlite(:memory:)``: plus a state-store commit per candle, in memory;
- ``engine+sqlite(disk)``: plus a commit per candle to a WAL file
  (``synchronous=NORMAL``: durable against kill -9, see store/state.py);
- with ``--full`` also ``synchronous=FULL`` (one fsync per candle).

Strategies: ``null`` (never trades: the Engine + broker overhead alone),
``churn`` (a busy scripted trader: the broker's fill paths), the real
``default`` Supervisor and ``sma_cross`` from ``build_strategy``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from laptop_agents.config import AppConfig
from laptop_agents.domain.contracts import AccountView, Strategy, StrategyOutput
from laptop_agents.domain.events import Event
from laptop_agents.domain.models import (
    Candle,
    FundingRate,
    OrderIntent,
    OrderType,
    Side,
)
from laptop_agents.engine import build_engine
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.store import StateStore

T0 = 1_699_920_000_000
FUNDING_MS = 8 * 3_600_000


class NullStrategy:
    """Never trades: measures what the Engine and broker cost by themselves."""

    name = "null"

    def warmup(self, candle: Candle) -> None:
        pass

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        return StrategyOutput()

    def on_funding(self, funding: FundingRate) -> None:
        pass

    def on_broker_event(self, event: Event) -> list[Event]:
        return []

    def snapshot_state(self) -> tuple[Any, ...]:
        return ("null/1",)

    def restore_state(self, state: tuple[Any, ...]) -> None:
        pass


class ChurnStrategy(NullStrategy):
    """Enters on ~5 % of candles with a bracket: exercises fills, stops, trailing."""

    name = "churn"

    def __init__(self) -> None:
        self.rng = random.Random(3)
        self.n = 0

    def snapshot_state(self) -> tuple[Any, ...]:
        return ("churn/1", self.n, self.rng.getstate())

    def restore_state(self, state: tuple[Any, ...]) -> None:
        _, self.n, rng = state
        self.rng.setstate(rng)

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        self.n += 1
        if account.position_qty or self.rng.random() > 0.05:
            return StrategyOutput()
        side = Side.BUY if self.rng.random() < 0.5 else Side.SELL
        risk = candle.close * 0.003
        return StrategyOutput(
            intents=[
                OrderIntent(
                    f"c{self.n}", side, OrderType.MARKET, 0.1,
                    stop=candle.close - side.sign * risk, target=candle.close + side.sign * 2 * risk,
                    trailing=True,
                )
            ]
        )  # fmt: skip


def _strategies() -> list[tuple[str, Callable[[AppConfig], Strategy]]]:
    out: list[tuple[str, Callable[[AppConfig], Strategy]]] = [
        ("null", lambda cfg: NullStrategy()),
        ("churn", lambda cfg: ChurnStrategy()),
    ]
    try:
        from laptop_agents.strategy import build_strategy
    except ImportError:  # pragma: no cover - the strategy layer is part of the product
        print("(laptop_agents.strategy.build_strategy not available: real strategies skipped)")
        return out
    out.append(("default", lambda cfg: build_strategy(cfg)))
    out.append(
        ("sma_cross", lambda cfg: build_strategy(cfg.model_copy(update={"strategy": cfg.strategy.model_copy(update={"name": "sma_cross"})})))
    )  # fmt: skip
    return out


def _written() -> int | None:
    """Bytes this process handed to write() so far (Linux; None elsewhere)."""
    try:
        return int(psutil.Process().io_counters().write_chars)
    except (AttributeError, psutil.Error):
        return None


def run(
    candles: list[Candle],
    funding: dict[int, float],
    make: Callable[[AppConfig], Strategy],
    store: StateStore | None,
) -> tuple[float, float, int, int, float | None]:
    cfg = AppConfig()
    engine = build_engine(cfg, make(cfg))
    on_candle, on_funding = engine.on_candle, engine.on_funding
    commit = store.commit if store is not None else None
    w0 = _written()
    t0, c0 = time.perf_counter(), time.process_time()
    for c in candles:
        rate = funding.get(c.ts)
        if rate is not None:
            on_funding(FundingRate(c.ts, rate))
        r = on_candle(c)
        if commit is not None:
            commit(engine, r)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    w1 = _written()
    per_candle = (w1 - w0) / len(candles) if w0 is not None and w1 is not None else None
    return (
        len(candles) / dt,
        len(candles) / max(cpu, 1e-9),
        engine.broker.fill_count,
        engine.broker.trades_closed,
        per_candle,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="also measure synchronous=FULL (slow on most disks)")
    args = ap.parse_args(argv)

    market = SyntheticMarket(args.seed, T0)
    candles = market.candles(0, args.candles)
    funding = {c.ts: market.funding_rate(c.ts) for c in candles if c.ts % FUNDING_MS == 0}
    print(
        f"engine throughput: {args.candles} synthetic 1m candles, seed {args.seed}, python {sys.version.split()[0]}"
    )
    print("candles/s = wall clock; per CPU-s = this process's CPU time (less noisy on a busy machine);")
    print("B/candle = bytes written per candle by the state store (WAL frames and checkpoints)")
    print(f"{'strategy':<10} {'mode':<26} {'candles/s':>12} {'per CPU-s':>12} {'fills':>7} {'trades':>7} {'B/candle':>9}")
    with tempfile.TemporaryDirectory(prefix="la-bench-") as tmp:
        for name, make in _strategies():
            modes: list[tuple[str, str | None, str]] = [
                ("engine", None, ""),
                ("engine+sqlite(:memory:)", ":memory:", "NORMAL"),
                ("engine+sqlite(disk,NORMAL)", str(Path(tmp) / f"{name}-n.db"), "NORMAL"),
            ]
            if args.full:
                modes.append(("engine+sqlite(disk,FULL)", str(Path(tmp) / f"{name}-f.db"), "FULL"))
            for mode, where, sync in modes:
                store = StateStore(where, synchronous=sync) if where is not None else None
                try:
                    rate, cpu_rate, fills, trades, written = run(candles, funding, make, store)
                finally:
                    if store is not None:
                        store.close()
                on_disk = where not in (None, ":memory:") and written is not None
                per = f"{written:>9,.0f}" if on_disk else f"{'':>9}"
                print(
                    f"{name:<10} {mode:<26} {rate:>12,.0f} {cpu_rate:>12,.0f} {fills:>7} {trades:>7} {per}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
