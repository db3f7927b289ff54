"""Epoch milliseconds <-> ISO 8601 text: the one formatter and parser.

Inside, a time is an ``int`` of UTC milliseconds; text exists only at the
edges (reports, log lines, messages, candle files, command-line dates). One
pair of pure functions serves them all, so every edge writes the same
``2024-01-31T12:00:00Z`` and none of them needs the candle loader or a
second copy of the rules. Exact integer arithmetic: no float rounding for
times far from 1970, and no clock is read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

Timespec = Literal["auto", "seconds", "milliseconds"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_iso(ms: int, timespec: Timespec = "auto") -> str:
    """UTC ISO 8601 text of an epoch-ms time, always ending in ``Z``.

    ``auto`` (reports, messages) shows milliseconds only when the time is not
    a whole second (``2024-01-01T00:00:00Z``, ``2024-01-01T00:00:00.250Z``);
    ``seconds`` cuts them off; ``milliseconds`` always shows them (log lines,
    where a fixed width lines up). A value no calendar can show (beyond the
    years 1..9999: a unit mix-up in a file) comes back as ``epoch ms N``
    instead of raising, because such values are what error messages are about.
    """
    ms = int(ms)
    try:
        dt = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return f"epoch ms {ms}"
    frac = ms % 1000
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.year < 1000:  # strftime does not pad years below 1000 on every platform
        text = f"{dt.year:04d}{text[text.index('-'):]}"
    if timespec == "milliseconds" or (timespec == "auto" and frac):
        return f"{text}.{frac:03d}Z"
    return f"{text}Z"


def iso_to_ms(text: str) -> int:
    """Epoch ms of ISO 8601 text: ``2024-01-31``, ``2024-01-31T12:00``,
    ``2024-01-31 12:00:00.250``, with ``Z`` or an offset (``+01:00``); a time
    without a zone is UTC, a date alone is its midnight UTC. Sub-millisecond
    digits round to the nearest millisecond. Raises :class:`ValueError` naming
    what is accepted."""
    raw = text.strip()
    iso = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"not an ISO 8601 date/time: {raw[:40]!r} (use 2024-01-31, 2024-01-31T12:00Z or 2024-01-31T12:00+01:00)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    micros = (dt - _EPOCH) // timedelta(microseconds=1)
    return (micros + 500) // 1000
