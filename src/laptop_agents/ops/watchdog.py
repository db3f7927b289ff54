"""The watchdog: keep an unattended session running through crashes and hangs.

It runs the session as a child process (never in-process: a hung event loop or
a corrupted interpreter must not take the supervisor with it) and decides from
two signals only, both of which the session produces anyway:

* the child's **exit code** (``exit_codes.RESTARTABLE`` means "try again";
  0 means a clean end or a kill switch; anything else is a condition a restart
  cannot fix, such as bad config or a corrupt store, so the watchdog stops and
  exits with the same code for whoever supervises *it*);
* the **heartbeat file**: a child whose heartbeat is older than
  ``hang_timeout`` is hung; it is killed outright (SIGKILL, as a crash: the
  state store makes that safe, and a graceful stop would flatten the position
  the restart should resume) and restarted.

Restarts wait ``restart_delay`` seconds, doubled for each quick failure in a
row (capped at ``max_delay``, reset once a child ran for ``stable_after``
seconds) and are capped at ``max_restarts_per_hour`` in a rolling hour, after
which the watchdog gives up with a non-zero exit: a session that keeps dying
needs a human, not a hot loop.

A pending kill file (``<workspace>/kill.txt``) is the user's "stop": the
watchdog never restarts while one exists and leaves it in place for the
session and ``status`` to see.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import RESTARTABLE, ExitCode
from laptop_agents.ops.lock import AlreadyRunningError, WorkspaceLock
from laptop_agents.ops.workspace import Workspace, resolve_workspace

HOUR_S = 3600.0
# Heartbeat statuses that mean the session was ending on its own.
_ENDING_STATUSES = frozenset({"stopping", "stopped"})


@dataclass
class WatchdogOptions:
    """Tunables; the CLI flags map one to one, the rest have safe defaults."""

    restart_delay: float = 10.0
    max_delay: float = 600.0
    max_restarts_per_hour: int = 10
    hang_timeout: float = 120.0
    # A child that ran this long was healthy: the backoff starts over.
    stable_after: float = 300.0
    # How long a signalled (user-stopped) child may take to cancel, flatten and commit.
    stop_grace: float = 60.0
    poll_interval: float = 0.25

    def backoff(self, failures_in_a_row: int) -> float:
        """Delay before the restart that follows ``failures_in_a_row`` quick failures (1-based)."""
        exponent = max(0, failures_in_a_row - 1)
        return float(min(self.restart_delay * (2.0 ** min(exponent, 60)), max(self.max_delay, self.restart_delay)))


@dataclass
class ChildOutcome:
    """How one child run ended."""

    exit_code: int
    uptime_s: float
    hung: bool = False
    stopped_by_watchdog: bool = False  # the watchdog itself was asked to stop
    heartbeat: dict[str, Any] | None = None


@dataclass
class WatchdogResult:
    exit_code: int
    reason: str
    starts: int
    outcomes: list[ChildOutcome] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # the wait before each restart


def normalize_exit(code: int) -> int:
    """A process exit code the watchdog can return: signals (negative) count as a crash."""
    if code < 0 or code > 255:
        return int(ExitCode.CRASH)
    return code


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    try:
        return f"exit {code} ({ExitCode(code).name.lower()})"
    except ValueError:
        return f"exit {code}"


def _intended_exit(reason: Any) -> int | None:
    """The exit code the session maps its recorded stop reason to (None if unknown)."""
    if not isinstance(reason, str):
        return None
    try:
        from laptop_agents.session.guards import StopReason, exit_code_for

        return exit_code_for(StopReason(reason))
    except (ImportError, ValueError, KeyError):
        return None


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat record with ``_mtime`` added, or None if absent/unreadable.

    The session writes it atomically, but a torn or foreign file must never
    crash the supervisor: a record that is not a JSON object counts as only
    its modification time.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    record: dict[str, Any] = data if isinstance(data, dict) else {}
    record["_mtime"] = st.st_mtime
    return record


def heartbeat_wall_ts(record: dict[str, Any]) -> float:
    """Seconds since the epoch of a heartbeat: ``ts_ms`` if present, else the file mtime."""
    ts_ms = record.get("ts_ms")
    if isinstance(ts_ms, int | float) and not isinstance(ts_ms, bool):
        return float(ts_ms) / 1000.0
    return float(record.get("_mtime", 0.0))


class Watchdog:
    """Supervises ``command`` until it ends cleanly, cannot be helped, or too often dies.

    ``run()`` blocks and returns a :class:`WatchdogResult`; ``request_stop()``
    (thread-safe, also wired to SIGINT/SIGTERM by ``run(install_signals=True)``)
    forwards a polite stop to the child and ends the watchdog once it exits.
    """

    def __init__(
        self,
        command: Sequence[str],
        workspace: Workspace,
        options: WatchdogOptions | None = None,
        *,
        log: logging.Logger | None = None,
        echo: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.workspace = workspace
        self.options = options or WatchdogOptions()
        self.log = log or logging.getLogger("laptop_agents.ops.watchdog")
        self.echo = echo or (lambda line: print(line, flush=True))
        self.env = env
        self._stop = threading.Event()
        self._stop_signals = 0
        self._hangup = False
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public -----------------------------------------------------------------

    def request_stop(self, *, hangup: bool = False) -> None:
        """Ask the watchdog to stop: the child gets a polite stop, no restart follows.

        ``hangup``: the terminal closed (SIGHUP). The child runs in its own
        process group, so the terminal's hang-up does not reach it: it gets a
        SIGHUP from here instead of the SIGTERM, and stops as its own hang-up
        would stop it (its output to the dead terminal goes nowhere).
        """
        if hangup:
            self._hangup = True
        self._stop_signals += 1
        self._stop.set()

    @property
    def child_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def run(self, *, install_signals: bool = False) -> WatchdogResult:
        previous: dict[int, Any] = {}
        if install_signals:
            previous = self._install_signal_handlers()
        try:
            return self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- the loop ----------------------------------------------------------------

    def _loop(self) -> WatchdogResult:
        opts = self.options
        restarts: deque[float] = deque()
        outcomes: list[ChildOutcome] = []
        delays: list[float] = []
        failures_in_a_row = 0
        reason = "start"
        starts = 0
        while True:
            starts += 1
            outcome = self._run_child(starts, reason)
            outcomes.append(outcome)
            code = outcome.exit_code
            fields: dict[str, Any] = {"exit_code": code, "uptime_s": round(outcome.uptime_s, 3), "attempt": starts}

            if outcome.stopped_by_watchdog:
                self._say("stopped on request; the session exited with " + describe_exit(code),
                          reason="watchdog_stop", **fields)
                return WatchdogResult(normalize_exit(code), "watchdog_stop", starts, outcomes, delays)

            if outcome.hung:
                hb = outcome.heartbeat or {}
                intended = _intended_exit(hb.get("reason")) if hb.get("status") in _ENDING_STATUSES else None
                if intended is not None and intended not in RESTARTABLE:
                    # It was ending on purpose and only its exit hung: honour the purpose.
                    why = "kill_switch" if hb.get("reason") == "kill_switch" else (
                        "clean_exit" if intended == 0 else "not_restartable")
                    self._say(f"session hung while stopping ({hb.get('reason')}, meant to exit {intended}); "
                              f"not restarting", reason=why, **fields)
                    return WatchdogResult(intended, why, starts, outcomes, delays)
                reason = "hung"
            elif code == 0:
                self._say("session ended cleanly (exit 0); not restarting", reason="clean_exit", **fields)
                return WatchdogResult(0, "clean_exit", starts, outcomes, delays)
            elif code < 0 or code in RESTARTABLE:
                reason = "crash" if code < 0 or code == ExitCode.CRASH else ExitCode(code).name.lower()
            else:
                self._say(f"session ended with {describe_exit(code)}, which a restart cannot fix; "
                          f"not restarting", reason="not_restartable", **fields)
                return WatchdogResult(normalize_exit(code), "not_restartable", starts, outcomes, delays)

            failed_code = normalize_exit(code) or int(ExitCode.CRASH)
            if self.workspace.kill_file.exists():
                self._say(f"kill file {self.workspace.kill_file} is pending; not restarting. The session "
                          f"ended with {describe_exit(code)} before it could honour it: working orders and "
                          f"the position may be as it left them (see `laptop-agents status`)",
                          reason="kill_file", **fields)
                return WatchdogResult(failed_code, "kill_file", starts, outcomes, delays)

            if outcome.uptime_s >= opts.stable_after:
                failures_in_a_row = 0
            failures_in_a_row += 1

            now = time.monotonic()
            while restarts and now - restarts[0] >= HOUR_S:
                restarts.popleft()
            if len(restarts) >= opts.max_restarts_per_hour:
                self._say(f"giving up: {len(restarts)} restarts in the last hour reached "
                          f"--max-restarts-per-hour {opts.max_restarts_per_hour}; last end: {describe_exit(code)}"
                          f"{' (hung)' if outcome.hung else ''}", reason="give_up", level=logging.ERROR,
                          restart_reason=reason, **fields)
                return WatchdogResult(failed_code, "give_up", starts, outcomes, delays)

            delay = opts.backoff(failures_in_a_row)
            delays.append(delay)
            self._say(f"session {'hung' if outcome.hung else 'ended'} ({describe_exit(code)}); "
                      f"restarting in {delay:g} s (restart {len(restarts) + 1} this hour, "
                      f"{failures_in_a_row} in a row)", reason=reason, delay_s=delay,
                      failures_in_a_row=failures_in_a_row, level=logging.WARNING, **fields)
            if not self._wait_before_restart(delay):
                if self._stop.is_set():
                    self._say("stopped on request during the restart delay", reason="watchdog_stop", **fields)
                    return WatchdogResult(failed_code, "watchdog_stop", starts, outcomes, delays)
                self._say(f"kill file {self.workspace.kill_file} appeared during the restart delay; "
                          f"not restarting", reason="kill_file", **fields)
                return WatchdogResult(failed_code, "kill_file", starts, outcomes, delays)
            restarts.append(time.monotonic())

    def _wait_before_restart(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; False if a stop request or a kill file cut it short."""
        deadline = time.monotonic() + delay
        while True:
            if self._stop.is_set() or self.workspace.kill_file.exists():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            self._stop.wait(min(left, self.options.poll_interval))

    # -- one child -----------------------------------------------------------------

    def _run_child(self, attempt: int, reason: str) -> ChildOutcome:
        opts = self.options
        started_wall = time.time()
        started = time.monotonic()
        command = self.command_for(attempt)
        proc = self._spawn(command)
        self._proc = proc
        self._say(f"started session pid {proc.pid} (attempt {attempt}, reason {reason}): "
                  f"{' '.join(command)}", reason=reason, attempt=attempt, pid=proc.pid)
        hung = False
        stopped = False
        heartbeat: dict[str, Any] | None = None
        next_check = 0.0
        # Wall time at which the child was last known alive, besides its heartbeat.
        alive_ref = started_wall
        last_check_wall = started_wall
        while proc.poll() is None:
            if self._stop.is_set() and not stopped:
                stopped = True
                self._say(f"stop requested: sending a polite stop to pid {proc.pid}", reason="watchdog_stop",
                          pid=proc.pid)
                self._end_child(proc, grace=opts.stop_grace, polite_first=True, escalate_on_second_stop=True)
                break
            now = time.monotonic()
            if now >= next_check:
                next_check = now + max(opts.poll_interval, 0.05)
                wall = time.time()
                if wall - last_check_wall > self._stall_threshold():
                    # The laptop slept (or this process was frozen, or the clock
                    # jumped): the child could not beat either. Judge it from now.
                    self._say(f"no check for {wall - last_check_wall:.1f} s (suspend, stall or clock jump); "
                              f"the hang timeout starts over", reason="suspend", pid=proc.pid)
                    alive_ref = wall
                last_check_wall = wall
                heartbeat = self._own_heartbeat(proc.pid, started_wall)
                last = max(alive_ref, heartbeat_wall_ts(heartbeat)) if heartbeat else alive_ref
                age = wall - last
                if age > opts.hang_timeout:
                    hung = True
                    # Killed outright, like a crash: a polite SIGTERM would run the
                    # kill-switch path (cancel, flatten) and lose the position the
                    # restart is meant to resume from the store.
                    self._say(f"session pid {proc.pid} is hung: no heartbeat for {age:.1f} s "
                              f"(--hang-timeout {opts.hang_timeout:g}); killing it",
                              reason="hung", pid=proc.pid, heartbeat_age_s=round(age, 3), level=logging.WARNING)
                    try:
                        proc.kill()
                    except OSError:
                        pass
                    break
            self._stop.wait(min(opts.poll_interval, 0.25))
        code = proc.wait()
        self._proc = None
        uptime = time.monotonic() - started
        if heartbeat is None or not hung:
            heartbeat = self._own_heartbeat(proc.pid, started_wall)
        self.log.info("session exited", extra={"fields": {
            "pid": proc.pid, "exit_code": code, "uptime_s": round(uptime, 3), "hung": hung, "attempt": attempt}})
        return ChildOutcome(code, uptime, hung=hung, stopped_by_watchdog=stopped, heartbeat=heartbeat)

    def _stall_threshold(self) -> float:
        """A gap between two checks this long means nothing ran (suspend), not a hang."""
        return max(2.0, 10 * self.options.poll_interval, self.options.hang_timeout / 2)

    def _own_heartbeat(self, pid: int, started_wall: float) -> dict[str, Any] | None:
        """The heartbeat if it belongs to this child (same pid, or written since it started)."""
        record = read_heartbeat(self.workspace.heartbeat)
        if record is None:
            return None
        hb_pid = record.get("pid")
        if isinstance(hb_pid, int) and hb_pid != pid:
            return None  # a previous session's last words
        if not isinstance(hb_pid, int) and heartbeat_wall_ts(record) < started_wall:
            return None
        return record

    def command_for(self, attempt: int) -> list[str]:
        """The command of one start. A session refuses a ``--run-id`` whose run
        directory exists, so a restart gets ``<run-id>-r<n>`` (the first free
        one) instead of being refused into a stop."""
        cmd = list(self.command)
        if attempt <= 1:
            return cmd
        for i, arg in enumerate(cmd):
            if arg == "--run-id" and i + 1 < len(cmd):
                cmd[i + 1] = self._restart_run_id(cmd[i + 1], attempt)
            elif arg.startswith("--run-id="):
                cmd[i] = "--run-id=" + self._restart_run_id(arg.split("=", 1)[1], attempt)
        return cmd

    def _restart_run_id(self, run_id: str, attempt: int) -> str:
        n = attempt - 1
        while (self.workspace.runs_dir / f"{run_id}-r{n}").exists():
            n += 1
        return f"{run_id}-r{n}"

    def _spawn(self, command: Sequence[str] | None = None) -> subprocess.Popen[bytes]:
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            # Its own group so a console Ctrl+C reaches only the watchdog, and
            # CTRL_BREAK_EVENT can address the child alone.
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            # Its own process group: a terminal Ctrl+C goes to the watchdog,
            # which forwards exactly one SIGTERM (no double signal).
            kwargs["process_group"] = 0
        return subprocess.Popen(list(command or self.command), env=self.env, **kwargs)

    def _polite_stop(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            if sys.platform == "win32":
                proc.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                proc.send_signal(signal.SIGHUP if self._hangup else signal.SIGTERM)
                # A stopped (SIGSTOP/SIGTSTP) child would keep the SIGTERM pending
                # forever; let it run so its graceful shutdown can happen.
                proc.send_signal(signal.SIGCONT)
        except (ProcessLookupError, OSError):
            pass

    def _end_child(self, proc: subprocess.Popen[bytes], *, grace: float, polite_first: bool,
                   escalate_on_second_stop: bool = False) -> None:
        """SIGTERM, wait up to ``grace`` (or a second stop request), then SIGKILL."""
        if polite_first:
            self._polite_stop(proc)
        seen = self._stop_signals
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            if escalate_on_second_stop and self._stop_signals > seen:
                self._say(f"second stop request: killing pid {proc.pid}", reason="force_kill", pid=proc.pid)
                break
            time.sleep(0.05)
        if proc.poll() is None:
            self._say(f"pid {proc.pid} did not stop within {grace:g} s; killing it", reason="force_kill",
                      pid=proc.pid, level=logging.WARNING)
            try:
                proc.kill()
            except OSError:
                pass

    # -- plumbing --------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        from laptop_agents.interrupts import detach_from_terminal, terminal_fds

        tty_fds = terminal_fds()
        sighup = getattr(signal, "SIGHUP", None)

        def handler(signum: int, frame: FrameType | None) -> None:
            if signum == sighup:  # the terminal closed: stop, and write nothing more to it
                detach_from_terminal(tty_fds)
            self.request_stop(hangup=signum == sighup)

        previous: dict[int, Any] = {}
        signums = [signal.SIGINT, signal.SIGTERM]
        if sys.platform == "win32":
            signums.append(signal.SIGBREAK)
        if sighup is not None:
            signums.append(sighup)
        for signum in signums:
            previous[signum] = signal.signal(signum, handler)
        return previous

    def _say(self, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
        self.echo(f"watchdog: {message}")
        self.log.log(level, message, extra={"fields": fields})


def child_command(workspace: Path, run_args: Sequence[str], *, profile: str | None = None,
                  log_level: str | None = None, python: str | None = None) -> list[str]:
    """``python -m laptop_agents run --workspace WS [--profile P] <run args>``.

    The workspace is always passed explicitly so that the session writes its
    heartbeat, lock and kill file exactly where the watchdog looks.
    """
    cmd = [python or sys.executable, "-m", "laptop_agents", "run", "--workspace", str(workspace)]
    if profile:
        cmd += ["--profile", profile]
    if log_level:
        cmd += ["--log-level", log_level]
    return cmd + list(run_args)


def _workspace_in_args(run_args: Sequence[str]) -> str | None:
    found: str | None = None
    for i, arg in enumerate(run_args):
        if arg == "--workspace" and i + 1 < len(run_args):
            found = run_args[i + 1]
        elif arg.startswith("--workspace="):
            found = arg.split("=", 1)[1]
    return found


def cmd_watchdog(ctx: CommandContext) -> int:
    """``laptop-agents watchdog [options] -- <run args>``."""
    args = ctx.args
    run_args = list(getattr(args, "run_args", None) or [])
    if run_args and run_args[0] == "--":
        run_args = run_args[1:]
    ws: Workspace = ctx.workspace

    problems = []
    if args.restart_delay < 0:
        problems.append(f"--restart-delay must be >= 0 seconds, got {args.restart_delay:g}")
    if args.max_delay < 0:
        problems.append(f"--max-delay must be >= 0 seconds, got {args.max_delay:g}")
    if args.max_restarts_per_hour < 0:
        problems.append(f"--max-restarts-per-hour must be >= 0, got {args.max_restarts_per_hour}")
    if args.hang_timeout <= 0:
        problems.append(f"--hang-timeout must be > 0 seconds, got {args.hang_timeout:g}")
    stable_after = getattr(args, "stable_after", None)
    if stable_after is not None and stable_after <= 0:
        problems.append(f"--stable-after must be > 0 seconds, got {stable_after:g}")
    other_ws = _workspace_in_args(run_args)
    if other_ws is not None and resolve_workspace(other_ws) != ws.root:
        if getattr(args, "workspace", None) is None:
            # Only given to the session (e.g. by scripts/watchdog.ps1): the
            # watchdog must watch the same place.
            ws = Workspace(resolve_workspace(other_ws))
            try:
                ws.ensure()
            except OSError as exc:
                print(f"watchdog: workspace error: cannot create {ws.root}: {exc.strerror or exc}",
                      file=sys.stderr)
                return int(ExitCode.DISK_FULL)
        else:
            problems.append(f"--workspace after -- ({other_ws}) differs from the watchdog's --workspace "
                            f"{ws.root}; give it once, before --")
    if problems:
        print(f"watchdog: config error: {problems[0]}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)

    options = WatchdogOptions(
        restart_delay=args.restart_delay,
        max_delay=args.max_delay,
        max_restarts_per_hour=args.max_restarts_per_hour,
        hang_timeout=args.hang_timeout,
    )
    if stable_after is not None:
        options.stable_after = stable_after
    profile = getattr(args, "profile", None)
    command = child_command(ws.root, run_args, profile=profile if profile != "paper" else None,
                            log_level=getattr(args, "log_level", None))

    guard = WorkspaceLock(ws.root / "watchdog.lock", what="watchdog")
    try:
        guard.acquire()
    except AlreadyRunningError as exc:
        print(f"watchdog: {exc}", file=sys.stderr)
        return int(ExitCode.ALREADY_RUNNING)
    print(f"watchdog: workspace {ws.root}", flush=True)
    ctx.log.info("watchdog start", extra={"fields": {
        "workspace": str(ws.root), "command": command, "pid": os.getpid(),
        "restart_delay_s": options.restart_delay, "max_delay_s": options.max_delay,
        "max_restarts_per_hour": options.max_restarts_per_hour, "hang_timeout_s": options.hang_timeout}})
    try:
        result = Watchdog(command, ws, options, log=ctx.log).run(install_signals=True)
    finally:
        guard.release()
    ctx.log.info("watchdog end", extra={"fields": {
        "exit_code": result.exit_code, "reason": result.reason, "starts": result.starts}})
    return result.exit_code
