"""The shell's wall clock: UTC epoch milliseconds, now.

One function for every part of the shell that needs "now" as the system's
time unit (sources, the exchange clients, the fake exchange, fetch, lock and
kill files). The deterministic core never calls it: the Engine's time comes
from the candles it is given. Parts that read it take it as the default of an
injectable ``clock`` parameter, so tests and replays can drive time instead.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """UTC epoch milliseconds of the system clock (integer arithmetic: no float rounding)."""
    return time.time_ns() // 1_000_000
