"""Bad input files through the CLI: backtest, validate and replay (candle files and
recordings) each exit 9 (BAD_INPUT) with one line naming the file and the problem."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from laptop_agents.cli import main
from laptop_agents.exit_codes import ExitCode

T0 = 1_704_067_200_000  # 2024-01-01


def rows(n: int = 40, t0: int = T0) -> str:
    return "".join(f"{t0 + i * 60_000},{100 + i},{101 + i},{99 + i},{100.5 + i},5\n" for i in range(n))


GOOD = "timestamp,open,high,low,close,volume\n" + rows()


def bad_files(d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a word its error line must hold)."""
    plain = d / "plain.csv.gz"
    plain.write_text(GOOD)
    data = gzip.compress((GOOD + rows(4000, T0 + 40 * 60_000)).encode())
    cut = d / "cut.csv.gz"
    cut.write_bytes(data[: len(data) // 2])
    dup = d / "dup.csv"
    dup.write_text("timestamp,open,high,low,close,close\n" + rows())
    y1970 = d / "y1970.csv"
    y1970.write_text("timestamp,open,high,low,close,volume\n" + rows(t0=0))
    y9999 = d / "y9999.csv"
    y9999.write_text("date,open,high,low,close,volume\n" + "".join(
        f"9999-01-01T00:{i:02d}:00,{100 + i},{101 + i},{99 + i},{100.5 + i},5\n" for i in range(40)))
    ms_secs = d / "ms_secs.csv"
    ms_secs.write_text("timestamp_ms,open,high,low,close,volume\n" + "".join(
        f"{(T0 + i * 60_000) // 1000},{100 + i},{101 + i},{99 + i},{100.5 + i},5\n" for i in range(40)))
    garbage = d / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 40)
    return {
        "not gzip": (plain, "not gzip"),
        "truncated gzip": (cut, "truncated"),
        "duplicated columns": (dup, "'close'"),
        "year 1970": (y1970, "outside"),
        "year 9999": (y9999, "outside"),
        "seconds read as ms": (ms_secs, "look like epoch s"),
        "binary garbage": (garbage, "not a text file"),
    }


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "crash" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["backtest", "validate", "replay"])
def test_bad_candle_files_exit_9_with_one_line(tmp_path: Path, workspace: Path, command: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for label, (path, word) in bad_files(tmp_path).items():
        rc = main([command, str(path), "--no-report"] if command == "backtest" else [command, str(path)])
        cap = capsys.readouterr()
        assert rc == ExitCode.BAD_INPUT, (command, label, cap.err, cap.out)
        line = one_line(cap.err)
        assert path.name in line and word in line, (command, label, line)


def recordings(d: Path) -> dict[str, tuple[Path, str]]:
    meta = json.dumps({"k": "meta", "v": 1, "symbol": "BTCUSDT", "interval": "1m"})
    garbage = d / "garbage.jsonl"
    garbage.write_bytes(bytes(range(256)) * 40)
    after_meta = d / "after_meta.jsonl"
    after_meta.write_bytes(meta.encode() + b"\n" + bytes(range(128, 256)) * 40 + b"\n")
    deep = d / "deep.jsonl"
    deep.write_text('{"k":"meta","v":1,"x":' + "[" * 100_000 + "]" * 100_000 + "}\n")
    plain = d / "plain.jsonl.gz"
    plain.write_text(meta + "\n")
    data = gzip.compress((meta + "\n" + ('{"k":"note","text":"' + "x" * 200 + '"}\n') * 2000).encode())
    cut = d / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    return {
        "binary garbage": (garbage, "not UTF-8"),
        "garbage after the meta line": (after_meta, "not UTF-8"),
        "deeply nested": (deep, "nested"),
        "not gzip": (plain, "not gzip"),
        "truncated gzip": (cut, "truncated"),
    }


def test_bad_recordings_exit_9_with_one_line(tmp_path: Path, workspace: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for label, (path, word) in recordings(tmp_path).items():
        rc = main(["replay", str(path)])
        cap = capsys.readouterr()
        assert rc == ExitCode.BAD_INPUT, (label, cap.err, cap.out)
        err_lines = [ln for ln in cap.err.splitlines() if ln.strip()]
        assert "Traceback" not in cap.err and "crash" not in cap.err, cap.err
        hits = [ln for ln in err_lines + cap.out.splitlines() if path.name in ln and word in ln]
        assert hits, (label, cap.err, cap.out)


@pytest.mark.parametrize("command", ["backtest", "validate", "replay"])
def test_split_date_time_and_time_flags_through_the_cli(tmp_path: Path, workspace: Path, command: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    split = tmp_path / "split.csv"
    split.write_text("Date,Time,Open,High,Low,Close,Volume\n" + "".join(
        f"2024.01.{1 + i // 24:02d},{i % 24:02d}:00,{100 + i % 7},{102 + i % 7},{99 + i % 7},{101 + i % 7},5\n"
        for i in range(24 * 5)))
    extra = ["--no-report"] if command == "backtest" else []
    if command == "validate":
        extra += ["--splits", "2"]
    assert main([command, str(split), "--run-id", "split", *extra]) == ExitCode.OK, capsys.readouterr().err
    custom = tmp_path / "custom.csv"
    custom.write_text("bar_start,open,high,low,close,volume\n" + rows(24 * 5))
    capsys.readouterr()
    assert main([command, str(custom), "--run-id", "c1", *extra]) == ExitCode.BAD_INPUT
    assert "--time-column" in one_line(capsys.readouterr().err)
    rc = main([command, str(custom), "--run-id", "c2", "--time-column", "bar_start", "--time-unit", "ms", *extra])
    assert rc == ExitCode.OK, capsys.readouterr().err
