"""What watching costs a live session: candle latency with the dashboard open vs without.

The real AsyncRunner on the mock source (default strategy, state store on disk,
run files and events.jsonl as in a live run) at a fixed candle cadence, in
four set-ups:

- ``none``: no console at all (the baseline);
- ``sse``: the dashboard (with /metrics) and N event-stream clients reading
  it continuously from another process (a browser tab each, minus the drawing);
- ``browser``: the dashboard open in a real headless Chromium (Debian's, driven
  by Playwright in another process), drawing its charts on every update;
- ``hung-alerts``: alerts on, to a webhook that never answers (the notifier's
  thread is stuck in its delivery the whole time).

For each it prints p50/p99/max of three spans:

- *commit*: candle arrival in the runner -> decision committed to the store;
- *published*: arrival -> journaled, reported and handed to the console;
- *lateness*: the candle's scheduled wall time (its close at the mock's speed)
  -> committed: this one also sees a busy event loop delaying the source.

Target (issue 13): p99 within 2x of the baseline with a browser attached.

    .venv/bin/python bench/dashboard_latency.py [--candles 1500] [--rate 50] [--clients 8] [--only none,sse]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from laptop_agents.config import load_config
from laptop_agents.engine import build_engine
from laptop_agents.report import RunWriter
from laptop_agents.session.guards import LatencyStats
from laptop_agents.session.parts import ConsoleOptions
from laptop_agents.session.runner import AsyncRunner, RunnerOptions, SessionParts
from laptop_agents.sources.factory import SessionSource
from laptop_agents.sources.mock import MockSource
from laptop_agents.store import EventJournal, StateStore
from laptop_agents.strategy import build_strategy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

SSE_CLIENTS = r"""
import sys, threading, httpx
url, n = sys.argv[1], int(sys.argv[2])
def read():
    with httpx.Client(timeout=None) as c, c.stream("GET", url + "api/stream") as r:
        for _ in r.iter_bytes():
            pass
ts = [threading.Thread(target=read, daemon=True) for _ in range(n)]
for t in ts: t.start()
print("ready", flush=True)
for t in ts: t.join()
"""

BROWSER = r"""
import sys, tempfile
from playwright.sync_api import sync_playwright
url, exe = sys.argv[1], sys.argv[2]
flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
with sync_playwright() as pw, tempfile.TemporaryDirectory() as prof:
    ctx = pw.chromium.launch_persistent_context(prof, executable_path=exe, headless=True, args=flags,
                                                viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function("() => window.__dashboard && window.__dashboard.updates > 1", timeout=60000)
    print("ready", flush=True)
    sys.stdin.read()
    print(page.evaluate("() => window.__dashboard.updates"), flush=True)
    ctx.close()
"""


class _Hang(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(3600)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _stats(values_ms: list[float]) -> dict[str, float]:
    s = sorted(values_ms)
    if not s:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(0.99 * len(s)))], "max": s[-1]}


def _lat(stats: LatencyStats) -> dict[str, float]:
    snap = stats.snapshot()
    return {"p50": float(snap["p50_ms"] or 0), "p99": float(snap["p99_ms"] or 0), "max": float(snap["max_ms"] or 0)}


async def one(setup: str, root: Path, candles: int, rate: float, clients: int) -> dict[str, Any]:
    speed = 60.0 * rate  # 1-minute candles, ``rate`` per wall second
    config = load_config("paper", {"trading.speed": speed, "trading.duration_min": 60.0 * 24 * 365,
                                   "trading.warmup_bars": 200, "system.max_errors_per_session": 1_000_000},
                         environ={}).config
    run_dir = root / "runs" / setup
    mock = MockSource(config.trading)
    source = SessionSource(mock, mock.now_ms, speed, live=True, description="mock bench")
    parts = SessionParts(engine=build_engine(config, build_strategy(config)), store=StateStore(root / f"{setup}.db"),
                         journal=EventJournal(run_dir / "events.jsonl"), source=source, writer=RunWriter(run_dir))
    console = ConsoleOptions(dashboard_port=0)
    hang_server = None
    if setup == "hung-alerts":
        hang_server = ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
        hang_server.daemon_threads = True
        threading.Thread(target=hang_server.serve_forever, daemon=True).start()
        console = ConsoleOptions(notify_urls=(f"json://127.0.0.1:{hang_server.server_address[1]}/hook",),
                                 notify_timeout_s=3600.0, watch_interval_s=0.5)
    options = RunnerOptions(run_id=setup, run_dir=run_dir, heartbeat_path=root / "heartbeat.json",
                            kill_file=root / "kill.txt", install_signal_handlers=False, workspace=root,
                            dashboard=setup in ("sse", "browser"), console=console)
    runner = AsyncRunner(config, parts, options, print_fn=lambda _s: None)
    interval_s = 60.0 / speed
    lateness: list[float] = []
    step = runner.step
    original = step.candle

    async def timed(candle: Any, arrived_ns: int, arrived_cpu_ns: int = 0) -> None:
        await original(candle, arrived_ns, arrived_cpu_ns)
        if mock._t0 is not None:
            due = mock._t0 + (candle.ts + 60_000 - mock.start_ms) / 1000.0 / speed
            lateness.append((time.monotonic() - due) * 1000.0)

    step.candle = timed  # type: ignore[method-assign]
    helper: subprocess.Popen[str] | None = None
    info: dict[str, Any] = {}

    async def drive() -> None:
        nonlocal helper
        if setup in ("sse", "browser"):
            while runner.console is None or runner.console.dashboard is None or runner.console.dashboard.port is None:
                await asyncio.sleep(0.02)
            url = runner.console.dashboard.url
            code, args = (SSE_CLIENTS, [url, str(clients)]) if setup == "sse" else (BROWSER, [url, CHROMIUM])
            helper = subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
            assert helper.stdout is not None
            line = await asyncio.to_thread(helper.stdout.readline)
            assert line.strip() == "ready", f"{setup} helper did not start"
        start = runner.counts["candles"]
        runner.state.latency = LatencyStats()  # measure only while watched
        runner.state.step_latency = LatencyStats()
        lateness.clear()
        while runner.counts["candles"] < start + candles:
            await asyncio.sleep(0.05)
        info["pushes"] = runner.console.dashboard.dashboard.pushes if runner.console and runner.console.dashboard else 0
        (root / "kill.txt").write_text("bench done\n")

    driver = asyncio.create_task(drive())
    t0 = time.perf_counter()
    outcome = await runner.run()
    wall = time.perf_counter() - t0
    await driver
    if helper is not None:
        if setup == "browser":
            out, _ = helper.communicate("\n", timeout=60)
            info["browser_updates"] = out.strip()
        else:
            helper.kill()
            helper.wait()
    if hang_server is not None:
        hang_server.shutdown()
    (root / "kill.txt").unlink(missing_ok=True)
    return {"setup": setup, "commit": _lat(runner.latency), "published": _lat(runner.step_latency),
            "lateness": _stats(lateness), "n": len(lateness), "reason": outcome.reason.value, "wall": wall,
            "interval_ms": interval_s * 1000, **info}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candles", type=int, default=1500, help="candles measured per set-up")
    ap.add_argument("--rate", type=float, default=50.0, help="candles per wall second")
    ap.add_argument("--clients", type=int, default=8, help="event-stream clients in the sse set-up")
    ap.add_argument("--only", default="none,sse,browser,hung-alerts")
    args = ap.parse_args()
    logging.getLogger("laptop_agents").setLevel(logging.WARNING)
    setups = [s for s in args.only.split(",") if s]
    if "browser" in setups and not Path(CHROMIUM).exists():
        print("browser set-up skipped: no chromium (make chromium)")
        setups.remove("browser")
    load0 = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results = []
    with tempfile.TemporaryDirectory(prefix="la-bench-") as tmp:
        for setup in setups:
            root = Path(tmp) / setup
            root.mkdir()
            results.append(asyncio.run(one(setup, root, args.candles, args.rate, args.clients)))
    print(f"dashboard_latency: {args.candles} candles per set-up at {args.rate:g}/s, default strategy, disk store")
    print(f"  machine: {os.cpu_count()} cores, load average {load0} at start, "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at end")
    base = next((r for r in results if r["setup"] == "none"), None)
    for r in results:
        extra = ""
        if r["setup"] == "sse":
            extra = f"  ({args.clients} clients, {r.get('pushes', 0)} pushes)"
        elif r["setup"] == "browser":
            extra = f"  (Chromium drew {r.get('browser_updates', '?')} updates)"
        print(f"  {r['setup']:<12} n={r['n']}{extra}")
        for span in ("commit", "published", "lateness"):
            s = r[span]
            ratio = ""
            if base is not None and r is not base and base[span]["p99"] > 0:
                ratio = f"   p99 x{s['p99'] / base[span]['p99']:.2f} of none"
            print(f"    {span:<10} p50 {s['p50']:7.3f} ms   p99 {s['p99']:7.3f} ms   max {s['max']:8.3f} ms{ratio}")
    if base is not None:
        worst = max((r["commit"]["p99"] / base["commit"]["p99"] for r in results if r is not base), default=1.0)
        print(f"  target: commit p99 within 2x of none with the dashboard watched -> worst x{worst:.2f} "
              f"({'met' if worst <= 2.0 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
