"""The exchange's record against the books (``drill --live-fake``'s invariants,
and ``tests/live/support.compare``): each kind of disagreement is found and
named, and agreeing records pass."""

from __future__ import annotations

from typing import Any

from laptop_agents.testing.drill import invariants as inv
from laptop_agents.testing.drill.live_books import compare_books

UID = "10000001"


def _accepted(cid: str, account: str = UID) -> dict[str, Any]:
    return {"kind": "accepted", "client_id": cid, "account": account}


def _fill(cid: str, qty: float, price: float, account: str = UID) -> dict[str, Any]:
    return {"kind": "fill", "client_id": cid, "qty": qty, "price": price, "account": account}


def _row(cid: str, intent: str, state: str = "final") -> dict[str, Any]:
    return {"exchange_id": cid, "intent_id": intent, "state": state}


def _booked(intent: str, side: str, qty: float, price: float, ts: int = 1) -> dict[str, Any]:
    return {"client_id": intent, "side": side, "qty": qty, "price": price, "ts": ts}


def _agreeing() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    log = [_accepted("a1"), _fill("a1", 0.1, 100.0), _fill("a1", 0.1, 101.0),
           _accepted("b1"), _fill("b1", 0.05, 102.0),
           {"kind": "fault", "fault": "place_timeout", "account": UID}]
    positions = [{"account": UID, "qty": 0.15}]
    rows = [_row("a1", "strategy-1-0"), _row("b1", "broker-exit-2"), _row("c1", "strategy-3-0", "not_placed")]
    fills = [_booked("strategy-1-0", "BUY", 0.1, 100.0), _booked("strategy-1-0", "BUY", 0.1, 101.0, 2),
             _booked("broker-exit-2", "SELL", 0.05, 102.0)]
    return log, positions, rows, fills


def test_agreeing_records_have_no_problem() -> None:
    log, positions, rows, fills = _agreeing()
    b = compare_books(log, positions, rows, fills, account=UID)
    assert b.problems() == []
    assert (b.orders, b.fills, b.exchange_position, b.books_position) == (2, 3, 0.15, 0.15)


def test_an_order_sent_twice_under_a_new_client_id_is_an_unknown_exchange_order() -> None:
    log, positions, rows, fills = _agreeing()
    log += [_accepted("a1Z"), _fill("a1Z", 0.2, 100.0)]
    positions = [{"account": UID, "qty": 0.35}]
    b = compare_books(log, positions, rows, fills, account=UID)
    assert b.unknown_orders == ["a1Z"] and "the books have no row for" in b.order_problems()[0]
    assert b.position_differs and b.position_problems() == ["exchange position 0.35, books 0.15"]
    # its fill is an exchange fill no booked fill matches
    assert any(m.startswith("a1Z: exchange filled 0.2") for m in b.fill_mismatches)


def test_a_client_id_accepted_twice_and_an_intent_with_two_orders_are_doubled() -> None:
    log, positions, rows, fills = _agreeing()
    b = compare_books(log + [_accepted("a1")], positions, rows, fills, account=UID)
    assert b.doubled_orders == ["a1"] and b.accepted == {"a1": 2, "b1": 1}
    rows2 = rows + [_row("a2", "strategy-1-0")]
    b2 = compare_books(log + [_accepted("a2")], positions, rows2, fills, account=UID)
    assert b2.doubled_orders == ["strategy-1-0 (a1, a2)"] and "more than one exchange order" in b2.order_problems()[0]


def test_a_fill_booked_twice_or_lost_or_at_another_price_is_found_per_order() -> None:
    log, positions, rows, fills = _agreeing()
    doubled = compare_books(log, positions, rows, fills + [fills[2]], account=UID)
    assert doubled.fill_mismatches == ["b1: exchange filled 0.05 for 5.10, books 0.1 for 10.20"]
    assert doubled.position_differs  # the books sold 0.1
    lost = compare_books(log, positions, rows, fills[:1] + fills[2:], account=UID)
    assert lost.fill_mismatches and lost.fill_mismatches[0].startswith("a1: exchange filled 0.2")
    priced = [dict(f) for f in fills]
    priced[0]["price"] = 99.0
    assert compare_books(log, positions, rows, priced, account=UID).fill_mismatches


def test_a_booked_fill_no_row_explains_and_a_row_left_committed() -> None:
    log, positions, rows, fills = _agreeing()
    b = compare_books(log, positions, rows + [_row("d1", "strategy-9-0", "committed")],
                      fills + [_booked("ghost", "BUY", 0.0, 100.0, 7)], account=UID)
    assert b.orphan_fills == ["ghost at 7"] and "no live order row explains" in b.fill_problems()[0]
    assert b.unresolved == ["d1"] and "left committed" in b.resolved_problems()[0]


def test_other_accounts_are_not_the_bots() -> None:
    log, positions, rows, fills = _agreeing()
    b = compare_books(log + [_accepted("x9", "other")], positions + [{"account": "other", "qty": 5.0}], rows,
                      fills, account=UID)
    assert b.problems() == []


def _evidence(name: str, books: Any) -> inv.RunEvidence:
    from laptop_agents.testing.drill.evidence import Routing, RunFiles, StoreView
    store = StoreView(path=None, opened=True, error=None, integrity="ok")  # type: ignore[arg-type]
    rt = Routing({}, [], {}, [], [], [], None, None, 0)
    files = RunFiles([], [], 0, {}, [], {}, [])
    return inv.RunEvidence(name, store, rt, files, None, [], 0, books)


def test_the_live_checks_name_the_run_and_the_invariant() -> None:
    log, positions, rows, fills = _agreeing()
    good = compare_books(log, positions, rows, fills, account=UID)
    bad = compare_books(log + [_accepted("a1Z")], positions, rows + [_row("e1", "s-e", "committed")], fills[:2],
                        account=UID)
    runs = [_evidence("faulted", bad), _evidence("baseline", good)]
    checks = {c.name: c for c in (inv.exchange_orders_once(runs), inv.exchange_fills_once(runs),
                                  inv.position_matches_exchange(runs), inv.live_orders_resolved(runs))}
    assert not any(c.ok for c in checks.values())
    for c in checks.values():
        assert c.detail.startswith("faulted: ") and "baseline" not in c.detail, c
    assert checks["exchange_orders_once"].measured["faulted"]["unknown"] == 1
    assert inv.exchange_orders_once([_evidence("baseline", good)]).ok
    unread = inv.exchange_fills_once([_evidence("faulted", None)])
    assert not unread.ok and "not read" in unread.detail
