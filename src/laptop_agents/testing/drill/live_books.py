"""The exchange's own record against the bot's books, order by order: the
invariants of live execution (``drill --live-fake``, and the live tests).

The exchange's record is the fake exchange's order log (every order it
accepted, every fill it made, with the client id the bot sent) and its
positions; the bot's is the state store: ``live_orders`` (one row per
exchange order it decided to send, committed before sending) and ``fills``
(what it booked). Pure: plain rows in, findings out.

- **orders once**: every exchange order carries the client id of one
  ``live_orders`` row, no client id was accepted twice, and no intent of the
  books became more than one exchange order (0 doubled, 0 unknown orders);
- **fills once**: per exchange order, the quantity and the value the books
  booked equal what the exchange filled, and every booked fill belongs to a
  ``live_orders`` row (0 lost, doubled or invented fills);
- **position**: the exchange's position equals the books' (net of their fills);
- **resolved**: no row is left ``committed`` (sent or not, nobody knows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

QTY_EPS = 1e-9
VALUE_REL = 1e-6


@dataclass
class BooksComparison:
    """What the comparison found; ``problems()`` is empty when the books are the exchange's."""

    orders: int = 0  # exchange orders carrying a client id
    fills: int = 0  # exchange fill entries
    doubled_orders: list[str] = field(default_factory=list)
    unknown_orders: list[str] = field(default_factory=list)
    orphan_fills: list[str] = field(default_factory=list)
    fill_mismatches: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    exchange_position: float = 0.0
    books_position: float = 0.0
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)  # client id -> times the exchange accepted it
    positions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def position_differs(self) -> bool:
        return abs(self.exchange_position - self.books_position) > QTY_EPS

    def order_problems(self) -> list[str]:
        out = []
        if self.doubled_orders:
            out.append(f"{len(self.doubled_orders)} intent(s) became more than one exchange order "
                       f"(first {self.doubled_orders[0]})")
        if self.unknown_orders:
            out.append(f"{len(self.unknown_orders)} exchange order(s) the books have no row for "
                       f"(first {self.unknown_orders[0]})")
        return out

    def fill_problems(self) -> list[str]:
        out = []
        if self.orphan_fills:
            out.append(f"{len(self.orphan_fills)} booked fill(s) no live order row explains "
                       f"(first {self.orphan_fills[0]})")
        if self.fill_mismatches:
            out.append(f"{len(self.fill_mismatches)} order(s) booked differently from the exchange's fills "
                       f"(first {self.fill_mismatches[0]})")
        return out

    def position_problems(self) -> list[str]:
        if not self.position_differs:
            return []
        return [f"exchange position {self.exchange_position:g}, books {self.books_position:g}"]

    def resolved_problems(self) -> list[str]:
        if not self.unresolved:
            return []
        return [f"{len(self.unresolved)} live order row(s) left committed, never resolved "
                f"(first {self.unresolved[0]})"]

    def problems(self) -> list[str]:
        return self.order_problems() + self.fill_problems() + self.position_problems() + self.resolved_problems()

    def measured(self) -> dict[str, Any]:
        return {"exchange_orders": self.orders, "exchange_fills": self.fills, "rows": len(self.rows),
                "doubled_orders": len(self.doubled_orders), "unknown_orders": len(self.unknown_orders),
                "orphan_fills": len(self.orphan_fills), "fill_mismatches": len(self.fill_mismatches),
                "unresolved_rows": len(self.unresolved), "exchange_position": self.exchange_position,
                "books_position": self.books_position}


def compare_books(order_log: Sequence[Mapping[str, Any]], positions: Iterable[Mapping[str, Any]],
                  rows: Iterable[Mapping[str, Any]], fills: Iterable[Mapping[str, Any]], *,
                  account: str | None = None) -> BooksComparison:
    """Compare the exchange's ``order_log``/``positions`` (of ``account``, every
    account when None) with the books' ``live_orders`` ``rows`` and ``fills``."""
    log = [e for e in order_log if account is None or e.get("account", account) == account]
    out = BooksComparison()
    out.rows = {str(r["exchange_id"]): dict(r) for r in rows}
    accepted = [str(e["client_id"]) for e in log if e.get("kind") == "accepted" and e.get("client_id")]
    out.orders = len(accepted)
    out.fills = sum(1 for e in log if e.get("kind") == "fill")
    # orders: each client id accepted once, known to the books, and one exchange order per intent
    seen: set[str] = set()
    per_intent: dict[str, list[str]] = defaultdict(list)
    for cid in accepted:
        out.accepted[cid] = out.accepted.get(cid, 0) + 1
        if cid in seen:
            out.doubled_orders.append(cid)
            continue
        seen.add(cid)
        row = out.rows.get(cid)
        if row is None:
            out.unknown_orders.append(cid)
        else:
            per_intent[str(row["intent_id"])].append(cid)
    out.doubled_orders += [f"{intent} ({', '.join(cids)})" for intent, cids in per_intent.items() if len(cids) > 1]
    # fills: per exchange order, quantity and value booked = filled
    ex_fills: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for e in log:
        if e.get("kind") == "fill" and e.get("client_id"):
            ex_fills[str(e["client_id"])][0] += float(e["qty"])
            ex_fills[str(e["client_id"])][1] += float(e["qty"]) * float(e["price"])
    by_intent = {str(r["intent_id"]): cid for cid, r in out.rows.items()}
    booked: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for f in fills:
        qty = float(f["qty"])
        out.books_position += qty if f["side"] == "BUY" else -qty
        owner = by_intent.get(str(f["client_id"]))
        if owner is None:
            out.orphan_fills.append(f"{f['client_id']} at {f['ts']}")
            continue
        booked[owner][0] += qty
        booked[owner][1] += qty * float(f["price"])
    for cid in sorted(set(ex_fills) | set(booked)):
        eq, ev = ex_fills.get(cid, (0.0, 0.0))
        bq, bv = booked.get(cid, (0.0, 0.0))
        if abs(bq - eq) > QTY_EPS or abs(bv - ev) > VALUE_REL * max(1.0, abs(ev)):
            out.fill_mismatches.append(f"{cid}: exchange filled {eq:g} for {ev:.2f}, books {bq:g} for {bv:.2f}")
    out.books_position = round(out.books_position, 10)
    # position and unresolved rows
    out.positions = [dict(p) for p in positions if account is None or p.get("account", account) == account]
    out.exchange_position = round(sum(float(p["qty"]) for p in out.positions), 10)
    out.unresolved = sorted(cid for cid, r in out.rows.items() if r.get("state") == "committed")
    return out
