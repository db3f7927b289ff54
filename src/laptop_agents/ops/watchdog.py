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

With ``--notify`` URLs (in the session's arguments, the config or
``$LA_NOTIFY_URLS``) each restart is also an alert (``watchdog_restart``),
sent from the notifier's own thread: a dead service never delays a restart.

Three rooms: the rules are pure functions in
:mod:`laptop_agents.ops.restart_policy` (table-tested without a process),
starting, signalling and killing the child is :mod:`laptop_agents.ops.process`,
and this module only drives them and says what happened.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import ExitCode
from laptop_agents.heartbeat import Heartbeat, read_heartbeat
from laptop_agents.lock import AlreadyRunningError, WorkspaceLock
from laptop_agents.ops.process import Child, Ended, install_stop_handlers
from laptop_agents.ops.restart_policy import (
    ChildEnd,
    Restart,
    RestartHistory,
    Stop,
    WatchdogOptions,
    check_liveness,
    decide,
    interrupted_delay,
)
from laptop_agents.workspace import Workspace, resolve_workspace

__all__ = ["ChildOutcome", "Watchdog", "WatchdogOptions", "WatchdogResult", "child_command", "cmd_watchdog"]


@dataclass
class ChildOutcome:
    """How one child run ended."""

    exit_code: int
    uptime_s: float
    hung: bool = False
    stopped_by_watchdog: bool = False  # the watchdog itself was asked to stop
    heartbeat: Heartbeat | None = None


@dataclass
class WatchdogResult:
    exit_code: int
    reason: str
    starts: int
    outcomes: list[ChildOutcome] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # the wait before each restart


class Watchdog:
    """Supervises ``command`` until it ends cleanly, cannot be helped, or too often dies.

    ``run()`` blocks and returns a :class:`WatchdogResult`; ``request_stop()``
    (thread-safe, also wired to SIGINT/SIGTERM by ``run(install_signals=True)``)
    forwards a polite stop to the child and ends the watchdog once it exits.
    The decisions are :mod:`laptop_agents.ops.restart_policy`'s; the process
    handling is :mod:`laptop_agents.ops.process`'s; this class only drives them.
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
        notifier: Any = None,
    ) -> None:
        self.command = list(command)
        self.workspace = workspace
        self.options = options or WatchdogOptions()
        self.log = log or logging.getLogger("laptop_agents.ops.watchdog")
        self.echo = echo or (lambda line: print(line, flush=True))
        self.env = env
        self.notifier = notifier  # console.alerts.Notifier, or None
        self._stop = threading.Event()
        self._stop_signals = 0
        self._hangup = False
        self._child: Child | None = None

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
        child = self._child
        return child.pid if child is not None and child.running() else None

    def run(self, *, install_signals: bool = False) -> WatchdogResult:
        restore = install_stop_handlers(lambda hangup: self.request_stop(hangup=hangup)) if install_signals else None
        try:
            return self._loop()
        finally:
            if restore is not None:
                restore()

    # -- the loop ----------------------------------------------------------------

    def _loop(self) -> WatchdogResult:
        result = WatchdogResult(0, "start", 0)
        history = RestartHistory()
        cause = "start"
        while True:
            result.starts += 1
            outcome = self._run_child(result.starts, cause)
            result.outcomes.append(outcome)
            fields: dict[str, Any] = {"exit_code": outcome.exit_code, "uptime_s": round(outcome.uptime_s, 3),
                                      "attempt": result.starts}
            decision = decide(self._ended(outcome), history, self.options, time.monotonic())
            if isinstance(decision, Restart):
                result.delays.append(decision.delay_s)
                self._say(decision.message, reason=decision.cause, delay_s=decision.delay_s,
                          failures_in_a_row=decision.history.failures_in_a_row, level=logging.WARNING, **fields)
                self._alert_restart(result.starts, outcome, decision)
                stop = self._wait_before_restart(decision)
                if stop is None:
                    history, cause = decision.history.restarted(time.monotonic()), decision.cause
                    continue
                decision = stop
            level = logging.ERROR if decision.reason == "give_up" else logging.INFO
            self._say(decision.message, reason=decision.reason, level=level, **fields)
            result.exit_code, result.reason = decision.exit_code, decision.reason
            return result

    def _alert_restart(self, restart: int, outcome: ChildOutcome, decision: Restart) -> None:
        if self.notifier is None:
            return
        from laptop_agents.console.alerts import watchdog_restart

        try:
            self.notifier.send(watchdog_restart(restart=restart, exit_code=outcome.exit_code, reason=decision.cause,
                                                delay_s=decision.delay_s))
        except Exception as exc:  # an alert never costs a restart
            self.log.warning("restart alert failed: %s", exc)

    def _ended(self, outcome: ChildOutcome) -> ChildEnd:
        kill_file = self.workspace.kill_file
        return ChildEnd(outcome.exit_code, outcome.uptime_s, hung=outcome.hung,
                        stopped_on_request=outcome.stopped_by_watchdog, heartbeat=outcome.heartbeat,
                        kill_file=str(kill_file) if kill_file.exists() else None)

    def _wait_before_restart(self, restart: Restart) -> Stop | None:
        """Sleep the restart delay; a Stop if a stop request or a kill file cut it short."""
        deadline = time.monotonic() + restart.delay_s
        while True:
            kill_file = self.workspace.kill_file
            stop = interrupted_delay(restart, stop_requested=self._stop.is_set(),
                                     kill_file=str(kill_file) if kill_file.exists() else None)
            if stop is not None:
                return stop
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._stop.wait(min(left, self.options.poll_interval))

    # -- one child -----------------------------------------------------------------

    def _run_child(self, attempt: int, cause: str) -> ChildOutcome:
        opts = self.options
        started_wall = time.time()
        started = time.monotonic()
        command = self.command_for(attempt)
        child = self._child = Child.spawn(command, self.env)
        self._say(f"started session pid {child.pid} (attempt {attempt}, reason {cause}): "
                  f"{' '.join(command)}", reason=cause, attempt=attempt, pid=child.pid)
        hung = stopped = False
        heartbeat: Heartbeat | None = None
        next_check = 0.0
        alive_ref = last_check = started_wall  # wall time the child was last known alive, besides its heartbeat
        while child.running():
            if self._stop.is_set():
                stopped = True
                self._stop_child(child)
                break
            now = time.monotonic()
            if now >= next_check:
                next_check = now + max(opts.poll_interval, 0.05)
                wall = time.time()
                heartbeat = self._own_heartbeat(child.pid, started_wall)
                live = check_liveness(now=wall, last_check=last_check, alive_ref=alive_ref, heartbeat=heartbeat,
                                      options=opts)
                if live.resumed_after_s is not None:
                    self._say(f"no check for {live.resumed_after_s:.1f} s (suspend, stall or clock jump); "
                              f"the hang timeout starts over", reason="suspend", pid=child.pid)
                alive_ref, last_check = live.alive_ref, wall
                if live.hung:
                    hung = True
                    # Killed outright, like a crash: a polite SIGTERM would run the
                    # kill-switch path (cancel, flatten) and lose the position the
                    # restart is meant to resume from the store.
                    self._say(f"session pid {child.pid} is hung: no heartbeat for {live.age_s:.1f} s "
                              f"(--hang-timeout {opts.hang_timeout:g}); killing it",
                              reason="hung", pid=child.pid, heartbeat_age_s=round(live.age_s, 3),
                              level=logging.WARNING)
                    child.kill()
                    break
            self._stop.wait(min(opts.poll_interval, 0.25))
        code = child.wait()
        self._child = None
        uptime = time.monotonic() - started
        if heartbeat is None or not hung:
            heartbeat = self._own_heartbeat(child.pid, started_wall)
        self.log.info("session exited", extra={"fields": {
            "pid": child.pid, "exit_code": code, "uptime_s": round(uptime, 3), "hung": hung, "attempt": attempt}})
        return ChildOutcome(code, uptime, hung=hung, stopped_by_watchdog=stopped, heartbeat=heartbeat)

    def _stop_child(self, child: Child) -> None:
        """A polite stop; a second stop request, or the grace period running out, kills it."""
        grace = self.options.stop_grace
        self._say(f"stop requested: sending a polite stop to pid {child.pid}", reason="watchdog_stop", pid=child.pid)
        seen = self._stop_signals
        ended = child.end(grace, hangup=self._hangup, escalate=lambda: self._stop_signals > seen)
        if ended is Ended.ESCALATED:
            self._say(f"second stop request: killed pid {child.pid}", reason="force_kill", pid=child.pid)
        elif ended is Ended.TIMED_OUT:
            self._say(f"pid {child.pid} did not stop within {grace:g} s; killed it", reason="force_kill",
                      pid=child.pid, level=logging.WARNING)

    def _own_heartbeat(self, pid: int, started_wall: float) -> Heartbeat | None:
        """The heartbeat if it belongs to this child (same pid, or written since it started)."""
        beat = read_heartbeat(self.workspace.heartbeat)
        return beat if beat is not None and beat.belongs_to(pid, started_wall) else None

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


def _notify_in_args(run_args: Sequence[str]) -> list[str]:
    """The session's ``--notify URL`` arguments: the watchdog alerts there too."""
    urls = []
    for i, arg in enumerate(run_args):
        if arg == "--notify" and i + 1 < len(run_args):
            urls.append(run_args[i + 1])
        elif arg.startswith("--notify="):
            urls.append(arg.split("=", 1)[1])
    return urls


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
    notifier = None
    from laptop_agents.console.alerts import Notifier, notify_urls

    urls = notify_urls(_notify_in_args(run_args), ctx.config.system.notify_urls)
    if urls and not problems:
        try:
            notifier = Notifier.from_urls(urls)
        except ValueError as exc:
            problems.append(str(exc))
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
        result = Watchdog(command, ws, options, log=ctx.log, notifier=notifier).run(install_signals=True)
    finally:
        guard.release()
        if notifier is not None:
            notifier.close(5.0)
    ctx.log.info("watchdog end", extra={"fields": {
        "exit_code": result.exit_code, "reason": result.reason, "starts": result.starts}})
    return result.exit_code
