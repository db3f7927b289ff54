"""How each fault kind is injected, and what the injection itself observed.

Exchange faults go through the fake exchange's fault API (the same one its
``/_fake/faults`` endpoint serves); process faults are signals to the
session's pid (never to anything the drill did not start); disk faults
touch the faulted run's workspace files while its session is dead, as a
crash or a full disk would leave them. An action that cannot be performed
says so (``why_not``) and is reported as not injected -- never pretended.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laptop_agents.domain.errors import LaptopAgentsError
from laptop_agents.exchange import protocol
from laptop_agents.exchange import protocol_private as pp
from laptop_agents.testing.drill.plan import BY_NAME, PlannedFault
from laptop_agents.testing.drill.runs import DrillRun, _alive, wait_dead
from laptop_agents.testing.fake_exchange import Fault

SILENCE_S = 24.0  # longer than the websocket client's 20 s idle timeout
GAP_S = 1.5
REST_GAP_S = 0.6  # a short gap whose REST backfill meets the armed REST fault
DISK_WAIT_S = 20.0
PLACE_TIMEOUT_S = 11.0  # the private REST client gives up after 10 s
IN_FLIGHT_HOLD_S = 6.0
ORDER_WAIT_S = 90.0  # how long kill9_in_flight waits for the strategy's next order


@dataclass
class FaultRecord:
    """One fault of the schedule: when and how it was injected, and (filled
    in by :mod:`.outcomes` after the run) what the bot did about it."""

    seq: int
    kind: str
    title: str
    planned_ms: int
    injected: bool = False
    why_not: str | None = None
    at_wall: float | None = None
    at_market_ms: int | None = None
    effect_until_wall: float | None = None
    pid: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    recovered: bool | None = None
    recover_s: float | None = None
    outcome: str = ""
    observed: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DiskFill:
    """The faulted workspace's small file system, if the drill could mount one."""

    mount: Path | None
    why_not: str | None = None


def inject(planned: PlannedFault, run: DrillRun, disk: DiskFill, echo: Callable[[str], None]) -> FaultRecord:
    kind = BY_NAME[planned.kind]
    rec = FaultRecord(planned.seq, kind.name, kind.title, planned.at_ms)
    action = _ACTIONS[kind.name]
    rec.at_market_ms = run.market_now()
    rec.at_wall = time.time()
    try:
        action(rec, planned, run, disk)
    except _NotInjected as exc:
        rec.injected = False
        rec.why_not = str(exc)
    else:
        rec.injected = True
    if rec.effect_until_wall is None:
        rec.effect_until_wall = rec.at_wall
    echo(f"fault {rec.seq}: {rec.kind}" + ("" if rec.injected else f" NOT injected: {rec.why_not}"))
    return rec


class _NotInjected(LaptopAgentsError):
    """The fault could not be performed; the message says why."""


# --------------------------------------------------------------------- exchange
def _exchange(*faults: Fault) -> Callable[[FaultRecord, PlannedFault, DrillRun, DiskFill], None]:
    def act(rec: FaultRecord, planned: PlannedFault, run: DrillRun, disk: DiskFill) -> None:
        if run.fake is None:
            raise _NotInjected("the fake exchange is not running")
        effect = 0.0
        for f in faults:
            run.fake.inject(f)
            if f.kind in ("silence", "kline_gap"):
                effect = max(effect, f.seconds)
        rec.params = {"faults": [_fault_params(f) for f in faults]}
        rec.effect_until_wall = time.time() + effect

    return act


def _queued(fault: Fault, hold_s: float) -> Callable[[FaultRecord, PlannedFault, DrillRun, DiskFill], None]:
    """A fault the exchange keeps armed until the next order (or fill) comes:
    wait until it was consumed, so that what the bot did about it falls in
    its window; an order that never comes is said, and the fault disarmed."""
    def act(rec: FaultRecord, planned: PlannedFault, run: DrillRun, disk: DiskFill) -> None:
        fake = run.fake
        if fake is None:
            raise _NotInjected("the fake exchange is not running")
        before = fake.armed(fault.kind)  # left over by an earlier fault, if any
        fake.inject(fault)
        rec.params = {"faults": [_fault_params(fault)]}
        deadline = time.time() + ORDER_WAIT_S
        while fake.armed(fault.kind) >= before + fault.count and time.time() < deadline:
            time.sleep(0.02)
        if fake.armed(fault.kind) >= before + fault.count:
            fake.clear_faults()
            raise _NotInjected(f"armed, but the strategy placed no order (or had no fill) within {ORDER_WAIT_S:g} s")
        rec.notes["hit_after_s"] = round(time.time() - (rec.at_wall or time.time()), 2)
        while fake.armed(fault.kind) > before and time.time() < deadline:
            time.sleep(0.02)
        rec.effect_until_wall = time.time() + hold_s

    return act


def _fault_params(f: Fault) -> dict[str, Any]:
    out = {"kind": f.kind}
    for key in ("count", "seconds", "status", "retry_after", "path", "market_s"):
        value = getattr(f, key)
        default = {"count": 1, "seconds": 0.0, "market_s": 0.0}.get(key)
        if value is not None and value != default:
            out[key] = value
    return out


# --------------------------------------------------------------------- process
def _live_pid(run: DrillRun) -> int:
    pid = run.session_pid
    if pid is None or not _alive(pid):
        raise _NotInjected("no session process was running at that moment")
    return pid


def _kill9(rec: FaultRecord, planned: PlannedFault, run: DrillRun, disk: DiskFill) -> int:
    pid = _live_pid(run)
    rec.pid = pid
    os.kill(pid, signal.SIGKILL)
    if not wait_dead(pid, 10.0):
        raise _NotInjected(f"pid {pid} did not die after SIGKILL")
    rec.effect_until_wall = time.time()
    return pid


def _hang(rec: FaultRecord, planned: PlannedFault, run: DrillRun, disk: DiskFill) -> None:
    pid = _live_pid(run)
    rec.pid = pid
    os.kill(pid, signal.SIGSTOP)
    rec.params = {"signal": "SIGSTOP"}
    # The watchdog kills a frozen session (SIGKILL works on a stopped process);
    # the drill only waits to see it happen.
    dead = wait_dead(pid, 60.0)
    rec.effect_until_wall = time.time()
    rec.notes["noticed_after_s"] = round(time.time() - (rec.at_wall or 0), 2) if dead else None
    if not dead:
        os.kill(pid, signal.SIGCONT)  # give it back rather than leave a frozen process behind
        rec.notes["watchdog"] = "did not notice the hang within 60 s"


def _kill9_in_flight(rec: FaultRecord, planned: PlannedFault, run: DrillRun, disk: DiskFill) -> None:
    """Hold the next placement's reply and its pushes at the exchange,
    wait until the exchange has accepted that order, then kill -9 the
    session: it dies with a ``committed`` row whose order is at the exchange."""
    fake = run.fake
    if fake is None:
        raise _NotInjected("the fake exchange is not running")
    _live_pid(run)
    seen = len(fake.order_log())
    fake.inject(Fault("place_timeout", seconds=IN_FLIGHT_HOLD_S))
    # its acceptance push held too (and its fill pushes behind it): the bot can hear of it only by asking
    fake.inject(Fault("delay_pushes", seconds=IN_FLIGHT_HOLD_S, count=1))
    deadline = time.time() + ORDER_WAIT_S
    held: dict[str, Any] | None = None
    while held is None and time.time() < deadline:
        log = fake.order_log()
        held = next((e for e in log[seen:] if e["kind"] == "fault" and e.get("fault") == "place_timeout"), None)
        if held is not None and not held.get("accepted"):
            # a placement the exchange refused used the fault up: nothing is in flight; wait for the next one
            seen, held = len(log), None
            fake.inject(Fault("place_timeout", seconds=IN_FLIGHT_HOLD_S))
        if held is None:
            time.sleep(0.02)
    if held is None:
        fake.clear_faults()  # disarm what no order consumed, so that it does not hit a later fault's window
        raise _NotInjected(f"the strategy placed no order within {ORDER_WAIT_S:g} s")
    rec.params = {"faults": [{"kind": "place_timeout", "seconds": IN_FLIGHT_HOLD_S},
                             {"kind": "delay_pushes", "seconds": IN_FLIGHT_HOLD_S}],
                  "order_accepted": bool(held.get("accepted")), "signal": "SIGKILL"}
    rec.notes["order_in_flight"] = held.get("client_id")
    rec.at_wall = time.time()
    _kill9(rec, planned, run, disk)


def _run_dir_of(run: DrillRun, pid: int) -> Path | None:
    """The run directory of session ``pid`` (its heartbeat names it)."""
    beat = run.heartbeat()
    if beat is not None and beat.pid == pid and beat.run_id:
        return run.workspace / "runs" / beat.run_id
    runs = sorted((p for p in (run.workspace / "runs").glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def _corrupt_journal(rec: FaultRecord, planned: PlannedFault, run: DrillRun, disk: DiskFill) -> None:
    pid = _kill9(rec, planned, run, disk)
    run_dir = _run_dir_of(run, pid)
    journal = run_dir / "events.jsonl" if run_dir is not None else None
    if journal is None or not journal.is_file():
        raise _NotInjected("the killed session had no journal yet")
    data = journal.read_bytes()
    body = data[:-1] if data.endswith(b"\n") else data
    cut = body.rfind(b"\n") + 1  # start of the last line
    last = body[cut:]
    torn = last[: max(1, int(len(last) * (0.3 + 0.4 * planned.jitter)))] if last else b""
    garbage = b"\x00\xff\xfe{\"kind\":\"fil"
    journal.write_bytes(body[:cut] + torn + garbage)
    rec.params = {"journal": str(journal.relative_to(run.workspace)), "torn_line_bytes": len(last),
                  "kept_bytes": len(torn), "garbage_bytes": len(garbage)}
    _report(rec, run, run_dir)


def _report(rec: FaultRecord, run: DrillRun, run_dir: Path | None) -> None:
    """What an operator does next with a run that was cut short: rebuild its report from its files."""
    if run_dir is None or not run_dir.is_dir():
        return
    res = subprocess.run([sys.executable, "-m", "laptop_agents", "report", str(run_dir), "--workspace",
                          str(run.workspace)], capture_output=True, text=True, timeout=120)
    rec.notes["report_exit"] = res.returncode
    rec.notes["report_error"] = (res.stderr.strip().splitlines() or [""])[-1] if res.returncode else None


def _torn_wal(rec: FaultRecord, planned: PlannedFault, run: DrillRun, disk: DiskFill) -> None:
    _kill9(rec, planned, run, disk)
    wal = run.workspace / "state.db-wal"
    size = wal.stat().st_size if wal.exists() else 0
    garbage = random.Random(planned.seq * 7919 + int(planned.jitter * 1e6)).randbytes(4096 + 13)
    with wal.open("ab") as fh:
        fh.write(garbage)
    rec.params = {"wal_bytes_before": size, "garbage_bytes": len(garbage)}


def _full_disk(rec: FaultRecord, planned: PlannedFault, run: DrillRun, disk: DiskFill) -> None:
    if disk.mount is None:
        raise _NotInjected(disk.why_not or "no small file system could be mounted for the workspace")
    pid = _live_pid(run)
    rec.pid = pid
    filler = disk.mount / "drill-filler.bin"
    chunk = b"\0" * (1 << 20)
    written = 0
    try:
        with filler.open("wb") as fh:
            while True:
                fh.write(chunk)
                fh.flush()
                written += len(chunk)
    except OSError as exc:
        rec.params = {"filler_bytes": written, "error": exc.strerror or str(exc)}
    full_at = time.time()
    deadline = full_at + DISK_WAIT_S
    while time.time() < deadline and _alive(pid):
        time.sleep(0.05)
    stopped = not _alive(pid)
    rec.notes["session_stopped"] = stopped
    rec.notes["noticed_after_s"] = round(time.time() - full_at, 2) if stopped else None
    # The watchdog does not restart a full-disk exit (exit 10: a restart cannot
    # fix it); give it a moment to say so before freeing the space.
    w_deadline = time.time() + 5.0
    while stopped and run.watchdog_running() and time.time() < w_deadline:
        time.sleep(0.05)
    rec.notes["held_full_s"] = round(time.time() - full_at, 2)
    filler.unlink(missing_ok=True)
    rec.effect_until_wall = time.time()
    if stopped:
        _report(rec, run, _run_dir_of(run, pid))  # the run the full disk cut short: still readable?
    if not run.watchdog_running():
        # As the operator would: free the disk, start the watchdog again.
        rec.notes["watchdog_restarted_by_drill"] = True
        run.start_watchdog()


_ACTIONS: dict[str, Callable[[FaultRecord, PlannedFault, DrillRun, DiskFill], Any]] = {
    "socket_drop": _exchange(Fault("disconnect", close_code=1011)),
    "silent_socket": _exchange(Fault("silence", seconds=SILENCE_S, pong=True)),
    "garbage_frames": _exchange(Fault("malformed", count=2)),
    "truncated_frames": _exchange(Fault("truncated", count=2)),
    "duplicate_candles": _exchange(Fault("duplicate", count=3)),
    "out_of_order_candles": _exchange(Fault("out_of_order", count=3)),
    "candle_gap": _exchange(Fault("kline_gap", seconds=GAP_S)),
    "http_429": _exchange(Fault("http_status", status=429, count=2, retry_after=0.3, path=protocol.PATH_KLINE),
                          Fault("kline_gap", seconds=REST_GAP_S)),
    "http_5xx": _exchange(Fault("http_status", status=503, count=1, path=protocol.PATH_KLINE),
                          Fault("http_status", status=502, count=1, path=protocol.PATH_KLINE),
                          Fault("kline_gap", seconds=REST_GAP_S)),
    "slow_rest": _exchange(Fault("slow", seconds=3.0, path=protocol.PATH_KLINE), Fault("kline_gap", seconds=REST_GAP_S)),
    "clock_jump_forward": _exchange(Fault("clock_jump", market_s=45 * 60.0)),
    "clock_jump_back": _exchange(Fault("clock_jump", market_s=-20 * 60.0)),
    "kill9": _kill9,
    "hang": _hang,
    "full_disk": _full_disk,
    "corrupt_journal": _corrupt_journal,
    "torn_wal": _torn_wal,
    # live (--live-fake)
    "private_ws_drop": _exchange(Fault("private_disconnect", close_code=1011)),
    "place_5xx": _queued(Fault("http_status", status=502, count=1, path=pp.PATH_PLACE_ORDER), 2.0),
    "place_timeout": _queued(Fault("place_timeout", seconds=PLACE_TIMEOUT_S), PLACE_TIMEOUT_S),
    "delayed_fills": _queued(Fault("delay_fills", seconds=4.0, count=2), 4.0),
    "kill9_in_flight": _kill9_in_flight,
}
