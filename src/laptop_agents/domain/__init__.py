"""Plain data of the system: no I/O, no clock."""

from laptop_agents.domain.events import Event
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    ContractKind,
    DomainError,
    Fill,
    FundingRate,
    Instrument,
    OrderIntent,
    OrderType,
    Side,
    Tick,
)
from laptop_agents.domain.symbols import SUPPORTED_SYMBOLS, SymbolError, instrument_for, normalize_symbol
from laptop_agents.domain.timeframes import interval_ms, parse_interval

__all__ = [
    "SUPPORTED_SYMBOLS",
    "CancelIntent",
    "Candle",
    "ContractKind",
    "DomainError",
    "Event",
    "Fill",
    "FundingRate",
    "Instrument",
    "OrderIntent",
    "OrderType",
    "Side",
    "SymbolError",
    "Tick",
    "instrument_for",
    "interval_ms",
    "normalize_symbol",
    "parse_interval",
]
