"""Crash safety and reconciliation: a restart resolves every order that was
committed but not acknowledged by asking for its client id (never by sending
it again), applies what happened while it was down (journaled as
``reconciled``), and refuses to start on what it cannot explain."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from laptop_agents.exchange.credentials import ApiCredentials
from laptop_agents.exchange.private_models import OrderRequest
from laptop_agents.exchange.private_rest import BitunixPrivateClient
from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.fake_exchange import FakeExchangeHandle
from tests.live.support import KEYS, compare, db_rows, start_live

CREDS = ApiCredentials(KEYS["BITUNIX_API_KEY"], KEYS["BITUNIX_API_SECRET"])


def _events(ws: Path, run_id: str) -> list[dict]:
    path = ws / "runs" / run_id / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _killed_at(ws: Path, fake: FakeExchangeHandle, point: str, n: int = 1, plan: str = "scripted:roundtrip") -> None:
    marker = ws.parent / f"marker-{point}"
    code, out, err = start_live(ws, fake, "--run-id", f"dies-{point}", harness=f"{plan}+live_kill:{point}:{n}",
                                duration=600, env={"LA_TEST_PAUSE_MARKER": str(marker)}).wait(90)
    assert code == -9, out + err
    assert marker.read_text() == point


def test_killed_between_commit_and_send_the_order_is_resolved_as_never_placed(tmp_path: Path,
                                                                             fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"
    _killed_at(ws, fake, "committed", 3)
    # Rows in commit order: the kill came at the third row's commit hook, before it (and any row
    # committed in the same step) was queued, so from the third on none can have left. An earlier row
    # may be anywhere: still queued behind (the sender runs a candle or two behind at 600x), or sent
    # with its acknowledgement not yet recorded -- both look "committed" in state.db.
    rows_then = db_rows(ws, "SELECT * FROM live_orders ORDER BY candle_ts, seq, exchange_id")
    assert len(rows_then) >= 3
    sent = {e.get("client_id") for e in fake.order_log()}
    never_left = rows_then[2:]
    assert all(r["state"] == "committed" for r in never_left)
    assert not {r["exchange_id"] for r in never_left} & sent
    pending = [r for r in rows_then if r["state"] == "committed"]
    unsent = [r for r in pending if r["exchange_id"] not in sent]
    in_doubt = [r for r in pending if r["exchange_id"] in sent]
    code, out, err = start_live(ws, fake, "--run-id", "again", duration=8).wait(90)
    assert code == ExitCode.OK, out + err
    notes = [e for e in _events(ws, "again") if e["kind"] == "reconciled"]
    rows = {r["exchange_id"]: r for r in db_rows(ws, "SELECT * FROM live_orders")}
    log = fake.order_log()
    for p in unsent:
        cid = p["exchange_id"]
        assert rows[cid]["state"] == "not_placed"
        assert cid not in {e.get("client_id") for e in log}  # and not sent after the restart either
        assert any(e["what"] == "not_placed" and e["client_id"] == p["intent_id"] for e in notes), notes
    for p in in_doubt:  # found at the exchange by its client id, never sent again
        cid = p["exchange_id"]
        assert rows[cid]["state"] != "committed" and rows[cid]["order_id"] is not None
        assert len([e for e in log if e["kind"] == "accepted" and e.get("client_id") == cid]) == 1
    compare(ws, fake)


def test_killed_between_send_and_ack_the_order_is_found_not_sent_again(tmp_path: Path,
                                                                      fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"
    # The order's pushes (its acceptance, its fill) can beat the REST acknowledgement and book the
    # order: hold them all back so the kill lands with the order unknown, on any machine.
    fake.inject("delay_pushes", seconds=3.0, count=100)
    _killed_at(ws, fake, "acked", 2)
    fake.clear_faults()
    pending = [r for r in db_rows(ws, "SELECT * FROM live_orders") if r["state"] == "committed"]
    assert pending and all(r["order_id"] is None for r in pending)
    # The order killed between send and ack is the one pending row the exchange has (others, still
    # queued behind it, never left).
    known = {e["client_id"] for e in fake.order_log() if e["kind"] == "accepted"}
    at_exchange = [r for r in pending if r["exchange_id"] in known]
    assert len(at_exchange) == 1
    cid = at_exchange[0]["exchange_id"]
    accepted = [e for e in fake.order_log() if e["kind"] == "accepted" and e["client_id"] == cid]
    assert len(accepted) == 1  # the exchange has it, the bot does not know yet
    code, out, err = start_live(ws, fake, "--run-id", "again", duration=8).wait(90)
    assert code == ExitCode.OK, out + err
    accepted = [e for e in fake.order_log() if e["kind"] == "accepted" and e["client_id"] == cid]
    assert len(accepted) == 1  # never sent twice
    row = next(r for r in db_rows(ws, "SELECT * FROM live_orders") if r["exchange_id"] == cid)
    assert row["order_id"] == accepted[0]["order_id"] and row["state"] == "final" and row["filled"] > 0
    notes = [e for e in _events(ws, "again") if e["kind"] == "reconciled"]
    assert any(e["what"] == "filled_while_down" and e["client_id"] == row["intent_id"] for e in notes), notes
    compare(ws, fake)


def test_an_order_that_cannot_be_resolved_stops_with_16_naming_it(tmp_path: Path, fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"
    fake.inject("delay_pushes", seconds=3.0, count=100)  # unknown to the bot when it dies (see above)
    _killed_at(ws, fake, "acked", 1)
    fake.clear_faults()
    cid = next(r["exchange_id"] for r in db_rows(ws, "SELECT * FROM live_orders") if r["state"] == "committed")
    fake.inject("http_status", status=503, count=10_000, path="/api/v1/futures/trade/get_")  # every order lookup
    code, out, err = start_live(ws, fake, "--run-id", "again", duration=8).wait(180)
    fake.clear_faults()
    assert code == ExitCode.ORDER_UNRESOLVED, out + err
    line = next(x for x in out.splitlines() if x.startswith("stopped:"))
    assert "order_unresolved" in line and cid in line, line
    accepted = [e for e in fake.order_log() if e["kind"] == "accepted" and e["client_id"] == cid]
    assert len(accepted) == 1
    assert [r["state"] for r in db_rows(ws, "SELECT * FROM live_orders") if r["exchange_id"] == cid] == ["committed"]


def test_a_fill_and_a_cancel_while_down_are_applied_and_journaled(tmp_path: Path, fake: FakeExchangeHandle) -> None:
    """The session ends with a resting limit; while it is down the exchange
    fills it (the price comes to it) or it is cancelled by hand: the restart
    books what happened, journaled, and trades on."""
    ws = tmp_path / "ws"
    code, out, err = start_live(ws, fake, "--run-id", "first", harness="scripted:hold_near", duration=8).wait(90)
    assert code == ExitCode.OK, out + err
    resting = [o for o in fake.orders() if o["status"] == "NEW"]
    assert len(resting) == 1
    # cancelled behind the bot's back (e.g. from the exchange's web page)

    async def cancel() -> None:
        async with BitunixPrivateClient(CREDS, fake.rest_url) as client:
            await client.cancel_order("BTCUSDT", order_id=resting[0]["order_id"])

    asyncio.run(cancel())
    code, out, err = start_live(ws, fake, "--run-id", "again", harness="scripted:hold_near", duration=8).wait(90)
    assert code == ExitCode.OK, out + err
    notes = [e for e in _events(ws, "again") if e["kind"] == "reconciled"]
    assert any(e["what"] == "cancelled_while_down" for e in notes), notes
    assert any(e["kind"] == "order_cancelled" for e in _events(ws, "again"))
    compare(ws, fake)


def test_an_unexplained_position_refuses_the_start_and_adopt_takes_it_over(tmp_path: Path,
                                                                          fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"
    code, out, err = start_live(ws, fake, "--run-id", "first", harness="scripted:hold_near", duration=8).wait(90)
    assert code == ExitCode.OK, out + err
    fake.trade_by_hand(0.02)  # someone buys on the account by hand
    code, out, err = start_live(ws, fake, "--run-id", "refused", harness="scripted:hold_near", duration=8).wait(90)
    assert code == ExitCode.RECONCILE_MISMATCH, out + err
    lines = [x for x in err.splitlines() if x.startswith("reconcile: ")]
    assert len(lines) == 1 and "position: exchange 0.03 BTCUSDT, books 0.01" in lines[0], err
    assert "--adopt" in lines[0] and "Traceback" not in err
    code, out, err = start_live(ws, fake, "--run-id", "adopted", "--adopt", harness="scripted:hold_near",
                                duration=8).wait(90)
    assert code == ExitCode.OK, out + err
    adopted = [e for e in _events(ws, "adopted") if e["kind"] == "reconciled" and e["what"] == "adopted_position"]
    assert len(adopted) == 1 and "exchange 0.03" in adopted[0]["detail"]
    summary = json.loads((ws / "runs" / "adopted" / "summary.json").read_text())
    assert summary["position"]["qty"] == sum(p["qty"] for p in fake.positions())


def test_a_foreign_open_order_refuses_the_start_one_line_each(tmp_path: Path, fake: FakeExchangeHandle) -> None:
    ws = tmp_path / "ws"

    async def place() -> None:
        async with BitunixPrivateClient(CREDS, fake.rest_url) as client:
            last = (await client.rest.tickers(["BTCUSDT"]))[0].last
            for i in range(2):
                await client.place_order(OrderRequest.limit("BTCUSDT", "BUY", 0.001, round(last * 0.97, 1),
                                                            client_id=f"manual{i}"))

    asyncio.run(place())
    code, out, err = start_live(ws, fake, "--run-id", "refused", duration=8).wait(90)
    assert code == ExitCode.RECONCILE_MISMATCH, out + err
    lines = [x for x in err.splitlines() if x.startswith("reconcile: ")]
    assert len(lines) == 2 and all("is not the bot's" in x for x in lines), err
    assert {"manual0", "manual1"} == {x.split("client id ")[1].rstrip(")") for x in lines}
    assert not db_rows(ws, "SELECT * FROM live_orders")
    assert all(e["client_id"] in ("manual0", "manual1") for e in fake.order_log() if e["kind"] == "accepted")


def test_a_position_changed_by_hand_while_running_stops_at_the_next_reconciliation(
        tmp_path: Path, fake: FakeExchangeHandle) -> None:
    from tests.session.helpers import wait_until

    ws = tmp_path / "ws"
    session = start_live(ws, fake, "--run-id", "watch", "--reconcile-minutes", "0.02", harness="scripted:hold_near",
                         duration=600)
    try:
        wait_until(lambda: fake.positions(), timeout=60, what="a position")
        fake.trade_by_hand(-0.005)
        code, out, err = session.wait(60)
    finally:
        session.kill()
    assert code == ExitCode.RECONCILE_MISMATCH, out + err
    line = next(x for x in out.splitlines() if x.startswith("stopped:"))
    assert "reconcile_mismatch" in line and "position: exchange 0.005 BTCUSDT, books 0.01" in line, line
