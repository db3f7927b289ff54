"""No secret of a live session -- API key, secret, or a signature made with
them -- appears in any log, journal, report, state file or printed line, even
through the failures that log the most (unknown outcomes, dropped sockets,
a refused flatten), at DEBUG level."""

from __future__ import annotations

import hashlib
from pathlib import Path

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import FakeAccount, FakeTradingConfig, start_fake_exchange
from tests.live.support import start_live
from tests.session.helpers import wait_until

KEY = "ZqKEYdistinct7731Xw"
SECRET = "ZqSECRETdistinct9924Yv"


def test_no_secret_in_any_output_of_a_live_session(tmp_path: Path) -> None:
    account = FakeAccount(KEY, SECRET, "20000002")
    fake = start_fake_exchange(seed=7, speed=600.0, push_interval_s=0.05, epoch_ts=0,
                               trading=FakeTradingConfig(accounts=(account,)),
                               faults="place_timeout@2:11,private_disconnect@4")
    ws = tmp_path / "ws"
    env = {"BITUNIX_API_KEY": KEY, "BITUNIX_API_SECRET": SECRET}
    try:
        session = start_live(ws, fake, "--run-id", "s1", "--log-level", "DEBUG", harness="scripted:hold_near",
                             duration=600, env=env)
        try:
            wait_until(lambda: any(e["kind"] == "fault" for e in fake.order_log()), timeout=60,
                       what="a placement that timed out")
            wait_until(lambda: fake.positions(), timeout=60, what="a position")
            fake.inject("reject_order", code=20003, count=50)  # the flatten fails: its story is printed
            (ws / "kill.txt").write_text("stop\n")
            code, out, err = session.wait(120)
        finally:
            session.kill()
    finally:
        fake.stop()
    assert code == ExitCode.FLATTEN_INCOMPLETE, out + err
    texts = {"stdout": out, "stderr": err}
    for path in ws.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any("logs" in name for name in texts) and any(name.endswith("events.jsonl") for name in texts)
    # the key and secret, and their hex digests (a signature-like leak), nowhere
    needles = [KEY, SECRET, hashlib.sha256(SECRET.encode()).hexdigest()[:16]]
    for name, text in texts.items():
        for needle in needles:
            assert needle not in text, f"{needle[:6]}... found in {name}"
