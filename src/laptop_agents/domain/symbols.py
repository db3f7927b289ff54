"""Symbol normalisation, done once at the edge.

The product trades BTC perpetuals only: the linear USDT-margined ``BTCUSDT``
and the inverse USD contract ``BTCUSD``. Everything else is refused before
anything starts, because a typo that silently trades another market is worse
than an error.
"""

from __future__ import annotations

import re
from typing import ClassVar

from laptop_agents.domain.models import ContractKind, DomainError, Instrument
from laptop_agents.exit_codes import ExitCode

_INSTRUMENTS: dict[str, Instrument] = {
    "BTCUSDT": Instrument(
        symbol="BTCUSDT",
        kind=ContractKind.LINEAR,
        tick_size=0.1,
        qty_step=0.0001,
        min_qty=0.0001,
        min_notional=5.0,
    ),
    "BTCUSD": Instrument(
        symbol="BTCUSD",
        kind=ContractKind.INVERSE,
        tick_size=0.5,
        qty_step=1.0,
        min_qty=1.0,
        min_notional=1.0,
        contract_size=1.0,
    ),
}

SUPPORTED_SYMBOLS: tuple[str, ...] = tuple(_INSTRUMENTS)


class SymbolError(DomainError):
    """An unknown or unsupported symbol."""

    exit_code: ClassVar[int] = ExitCode.CONFIG_ERROR


def normalize_symbol(raw: str) -> str:
    """Map ``btc/usdt``, ``BTC-USDT``, ``btc_usdt``, ``btcusdt`` to ``BTCUSDT``.

    ``BTCUSD`` (and ``btc/usd``) is the inverse contract. Anything else raises
    :class:`SymbolError` with the list of what is allowed.
    """
    cleaned = re.sub(r"[\s/\-_:]", "", str(raw)).upper()
    if cleaned.endswith("PERP"):
        cleaned = cleaned[: -len("PERP")]
    if cleaned in _INSTRUMENTS:
        return cleaned
    allowed = ", ".join(SUPPORTED_SYMBOLS)
    raise SymbolError(f"unsupported symbol {raw!r}: allowed are {allowed} (e.g. btc/usdt, BTC-USDT, btcusd)")


def instrument_for(symbol: str) -> Instrument:
    """The contract specification of a (normalised or raw) symbol."""
    return _INSTRUMENTS[normalize_symbol(symbol)]
