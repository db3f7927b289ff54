"""Live execution: the session's shell between the Engine and the exchange.

The Engine stays deterministic. In live mode its broker
(:class:`~laptop_agents.broker.live.LiveBroker`) checks every intent against
the hard limits and puts what passes in an outbox; this module is what
touches the exchange:

1. **Commit before send.** When a step is committed (:class:`CandleStep`
   calls :meth:`LiveExecution.prepare` first), each outbox order gets its
   deterministic client id (:func:`~laptop_agents.exchange.client_ids.client_order_id`
   of the run, the step's time and a sequence) and a ``live_orders`` row in
   the *same* transaction. Only after the commit is the order queued for
   sending. A crash before the commit leaves no order; after it, a row that a
   restart resolves.
2. **Sent once.** A placement is sent once; anything but a definite refusal
   (timeout, 5xx, dropped connection, a duplicate id) is settled by asking
   the exchange for that client id (:meth:`BitunixPrivateClient.resolve_by_client_id`),
   never by sending again. An order still unresolved after the bounded
   lookups stops the session: ``order_unresolved`` (exit 16), naming it.
3. **The exchange's word comes back as engine input.** Order snapshots (the
   private websocket, its REST gap fills, lookups, reconciliation) are turned
   into fills by the growth of the order's cumulative filled quantity over
   what its row has booked, and into "gone" statuses; they enter the Engine
   through :meth:`Engine.on_exchange` and are committed with the updated rows
   in one transaction, so a fill is counted once across any crash.
4. **Reconciliation** at start (before the first candle) and every
   ``trading.reconcile_minutes``: open orders, positions and balance against
   the books. What can be explained is applied and journaled (``reconciled``
   events); anything else refuses the start (exit 13) with one line per
   difference, or -- ``--adopt`` -- an unexplained position is taken over.
5. **A user stop** (kill switch, SIGTERM, Ctrl-C) cancels the symbol's open
   orders and closes the position with reduce-only market orders
   (:func:`~laptop_agents.exchange.flatten.flatten_all`), unless
   ``--no-flatten``, books what that did, and verifies on the exchange that
   nothing is left; what is left is the stop's detail (exit 17).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from laptop_agents.broker.live import ExchangeFill, ExchangeStatus, ExchangeUpdate
from laptop_agents.broker.state import WorkingOrder
from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.domain.models import OrderType, Side
from laptop_agents.engine import Engine
from laptop_agents.exchange import client_ids
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.exchange.errors import (
    DuplicateClientIdError,
    ExchangeError,
    UnknownOutcome,
    UnresolvedOrderError,
)
from laptop_agents.exchange.flatten import FlattenResult, flatten_all
from laptop_agents.exchange.private_feed import PrivateFeed
from laptop_agents.exchange.private_models import Order, OrderRequest, Position
from laptop_agents.exchange.private_rest import NOT_PLACED, BitunixPrivateClient, is_definite_refusal
from laptop_agents.exchange.private_updates import OrderUpdate, PrivateProblem
from laptop_agents.exchange.ws_private import BitunixPrivateWsClient
from laptop_agents.session.state import SessionFatal
from laptop_agents.stop_reasons import StopReason
from laptop_agents.store.live_orders import LiveOrder

if TYPE_CHECKING:
    from laptop_agents.session.step import CandleStep

QTY_EPS = 1e-9
_GONE_STATUS = {
    "FILLED": "filled",
    "CANCELED": "cancelled",
    "PART_FILLED_CANCELED": "cancelled",
    "SYSTEM_CANCELED": "cancelled",
    "EXPIRED": "expired",
}


class ReconcileMismatch(LaptopAgentsError):
    """Differences between the exchange and the books that nothing explains (one line each)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


@dataclass
class ExecutionStats:
    placed: int = 0
    refused: int = 0
    unknown: int = 0
    resolved: int = 0
    not_placed: int = 0
    fills: int = 0
    cancels: int = 0
    reconciles: int = 0
    notes: list[str] = field(default_factory=list)


def _status_word(status: str) -> str:
    return status.rstrip("_").upper()


class LiveExecution:
    """One live session's execution client (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        store: Any,
        client: BitunixPrivateClient,
        ws: BitunixPrivateWsClient | None,
        *,
        symbol: str,
        run_id: str,
        adopt: bool = False,
        reconcile_s: float = 300.0,
        leverage: int | None = None,
        max_leverage: float | None = None,
        log: logging.Logger,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.store = store
        self.client = client
        self.ws = ws
        self.symbol = symbol
        self.run_id = run_id
        self.adopt = adopt
        self.reconcile_s = reconcile_s
        self.leverage = leverage
        self.max_leverage = max_leverage
        self.log = log
        self._sleep = sleep
        self.stats = ExecutionStats()
        self.rows: dict[str, LiveOrder] = {o.exchange_id: o for o in store.live_orders()}
        self.by_intent: dict[str, str] = {o.intent_id: o.exchange_id for o in self.rows.values() if o.open}
        self._seq: dict[int, int] = {}
        for o in self.rows.values():
            if o.run_id == run_id:
                self._seq[o.candle_ts] = max(self._seq.get(o.candle_ts, 0), o.seq + 1)
        self._tags = {client_ids.run_tag(r) for r in {o.run_id for o in self.rows.values()} | {run_id}}
        self._prepared: list[LiveOrder] = []
        self._cancels: list[str] = []
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.step: CandleStep[Any] | None = None
        self.stopping = False
        self.mismatch_lines: list[str] = []
        self._last_wallet: float | None = None

    # ------------------------------------------------------------ wiring
    def hook(self, point: str) -> None:
        """A named moment (``committed``, ``sent``, ``acked``, ``booked``,
        ``reconciling``): does
        nothing; the crash test's harness replaces it to kill the process there."""

    def bind(self, step: CandleStep[Any]) -> None:
        self.step = step
        step.executor = self

    def _now_ts(self) -> int:
        step = self.step
        assert step is not None
        return step.clock.event_ts(self.engine.last_candle_ts, step.interval_ms)

    # ------------------------------------------------------------ commit before send
    def prepare(self, ts: int) -> list[LiveOrder]:
        """The rows of the engine's outbox, to commit with the step at ``ts``."""
        orders, cancels = self.engine.take_outbox()
        self._cancels.extend(cancels)
        rows = [self._row(o, ts) for o in orders]
        self._prepared.extend(rows)
        return rows

    def _row(self, o: WorkingOrder, ts: int) -> LiveOrder:
        seq = self._seq.get(ts, 0)
        self._seq[ts] = seq + 1
        cid = client_ids.client_order_id(self.run_id, ts, seq)
        return LiveOrder(cid, o.client_id, self.run_id, ts, seq, o.side.value, o.type.value, o.qty, o.price,
                         o.reduce_only)

    def committed(self) -> None:
        """The step (and its rows) is durable: now, and only now, queue the sends."""
        rows, self._prepared = self._prepared, []
        for row in rows:
            self.rows[row.exchange_id] = row
            self.by_intent[row.intent_id] = row.exchange_id
            self.hook("committed")
            if not self.stopping:
                self._queue.put_nowait(("place", row.exchange_id))
        cancels, self._cancels = self._cancels, []
        for intent in cancels:
            self._queue.put_nowait(("cancel", intent))

    def abandon(self) -> None:
        """The step's commit failed for good: its orders were never durable, never send them."""
        self._prepared = []
        self._cancels = []

    # ------------------------------------------------------------ the exchange's word -> the engine
    async def apply(self, updates: Sequence[ExchangeUpdate], rows: Sequence[LiveOrder],
                    notes: Sequence[tuple[str, str | None, str]] = ()) -> None:
        """Feed the engine and commit it with the rows, as one step (published too)."""
        step = self.step
        assert step is not None
        async with step.lock:
            result = self.engine.on_exchange(updates, self._now_ts(), notes)
            await step.commit(result, live_orders=rows)
        self.hook("booked")
        step.publish(result, None)

    async def on_order(self, order: Order, *, why: str | None = None) -> bool:
        """An order snapshot from anywhere: book its new fills and its end. True if it is ours."""
        row = self.rows.get(order.client_id or "")
        if row is None:
            return False
        changed = False
        if row.order_id is None:
            row.order_id = order.order_id
            changed = True
        updates: list[ExchangeUpdate] = []
        notes: list[tuple[str, str | None, str]] = []
        ts = self._now_ts()
        cum = order.filled_qty
        if cum > row.filled + QTY_EPS:
            delta = round(cum - row.filled, 12)
            avg = order.avg_price if order.avg_price is not None else (order.price or 0.0)
            value = avg * cum
            price = round((value - row.value) / delta, 8) if delta > 0 else avg
            fee = max(0.0, order.fee - row.fee)
            liquidity = "maker" if row.type == "LIMIT" else "taker"
            updates.append(ExchangeFill(row.intent_id, Side(row.side), delta, price, fee, ts, liquidity))
            row.filled, row.value, row.fee = cum, value, max(row.fee, order.fee)
            self.stats.fills += 1
            changed = True
            if why:
                notes.append((f"filled_{why}", row.intent_id, f"{delta:g} at {price:g} (order {order.order_id})"))
        status = _status_word(order.status)
        row.status = status
        gone = _GONE_STATUS.get(status)
        if gone is not None and row.state != "final":
            row.state = "final"
            updates.append(ExchangeStatus(row.intent_id, gone, ts, f"exchange: {status.lower()}"))
            changed = True
            if why and gone != "filled":
                notes.append((f"{gone}_{why}", row.intent_id, f"order {order.order_id} {status.lower()}"))
        elif gone is None and row.state == "committed":
            row.state = "acked"
            changed = True
        if updates or notes:
            await self.apply(updates, [row], notes)
        elif changed:
            self.store.put_live_orders([row])
        return True

    # ------------------------------------------------------------ sending
    def _request(self, row: LiveOrder) -> OrderRequest:
        side = Side(row.side)
        if row.type == OrderType.MARKET.value or row.price is None:
            return OrderRequest.market(self.symbol, side, row.qty, reduce_only=row.reduce_only,
                                       client_id=row.exchange_id)
        return OrderRequest.limit(self.symbol, side, row.qty, row.price, reduce_only=row.reduce_only,
                                  client_id=row.exchange_id)

    async def place(self, row: LiveOrder) -> None:
        if not row.open or row.order_id is not None:
            return  # a push or a lookup already told us about it
        try:
            request = self._request(row)
        except ValueError as exc:  # cannot be expressed on the wire: refused before anything left
            await self._refused(row, f"invalid order: {str(exc).splitlines()[0]}")
            return
        self.hook("sent")
        try:
            ack = await self.client.place_order(request)
        except (UnknownOutcome, DuplicateClientIdError):
            self.stats.unknown += 1
            await self.resolve(row)
            return
        except ExchangeError as exc:
            if is_definite_refusal(exc):
                self.stats.refused += 1
                await self._refused(row, f"{exc.kind} {exc.code or ''}".strip())
                return
            self.stats.unknown += 1
            await self.resolve(row)
            return
        self.stats.placed += 1
        self.hook("acked")
        if row.order_id is None:
            row.order_id = ack.order_id
        if row.state == "committed":
            row.state = "acked"
        self.store.put_live_orders([row])

    async def _refused(self, row: LiveOrder, why: str) -> None:
        row.state = "final"
        row.status = "REJECTED"
        await self.apply([ExchangeStatus(row.intent_id, "rejected", self._now_ts(), why)], [row])

    async def resolve(self, row: LiveOrder, *, why: str | None = None) -> None:
        """Settle a row whose placement outcome is unknown: by its client id, never by resending."""
        try:
            got = await self.client.resolve_by_client_id(row.exchange_id, symbol=self.symbol)
        except UnresolvedOrderError as exc:
            raise SessionFatal(
                StopReason.ORDER_UNRESOLVED,
                f"order {row.exchange_id} ({row.side} {row.qty:g} {row.type}, intent {row.intent_id}) "
                f"is unresolved: {exc}",
            ) from None
        self.stats.resolved += 1
        if got is NOT_PLACED:
            self.stats.not_placed += 1
            row.state = "not_placed"
            await self.apply([ExchangeStatus(row.intent_id, "not_placed", self._now_ts(), "never reached the exchange")],
                             [row], [("not_placed", row.intent_id, f"client id {row.exchange_id}")])
            return
        assert isinstance(got, Order)
        await self.on_order(got, why=why)

    async def cancel(self, intent_id: str) -> None:
        """Ask once; a 5xx or timeout is settled by reading the order, and asked
        again only if it is still open (a cancel of a live order is harmless to repeat)."""
        cid = self.by_intent.get(intent_id)
        row = self.rows.get(cid or "")
        if row is None or not row.open:
            return
        for _attempt in range(3):
            try:
                await self.client.cancel_order(self.symbol, client_id=row.exchange_id)
                self.stats.cancels += 1
            except UnknownOutcome:
                pass
            except ExchangeError as exc:
                self.log.info("cancel of %s refused: %s", row.exchange_id, exc)
            try:
                order = await self.client.find_order(client_id=row.exchange_id, symbol=self.symbol)
            except ExchangeError as exc:
                self.log.warning("cancel of %s: lookup failed: %s", row.exchange_id, exc)
                await self._sleep(0.2)
                continue
            if order is None:
                if row.state == "committed":
                    await self.resolve(row)
                return
            await self.on_order(order)
            if not row.open:
                return
            await self._sleep(0.2)

    async def sender(self) -> None:
        """The send queue, one at a time, in decision order."""
        while True:
            kind, key = await self._queue.get()
            if kind == "place":
                row = self.rows.get(key)
                if row is not None:
                    await self.place(row)
            else:
                await self.cancel(key)

    # ------------------------------------------------------------ the private stream
    async def feed(self) -> None:
        """Order snapshots from the private websocket (gaps filled from REST)."""
        if self.ws is None:
            return
        private = PrivateFeed(self.ws, self.client, self.symbol)
        async for update in private.updates():
            if isinstance(update, OrderUpdate):
                await self.on_order(update.order)
            elif isinstance(update, PrivateProblem):
                self.log.warning("private stream: %s: %s", update.kind, update.message)

    async def reconciler(self) -> None:
        while True:
            await self._sleep(self.reconcile_s)
            try:
                await self.reconcile(startup=False)
            except ReconcileMismatch as exc:
                # A fill can land between reading orders and positions: look again once.
                await self._sleep(1.0)
                try:
                    await self.reconcile(startup=False)
                except ReconcileMismatch as again:
                    raise SessionFatal(StopReason.RECONCILE_MISMATCH, f"reconciliation: {again}") from exc
            except ExchangeError as exc:
                self.log.warning("reconciliation skipped: %s", exc)

    # ------------------------------------------------------------ reconciliation
    async def start(self) -> None:
        """Before the first candle: settle every unacknowledged order, then reconcile."""
        for row in [r for r in self.rows.values() if r.state == "committed"]:
            await self.resolve(row, why="while_down")
        try:
            await self.reconcile(startup=True)
        except ReconcileMismatch as exc:
            self.mismatch_lines = exc.lines
            for line in exc.lines:
                self.log.error("reconciliation: %s", line)
            raise SessionFatal(StopReason.RECONCILE_MISMATCH,
                               f"the exchange differs from the books ({len(exc.lines)} difference(s)): "
                               + "; ".join(exc.lines)) from None
        await self._check_leverage()

    async def _check_leverage(self) -> None:
        """The account's leverage and margin mode for the symbol, before the first order.

        The books size and limit positions by notional over equity; on isolated
        margin the exchange liquidates by its own leverage instead, so a 100x
        isolated setting would liquidate a position long before the bot's
        ``risk.max_leverage`` and stops expect. Such an account is refused (or
        ``--leverage`` sets it); cross margin answers with the whole wallet, and
        only the configured leverage, if any, is applied."""
        client, symbol = self.client, self.symbol
        try:
            now = await client.leverage_margin_mode(symbol)
            if self.leverage is not None and now.leverage != self.leverage:
                before = now.leverage
                await client.set_leverage(symbol, self.leverage)
                now = await client.leverage_margin_mode(symbol)
                if now.leverage != self.leverage:
                    raise SessionFatal(StopReason.LIVE_GATE, f"leverage on {symbol}: asked {self.leverage}x, "
                                                             f"the exchange still says {now.leverage}x")
                await self.apply([], [], [("leverage_set", None, f"{symbol} leverage {before}x -> {now.leverage}x")])
        except ExchangeError as exc:
            what = f"set {self.leverage}x" if self.leverage is not None else "read"
            hint = " (the exchange refuses a change while orders are open: cancel them first)" \
                if exc.code == pp.CODE_OPEN_ORDERS_BLOCK_CHANGE else ""
            raise SessionFatal(StopReason.LIVE_GATE, f"leverage on {symbol}: could not {what}: {exc}{hint}") from None
        mode = str(now.margin_mode).upper()
        self.log.info("exchange account: %s leverage %dx, %s margin", symbol, now.leverage, mode.lower())
        if mode.startswith("ISOLAT") and self.max_leverage is not None and now.leverage > self.max_leverage:
            raise SessionFatal(StopReason.LIVE_GATE,
                               f"the exchange leverage for {symbol} is {now.leverage}x on isolated margin, above "
                               f"risk.max_leverage {self.max_leverage:g}: a position would be liquidated before the "
                               f"bot's limits and stops expect; pass --leverage {int(self.max_leverage)} "
                               f"(or lower) or change it on the exchange")

    async def reconcile(self, *, startup: bool) -> None:
        """Exchange vs books. Explained differences are booked and journaled;
        :class:`ReconcileMismatch` lists the others."""
        self.stats.reconciles += 1
        why = "while_down" if startup else "reconciled"
        client = self.client
        open_orders = await client.open_orders(self.symbol)
        self.hook("reconciling")
        by_cid = {o.client_id: o for o in open_orders if o.client_id}
        in_flight = False
        for row in [r for r in self.rows.values() if r.open]:
            if row.state == "committed" and not startup:
                in_flight = True  # the sender owns it until it is acknowledged or resolved
                continue
            order = by_cid.get(row.exchange_id) or await client.find_order(client_id=row.exchange_id,
                                                                          symbol=self.symbol)
            if order is None:
                if row.state == "committed":
                    await self.resolve(row, why=why)
                    continue
                raise ReconcileMismatch([f"order {row.exchange_id} (intent {row.intent_id}) was acknowledged "
                                         f"as {row.order_id} but the exchange no longer knows it"])
            await self.on_order(order, why=why)
        lines: list[str] = []
        for o in open_orders:
            if o.client_id in self.rows:
                continue
            lines.append(f"open order {o.order_id} on the exchange is not the bot's: {o.side.value} "
                         f"{o.qty:g} {o.order_type.value}" + (f" at {o.price:g}" if o.price else "")
                         + f" (client id {o.client_id or '-'})")
        # Books that hold an order the exchange has no row for: never sent (the
        # row is committed with the order, so this is a step the store kept
        # without its row -- it cannot happen -- or a broker order from before).
        stray = [cid for cid in self.engine.broker.orders if cid not in self.by_intent
                 or not self.rows[self.by_intent[cid]].open]
        if stray and startup:
            await self.apply([ExchangeStatus(cid, "not_placed", self._now_ts(), "not on the exchange")
                              for cid in stray], [],
                             [("not_placed", cid, "on the books, never sent") for cid in stray])
        positions = [p for p in await client.positions(self.symbol) if p.symbol == self.symbol]
        ex_qty = round(sum(p.signed_qty for p in positions), 10)
        books = self.engine.broker.position_qty
        await self._balance_note(startup)
        if in_flight and not lines:
            return  # an order on its way may already have moved the position: judge it next time
        if abs(ex_qty - books) > 1e-9:
            if self.adopt and startup:
                entry = _entry(positions)
                detail = f"exchange {ex_qty:g} {self.symbol}, books {books:g}: taken over at {entry:g}"
                step = self.step
                assert step is not None
                async with step.lock:
                    result = self.engine.adopt_position(ex_qty, entry, self._now_ts(), detail)
                    await step.commit(result)
                step.publish(result, None)
                self.stats.notes.append(detail)
            else:
                lines.append(f"position: exchange {ex_qty:g} {self.symbol}, books {books:g} "
                             f"(use --adopt to take the exchange's position over)")
        if lines:
            raise ReconcileMismatch(lines)

    async def _balance_note(self, startup: bool) -> None:
        """The exchange's wallet against the books' balance: journaled at start
        (and when it drifts by more than 1 % later), never acted on -- the books
        count from ``risk.starting_equity`` and the exchange's funding is not
        booked, so they differ by design; the note makes the difference visible."""
        try:
            bal = await self.client.balance()
        except ExchangeError as exc:
            self.log.warning("balance not read: %s", exc)
            return
        wallet = float(bal.available) + float(bal.frozen) + float(bal.margin)
        books = float(self.engine.broker.balance)
        last = self._last_wallet
        self._last_wallet = wallet
        if not startup and last is not None and abs(wallet - last) <= 0.01 * max(abs(last), 1.0):
            return
        await self.apply([], [], [("balance", None, f"exchange wallet {wallet:.2f}, books balance {books:.2f}")])

    # ------------------------------------------------------------ the end
    async def settle(self) -> None:
        """Any other stop: no more sending; an order committed but not
        acknowledged is resolved by lookup, and every order still open on the
        books is read once more, so the summary and trades.csv hold what the
        exchange did until now (a fill whose push was late). Orders and the
        position stay for the restart."""
        self.stopping = True
        while not self._queue.empty():
            self._queue.get_nowait()
        for row in [r for r in self.rows.values() if r.state == "committed"]:
            await self.resolve(row)  # queued or in flight when the sender stopped: never sent again
        for row in [r for r in self.rows.values() if r.open]:
            try:
                order = await self.client.find_order(client_id=row.exchange_id, symbol=self.symbol)
            except ExchangeError as exc:
                self.log.warning("settling %s: %s", row.exchange_id, exc)
                continue
            if order is not None:
                await self.on_order(order)

    async def stop(self, *, flatten: bool) -> str | None:
        """A user stop: cancel, flatten unless told not to, book it, verify.
        Returns what is left on the exchange (None: nothing)."""
        self.stopping = True
        # Orders committed but not acknowledged (queued, or in flight when the
        # sender was cancelled) are settled by lookup, never by sending.
        while not self._queue.empty():
            self._queue.get_nowait()
        for row in [r for r in self.rows.values() if r.state == "committed"]:
            await self.resolve(row)
        start = (self.engine.last_candle_ts or 0) + 1  # never a candle time: no id collides with an intent's
        result: FlattenResult = await flatten_all(self.client, self.symbol, close_positions=flatten,
                                                  run_id=self.run_id, start_ms=start)
        self.log.info("%s", result.describe())
        for closing in result.closing:
            if closing.outcome in ("placed", "resolved") or closing.order_id:
                with contextlib.suppress(ExchangeError):
                    order = await self.client.find_order(client_id=closing.client_id, symbol=self.symbol)
                    if order is not None:
                        self._adopt_row(order, start)
                        await self.on_order(order)
        for row in [r for r in self.rows.values() if r.open]:
            with contextlib.suppress(ExchangeError):
                order = await self.client.find_order(client_id=row.exchange_id, symbol=self.symbol)
                if order is not None:
                    await self.on_order(order)
        if result.done:
            return None
        return result.describe()

    def _adopt_row(self, order: Order, ts: int) -> None:
        """A closing order of the flatten, recorded like the bot's own (its fills are booked under its id)."""
        cid = order.client_id or order.order_id
        if cid in self.rows:
            return
        parts = client_ids.parse_client_order_id(cid)
        row = LiveOrder(cid, cid, self.run_id, ts, parts.seq if parts else 0, order.side.value,
                        order.order_type.value, order.qty, order.price, True, "acked", order.order_id)
        self.rows[cid] = row
        self.by_intent[cid] = cid

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            if self.ws is not None:
                await self.ws.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()


def _entry(positions: list[Position]) -> float:
    for p in positions:
        if p.avg_open_price:
            return float(p.avg_open_price)
        if p.entry_value and p.qty:
            return float(p.entry_value) / float(p.qty)
    return 0.0


def build_execution(config: Any, engine: Engine, store: Any, *, run_id: str, log: logging.Logger) -> LiveExecution:
    """The execution client of a live session: keys from the environment (never
    shown), the private REST client on ``trading.bitunix_rest_url`` and the
    private websocket on ``trading.bitunix_private_ws_url``. Raises
    :class:`~laptop_agents.exchange.credentials.CredentialsError` (one line)."""
    from laptop_agents.exchange.credentials import ApiCredentials

    t = config.trading
    creds = ApiCredentials.from_env()
    client = BitunixPrivateClient(creds, t.bitunix_rest_url)
    ws = BitunixPrivateWsClient(creds, t.bitunix_private_ws_url)
    return LiveExecution(engine, store, client, ws, symbol=engine.instrument.symbol, run_id=run_id,
                         adopt=t.adopt, reconcile_s=t.reconcile_minutes * 60.0, leverage=t.leverage,
                         max_leverage=config.risk.max_leverage, log=log)
