"""One INFO line per position change, for a user watching the console.

A trade opened (or added to, reduced, reversed) by a fill, and each closed
trade with its PnL. Only steps with fills get here, which is rare, so the
formatting costs the candle path nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from laptop_agents.domain.contracts import StepResult


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
            d = ev.data
            if ev.kind == "fill":
                size = float(d.get("qty") or 0.0)
                new = qty + (size if str(d.get("side", "")).upper() == "BUY" else -size)
                if abs(new) <= 1e-12:
                    new = 0.0
                if new != 0.0:
                    if qty == 0.0 or qty * new < 0:
                        verb = "trade opened" if qty == 0.0 else "position reversed, trade opened"
                        what = f"{_side(new)} {abs(new):g} {symbol}"
                    else:
                        verb = "position added" if abs(new) > abs(qty) else "position reduced"
                        what = f"{_side(new)} {abs(qty):g} -> {abs(new):g} {symbol}"
                    self.log.info("%s: %s @ %s (fee %.*f, %s)", verb, what, _price(d.get("price")), money,
                                  float(d.get("fee") or 0.0), d.get("reason") or "fill",
                                  extra={"fields": {"event": "fill", "ts": ev.ts, **d, "position_qty": new}})
                qty = new
            elif ev.kind == "trade_closed":
                self.log.info(
                    "trade closed: %s %s %s, %s -> %s, PnL %.*f, fees %.*f, funding %.*f, net PnL %.*f (%s)",
                    d.get("side"), _qty(d.get("qty")), symbol, _price(d.get("entry_price")),
                    _price(d.get("exit_price")), money, float(d.get("pnl") or 0.0), money,
                    float(d.get("fees") or 0.0), money, float(d.get("funding") or 0.0), money,
                    float(d.get("net_pnl") or 0.0), d.get("exit_reason"),
                    extra={"fields": {"event": "trade_closed", "ts": ev.ts, **d}})
        self.qty = float(result.position_qty)
