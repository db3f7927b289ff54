"""Alerts from real sessions, delivered by apprise to a real HTTP server on 127.0.0.1:
every alert kind the issue lists, from the session that sees it; a notifier that hangs
or answers 500 never holds a candle up (structural: candles keep being committed while
the service holds the delivery, and the session ends on time)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from laptop_agents.session.parts import ConsoleOptions
from laptop_agents.sources.mock import MockFaults
from laptop_agents.stop_reasons import StopReason
from laptop_agents.testing.fake_exchange import start_fake_exchange
from tests.console.test_alerts import Receiver
from tests.session.helpers import PROJECT_ROOT, session_env, wait_until
from tests.session.live import config, session, until


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.release.set()
        r.server.shutdown()
        r.server.server_close()


def _titles(r: Receiver) -> list[str]:
    return [m["title"] for m in r.received]


def _alerts(urls: list[str], **kw: Any) -> ConsoleOptions:
    return ConsoleOptions(notify_urls=tuple(urls), watch_interval_s=0.05, notify_timeout_s=5.0, **kw)


def test_start_trades_daily_summary_kill_switch_and_stop(tmp_path: Path, receiver: Receiver) -> None:
    """A wall clock one second before midnight UTC (the session's injectable
    clock) brings the 00:00 daily summary within the test. It stands still until
    the first trade alert (the watcher then exists and has planned the summary for
    this midnight, however slow the start was), then runs."""
    midnight = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    running: list[float] = []

    def wall() -> float:
        return midnight - 1.0 + (time.monotonic() - running[0] if running else 0.0)

    runner = session(tmp_path, config(**{"risk.breaker_consecutive_losses": 1000}), plan="roundtrip", wall=wall,
                     console=_alerts([receiver.url("/ok")], daily_summary_hour_utc=0))

    async def main() -> Any:
        task = asyncio.create_task(runner.run())
        await until(lambda: "Trade opened: long" in _titles(receiver), what="the first trade alert")
        running.append(time.monotonic())
        await until(lambda: {"Daily summary 2026-03-02 [live-t]"} <= set(_titles(receiver))
                    and any(t.startswith("Trade closed") for t in _titles(receiver)), what="trades and summary")
        (tmp_path / "kill.txt").write_text(json.dumps({"reason": "test", "flatten": False}))
        return await asyncio.wait_for(task, 30)

    outcome = asyncio.run(main())
    assert outcome.reason is StopReason.KILL_SWITCH
    titles = _titles(receiver)
    assert titles[0] == "Session started [live-t]"
    assert "Trade opened: long" in titles
    assert "Kill switch [live-t]" in titles and titles[-1] == "Session stopped [live-t]: kill_switch"
    by = {m["title"]: m for m in receiver.received}
    assert "position kept" in by["Kill switch [live-t]"]["message"]
    assert "exit 0" in by["Session stopped [live-t]: kill_switch"]["message"]
    assert "trades closed today" in by["Daily summary 2026-03-02 [live-t]"]["message"]


def test_breaker_tripped(tmp_path: Path, receiver: Receiver) -> None:
    runner = session(tmp_path, config(**{"risk.breaker_consecutive_losses": 2}), plan="lose",
                     console=_alerts([receiver.url("/ok")]))

    async def main() -> Any:
        task = asyncio.create_task(runner.run())
        await until(lambda: "Breaker tripped" in _titles(receiver), what="breaker alert")
        runner.request_stop(StopReason.SIGNAL, "test")
        return await asyncio.wait_for(task, 30)

    asyncio.run(main())
    msg = {m["title"]: m for m in receiver.received}["Breaker tripped"]["message"]
    assert "consecutive_losses" in msg and "entries blocked until" in msg


def test_error_budget_half_then_exhausted(tmp_path: Path, receiver: Receiver) -> None:
    cfg = config(**{"trading.speed": 120.0, "system.max_errors_per_session": 6})
    runner = session(tmp_path, cfg, faults=MockFaults(error_every=1), console=_alerts([receiver.url("/ok")]))
    outcome = asyncio.run(asyncio.wait_for(runner.run(), 60))
    assert outcome.reason is StopReason.ERROR_BUDGET and outcome.exit_code == 5
    titles = _titles(receiver)
    assert titles.index("Error budget half spent") < titles.index("Error budget exhausted")
    stopped = receiver.received[-1]
    assert stopped["title"] == "Session stopped [live-t]: error_budget" and stopped["type"] == "failure"


def test_stale_data(tmp_path: Path, receiver: Receiver) -> None:
    cfg = config(**{"system.stale_timeout_s": 3.0})
    runner = session(tmp_path, cfg, faults=MockFaults(silence_after=3), console=_alerts([receiver.url("/ok")]))
    outcome = asyncio.run(asyncio.wait_for(runner.run(), 60))
    assert outcome.reason is StopReason.STALE_DATA
    titles = _titles(receiver)
    assert "Stale market data" in titles and titles[-1] == "Session stopped [live-t]: stale_data"


@pytest.mark.parametrize("path", ["/hang", "/fail"])
def test_a_hanging_or_failing_notifier_never_holds_a_candle_up(tmp_path: Path, receiver: Receiver,
                                                                path: str) -> None:
    """Structural: the first alert (session started) is held by the service
    (``/hang`` answers only when the test says so) or refused with 500; while
    that is so, the session commits candle after candle, trades, and stops on
    request as if nobody were listening. No error is charged to the session."""
    runner = session(tmp_path, config(**{"risk.breaker_consecutive_losses": 1000}), plan="roundtrip",
                     console=ConsoleOptions(notify_urls=(receiver.url(path),), watch_interval_s=0.05,
                                            notify_timeout_s=60.0))

    async def main() -> Any:
        task = asyncio.create_task(runner.run())
        if path == "/hang":
            await until(receiver.arrived.is_set, what="the first delivery held")
        else:
            await until(lambda: runner.console and runner.console.notifier
                        and runner.console.notifier.stats.failed >= 1, what="a refused delivery")
        base = runner.counts["candles"]
        await until(lambda: runner.counts["candles"] >= base + 30, what="candles go on")
        assert not receiver.release.is_set()  # the service still holds the first alert, if it hangs
        runner.request_stop(StopReason.SIGNAL, "test")
        return await asyncio.wait_for(task, 30)

    outcome = asyncio.run(main())
    assert outcome.reason is StopReason.SIGNAL and outcome.exit_code == 0
    assert outcome.summary["errors"]["total"] == 0
    trades = [json.loads(x) for x in (tmp_path / "runs" / "live-t" / "events.jsonl").read_text().splitlines()
              if '"trade_closed"' in x]
    assert len(trades) >= 10  # the strategy traded all along
    if path == "/hang":
        assert receiver.held >= 1 and receiver.received == []  # every delivery hung (one at a time)


@pytest.mark.slow
def test_reconnect_storm_from_a_real_websocket(tmp_path: Path, receiver: Receiver) -> None:
    """The CLI with --notify on the bitunix source against the fake exchange,
    which drops every websocket six times: the reconnects alert once."""
    faults = ",".join(f"disconnect@{t}" for t in (3, 5, 7, 9, 11, 13))
    fake = start_fake_exchange(seed=5, speed=60.0, push_interval_s=0.05, faults=faults)
    ws = tmp_path / "ws"
    try:
        cmd = [sys.executable, "-m", "laptop_agents", "run", "--source", "bitunix", "--bitunix-rest-url",
               fake.rest_url, "--bitunix-ws-url", fake.ws_url, "--duration", "60", "--warmup-bars", "30",
               "--notify", receiver.url("/ok"), "--no-live-view"]
        env = session_env(ws)
        with (tmp_path / "out.txt").open("w") as out:
            proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: "Reconnect storm" in _titles(receiver), timeout=90, what="the storm alert")
            (ws / "kill.txt").write_text("test done\n")
            assert proc.wait(60) == 0, (tmp_path / "out.txt").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        fake.stop()
    storm = [m for m in receiver.received if m["title"] == "Reconnect storm"]
    assert len(storm) == 1 and "websocket reconnects" in storm[0]["message"]
    assert _titles(receiver)[-1].endswith(": kill_switch")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_watchdog_restart(tmp_path: Path, receiver: Receiver) -> None:
    """The watchdog reads --notify from the session's arguments; a session
    killed with SIGKILL is restarted, and the restart is an alert."""
    ws = tmp_path / "ws"
    env = {**os.environ, "LA_SYSTEM__HEARTBEAT_INTERVAL_S": "0.5"}
    env.pop("LAPTOP_AGENTS_WORKSPACE", None)
    cmd = [sys.executable, "-m", "laptop_agents", "watchdog", "--workspace", str(ws), "--restart-delay", "0.2",
           "--", "--source", "mock", "--speed", "300", "--duration", "100000", "--warmup-bars", "20",
           "--notify", receiver.url("/ok"), "--no-live-view"]
    with (tmp_path / "wd.txt").open("w") as out:
        wd = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: any(t.startswith("Session started") for t in _titles(receiver)), timeout=60,
                   what="first start")
        child = psutil.Process(wd.pid).children()[0]
        child.send_signal(signal.SIGKILL)
        wait_until(lambda: "Watchdog restart" in _titles(receiver), timeout=60, what="restart alert")
        wait_until(lambda: sum(t.startswith("Session started") for t in _titles(receiver)) >= 2, timeout=60,
                   what="second start")
        (ws / "kill.txt").write_text("test done\n")
        assert wd.wait(60) == 0, (tmp_path / "wd.txt").read_text()
    finally:
        if wd.poll() is None:
            for p in psutil.Process(wd.pid).children(recursive=True):
                p.kill()
            wd.kill()
            wd.wait()
    restart = {m["title"]: m for m in receiver.received}["Watchdog restart"]["message"]
    assert "restart #1" in restart and "-9" in restart
