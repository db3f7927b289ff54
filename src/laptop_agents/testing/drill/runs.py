"""One run of a drill: a fake exchange, a watchdog-run session against it
(paper, or with ``--live-fake`` live on the fake's private side), and what
the drill sees of it from outside while it runs.

The session is the real product, started the way a user starts it
(``python -m laptop_agents watchdog ... -- run --source bitunix ...``) in its
own workspace; the drill knows it only through the CLI, its output, its
files (heartbeat, logs, state store, run directories) and ``/health``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from laptop_agents.heartbeat import Heartbeat, read_heartbeat
from laptop_agents.testing.drill.plan import DrillPlan
from laptop_agents.testing.fake_exchange import DEFAULT_ACCOUNT, FakeExchangeHandle, start_fake_exchange

_PID = re.compile(r"started session pid (\d+)")
_HEALTH = re.compile(r"health: (http://127\.0\.0\.1:\d+/health)")

# Heartbeat and hang detection at drill speed: a beat every half second, a hang
# noticed after five silent seconds (the product defaults are 5 s and 120 s).
HEARTBEAT_S = 0.5
HANG_TIMEOUT_S = 5.0
RESTART_DELAY_S = 0.5
STRATEGY = {
    # sma_cross: it trades often (every cross), its decisions depend only on the
    # candles and the position, and with the size capped by the maximum notional
    # (risk 10 % of 100,000 over a 1 % stop is above it) a position's size does
    # not depend on the account's equity either, so one trade the faulted run
    # did not make does not change the size of every later one.
    "strategy": "sma_cross", "fast": 20, "slow": 120, "stop_bps": 100, "attach_stop": True, "tp_r_mult": 3.0,
    "risk": {"equity": 100000, "risk_pct": 10.0},
}
# Live (--live-fake): the fake account's wallet is 10,000 USDT; the books start
# from the same equity and risk 2 % over the 1 % stop (about 20,000 notional,
# 1,000 of margin at the fake's 20x), so no entry is refused for the balance.
LIVE_STRATEGY = {**STRATEGY, "risk": {"equity": 10000, "risk_pct": 2.0}}
FUNDING_RATE = 0.0001


@dataclass
class Sample:
    """What the drill saw of a run at one moment (wall seconds since the epoch)."""

    wall: float
    market_ms: int
    pid: int | None
    status: str | None
    hb_pid: int | None
    hb_ts_ms: int | None
    last_candle_ts: int | None
    caught_up: bool
    rss_mb: float | None = None
    fds: int | None = None
    tasks: int | None = None
    wal_bytes: int | None = None
    db_bytes: int | None = None
    journal_bytes: int | None = None
    log_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Line:
    wall: float
    text: str


class DrillRun:
    """A fake exchange + a watchdog + a session, watched from outside."""

    def __init__(self, name: str, workspace: Path, plan: DrillPlan, start_ms: int, end_ms: int, *,
                 out_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.workspace = workspace
        self.plan = plan
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.out_dir = out_dir
        self.extra_env = dict(env or {})
        self.fake: FakeExchangeHandle | None = None
        self.output: list[Line] = []
        self.samples: list[Sample] = []
        self.pids: list[tuple[float, int]] = []  # (wall, pid) of every session start seen
        self.health_url: str | None = None
        self.watchdogs: list[tuple[float, int | None]] = []  # (wall, exit code) of every watchdog that ended
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._starts = 0
        self._lock = threading.Lock()
        self._out: IO[str] | None = None
        self._last_res = 0.0
        self._proc_cache: dict[int, psutil.Process] = {}
        self.strategy_file = out_dir / "strategy.json"

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.strategy_file.write_text(json.dumps(LIVE_STRATEGY if self.plan.live else STRATEGY, indent=1),
                                      encoding="utf-8")
        push = 0.02 if self.plan.speed > 1200 else 0.05
        self.fake = start_fake_exchange(
            seed=self.plan.seed, speed=self.plan.speed, start_ms=self.start_ms, end_ms=self.end_ms,
            final_values=True, funding_rate=FUNDING_RATE, push_interval_s=push, history_bars=3000,
        )
        self._out = open(self.out_dir / "watchdog-output.txt", "a", encoding="utf-8")
        self.start_watchdog()

    def run_args(self, run_id: str) -> list[str]:
        assert self.fake is not None
        minutes = min(527_040, int(self.plan.span_ms / 60_000 * 3) + 60)
        args = [
            "--source", "bitunix", "--bitunix-rest-url", self.fake.rest_url, "--bitunix-ws-url", self.fake.ws_url,
            "--speed", f"{self.plan.speed:g}", "--duration", str(minutes), "--strategy-file", str(self.strategy_file),
            "--no-flatten", "--warmup-bars", "200", "--run-id", run_id, "--health-port", "0",
        ]
        if self.plan.live:
            # Live execution on the fake's private side (signed REST on the same
            # server, the private websocket); the keys go through the environment.
            args += ["--execution-mode", "live", "--enable-live",
                     "--bitunix-private-ws-url", self.fake.private_ws_url]
        return args

    def live_env(self) -> dict[str, str]:
        """The fake account's API keys, for the session's environment only
        (never on a command line, in a log or in the scorecard)."""
        if not self.plan.live:
            return {}
        return {"BITUNIX_API_KEY": DEFAULT_ACCOUNT.api_key, "BITUNIX_API_SECRET": DEFAULT_ACCOUNT.secret_key}

    def start_watchdog(self) -> None:
        """A watchdog (again, after one that stopped: with a new run id, since
        a new watchdog starts its run ids over)."""
        self._starts += 1
        run_id = "drill" if self._starts == 1 else f"drill-w{self._starts}"
        cmd = [
            sys.executable, "-m", "laptop_agents", "watchdog", "--workspace", str(self.workspace),
            "--restart-delay", f"{RESTART_DELAY_S:g}", "--max-delay", "2", "--stable-after", "3",
            "--max-restarts-per-hour", "1000", "--hang-timeout", f"{HANG_TIMEOUT_S:g}", "--log-level", "DEBUG",
            "--", *self.run_args(run_id),
        ]
        env = dict(os.environ)
        env.update({"LA_SYSTEM__HEARTBEAT_INTERVAL_S": f"{HEARTBEAT_S:g}", "PYTHONUNBUFFERED": "1"})
        env.update(self.live_env())
        env.update(self.extra_env)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1, start_new_session=True)
        self._proc = proc
        self._reader = threading.Thread(target=self._read, args=(proc,), name=f"drill-{self.name}-out", daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            now = time.time()
            text = raw.rstrip("\n")
            with self._lock:
                self.output.append(Line(now, text))
                if self._out is not None:
                    self._out.write(f"{now:.3f} {text}\n")
            m = _PID.search(text)
            if m:
                with self._lock:
                    self.pids.append((now, int(m.group(1))))
                    self.health_url = None
            m = _HEALTH.search(text)
            if m:
                self.health_url = m.group(1)
        code = proc.wait()
        with self._lock:
            self.watchdogs.append((time.time(), code))
            if self._out is not None:
                self._out.flush()

    # ------------------------------------------------------------------ views
    @property
    def session_pid(self) -> int | None:
        with self._lock:
            return self.pids[-1][1] if self.pids else None

    @property
    def watchdog_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def watchdog_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def market_now(self) -> int:
        assert self.fake is not None
        return self.fake.now_ms()

    def heartbeat(self) -> Heartbeat | None:
        return read_heartbeat(self.workspace / "heartbeat.json")

    def caught_up(self, beat: Heartbeat | None, pid: int | None, now: float, *, since: float = 0.0) -> bool:
        """The current session is running and has processed the market up to
        three intervals before the exchange's time at its last beat (a beat
        written after ``since``, wall seconds)."""
        if beat is None or pid is None or beat.pid != pid or beat.status != "running" or beat.ts_ms is None:
            return False
        if beat.ts_ms / 1000.0 < since:
            return False
        if not _alive(pid) or now - beat.ts_ms / 1000.0 > 3.0:
            return False
        lag_ms = (now * 1000.0 - beat.ts_ms) * self.plan.speed
        market_then = min(self.market_now() - lag_ms, self.end_ms)
        return beat.last_candle_ts is not None and \
            beat.last_candle_ts + self.plan.interval_ms >= market_then - 3 * self.plan.interval_ms

    def reached_end(self) -> bool:
        beat = self.heartbeat()
        return beat is not None and beat.last_candle_ts is not None and \
            beat.last_candle_ts >= self.end_ms - self.plan.interval_ms

    def sample(self, *, resources: bool) -> Sample:
        now = time.time()
        pid = self.session_pid
        beat = self.heartbeat()
        s = Sample(now, self.market_now(), pid, beat.status if beat else None, beat.pid if beat else None,
                   beat.ts_ms if beat else None, beat.last_candle_ts if beat else None,
                   self.caught_up(beat, pid, now))
        if resources:
            self._resources(s, pid)
        with self._lock:
            self.samples.append(s)
        return s

    def _resources(self, s: Sample, pid: int | None) -> None:
        if pid is not None and _alive(pid):
            try:
                proc = self._proc_cache.get(pid) or psutil.Process(pid)
                self._proc_cache = {pid: proc}
                with proc.oneshot():
                    s.rss_mb = round(proc.memory_info().rss / 1_048_576, 2)
                    s.fds = proc.num_fds() if hasattr(proc, "num_fds") else None
            except (psutil.Error, OSError):
                pass
            url = self.health_url
            if url is not None:
                try:
                    with urllib.request.urlopen(url, timeout=1.0) as resp:
                        body = json.loads(resp.read())
                except OSError as exc:  # 503 while stopping or stale still carries the body
                    body = _error_body(exc)
                except ValueError:
                    body = None
                if isinstance(body, dict) and isinstance(body.get("tasks"), int):
                    s.tasks = body["tasks"]
        ws = self.workspace
        s.wal_bytes = _size(ws / "state.db-wal")
        s.db_bytes = _size(ws / "state.db")
        s.log_bytes = sum(_size(p) or 0 for p in (ws / "logs").glob("system.jsonl*")) if (ws / "logs").is_dir() else 0
        run = self.current_run_dir()
        s.journal_bytes = _size(run / "events.jsonl") if run is not None else None

    def current_run_dir(self) -> Path | None:
        beat = self.heartbeat()
        if beat is None or beat.run_id is None:
            return None
        return self.workspace / "runs" / beat.run_id

    # ------------------------------------------------------------------ stop
    def stop(self, timeout_s: float = 60.0) -> None:
        """The user's stop (the kill switch), then wait for the watchdog; a
        watchdog or session that does not end in time is killed (ours only)."""
        if self.watchdog_running():
            subprocess.run([sys.executable, "-m", "laptop_agents", "stop", "--workspace", str(self.workspace),
                            "--reason", "drill finished"], capture_output=True, text=True, timeout=60)
            deadline = time.monotonic() + timeout_s
            while self.watchdog_running() and time.monotonic() < deadline:
                time.sleep(0.1)
        self.kill_leftovers()
        if self._reader is not None:
            self._reader.join(5)

    def kill_leftovers(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for _, pid in list(self.pids):
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self.kill_leftovers()
        if self.fake is not None:
            self.fake.stop()
            self.fake = None
        if self._out is not None:
            with self._lock:
                self._out.close()
                self._out = None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def wait_dead(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.005)
    return False


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _error_body(exc: OSError) -> Any:
    read = getattr(exc, "read", None)
    if read is None:
        return None
    try:
        return json.loads(read())
    except (OSError, ValueError):
        return None
