"""The repair policy step by step: each cleaning function on a small table of
bars, what it keeps and what it reports. (The whole policy on real files is
in test_candle_files.py; these pin each step's own rule.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from laptop_agents.domain.models import Candle, DomainError, FundingRate
from laptop_agents.sources.candle_files.clean import (
    build_candles,
    drop_bad_times,
    drop_duplicates_keep_last,
    drop_invalid_values,
    drop_off_grid,
    drop_partial_last,
    duration,
    funding_updates,
    grid_phase,
    infer_interval,
    order_by_time,
    refuse_if_strict,
    report_gaps,
    report_zero_volume,
    widen_high_low,
)
from laptop_agents.sources.candle_files.model import Bars, CandleFileError, DataReport

M = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z, on every grid


def bars(ts: list[float], *, close: list[float] | None = None, volume: list[float] | None = None,
         high: list[float] | None = None, low: list[float] | None = None, funding: list[float] | None = None,
         close_time: list[float] | None = None) -> Bars:
    n = len(ts)
    c = close if close is not None else [100.0 + i for i in range(n)]
    return Bars.of(
        np.asarray(ts), [x - 0.5 for x in c], high if high is not None else [x + 1 for x in c],
        low if low is not None else [x - 1 for x in c], c, volume if volume is not None else [1.0] * n,
        funding=funding, close_time=close_time,
    )


def report() -> DataReport:
    return DataReport(path="x.csv", layout="test", rows_read=0)


def test_take_selects_every_column_alike() -> None:
    b = bars([T0, T0 + M, T0 + 2 * M], funding=[0.1, 0.2, 0.3], close_time=[1.0, 2.0, 3.0])
    t = b.take(np.array([True, False, True]))
    assert t.ts.tolist() == [T0, T0 + 2 * M] and t.close.tolist() == [100.0, 102.0]
    assert t.funding is not None and t.funding.tolist() == [0.1, 0.3]
    assert t.close_time is not None and t.close_time.tolist() == [1.0, 3.0]
    assert bars([T0]).take(slice(0, 0)).funding is None and len(b.take(slice(0, 0))) == 0


def test_1_unreadable_times_are_dropped_naming_rows() -> None:
    r = report()
    kept = drop_bad_times(bars([T0, np.nan, T0 + M, np.nan]), r, first_row=2, out_of_range=1)
    assert kept.ts.tolist() == [T0, T0 + M] and kept.ts.dtype == np.int64
    (p,) = r.problems
    assert (p.kind, p.count, p.examples, p.detail) == ("bad_time", 2, ["row 3", "row 5"],
                                                       "1 outside 2000-01-01..2100-01-01, 1 unreadable")
    clean = report()
    assert drop_bad_times(bars([T0, T0 + M]), clean).ts.dtype == np.int64 and clean.problems == []


def test_2_newest_first_is_reversed_with_a_note_other_disorder_is_sorted_stably() -> None:
    r = report()
    rev = order_by_time(drop_bad_times(bars([T0 + 2 * M, T0 + M, T0]), r), r)
    assert rev.ts.tolist() == [T0, T0 + M, T0 + 2 * M] and rev.close.tolist() == [102.0, 101.0, 100.0]
    assert r.problems == [] and r.notes == ["rows are newest first (exchange REST order): reversed"]
    r = report()
    b = drop_bad_times(bars([T0, T0 + 2 * M, T0 + M, T0 + M]), r)
    out = order_by_time(b, r)
    assert out.ts.tolist() == [T0, T0 + M, T0 + M, T0 + 2 * M]
    assert out.close.tolist() == [100.0, 102.0, 103.0, 101.0]  # equal times keep their file order
    (p,) = r.problems
    assert (p.kind, p.count, p.examples) == ("non_monotonic", 1, ["2024-01-01T00:01:00Z"])


def test_3_non_finite_or_non_positive_prices_and_negative_volume_are_dropped() -> None:
    r = report()
    b = drop_bad_times(bars([T0, T0 + M, T0 + 2 * M, T0 + 3 * M], close=[100.0, np.nan, -1.0, 101.0],
                            volume=[1.0, 1.0, 1.0, -2.0]), r)
    assert drop_invalid_values(b, r).ts.tolist() == [T0]
    (p,) = r.problems
    assert (p.kind, p.count) == ("invalid_values", 3) and p.examples[0] == "2024-01-01T00:01:00Z"
    assert "negative volume" in p.detail


def test_4_duplicates_keep_the_last_row_of_each_time() -> None:
    r = report()
    b = drop_bad_times(bars([T0, T0, T0, T0 + M, T0 + M], close=[1.0, 2.0, 3.0, 4.0, 5.0],
                            high=[9.0] * 5, low=[0.5] * 5), r)
    kept = drop_duplicates_keep_last(b, r)
    assert kept.ts.tolist() == [T0, T0 + M] and kept.close.tolist() == [3.0, 5.0]
    (p,) = r.problems
    assert (p.kind, p.count, p.detail) == ("duplicates", 3, "2 timestamps repeated")
    assert p.examples == ["2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"]


def test_interval_is_the_most_common_spacing() -> None:
    ts = np.array([T0, T0 + 5 * M, T0 + 10 * M, T0 + 20 * M, T0 + 21 * M], dtype=np.int64)
    assert infer_interval(ts, Path("x.csv")) == "5m"
    with pytest.raises(CandleFileError, match="7 ms, not a supported interval"):
        infer_interval(np.array([0, 7, 14], dtype=np.int64), Path("x.csv"))
    with pytest.raises(CandleFileError, match="fewer than 2 distinct times"):
        infer_interval(np.array([T0], dtype=np.int64), Path("x.csv"))


def test_5_high_low_are_widened_to_include_open_and_close() -> None:
    r = report()
    b = drop_bad_times(bars([T0, T0 + M], close=[100.0, 105.0], high=[101.0, 104.0], low=[99.0, 103.0]), r)
    fixed = widen_high_low(b, r)
    assert fixed.high.tolist() == [101.0, 105.0] and fixed.low.tolist() == [99.0, 103.0]
    assert fixed.close.tolist() == [100.0, 105.0] and fixed.open.tolist() == b.open.tolist()  # prices kept
    (p,) = r.problems
    assert (p.kind, p.count, p.examples) == ("ohlc_inconsistent", 1, ["2024-01-01T00:01:00Z"])
    ok = drop_bad_times(bars([T0]), report())
    assert widen_high_low(ok, r) is ok  # nothing to repair: no copy


def test_grid_phase_is_where_most_bars_open() -> None:
    assert grid_phase(np.array([T0, T0 + M, T0 + 2 * M + 7]), M) == 0
    assert grid_phase(np.array([T0 + 30_000, T0 + 90_000, T0 + M]), M) == 30_000


@pytest.mark.parametrize("ts,close_time,reason", [
    ([T0, T0 + M, T0 + 2 * M + 20_000], None, "off the interval grid"),
    ([T0, T0 + 2 * M, T0 + 2 * M + M // 2], None, "off the interval grid"),
    ([T0, T0 + M, T0 + 2 * M], [T0 + M - 1, T0 + 2 * M - 1, T0 + 2 * M + 20_000], "close_time before the end"),
])
def test_6_a_forming_last_bar_is_dropped(ts: list[int], close_time: list[float] | None, reason: str) -> None:
    r = report()
    b = drop_bad_times(bars(ts, close_time=close_time), r)
    kept = drop_partial_last(b, M, 0, r)
    assert kept.ts.tolist() == ts[:-1]
    (p,) = r.problems
    assert p.kind == "partial_last" and p.count == 1 and p.detail.startswith(reason)


def test_6_a_closed_last_bar_stays_and_a_short_step_is_partial_even_on_a_coarser_grid() -> None:
    r = report()
    b = drop_bad_times(bars([T0, T0 + M, T0 + 2 * M], close_time=[np.nan, np.nan, T0 + 3 * M - 1]), r)
    assert len(drop_partial_last(b, M, 0, r)) == 3 and r.problems == []
    five = 5 * M
    b = drop_bad_times(bars([T0, T0 + five, T0 + five + five]), r)
    assert len(drop_partial_last(b, five, 0, r)) == 3
    b = drop_bad_times(bars([T0, T0 + five, T0 + five + M]), r)  # off the 5m grid
    assert drop_partial_last(b, five, 0, r).ts.tolist() == [T0, T0 + five]


def test_6_less_than_one_interval_after_the_previous_bar() -> None:
    r = report()
    b = drop_bad_times(bars([T0 + 30_000, T0 + 90_000, T0 + 150_000 - 60_000]), r)  # on phase, too close
    kept = drop_partial_last(b, M, 30_000, r)
    assert len(kept) == 2 and r.problems[0].detail == "less than one interval after the previous bar"


def test_7_bars_off_the_grid_are_dropped() -> None:
    r = report()
    b = drop_bad_times(bars([T0, T0 + M + 5, T0 + 2 * M, T0 + 3 * M + 1]), r)
    kept = drop_off_grid(b, M, 0, "1m", r)
    assert kept.ts.tolist() == [T0, T0 + 2 * M]
    (p,) = r.problems
    assert (p.kind, p.count, p.action) == ("misaligned", 2, "dropped (not on the 1m grid)")


def test_8_gaps_are_reported_not_filled() -> None:
    r = report()
    b = drop_bad_times(bars([T0, T0 + M, T0 + 4 * M, T0 + 5 * M, T0 + 5 * M + 3 * 1440 * M]), r)
    report_gaps(b, M, r)
    (p,) = r.problems
    assert (p.kind, p.count) == ("gaps", 2)
    assert p.detail == f"{2 + 3 * 1440 - 1} missing bars, largest 3d"
    assert p.examples[0] == "2024-01-01T00:01:00Z -> 2024-01-01T00:04:00Z"


def test_9_zero_volume_is_kept_and_reported() -> None:
    r = report()
    b = drop_bad_times(bars([T0, T0 + M, T0 + 2 * M], volume=[0.0, 1.0, 0.0]), r)
    report_zero_volume(b, r)
    (p,) = r.problems
    assert (p.kind, p.count, p.action) == ("zero_volume", 2, "kept")
    assert r.clean  # not refused by --strict


def test_strict_refuses_any_of_1_to_8_in_one_line() -> None:
    r = report()
    report_zero_volume(drop_bad_times(bars([T0], volume=[0.0]), r), r)
    refuse_if_strict(r, Path("x.csv"))  # zero volume alone passes
    drop_duplicates_keep_last(drop_bad_times(bars([T0, T0]), r), r)
    with pytest.raises(CandleFileError) as exc:
        refuse_if_strict(r, Path("x.csv"))
    assert "\n" not in str(exc.value) and "duplicates: 1" in str(exc.value) and "zero_volume" not in str(exc.value)


def test_funding_becomes_updates_where_it_changes() -> None:
    b = drop_bad_times(bars([T0, T0 + M, T0 + 2 * M, T0 + 3 * M], funding=[0.0001, np.nan, 0.0001, 0.0002]),
                       report())
    assert funding_updates(b, Path("x.csv")) == [FundingRate(T0, 0.0001), FundingRate(T0 + 3 * M, 0.0002)]
    bad = drop_bad_times(bars([T0], funding=[0.5]), report())
    with pytest.raises(CandleFileError, match="funding column at 2024-01-01T00:00:00Z"):
        funding_updates(bad, Path("x.csv"))


def test_durations_read_like_a_person_writes_them() -> None:
    assert [duration(x * M) for x in (0, 45, 60, 61, 1440, 1440 * 2 + 7 * 60)] == ["0m", "45m", "1h", "1h1m", "1d",
                                                                                    "2d7h"]


def test_candles_are_built_unchecked_only_after_a_columnwise_check() -> None:
    good = Bars.of(np.array([0, 60_000], dtype=np.int64), [10.0, 11.0], [12.0, 11.5], [9.0, 10.5], [11.0, 11.0],
                   [0.0, 3.5])
    built = build_candles(good)
    assert built == [Candle(0, 10.0, 12.0, 9.0, 11.0, 0.0), Candle(60_000, 11.0, 11.5, 10.5, 11.0, 3.5)]
    assert all(type(c.ts) is int and type(c.close) is float for c in built)
    # a row breaking a Candle invariant (close above high) is not trusted: the checking constructor raises
    bad = good.with_(close=np.array([11.0, 12.0]))
    with pytest.raises(DomainError, match="low <= open/close <= high"):
        build_candles(bad)
