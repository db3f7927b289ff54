"""The workspace lock: one holder, stale takeover, a race with one winner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from laptop_agents.lock import AlreadyRunningError, WorkspaceLock, pid_alive

HOLD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from laptop_agents.lock import WorkspaceLock
    lock = WorkspaceLock(Path(sys.argv[1]))
    lock.acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def _spawn_holder(lock_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(lock_path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_acquire_release_and_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "ws" / "lock"
    lock = WorkspaceLock(path)
    assert lock.acquire() is None
    assert lock.held
    holder = lock.holder()
    assert holder is not None
    assert holder["pid"] == os.getpid() and holder["alive"] is True
    lock.release()
    assert not lock.held
    assert lock.holder() is None  # released cleanly: nothing to report
    lock.release()  # idempotent
    with WorkspaceLock(path) as again:
        assert again.held
    assert not again.held


def test_second_acquire_refused_with_holder_pid_in_same_process(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    first = WorkspaceLock(path)
    first.acquire()
    with pytest.raises(AlreadyRunningError) as err:
        WorkspaceLock(path).acquire()
    assert err.value.pid == os.getpid()
    assert str(os.getpid()) in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)
    first.release()
    WorkspaceLock(path).acquire()


def test_double_acquire_on_one_object_is_a_programming_error(tmp_path: Path) -> None:
    lock = WorkspaceLock(tmp_path / "lock")
    lock.acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()


def test_other_process_holding_is_refused_then_taken_over_after_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    proc = _spawn_holder(path)
    try:
        with pytest.raises(AlreadyRunningError) as err:
            WorkspaceLock(path).acquire()
        assert err.value.pid == proc.pid
        assert f"pid {proc.pid}" in str(err.value)
        holder = WorkspaceLock(path).holder()
        assert holder is not None and holder["pid"] == proc.pid and holder["alive"] is True
    finally:
        proc.kill()
        proc.wait()
    # The killed holder left its record behind: reported as stale, then taken over.
    stale = WorkspaceLock(path).holder()
    assert stale is not None and stale["pid"] == proc.pid and stale["alive"] is False
    lock = WorkspaceLock(path)
    previous = lock.acquire()
    assert previous is not None and previous["pid"] == proc.pid and previous["alive"] is False
    assert lock.took_over == previous
    current = lock.holder()
    assert current is not None and current["pid"] == os.getpid()
    lock.release()


def test_stale_record_from_dead_pid_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    dead = _dead_pid()
    path.write_text(json.dumps({"pid": dead, "create_time": 1.0, "started_at": "then"}))
    holder = WorkspaceLock(path).holder()
    assert holder is not None and holder["alive"] is False
    lock = WorkspaceLock(path)
    previous = lock.acquire()
    assert previous is not None and previous["pid"] == dead
    lock.release()


def test_recycled_pid_is_not_mistaken_for_the_holder(tmp_path: Path) -> None:
    """A record naming a live PID whose create time differs is stale."""
    path = tmp_path / "lock"
    me = psutil.Process(os.getpid())
    path.write_text(json.dumps({"pid": os.getpid(), "create_time": me.create_time() - 1000.0}))
    holder = WorkspaceLock(path).holder()
    assert holder is not None and holder["alive"] is False
    assert pid_alive(os.getpid(), me.create_time()) is True
    assert pid_alive(os.getpid(), me.create_time() - 1000.0) is False
    assert pid_alive(_dead_pid()) is False


def test_garbage_lock_file_does_not_block_a_start(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.write_bytes(b"\x00not json{")
    lock = WorkspaceLock(path)
    previous = lock.acquire()
    assert previous is not None and previous.get("unreadable") is True
    lock.release()


def test_a_dropped_lock_object_keeps_the_lock(tmp_path: Path) -> None:
    """Losing the reference must not silently let a second session in."""
    import gc

    path = tmp_path / "lock"
    WorkspaceLock(path).acquire()
    gc.collect()
    with pytest.raises(AlreadyRunningError):
        WorkspaceLock(path).acquire()


RACE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from laptop_agents.lock import AlreadyRunningError, WorkspaceLock
    path, go_at = Path(sys.argv[1]), float(sys.argv[2])
    while time.time() < go_at:
        pass
    lock = WorkspaceLock(path)
    try:
        lock.acquire()
    except AlreadyRunningError:
        print("lost", flush=True)
        sys.exit(0)
    print("won", flush=True)
    sys.stdin.read()  # hold it until the test has heard from every racer
    """
)


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale-record"])
def test_racing_processes_exactly_one_wins(tmp_path: Path, stale: bool) -> None:
    path = tmp_path / "lock"
    if stale:
        path.write_text(json.dumps({"pid": _dead_pid(), "create_time": 1.0}))
    go_at = time.time() + 1.0  # spin until the same instant so they really race
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, str(path), repr(go_at)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        outs = []
        for p in procs:
            assert p.stdout is not None
            outs.append(p.stdout.readline().strip())
        assert sorted(outs) == ["lost", "lost", "lost", "won"], outs
    finally:
        for p in procs:
            p.communicate(timeout=30)
