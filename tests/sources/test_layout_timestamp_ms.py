"""The one layout of issue 14's list without a positive sample of its own: a time column named
``timestamp_ms`` (its unit in its name) holding epoch milliseconds, read with no flag."""

from __future__ import annotations

from pathlib import Path

from laptop_agents.sources.candle_files import load_candles


def test_timestamp_ms_column_is_read_as_milliseconds(tmp_path: Path) -> None:
    rows = [
        "timestamp_ms,open,high,low,close,volume",
        "1709251200000,61200.0,61214.1,61123.3,61141.6,24.243",
        "1709251260000,61141.6,61168.7,61118.5,61122.1,51.124",
        "1709251320000,61122.1,61190.0,61100.2,61180.4,33.310",
    ]
    f = tmp_path / "export.csv"
    f.write_text("\n".join(rows) + "\n")
    r = load_candles(f)
    assert [c.ts for c in r.candles] == [1709251200000, 1709251260000, 1709251320000]
    assert r.interval == "1m" and r.candles[2].close == 61180.4
    text = " ".join(r.report.lines())
    assert "'timestamp_ms'" in text and "epoch ms" in text, text
