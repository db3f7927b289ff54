"""A search space read from a strategy's own parameter model.

One function turns any pydantic parameter model into a space
(:func:`space_from_params`), so a built-in strategy and a user's plug-in
strategy are searched the same way:

- **ranges** come from the Field constraints (``ge``/``gt``/``le``/``lt``),
  **steps** from ``multiple_of``, **choices** from ``bool`` and ``Literal``
  fields; a field without a finite range, an optional field (``float | None``)
  and a list field are not searched unless a hint says how;
- a field can carry a **search hint**, ``Field(..., json_schema_extra={"search":
  {"low": 5, "high": 50, "step": 5}})`` (or ``{"choices": [...]}``, ``{"log":
  true}``, ``True`` for "search its whole range", ``False`` for "never");
  when any field of a model has a hint, only hinted fields are searched;
- the built-in strategies' hints are the table :data:`BUILTIN_HINTS` (the
  validation bounds of their models are safety limits, far wider than a
  sensible search: an EMA of 1 to 10,000 bars);
- a ``--space`` file narrows it (:func:`load_space_file`): only the
  parameters it names are searched, each with its own range, choices or a
  fixed value; a range outside the model's bounds is refused in one line;
- a ``--grid`` string (the ``validate`` syntax) is a space of choices whose
  combinations are run exactly once each (:func:`grid_space`).

Parameter names are the override names ``build_strategy`` takes: dotted
(``setups.pullback_ribbon.stop_atr_mult``, ``sweep.tp_r_mult``) or flat
(``tp_r_mult`` sets every section that has it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from laptop_agents.domain.errors import UsageError
from laptop_agents.strategy.params import SECTION_ALIASES

SKIPPED_NAMES = frozenset({"strategy", "equity", "risk_pct"})  # identity and sizing: not strategy parameters


class SpaceError(UsageError):
    """A bad ``--space`` file or search hint; one line naming the parameter."""


Scalar = bool | int | float | str | None


@dataclass(frozen=True)
class Dim:
    """One searched parameter: an int or float range (optional step or log scale) or choices."""

    name: str
    kind: Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()

    def distribution(self) -> BaseDistribution:
        if self.kind == "choice":
            return CategoricalDistribution(list(self.choices))
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(_show(c) for c in self.choices)
        text = f"{_show(self.low)} .. {_show(self.high)}"
        if self.step:
            text += f" step {_show(self.step)}"
        if self.log:
            text += " (log scale)"
        return text

    def to_json(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"name": self.name, "choices": list(self.choices)}
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high}
        if self.step:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


@dataclass(frozen=True)
class Space:
    """The searched dimensions plus fixed overrides applied to every trial."""

    dims: tuple[Dim, ...]
    fixed: tuple[tuple[str, Scalar], ...] = ()
    grid: tuple[dict[str, Scalar], ...] = field(default=())  # a grid: every combination once, in order
    notes: tuple[str, ...] = ()  # said to the user beside the ranges (not part of the study's identity)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's parameter overrides (fixed values first, then the searched ones)."""
        out: dict[str, Any] = dict(self.fixed)
        for d in self.dims:
            out[d.name] = d.suggest(trial)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"dims": [d.to_json() for d in self.dims], "fixed": dict(self.fixed),
                "grid": len(self.grid) if self.grid else None}

    def lines(self) -> list[str]:
        out = [f"{d.name}: {d.describe()}" for d in self.dims]
        out += [f"{k} = {_show(v)} (fixed)" for k, v in self.fixed]
        return out


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# -- the model's fields ------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """A leaf field of a (nested) parameter model: its dotted path and what it accepts."""

    path: str
    info: FieldInfo
    base: Any  # the annotation without ``| None``
    optional: bool
    lower: float | None  # inclusive after gt -> next value
    upper: float | None
    step: float | None
    positive: bool = False  # the lower bound is ``gt=0``: any value above zero

    @property
    def numeric(self) -> bool:
        return self.base in (int, float)

    def hint(self) -> Any:
        extra = self.info.json_schema_extra
        return extra.get("search") if isinstance(extra, dict) else None


def leaves(model: type[BaseModel], prefix: str = "") -> list[Leaf]:
    """Every leaf field of ``model``, nested sections as dotted paths."""
    out: list[Leaf] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(leaves(ann, f"{prefix}{name}."))
            continue
        optional = False
        if get_origin(ann) in (Union, UnionType):
            args = [a for a in get_args(ann) if a is not NoneType]
            optional = len(args) < len(get_args(ann))
            ann = args[0] if len(args) == 1 else ann
        lower = upper = step = None
        positive = False
        for m in info.metadata:
            for attr in ("ge", "gt"):
                v = getattr(m, attr, None)
                if v is not None:
                    lower = float(v) if attr == "ge" else (float(v) + 1 if ann is int else math.nextafter(float(v), math.inf))
                    positive = attr == "gt" and float(v) == 0.0 and ann is not int
            for attr in ("le", "lt"):
                v = getattr(m, attr, None)
                if v is not None:
                    upper = float(v) if attr == "le" else (float(v) - 1 if ann is int else math.nextafter(float(v), -math.inf))
            if getattr(m, "multiple_of", None) is not None:
                step = float(m.multiple_of)
        out.append(Leaf(prefix + name, info, ann, optional, lower, upper, step, positive))
    return out


def _choices_of(leaf: Leaf) -> tuple[Scalar, ...] | None:
    if leaf.base is bool:
        return (False, True)
    if get_origin(leaf.base) is Literal:
        return tuple(get_args(leaf.base))
    return None


def resolve(model: type[BaseModel], name: str) -> list[Leaf]:
    """The leaves an override name sets: a dotted name (section aliases allowed) one, a flat name every
    section's field of that name."""
    all_leaves = [leaf for leaf in leaves(model) if leaf.path.split(".")[-1] != "strategy"]
    parts = name.split(".")
    if len(parts) == 1:
        return [leaf for leaf in all_leaves if leaf.path.split(".")[-1] == name]
    full = ".".join((*SECTION_ALIASES.get(parts[0], (parts[0],)), *parts[1:]))
    return [leaf for leaf in all_leaves if leaf.path == full]


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SpaceError(f"{what} must be a finite number, got {v!r}")
    return float(v)


def dim_for(name: str, targets: Sequence[Leaf], hint: Any, where: str) -> Dim | None:
    """The dimension ``hint`` describes for the fields ``targets`` (one override name), checked against
    their bounds; None when the hint excludes it or the fields give no searchable range."""
    if hint is False:
        return None
    spec: dict[str, Any] = dict(hint) if isinstance(hint, Mapping) else {}
    unknown = set(spec) - {"low", "high", "step", "log", "choices"}
    if unknown:
        raise SpaceError(f"{where}: {name}: unknown key {sorted(unknown)[0]!r}; allowed: low, high, step, log, choices")
    first = targets[0]
    if "choices" in spec:
        raw = spec["choices"]
        if not isinstance(raw, list | tuple) or not raw:
            raise SpaceError(f"{where}: {name}: choices must be a non-empty list")
        for v in raw:
            _check_value(name, targets, v, where)
        return Dim(name, "choice", choices=tuple(dict.fromkeys(raw)))
    natural = _choices_of(first)
    if natural is not None and not ({"low", "high"} & set(spec)):
        return Dim(name, "choice", choices=natural)
    if not all(t.numeric for t in targets):
        if spec:
            raise SpaceError(f"{where}: {name} is not a number: give choices instead of a range")
        return None
    is_int = all(t.base is int for t in targets)
    lows = [t.lower for t in targets]
    highs = [t.upper for t in targets]
    bound_lo = max((v for v in lows if v is not None), default=None)
    bound_hi = min((v for v in highs if v is not None), default=None)
    low = _number(spec["low"], f"{where}: {name}: low") if "low" in spec else bound_lo
    high = _number(spec["high"], f"{where}: {name}: high") if "high" in spec else bound_hi
    if low is None or high is None:
        if spec:
            raise SpaceError(f"{where}: {name} has no {'lower' if low is None else 'upper'} bound: give low and high")
        return None
    allowed = f"allowed: {_show(bound_lo) if bound_lo is not None else '-inf'} .. " \
              f"{_show(bound_hi) if bound_hi is not None else 'inf'}"
    if (bound_lo is not None and low < bound_lo) or (bound_hi is not None and high > bound_hi):
        raise SpaceError(f"{where}: {name} range {_show(low)} .. {_show(high)} is outside the parameter's bounds; {allowed}")
    if low > high:
        raise SpaceError(f"{where}: {name}: low {_show(low)} is above high {_show(high)}")
    step = _number(spec["step"], f"{where}: {name}: step") if "step" in spec else first.step
    log = bool(spec.get("log", False))
    if not ({"low", "high", "log"} & set(spec)) and step is None:
        low, log = _bounds_only(low, high, positive=all(t.positive for t in targets))
    if step is not None and step <= 0:
        raise SpaceError(f"{where}: {name}: step must be > 0, got {_show(step)}")
    if log and (low <= 0 or step is not None and not is_int):
        raise SpaceError(f"{where}: {name}: a log scale needs low > 0 and no step")
    if is_int:
        if not (float(low).is_integer() and float(high).is_integer() and (step is None or float(step).is_integer())):
            raise SpaceError(f"{where}: {name} is an integer: low, high and step must be whole numbers")
        ilow, istep = int(low), int(step or 1)
        if log and istep != 1:
            raise SpaceError(f"{where}: {name}: a log scale takes no step")
        ihigh = ilow + (int(high) - ilow) // istep * istep
        return Dim(name, "int", ilow, ihigh, istep if istep != 1 else None, log)
    if step is not None:
        high = low + math.floor((high - low) / step + 1e-9) * step
    return Dim(name, "float", low, high, step, log)


# A range taken from validation bounds alone is made for refusing nonsense, not
# for searching: ``gt=0, le=20`` would start the search at 5e-324 and spend half
# its trials above 10. Such a range is searched from a thousandth of its upper
# bound when it only says "above zero", and on a log scale when it spans two
# decades or more (a period of 2 .. 1000 bars: 2-10 matters as much as 200-1000).
POSITIVE_FLOOR = 1e-3
BOUNDS_LOG_SPAN = 100.0


def _bounds_only(low: float, high: float, *, positive: bool) -> tuple[float, bool]:
    """The low end and the scale of a range that comes from the field's bounds only."""
    if positive and high > 0:
        low = max(low, high * POSITIVE_FLOOR)
    return low, low > 0 and high / low >= BOUNDS_LOG_SPAN


def _check_value(name: str, targets: Sequence[Leaf], v: Any, where: str) -> None:
    """A fixed value or choice must be one the fields accept (bounds and kind; cross-field rules are
    checked per trial, where a combination that breaks one is skipped)."""
    for t in targets:
        natural = _choices_of(t)
        if v is None:
            if not t.optional:
                raise SpaceError(f"{where}: {name} cannot be null")
            continue
        if natural is not None:
            if v not in natural:
                raise SpaceError(f"{where}: {name}: {v!r} is not allowed; allowed: {', '.join(map(_show, natural))}")
            continue
        if t.numeric:
            x = _number(v, f"{where}: {name}")
            if t.base is int and not x.is_integer():
                raise SpaceError(f"{where}: {name} is an integer, got {v!r}")
            if (t.lower is not None and x < t.lower) or (t.upper is not None and x > t.upper):
                raise SpaceError(f"{where}: {name} = {_show(v)} is outside the parameter's bounds "
                                 f"{_show(t.lower)} .. {_show(t.upper)}")


# -- defaults ------------------------------------------------------------------------

# Search hints of the built-in strategies, by their ``strategy`` tag: sensible
# ranges inside their models' (much wider) validation bounds. A plug-in strategy
# declares its own on its fields (``json_schema_extra={"search": ...}``).
BUILTIN_HINTS: dict[str, dict[str, Any]] = {
    "supervisor": {
        "market.ema_fast": {"low": 5, "high": 40},
        "market.ema_slow": {"low": 30, "high": 200, "step": 5},
        "market.atr_period": {"low": 7, "high": 28},
        "setups.pullback_ribbon.enabled": True,
        "setups.pullback_ribbon.entry_band_pct": {"low": 0.0002, "high": 0.005, "log": True},
        "setups.pullback_ribbon.stop_atr_mult": {"low": 0.5, "high": 4.0, "step": 0.25},
        "setups.pullback_ribbon.tp_r_mult": {"low": 1.0, "high": 5.0, "step": 0.25},
        "setups.sweep_invalidation.enabled": True,
        "setups.sweep_invalidation.stop_atr_mult": {"low": 0.2, "high": 2.0, "step": 0.1},
        "setups.sweep_invalidation.tp_r_mult": {"low": 1.0, "high": 5.0, "step": 0.25},
        "setups.sweep_invalidation.lookback_bars": {"low": 5, "high": 60},
        "setups.sweep_invalidation.min_vol_ratio": {"low": 0.0, "high": 3.0, "step": 0.25},
        "risk.rr_min": {"low": 1.0, "high": 3.0, "step": 0.25},
        "engine.cooldown_bars": {"low": 0, "high": 30},
    },
    "sma_cross": {
        "fast": {"low": 3, "high": 50},
        "slow": {"low": 10, "high": 300, "step": 5},
    },
}


def model_hints(params: BaseModel) -> dict[str, Any]:
    """The model's own search hints (on its fields), else the built-in table for its ``strategy`` tag."""
    own = {leaf.path: leaf.hint() for leaf in leaves(type(params)) if leaf.hint() is not None}
    if own:
        return own
    return dict(BUILTIN_HINTS.get(str(getattr(params, "strategy", "")), {}))


def space_from_params(params: BaseModel, hints: Mapping[str, Any] | None = None) -> Space:
    """The default search space of a parameter model instance (see the module docstring)."""
    model = type(params)
    hints = model_hints(params) if hints is None else dict(hints)
    where = f"search hints of {model.__name__}"
    dims: list[Dim] = []
    if hints:
        for name, hint in hints.items():
            targets = resolve(model, name)
            if not targets:
                raise SpaceError(f"{where}: unknown parameter {name!r}")
            d = dim_for(name, targets, hint, where)
            if d is not None:
                dims.append(d)
    else:
        for leaf in leaves(model):
            if leaf.path.split(".")[-1] in SKIPPED_NAMES or leaf.optional:
                continue
            d = dim_for(leaf.path, [leaf], True, where)
            if d is not None:
                dims.append(d)
    if not dims:
        raise SpaceError(f"{model.__name__} has no parameter with a searchable range: use --space or --grid")
    notes: tuple[str, ...] = ()
    if not hints:
        notes = (f"{model.__name__} declares no search hints: its ranges are its fields' validation bounds "
                 f"(log scale where they span {BOUNDS_LOG_SPAN:g}x, a float > 0 from a thousandth of its maximum); "
                 "narrow them with json_schema_extra={\"search\": ...} on the fields or --space "
                 "(docs/strategies.md)",)
    return Space(tuple(dims), notes=notes)


def parse_space(doc: Any, params: BaseModel, where: str) -> Space:
    """A ``--space`` document: ``name: {low, high, step, log}``, ``name: [choices]``, ``name: {}`` (the
    default range), or ``name: value`` (fixed). Only the parameters it names are searched."""
    if not isinstance(doc, Mapping) or not doc:
        raise SpaceError(f"{where}: a space file must map parameter names to ranges, choices or values")
    model = type(params)
    defaults = model_hints(params)
    dims: list[Dim] = []
    fixed: list[tuple[str, Scalar]] = []
    for raw_name, entry in doc.items():
        name = str(raw_name)
        targets = resolve(model, name)
        if not targets:
            known = sorted({leaf.path.split(".")[-1] for leaf in leaves(model)} - {"strategy"})
            raise SpaceError(f"{where}: unknown parameter {name!r} for strategy {getattr(params, 'strategy', '?')!r}; "
                             f"known names: {', '.join(known)}")
        if isinstance(entry, Mapping):
            hint: Any = dict(entry) if entry else defaults.get(name, defaults.get(targets[0].path, True))
            d = dim_for(name, targets, hint, where)
            if d is None:
                raise SpaceError(f"{where}: {name} has no default range: give low and high or choices")
            dims.append(d)
        elif isinstance(entry, list):
            d = dim_for(name, targets, {"choices": entry}, where)
            assert d is not None
            dims.append(d)
        else:
            _check_value(name, targets, entry, where)
            fixed.append((name, entry))
    return Space(tuple(dims), tuple(fixed))


def load_space_file(path: Path, params: BaseModel) -> Space:
    """Read and check a ``--space`` file (YAML or JSON, bounded like strategy files)."""
    from laptop_agents.domain.documents import MAX_BYTES, DocumentError, parse_document

    where = f"space file {str(path)!r}"
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpaceError(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    try:
        doc = parse_document(raw, yaml_syntax=path.suffix.lower() not in (".json",))
    except DocumentError as exc:
        raise SpaceError(f"{where}: {exc}") from None
    return parse_space(doc, params, where)


def grid_space(grid: Sequence[Mapping[str, Scalar]]) -> Space:
    """A ``--grid`` (the list of combinations :func:`~laptop_agents.backtest.validate.parse_grid` makes) as a
    space of choices that remembers its combinations in order."""
    names: list[str] = []
    values: dict[str, list[Scalar]] = {}
    for combo in grid:
        for k, v in combo.items():
            if k not in values:
                names.append(k)
                values[k] = []
            if v not in values[k]:
                values[k].append(v)
    dims = tuple(Dim(n, "choice", choices=tuple(values[n])) for n in names)
    return Space(dims, grid=tuple(dict(c) for c in grid))
