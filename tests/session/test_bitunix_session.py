"""The session on the bitunix source against the real fake exchange (loopback):
streaming, --record, replay of the recording to the same decisions, preflight."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import start_fake_exchange
from tests.session.helpers import PROJECT_ROOT, run, session_env


@pytest.fixture
def fake() -> Iterator[object]:
    handle = start_fake_exchange(seed=5, speed=600.0, push_interval_s=0.05)
    try:
        yield handle
    finally:
        handle.stop()


def _decisions(path: Path) -> list[dict]:
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [e for e in lines if e["kind"] != "session"]


def test_recorded_bitunix_session_replays_to_the_same_decisions(tmp_path: Path, fake: object) -> None:
    ws = tmp_path / "ws"
    urls = ["--bitunix-rest-url", fake.rest_url, "--bitunix-ws-url", fake.ws_url]  # type: ignore[attr-defined]
    code, out, err = run(ws, "--async", "--source", "bitunix", *urls, "--duration", "0.05", "--warmup-bars", "60",
                         "--record", "--run-id", "live", timeout=90)
    assert code == ExitCode.OK, err
    live = json.loads((ws / "runs" / "live" / "summary.json").read_text())
    assert live["reason"] == "duration" and live["session"]["candles"] >= 5, live["session"]
    assert live["session"]["warmup"] == 60 and live["session"]["funding"] >= 1
    recording = ws / "runs" / "live" / "market.jsonl"
    assert recording.stat().st_size > 0

    code, _, err = run(ws, "--source", "replay", "--replay-file", str(recording), "--run-id", "again", timeout=90)
    assert code == ExitCode.OK, err
    again = json.loads((ws / "runs" / "again" / "summary.json").read_text())
    assert again["reason"] == "end_of_data"
    # The replay reproduces the live session's journal exactly (session markers aside).
    live_events = _decisions(ws / "runs" / "live" / "events.jsonl")
    assert _decisions(ws / "runs" / "again" / "events.jsonl") == live_events
    assert again["last_ts"] == live["last_ts"] and again["final_equity"] == live["final_equity"]


def test_preflight_against_the_fake_exchange(tmp_path: Path, fake: object) -> None:
    """A fake at real speed passes; the fast fake's Date header runs ahead of the
    wall clock (simulated time), which preflight rightly reports as clock skew."""
    ws = tmp_path / "ws"

    def preflight(url: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "laptop_agents", "preflight", "--workspace", str(ws), "--source", "bitunix",
               "--bitunix-rest-url", url]
        return subprocess.run(cmd, cwd=PROJECT_ROOT, env=session_env(ws), capture_output=True, text=True, timeout=60)

    with start_fake_exchange(seed=5, speed=1.0) as real_speed:
        res = preflight(real_speed.rest_url)
    assert res.returncode == ExitCode.OK, res.stdout + res.stderr
    assert "PASS  exchange REST" in res.stdout and "PASS  clock skew" in res.stdout
    res = preflight(fake.rest_url)  # type: ignore[attr-defined]
    assert res.returncode == ExitCode.PREFLIGHT_FAILED
    assert "FAIL  clock skew" in res.stdout and "PASS  exchange REST" in res.stdout


def _last_candle_ts(ws: Path) -> int:
    import sqlite3

    with sqlite3.connect(ws / "state.db") as db:
        (last,) = db.execute("SELECT last_candle_ts FROM engine_state").fetchone()
    return int(last)


def test_a_mock_store_is_refused_by_a_bitunix_session(tmp_path: Path, fake: object) -> None:
    """Issue 10.1: a fast mock run leaves a store whose candle times are simulated
    (in the future); a bitunix session on that workspace used to skip every live
    candle while looking healthy. It now refuses to start: one line, exit 14,
    not restartable, the store untouched."""
    from laptop_agents.exit_codes import RESTARTABLE

    ws = tmp_path / "ws"
    code, _, err = run(ws, "--async", "--source", "mock", "--speed", "600", "--warmup-bars", "30",
                       "--duration", "30", timeout=90)
    assert code == ExitCode.OK, err
    before = _last_candle_ts(ws)
    urls = ["--bitunix-rest-url", fake.rest_url, "--bitunix-ws-url", fake.ws_url]  # type: ignore[attr-defined]
    code, out, err = run(ws, "--async", "--source", "bitunix", *urls, "--duration", "0.05", timeout=60)
    assert code == ExitCode.STORE_MISMATCH and code not in RESTARTABLE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "source mock" in lines[0] and "bitunix" in lines[0] and "--workspace" in lines[0]
    assert _last_candle_ts(ws) == before
    assert not (ws / "runs").exists() or len(list((ws / "runs").iterdir())) == 1


def test_a_store_ahead_of_the_wall_clock_is_refused_by_a_bitunix_session(tmp_path: Path, fake: object) -> None:
    """A bitunix store written against the 600x fake lies ~30 market minutes in
    the future of the wall clock: the next bitunix session would skip every
    real candle for that long, so it refuses, naming both times."""
    ws = tmp_path / "ws"
    urls = ["--bitunix-rest-url", fake.rest_url, "--bitunix-ws-url", fake.ws_url]  # type: ignore[attr-defined]
    code, _, err = run(ws, "--async", "--source", "bitunix", *urls, "--duration", "0.05", "--warmup-bars", "30",
                       timeout=90)
    assert code == ExitCode.OK, err
    before = _last_candle_ts(ws)
    code, _, err = run(ws, "--async", "--source", "bitunix", *urls, "--duration", "0.05", "--warmup-bars", "30",
                       timeout=60)
    assert code == ExitCode.STORE_MISMATCH, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "ahead of the market" in lines[0], err
    from datetime import UTC, datetime

    assert datetime.fromtimestamp(before / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") in lines[0]
    assert "move" in lines[0] and "state.db" in lines[0]
    assert _last_candle_ts(ws) == before
