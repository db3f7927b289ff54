"""The exports people really download, read with no hand editing.

Each sample under ``tests/sources/data`` is a small hand-made file in the exact
layout of one source (banner lines, column names, date and time formats,
order, units); the expected values below are read off the files by eye.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from laptop_agents.sources.candle_files import CandleFileError, load_candles

DATA = Path(__file__).parent / "data"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# file, interval, candles, first bar (time, open, high, low, close, volume), last bar time, words in the report
LAYOUTS = [
    ("BTCUSDT-1m-2021-09-27.csv", "1m", 30,
     ("2021-09-27 14:00", 43410.00, 43441.24, 43389.78, 43414.11, 23.06879), "2021-09-27 14:29",
     ["Binance", "epoch ms"]),
    ("BTCUSDT-1m-2025-01-01.csv", "1m", 30,
     ("2025-01-01 00:00", 93548.8, 93574.36, 93527.24, 93552.62, 9.52926), "2025-01-01 00:29",
     ["Binance", "epoch us"]),
    ("BTCUSDT-5m-2023-10-01.csv", "5m", 36,
     ("2023-10-01 00:00", 26962.1, 26985.3, 26900.9, 26914.4, 162.147), "2023-10-01 02:55",
     ["'open_time'", "epoch ms"]),
    ("cdd_Binance_BTCUSDT_1h.csv", "1h", 36,
     ("2023-10-01 00:00", 26960.00, 27177.48, 26956.42, 27098.92, 19.91483), "2023-10-02 11:00",
     ["banner", "CryptoDataDownload", "newest first", "'unix'", "'Volume BTC'"]),
    ("cdd_Bitstamp_BTCUSD_1h_2019.csv", "1h", 30,
     ("2019-10-16 00:00", 8050.00, 8136.06, 8043.64, 8125.29, 742.87), "2019-10-17 05:00",
     ["banner", "newest first", "'Date'"]),
    ("tradingview_BITSTAMP_BTCUSD_15_split.csv", "15m", 32,
     ("2021-09-27 14:15", 43443.06, 43564.28, 43409.37, 43486.47, 17.6824), "2021-09-27 22:00",
     ["'Date' + 'Time'"]),
    ("tradingview_BITSTAMP_BTCUSD_60.csv", "1h", 30,
     ("2021-09-27 14:00", 43443.06, 43476.39, 43394.99, 43409.71, 21.2898), "2021-09-28 19:00",
     ["'time'", "epoch s"]),
    ("metatrader5_BTCUSD_M15.csv", "15m", 32,
     ("2021-09-27 14:15", 43443.06, 43585.63, 43395.48, 43475.50, 11.39), "2021-09-27 22:00",
     ["'<DATE>' + '<TIME>'"]),
    ("metatrader4_BTCUSD60.csv", "1h", 30,
     ("2021-09-27 00:00", 42700.00, 42714.26, 42496.88, 42579.49, 1161.0), "2021-09-28 05:00",
     ["headerless", "MetaTrader"]),
    ("suffix_open_time_s.csv", "1m", 30,
     ("2024-03-01 00:00", 61200.0, 61214.1, 61123.3, 61141.6, 24.243), "2024-03-01 00:29",
     ["'open_time_s'", "epoch s (from the column name)"]),
]


@pytest.mark.parametrize("name,interval,count,first,last,words", LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_real_layouts_load_with_no_hand_editing(
    name: str, interval: str, count: int, first: tuple[str, float, float, float, float, float], last: str,
    words: list[str],
) -> None:
    r = load_candles(DATA / name)
    assert r.interval == interval
    assert len(r.candles) == count
    c = r.candles[0]
    assert (c.ts, c.open, c.high, c.low, c.close, c.volume) == (ms(first[0]), *first[1:])
    assert r.candles[-1].ts == ms(last)
    text = " ".join(r.report.lines())
    for word in words:
        assert word in text, (word, text)
    assert r.report.clean, r.report.lines()
    assert load_candles(DATA / name, strict=True).candles == r.candles


def test_unknown_time_column_needs_time_column_flag() -> None:
    path = DATA / "custom_bar_start.csv"
    with pytest.raises(CandleFileError, match="no time column.*--time-column") as exc:
        load_candles(path)
    assert "custom_bar_start.csv" in str(exc.value) and "bar_start" in str(exc.value)
    r = load_candles(path, time_column="bar_start")
    assert r.interval == "5m" and len(r.candles) == 30
    c = r.candles[0]
    assert (c.ts, c.open, c.high, c.low, c.close, c.volume) == (ms("2024-03-01 00:00"), 61200.0, 61211.6, 61094.7,
                                                                61125.1, 20.482)
    assert r.candles[-1].ts == ms("2024-03-01 02:25")
    assert "--time-column" in " ".join(r.report.notes)
    with pytest.raises(CandleFileError, match="no column 'nosuch'"):
        load_candles(path, time_column="nosuch")


def test_time_unit_flag_overrides_the_magnitude_guess() -> None:
    path = DATA / "custom_bar_start.csv"  # epoch ms
    r = load_candles(path, time_column="bar_start", time_unit="ms")
    assert r.candles[0].ts == ms("2024-03-01 00:00")
    assert "epoch ms (--time-unit)" in " ".join(r.report.notes)
    with pytest.raises(CandleFileError) as exc:  # ms read as seconds: tens of thousands of years ahead
        load_candles(path, time_column="bar_start", time_unit="s")
    msg = str(exc.value)
    assert "custom_bar_start.csv" in msg and "'bar_start'" in msg and "look like epoch ms" in msg
    assert "\n" not in msg


def test_time_column_can_name_a_date_and_a_time_column(tmp_path: Path) -> None:
    rows = [f"2021.09.{d:02d},{h:02d}:00:00,100,101,99,100.5,3" for d in (27, 28) for h in range(24)]
    f = tmp_path / "day_hour.csv"
    f.write_text("day,hour,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    with pytest.raises(CandleFileError, match="no time column"):
        load_candles(f)
    r = load_candles(f, time_column="day,hour")
    assert r.interval == "1h" and len(r.candles) == 48
    assert r.candles[0].ts == ms("2021-09-27 00:00") and r.candles[-1].ts == ms("2021-09-28 23:00")


def test_binance_zip_as_downloaded(tmp_path: Path) -> None:
    import zipfile

    csv = DATA / "BTCUSDT-1m-2021-09-27.csv"
    z = tmp_path / "BTCUSDT-1m-2021-09-27.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(csv, csv.name)
    r = load_candles(z)
    assert r.candles == load_candles(csv).candles
    assert "in ZIP" in r.report.layout and csv.name in r.report.layout
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a.csv", csv.read_text())
        zf.writestr("b.csv", csv.read_text())
    with pytest.raises(CandleFileError, match="two.zip: a ZIP must hold exactly one CSV file, it holds 2"):
        load_candles(two)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(z.read_bytes()[:200])
    with pytest.raises(CandleFileError, match="cut.zip: not a readable ZIP"):
        load_candles(cut)


def test_excel_utf8_bom_and_crlf(tmp_path: Path) -> None:
    f = tmp_path / "excel.csv"
    rows = "".join(f"2021-09-27,14:{15 * i:02d},1,2,0.5,1.5,3\r\n" for i in range(4))
    f.write_bytes(b"\xef\xbb\xbf" + ("Date,Time,Open,High,Low,Close,Volume\r\n" + rows).encode())
    r = load_candles(f)
    assert r.interval == "15m" and [c.ts for c in r.candles][0] == ms("2021-09-27 14:00")


def test_epoch_units_are_told_apart_row_by_row(tmp_path: Path) -> None:
    """A CryptoDataDownload-style ``unix`` column that switched from seconds to ms partway."""
    t0 = ms("2020-01-01 00:00")
    rows = [f"{(t0 + i * 3_600_000) // (1000 if i < 10 else 1)},1,2,0.5,1.5,3" for i in range(30)]
    f = tmp_path / "mixed.csv"
    f.write_text("unix,open,high,low,close,volume\n" + "\n".join(reversed(rows)) + "\n")
    r = load_candles(f)
    assert [c.ts for c in r.candles] == [t0 + i * 3_600_000 for i in range(30)]
    assert "epoch ms (mixed units told apart row by row: 10 rows in s)" in r.report.notes[0]
