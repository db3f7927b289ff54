"""Every process exit code in one place, so a supervisor (the watchdog, a
service manager, a shell script) can act on the reason without parsing text.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # clean end (duration reached, or a user stop via kill switch/SIGINT/SIGTERM)
    CRASH = 1  # an unexpected exception: the watchdog restarts it
    CONFIG_ERROR = 2  # bad flag, bad config value, unknown key, bad symbol
    PREFLIGHT_FAILED = 3  # a preflight check failed; nothing was started
    STALE_DATA = 4  # no market data for --stale-timeout seconds
    ERROR_BUDGET = 5  # too many errors in the session
    MARKET_DATA_ERRORS = 6  # N consecutive market-data errors
    ALREADY_RUNNING = 7  # another live instance holds the workspace lock
    STORE_CORRUPT = 8  # state.db is unreadable; it is kept for inspection
    BAD_INPUT = 9  # bad candle file / replay file / data that cannot be used
    DISK_FULL = 10  # could not write state or output (no space, read-only)
    # Unused since live execution was built (issue 12); the number stays
    # retired so a script that knew it never sees it mean something else.
    NOT_IMPLEMENTED = 11
    LIVE_NOT_ALLOWED = 12  # live execution requested without every gate open
    RECONCILE_MISMATCH = 13  # live: exchange state differs from local state
    # state.db belongs to another source/symbol/interval/strategy, or its last
    # candle lies ahead of the market's clock: a restart would hit it again.
    STORE_MISMATCH = 14
    # 15 is reserved (DRILL_FAILED).
    # live: an order whose placement outcome stayed unknown after the bounded
    # lookups by its client id; it is named, never sent again.
    ORDER_UNRESOLVED = 16
    # a flatten (the command, or a live session's stop) left an order or a
    # position open, or could not verify it; what is left is printed.
    FLATTEN_INCOMPLETE = 17
    KILL_SWITCH = 0  # documented alias: a kill-switch exit is a clean exit


# A kill-switch stop is clean (0) by the spec; the reason is in the summary and
# heartbeat so the watchdog can tell it from a duration end.
RESTARTABLE: frozenset[int] = frozenset(
    {ExitCode.CRASH, ExitCode.STALE_DATA, ExitCode.MARKET_DATA_ERRORS, ExitCode.ERROR_BUDGET}
)
