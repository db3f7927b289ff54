"""Why a session stops, and the exit code each reason becomes.

This sits beside :mod:`laptop_agents.exit_codes` because two parties must
agree on it without importing each other: the session records a reason (in
summary.json, the heartbeat, the ``session`` event and the log) and exits with
its code; the watchdog reads the reason back from the heartbeat of a child
that hung while stopping and honours what the child meant to do.
"""

from __future__ import annotations

from enum import StrEnum

from laptop_agents.exit_codes import ExitCode


class StopReason(StrEnum):
    """Why a session ended; mapped to the process exit code by :func:`exit_code_for`."""

    DURATION = "duration"
    KILL_SWITCH = "kill_switch"
    SIGNAL = "signal"
    END_OF_DATA = "end_of_data"
    STALE_DATA = "stale_data"
    MARKET_DATA_ERRORS = "market_data_errors"
    SOURCE_ENDED = "source_ended"
    ERROR_BUDGET = "error_budget"
    DISK_FULL = "disk_full"
    STORE_CORRUPT = "store_corrupt"
    # A recording replay asked for something the live run did not (or the
    # recording is damaged): its decisions would no longer be the live ones.
    REPLAY_DIVERGED = "replay_diverged"
    # Live execution: see laptop_agents.session.execution.
    ORDER_UNRESOLVED = "order_unresolved"
    RECONCILE_MISMATCH = "reconcile_mismatch"
    FLATTEN_INCOMPLETE = "flatten_incomplete"
    # Live: the exchange account is set up in a way the bot's limits cannot
    # stand behind (leverage above risk.max_leverage on isolated margin), or
    # the leverage asked for could not be set.
    LIVE_GATE = "live_gate"
    CRASH = "crash"


EXIT_CODES: dict[StopReason, ExitCode] = {
    StopReason.DURATION: ExitCode.OK,
    StopReason.KILL_SWITCH: ExitCode.KILL_SWITCH,
    StopReason.SIGNAL: ExitCode.OK,
    StopReason.END_OF_DATA: ExitCode.OK,
    StopReason.STALE_DATA: ExitCode.STALE_DATA,
    StopReason.MARKET_DATA_ERRORS: ExitCode.MARKET_DATA_ERRORS,
    # A live stream that ends by itself is a market-data failure: restartable.
    StopReason.SOURCE_ENDED: ExitCode.MARKET_DATA_ERRORS,
    StopReason.ERROR_BUDGET: ExitCode.ERROR_BUDGET,
    StopReason.DISK_FULL: ExitCode.DISK_FULL,
    StopReason.STORE_CORRUPT: ExitCode.STORE_CORRUPT,
    StopReason.REPLAY_DIVERGED: ExitCode.BAD_INPUT,
    StopReason.ORDER_UNRESOLVED: ExitCode.ORDER_UNRESOLVED,
    StopReason.RECONCILE_MISMATCH: ExitCode.RECONCILE_MISMATCH,
    StopReason.FLATTEN_INCOMPLETE: ExitCode.FLATTEN_INCOMPLETE,
    StopReason.LIVE_GATE: ExitCode.LIVE_NOT_ALLOWED,
    StopReason.CRASH: ExitCode.CRASH,
}

# Stops asked for by the user: cancel working orders and (optionally) flatten.
USER_STOPS = frozenset({StopReason.KILL_SWITCH, StopReason.SIGNAL})


def exit_code_for(reason: StopReason) -> int:
    return int(EXIT_CODES[reason])


def intended_exit(recorded: object) -> int | None:
    """The exit code a recorded reason (a heartbeat's ``reason`` string) stands
    for; None when it is missing or names no reason this version knows."""
    if not isinstance(recorded, str):
        return None
    try:
        return exit_code_for(StopReason(recorded))
    except ValueError:
        return None
