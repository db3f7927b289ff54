"""RunWriter files, summary.json, report.html (parsed), rebuild, resume, scrubbing, console."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from laptop_agents.cli import main
from laptop_agents.domain.contracts import StepResult
from laptop_agents.domain.events import Decision, Event, FillEvent, Funding, OrderEvent, TradeClosed
from laptop_agents.domain.models import Candle, OrderType, Side
from laptop_agents.exit_codes import ExitCode
from laptop_agents.logs import SCRUBBER
from laptop_agents.report import RunWriter, build_report
from laptop_agents.report import html as report_html
from laptop_agents.report.console import print_summary
from laptop_agents.report.metrics import compute_metrics

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
M1 = 60_000


class _Tables(HTMLParser):
    """Collects table rows by table id, and the JSON data block."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_data = False
        self.data_json = ""
        self.scripts = 0
        self.metric_keys: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or "?"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "script":
            self.scripts += 1
            self._in_data = a.get("id") == "report-data"
        elif tag == "div" and a.get("data-key"):
            self.metric_keys.append(str(a["data-key"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "script":
            self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_data:
            self.data_json += data


def parse(path: Path) -> _Tables:
    p = _Tables()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def candle(i: int, base: float = 100.0) -> Candle:
    px = base + (i % 17) - (i % 5)
    return Candle(T0 + i * M1, px, px + 2, px - 2, px + 1, 10.0 + i % 3)


def drive(writer: RunWriter, n: int, *, start: int = 0, reason: str = "target") -> list[tuple[float, float]]:
    """Feed ``n`` candles with one long trade every 20 bars (entry at bar 5, exit at 15)."""
    equity = 10_000.0
    pos = 0.0
    entry = (0, 0.0)
    curve = []
    for i in range(start, start + n):
        c = candle(i)
        evs: list[Event] = []
        if i % 20 == 5:
            cid = f"e{i}"
            evs = [
                Decision(c.ts, "enter", "pullback", side="BUY"),
                OrderEvent(c.ts, cid, Side.BUY, OrderType.MARKET, 1.0, None, c.close - 5, c.close + 10, "accepted", ""),
                FillEvent(c.ts, cid, Side.BUY, 1.0, c.close, 0.06, "taker", "entry"),
            ]
            pos, entry = 1.0, (c.ts, c.close)
        elif i % 20 == 15 and pos:
            pnl = c.close - entry[1]
            evs = [
                Funding(c.ts, 0.0001, 0.01, 1.0, c.ts, c.close),
                FillEvent(c.ts, f"x{i}", Side.SELL, 1.0, c.close, 0.06, "taker", reason),
                TradeClosed(c.ts, "long", 1.0, entry[0], entry[1], c.ts, c.close, pnl, 0.12, 0.01, pnl - 0.13, reason,
                            f"e{i - 10}"),
            ]
            equity += pnl - 0.13
            pos = 0.0
        else:
            evs = [Decision(c.ts, "hold", "no_setup")]
        writer.on_step(c, StepResult(ts=c.ts, events=evs, equity=equity + (c.close - entry[1]) * pos,
                                     position_qty=pos))
        curve.append((equity, pos))
    return curve


FIELDS = {"run_id": "r1", "mode": "backtest", "strategy": "test", "symbol": "BTCUSDT", "interval": "1m",
          "starting_equity": 10_000.0}


def test_files_summary_and_metrics(tmp_path: Path) -> None:
    run = tmp_path / "r1"
    w = RunWriter(run, flush_every=7)
    drive(w, 100)
    report = w.finish(FIELDS)
    assert report == run / "report.html"
    for name in ("summary.json", "trades.csv", "equity.csv", "candles.csv", "report.html"):
        assert (run / name).exists(), name
    with open(run / "trades.csv", newline="") as fh:
        trades = list(csv.DictReader(fh))
    assert len(trades) == 5
    first = trades[0]
    c5 = candle(5)
    assert float(first["entry_price"]) == c5.close
    assert float(first["stop"]) == c5.close - 5 and float(first["target"]) == c5.close + 10
    assert first["exit_reason"] == "target"
    with open(run / "equity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100 and rows[0]["ts"] == str(T0)
    assert float(rows[-1]["fees_paid"]) == pytest.approx(5 * 0.12)
    assert float(rows[-1]["funding_paid"]) == pytest.approx(5 * 0.01)
    summary = json.loads((run / "summary.json").read_text())
    expected = compute_metrics(
        starting_equity=10_000.0, equity=[float(r["equity"]) for r in rows],
        position_qty=[float(r["position_qty"]) for r in rows],
        trade_net_pnl=[float(t["net_pnl"]) for t in trades], interval_ms=M1, fees_paid=0.6, funding_paid=0.05,
    )
    for key, value in expected.items():
        assert summary["metrics"][key] == pytest.approx(value), key
    assert summary["candles"] == 100 and summary["first_time"] == "2024-01-01T00:00:00Z"
    assert summary["strategy"] == "test" and "report.html" in summary["files"]


def test_report_html_has_trades_charts_data_and_decisions(tmp_path: Path) -> None:
    run = tmp_path / "r2"
    w = RunWriter(run)
    drive(w, 60)
    # The EventJournal (engine helper) writes events.jsonl; here a minimal stand-in file.
    with open(run / "events.jsonl", "w") as fh:
        for i in range(60):
            ev = {"ts": T0 + i * M1, "kind": "decision", "action": "enter" if i % 20 == 5 else "hold",
                  "reason": "pullback" if i % 20 == 5 else "no_setup"}
            fh.write(json.dumps(ev) + "\n")
        fh.write(json.dumps({"ts": T0, "kind": "journal", "text": "plan created", "tags": ["plan"]}) + "\n")
    path = w.finish(FIELDS)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "https://" not in text.split("<body>")[1][:2000]
    p = parse(path)
    trades = p.tables["trades"]
    assert trades[0][:5] == ["#", "side", "qty", "entry time", "entry"]
    assert len(trades) == 1 + 3
    assert trades[1][1] == "long" and trades[1][3] == "2024-01-01T00:05:00Z"
    assert trades[1][-1] == "target"
    data = json.loads(p.data_json)
    assert len(data["candles"]["ts"]) == 60 and data["bucket"] == 1
    assert data["candles"]["high"][7] == candle(7).high
    assert len(data["curve"]["equity"]) == 60 and data["curve"]["dd_pct"][0] <= 0
    assert [t["entry_ts"] for t in data["trades"]] == [T0 + 5 * M1, T0 + 25 * M1, T0 + 45 * M1]
    assert data["trades"][0]["stop"] == candle(5).close - 5
    counts = dict((r[0], r[1]) for r in p.tables["decision-counts"][1:])
    assert counts == {"hold: no_setup": "57", "enter: pullback": "3"}
    assert len(p.tables["decisions"]) == 1 + 3  # holds are counted, not listed
    assert p.tables["journal"][1][2] == "plan created"
    assert {"net_pnl", "sharpe", "max_drawdown_pct", "win_rate_pct", "profit_factor"} <= set(p.metric_keys)
    assert "Plotly.newPlot" in text and len(text) > 1_000_000  # plotly inlined: opens offline


def test_long_runs_are_downsampled_and_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_html, "MAX_BARS", 10)
    monkeypatch.setattr(report_html, "MAX_POINTS", 10)
    run = tmp_path / "r3"
    w = RunWriter(run)
    drive(w, 95)
    p = parse(w.finish(FIELDS))
    data = json.loads(p.data_json)
    assert data["bucket"] == 10 and len(data["candles"]["ts"]) == 10
    assert data["candles"]["high"][0] == max(candle(i).high for i in range(10))
    assert data["candles"]["low"][9] == min(candle(i).low for i in range(90, 95))
    assert data["candles"]["close"][9] == candle(94).close
    assert "aggregates every 10 candles" in (run / "report.html").read_text()


def test_rebuild_from_files_matches_and_cli_report(tmp_path: Path, workspace: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "r4"
    w = RunWriter(run)
    drive(w, 80)
    w.finish(FIELDS)
    before = json.loads((run / "summary.json").read_text())
    (run / "report.html").unlink()
    assert build_report(run) == run / "report.html"
    after = json.loads((run / "summary.json").read_text())
    assert after == before  # fields survive a rebuild, metrics are recomputed identically
    assert main(["report", str(run)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "net PnL" in out and "report.html" in out
    assert main(["report", str(tmp_path / "missing")]) == ExitCode.BAD_INPUT
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == ExitCode.BAD_INPUT


def test_resume_appends_without_duplicates(tmp_path: Path) -> None:
    run = tmp_path / "r5"
    w = RunWriter(run, flush_every=3)
    drive(w, 30)
    w.close()
    w2 = RunWriter(run, resume=True)
    drive(w2, 30, start=20)  # bars 20..29 are seen again after the restart
    w2.finish(FIELDS)
    with open(run / "equity.csv", newline="") as fh:
        ts = [int(r["ts"]) for r in csv.DictReader(fh)]
    assert ts == [T0 + i * M1 for i in range(50)]
    with open(run / "candles.csv") as fh:
        assert fh.read().count("ts,open") == 1
    with open(run / "trades.csv", newline="") as fh:
        ns = [int(r["n"]) for r in csv.DictReader(fh)]
    assert ns == list(range(1, len(ns) + 1))


def test_secrets_are_scrubbed_from_every_file(tmp_path: Path) -> None:
    secret = "sk_live_TOPSECRET_9f8e7d"
    SCRUBBER.register(secret)
    run = tmp_path / "r6"
    w = RunWriter(run)
    drive(w, 30, reason=f"stop {secret}")
    with open(run / "events.jsonl", "w") as fh:
        fh.write(json.dumps({"ts": T0, "kind": "journal", "text": f"key {secret}"}) + "\n")
    w.finish({**FIELDS, "note": f"api {secret}"})
    for f in run.iterdir():
        if f.name != "events.jsonl":
            assert secret not in f.read_text(encoding="utf-8"), f.name


def test_console_summary() -> None:
    console = Console(record=True, width=100)
    print_summary({"mode": "backtest", "run_id": "x", "strategy": "sma_cross",
                   "metrics": {"net_pnl": -12.5, "trades": 3, "profit_factor": None, "sharpe": 1.234}},
                  console=console)
    text = console.export_text()
    assert "sma_cross" in text and "-12.50" in text and "n/a" in text and "1.23" in text




class _Recorder:
    def __init__(self) -> None:
        self.steps: list[tuple[Candle, StepResult]] = []

    def on_step(self, candle: Candle, result: StepResult) -> None:
        self.steps.append((candle, result))


def _bulk(w: RunWriter, steps: list[tuple[Candle, StepResult]], sizes: list[int]) -> None:
    i = 0
    for size in sizes:
        part = steps[i : i + size]
        w.on_steps([c for c, _ in part], [r.equity for _, r in part], [r.position_qty for _, r in part],
                   [(k, r.events) for k, (_, r) in enumerate(part) if r.events])  # fmt: skip
        i += size


def test_bulk_steps_write_the_same_files_as_step_by_step(tmp_path: Path) -> None:
    rec = _Recorder()
    drive(rec, 95)  # type: ignore[arg-type]
    again = _Recorder()
    drive(again, 40, start=80)  # type: ignore[arg-type]  # a restart that sees bars 80..94 again
    one, bulk = tmp_path / "one", tmp_path / "bulk"
    w = RunWriter(one, flush_every=7)
    for c, r in rec.steps[:60]:
        w.on_step(c, r)
    w.close()
    w = RunWriter(one, flush_every=7, resume=True)
    for c, r in rec.steps[60:] + again.steps:
        w.on_step(c, r)
    w.close()
    w = RunWriter(bulk, flush_every=7)
    for c, r in rec.steps[:3]:  # step by step first: buffered rows go before the bulk ones
        w.on_step(c, r)
    _bulk(w, rec.steps[3:60], [1, 20, 36])
    w.close()
    w = RunWriter(bulk, flush_every=7, resume=True)
    _bulk(w, rec.steps[60:], [10, 25])
    _bulk(w, again.steps, [20, 20])  # the first 15 are at or before the last row: skipped
    w.close()
    for name in ("candles.csv", "equity.csv", "trades.csv"):
        assert (bulk / name).read_bytes() == (one / name).read_bytes(), name
    assert (one / "trades.csv").read_text().count("\n") > 4
    with pytest.raises(ValueError, match="2 candles, 1 equity"):
        RunWriter(tmp_path / "bad").on_steps([candle(0), candle(1)], [1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="increasing time order"):
        RunWriter(tmp_path / "bad").on_steps([candle(1), candle(1)], [1.0, 1.0], [0.0, 0.0])


def test_decisions_note_tells_an_empty_journal_from_a_missing_one(tmp_path: Path) -> None:
    # A one-minute live session journals its start and stop but may decide
    # nothing: the report must not claim that events.jsonl is missing.
    for name, lines in (("with-journal", 2), ("no-journal", None)):
        run = tmp_path / name
        w = RunWriter(run)
        for i in range(3):
            c = candle(i)
            w.on_step(c, StepResult(ts=c.ts, events=[], equity=10_000.0, position_qty=0.0))
        if lines is not None:
            (run / "events.jsonl").write_text("".join(
                json.dumps({"ts": T0 + k, "kind": "session", "event": ev}) + "\n"
                for k, ev in enumerate(("start", "stop")[:lines])))
        text = w.finish(FIELDS).read_text(encoding="utf-8")
        if lines is None:
            assert "no events.jsonl" in text
        else:
            assert "no events.jsonl" not in text
            assert "events.jsonl holds 2 events" in text and "none of them a decision" in text


def test_a_run_whose_files_end_in_a_torn_row_still_reports(tmp_path: Path, workspace: Path) -> None:
    """Issue 15 (found by the drill): a session that hit a full disk leaves
    candles.csv, equity.csv and trades.csv cut in the middle of their last
    row (the disk filled mid-write); ``laptop-agents report`` refused the run
    ("unreadable", exit 9) or read the torn row as data. A last line without
    its newline is now ignored, as the journal's torn tail is."""
    run = tmp_path / "torn"
    w = RunWriter(run)
    drive(w, 80)
    w.finish(FIELDS)
    whole = build_report(run) and json.loads((run / "summary.json").read_text())
    for name in ("candles.csv", "equity.csv", "trades.csv"):
        path = run / name
        data = path.read_bytes()
        last = data.rstrip(b"\n").rfind(b"\n") + 1
        path.write_bytes(data[: last + (len(data) - last) // 2])  # the last row cut in half, no newline
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == ExitCode.OK
    torn = json.loads((run / "summary.json").read_text())
    assert torn["candles"] == whole["candles"] - 1  # the torn candle row is not a candle
    assert torn["last_ts"] == whole["last_ts"] - M1
    assert torn["metrics"]["trades"] == whole["metrics"]["trades"] - 1  # nor the torn trade a trade
