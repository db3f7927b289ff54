"""The drill itself: start the runs, play the schedule, wait for the end,
read the evidence back, check the invariants, write the scorecard.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laptop_agents.config import load_config
from laptop_agents.domain.models import Candle
from laptop_agents.testing.drill import invariants as inv
from laptop_agents.testing.drill.actions import DiskFill, FaultRecord, inject
from laptop_agents.testing.drill.evidence import read_logs, read_runs, read_store, routing
from laptop_agents.testing.drill.live_books import BooksComparison, compare_books
from laptop_agents.testing.drill.outcomes import observe
from laptop_agents.testing.drill.plan import BY_NAME, DAY_MS, DrillPlan, PlannedFault, schedule, window
from laptop_agents.testing.drill.replay import replay
from laptop_agents.testing.drill.runs import FUNDING_RATE, DrillRun
from laptop_agents.testing.fake_exchange import DEFAULT_ACCOUNT

TMPFS_BYTES = 256 << 20
RECOVER_TIMEOUT_S = 120.0
SAMPLE_S = 0.25


@dataclass
class DrillOutcome:
    plan: DrillPlan
    root: Path
    records: list[FaultRecord]
    checks: list[inv.Check]
    runs: dict[str, inv.RunEvidence]
    started_wall: float
    ended_wall: float
    window: tuple[int, int]
    machine: dict[str, Any] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)  # invariant -> why it is not checked

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


class Drill:
    def __init__(self, plan: DrillPlan, root: Path, *, echo: Callable[[str], None] = print) -> None:
        self.plan = plan
        self.root = root
        self.echo = echo
        self._stop = threading.Event()
        self._resources_at = 0.0
        self.runs: list[DrillRun] = []
        self.disk = DiskFill(None, "full_disk is not among this drill's fault kinds")
        self._mount_dir: Path | None = None
        self.stop_wall: float | None = None  # when the drill asked the sessions to stop
        self.load: list[float] = []  # the machine's 1-minute load average, sampled while the drill runs

    # ------------------------------------------------------------------ disk
    def _mount(self) -> DiskFill:
        """A small tmpfs for the faulted workspace, so that filling it up
        starves only the session under test (root only; said when refused)."""
        mnt = self.root / "faulted-tmpfs"
        mnt.mkdir(parents=True, exist_ok=True)
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return DiskFill(None, "filling a disk needs a small file system of its own, and mounting a tmpfs "
                                  "needs root (the drill runs unprivileged)")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0755", "drill-tmpfs",
                              str(mnt)], capture_output=True, text=True)
        if res.returncode != 0:
            return DiskFill(None, f"mounting a tmpfs was refused: {(res.stderr or res.stdout).strip()[:160]}")
        self._mount_dir = mnt
        return DiskFill(mnt)

    def _unmount(self, faulted_ws: Path) -> None:
        if self._mount_dir is None:
            return
        dest = self.root / "faulted"
        with contextlib.suppress(OSError):
            shutil.copytree(faulted_ws, dest, dirs_exist_ok=True)
        for _ in range(20):
            res = subprocess.run(["umount", str(self._mount_dir)], capture_output=True, text=True)
            if res.returncode == 0:
                break
            time.sleep(0.25)
        with contextlib.suppress(OSError):
            self._mount_dir.rmdir()
        self._mount_dir = None

    # ------------------------------------------------------------------ run
    def run(self) -> DrillOutcome:
        plan = self.plan
        started = time.time()
        start_ms, end_ms = window(plan, int(started * 1000))
        planned = schedule(plan, start_ms)
        if "full_disk" in plan.kinds:
            self.disk = self._mount()
        faulted_ws = self.disk.mount / "ws" if self.disk.mount is not None else self.root / "faulted"
        faulted = DrillRun("faulted", faulted_ws, plan, start_ms, end_ms, out_dir=self.root / "faulted-run")
        self.runs = [faulted]
        baseline: DrillRun | None = None
        if plan.mode == "drill":
            baseline = DrillRun("baseline", self.root / "baseline", plan, start_ms, end_ms,
                                out_dir=self.root / "baseline-run")
            self.runs.append(baseline)
        records: list[FaultRecord] = []
        monitor = threading.Thread(target=self._monitor, name="drill-monitor", daemon=True)
        disk_walls: list[tuple[float, float]] = []
        try:
            for r in self.runs:
                r.start()
            self.echo(f"drill: market {plan.days:g} day(s) of 1m candles at {plan.speed:g}x "
                      f"(~{plan.wall_s / 60:.1f} min), {len(planned)} faults; workspaces under {self.root}")
            monitor.start()
            records = self._play(planned, faulted)
            disk_walls = [(r.at_wall or 0.0, r.effect_until_wall or 0.0) for r in records
                          if r.kind == "full_disk" and r.injected]
            self._wait_end(started)
            self.stop_wall = time.time()
            for r in self.runs:
                r.stop()
        finally:
            self._stop.set()
            if monitor.is_alive():
                monitor.join(5)
            for r in self.runs:
                r.kill_leftovers()
            self._unmount(faulted_ws)
        ended = time.time()
        evidence_ws = {"faulted": self.root / "faulted" if self.disk.mount is not None else faulted_ws}
        if baseline is not None:
            evidence_ws["baseline"] = baseline.workspace
        try:
            outcome = self._judge(records, evidence_ws, disk_walls, started, ended, (start_ms, end_ms))
        finally:
            for r in self.runs:
                r.close()
        return outcome

    def _monitor(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            resources = now - self._resources_at >= 1.0
            if resources:
                self._resources_at = now
            for r in self.runs:
                with contextlib.suppress(Exception):  # a sample is best effort; the run goes on
                    r.sample(resources=resources)
            if resources and hasattr(os, "getloadavg"):
                self.load.append(os.getloadavg()[0])
            self._stop.wait(SAMPLE_S)

    def _play(self, planned: list[PlannedFault], run: DrillRun) -> list[FaultRecord]:
        plan = self.plan
        records: list[FaultRecord] = []
        # No fault so late that the run could not recover and catch up before the market ends.
        last_room = run.end_ms - int(plan.span_ms * min(0.08, max(0.02, 0.5 * DAY_MS / plan.span_ms)))
        for pf in planned:
            while run.market_now() < pf.at_ms and run.market_now() < last_room:
                time.sleep(0.05)
            self._wait_caught_up(run, 60.0)
            if run.market_now() >= last_room:
                rec = FaultRecord(pf.seq, pf.kind, BY_NAME[pf.kind].title, pf.at_ms,
                                  why_not="the market ended before its turn (earlier faults took longer to "
                                          "recover from)")
                records.append(rec)
                self.echo(f"fault {pf.seq}: {pf.kind} NOT injected: {rec.why_not}")
                continue
            rec = inject(pf, run, self.disk, self.echo)
            if rec.injected:
                ok, at = self._wait_recovered(run, rec.effect_until_wall or time.time())
                rec.recovered = ok
                rec.recover_s = round(at - (rec.at_wall or at), 2) if ok else None
                self.echo(f"  recovered in {rec.recover_s:.1f} s" if rec.recover_s is not None else "  NOT recovered")
            records.append(rec)
        return records

    def _wait_caught_up(self, run: DrillRun, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if run.caught_up(run.heartbeat(), run.session_pid, time.time()):
                return True
            time.sleep(0.05)
        return False

    def _wait_recovered(self, run: DrillRun, effect_until: float) -> tuple[bool, float]:
        while time.time() < effect_until:
            time.sleep(0.05)
        deadline = time.monotonic() + RECOVER_TIMEOUT_S
        since = effect_until + 0.25  # a beat that saw the fault: not one written just before it
        while time.monotonic() < deadline:
            now = time.time()
            if run.caught_up(run.heartbeat(), run.session_pid, now, since=since):
                return True, now
            if not run.watchdog_running() and not run.reached_end():
                break  # nothing will bring it back
            time.sleep(0.05)
        return False, time.time()

    def _wait_end(self, started: float) -> None:
        deadline = started + self.plan.wall_s * 1.6 + 180.0
        while time.time() < deadline:
            if all(r.reached_end() for r in self.runs):
                return
            if not any(r.watchdog_running() for r in self.runs):
                return
            time.sleep(0.2)
        self.echo("drill: the end of the market was not reached in time")

    # ------------------------------------------------------------------ judge
    def _judge(self, records: list[FaultRecord], workspaces: dict[str, Path], disk_walls: list[tuple[float, float]],
               started: float, ended: float, win: tuple[int, int]) -> DrillOutcome:
        plan = self.plan
        step = plan.interval_ms
        end_ts = win[1] - step
        market = self.runs[0].fake.exchange.market if self.runs[0].fake is not None else None
        assert market is not None

        def candle_at(ts: int) -> Candle:
            return market.candle(market.index_at(ts))

        config = load_config("paper", {
            "trading.source": "bitunix", "trading.speed": plan.speed,
            "strategy.file": str(self.runs[0].strategy_file), "system.flatten_on_kill": False,
        }).config
        late_limit = 2 * step
        evidence: dict[str, inv.RunEvidence] = {}
        faulted_logs = []
        for run in self.runs:
            ws = workspaces[run.name]
            logs = read_logs(ws)
            if run.name == "faulted":
                faulted_logs = logs
            store = read_store(ws / "state.db")
            rt = routing(logs, store.last_candle_ts, step, late_limit_ms=late_limit,
                         blind_walls=disk_walls if run.name == "faulted" else ())
            rp = None
            if not plan.live and rt.first_ts is not None and store.last_candle_ts is not None:
                rp = replay(config, candle_at, rt.routes, set(rt.blind), rt.first_ts, store.last_candle_ts, step,
                            funding_rate=FUNDING_RATE, ledger=store.fills)
            books = self._books(run, store) if plan.live else None
            evidence[run.name] = inv.RunEvidence(run.name, store, rt, read_runs(ws), rp, list(run.samples), end_ts,
                                                 books)
        observe(records, faulted_logs, self.stop_wall or ended)
        in_flight_outcomes(records, evidence["faulted"].books)
        ev = list(evidence.values())
        checks = [
            inv.reached_end(ev),
            inv.store_integrity(ev),
            inv.candles_once(ev, blind_ok=True),
            inv.candles_true(ev, candle_at, late_limit),
            inv.fills_not_doubled(ev),
            inv.fills_not_lost(ev),
        ]
        if plan.live:
            checks += [inv.exchange_orders_once(ev), inv.exchange_fills_once(ev), inv.position_matches_exchange(ev),
                       inv.live_orders_resolved(ev)]
        else:
            checks.append(inv.ledger_matches_replay(ev))
        if "baseline" in evidence:
            checks.append(inv.matches_baseline(evidence["faulted"], evidence["baseline"], live=plan.live))
        checks.append(inv.faults_survived(records))
        watched = evidence["baseline"] if "baseline" in evidence else evidence["faulted"]
        checks.extend(inv.resources(watched.name, watched.samples, soak=plan.mode == "soak"))
        return DrillOutcome(plan, self.root, records, checks, evidence, started, ended, win,
                            machine_info(self.load), dict(inv.NOT_IN_LIVE) if plan.live else {})

    @staticmethod
    def _books(run: DrillRun, store: Any) -> BooksComparison | None:
        """The run's exchange's own record (its order log and positions) against its books."""
        if run.fake is None:
            return None
        return compare_books(run.fake.order_log(), run.fake.positions(), store.live_orders, store.fills,
                             account=DEFAULT_ACCOUNT.uid)


def in_flight_outcomes(records: list[FaultRecord], books: BooksComparison | None) -> None:
    """What became of each order a ``kill9_in_flight`` caught between the bot
    and the exchange: its row at the end, and how often the exchange accepted it."""
    if books is None:
        return
    for rec in records:
        cid = rec.notes.get("order_in_flight")
        if not rec.injected or not cid:
            continue
        row = books.rows.get(str(cid))
        accepted = books.accepted.get(str(cid), 0)
        rec.notes["in_flight_after"] = {"row_state": row.get("state") if row else None,
                                        "row_status": row.get("status") if row else None,
                                        "exchange_accepted": accepted}
        rec.outcome += (f"; the restart settled it by client id: row {row.get('state')} "
                        f"({(row.get('status') or '').lower() or 'no status'}), accepted {accepted}x by the exchange"
                        if row is not None else "; the books have no row for it")


def machine_info(load: list[float]) -> dict[str, Any]:
    """The machine the drill ran on: cores and the 1-minute load average while it ran
    (other work competing for the cores makes recoveries slower and candles later)."""
    out: dict[str, Any] = {"cpus": os.cpu_count()}
    if load:
        out["load_avg_1m"] = {"min": round(min(load), 2), "mean": round(sum(load) / len(load), 2),
                              "max": round(max(load), 2)}
    return out
