"""Small operational commands: ``stop`` and ``config show``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from laptop_agents.config import effective_rows
from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import ExitCode
from laptop_agents.ops.killswitch import request_stop


def cmd_stop(ctx: CommandContext) -> int:
    """Create the kill file at the workspace's absolute path."""
    reason = getattr(ctx.args, "reason", "user stop")
    request_stop(ctx.workspace.kill_file, reason)
    print(f"stop requested: {ctx.workspace.kill_file}")
    ctx.log.info("stop requested", extra={"fields": {"kill_file": str(ctx.workspace.kill_file), "reason": reason}})
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
