"""Strategy layer: incremental indicators, the strategy base, the Supervisor
and its agents, ``sma_cross``, validated strategy files and users' strategy
classes (``--strategy file.py:ClassName`` or an installed entry point, see
:mod:`~laptop_agents.strategy.loader`).

Public entry points (the rest of the product calls only these):

- :func:`build_strategy` — a ready ``Strategy`` for an :class:`AppConfig`.
- :func:`load_strategy_params` — the validated parameters (symbol overrides and
  CLI flags applied).
- :func:`strategy_names` — the built-in presets.
- :class:`BaseStrategy` — what a user's strategy derives from.
- :class:`StrategyConfigError` — one-line error for any bad strategy input.

For a user's strategy class the parameters come from its ``Params`` model:
the defaults, or ``--strategy-file`` validated by that model (with the same
``symbols.<SYMBOL>`` sections).

Precedence of parameters, highest first: ``build_strategy(overrides=...)``
(a validate grid) > CLI ``--stop-bps`` / ``--tp-r`` > the file's
``symbols.<SYMBOL>`` section > the file's base values. ``risk_pct`` and the
starting equity come from ``config.risk`` when set there (``--risk-pct``,
``--equity``), else from the file's ``risk`` section (the broker's starting
equity: :func:`laptop_agents.engine.starting_equity`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel

from laptop_agents.domain.contracts import Strategy
from laptop_agents.domain.symbols import instrument_for
from laptop_agents.strategy import loader
from laptop_agents.strategy.base import BaseStrategy, Parameters
from laptop_agents.strategy.loader import StrategyPlugin
from laptop_agents.strategy.params import (
    PRESET_NAMES,
    SmaCrossParams,
    StrategyConfigError,
    StrategyParams,
    SupervisorParams,
    apply_overrides,
    parse_model_params,
    parse_params,
    read_raw,
)
from laptop_agents.strategy.sma_cross import SmaCross
from laptop_agents.strategy.supervisor import Supervisor

if TYPE_CHECKING:  # the strategy layer reads the config; it does not import its machinery
    from laptop_agents.config import AppConfig, StrategyConfig

__all__ = [
    "BaseStrategy",
    "Parameters",
    "SmaCross",
    "SmaCrossParams",
    "StrategyConfigError",
    "StrategyParams",
    "Supervisor",
    "SupervisorParams",
    "build_strategy",
    "load_strategy_params",
    "resolve_strategy",
    "strategy_names",
]


def strategy_names() -> list[str]:
    """The built-in strategy presets selectable by ``--strategy``."""
    return list(PRESET_NAMES)


def resolve_strategy(config: StrategyConfig) -> StrategyPlugin | None:
    """The user's strategy class ``config.name`` selects (``file.py:ClassName``
    or an installed entry point), loaded and checked; None for a built-in."""
    return loader.resolve(config.name)


def _label(config: StrategyConfig, plugin: StrategyPlugin | None) -> str:
    if plugin is not None:
        return plugin.name
    return str(config.file) if config.file is not None else config.name


def load_strategy_params(
    config: StrategyConfig, symbol: str, plugin: StrategyPlugin | None = None
) -> StrategyParams | BaseModel:
    """Validated parameters for ``symbol``: the preset or file named by
    ``config`` (``file`` wins over ``name``), its ``symbols.<SYMBOL>`` section,
    then the CLI's ``stop_bps`` / ``tp_r``. For a user's strategy class
    (``plugin``, else resolved from ``config``) its ``Params`` model validates
    ``file`` (or gives the defaults).

    ``stop_bps`` replaces the ATR-based stop of both Supervisor setups by a
    fixed distance (and, for ``sma_cross``, sets its stop distance and attaches
    the stop to the order); ``tp_r`` sets every ``tp_r_mult``. A user's
    strategy takes them when its parameters have these names.
    """
    if plugin is None:
        plugin = resolve_strategy(config)
    params: StrategyParams | BaseModel
    if plugin is not None:
        if config.file is not None:
            raw, where = read_raw(config.name, config.file)
        else:
            raw, where = {}, f"{plugin.where} parameters"
        params = parse_model_params(plugin.params_model, raw, symbol, where)
    else:
        raw, where = read_raw(config.name, config.file)
        params = parse_params(raw, symbol, where)
    cli: dict[str, object] = {}
    if config.tp_r is not None:
        cli["tp_r_mult"] = config.tp_r
    if config.stop_bps is not None:
        cli["stop_bps"] = config.stop_bps
        if isinstance(params, SmaCrossParams):
            cli["attach_stop"] = True
    return apply_overrides(params, cli, "command-line strategy options", label=plugin.name if plugin else None)


def _risk_value(params: object, key: str) -> float | None:
    value = getattr(getattr(params, "risk", None), key, None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def build_strategy(config: AppConfig, *, overrides: Mapping[str, float] | None = None) -> Strategy:
    """A fresh strategy for ``config`` (its ``strategy``, ``risk`` and
    ``trading.symbol`` sections).

    ``overrides`` are flat parameter names from a validate grid, e.g.
    ``{"stop_atr_mult": 1.5, "tp_r_mult": 2}``: a flat name applies to every
    section that has it, a dotted one (``"sweep.tp_r_mult"``) to one section.
    Raises :class:`StrategyConfigError` on any bad name or value, and on any
    broken user strategy (one line naming the file or class and the problem).
    """
    symbol = config.trading.symbol
    plugin = resolve_strategy(config.strategy)
    params = load_strategy_params(config.strategy, symbol, plugin)
    if overrides:
        params = apply_overrides(params, overrides, "strategy overrides", label=plugin.name if plugin else None)
    instrument = instrument_for(symbol)
    name = _label(config.strategy, plugin)
    rp = config.risk.risk_pct if config.risk.risk_pct is not None else _risk_value(params, "risk_pct")
    mn, ml = config.risk.max_position_notional, config.risk.max_leverage
    if plugin is not None:
        return plugin.build(params, instrument, risk_pct=rp if rp is not None else 1.0, max_notional=mn,
                            max_leverage=ml)  # fmt: skip
    if isinstance(params, SmaCrossParams):
        return SmaCross(params, instrument, risk_pct=rp, max_notional=mn, max_leverage=ml, name=name)
    assert isinstance(params, SupervisorParams)
    return Supervisor(params, instrument, risk_pct=rp, max_notional=mn, max_leverage=ml, name=name)
