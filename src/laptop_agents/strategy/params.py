"""Strategy parameter files: validated models, presets, per-symbol and flat overrides.

Why pydantic with ``extra="forbid"``: a mistyped key in a strategy file
(``stop_atr_mul``) must stop the run with one clear line rather than silently
trade the default. Every error becomes a :class:`StrategyConfigError` whose
message names the key, the value and what is allowed.

Units (the seed system mixed percent and fraction; here each field says which):

- ``risk.risk_pct`` is a **percent** of equity (1.0 = 1 %).
- ``derivatives_gates.*_funding_8h`` are **percent per 8 h** (0.05 = 0.05 %,
  i.e. a funding rate of 0.0005 as a fraction). The spec's HALT threshold
  "|funding| >= 0.001" (fraction) is ``halt_funding_8h = 0.1`` percent. With
  the spec's defaults read as fractions (5 % and 3 % per 8 h) the NO_TRADE and
  HALF_SIZE gates could never fire before the 0.1 % halt; read as percent they
  order naturally: half size 0.03 % < no trade 0.05 % < halt 0.1 %.
- ``entry_band_pct`` and ``eq_tolerance_pct`` are **fractions** of price
  (0.001 = 10 bps), as in the seed system's code.
- ``stop_bps`` is in basis points (100 = 1 %).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from laptop_agents.domain.documents import MAX_BYTES, DocumentError, parse_document, type_name
from laptop_agents.domain.errors import UsageError
from laptop_agents.domain.models import DomainError
from laptop_agents.domain.symbols import normalize_symbol

PRESET_NAMES: tuple[str, ...] = ("default", "tight", "sma_cross")
PRESET_SUMMARIES: dict[str, str] = {
    "default": "the Supervisor pipeline (EMA trend, funding gates, CVD, pullback-ribbon and sweep setups), "
    "the spec's defaults",
    "tight": "the Supervisor, stricter: half the risk, a higher reward/risk, CVD-confirmed sweeps, "
    "no new trades in TREND_HIGHVOL",
    "sma_cross": "fast/slow SMA crossover, always in the market, reverses on a cross (for comparisons)",
}
REGIMES: tuple[str, ...] = ("CHOP_LOWVOL", "NORMAL", "TREND_HIGHVOL")
Regime = Literal["CHOP_LOWVOL", "NORMAL", "TREND_HIGHVOL"]


EQUITY_MEANING = "starting equity (USD/USDT) of a fresh state, unless --equity"
RISK_PCT_MEANING = "risk per trade, percent of equity (1.0 = 1 %), unless --risk-pct"


class Parameters(BaseModel):
    """A convenient base for a strategy's parameters: unknown keys are refused
    (a mistyped key in a parameter file must stop the run, not be ignored)
    and values are frozen. Users import it from :mod:`laptop_agents.strategy.base`;
    it lives here, beside the other pydantic models, because the compiled core
    (mypyc) builds ``base`` and pydantic models stay interpreted."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrategyConfigError(UsageError):
    """A bad strategy file, preset name or parameter override; the message is
    the one line shown to the user."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- the Supervisor's parameters ---------------------------------------------


class EngineParams(_Strict):
    """Bar counts of the pipeline's timers."""

    pending_trigger_max_bars: int = Field(24, ge=1, le=100_000, description="a limit setup not filled within this many bars is cancelled")
    derivatives_refresh_bars: int = Field(6, ge=1, le=100_000, description="bars between refreshes of the funding-rate gates")
    cooldown_bars: int = Field(5, ge=0, le=100_000, description="bars without new entries after a no-go")


class FundingGates(_Strict):
    """Funding-rate gates in PERCENT per 8 h (0.05 = 0.05 %)."""

    halt_funding_8h: float = Field(0.1, gt=0, le=5, description="|funding| (% per 8 h) at or above which trading halts")
    no_trade_funding_8h: float = Field(0.05, gt=0, le=5, description="|funding| (% per 8 h) at or above which no new trade is taken")
    half_size_funding_8h: float = Field(0.03, gt=0, le=5, description="|funding| (% per 8 h) at or above which trades are half size")

    @model_validator(mode="after")
    def _ordered(self) -> FundingGates:
        if not self.half_size_funding_8h <= self.no_trade_funding_8h <= self.halt_funding_8h:
            raise ValueError(
                "need half_size_funding_8h <= no_trade_funding_8h <= halt_funding_8h "
                f"(got {self.half_size_funding_8h}, {self.no_trade_funding_8h}, {self.halt_funding_8h})"
            )
        return self


class MarketParams(_Strict):
    """MarketIntake: trend EMAs, ATR and the volatility regime thresholds
    (atr/close, as fractions)."""

    ema_fast: int = Field(20, ge=1, le=10_000, description="fast trend EMA in bars (below ema_slow); the ribbon entry price")
    ema_slow: int = Field(50, ge=2, le=10_000, description="slow trend EMA in bars")
    atr_period: int = Field(14, ge=1, le=10_000, description="ATR period in bars (stops and the volatility regime)")
    lowvol_atr_ratio: float = Field(0.002, ge=0, le=1, description="ATR/close below this is the CHOP_LOWVOL regime")
    highvol_atr_ratio: float = Field(0.006, ge=0, le=1, description="ATR/close above this is the TREND_HIGHVOL regime")
    # Regimes in which no new setup is taken (empty = trade every regime).
    block_regimes: tuple[Regime, ...] = Field((), description="regimes in which no new setup is taken (empty: none)")

    @model_validator(mode="after")
    def _ordered(self) -> MarketParams:
        if self.ema_fast >= self.ema_slow:
            raise ValueError(f"need ema_fast < ema_slow (got {self.ema_fast} and {self.ema_slow})")
        if self.lowvol_atr_ratio > self.highvol_atr_ratio:
            raise ValueError(
                f"need lowvol_atr_ratio <= highvol_atr_ratio (got {self.lowvol_atr_ratio} and {self.highvol_atr_ratio})"
            )
        return self


class CvdParams(_Strict):
    """CvdDivergence: how many previous lows/highs a new extreme is compared with."""

    lookback: int = Field(4, ge=1, le=1000, description="previous lows/highs a new extreme is compared with (CVD divergence)")


class RibbonParams(_Strict):
    """Setup A, pullback to the EMA ribbon in a trend (limit entry at the fast EMA)."""

    enabled: bool = Field(True, description="take pullback-ribbon setups (limit entry at the fast EMA in a trend)")
    entry_band_pct: float = Field(
        0.001, ge=0, le=0.05, description="how near the fast EMA (fraction of price) a bar must come to set up"
    )
    stop_atr_mult: float = Field(1.5, gt=0, le=50, description="stop distance from the entry, in ATRs")
    tp_r_mult: float = Field(2.0, gt=0, le=50, description="take-profit distance in R (multiples of the stop distance)")
    # When set, the stop is this many bps from the entry instead of ATR * stop_atr_mult.
    stop_bps: float | None = Field(
        None, gt=0, le=5000, description="fixed stop distance in bps instead of ATRs (null: ATR-based)"
    )
    trailing: bool = Field(True, description="trailing stop (activates at +0.5 R, trails 1.5 R behind the close)")


class SweepParams(_Strict):
    """Setup B, liquidity sweep and reclaim of the ``lookback_bars`` high/low."""

    enabled: bool = Field(True, description="take liquidity-sweep setups (market entry when a swept level is reclaimed)")
    eq_tolerance_pct: float = Field(
        0.0008, ge=0, le=0.05, description="a pierce within this fraction of price is an equal high/low, not a sweep"
    )
    tp_r_mult: float = Field(2.0, gt=0, le=50, description="take-profit in R when the VWAP target is not on the profitable side")
    stop_atr_mult: float = Field(0.5, gt=0, le=50, description="stop beyond the swept level, in ATRs")
    min_vol_ratio: float = Field(
        0.5, ge=0, le=100, description="sweep bar volume must be at least this times the mean volume"
    )
    lookback_bars: int = Field(10, ge=2, le=10_000, description="bars whose high/low a sweep pierces")
    require_cvd_confirm: bool = Field(False, description="require a CVD divergence in the sweep's direction")
    vwap_bars: int = Field(60, ge=1, le=10_000, description="VWAP window in bars (the sweep's target)")
    volume_mean_bars: int = Field(20, ge=1, le=10_000, description="window of the mean volume, in bars")
    ema_filter_fast: int = Field(9, ge=1, le=10_000, description="fast EMA of the trend filter (below ema_filter_slow)")
    ema_filter_slow: int = Field(20, ge=2, le=10_000, description="slow EMA of the trend filter: an opposing order blocks")
    stop_bps: float | None = Field(
        None, gt=0, le=5000, description="fixed stop distance in bps instead of ATRs (null: ATR-based)"
    )
    trailing: bool = Field(True, description="trailing stop (activates at +0.5 R, trails 1.5 R behind the close)")

    @model_validator(mode="after")
    def _ordered(self) -> SweepParams:
        if self.ema_filter_fast >= self.ema_filter_slow:
            raise ValueError(
                f"need ema_filter_fast < ema_filter_slow (got {self.ema_filter_fast} and {self.ema_filter_slow})"
            )
        return self


class SetupsParams(_Strict):
    pullback_ribbon: RibbonParams = RibbonParams()
    sweep_invalidation: SweepParams = SweepParams()


class RiskParams(_Strict):
    """Starting equity, risk per trade in PERCENT (1.0 = 1 %), minimum reward/risk."""

    equity: float = Field(10_000.0, gt=0, le=1e12, description=EQUITY_MEANING)
    risk_pct: float = Field(1.0, gt=0, le=10, description=RISK_PCT_MEANING)
    rr_min: float = Field(1.5, ge=0, le=50, description="a setup needs at least this reward/risk")


class SupervisorParams(_Strict):
    """Everything the Supervisor pipeline needs (after symbol overrides)."""

    strategy: Literal["supervisor"] = "supervisor"
    engine: EngineParams = EngineParams()
    derivatives_gates: FundingGates = FundingGates()
    market: MarketParams = MarketParams()
    cvd: CvdParams = CvdParams()
    setups: SetupsParams = SetupsParams()
    risk: RiskParams = RiskParams()


# -- sma_cross ---------------------------------------------------------------


class SmaRiskParams(_Strict):
    equity: float = Field(10_000.0, gt=0, le=1e12, description=EQUITY_MEANING)
    risk_pct: float = Field(1.0, gt=0, le=10, description=RISK_PCT_MEANING)


class SmaCrossParams(_Strict):
    """Fast/slow SMA crossover, always in the market.

    Sizing: the position risks ``risk_pct`` % of equity over a stop distance of
    ``stop_bps`` basis points (defaults 1 % over 100 bps = 1x notional). The
    stop is attached to the order as a protective stop only when
    ``attach_stop`` is true (the CLI's ``--stop-bps`` sets it); a target at
    ``tp_r_mult`` R is attached only when ``tp_r_mult`` is set (``--tp-r``).
    """

    strategy: Literal["sma_cross"] = "sma_cross"
    fast: int = Field(10, ge=1, le=10_000, description="fast SMA in bars (below slow)")
    slow: int = Field(30, ge=2, le=10_000, description="slow SMA in bars")
    stop_bps: float = Field(100.0, gt=0, le=5000, description="stop distance in bps that sizes the position")
    attach_stop: bool = Field(False, description="send that stop with the order (--stop-bps sets it)")
    tp_r_mult: float | None = Field(None, gt=0, le=50, description="take-profit in R (null: none; --tp-r sets it)")
    risk: SmaRiskParams = SmaRiskParams()

    @model_validator(mode="after")
    def _ordered(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"need fast < slow (got fast={self.fast}, slow={self.slow})")
        return self


StrategyParams = SupervisorParams | SmaCrossParams
_MODELS: dict[str, type[SupervisorParams] | type[SmaCrossParams]] = {
    "supervisor": SupervisorParams,
    "sma_cross": SmaCrossParams,
}

# Short names accepted as the first part of a dotted override ("sweep.tp_r_mult").
SECTION_ALIASES: dict[str, tuple[str, ...]] = {
    "ribbon": ("setups", "pullback_ribbon"),
    "pullback_ribbon": ("setups", "pullback_ribbon"),
    "sweep": ("setups", "sweep_invalidation"),
    "sweep_invalidation": ("setups", "sweep_invalidation"),
    "gates": ("derivatives_gates",),
    "funding": ("derivatives_gates",),
}


# -- error formatting ----------------------------------------------------------


def _allowed(err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return f"allowed: {ctx['expected']}"
    for bound, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if bound in ctx:
            return f"must be {word} {ctx[bound]}"
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub)model that owns the last element of ``loc``."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _one_line(where: str, exc: ValidationError, model: type[BaseModel], prefix: str = "") -> StrategyConfigError:
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    key = prefix + ".".join(str(p) for p in loc)
    if err.get("type") == "extra_forbidden":
        names = _fields_at(model, loc) + (["symbols"] if len(loc) == 1 else [])
        known = ", ".join(names) or "(none)"
        return StrategyConfigError(f"{where}: unknown key {key!r}; allowed keys here: {known}")
    if err.get("type") == "missing":
        return StrategyConfigError(f"{where}: missing required key {key!r} (it has no default)")
    if not loc or err.get("type") == "value_error" and not isinstance(err.get("input"), (int, float, str, bool)):
        # A cross-field rule (model validator): its message names the fields.
        section = f" in {key!r}" if key else ""
        return StrategyConfigError(f"{where}: bad values{section}: {_allowed(err)}")
    return StrategyConfigError(f"{where}: bad value {key}={err.get('input')!r}: {_allowed(err)}")


# -- loading -----------------------------------------------------------------


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _read_file(path: Path, where: str) -> dict[str, Any]:
    """A strategy file's mapping. Bounded read and parse (see :mod:`~laptop_agents.domain.documents`):
    garbage, deep nesting and alias bombs are one line, never a traceback or a hang.
    ``null``, an empty file or a list are refused: they would silently mean "the defaults"."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise StrategyConfigError(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    try:
        data = parse_document(raw, yaml_syntax=path.suffix.lower() in (".yaml", ".yml"))
    except DocumentError as exc:
        raise StrategyConfigError(f"{where}: {exc}") from None
    if not isinstance(data, dict):
        raise StrategyConfigError(f"{where}: a strategy file must hold a mapping of parameters, got {type_name(data)}")
    return data


def _read_preset(name: str) -> dict[str, Any]:
    text = resources.files("laptop_agents.strategy").joinpath("presets", f"{name}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def read_raw(name: str, file: Path | None = None) -> tuple[dict[str, Any], str]:
    """The raw parameter mapping and a label for messages: from ``file`` when
    given, else the built-in preset ``name``, else ``name`` as a file path."""
    if file is not None:
        path = Path(file)
        return _read_file(path, f"strategy file {str(path)!r}"), f"strategy file {str(path)!r}"
    if name in PRESET_NAMES:
        return _read_preset(name), f"strategy preset {name!r}"
    path = Path(name)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise StrategyConfigError(f"strategy file {name!r} does not exist")
        return _read_file(path, f"strategy file {name!r}"), f"strategy file {name!r}"
    raise StrategyConfigError(
        f"unknown strategy {name!r}: use one of {', '.join(PRESET_NAMES)}, a path to a .json/.yaml strategy file, "
        "a strategy class as FILE.py:ClassName or an installed strategy's name"
    )


def parse_params(raw: Mapping[str, Any], symbol: str, where: str = "strategy parameters") -> StrategyParams:
    """Validate a raw parameter mapping of a built-in strategy (its
    ``strategy`` key picks the model) and apply its ``symbols.<SYMBOL>`` section.

    Every symbol section is validated (a typo in the BTCUSD section is an
    error even while trading BTCUSDT); only ``symbol``'s is applied.
    """
    kind = raw.get("strategy", "supervisor")
    if kind not in _MODELS:
        raise StrategyConfigError(f"{where}: bad value strategy={kind!r}: allowed: {', '.join(map(repr, _MODELS))}")
    params = parse_model_params(_MODELS[kind], raw, symbol, where, kind=kind)
    assert isinstance(params, SupervisorParams | SmaCrossParams)
    return params


def parse_model_params(
    model: type[BaseModel], raw: Mapping[str, Any], symbol: str, where: str, *, kind: str | None = None
) -> BaseModel:
    """:func:`parse_params` for any parameter model (a user's strategy too)."""
    data = dict(raw)
    symbols = data.pop("symbols", None) or {}
    if not isinstance(symbols, Mapping):
        raise StrategyConfigError(f"{where}: 'symbols' must map a symbol to its overrides, got {type(symbols).__name__}")
    try:
        base = model.model_validate(data)
    except ValidationError as exc:
        raise _one_line(where, exc, model) from None
    wanted = normalize_symbol(symbol)
    chosen = base
    for raw_sym, over in symbols.items():
        try:
            sym = normalize_symbol(str(raw_sym))
        except DomainError as exc:
            raise StrategyConfigError(f"{where}: bad key symbols.{raw_sym}: {exc}") from None
        if not isinstance(over, Mapping):
            raise StrategyConfigError(f"{where}: symbols.{raw_sym} must be a mapping of overrides")
        if "strategy" in over and over["strategy"] != kind:
            raise StrategyConfigError(f"{where}: symbols.{raw_sym} cannot change 'strategy' (is {kind!r})")
        try:
            merged = model.model_validate(_deep_merge(data, over))
        except ValidationError as exc:
            raise _one_line(where, exc, model, prefix=f"symbols.{raw_sym}.") from None
        if sym == wanted:
            chosen = merged
    return chosen


def _leaf_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.extend(_leaf_paths(v, (*prefix, k)))
        else:
            out.append((*prefix, k))
    return out


PM = TypeVar("PM", bound=BaseModel)


def apply_overrides(
    params: PM, overrides: Mapping[str, Any], where: str = "parameter overrides", *, label: str | None = None
) -> PM:
    """Return ``params`` with overrides applied and re-validated.

    A flat name (``tp_r_mult``) sets that key in every section that has it; a
    dotted name targets one (``sweep.tp_r_mult``, ``setups.pullback_ribbon.stop_atr_mult``;
    ``ribbon``, ``sweep`` and ``gates`` are accepted section shorthands).
    """
    if not overrides:
        return params
    model = type(params)
    builtin = model in _MODELS.values()  # their 'strategy' key names the model; it is not a parameter
    if label is None:
        label = getattr(params, "strategy", "") if builtin else model.__name__
    tree = params.model_dump()
    leaves = [p for p in _leaf_paths(tree) if not (builtin and p[0] == "strategy")]
    for name, value in overrides.items():
        parts = tuple(str(name).split("."))
        if len(parts) == 1:
            targets = [p for p in leaves if p[-1] == parts[0]]
        else:
            head = SECTION_ALIASES.get(parts[0], (parts[0],))
            full = (*head, *parts[1:])
            targets = [full] if full in leaves else []
        if not targets:
            known = sorted({p[-1] for p in leaves})
            raise StrategyConfigError(
                f"{where}: unknown parameter {name!r} for strategy {label!r}; known names: {', '.join(known)}"
            )
        for path in targets:
            node: dict[str, Any] = tree
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise _one_line(where, exc, model) from None


# -- description (``laptop-agents strategies``) ---------------------------------


@dataclass(frozen=True)
class ParamInfo:
    """One parameter as a user sees it: dotted name, value, what is allowed, what it does."""

    name: str
    value: str
    allowed: str
    meaning: str


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _allowed_values(annotation: Any, metadata: list[Any]) -> str:
    """What a field accepts, read from its type and its pydantic bounds."""
    optional = False
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        optional = len(args) < len(get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    if annotation is bool:
        text = "true or false"
    elif get_origin(annotation) is Literal:
        text = "one of " + ", ".join(map(str, get_args(annotation)))
    elif annotation is str:
        text = "text"
    elif get_origin(annotation) is tuple:
        choices = [str(c) for a in get_args(annotation) if a is not Ellipsis for c in get_args(a)]
        text = "list of " + ", ".join(choices)
    else:
        lo = hi = ""
        for m in metadata:
            for attr, op, low in (("ge", "<=", True), ("gt", "<", True), ("le", "<=", False), ("lt", "<", False)):
                bound = getattr(m, attr, None)
                if bound is not None:
                    if low:
                        lo = f"{_show(bound)} {op} "
                    else:
                        hi = f" {op} {_show(bound)}"
        kind = "integer" if annotation is int else "number"
        text = f"{kind} {lo}x{hi}" if lo or hi else kind
    return text + (" or null" if optional else "")


def describe_params(params: BaseModel, prefix: str = "") -> list[ParamInfo]:
    """Every parameter of ``params`` (nested sections as dotted names), with the
    allowed values and the meaning declared on the models above."""
    out: list[ParamInfo] = []
    for name, field in type(params).model_fields.items():
        if name == "strategy":
            continue
        value = getattr(params, name)
        if isinstance(value, BaseModel):
            out.extend(describe_params(value, f"{prefix}{name}."))
        else:
            allowed = _allowed_values(field.annotation, list(field.metadata))
            out.append(ParamInfo(prefix + name, _show(value), allowed, field.description or ""))
    return out


def describe_model(model: type[BaseModel], prefix: str = "") -> list[ParamInfo]:
    """:func:`describe_params` of a model's defaults; a parameter without a
    default shows ``(required)``."""
    try:
        return describe_params(model.model_validate({}), prefix)
    except ValidationError:
        pass
    out: list[ParamInfo] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(describe_model(ann, f"{prefix}{name}."))
            continue
        value = "(required)" if field.is_required() else _show(field.get_default(call_default_factory=True))
        out.append(ParamInfo(prefix + name, value, _allowed_values(ann, list(field.metadata)), field.description or ""))
    return out


def describe_strategy(name: str, file: Path | None = None) -> tuple[str, list[ParamInfo], list[str]]:
    """A preset (or strategy file): its kind, its base parameters and its
    per-symbol overrides as ``SYMBOL: key=value`` lines. Validates everything
    first, so a bad file is the usual one-line :class:`StrategyConfigError`."""
    raw, where = read_raw(name, file)
    parse_params(raw, "BTCUSDT", where)  # every symbol section validated
    data = {k: v for k, v in raw.items() if k != "symbols"}
    kind = str(data.get("strategy", "supervisor"))
    base = _MODELS[kind].model_validate(data)
    overrides: list[str] = []
    for sym, over in (raw.get("symbols") or {}).items():
        pairs = [f"{'.'.join(path)}={_show(_dig(over, path))}" for path in _leaf_paths(over)]
        overrides.append(f"{sym}: {', '.join(pairs) if pairs else '(none)'}")
    return kind, describe_params(base), overrides


def _dig(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for part in path:
        node = node[part]
    return node
