"""report layer: run output files (RunWriter), summary.json, report.html, console summary.

``RunWriter`` is used by the backtest and by the live session; ``build_report``
rebuilds a run directory's summary and report from its files.
"""

from laptop_agents.report.build import build_report
from laptop_agents.report.run_data import ReportError
from laptop_agents.report.writer import RunWriter

__all__ = ["ReportError", "RunWriter", "build_report"]
