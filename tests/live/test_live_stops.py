"""A user stop in live mode: cancel the session's orders, flatten with a
reduce-only market order (unless --no-flatten), verify on the exchange."""

from __future__ import annotations

import json
from pathlib import Path

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import FakeExchangeHandle
from tests.live.support import compare, start_live
from tests.session.helpers import wait_until


def _open(fake: FakeExchangeHandle) -> list[dict]:
    return [o for o in fake.orders() if o.get("status") in ("NEW", "PART_FILLED", "INIT")]


def _holding(fake: FakeExchangeHandle) -> bool:
    return bool(fake.positions()) and bool(_open(fake))


def test_the_kill_switch_cancels_flattens_and_verifies(tmp_path: Path, fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"
    session = start_live(ws, fake, "--run-id", "k1", harness="scripted:hold_near", duration=600)
    try:
        wait_until(lambda: _holding(fake), timeout=60, what="a position and a resting order on the exchange")
        (ws / "kill.txt").write_text("stop\n")
        code, out, err = session.wait(90)
    finally:
        session.kill()
    assert code == ExitCode.OK, out + err
    assert fake.positions() == [] and _open(fake) == [], (fake.positions(), _open(fake))
    result = compare(ws, fake)
    summary = json.loads((ws / "runs" / "k1" / "summary.json").read_text())
    assert summary["reason"] == "kill_switch" and summary["position"]["qty"] == 0, summary["position"]
    assert not (ws / "kill.txt").exists()
    assert any(r["reduce_only"] for r in result["rows"].values())  # the closing order is on the books too


def test_no_flatten_keeps_the_position_and_cancels_the_orders(tmp_path: Path, fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"
    session = start_live(ws, fake, "--run-id", "k2", "--no-flatten", harness="scripted:hold_near", duration=600)
    try:
        wait_until(lambda: _holding(fake), timeout=60, what="a position and a resting order")
        (ws / "kill.txt").write_text("stop\n")
        code, out, err = session.wait(90)
    finally:
        session.kill()
    assert code == ExitCode.OK, out + err
    assert _open(fake) == [] and len(fake.positions()) == 1
    compare(ws, fake)
    summary = json.loads((ws / "runs" / "k2" / "summary.json").read_text())
    assert summary["position"]["qty"] == fake.positions()[0]["qty"] == 0.01


def test_a_flatten_the_exchange_refuses_exits_17_and_says_what_is_left(tmp_path: Path,
                                                                       fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"
    session = start_live(ws, fake, "--run-id", "k3", harness="scripted:hold_near", duration=600)
    try:
        wait_until(lambda: _holding(fake), timeout=60, what="a position and a resting order")
        fake.inject("reject_order", code=20003, count=50)  # every closing order is refused
        (ws / "kill.txt").write_text("stop\n")
        code, out, err = session.wait(90)
    finally:
        session.kill()
    assert code == ExitCode.FLATTEN_INCOMPLETE, out + err
    line = next(x for x in out.splitlines() if x.startswith("stopped:"))
    assert "flatten_incomplete" in line and "position" in line and "INCOMPLETE" in line, line
    assert len(fake.positions()) == 1 and _open(fake) == []
    assert (ws / "kill.txt").exists()  # the stop request stays pending: it did not finish
    compare(ws, fake)
