"""The account's money: balance, realized PnL, fees, funding, and the trade in progress.

The ledger is kept in the contract's settlement currency: USDT for linear
contracts, BTC for inverse ones (each contract is worth ``contract_size`` USD,
so its BTC value is ``contract_size / price``). Every change to the balance
goes through :meth:`Ledger.execute` (fills) or :meth:`Ledger.charge_funding`,
so ``balance == start_balance + realized_pnl - fees_paid - funding_paid``
holds by construction and the journal (fill and funding events) reproduces it.

The open net position is the trade in progress: a trade opens when the
position leaves zero and closes when it returns to zero (a reversal closes one
trade and opens the next with the same fill, splitting its fee).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from laptop_agents.broker.state import Position, WorkingOrder
from laptop_agents.domain.events import Funding, TradeClosed
from laptop_agents.domain.models import ContractKind, Fill, Instrument, OrderIntent, Side

if TYPE_CHECKING:
    from laptop_agents.config import BrokerConfig

QTY_EPS = 1e-9  # quantities below this are zero (float noise from partial fills)


class Ledger:
    """Balances and the open position of one symbol's account (see the module docstring)."""

    __slots__ = (
        "balance", "cs", "fees_paid", "fill_count", "funding_paid", "inverse", "maker", "position",
        "realized_pnl", "start_balance", "starting_equity_quote", "taker", "trades_closed",
    )  # fmt: skip

    def __init__(self, instrument: Instrument, broker: BrokerConfig, starting_equity: float) -> None:
        self.inverse = instrument.kind is ContractKind.INVERSE
        self.cs = instrument.contract_size
        self.maker = broker.maker_fee_bps / 1e4
        self.taker = broker.taker_fee_bps / 1e4
        self.starting_equity_quote = float(starting_equity)
        self.start_balance: float | None = None if self.inverse else float(starting_equity)
        self.balance: float = 0.0 if self.inverse else float(starting_equity)
        self.realized_pnl = 0.0
        self.fees_paid = 0.0
        self.funding_paid = 0.0
        self.position: Position | None = None
        self.trades_closed = 0
        self.fill_count = 0

    # ------------------------------------------------------------------ valuation
    def pnl(self, qty: float, entry: float, exit_: float) -> float:
        """PnL of a signed position quantity ``qty`` from ``entry`` to ``exit_``,
        in settlement currency. Inverse: a long gains cs*(1/entry - 1/exit) per contract."""
        if self.inverse:
            return qty * self.cs * (1.0 / entry - 1.0 / exit_)
        return qty * (exit_ - entry)

    def fee(self, qty: float, price: float, rate: float) -> float:
        if self.inverse:
            return abs(qty) * self.cs / price * rate
        return abs(qty) * price * rate

    def notional(self, qty: float, price: float) -> float:
        """Position value in quote currency (USD), what the hard limits cap."""
        return abs(qty) * self.cs if self.inverse else abs(qty) * price

    def unrealized(self, price: float | None) -> float:
        pos = self.position
        if pos is None or price is None:
            return 0.0
        return self.pnl(pos.qty, pos.entry_price, price)

    def equity(self, price: float | None) -> float:
        """Balance plus unrealized PnL at ``price`` (settlement currency)."""
        pos = self.position  # unrealized(), inlined: the breaker asks every candle a position is open
        if pos is None or price is None:
            return self.balance + 0.0
        return self.balance + self.pnl(pos.qty, pos.entry_price, price)

    def equity_quote(self, mark: float | None) -> float:
        """Equity in quote currency (USD/USDT): what sizing and leverage use.
        An inverse account without a price yet is its quote starting equity."""
        eq = self.equity(mark)
        if self.inverse:
            return eq * mark if mark is not None else self.starting_equity_quote
        return eq

    def first_price(self, price: float) -> None:
        """An inverse account's BTC balance is its quote starting equity at the first price seen."""
        if self.start_balance is None:
            self.start_balance = self.starting_equity_quote / price
            self.balance = self.start_balance

    def exit_id(self, reason: str) -> str:
        """Client id of a broker-initiated exit: the trade's opening id, the
        reason and the fill's sequence number, unique and deterministic."""
        pos = self.position
        assert pos is not None
        return f"{pos.client_id}:{reason}:{self.fill_count + 1}"

    # ------------------------------------------------------------------ bookings
    def execute(
        self,
        ts: int,
        client_id: str,
        side: Side,
        qty: float,
        price: float,
        liquidity: str,
        reason: str,
        order: WorkingOrder | OrderIntent | None = None,
        fee: float | None = None,
    ) -> tuple[Fill, TradeClosed | None]:
        """Book one fill: net it against the position (reduce, close or
        reverse), pay the fee, and close the trade when flat. A new position
        takes the order's bracket; an add keeps the trade's 1 R."""
        if fee is None:  # live fills bring the exchange's own fee
            fee = self.fee(qty, price, self.maker if liquidity == "maker" else self.taker)
        s = side.sign
        pos = self.position
        remaining = qty
        fee_close = 0.0
        closed: Position | None = None
        if pos is not None and pos.qty * s < 0:
            close = min(qty, abs(pos.qty))
            fee_close = fee * close / qty
            realized = self.pnl(-s * close, pos.entry_price, price)
            self.balance += realized - fee_close
            self.realized_pnl += realized
            pos = pos._replace(
                qty=pos.qty + s * close, pnl=pos.pnl + realized, fees=pos.fees + fee_close,
                exit_qty=pos.exit_qty + close,
                exit_acc=pos.exit_acc + (close / price if self.inverse else close * price),
            )  # fmt: skip
            remaining -= close
            if abs(pos.qty) <= QTY_EPS:
                closed, pos = pos, None
            self.position = pos
            if remaining <= QTY_EPS:
                remaining = 0.0
        fee_open = fee - fee_close
        if remaining > 0.0:
            self.balance -= fee_open
            stop = order.stop if order is not None else None
            target = order.target if order is not None else None
            if pos is None:
                trailing = bool(order.trailing) if order is not None else False
                self.position = Position(
                    qty=s * remaining, entry_price=price, entry_ts=ts, client_id=client_id,
                    stop=stop, target=target, trailing=trailing,
                    risk=abs(price - stop) if stop is not None else 0.0, trail_active=False,
                    max_qty=remaining, pnl=0.0, fees=fee_open, funding=0.0, exit_qty=0.0, exit_acc=0.0,
                )  # fmt: skip
            else:
                new_qty = pos.qty + s * remaining
                if self.inverse:
                    entry = abs(new_qty) / (abs(pos.qty) / pos.entry_price + remaining / price)
                else:
                    entry = (abs(pos.qty) * pos.entry_price + remaining * price) / abs(new_qty)
                risk = pos.risk
                if stop is not None and risk == 0.0:
                    risk = abs(entry - stop)
                self.position = pos._replace(
                    qty=new_qty, entry_price=entry, max_qty=max(pos.max_qty, abs(new_qty)),
                    fees=pos.fees + fee_open, stop=pos.stop if stop is None else stop, risk=risk,
                    target=pos.target if target is None else target,
                )  # fmt: skip
        self.fees_paid += fee
        self.fill_count += 1
        fill = Fill(ts, client_id, side, qty, price, fee, liquidity, reason)
        trade = None if closed is None else self._close_trade(ts, closed, reason, long=side is Side.SELL)
        return fill, trade

    def _close_trade(self, ts: int, pos: Position, reason: str, *, long: bool) -> TradeClosed:
        exit_price = pos.exit_qty / pos.exit_acc if self.inverse else pos.exit_acc / pos.exit_qty
        self.trades_closed += 1
        return TradeClosed(
            ts, "long" if long else "short", pos.max_qty, pos.entry_ts, pos.entry_price, ts, exit_price,
            pos.pnl, pos.fees, pos.funding, pos.pnl - pos.fees - pos.funding, reason, pos.client_id,
        )  # fmt: skip

    def charge_funding(self, ts: int, boundary: int, rate: float | None, price: float) -> Funding | None:
        """Charge the funding settlement at ``boundary`` on the open position
        at ``price``: a long pays a positive rate and a short receives it (the
        seed charged both sides). None when there is nothing to charge."""
        pos = self.position
        if pos is None or rate is None or rate == 0.0:
            return None
        value = pos.qty * self.cs / price if self.inverse else pos.qty * price
        amount = value * rate  # positive = paid
        self.balance -= amount
        self.funding_paid += amount
        self.position = pos._replace(funding=pos.funding + amount)
        return Funding(ts, rate, amount, pos.qty, boundary, price)
