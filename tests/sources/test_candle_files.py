"""The candle-file loader: layouts, time units, the repair policy, strict mode, the real dirty file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.domain.models import Candle
from laptop_agents.sources.candle_files import CandleFileError, load_candles, write_candles

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 900_000  # on the 15-minute grid
M15 = 900_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def test_header_csv_any_case_iso_offsets_to_utc_ms(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", """
DATETIME , OPEN,High,low,CLOSE,Adj Close,VOLUME
2021-09-27 14:45:00+01:00,100,110,90,105,105,7
2021-09-27 14:00:00+00:00,105,106,104,105.5,105.5,0
2021-09-27 14:15:00Z,105.5,107,105,106,106,3
""")
    r = load_candles(f)
    assert [c.ts for c in r.candles] == [ms("2021-09-27T13:45:00+00:00"), ms("2021-09-27T14:00:00+00:00"),
                                         ms("2021-09-27T14:15:00+00:00")]
    assert r.interval == "15m" and r.interval_ms == M15
    assert r.candles[0] == Candle(ms("2021-09-27T13:45:00+00:00"), 100.0, 110.0, 90.0, 105.0, 7.0)
    assert r.report.problem("zero_volume") is not None and r.report.problem("zero_volume").count == 1
    assert r.report.clean  # zero volume alone is not refused
    assert load_candles(f, strict=True).candles == r.candles


@pytest.mark.parametrize("scale,unit", [(1 / 1000, "s"), (1, "ms"), (1000, "us"), (1_000_000, "ns")])
def test_epoch_units_are_told_apart(tmp_path: Path, scale: float, unit: str) -> None:
    rows = "\n".join(f"{int((T0 + i * 60_000) * scale)},10,11,9,10.5,1" for i in range(5))
    r = load_candles(write(tmp_path / "e.csv", "timestamp,open,high,low,close,volume\n" + rows))
    assert [c.ts for c in r.candles] == [T0 + i * 60_000 for i in range(5)]
    assert r.interval == "1m"
    assert f"epoch {unit}" in " ".join(r.report.notes)


def test_naive_iso_is_utc_and_date_only_daily(tmp_path: Path) -> None:
    r = load_candles(write(tmp_path / "d.csv", """
Date,Open,High,Low,Close,Volume
2024-01-01,1,2,0.5,1.5,10
2024-01-02,1.5,2,1,1.8,10
2024-01-03,1.8,2.5,1.7,2.2,10
"""))
    assert r.interval == "1d"
    assert r.candles[0].ts == ms("2024-01-01T00:00:00+00:00")


def test_binance_klines_without_header_and_partial_close_time(tmp_path: Path) -> None:
    lines = []
    for i in range(4):
        open_t = T0 + i * 60_000
        close_t = open_t + 59_999 if i < 3 else open_t + 20_000  # the last kline is still forming
        lines.append(f"{open_t},100.0,101.0,99.0,100.5,12.5,{close_t},1256.0,42,6.1,612.0,0")
    r = load_candles(write(tmp_path / "BTCUSDT-1m.csv", "\n".join(lines)))
    assert "Binance" in r.report.layout
    assert len(r.candles) == 3 and r.candles[-1].ts == T0 + 120_000
    p = r.report.problem("partial_last")
    assert p is not None and "close_time" in p.detail
    assert r.candles[0].volume == 12.5


def test_bitunix_rest_reply_newest_first_strings_and_swapped_volumes(tmp_path: Path) -> None:
    rows = [
        {"open": str(100 + i), "high": str(102 + i), "low": str(99 + i), "close": str(101 + i),
         "time": T0 + i * 60_000, "quoteVol": "1.5", "baseVol": "150000", "type": "LAST_PRICE"}
        for i in range(5)
    ][::-1]
    f = tmp_path / "kline.json"
    f.write_text(json.dumps({"code": 0, "msg": "Success", "data": rows}))
    r = load_candles(f)
    assert [c.ts for c in r.candles] == [T0 + i * 60_000 for i in range(5)]
    assert r.candles[0].open == 100.0 and r.candles[0].volume == 1.5  # quoteVol holds the BTC amount
    assert r.report.problem("non_monotonic") is None and any("newest first" in n for n in r.report.notes)
    assert "quoteVol" in r.report.layout


def test_bitunix_rows_as_csv(tmp_path: Path) -> None:
    text = "time,open,high,low,close,quoteVol,baseVol,type\n" + "\n".join(
        f"{T0 + i * 300_000},10,11,9,10,2,20,LAST_PRICE" for i in range(4))
    r = load_candles(write(tmp_path / "b.csv", text))
    assert r.interval == "5m" and r.candles[1].volume == 2.0


def test_parquet_with_native_timestamps(tmp_path: Path) -> None:
    ts = pa.array([T0 + i * M15 for i in range(6)], pa.timestamp("ms", tz="UTC"))
    table = pa.table({"open_time": ts, "o": [1.0] * 6, "h": [2.0] * 6, "l": [0.5] * 6, "c": [1.5] * 6,
                      "v": [3.0] * 6})
    pq.write_table(table, tmp_path / "x.parquet")
    r = load_candles(tmp_path / "x.parquet")
    assert r.report.layout == "Parquet" and r.interval == "15m"
    assert [c.ts for c in r.candles] == [T0 + i * M15 for i in range(6)]


def dirty_csv(tmp_path: Path) -> Path:
    t = [T0 + i * M15 for i in range(12)]
    rows = [
        (t[0], 100, 101, 99, 100.5, 5),
        (t[2], 101, 102, 100, 101.5, 5),   # out of order
        (t[1], 100.5, 101.5, 100, 101, 5),
        (t[3], 101.5, 103, 101, 102, 0),   # zero volume
        (t[3], 101.5, 103, 101, 102.5, 6),  # duplicate: this (last) one is kept
        (t[4], 102.5, 102, 101, 103, 5),   # close above high: repaired
        (t[5], "nan", 104, 102, 103, 5),   # non-finite: dropped
        (t[6], 103, 104, 102, 103.5, 5),
        (t[6] + 60_000, 103, 104, 102, 103.5, 5),  # off the grid: dropped
        (t[9], 104, 105, 103, 104.5, 5),   # gap of two bars before it
        (t[10], 104.5, 105, 104, 104.8, 5),
        (t[10] + 120_000, 104.8, 104.9, 104.7, 104.8, 1),  # partial last bar
    ]
    text = "ts,open,high,low,close,volume\n" + "\n".join(",".join(map(str, r)) for r in rows)
    return write(tmp_path / "dirty.csv", text)


def test_dirty_file_policy(tmp_path: Path) -> None:
    r = load_candles(dirty_csv(tmp_path))
    t = [T0 + i * M15 for i in range(12)]
    assert [c.ts for c in r.candles] == [t[0], t[1], t[2], t[3], t[4], t[6], t[9], t[10]]
    kinds = {p.kind: p for p in r.report.problems}
    assert kinds["non_monotonic"].count == 1
    assert kinds["duplicates"].count == 1 and r.candles[3].close == 102.5 and r.candles[3].volume == 6
    assert kinds["invalid_values"].count == 1
    assert kinds["ohlc_inconsistent"].count == 1
    fixed = r.candles[4]
    assert fixed.high == 103 and fixed.low == 101 and fixed.close == 103  # widened, prices kept
    assert kinds["misaligned"].count == 1
    assert kinds["partial_last"].count == 1
    assert kinds["gaps"].count == 2 and "3 missing bars" in kinds["gaps"].detail  # t5 (dropped) and t7, t8
    assert "zero_volume" not in kinds  # the zero-volume duplicate was not the kept one
    assert not r.report.clean
    text = "\n".join(r.report.lines())
    assert "duplicates: 1" in text and "kept the last" in text


def test_strict_refuses_dirty_data_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(CandleFileError) as exc:
        load_candles(dirty_csv(tmp_path), strict=True)
    msg = str(exc.value)
    assert "\n" not in msg and "--strict" in msg and "dirty.csv" in msg
    assert "duplicates" in msg and "gaps" in msg


@pytest.mark.parametrize("text,expected", [
    ("", "empty"),
    ("when,open,high,low,close\n1,2,3,1,2\n", "no time column"),
    ("ts,open,high,low\n1,2,3,1\n", "no close column"),
])
def test_unusable_files_say_why(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(CandleFileError, match=expected):
        load_candles(f)


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(CandleFileError, match="not found"):
        load_candles(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(CandleFileError, match="unsupported file type"):
        load_candles(tmp_path / "x.xlsx")


def test_interval_inference_and_override(tmp_path: Path) -> None:
    rows = "\n".join(f"{T0 + i * 7 * 60_000},10,11,9,10,1" for i in range(5))
    f = write(tmp_path / "odd.csv", "ts,open,high,low,close,volume\n" + rows)
    with pytest.raises(CandleFileError, match="not a supported interval"):
        load_candles(f)
    one = write(tmp_path / "one.csv", f"ts,open,high,low,close,volume\n{T0},10,11,9,10,1")
    with pytest.raises(CandleFileError, match="pass --interval"):
        load_candles(one)
    assert len(load_candles(one, interval="1m").candles) == 1


def test_funding_column_becomes_updates_where_it_changes(tmp_path: Path) -> None:
    rates = ["0.0001", "0.0001", "", "0.0002", "0.0002", "-0.0001"]
    rows = "\n".join(f"{T0 + i * M15},10,11,9,10,1,{r}" for i, r in enumerate(rates))
    r = load_candles(write(tmp_path / "f.csv", "ts,open,high,low,close,volume,funding_rate\n" + rows))
    assert [(f.ts - T0) // M15 for f in r.funding] == [0, 3, 5]
    assert [f.rate for f in r.funding] == [0.0001, 0.0002, -0.0001]
    bad = write(tmp_path / "pct.csv", "ts,open,high,low,close,volume,funding\n" + "\n".join(
        f"{T0 + i * M15},10,11,9,10,1,0.1" for i in range(3)))
    with pytest.raises(CandleFileError, match="funding"):
        load_candles(bad)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_then_load_round_trip(tmp_path: Path, suffix: str) -> None:
    candles = [Candle(T0 + i * 60_000, 100.0 + i, 101.5 + i, 99.25 + i, 100.75 + i, 0.125 * i) for i in range(50)]
    path = write_candles(tmp_path / f"rt{suffix}", candles)
    r = load_candles(path, strict=True)
    assert r.candles == candles and r.interval == "1m"


@settings(max_examples=40, deadline=None)
@given(
    order=st.permutations(list(range(30))),
    dups=st.lists(st.integers(0, 29), max_size=8),
)
def test_any_shuffle_with_duplicates_loads_sorted_unique_and_valid(tmp_path_factory: pytest.TempPathFactory,
                                                                  order: list[int], dups: list[int]) -> None:
    rows = [(T0 + i * 60_000, 100 + i, 101 + i, 99 + i, 100.5 + i, 1 + i) for i in order]
    rows += [(T0 + i * 60_000, 100 + i, 102 + i, 99 + i, 101 + i, 99) for i in dups]  # later rows win
    text = "ts,open,high,low,close,volume\n" + "\n".join(",".join(map(str, r)) for r in rows)
    path = tmp_path_factory.mktemp("h") / "h.csv"
    path.write_text(text)
    r = load_candles(path)
    ts = [c.ts for c in r.candles]
    assert ts == [T0 + i * 60_000 for i in range(30)]
    for i in set(dups):
        assert r.candles[i].volume == 99 and r.candles[i].close == 101 + i
    dup = r.report.problem("duplicates")
    assert (dup.count if dup else 0) == len(dups)


def test_real_dirty_btc_file(shared_data: Path) -> None:
    path = shared_data / "btcusd_15m_2021.csv"
    if not path.exists():
        pytest.skip("btcusd_15m_2021.csv is not present")
    r = load_candles(path)
    rep = r.report
    assert r.interval == "15m" and rep.rows_read == 8721
    counts = {p.kind: p.count for p in rep.problems}
    assert counts["duplicates"] == 32
    assert counts["gaps"] == 9
    assert counts["partial_last"] == 1
    assert counts["zero_volume"] > 2000
    assert counts["non_monotonic"] >= 1
    assert rep.problem("partial_last").examples == ["2021-12-29T13:50:02Z"]
    assert rep.problem("duplicates").examples[0].startswith("2021-10-27")
    assert "largest 2d7h" in rep.problem("gaps").detail
    ts = np.array([c.ts for c in r.candles])
    assert (np.diff(ts) > 0).all() and (ts % M15 == 0).all()
    assert r.candles[0].ts == int(datetime(2021, 9, 27, 13, 45, tzinfo=UTC).timestamp() * 1000)  # +01:00 handled
    with pytest.raises(CandleFileError, match="refused with --strict"):
        load_candles(path, strict=True)


def test_gzipped_csv(tmp_path: Path) -> None:
    import gzip

    rows = "\n".join(f"{T0 + i * 60_000},10,11,9,10.5,1" for i in range(5))
    path = tmp_path / "c.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("Open Time,Open,High,Low,Close,Volume\n" + rows + "\n")
    r = load_candles(path)
    assert len(r.candles) == 5 and r.candles[0].ts == T0
