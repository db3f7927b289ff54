"""End to end through the real CLI and session runner: a bitunix session on
the fake exchange, with faults injected while it runs, recorded with --record, replays
to byte-identical journal events (decisions, orders, fills).

The fake runs 600x: the 5-second session covers about 50 minutes of market time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import start_fake_exchange

PROJECT_ROOT = Path(__file__).resolve().parents[2]

def cli(workspace: Path, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(workspace, *args), cwd=PROJECT_ROOT, env=_env(workspace), capture_output=True,
                          text=True, timeout=timeout)


def _cmd(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "laptop_agents", *args, "--workspace", str(workspace)]


def _env(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LA_", "LAPTOP_AGENTS_"))}
    env["LAPTOP_AGENTS_WORKSPACE"] = str(workspace)
    return env


def journal(run_dir: Path) -> list[str]:
    """Journal lines without the session markers (they carry the stop reason)."""
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and json.loads(line)["kind"] != "session"]


def _wait(pred: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_faulted_recorded_session_replays_to_identical_events(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with start_fake_exchange(seed=21, speed=600.0, push_interval_s=0.05) as fake:
        proc = subprocess.Popen(
            _cmd(ws, "run", "--source", "bitunix", "--bitunix-rest-url", fake.rest_url, "--bitunix-ws-url",
                 fake.ws_url, "--duration", "0.08", "--warmup-bars", "120", "--record", "--run-id", "live"),
            cwd=PROJECT_ROOT, env=_env(ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            # Faults spaced so that no three market-data errors come in a row (that ends a session, see below).
            _wait(lambda: fake.stats()["ws_frames_sent"] > 20, "the session to stream")
            fake.inject("reject_connect", count=1)
            fake.inject("disconnect")
            _wait(lambda: fake.stats()["ws_connections"] >= 2 and fake.stats()["ws_open"] == 1, "the reconnect")
            time.sleep(0.4)
            fake.inject("malformed", count=2)
            fake.inject("duplicate", count=4)
            fake.inject("out_of_order", count=2)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == ExitCode.OK, err[-2000:]
    live_summary = json.loads((ws / "runs" / "live" / "summary.json").read_text())
    assert live_summary["session"]["candles"] >= 20 and live_summary["session"]["source_errors"] >= 3

    recording = ws / "runs" / "live" / "market.jsonl"
    kinds = [json.loads(line)["k"] for line in recording.read_text().splitlines()]
    assert kinds.count("ws_open") >= 2  # the disconnect really happened mid-session

    again = cli(ws, "replay", str(recording), "--run-id", "again")
    assert again.returncode == ExitCode.OK, again.stderr[-2000:]
    live_events = journal(ws / "runs" / "live")
    assert len(live_events) >= 10, "the live session journaled too little to compare"
    assert journal(ws / "runs" / "again") == live_events  # byte-identical lines
    again_summary = json.loads((ws / "runs" / "again" / "summary.json").read_text())
    assert again_summary["last_ts"] == live_summary["last_ts"]
    assert again_summary["final_equity"] == live_summary["final_equity"]


@pytest.mark.parametrize(
    ("faults", "extra", "code", "reason"),
    [
        ("malformed@0:3", [], ExitCode.MARKET_DATA_ERRORS, "market_data_errors"),
        ("silence@0:30", ["--stale-timeout", "1.0"], ExitCode.STALE_DATA, "stale_data"),
    ],
)
def test_market_data_faults_end_the_session_with_their_reason(
    tmp_path: Path, faults: str, extra: list[str], code: int, reason: str
) -> None:
    ws = tmp_path / "ws"
    with start_fake_exchange(seed=22, speed=600.0, push_interval_s=0.05, faults=faults) as fake:
        res = cli(ws, "run", "--source", "bitunix", "--bitunix-rest-url", fake.rest_url,
                  "--bitunix-ws-url", fake.ws_url, "--duration", "1", "--warmup-bars", "30", "--run-id", "r", *extra)
    assert res.returncode == code, res.stderr[-2000:]
    summary = json.loads((ws / "runs" / "r" / "summary.json").read_text())
    assert summary["reason"] == reason
