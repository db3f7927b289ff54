"""Stop reasons and their exit codes: what the session records and the watchdog reads back."""

from __future__ import annotations

import pytest

from laptop_agents.exit_codes import RESTARTABLE, ExitCode
from laptop_agents.stop_reasons import EXIT_CODES, StopReason, exit_code_for, intended_exit


def test_exit_codes_per_reason() -> None:
    assert set(EXIT_CODES) == set(StopReason)
    for clean in (StopReason.DURATION, StopReason.KILL_SWITCH, StopReason.SIGNAL, StopReason.END_OF_DATA):
        assert exit_code_for(clean) == 0
    assert exit_code_for(StopReason.STALE_DATA) == ExitCode.STALE_DATA
    assert exit_code_for(StopReason.MARKET_DATA_ERRORS) == ExitCode.MARKET_DATA_ERRORS
    assert exit_code_for(StopReason.ERROR_BUDGET) == ExitCode.ERROR_BUDGET
    # What the watchdog restarts: the data and budget failures and crashes, never a user stop.
    restartable = {r for r in StopReason if exit_code_for(r) in RESTARTABLE}
    assert restartable == {StopReason.STALE_DATA, StopReason.MARKET_DATA_ERRORS, StopReason.SOURCE_ENDED,
                           StopReason.ERROR_BUDGET, StopReason.CRASH}


@pytest.mark.parametrize(("recorded", "code"), [
    ("kill_switch", 0), ("duration", 0), ("signal", 0), ("stale_data", int(ExitCode.STALE_DATA)),
    ("store_corrupt", int(ExitCode.STORE_CORRUPT)), ("crash", int(ExitCode.CRASH)),
    ("replay_diverged", int(ExitCode.BAD_INPUT)),
    # A heartbeat from another version, a torn one, or none: no intention to honour.
    ("a_reason_from_the_future", None), (None, None), (7, None), ("", None),
])
def test_intended_exit_of_a_recorded_reason(recorded: object, code: int | None) -> None:
    assert intended_exit(recorded) == code
