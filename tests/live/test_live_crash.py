"""kill -9 a live session at 50+ seeded random moments -- between commit and
send, between send and ack, after a fill is committed, during reconciliation,
and at random wall times -- restarting it each time on the same workspace and
the same fake exchange: no order is ever sent twice, no fill is missed or
counted twice, and the final position is the exchange's."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import start_fake_exchange
from tests.live.support import compare, db_rows, start_live

KILLS = 52
# The scripted round trips lose their fees every time: keep the breaker out of the way.
NO_BREAKER = {"LA_RISK__BREAKER_CONSECUTIVE_LOSSES": "1000"}
POINTS = ("committed", "sent", "acked", "booked", "reconciling", "any")


@pytest.mark.slow
def test_kill_9_at_random_moments_never_doubles_an_order_nor_loses_a_fill(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    fake = start_fake_exchange(seed=7, speed=600.0, push_interval_s=0.05, epoch_ts=0)
    ws = tmp_path / "ws"
    where: list[str] = []
    try:
        for i in range(KILLS):
            if rng.random() < 0.6:
                point, n = rng.choice(POINTS), rng.randint(1, 3)
                if point == "reconciling":
                    n = 1  # once per start
                marker = tmp_path / f"marker-{i}"
                session = start_live(ws, fake, "--run-id", f"r{i}", harness=f"scripted:roundtrip+live_kill:{point}:{n}",
                                     duration=600, env={"LA_TEST_PAUSE_MARKER": str(marker), **NO_BREAKER})
                code, out, err = session.wait(60)
                assert code == -9, f"kill {i} at {point}:{n}: {code}\n{out}\n{err}"
                where.append(marker.read_text())
            else:
                session = start_live(ws, fake, "--run-id", f"r{i}", harness="scripted:roundtrip", duration=600,
                                     env=NO_BREAKER)
                time.sleep(rng.uniform(0.2, 3.0))
                alive = session.proc.poll() is None
                session.kill()
                assert alive, session.proc.communicate()
                where.append("wall")
        # a last, clean run settles everything the kills left behind
        code, out, err = start_live(ws, fake, "--run-id", "last", harness="scripted:roundtrip", duration=5,
                                        env=NO_BREAKER).wait(90)
        assert code == ExitCode.OK, out + err
        result = compare(ws, fake)  # one exchange order per intent at most, every fill once
        positions = fake.positions()
    finally:
        fake.stop()
    assert len(where) == KILLS and {"committed", "sent", "acked", "booked", "reconciling", "wall"} <= set(where), where
    summary = json.loads((ws / "runs" / "last" / "summary.json").read_text())
    assert summary["position"]["qty"] == pytest.approx(sum(p["qty"] for p in positions), abs=1e-9)
    rows = db_rows(ws, "SELECT * FROM live_orders")
    assert not [r for r in rows if r["state"] == "committed"]
    assert result["orders"] >= KILLS // 2 and any(r["state"] == "not_placed" for r in rows)
