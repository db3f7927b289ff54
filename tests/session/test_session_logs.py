"""Issue 10.7: a user watching the console sees what the session does.

Opening and closing a trade, a websocket reconnect and a REST backfill each
give one readable INFO line, on the console (stderr) and in logs/system.jsonl.
"""

from __future__ import annotations

import time
from pathlib import Path

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import start_fake_exchange
from tests.session.helpers import FAST, start, system_log, wait_until


def _info(ws: Path, needle: str) -> list[str]:
    return [r["message"] for r in system_log(ws) if r["level"] == "INFO" and needle in r["message"]]


def test_opening_and_closing_a_trade_are_logged_at_info(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sess = start(ws, *FAST, "--duration", "600", harness="scripted:hold")
    try:
        wait_until(lambda: (h := sess.heartbeat()) and (h["position"] or {}).get("qty"), timeout=30,
                   what="a position")
        (ws / "kill.txt").write_text("stop\n")
        code, _, err = sess.wait(30)
    finally:
        sess.kill()
    assert code == ExitCode.OK, err
    opened = _info(ws, "trade opened")
    assert len(opened) == 1, opened
    assert "long 0.01 BTCUSDT @ " in opened[0] and "fee" in opened[0], opened[0]
    closed = _info(ws, "trade closed")
    assert len(closed) == 1, closed
    line = closed[0]
    assert "long 0.01 BTCUSDT" in line and "->" in line and "net PnL" in line and "(flatten)" in line, line
    # The console shows them too (INFO reaches the console handler during a run).
    assert "trade opened" in err and "trade closed" in err


def test_reconnect_and_backfill_are_logged_at_info(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with start_fake_exchange(seed=5, speed=600.0, push_interval_s=0.05) as fake:
        sess = start(ws, "--async", "--source", "bitunix", "--bitunix-rest-url", fake.rest_url,
                     "--bitunix-ws-url", fake.ws_url, "--duration", "600", "--warmup-bars", "30")
        try:
            wait_until(lambda: fake.stats()["ws_frames_sent"] > 20, timeout=30, what="streaming")
            fake.inject("disconnect")
            wait_until(lambda: fake.stats()["ws_connections"] >= 2 and fake.stats()["ws_open"] == 1, timeout=30,
                       what="the reconnect")
            wait_until(lambda: _info(ws, "REST backfill"), timeout=30, what="a backfill line")
            time.sleep(0.2)
            (ws / "kill.txt").write_text("stop\n")
            code, _, err = sess.wait(30)
        finally:
            sess.kill()
    assert code == ExitCode.OK, err
    reconnected = _info(ws, "websocket reconnected")
    assert len(reconnected) == 1 and "down" in reconnected[0], reconnected
    backfill = _info(ws, "REST backfill")
    assert backfill and "candles" in backfill[0] and "from 20" in backfill[0] and "Z" in backfill[0], backfill
    assert "websocket reconnected" in err and "REST backfill" in err
