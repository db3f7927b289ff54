"""fetch-candles against the real fake exchange over loopback: paging, resume, errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from laptop_agents.cli import main
from laptop_agents.exit_codes import ExitCode
from laptop_agents.sources.candle_files import load_candles

fake = pytest.importorskip("laptop_agents.testing.fake_exchange")


@pytest.fixture
def exchange():  # type: ignore[no-untyped-def]
    handle = fake.start_fake_exchange(seed=5, history_bars=5000, rest_limit_per_s=0)
    try:
        yield handle
    finally:
        handle.stop()


def test_fetch_pages_and_resumes(tmp_path: Path, workspace: Path, exchange, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "btc.parquet"
    end = int(time.time() * 1000) - 3 * 3_600_000
    base = ["fetch-candles", "--out", str(out), "--bitunix-rest-url", exchange.rest_url, "--interval", "1m"]
    assert main([*base, "--days", "0.5", "--end", str(end)]) == ExitCode.OK
    first = load_candles(out, strict=True)
    ts = np.array([c.ts for c in first.candles])
    assert 700 <= len(ts) <= 721 and (np.diff(ts) == 60_000).all()
    assert ts[-1] <= end - 60_000
    assert main(base) == ExitCode.OK  # resume up to now
    assert "resuming" in capsys.readouterr().out
    second = load_candles(out, strict=True)
    assert second.candles[: len(first.candles)] == first.candles
    ts2 = np.array([c.ts for c in second.candles])
    assert (np.diff(ts2) == 60_000).all() and len(ts2) >= len(ts) + 170
    assert ts2[-1] + 60_000 <= exchange.now_ms()  # the forming candle is never stored
    stats = exchange.stats()
    assert stats  # the server really answered our requests


def test_fetch_csv_and_errors(tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake.start_fake_exchange(seed=2, interval="5m", history_bars=1000) as exchange:
        _fetch_csv_and_errors(tmp_path, exchange.rest_url, capsys)


def _fetch_csv_and_errors(tmp_path: Path, rest_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "btc.csv"
    url = ["--bitunix-rest-url", rest_url]
    assert main(["fetch-candles", "--out", str(out), *url, "--interval", "5m", "--days", "1"]) == ExitCode.OK
    got = load_candles(out, strict=True)
    assert got.interval == "5m" and 280 <= len(got.candles) <= 288
    capsys.readouterr()
    assert main(["fetch-candles", "--out", str(out), *url, "--interval", "1m"]) == ExitCode.BAD_INPUT
    assert "holds 5m candles" in capsys.readouterr().err
    assert main(["fetch-candles", "--out", str(tmp_path / "x.txt"), *url]) == ExitCode.CONFIG_ERROR
    assert main(["fetch-candles", "--out", str(tmp_path / "y.csv"), *url, "--start", "yesterday"]) == ExitCode.CONFIG_ERROR
    assert "bad --start" in capsys.readouterr().err
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    rc = main(["fetch-candles", "--out", str(tmp_path / "z.csv"), "--bitunix-rest-url", dead, "--days", "0.1"])
    assert rc == ExitCode.MARKET_DATA_ERRORS
    assert "exchange error" in capsys.readouterr().err
