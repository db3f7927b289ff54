"""The private stream with its gaps filled: websocket updates plus, after
every reconnect, the REST reads that recover what the socket missed.

On a :class:`PrivateGap` it reads (1) every open order, (2) the order history
since the gap start, and (3) every order the tracker still believed open
that neither list returned -- history filters by creation time (L), so an
order placed before the gap and filled during it is found only that way.
Each order goes through the same :class:`FillTracker` as the pushes, so a
fill seen both ways is counted once. Then positions and balance are read and
a :class:`GapFilled` closes the gap. A failing REST read (after the REST
client's own retries) is reported as a :class:`PrivateProblem` and the gap
is kept: it is tried again, from its original start, with the next update
after ``gap_retry_s`` or at the next reconnect -- never silently dropped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from laptop_agents.exchange.errors import ExchangeError, OrderNotFoundError
from laptop_agents.exchange.private_models import Balance, Order
from laptop_agents.exchange.private_rest import BitunixPrivateClient
from laptop_agents.exchange.private_updates import (
    FillUpdate,
    GapFilled,
    OrderUpdate,
    PrivateGap,
    PrivateProblem,
    PrivateUpdate,
)
from laptop_agents.exchange.ws_private import BitunixPrivateWsClient
from laptop_agents.logs import get_logger

log = get_logger("exchange.private_feed")


async def fill_gap(
    rest: BitunixPrivateClient, ws: BitunixPrivateWsClient, gap: PrivateGap, symbol: str | None = None
) -> list[PrivateUpdate]:
    """The updates a gap hid, from REST, through ``ws.tracker`` (raises ExchangeError on a failed read)."""
    tracker = ws.tracker
    seen: dict[str, Order] = {}
    for order in await rest.open_orders(symbol):
        seen[order.order_id] = order
    for order in await rest.order_history(symbol, since_ms=gap.since_ms):
        seen.setdefault(order.order_id, order)
    for order_id in tracker.open_order_ids():
        if order_id in seen:
            continue
        try:
            seen[order_id] = await rest.order_detail(order_id=order_id)
        except OrderNotFoundError:
            log.warning("gap fill: order %s is known locally but not to the exchange", order_id)
    out: list[PrivateUpdate] = []
    fills = 0
    for order in sorted(seen.values(), key=lambda o: (o.mtime or o.ctime or 0, o.order_id)):
        ts = order.mtime or order.ctime or gap.at_ms
        news, fill = tracker.observe(order, ts=ts, source="rest")
        if news:
            out.append(OrderUpdate("SNAPSHOT", order, ts, "rest"))
        if fill is not None:
            out.append(fill)
            fills += 1
    positions = tuple(await rest.positions(symbol))
    balance: Balance | None = await rest.balance()
    out.append(GapFilled(gap.since_ms, len(seen), fills, positions, balance))
    return out


class PrivateFeed:
    """``async for update in PrivateFeed(ws, rest, symbol).updates()``: every
    private update, fills exactly once, gaps filled from REST."""

    def __init__(self, ws: BitunixPrivateWsClient, rest: BitunixPrivateClient, symbol: str | None = None,
                 *, gap_retry_s: float = 5.0) -> None:
        self.ws = ws
        self.rest = rest
        self.symbol = symbol
        self.gap_retry_s = gap_retry_s
        self.gaps_filled = 0
        self.gap_failures = 0
        self._pending: PrivateGap | None = None
        self._failed_at = 0.0

    def _merge(self, gap: PrivateGap) -> PrivateGap:
        """A new gap joined with a still unfilled older one (the earlier start wins)."""
        old = self._pending
        if old is None:
            return gap
        since = None if old.since_ms is None or gap.since_ms is None else min(old.since_ms, gap.since_ms)
        return PrivateGap(since, gap.conn, gap.at_ms)

    async def _fill(self, gap: PrivateGap) -> list[PrivateUpdate]:
        try:
            filled = await fill_gap(self.rest, self.ws, gap, self.symbol)
        except ExchangeError as exc:
            self.gap_failures += 1
            self._pending = gap
            self._failed_at = time.monotonic()
            return [PrivateProblem("gap_fill_failed", f"REST gap fill since {gap.since_ms} failed: {exc}")]
        self._pending = None
        self.gaps_filled += 1
        return filled

    async def updates(self) -> AsyncIterator[PrivateUpdate]:
        async for update in self.ws.updates():
            yield update
            if isinstance(update, PrivateGap):
                for item in await self._fill(self._merge(update)):
                    yield item
            elif self._pending is not None and time.monotonic() - self._failed_at >= self.gap_retry_s:
                for item in await self._fill(self._pending):
                    yield item

    async def aclose(self) -> None:
        await self.ws.aclose()


def fills_of(updates: list[PrivateUpdate]) -> list[FillUpdate]:
    return [u for u in updates if isinstance(u, FillUpdate)]
