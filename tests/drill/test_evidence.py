"""Reading a run back: every candle accounted for from the routing lines and
the candle each session resumed after -- a line of a step that was never
committed is void, a candle in two committed lines was processed twice, a
candle in none was lost (unless the disk was full when its line was due)."""

from __future__ import annotations

from pathlib import Path

from laptop_agents.session.step import runs_of
from laptop_agents.testing.drill.evidence import ROUTE_COMPONENT, LogLine, read_logs, read_store, routing

M = 60_000
T0 = 1_700_000_040_000


def resume(wall: float, pid: int, last: int | None) -> LogLine:
    return LogLine(wall, "DEBUG", ROUTE_COMPONENT, "resume", {"route": "resume", "pid": pid, "last_candle_ts": last,
                                                               "run_id": f"r{pid}"})


def line(wall: float, pid: int, how: str, first: int, last: int, late_ms: int = 1000) -> LogLine:
    return LogLine(wall, "DEBUG", ROUTE_COMPONENT, how, {"route": how, "pid": pid, "runs": [[first, last]],
                                                         "n": (last - first) // M + 1, "late_ms": late_ms})


def t(i: int) -> int:
    return T0 + i * M


def test_runs_of_compresses_consecutive_candles() -> None:
    assert runs_of([t(0), t(1), t(2), t(5), t(7), t(8)], M) == [[t(0), t(2)], [t(5), t(5)], [t(7), t(8)]]
    assert runs_of([], M) == []


def test_a_killed_session_s_uncommitted_line_is_void_and_the_candle_counts_once() -> None:
    logs = [
        resume(1.0, 10, None), line(1.1, 10, "warmup", t(0), t(9)), line(1.2, 10, "trade", t(10), t(10)),
        line(1.3, 10, "trade", t(11), t(11)),  # written, then kill -9 before its commit
        resume(2.0, 11, t(10)), line(2.1, 11, "warmup", t(11), t(14)), line(2.2, 11, "trade", t(15), t(15)),
    ]
    rt = routing(logs, t(15), M, late_limit_ms=2 * M)
    assert rt.voided == 1 and not rt.duplicates and not rt.lost and not rt.blind
    assert rt.routes[t(11)] == "warmup" and rt.count("trade") == 2 and len(rt.routes) == 16
    assert [s.committed_until for s in rt.segments] == [t(10), t(15)]


def test_a_candle_processed_twice_or_never_is_found() -> None:
    logs = [
        resume(1.0, 10, None), line(1.1, 10, "warmup", t(0), t(4)), line(1.2, 10, "trade", t(5), t(5)),
        resume(2.0, 11, t(5)), line(2.1, 11, "trade", t(5), t(5)),  # a second session traded it again
        line(2.2, 11, "trade", t(8), t(8)),  # t(6) and t(7) never processed
    ]
    rt = routing(logs, t(8), M, late_limit_ms=2 * M)
    assert list(rt.duplicates) == [t(5)] and rt.duplicates[t(5)] == ["trade", "trade"]
    assert rt.lost == [t(6), t(7)]


def test_lines_lost_to_a_full_disk_make_blind_candles_not_lost_ones() -> None:
    logs = [
        resume(1.0, 10, None), line(1.1, 10, "warmup", t(0), t(4)), line(1.2, 10, "trade", t(5), t(5)),
        # the disk is full from 1.5 to 3.0: lines for t(6), t(7) could not be written (committed though)
        resume(3.5, 11, t(7)), line(3.6, 11, "warmup", t(8), t(9)),
    ]
    rt = routing(logs, t(9), M, late_limit_ms=2 * M, blind_walls=[(1.5, 3.0)])
    assert rt.blind == [t(6), t(7)] and not rt.lost
    rt = routing(logs, t(9), M, late_limit_ms=2 * M)
    assert rt.lost == [t(6), t(7)] and not rt.blind


def test_a_candle_traded_late_is_found() -> None:
    logs = [resume(1.0, 10, None), line(1.1, 10, "warmup", t(0), t(4)),
            line(1.2, 10, "trade", t(5), t(5), late_ms=5 * M)]
    assert routing(logs, t(5), M, late_limit_ms=2 * M).late_traded == [(t(5), 5 * M)]


def test_logs_are_read_across_rotated_files_in_time_order_and_torn_lines_skipped(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "system.jsonl.1").write_text('{"time": "2026-01-01T00:00:01+00:00", "level": "INFO", "component": "a", '
                                         '"message": "first"}\n')
    (logs / "system.jsonl").write_text('{"time": "2026-01-01T00:00:02+00:00", "level": "INFO", "component": "a", '
                                       '"message": "second", "fields": {"x": 1}}\n{"time": "2026-01-01T00:0')
    got = read_logs(tmp_path)
    assert [g.message for g in got] == ["first", "second"] and got[1].fields == {"x": 1}


def test_a_damaged_store_is_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "state.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    view = read_store(bad)
    assert not view.opened and view.error and view.integrity != "ok"
