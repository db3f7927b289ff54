"""The watchdog's decisions as pure functions: no process, no clock, no file.

Two questions, each answered from plain inputs so a table of cases can test
every rule in milliseconds (``tests/ops/test_restart_policy.py``):

* :func:`check_liveness` -- while a child runs: is it hung? A child whose
  heartbeat (or, before its first beat, its start) is older than
  ``hang_timeout`` is hung; a long gap between two checks means nothing ran
  (the laptop slept, this process was frozen, the clock jumped), so the
  timeout starts over instead of killing a child that could not beat either.
* :func:`decide` -- once a child has ended: restart it after a delay, or
  stop with a reason and an exit code. The rules, in order:

  1. the watchdog itself was asked to stop: stop (``watchdog_stop``) with
     the child's exit code;
  2. a hung child whose last heartbeat says it was ending on purpose with a
     non-restartable code (kill switch, duration, corrupt store...): honour
     that purpose and stop with its code;
  3. exit 0: a clean end (``clean_exit``), never restarted;
  4. a code a restart cannot fix (anything but ``exit_codes.RESTARTABLE``
     and deaths by signal): stop with that code (``not_restartable``);
  5. otherwise the child failed: with a pending kill file stop (``kill_file``);
     a child that ran ``stable_after`` seconds resets the failures in a row;
     after ``max_restarts_per_hour`` restarts in a rolling hour give up
     (``give_up``); else restart after ``restart_delay`` doubled per failure
     in a row, capped at ``max_delay``.

A failure stop exits with the child's code (a signal death counts as a crash,
exit 1), so whoever supervises the watchdog sees why.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from laptop_agents.exit_codes import RESTARTABLE, ExitCode
from laptop_agents.heartbeat import Heartbeat
from laptop_agents.stop_reasons import intended_exit

HOUR_S = 3600.0


@dataclass
class WatchdogOptions:
    """Tunables; the CLI flags map one to one, the rest have safe defaults."""

    restart_delay: float = 10.0
    max_delay: float = 600.0
    max_restarts_per_hour: int = 10
    hang_timeout: float = 120.0
    # A child that ran this long was healthy: the backoff starts over.
    stable_after: float = 300.0
    # How long a signalled (user-stopped) child may take to cancel, flatten and commit.
    stop_grace: float = 60.0
    poll_interval: float = 0.25

    def backoff(self, failures_in_a_row: int) -> float:
        """Delay before the restart that follows ``failures_in_a_row`` quick failures (1-based)."""
        exponent = max(0, failures_in_a_row - 1)
        return float(min(self.restart_delay * (2.0 ** min(exponent, 60)), max(self.max_delay, self.restart_delay)))

    def stall_threshold(self) -> float:
        """A gap between two checks this long means nothing ran (suspend), not a hang."""
        return max(2.0, 10 * self.poll_interval, self.hang_timeout / 2)


def normalize_exit(code: int) -> int:
    """A process exit code the watchdog can return: signals (negative) count as a crash."""
    if code < 0 or code > 255:
        return int(ExitCode.CRASH)
    return code


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    try:
        return f"exit {code} ({ExitCode(code).name.lower()})"
    except ValueError:
        return f"exit {code}"


# ---------------------------------------------------------------- while it runs


@dataclass(frozen=True, slots=True)
class Liveness:
    """One check of a running child."""

    alive_ref: float  # wall time it was last known alive besides its heartbeat (carried to the next check)
    age_s: float  # seconds since it was last known alive
    hung: bool
    resumed_after_s: float | None = None  # the gap since the previous check, when it restarted the timeout


def check_liveness(*, now: float, last_check: float, alive_ref: float, heartbeat: Heartbeat | None,
                   options: WatchdogOptions) -> Liveness:
    """Judge a running child at wall time ``now``. ``alive_ref`` starts as the
    child's start time; ``heartbeat`` is its own latest beat (or None)."""
    gap = now - last_check
    resumed = None
    if gap > options.stall_threshold():
        alive_ref, resumed = now, gap
    last = max(alive_ref, heartbeat.wall_ts()) if heartbeat is not None else alive_ref
    age = now - last
    return Liveness(alive_ref, age, age > options.hang_timeout, resumed)


# ---------------------------------------------------------------- once it ended


@dataclass(frozen=True, slots=True)
class ChildEnd:
    """How one child run ended, as the driver observed it."""

    exit_code: int  # as the OS reports it: negative = killed by that signal
    uptime_s: float
    hung: bool = False  # the watchdog killed it for a stale heartbeat
    stopped_on_request: bool = False  # the watchdog itself was asked to stop
    heartbeat: Heartbeat | None = None  # its own last heartbeat
    kill_file: str | None = None  # the pending kill file's path; None when there is none


@dataclass(frozen=True, slots=True)
class RestartHistory:
    """What the policy remembers between children."""

    restarts: tuple[float, ...] = ()  # monotonic time of each restart
    failures_in_a_row: int = 0

    def restarted(self, at: float) -> RestartHistory:
        return RestartHistory((*self.restarts, at), self.failures_in_a_row)


@dataclass(frozen=True, slots=True)
class Restart:
    """Start the session again after ``delay_s`` seconds."""

    delay_s: float
    cause: str  # crash, stale_data, market_data_errors, error_budget, hung
    failed_code: int  # the exit code if the watchdog stops before the restart
    history: RestartHistory  # as of this decision; record the restart with ``history.restarted(at)``
    message: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Do not restart; the watchdog exits with ``exit_code``."""

    reason: str  # watchdog_stop, clean_exit, kill_switch, not_restartable, kill_file, give_up
    exit_code: int
    message: str


Decision = Restart | Stop


def decide(end: ChildEnd, history: RestartHistory, options: WatchdogOptions, now: float) -> Decision:
    """The restart policy: what follows the end of one child (see the module docstring).

    ``now`` is monotonic seconds, comparable with ``history.restarts``.
    """
    code = end.exit_code
    said = describe_exit(code)
    if end.stopped_on_request:
        return Stop("watchdog_stop", normalize_exit(code), f"stopped on request; the session exited with {said}")

    if end.hung:
        hb = end.heartbeat
        intended = intended_exit(hb.reason) if hb is not None and hb.ending else None
        if hb is not None and intended is not None and intended not in RESTARTABLE:
            # It was ending on purpose and only its exit hung: honour the purpose.
            why = "kill_switch" if hb.reason == "kill_switch" else ("clean_exit" if intended == 0 else
                                                                   "not_restartable")
            return Stop(why, intended, f"session hung while stopping ({hb.reason}, meant to exit {intended}); "
                                       "not restarting")
        cause = "hung"
    elif code == 0:
        return Stop("clean_exit", 0, "session ended cleanly (exit 0); not restarting")
    elif code < 0 or code in RESTARTABLE:
        cause = "crash" if code < 0 or code == ExitCode.CRASH else ExitCode(code).name.lower()
    else:
        return Stop("not_restartable", normalize_exit(code),
                    f"session ended with {said}, which a restart cannot fix; not restarting")

    failed_code = normalize_exit(code) or int(ExitCode.CRASH)
    if end.kill_file is not None:
        return Stop("kill_file", failed_code,
                    f"kill file {end.kill_file} is pending; not restarting. The session ended with {said} "
                    "before it could honour it: working orders and the position may be as it left them "
                    "(see `laptop-agents status`)")

    failures = (0 if end.uptime_s >= options.stable_after else history.failures_in_a_row) + 1
    recent = tuple(t for t in history.restarts if now - t < HOUR_S)
    if len(recent) >= options.max_restarts_per_hour:
        return Stop("give_up", failed_code,
                    f"giving up: {len(recent)} restarts in the last hour reached --max-restarts-per-hour "
                    f"{options.max_restarts_per_hour}; last end: {said}{' (hung)' if end.hung else ''}")
    delay = options.backoff(failures)
    return Restart(delay, cause, failed_code, RestartHistory(recent, failures),
                   f"session {'hung' if end.hung else 'ended'} ({said}); restarting in {delay:g} s "
                   f"(restart {len(recent) + 1} this hour, {failures} in a row)")


def interrupted_delay(restart: Restart, *, stop_requested: bool, kill_file: str | None) -> Stop | None:
    """A stop request or a kill file during the restart delay cancels the restart."""
    if stop_requested:
        return Stop("watchdog_stop", restart.failed_code, "stopped on request during the restart delay")
    if kill_file is not None:
        return Stop("kill_file", restart.failed_code,
                    f"kill file {kill_file} appeared during the restart delay; not restarting")
    return None
