"""File-system trouble injected at the lowest level (no root needed): atomic
writes leave no temporary file, problems read as words a user acts on, the
log file's failures are one line, and start-up interrupts never print a
traceback. The same conditions on real full / read-only file systems are in
tests/session/test_io_trouble.py."""

from __future__ import annotations

import errno
import gc
import json
import logging
import signal
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from laptop_agents import cli, interrupts
from laptop_agents.exit_codes import ExitCode
from laptop_agents.fileio import io_error_line, is_write_problem, problem, replacing, write_text_atomic
from laptop_agents.heartbeat import Heartbeat, write_heartbeat
from laptop_agents.logs import get_logger, setup_logging
from laptop_agents.ops.killswitch import request_stop


def _enospc(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_problem_words() -> None:
    assert problem(OSError(errno.ENOSPC, "x")).startswith("disk full")
    assert problem(OSError(errno.EROFS, "x")) == "read-only file system"
    assert "directory" in problem(IsADirectoryError(errno.EISDIR, "x"))
    assert problem(sqlite3.OperationalError("database or disk is full")).startswith("disk full")
    assert problem(sqlite3.OperationalError("attempt to write a readonly database")).startswith("read-only")
    line = io_error_line(OSError(errno.EROFS, "Read-only file system", "/ws/lock"))
    assert line == "cannot write /ws/lock: read-only file system"
    assert is_write_problem(OSError(errno.ENOSPC, "x")) and not is_write_problem(OSError(errno.ECONNREFUSED, "x"))


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_atomic_write_leaves_no_temp_file_and_keeps_the_old_content(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")
    monkeypatch.setattr(f"laptop_agents.fileio.os.{fail_at}", _enospc)
    with pytest.raises(OSError):
        write_text_atomic(target, "new", fsync=True)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("durable", [True, False])
def test_fsync_flushes_the_content_before_the_rename_and_the_directory_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool) -> None:
    import os

    target = tmp_path / "kill.txt"
    target.write_text("old")
    seen: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        seen.append(f"fsync while target is {target.read_text()!r}")
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        seen.append("replace")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr("laptop_agents.fileio.os.fsync", fsync)
    monkeypatch.setattr("laptop_agents.fileio.os.replace", replace)
    write_text_atomic(target, "new", fsync=durable)
    assert target.read_text() == "new" and _leftovers(tmp_path) == []
    if not durable:
        assert seen == ["replace"]
    elif os.name == "posix":
        assert seen == ["fsync while target is 'old'", "replace", "fsync while target is 'new'"]
    else:
        assert seen == ["fsync while target is 'old'", "replace"]


def test_replacing_gives_path_writers_the_same_guarantee(tmp_path: Path) -> None:
    target = tmp_path / "candles.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("a writer failed midway")
    assert target.read_text() == "old" and _leftovers(tmp_path) == []
    with replacing(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and _leftovers(tmp_path) == []


def test_heartbeat_and_kill_file_writes_leave_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("laptop_agents.fileio.os.replace", _enospc)
    with pytest.raises(OSError):
        write_heartbeat(tmp_path / "heartbeat.json", Heartbeat(status="running"))
    with pytest.raises(OSError):
        request_stop(tmp_path / "kill.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_report_on_a_full_disk_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from laptop_agents.domain.contracts import StepResult
    from laptop_agents.domain.models import Candle
    from laptop_agents.report import RunWriter

    run = tmp_path / "run"
    w = RunWriter(run)
    c = Candle(1_704_067_200_000, 100.0, 101.0, 99.0, 100.5, 1.0)
    w.on_step(c, StepResult(ts=c.ts, events=[], equity=10_000.0, position_qty=0.0))
    monkeypatch.setattr("laptop_agents.fileio.os.replace", _enospc)
    with pytest.raises(OSError):
        w.finish({"run_id": "r", "interval": "1m", "starting_equity": 10_000.0})
    assert _leftovers(run) == []


def test_state_store_creation_leaves_nothing_half_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from laptop_agents.store import StateStore, StoreWriteError
    from laptop_agents.store import state as state_mod

    def full(conn: sqlite3.Connection, current: int) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(state_mod, "_apply_migrations", full)
    with pytest.raises(StoreWriteError, match="disk full"):
        StateStore(tmp_path / "state.db")
    assert list(tmp_path.iterdir()) == []

    def interrupted(conn: sqlite3.Connection, current: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(state_mod, "_apply_migrations", interrupted)
    with pytest.raises(KeyboardInterrupt):
        StateStore(tmp_path / "state.db")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_migration_after_its_commit_keeps_the_original_error() -> None:
    from laptop_agents.store import state as state_mod

    class InterruptAfterCommit(sqlite3.Connection):
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
            cur = super().execute(sql, *args)
            if sql == "COMMIT":
                raise KeyboardInterrupt
            return cur

    conn = sqlite3.connect(":memory:", isolation_level=None, factory=InterruptAfterCommit)
    with pytest.raises(KeyboardInterrupt):  # not "cannot rollback - no transaction is active"
        state_mod._apply_migrations(conn, 0)


class _FullStream:
    def seek(self, *_: object) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def write(self, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_log_file_failures_are_one_line_not_a_traceback_per_record(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "system.jsonl"
    setup_logging(log_file, "INFO", console=False)
    handler = next(h for h in logging.getLogger("laptop_agents").handlers if hasattr(h, "baseFilename"))
    real = handler.stream
    handler.stream = _FullStream()
    log = get_logger("test.full")
    try:
        for i in range(3):
            log.info("line %d", i)
        err = capsys.readouterr().err
        assert "Traceback" not in err and "Logging error" not in err, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and str(log_file) in lines[0] and "disk full" in lines[0], err
        handler.stream = real
        log.info("back")
        assert "written again" in capsys.readouterr().err
        assert json.loads(log_file.read_text().splitlines()[-1])["message"] == "back"
    finally:
        setup_logging(None, "INFO", console=False)


def test_console_log_lines_carry_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "system.jsonl"
    setup_logging(log_file, "INFO")
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            get_logger("test.report").error("report failed: %s", exc, exc_info=exc)
        err = capsys.readouterr().err
        assert "report failed" in err and "Traceback" not in err, err
        record = json.loads(log_file.read_text().splitlines()[-1])
        assert "Traceback" in record["exception"]  # kept for whoever debugs it
    finally:
        setup_logging(None, "INFO", console=False)


def test_guard_maps_file_system_errors_to_the_io_code(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> int:
        raise OSError(errno.EROFS, "Read-only file system", "/ws/logs/system.jsonl")

    assert cli._run_guarded(fail) == ExitCode.DISK_FULL
    err = capsys.readouterr().err
    assert err.strip() == "cannot write /ws/logs/system.jsonl: read-only file system"


needs_main_thread = pytest.mark.skipif(
    sys.platform == "win32" or threading.current_thread() is not threading.main_thread(),
    reason="raises a real SIGINT: POSIX semantics, and only the main thread may handle it")


@needs_main_thread
def test_guard_turns_a_wrapped_ctrl_c_into_a_clean_exit(capsys: pytest.CaptureFixture[str]) -> None:
    def wrapped() -> int:
        try:
            signal.raise_signal(signal.SIGINT)
            for _ in range(1000):  # the handler runs at the next instruction
                pass
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error building validator") from exc  # what a compiled library may do
        return 0

    assert cli._run_guarded(wrapped) == ExitCode.OK
    assert capsys.readouterr().err.strip() == "interrupted"
    assert not interrupts.pending()


@needs_main_thread
def test_guard_finds_a_ctrl_c_swallowed_by_a_finalizer(capsys: pytest.CaptureFixture[str]) -> None:
    class Finalized:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)
            for _ in range(1000):
                pass

    def swallowed() -> int:
        Finalized()
        gc.collect()
        interrupts.check()  # the next start-up checkpoint
        return 1

    assert cli._run_guarded(swallowed) == ExitCode.OK
    err = capsys.readouterr().err
    assert err.strip() == "interrupted" and "Exception ignored" not in err
