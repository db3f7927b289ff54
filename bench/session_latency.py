"""Session latency and memory: the real AsyncRunner on the mock source at high speed.

Prints, for one mock session (default strategy, state store on disk with one
transaction per candle, events.jsonl and run files written as in a live run):

- p50/p99/max time from a candle's arrival in the runner to the engine's
  decision committed to the state store (and to journaled + reported);
- RSS after 10,000 candles and after 100,000 candles, and the growth.

Targets (issue 5): p99 < 2 ms; RSS growth < 10 MB.

    .venv/bin/python bench/session_latency.py [--candles 100000] [--memory-store] [--strategy NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from laptop_agents.config import load_config
from laptop_agents.engine import build_engine
from laptop_agents.report import RunWriter
from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
from laptop_agents.sources.factory import SessionSource
from laptop_agents.sources.mock import MockSource
from laptop_agents.store import EventJournal, StateStore
from laptop_agents.strategy import build_strategy


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 1_048_576


async def session(total: int, first_mark: int, root: Path, memory_store: bool, strategy: str) -> dict[str, object]:
    config = load_config("paper", {
        "trading.speed": 1_000_000.0,
        "trading.duration_min": 60.0 * 24 * 365,
        "trading.warmup_bars": 200,
        "strategy.name": strategy,
        "system.max_errors_per_session": 1_000_000,
    }, environ={}).config
    run_dir = root / "runs" / "bench"
    store = StateStore(":memory:" if memory_store else root / "state.db")
    engine = build_engine(config, build_strategy(config))
    mock = MockSource(config.trading)
    # No clock: the bench ends the session itself (kill file) after N candles, not by duration.
    source = SessionSource(mock, None, None, live=True, description="mock bench")
    parts = SessionParts(engine=engine, store=store, journal=EventJournal(run_dir / "events.jsonl"),
                         source=source, writer=RunWriter(run_dir))
    options = RunnerOptions(run_id="bench", run_dir=run_dir, heartbeat_path=root / "heartbeat.json",
                            kill_file=root / "kill.txt", install_signal_handlers=False, workspace=root)
    runner = AsyncRunner(config, parts, options, print_fn=lambda _s: None)
    marks: dict[str, float] = {}

    async def watch() -> None:
        t0 = time.perf_counter()
        while runner.counts["candles"] < first_mark:
            await asyncio.sleep(0.05)
        marks["rss_first"] = rss_mb()
        marks["t_first"] = time.perf_counter() - t0
        while runner.counts["candles"] < total:
            await asyncio.sleep(0.05)
        marks["rss_total"] = rss_mb()
        marks["t_total"] = time.perf_counter() - t0
        (root / "kill.txt").write_text("bench done\n")

    watcher = asyncio.create_task(watch())
    rss_start = rss_mb()
    outcome = await runner.run()
    watcher.cancel()
    return {
        "outcome": outcome,
        "runner": runner,
        "rss_start": rss_start,
        **marks,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candles", type=int, default=100_000)
    ap.add_argument("--first-mark", type=int, default=10_000)
    ap.add_argument("--memory-store", action="store_true", help="state store in memory instead of on disk")
    ap.add_argument("--strategy", default="default")
    ap.add_argument("--dir", default=None, help="where the temporary workspace goes (default: the system temp dir)")
    args = ap.parse_args()
    logging.getLogger("laptop_agents").setLevel(logging.WARNING)
    load0 = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="la-bench-", dir=args.dir) as tmp:
        res = asyncio.run(session(args.candles, args.first_mark, Path(tmp), args.memory_store, args.strategy))
    runner = res["runner"]
    assert isinstance(runner, AsyncRunner)
    c, s, u = runner.latency.snapshot(), runner.step_latency.snapshot(), runner.cpu_latency.snapshot()
    n = runner.counts["candles"]
    store = "memory" if args.memory_store else "disk (WAL, synchronous=NORMAL, one transaction per candle)"
    print(f"session_latency: mock source at 1,000,000x, strategy {args.strategy}, store {store}")
    print(f"  machine: {os.cpu_count()} cores, load average {load0} at start, "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at end")
    print(f"  candles processed        {n:,} in {res.get('t_total', float('nan')):.1f} s "
          f"({n / max(1e-9, float(res.get('t_total', 1))):,.0f} candles/s), stop reason {runner.reason}")
    print(f"  arrival -> committed     p50 {c['p50_ms']:.3f} ms   p99 {c['p99_ms']:.3f} ms   max {c['max_ms']:.3f} ms"
          f"   mean {c['mean_ms']:.4f} ms   (target p99 < 2 ms)")
    print(f"  same span, CPU time      p50 {u['p50_ms']:.3f} ms   p99 {u['p99_ms']:.3f} ms   max {u['max_ms']:.3f} ms"
          "   (this thread only: without preemption or I/O wait)")
    print(f"  arrival -> journaled     p50 {s['p50_ms']:.3f} ms   p99 {s['p99_ms']:.3f} ms   max {s['max_ms']:.3f} ms")
    r1, r2 = float(res["rss_first"]), float(res["rss_total"])
    print(f"  RSS at start             {float(res['rss_start']):.1f} MB")
    print(f"  RSS after {args.first_mark:>7,} candles {r1:.1f} MB")
    print(f"  RSS after {args.candles:>7,} candles {r2:.1f} MB   growth {r2 - r1:+.1f} MB   (target < 10 MB)")
    ok = (c["p99_ms"] or 99) < 2.0 and r2 - r1 < 10.0
    print(f"  targets {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
