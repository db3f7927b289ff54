"""Candle files that cannot be used: each is one CandleFileError line naming the file and the problem."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laptop_agents.sources.candle_files import CandleFileError, load_candles

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 900_000


def rows(n: int = 20, step: int = 60_000, t0: int = T0, scale: float = 1.0) -> str:
    return "".join(f"{int((t0 + i * step) * scale)},{100 + i},{101 + i},{99 + i},{100.5 + i},5\n" for i in range(n))


GOOD = "timestamp,open,high,low,close,volume\n" + rows()


def refused(path: Path, *words: str, **kwargs: object) -> str:
    with pytest.raises(CandleFileError) as exc:
        load_candles(path, **kwargs)  # type: ignore[arg-type]
    msg = str(exc.value)
    assert "\n" not in msg, msg
    assert path.name in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


def test_gz_name_on_plain_text(tmp_path: Path) -> None:
    f = tmp_path / "plain.csv.gz"
    f.write_text(GOOD)
    refused(f, "not gzip")


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress((GOOD + rows(5000, t0=T0 + 20 * 60_000)).encode())
    f = tmp_path / "cut.csv.gz"
    f.write_bytes(data[: len(data) // 2])
    refused(f, "gzip", "truncated")
    tiny = tmp_path / "tiny.csv.gz"
    tiny.write_bytes(data[:30])  # cut inside the first block
    refused(tiny, "gzip", "truncated")


def test_binary_garbage(tmp_path: Path) -> None:
    f = tmp_path / "garbage.csv"
    f.write_bytes(bytes(range(256)) * 40)
    refused(f, "not a text file")


def test_duplicated_column_names_that_are_used(tmp_path: Path) -> None:
    f = tmp_path / "dup.csv"
    f.write_text("timestamp,open,high,low,close,close\n" + rows())
    refused(f, "'close'", "2 times")
    g = tmp_path / "dup_case.csv"
    g.write_text("timestamp,Open,open,high,low,close,volume\n" + "".join(
        f"{T0 + i * 60_000},{100 + i},{100 + i},{101 + i},{99 + i},{100.5 + i},5\n" for i in range(20)))
    refused(g, "'Open'", "'open'")


def test_duplicated_column_names_in_parquet(tmp_path: Path) -> None:
    t = pa.table([pa.array([T0 + i * 60_000 for i in range(5)]), *[pa.array([10.0] * 5)] * 5],
                 names=["ts", "open", "high", "low", "close", "open"])
    f = tmp_path / "dup.parquet"
    pq.write_table(t, f)
    refused(f, "'open'", "2 times")


def test_duplicated_unused_columns_are_fine(tmp_path: Path) -> None:
    f = tmp_path / "plots.csv"
    f.write_text("timestamp,open,high,low,close,volume,Plot,Plot\n" + "".join(
        f"{T0 + i * 60_000},{100 + i},{101 + i},{99 + i},{100.5 + i},5,1,2\n" for i in range(20)))
    assert len(load_candles(f).candles) == 20


@pytest.mark.parametrize("label,text", [
    ("1970 (tiny epoch seconds)", "timestamp,open,high,low,close,volume\n" + rows(t0=0)),
    ("year 9999", "date,open,high,low,close,volume\n" + "".join(
        f"9999-01-01T00:{i:02d}:00,{100 + i},{101 + i},{99 + i},{100.5 + i},5\n" for i in range(20))),
    ("year 1970 ISO", "date,open,high,low,close,volume\n" + "".join(
        f"1970-01-01T00:{i:02d}:00,{100 + i},{101 + i},{99 + i},{100.5 + i},5\n" for i in range(20))),
])
def test_absurd_timestamps(tmp_path: Path, label: str, text: str) -> None:
    f = tmp_path / "absurd.csv"
    f.write_text(text)
    refused(f, "outside", "2000-01-01", "2100-01-01")


def test_seconds_in_a_column_named_ms(tmp_path: Path) -> None:
    f = tmp_path / "units.csv"
    f.write_text("timestamp_ms,open,high,low,close,volume\n" + rows(scale=1 / 1000))
    refused(f, "'timestamp_ms'", "read as epoch ms", "look like epoch s")


def test_seconds_read_as_ms_by_flag(tmp_path: Path) -> None:
    f = tmp_path / "secs.csv"
    f.write_text("timestamp,open,high,low,close,volume\n" + rows(scale=1 / 1000))
    refused(f, "read as epoch ms", "look like epoch s", time_unit="ms")


def test_a_few_absurd_rows_are_dropped_and_reported(tmp_path: Path) -> None:
    f = tmp_path / "few.csv"
    body = rows(20).splitlines()
    body[5] = "253402300799000,105,106,104,105.5,5"  # 9999-12-31
    f.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(body) + "\n")
    r = load_candles(f)
    assert len(r.candles) == 19
    p = r.report.problem("bad_time")
    assert p is not None and p.count == 1 and "2000-01-01" in p.detail
    refused(f, "refused with --strict", strict=True)


def test_unsupported_time_type_names_file_and_column(tmp_path: Path) -> None:
    t = pa.table({"when": pa.array([b"\x00\x01"] * 5, pa.binary()), "open": [1.0] * 5, "high": [1.0] * 5,
                  "low": [1.0] * 5, "close": [1.0] * 5})
    f = tmp_path / "bin_time.parquet"
    pq.write_table(t, f)
    refused(f, "'when'", "binary", "not supported", time_column="when")
    lone = tmp_path / "lone_time.csv"  # a time of day with no date beside it
    lone.write_text("time,open,high,low,close\n" + "".join(f"14:{i:02d}:00,10,11,9,10\n" for i in range(5)))
    refused(lone, "'time'", "time of day", "date column")


def test_bad_time_unit_value(tmp_path: Path) -> None:
    f = tmp_path / "g.csv"
    f.write_text(GOOD)
    refused(f, "--time-unit", "s, ms, us, ns", time_unit="minutes")


def test_time_unit_on_text_times(tmp_path: Path) -> None:
    f = tmp_path / "iso.csv"
    f.write_text("date,open,high,low,close\n" + "".join(f"2024-01-01T00:{i:02d}:00Z,10,11,9,10\n" for i in range(5)))
    refused(f, "--time-unit", "epoch numbers", time_unit="s")


def test_unreadable_file_is_bad_input_not_a_write_error(tmp_path: Path) -> None:
    d = tmp_path / "adir.csv"
    d.mkdir()
    refused(d, "not a file")


def test_time_unit_on_split_date_and_time(tmp_path: Path) -> None:
    f = tmp_path / "split.csv"
    f.write_text("Date,Time,Open,High,Low,Close\n" + "".join(f"2024-01-01,00:{i:02d},10,11,9,10\n" for i in range(5)))
    assert len(load_candles(f).candles) == 5
    refused(f, "--time-unit", "'Date' + 'Time'", time_unit="ms")


def test_a_large_json_reply_without_a_final_newline(tmp_path: Path) -> None:
    import json

    rows = [[T0 + i * 60_000, "100", "101", "99", "100.5", "5"] for i in range(3000)]  # > 64 KB
    f = tmp_path / "klines.json"
    f.write_text(json.dumps({"data": rows}))
    assert f.stat().st_size > 70_000
    assert len(load_candles(f).candles) == 3000
