"""``laptop-agents report RUN_DIR``: rebuild report.html and summary.json from a run's files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import ExitCode
from laptop_agents.report.build import build_report
from laptop_agents.report.console import print_summary
from laptop_agents.report.files import SUMMARY_JSON
from laptop_agents.report.run_data import ReportError


def cmd_report(ctx: CommandContext) -> int:
    """A relative RUN_DIR that does not exist is also looked up under <workspace>/runs."""
    raw = Path(ctx.args.run_dir)
    run_dir = raw
    if not raw.is_dir() and not raw.is_absolute() and (ctx.workspace.runs_dir / raw).is_dir():
        run_dir = ctx.workspace.runs_dir / raw
    try:
        path = build_report(run_dir, plotly=ctx.config.system.report_plotly)
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except OSError as exc:
        print(f"report: cannot write into {run_dir}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.DISK_FULL
    summary = json.loads((run_dir / SUMMARY_JSON).read_text(encoding="utf-8"))
    print_summary(summary)
    print(f"report: {path}")
    ctx.log.info("report rebuilt", extra={"fields": {"run_dir": str(run_dir), "report": str(path)}})
    return ExitCode.OK
