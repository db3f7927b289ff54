"""The watchdog's restart policy as a table: every rule in milliseconds, no process.

(tests/ops/test_watchdog.py and test_watchdog_session.py prove the same rules
with real child processes and the real session.)
"""

from __future__ import annotations

import signal

import pytest

from laptop_agents.exit_codes import RESTARTABLE, ExitCode
from laptop_agents.heartbeat import Heartbeat
from laptop_agents.ops.restart_policy import (
    HOUR_S,
    ChildEnd,
    Restart,
    RestartHistory,
    Stop,
    WatchdogOptions,
    check_liveness,
    decide,
    describe_exit,
    interrupted_delay,
    normalize_exit,
)

OPTS = WatchdogOptions(restart_delay=10.0, max_delay=600.0, max_restarts_per_hour=10, hang_timeout=120.0,
                       stable_after=300.0)
NOW = 100_000.0  # monotonic seconds
QUICK = 5.0  # an uptime well below stable_after
KILL = "/ws/kill.txt"


def _beat(status: str, reason: str | None) -> Heartbeat:
    return Heartbeat(ts_ms=1, pid=42, status=status, reason=reason)


NOT_RESTARTABLE = sorted({int(c) for c in ExitCode} - {0} - {int(c) for c in RESTARTABLE})

# (case, ChildEnd, expected: ("stop", reason, exit code) or ("restart", cause, delay, failed code))
ROWS: list[tuple[str, ChildEnd, tuple[object, ...]]] = [
    ("stopped on request, clean", ChildEnd(0, QUICK, stopped_on_request=True), ("stop", "watchdog_stop", 0)),
    ("stopped on request, force-killed", ChildEnd(-signal.SIGKILL, QUICK, stopped_on_request=True),
     ("stop", "watchdog_stop", 1)),
    ("stopped on request wins over a pending kill file", ChildEnd(4, QUICK, stopped_on_request=True, kill_file=KILL),
     ("stop", "watchdog_stop", 4)),
    ("clean exit", ChildEnd(0, QUICK), ("stop", "clean_exit", 0)),
    ("clean exit with a kill file: the kill switch did its job", ChildEnd(0, QUICK, kill_file=KILL),
     ("stop", "clean_exit", 0)),
    *[(f"exit {c} cannot be fixed by a restart", ChildEnd(c, QUICK), ("stop", "not_restartable", c))
      for c in NOT_RESTARTABLE],
    ("an exit code beyond 255 (Windows status)", ChildEnd(3221225786, QUICK), ("stop", "not_restartable", 1)),
    ("crash", ChildEnd(1, QUICK), ("restart", "crash", 10.0, 1)),
    ("stale data", ChildEnd(4, QUICK), ("restart", "stale_data", 10.0, 4)),
    ("error budget", ChildEnd(5, QUICK), ("restart", "error_budget", 10.0, 5)),
    ("market-data errors", ChildEnd(6, QUICK), ("restart", "market_data_errors", 10.0, 6)),
    ("killed by a signal is a crash", ChildEnd(-signal.SIGKILL, QUICK), ("restart", "crash", 10.0, 1)),
    ("killed by SIGSEGV", ChildEnd(-signal.SIGSEGV, QUICK), ("restart", "crash", 10.0, 1)),
    ("hung, no heartbeat at all", ChildEnd(-signal.SIGKILL, QUICK, hung=True), ("restart", "hung", 10.0, 1)),
    ("hung while running", ChildEnd(-signal.SIGKILL, QUICK, hung=True, heartbeat=_beat("running", None)),
     ("restart", "hung", 10.0, 1)),
    ("hung while stopping for the kill switch", ChildEnd(-9, QUICK, hung=True, heartbeat=_beat("stopped", "kill_switch")),
     ("stop", "kill_switch", 0)),
    ("hung while stopping at the duration", ChildEnd(-9, QUICK, hung=True, heartbeat=_beat("stopping", "duration")),
     ("stop", "clean_exit", 0)),
    ("hung while stopping for a signal", ChildEnd(-9, QUICK, hung=True, heartbeat=_beat("stopped", "signal")),
     ("stop", "clean_exit", 0)),
    ("hung while stopping on a corrupt store",
     ChildEnd(-9, QUICK, hung=True, heartbeat=_beat("stopping", "store_corrupt")),
     ("stop", "not_restartable", int(ExitCode.STORE_CORRUPT))),
    ("hung while stopping on a full disk", ChildEnd(-9, QUICK, hung=True, heartbeat=_beat("stopped", "disk_full")),
     ("stop", "not_restartable", int(ExitCode.DISK_FULL))),
    ("hung while stopping for stale data: meant to be restarted",
     ChildEnd(-9, QUICK, hung=True, heartbeat=_beat("stopped", "stale_data")), ("restart", "hung", 10.0, 1)),
    ("hung while stopping for an unknown reason", ChildEnd(-9, QUICK, hung=True, heartbeat=_beat("stopped", "x")),
     ("restart", "hung", 10.0, 1)),
    ("a kill_switch reason while still running is not an ending",
     ChildEnd(-9, QUICK, hung=True, heartbeat=_beat("running", "kill_switch")), ("restart", "hung", 10.0, 1)),
    ("a torn heartbeat of a hung child", ChildEnd(-9, QUICK, hung=True, heartbeat=Heartbeat(mtime=1.0, readable=False)),
     ("restart", "hung", 10.0, 1)),
    ("hung but it exited 0 as it was killed: still a failure", ChildEnd(0, QUICK, hung=True),
     ("restart", "hung", 10.0, 1)),
    ("crash with a pending kill file", ChildEnd(1, QUICK, kill_file=KILL), ("stop", "kill_file", 1)),
    ("stale data with a pending kill file", ChildEnd(4, QUICK, kill_file=KILL), ("stop", "kill_file", 4)),
    ("hung with a pending kill file", ChildEnd(-9, QUICK, hung=True, kill_file=KILL), ("stop", "kill_file", 1)),
]


@pytest.mark.parametrize(("end", "expected"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_first_end_of_a_child(end: ChildEnd, expected: tuple[object, ...]) -> None:
    decision = decide(end, RestartHistory(), OPTS, NOW)
    if expected[0] == "stop":
        assert isinstance(decision, Stop), decision
        assert (decision.reason, decision.exit_code) == expected[1:]
    else:
        assert isinstance(decision, Restart), decision
        assert (decision.cause, decision.delay_s, decision.failed_code) == expected[1:]
        assert decision.history.failures_in_a_row == 1


def test_every_exit_code_is_decided() -> None:
    """No code falls through: each one either restarts or stops with a reason."""
    for code in [*range(-64, 0), *range(0, 256)]:
        decision = decide(ChildEnd(code, QUICK), RestartHistory(), OPTS, NOW)
        restart = code < 0 or code in RESTARTABLE
        assert isinstance(decision, Restart if restart else Stop), code
        assert 0 <= (decision.failed_code if isinstance(decision, Restart) else decision.exit_code) <= 255


def _run(codes: list[tuple[int, float]], opts: WatchdogOptions = OPTS, *, gap: float = 1.0) -> list[Restart | Stop]:
    """Drive the policy like the watchdog: each child ends, then the restart happens after its delay."""
    history, now, out = RestartHistory(), NOW, []
    for code, uptime in codes:
        now += uptime
        decision = decide(ChildEnd(code, uptime), history, opts, now)
        out.append(decision)
        if isinstance(decision, Stop):
            break
        now += decision.delay_s + gap
        history = decision.history.restarted(now)
    return out


def test_quick_failures_double_the_delay_up_to_the_cap() -> None:
    opts = WatchdogOptions(restart_delay=10.0, max_delay=100.0, max_restarts_per_hour=100)
    got = _run([(1, QUICK)] * 6, opts)
    assert [d.delay_s for d in got if isinstance(d, Restart)] == [10.0, 20.0, 40.0, 80.0, 100.0, 100.0]
    assert [d.history.failures_in_a_row for d in got if isinstance(d, Restart)] == [1, 2, 3, 4, 5, 6]


def test_a_stable_run_resets_the_backoff() -> None:
    got = _run([(1, QUICK), (4, QUICK), (6, OPTS.stable_after), (1, QUICK)])
    assert [d.delay_s for d in got if isinstance(d, Restart)] == [10.0, 20.0, 10.0, 20.0]


def test_the_per_hour_cap_gives_up_with_the_last_code() -> None:
    opts = WatchdogOptions(restart_delay=1.0, max_delay=1.0, max_restarts_per_hour=3)
    got = _run([(1, QUICK)] * 3 + [(4, QUICK)], opts)
    assert [type(d) for d in got] == [Restart, Restart, Restart, Stop]
    last = got[-1]
    assert isinstance(last, Stop) and (last.reason, last.exit_code) == ("give_up", 4)
    assert "3 restarts in the last hour" in last.message and "--max-restarts-per-hour 3" in last.message


def test_restarts_older_than_an_hour_do_not_count() -> None:
    opts = WatchdogOptions(restart_delay=1.0, max_restarts_per_hour=2)
    history = RestartHistory((NOW - HOUR_S - 1, NOW - HOUR_S + 10), failures_in_a_row=1)
    decision = decide(ChildEnd(1, QUICK), history, opts, NOW)
    assert isinstance(decision, Restart) and decision.history.restarts == (NOW - HOUR_S + 10,)
    assert "restart 2 this hour" in decision.message
    full = RestartHistory((NOW - 10, NOW - 5))
    given_up = decide(ChildEnd(1, QUICK), full, opts, NOW)
    assert isinstance(given_up, Stop) and given_up.reason == "give_up"


def test_zero_restarts_per_hour_never_restarts() -> None:
    decision = decide(ChildEnd(4, QUICK), RestartHistory(), WatchdogOptions(max_restarts_per_hour=0), NOW)
    assert isinstance(decision, Stop) and (decision.reason, decision.exit_code) == ("give_up", 4)


def test_give_up_after_a_hang_is_a_crash_code() -> None:
    decision = decide(ChildEnd(-9, QUICK, hung=True), RestartHistory(), WatchdogOptions(max_restarts_per_hour=0), NOW)
    assert isinstance(decision, Stop) and (decision.reason, decision.exit_code) == ("give_up", 1)
    assert "(hung)" in decision.message


@pytest.mark.parametrize(("stop_requested", "kill_file", "expected"), [
    (False, None, None),
    (True, None, ("watchdog_stop", 4)),
    (False, KILL, ("kill_file", 4)),
    (True, KILL, ("watchdog_stop", 4)),
])
def test_the_restart_delay_is_cut_short(stop_requested: bool, kill_file: str | None,
                                        expected: tuple[str, int] | None) -> None:
    restart = decide(ChildEnd(4, QUICK), RestartHistory(), OPTS, NOW)
    assert isinstance(restart, Restart)
    stop = interrupted_delay(restart, stop_requested=stop_requested, kill_file=kill_file)
    assert (None if stop is None else (stop.reason, stop.exit_code)) == expected


def test_messages_name_what_happened() -> None:
    crash = decide(ChildEnd(-signal.SIGKILL, QUICK), RestartHistory(), OPTS, NOW)
    assert isinstance(crash, Restart)
    assert "killed by SIGKILL" in crash.message and "restarting in 10 s" in crash.message
    assert "1 in a row" in crash.message
    refused = decide(ChildEnd(int(ExitCode.STORE_CORRUPT), QUICK), RestartHistory(), OPTS, NOW)
    assert isinstance(refused, Stop) and "exit 8 (store_corrupt)" in refused.message and "cannot fix" in refused.message
    kill = decide(ChildEnd(1, QUICK, kill_file=KILL), RestartHistory(), OPTS, NOW)
    assert isinstance(kill, Stop) and KILL in kill.message and "laptop-agents status" in kill.message


# ------------------------------------------------------------------ liveness

T0 = 1_700_000_000.0  # wall seconds: the child's start
LIVE = WatchdogOptions(hang_timeout=10.0, poll_interval=0.25)  # stall threshold: max(2, 2.5, 5) = 5 s


@pytest.mark.parametrize(("case", "now", "last_check", "beat_at", "hung", "resumed"), [
    ("fresh heartbeat", T0 + 60, T0 + 59.75, T0 + 58, False, None),
    ("heartbeat just at the timeout", T0 + 60, T0 + 59.75, T0 + 50, False, None),
    ("heartbeat older than the timeout", T0 + 60, T0 + 59.75, T0 + 49.9, True, None),
    ("no heartbeat yet, just started", T0 + 5, T0 + 4.75, None, False, None),
    ("no heartbeat since the start, past the timeout", T0 + 10.5, T0 + 10.25, None, True, None),
    ("a beat before the start does not rescue it (alive_ref wins)", T0 + 3, T0 + 2.75, T0 - 100, False, None),
    ("after a suspend the timeout starts over", T0 + 600, T0 + 59.75, T0 + 58, False, 540.25),
    ("a gap just under the stall threshold is a hang", T0 + 64.5, T0 + 59.75, T0 + 50, True, None),
])
def test_liveness(case: str, now: float, last_check: float, beat_at: float | None, hung: bool,
                  resumed: float | None) -> None:
    beat = Heartbeat(ts_ms=int(beat_at * 1000)) if beat_at is not None else None
    live = check_liveness(now=now, last_check=last_check, alive_ref=T0, heartbeat=beat, options=LIVE)
    assert live.hung is hung, live
    assert live.resumed_after_s == (pytest.approx(resumed) if resumed is not None else None)
    if resumed is not None:
        assert live.alive_ref == now and live.age_s == 0.0


def test_a_torn_heartbeat_counts_by_its_mtime() -> None:
    torn = Heartbeat(mtime=T0 + 55, readable=False)
    live = check_liveness(now=T0 + 60, last_check=T0 + 59.75, alive_ref=T0, heartbeat=torn, options=LIVE)
    assert not live.hung and live.age_s == pytest.approx(5.0)


# ------------------------------------------------------------------ helpers


def test_exit_codes_for_the_watchdogs_own_exit() -> None:
    assert normalize_exit(-9) == ExitCode.CRASH and normalize_exit(4) == 4 and normalize_exit(256) == ExitCode.CRASH
    assert describe_exit(-signal.SIGTERM) == "killed by SIGTERM" and describe_exit(4) == "exit 4 (stale_data)"
    assert describe_exit(99) == "exit 99" and describe_exit(-200) == "killed by signal 200"


def test_backoff_formula() -> None:
    o = WatchdogOptions(restart_delay=10, max_delay=600)
    assert [o.backoff(n) for n in (1, 2, 3, 4, 7, 8, 500)] == [10, 20, 40, 80, 600, 600, 600]
    assert WatchdogOptions(restart_delay=5, max_delay=1).backoff(3) == 5  # never below the delay
    assert WatchdogOptions(restart_delay=0, max_delay=1).backoff(3) == 0
