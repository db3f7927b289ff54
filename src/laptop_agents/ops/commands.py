"""Small operational commands: ``stop`` and ``config show``."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from laptop_agents.config import effective_rows
from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import ExitCode
from laptop_agents.fileio import io_error_line
from laptop_agents.lock import WorkspaceLock
from laptop_agents.ops.killswitch import request_stop


def _running(ctx: CommandContext) -> list[str]:
    """What holds the workspace now: ``session pid N`` and/or ``watchdog pid N``."""
    ws = ctx.workspace
    found = []
    for what, path in (("session", ws.lock), ("watchdog", ws.root / "watchdog.lock")):
        lock = WorkspaceLock(path, what=what)
        if lock.in_use():
            pid = (lock.holder() or {}).get("pid")
            found.append(f"{what} pid {pid}" if pid is not None else what)
    return found


def cmd_stop(ctx: CommandContext) -> int:
    """Arm the kill switch (``<workspace>/kill.txt``) if a session or watchdog runs.

    With nothing running, an armed switch would only make the next start
    refuse, so it is armed only with ``--force``.
    """
    reason = getattr(ctx.args, "reason", "user stop")
    force = bool(getattr(ctx.args, "force", False))
    flatten = getattr(ctx.args, "flatten", None)
    kill_file = ctx.workspace.kill_file
    running = _running(ctx)
    if not running and not force:
        head = (f"nothing is running on workspace {ctx.workspace.root} (no live session or watchdog holds "
                f"its lock)")
        if kill_file.exists():
            print(f"{head}; a stop request is still pending in {kill_file}: the next session will refuse to "
                  f"start until you remove that file.")
        else:
            print(f"{head}; the kill switch was not armed. `laptop-agents stop --force` arms it anyway.")
        ctx.log.info("stop: nothing running", extra={"fields": {"workspace": str(ctx.workspace.root)}})
        return ExitCode.OK
    try:
        request_stop(kill_file, reason, flatten=flatten)
    except OSError as exc:
        print(io_error_line(exc, kill_file, "cannot arm the kill switch"), file=sys.stderr)
        return ExitCode.DISK_FULL
    if running:
        print(f"stop requested: {kill_file} ({', '.join(running)} will stop within a few seconds)")
    else:
        print(f"nothing is running, but the kill switch is armed (--force): {kill_file}. The next session "
              f"will refuse to start until you remove that file.")
    ctx.log.info("stop requested", extra={"fields": {"kill_file": str(kill_file), "reason": reason,
                                                      "running": running, "force": force}})
    return ExitCode.OK


def cmd_config(ctx: CommandContext) -> int:
    """Print the effective configuration with the source of every value."""
    table = Table(title=f"effective configuration (profile {ctx.loaded.profile})")
    table.add_column("key")
    table.add_column("value")
    table.add_column("source")
    table.add_row("workspace", str(ctx.workspace.root), "flag/env/default")
    for key, value, source in effective_rows(ctx.loaded):
        table.add_row(key, value, source)
    Console(width=120).print(table)
    return ExitCode.OK
