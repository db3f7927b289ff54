"""Position sizing and price rounding for both contract kinds.

qty = equity * risk_pct / 100 * size_mult / stop_distance, then capped by the
maximum position notional and by ``equity * max_leverage``, floored to the
instrument's quantity step, and rejected below its minimum quantity or
notional. ``risk_pct`` is a percent (1.0 = 1 %): the seed system mixed percent
and fraction and ended up risking all of the equity on one trade.

``equity`` is in the quote currency for both contract kinds (the Engine's
``AccountView.equity`` is the account's equity valued in USD/USDT).

Linear (BTCUSDT): qty in BTC, loss at the stop ``qty * |entry - stop|`` USDT.

Inverse (BTCUSD): the account is coin-margined, so the risk budget is a
fraction of the BTC balance, ``equity / entry`` BTC at the entry price; qty is
in contracts of ``contract_size`` USD each, whose loss at the stop is
``contract_size * |1/entry - 1/stop|`` BTC. The notional is
``qty * contract_size`` USD, compared with ``equity * max_leverage``.
"""

from __future__ import annotations

import math
from functools import lru_cache

from laptop_agents.domain.models import ContractKind, Instrument

# Reasons a size is refused; they appear in decision events.
ZERO_STOP = "zero_stop_distance"
NO_EQUITY = "no_equity"
BELOW_MIN_QTY = "size_below_min_qty"
BELOW_MIN_NOTIONAL = "size_below_min_notional"
BAD_PRICE = "bad_price"


@lru_cache(maxsize=64)
def _decimals(step: float) -> int:
    """Digits after the point needed to print multiples of ``step`` exactly."""
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def floor_to_step(x: float, step: float) -> float:
    """Largest multiple of ``step`` not above ``x`` (tolerant of 2.9999999 float noise)."""
    n = math.floor(x / step + 1e-9)
    return round(n * step, _decimals(step))


def round_to_tick(price: float, tick: float) -> float:
    """Nearest multiple of the tick size, printed without float noise."""
    return round(round(price / tick) * tick, _decimals(tick))


def round_away(price: float, tick: float, direction: int) -> float:
    """Round to the tick in ``direction`` (+1 up, -1 down), tolerant of float
    noise: a target rounded away from the entry keeps its reward/risk at least
    the multiple it was computed with."""
    x = price / tick
    n = math.ceil(x - 1e-9) if direction > 0 else math.floor(x + 1e-9)
    return round(n * tick, _decimals(tick))


def position_size(
    *,
    equity: float,
    risk_pct: float,
    size_mult: float,
    entry: float,
    stop: float,
    instrument: Instrument,
    max_notional: float,
    max_leverage: float,
) -> tuple[float, str]:
    """``(qty, "")`` or ``(0.0, reason)`` when no valid order can be sized.

    ``equity`` and ``max_notional`` are in USD (quote) for both contract kinds.
    """
    if not (entry > 0.0 and stop > 0.0) or not math.isfinite(entry + stop):
        return 0.0, BAD_PRICE
    if not equity > 0.0 or not math.isfinite(equity):
        return 0.0, NO_EQUITY
    risk = equity * risk_pct / 100.0 * size_mult
    if instrument.kind is ContractKind.INVERSE:
        cs = instrument.contract_size
        loss_per_contract = cs * abs(1.0 / entry - 1.0 / stop)  # BTC
        if loss_per_contract <= 0.0 or abs(entry - stop) <= 0.0:
            return 0.0, ZERO_STOP
        qty = (risk / entry) / loss_per_contract  # BTC budget / BTC lost per contract
        qty = min(qty, max_notional / cs, equity * max_leverage / cs)
        notional = cs  # USD per contract
    else:
        dist = abs(entry - stop)
        if dist <= 0.0:
            return 0.0, ZERO_STOP
        qty = risk / dist
        qty = min(qty, max_notional / entry, equity * max_leverage / entry)
        notional = entry
    qty = floor_to_step(qty, instrument.qty_step)
    if qty <= 0.0 or qty < instrument.min_qty - 1e-12:
        return 0.0, BELOW_MIN_QTY
    if qty * notional < instrument.min_notional:
        return 0.0, BELOW_MIN_NOTIONAL
    return qty, ""


def notional_usd(qty: float, price: float, instrument: Instrument) -> float:
    """USD notional of ``qty`` at ``price`` for either contract kind."""
    if instrument.kind is ContractKind.INVERSE:
        return qty * instrument.contract_size
    return qty * price


def leverage(qty: float, price: float, equity: float, instrument: Instrument) -> float:
    """Position notional over equity (both in USD)."""
    if equity <= 0.0:
        return math.inf
    return notional_usd(qty, price, instrument) / equity
