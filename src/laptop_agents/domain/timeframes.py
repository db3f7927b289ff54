"""Candle intervals: one canonical spelling (``1m``, ``15m``, ``1h``, ``1d``...)."""

from __future__ import annotations

from laptop_agents.domain.models import DomainError

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
SUPPORTED_INTERVALS: tuple[str, ...] = (
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
)


def parse_interval(raw: str) -> str:
    """Return the canonical interval name or raise with what is allowed."""
    text = str(raw).strip().lower().replace("min", "m").replace("day", "d").replace("week", "w")
    if text == "60m":
        text = "1h"
    if text in SUPPORTED_INTERVALS:
        return text
    raise DomainError(f"unsupported interval {raw!r}: allowed are {', '.join(SUPPORTED_INTERVALS)}")


def interval_ms(interval: str) -> int:
    """Length of one candle in milliseconds."""
    name = parse_interval(interval)
    return int(name[:-1]) * _UNIT_MS[name[-1]]
