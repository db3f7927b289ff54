"""Flatten one symbol on the exchange: cancel its open orders, close its
positions with reduce-only market orders, and *prove* on the exchange that
nothing is left.

Why a loop and not three calls: every step can fail in a way that says
nothing about what happened (a cancel answered with a 5xx may or may not have
cancelled; a placement that timed out may have filled). So each round starts
by reading the truth -- open orders and positions -- and acts only on what
the exchange still shows. A round that reads nothing left ends the flatten;
after ``rounds`` rounds of acting, one last read says what is left.

The rules of the private client hold here too:

- a closing order is sent once under a fresh deterministic client id
  (:mod:`client_ids`: run id + the flatten's start time + a sequence); an
  unknown outcome is settled with ``resolve_by_client_id`` and never by
  sending the same order again. Only an id proven *not placed* lets a later
  round send a new closing order (with a new id) for what is still open.
  An order that cannot be resolved stops all further closing: the result
  names it and reports the position as left.
- a cancel is not retried blindly either: the next round re-reads the open
  orders and cancels only what is still there.

Nothing here raises for an exchange failure: the result says what was done,
what is left and why (``problems``), so the caller (the CLI, a session's
shutdown) can print it and pick its exit code.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from laptop_agents.domain.models import Side
from laptop_agents.exchange import client_ids
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.errors import (
    AuthError,
    DuplicateClientIdError,
    ExchangeError,
    UnknownOutcome,
    UnresolvedOrderError,
)
from laptop_agents.exchange.private_models import Order, OrderRequest, Position, wire_number
from laptop_agents.exchange.private_rest import NOT_PLACED, BitunixPrivateClient
from laptop_agents.logs import get_logger
from laptop_agents.wallclock import now_ms

log = get_logger("exchange.flatten")
Sleep = Callable[[float], Awaitable[None]]

FLATTEN_RUN_ID = "flatten"  # the run id of the CLI's flatten; a session passes its own


@dataclass(frozen=True, slots=True)
class ClosingOrder:
    """One reduce-only market order sent to close a position, and how it ended:
    ``placed`` (acknowledged or found by its client id), ``not_placed`` (an
    unknown outcome proven not to exist), ``refused`` (a definite refusal:
    ``detail`` says why) or ``unresolved`` (could not be settled: never resent)."""

    client_id: str
    side: str
    qty: float
    outcome: str
    order_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FlattenResult:
    """What a flatten did and what it left. ``verified`` is False when the last
    read of the exchange failed: then ``left_*`` are the last known state and
    nothing can be promised."""

    symbol: str
    cancelled: tuple[Order, ...] = ()
    closing: tuple[ClosingOrder, ...] = ()
    left_orders: tuple[Order, ...] = ()
    left_positions: tuple[Position, ...] = ()
    verified: bool = True
    problems: tuple[str, ...] = ()
    auth_refused: bool = False  # the exchange refused the keys: the flatten stopped at once

    @property
    def left(self) -> tuple[Order | Position, ...]:
        """Everything still open (empty = flat, when ``verified``)."""
        return (*self.left_orders, *self.left_positions)

    @property
    def done(self) -> bool:
        return self.verified and not self.left

    @property
    def unresolved(self) -> tuple[str, ...]:
        return tuple(c.client_id for c in self.closing if c.outcome == "unresolved")

    def describe(self) -> str:
        """One line for a console or a log: what was done, what is left, the last problem."""
        placed = [c for c in self.closing if c.outcome == "placed"]
        did = f"{len(self.cancelled)} order(s) cancelled, {len(placed)} closing order(s) placed"
        if self.done:
            return f"flatten {self.symbol}: flat ({did})"
        parts = [f"{o.side.value} {wire_number(o.remaining_qty)} {o.order_type.value} order {o.order_id}"
                 for o in self.left_orders]
        parts += [f"{p.side} position {wire_number(p.qty)}" for p in self.left_positions]
        if self.unresolved:
            parts.append(f"unresolved closing order(s) {', '.join(self.unresolved)}")
        state = "NOT verified" if not self.verified else "INCOMPLETE"
        left = f"; left: {'; '.join(parts)}" if parts else ""
        why = f"; {self.problems[-1]}" if self.problems else ""
        return f"flatten {self.symbol}: {state} ({did}){left}{why}"


def split_qty(qty: float, max_qty: float | None) -> list[float]:
    """``qty`` as orders of at most ``max_qty`` (full ones first, then the rest)."""
    if max_qty is None or max_qty <= 0 or qty <= max_qty:
        return [qty]
    full = math.floor(qty / max_qty + 1e-9)
    rest = round(qty - full * max_qty, 10)
    return [max_qty] * full + ([rest] if rest > 0 else [])


class _Flattener:
    def __init__(self, client: BitunixPrivateClient, symbol: str, *, close_positions: bool, run_id: str,
                 start_ms: int, sleep: Sleep, max_order_qty: float | None) -> None:
        self.client = client
        self.symbol = symbol
        self.close_positions = close_positions
        self.run_id = run_id
        self.start_ms = start_ms
        self.sleep = sleep
        self.seq = 0
        self.seen_open: dict[str, Order] = {}  # every open order a cancel was asked for
        self.closing: list[ClosingOrder] = []
        self.problems: list[str] = []
        self.blocked = False  # an unresolved closing order: send nothing more
        self.auth_refused = False  # the keys were refused: nothing more can work
        self.max_order_qty = max_order_qty
        self.max_looked_up = max_order_qty is not None

    def failed(self, what: str, exc: ExchangeError) -> None:
        """Note an exchange failure; a refusal of the keys ends the flatten (retrying cannot help)."""
        if isinstance(exc, AuthError):
            self.auth_refused = True
        self.problem(f"{what}: {exc}")

    def problem(self, text: str) -> None:
        log.warning("flatten %s: %s", self.symbol, text)
        self.problems.append(text)

    async def read(self) -> tuple[list[Order], list[Position]]:
        orders = [o for o in await self.client.open_orders(self.symbol) if o.symbol == self.symbol]
        positions: list[Position] = []
        if self.close_positions:
            positions = [p for p in await self.client.positions(self.symbol) if p.symbol == self.symbol and p.qty > 0]
        return orders, positions

    async def cancel(self, orders: list[Order]) -> None:
        for o in orders:
            self.seen_open.setdefault(o.order_id, o)
        try:
            await self.client.cancel_all_orders(self.symbol)
        except UnknownOutcome as exc:
            self.problem(f"cancel all: outcome unknown ({exc.kind}); the next read tells")
        except ExchangeError as exc:
            self.failed("cancel all refused", exc)

    def next_client_id(self) -> str:
        cid = client_ids.client_order_id(self.run_id, self.start_ms, self.seq)
        self.seq += 1
        return cid

    async def max_qty(self) -> float | None:
        """The exchange's largest market order (looked up once, from the public
        trading pairs): a bigger position is closed in several orders."""
        if not self.max_looked_up:
            self.max_looked_up = True
            try:
                pairs = await self.client.rest.trading_pairs([self.symbol])
            except ExchangeError as exc:  # not fatal: one order, and a refusal says why
                log.warning("flatten %s: max market order size unknown (%s): closing in one order", self.symbol, exc)
            else:
                self.max_order_qty = next((p.max_market_qty for p in pairs if p.symbol == self.symbol), None)
        return self.max_order_qty

    async def close(self, position: Position) -> None:
        side = pp.close_side(position.signed_qty)
        for qty in split_qty(position.qty, await self.max_qty()):
            await self.close_part(position, side, qty)
            if self.blocked or self.auth_refused or (self.closing and self.closing[-1].outcome == "refused"):
                return

    async def close_part(self, position: Position, side: str, qty: float) -> None:
        cid = self.next_client_id()
        request = OrderRequest.market(self.symbol, Side(side), qty, reduce_only=True, client_id=cid)
        try:
            ack = await self.client.place_order(request)
        except (UnknownOutcome, DuplicateClientIdError) as exc:
            await self.resolve(cid, side, qty, exc)
            return
        except ExchangeError as exc:
            self.failed(f"closing {position.side} {wire_number(qty)} refused", exc)
            self.closing.append(ClosingOrder(cid, side, qty, "refused", detail=str(exc)))
            return
        self.closing.append(ClosingOrder(cid, side, qty, "placed", order_id=ack.order_id))

    async def resolve(self, cid: str, side: str, qty: float, exc: ExchangeError) -> None:
        self.problem(f"closing order {cid}: outcome unknown ({exc.kind}); resolving by client id")
        try:
            found = await self.client.resolve_by_client_id(cid, symbol=self.symbol)
        except UnresolvedOrderError as unresolved:
            self.problem(str(unresolved))
            self.closing.append(ClosingOrder(cid, side, qty, "unresolved", detail=str(unresolved)))
            self.blocked = True
            return
        if found is NOT_PLACED:
            self.closing.append(ClosingOrder(cid, side, qty, "not_placed"))
        else:
            assert isinstance(found, Order)
            self.closing.append(ClosingOrder(cid, side, qty, "placed", order_id=found.order_id,
                                             detail=found.status))

    async def run(self, rounds: int, backoff_s: float, max_backoff_s: float) -> FlattenResult:
        orders: list[Order] = []
        positions: list[Position] = []
        verified = False
        for round_no in range(rounds + 1):
            if round_no:
                await self.sleep(min(max_backoff_s, backoff_s * 2 ** (round_no - 1)))
            try:
                orders, positions = await self.read()
            except ExchangeError as exc:
                verified = False
                self.failed("reading open orders/positions failed", exc)
                if self.auth_refused:
                    break
                continue
            verified = True
            if not orders and not positions:
                break
            if round_no == rounds:
                break  # out of rounds: what this read shows is what is left
            if orders:
                await self.cancel(orders)
            if positions and not self.blocked and not self.auth_refused:
                if orders:  # the cancel may have freed or moved what the positions are: read them again
                    try:
                        positions = [p for p in await self.client.positions(self.symbol)
                                     if p.symbol == self.symbol and p.qty > 0]
                    except ExchangeError as exc:
                        self.failed("reading positions failed", exc)
                        continue
                for position in positions:
                    await self.close(position)
                    if self.blocked or self.auth_refused:
                        break
            if self.auth_refused:
                verified = False  # what the last read showed may have changed since
                break
        still_open = {o.order_id for o in orders}
        cancelled = tuple(o for oid, o in self.seen_open.items() if oid not in still_open) if verified else ()
        result = FlattenResult(
            symbol=self.symbol, cancelled=cancelled, closing=tuple(self.closing), left_orders=tuple(orders),
            left_positions=tuple(positions), verified=verified, problems=tuple(self.problems),
            auth_refused=self.auth_refused,
        )
        # The caller prints the result; the log file keeps it (a warning when something is left).
        (log.info if result.done else log.warning)("%s", result.describe(), extra={"console": False})
        return result


async def flatten_all(
    client: BitunixPrivateClient,
    symbol: str,
    *,
    close_positions: bool = True,
    run_id: str = FLATTEN_RUN_ID,
    start_ms: int | None = None,
    rounds: int = 4,
    backoff_s: float = 0.2,
    max_backoff_s: float = 2.0,
    sleep: Sleep = asyncio.sleep,
    max_order_qty: float | None = None,
) -> FlattenResult:
    """Cancel every open order of ``symbol`` and (unless ``close_positions`` is
    False) close every position with a reduce-only market order, then verify.

    ``run_id`` and ``start_ms`` make the closing orders' client ids (a session
    passes its run id so that a restart can look them up); ``start_ms``
    defaults to the wall clock. At most ``rounds`` rounds act, ``backoff_s``
    doubling between reads. A position larger than ``max_order_qty`` (default:
    the exchange's largest market order, looked up when there is a position)
    is closed in several orders. Never raises for an exchange failure: see
    :class:`FlattenResult`."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    flattener = _Flattener(client, symbol, close_positions=close_positions, run_id=run_id,
                           start_ms=now_ms() if start_ms is None else start_ms, sleep=sleep,
                           max_order_qty=max_order_qty)
    return await flattener.run(rounds, backoff_s, max_backoff_s)


__all__ = ["FLATTEN_RUN_ID", "ClosingOrder", "FlattenResult", "flatten_all", "split_qty"]
