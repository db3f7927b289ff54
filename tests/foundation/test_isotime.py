"""The one ISO formatter/parser (domain.isotime) and the shell's wall clock (wallclock)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from laptop_agents.domain.isotime import iso_to_ms, ms_to_iso
from laptop_agents.wallclock import now_ms

T = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def test_whole_seconds_show_no_fraction_others_show_milliseconds() -> None:
    assert ms_to_iso(T) == "2024-01-01T00:00:00Z"
    assert ms_to_iso(T + 250) == "2024-01-01T00:00:00.250Z"
    assert ms_to_iso(T + 1) == "2024-01-01T00:00:00.001Z"  # exact: no float rounding to .000999
    assert ms_to_iso(T + 250, "seconds") == "2024-01-01T00:00:00Z"
    assert ms_to_iso(T, "milliseconds") == "2024-01-01T00:00:00.000Z"
    assert ms_to_iso(-1) == "1969-12-31T23:59:59.999Z"


def test_values_no_calendar_shows_are_named_not_raised() -> None:
    assert ms_to_iso(10**18) == "epoch ms 1000000000000000000"
    assert ms_to_iso(-(10**18)) == "epoch ms -1000000000000000000"
    assert ms_to_iso(-62_135_596_800_000) == "0001-01-01T00:00:00Z"  # the first day datetime knows


@pytest.mark.parametrize("text,expected", [
    ("2024-01-01", T),
    ("2024-01-01T00:00Z", T),
    ("2024-01-01T00:00:00z", T),
    ("2024-01-01 01:00:00+01:00", T),
    ("2024-01-01T00:00:00.250", T + 250),  # naive = UTC
    ("2024-01-01T00:00:00.0004Z", T),  # sub-millisecond digits round to the nearest ms
    ("2024-01-01T00:00:00.0005Z", T + 1),
    ("  2024-01-01T00:00:00Z ", T),
])
def test_iso_text_to_ms(text: str, expected: int) -> None:
    assert iso_to_ms(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01", "1704067200000"])
def test_unreadable_text_is_one_value_error_naming_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 date/time.*2024-01-31T12:00Z"):
        iso_to_ms(text)


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_round_trip_and_agreement_with_datetime(ms: int) -> None:
    text = ms_to_iso(ms)
    assert iso_to_ms(text) == ms
    assert text == ms_to_iso(ms, "milliseconds").replace(".000Z", "Z")
    if ms >= 0:  # datetime's own rendering of the same instant, truncated to ms
        dt = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        assert ms_to_iso(ms, "milliseconds") == dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_now_ms_is_the_system_clock_in_integer_ms() -> None:
    before = time.time_ns() // 1_000_000
    now = now_ms()
    after = time.time_ns() // 1_000_000
    assert type(now) is int and before <= now <= after
