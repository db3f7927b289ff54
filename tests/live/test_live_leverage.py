"""The exchange account's leverage before the first live order: ``--leverage``
sets it (journaled), an isolated-margin account whose leverage the bot's limits
cannot stand behind is refused with exit 12 and one line, and a change the
exchange refuses stops the start the same way -- with nothing sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.private_rest import BitunixPrivateClient
from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import FakeExchangeHandle
from tests.live.support import KEYS, start_live

CREDS = ApiCredentials(KEYS["BITUNIX_API_KEY"], KEYS["BITUNIX_API_SECRET"])


def _account(fake: FakeExchangeHandle, *, margin_mode: str | None = None, leverage: int | None = None) -> tuple[int, str]:
    """Set the account up by hand through the exchange's own API (as a user would); returns what it says."""

    async def go() -> tuple[int, str]:
        async with BitunixPrivateClient(CREDS, fake.rest_url) as client:
            if margin_mode is not None:
                await client.set_margin_mode("BTCUSDT", margin_mode)
            if leverage is not None:
                await client.set_leverage("BTCUSDT", leverage)
            now = await client.leverage_margin_mode("BTCUSDT")
            return now.leverage, str(now.margin_mode)

    return asyncio.run(go())


def _stopped_line(out: str) -> str:
    return next(x for x in out.splitlines() if x.startswith("stopped:"))


def test_leverage_is_set_at_start_and_journaled(tmp_path: Path, fake: FakeExchangeHandle) -> None:
    assert _account(fake) == (20, "CROSS")  # the fake's default account
    ws = tmp_path / "ws"
    code, out, err = start_live(ws, fake, "--run-id", "lev", "--leverage", "5", duration=20).wait(120)
    assert code == ExitCode.OK, out + err
    assert _account(fake)[0] == 5
    events = [json.loads(x) for x in (ws / "runs" / "lev" / "events.jsonl").read_text().splitlines()]
    notes = [e for e in events if e["kind"] == "reconciled" and e["what"] == "leverage_set"]
    assert len(notes) == 1 and "20x -> 5x" in json.dumps(notes[0]), notes
    assert "exchange account: BTCUSDT leverage 5x, cross margin" in out + err
    # a restart with the same setting changes nothing and journals nothing
    code, out, err = start_live(ws, fake, "--run-id", "lev2", "--leverage", "5", duration=8).wait(120)
    assert code == ExitCode.OK, out + err
    events = [json.loads(x) for x in (ws / "runs" / "lev2" / "events.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["kind"] == "reconciled" and e["what"] == "leverage_set"]


@pytest.mark.parametrize("margin_mode", ["ISOLATION", "CROSS"])
def test_isolated_leverage_above_the_limits_is_refused_before_any_order(tmp_path: Path, fake: FakeExchangeHandle,
                                                                       margin_mode: str) -> None:
    _account(fake, margin_mode=margin_mode, leverage=50)
    ws = tmp_path / "ws"
    limits = {"LA_RISK__MAX_LEVERAGE": "10"}
    code, out, err = start_live(ws, fake, "--run-id", "first", duration=20, env=limits).wait(120)
    if margin_mode == "CROSS":  # the whole wallet answers for it: the books' limits hold, nothing to refuse
        assert code == ExitCode.OK, out + err
        assert _account(fake) == (50, "CROSS")
        return
    assert code == ExitCode.LIVE_NOT_ALLOWED, out + err
    line = _stopped_line(out)
    assert "live_gate" in line and "50x on isolated margin" in line and "--leverage 10" in line, line
    assert "Traceback" not in err
    assert not [e for e in fake.order_log() if e["kind"] == "accepted"]  # nothing was sent
    # the remedy the line names works
    code, out, err = start_live(ws, fake, "--run-id", "again", "--leverage", "10", duration=20, env=limits).wait(120)
    assert code == ExitCode.OK, out + err
    assert _account(fake) == (10, "ISOLATION")


def test_a_leverage_change_the_exchange_refuses_stops_the_start_with_12(tmp_path: Path,
                                                                       fake: FakeExchangeHandle) -> None:
    """The bot's own limit order rests on the exchange (Bitunix refuses a leverage change while
    orders are open, 20006): a restart asking for another leverage stops with 12, naming why."""
    ws = tmp_path / "ws"
    code, out, err = start_live(ws, fake, "--run-id", "first", harness="scripted:hold_near", duration=8).wait(120)
    assert code == ExitCode.OK, out + err
    resting = [o for o in fake.orders() if o["status"] == "NEW"]
    assert len(resting) == 1
    sent = len(fake.order_log())
    code, out, err = start_live(ws, fake, "--run-id", "again", "--leverage", "3", harness="scripted:hold_near",
                                duration=8).wait(120)
    assert code == ExitCode.LIVE_NOT_ALLOWED, out + err
    line = _stopped_line(out)
    assert "could not set 3x" in line and "cancel them first" in line, line
    assert _account(fake)[0] == 20  # unchanged
    assert [o["order_id"] for o in fake.orders() if o["status"] == "NEW"] == [resting[0]["order_id"]]
    assert not [e for e in fake.order_log()[sent:] if e["kind"] == "accepted"]  # nothing new was sent
