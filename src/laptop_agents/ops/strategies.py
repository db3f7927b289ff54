"""``laptop-agents strategies``: the built-in strategies, the installed ones
(entry points) and every parameter a strategy file may set, read from the
validated models themselves (:mod:`laptop_agents.strategy.params`, a user
strategy's ``Params``), so the listing cannot drift from what a strategy file
is checked against. ``laptop-agents strategies path/to/file.py:ClassName``
loads and checks a user's strategy class and lists its parameters."""

from __future__ import annotations

import sys
from pathlib import Path

from laptop_agents.context import CommandContext
from laptop_agents.exit_codes import ExitCode
from laptop_agents.strategy import loader
from laptop_agents.strategy.params import (
    PRESET_NAMES,
    PRESET_SUMMARIES,
    ParamInfo,
    StrategyConfigError,
    describe_model,
    describe_strategy,
)

FOOTER = """\
Choose one with --strategy NAME, or write a strategy file (JSON/YAML) with
these keys and pass --strategy-file FILE; an unknown key or a value outside
its range is an error. Per-symbol overrides go under `symbols: {BTCUSD: {...}}`.
--stop-bps and --tp-r override the file; `validate --grid` takes these names
(flat, e.g. tp_r_mult, or dotted, e.g. sweep.tp_r_mult).
Your own strategy class: --strategy FILE.py:ClassName, its parameters from
--strategy-file (see docs/strategies.md)."""


def _table(rows: list[ParamInfo]) -> list[str]:
    head = ParamInfo("parameter", "value", "allowed", "meaning")
    cols = [head, *rows]
    w_name = max(len(r.name) for r in cols)
    w_value = max(len(r.value) for r in cols)
    w_allowed = max(len(r.allowed) for r in cols)
    return [
        f"  {r.name:<{w_name}}  {r.value:<{w_value}}  {r.allowed:<{w_allowed}}  {r.meaning}".rstrip() for r in cols
    ]


def _plugin_lines(plugin: loader.StrategyPlugin, label: str) -> list[str]:
    return [f"{label} -- {plugin.summary}", *_table(describe_model(plugin.params_model)), ""]


def strategy_listing(names: list[str]) -> list[str]:
    """The text of the listing for presets, strategy files or strategy
    classes ``names``."""
    lines: list[str] = []
    for name in names:
        plugin = loader.resolve(name)
        if plugin is not None:
            lines.extend(_plugin_lines(plugin, name))
            continue
        file = None if name in PRESET_NAMES else Path(name)
        kind, params, overrides = describe_strategy(name, file)
        summary = PRESET_SUMMARIES.get(name, f"a {kind} strategy file")
        lines.append(f"{name} -- {summary}")
        lines.extend(_table(params))
        if overrides:
            lines.append("  per-symbol overrides: " + "; ".join(overrides))
        lines.append("")
    lines.append(FOOTER)
    return lines


def _installed_listing() -> list[str]:
    """Strategies of installed packages; a broken one is named, not fatal."""
    lines: list[str] = []
    for name in loader.installed():
        try:
            lines.extend(_plugin_lines(loader.load_installed(name), f"{name} (installed)"))
        except StrategyConfigError as exc:
            lines.extend([f"{name} (installed) -- cannot be used: {exc}", ""])
    return lines


def cmd_strategies(ctx: CommandContext) -> int:
    """List every built-in strategy, or the one preset or file named."""
    wanted = getattr(ctx.args, "strategy_name", None)
    try:
        lines = strategy_listing([wanted] if wanted else list(PRESET_NAMES))
        if not wanted:
            lines[-1:-1] = _installed_listing()
    except StrategyConfigError as exc:
        print(f"strategy error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    print("\n".join(lines))
    return ExitCode.OK
