"""One INFO line per position change, for a user watching the console.

A trade opened (or added to, reduced, reversed) by a fill, and each closed
trade with its PnL. Only steps with fills get here, which is rare, so the
formatting costs the candle path nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from laptop_agents.domain.contracts import StepResult
from laptop_agents.domain.events import FillEvent, TradeClosed
from laptop_agents.domain.models import Side


def _side(qty: float) -> str:
    return "long" if qty > 0 else "short"


def _qty(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def _price(value: Any) -> str:
    try:
        return f"{float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


class TradeLog:
    """Tracks the position as the lines last described it, so each fill says what it changed."""

    def __init__(self, log: logging.Logger, symbol: str, currency: str | None, position_qty: float) -> None:
        self.log = log
        self.symbol = symbol
        self.money = 8 if currency == "BTC" else 2  # decimals of the account's currency
        self.qty = position_qty

    def on_step(self, result: StepResult) -> None:
        qty = self.qty
        symbol, money = self.symbol, self.money
        for ev in result.events:
            if isinstance(ev, FillEvent):
                new = qty + (ev.qty if ev.side is Side.BUY else -ev.qty)
                if abs(new) <= 1e-12:
                    new = 0.0
                if new != 0.0:
                    if qty == 0.0 or qty * new < 0:
                        verb = "trade opened" if qty == 0.0 else "position reversed, trade opened"
                        what = f"{_side(new)} {abs(new):g} {symbol}"
                    else:
                        verb = "position added" if abs(new) > abs(qty) else "position reduced"
                        what = f"{_side(new)} {abs(qty):g} -> {abs(new):g} {symbol}"
                    self.log.info("%s: %s @ %s (fee %.*f, %s)", verb, what, _price(ev.price), money, ev.fee,
                                  ev.reason or "fill",
                                  extra={"fields": {**ev.to_dict(), "event": "fill", "position_qty": new}})
                qty = new
            elif isinstance(ev, TradeClosed):
                self.log.info(
                    "trade closed: %s %s %s, %s -> %s, PnL %.*f, fees %.*f, funding %.*f, net PnL %.*f (%s)",
                    ev.side, _qty(ev.qty), symbol, _price(ev.entry_price), _price(ev.exit_price), money, ev.pnl,
                    money, ev.fees, money, ev.funding, money, ev.net_pnl, ev.exit_reason,
                    extra={"fields": {**ev.to_dict(), "event": "trade_closed"}})
        self.qty = float(result.position_qty)
