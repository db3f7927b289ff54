"""Loading a user's strategy: ``--strategy path/to/file.py:ClassName``, or the
name of an installed package's entry point in the ``laptop_agents.strategies``
group (``name = "package.module:ClassName"``).

The file is Python run in this process with the program's rights: it is
trusted code, like a plug-in of any other program (read it before running
it). It is read and executed once per process (again when it changes), so a
strategy file behaves like a module: its top level runs at load time, not per
candle.

Every way a strategy can be broken -- a missing file, a syntax error, an
import that fails, no such class, a class that is not a strategy, parameters
that do not validate, an ``__init__`` that raises -- ends as ONE line in a
:class:`~laptop_agents.strategy.params.StrategyConfigError` (exit 2) naming
the file or entry point, the class and what is wrong, never a traceback.
"""

from __future__ import annotations

import hashlib
import re
import sys
import traceback
import types
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from laptop_agents.domain.contracts import Strategy
from laptop_agents.domain.models import Instrument
from laptop_agents.strategy.base import BaseStrategy
from laptop_agents.strategy.params import PRESET_NAMES, StrategyConfigError

ENTRY_POINT_GROUP = "laptop_agents.strategies"
# What a class that does not derive from BaseStrategy must define to be a Strategy.
PROTOCOL_METHODS = ("warmup", "on_candle", "on_funding", "on_broker_event", "snapshot_state", "restore_state")
RESERVED_PARAMS = ("symbols",)  # parameter files use this key for per-symbol overrides
_MAX_LINE = 300
_MODULES: dict[tuple[str, int, int], types.ModuleType] = {}


@dataclass(frozen=True)
class StrategyPlugin:
    """A loaded, checked strategy class and how it is named.

    ``name`` is the strategy's identity: ``file.py:ClassName`` (the file's
    name, not its folder, so moving the folder keeps a workspace's state) or
    the entry point's name. ``where`` names it in messages."""

    cls: type
    name: str
    where: str
    params_model: type[BaseModel]
    file: Path | None = None

    @property
    def summary(self) -> str:
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0].strip() if doc else f"strategy class {self.cls.__name__}"

    def build(
        self, params: BaseModel, instrument: Instrument, *, risk_pct: float, max_notional: float,
        max_leverage: float,
    ) -> Strategy:
        """An instance; an exception in its ``__init__`` is one line (exit 2)."""
        try:
            strategy = self.cls(params, instrument, risk_pct=risk_pct, max_notional=max_notional,
                                max_leverage=max_leverage, name=self.name)  # fmt: skip
        except Exception as exc:
            raise StrategyConfigError(f"{self.where}: building it failed: {_exc_line(exc, self.file)}") from None
        name = getattr(strategy, "name", None)
        if not isinstance(name, str) or not name:
            raise StrategyConfigError(f"{self.where}: its instances need a non-empty str attribute 'name'")
        return strategy


def is_file_spec(name: str) -> bool:
    """``file.py:ClassName`` or ``file.py``: a strategy file, not a preset or a parameter file."""
    low = name.lower()
    return low.endswith(".py") or ".py:" in low


def resolve(name: str) -> StrategyPlugin | None:
    """The plug-in ``name`` selects, or None for a built-in preset or a
    parameter file (handled by :mod:`~laptop_agents.strategy.params`)."""
    if name in PRESET_NAMES:
        return None
    if is_file_spec(name):
        return load_file(name)
    path = Path(name)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.is_file():
        return None
    ep = _entry_points().get(name)
    return load_entry_point(ep) if ep is not None else None


def installed() -> list[str]:
    """Names of the strategies installed packages offer (entry points)."""
    return sorted(_entry_points())


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_installed(name: str) -> StrategyPlugin:
    """The installed strategy ``name`` (entry point), checked."""
    ep = _entry_points().get(name)
    if ep is None:
        raise StrategyConfigError(f"no installed strategy {name!r} (entry points in {ENTRY_POINT_GROUP!r})")
    return load_entry_point(ep)


def load_entry_point(ep: metadata.EntryPoint) -> StrategyPlugin:
    where = f"installed strategy {ep.name!r} ({ep.value})"
    try:
        obj = ep.load()
    except Exception as exc:
        raise StrategyConfigError(f"{where} could not be imported: {_exc_line(exc, None)}") from None
    return _checked(obj, ep.name, where, None)


def load_file(spec: str) -> StrategyPlugin:
    """``path/to/file.py:ClassName`` loaded and checked."""
    idx = spec.lower().rfind(".py:")
    path_text, cls_name = (spec[: idx + 3], spec[idx + 4 :]) if idx >= 0 else (spec, "")
    path = Path(path_text).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise StrategyConfigError(f"strategy file {path_text!r} {what}")
    module = _import_file(path, path_text)
    found = _strategy_classes(module)
    listing = f"strategy classes in it: {', '.join(found)}" if found else "it defines no strategy class"
    if not cls_name:
        example = f"{path_text}:{found[0]}" if found else f"{path_text}:ClassName"
        raise StrategyConfigError(f"strategy {spec!r}: name the class to use, as {example} ({listing})")
    if not cls_name.isidentifier():
        raise StrategyConfigError(f"strategy {spec!r}: {cls_name!r} is not a class name ({listing})")
    obj = module.__dict__.get(cls_name)
    if obj is None:
        raise StrategyConfigError(f"strategy file {path_text!r} has no class {cls_name!r} ({listing})")
    return _checked(obj, f"{path.name}:{cls_name}", f"strategy {path_text}:{cls_name}", path)


def _import_file(path: Path, shown: str) -> types.ModuleType:
    """Execute the file as a module of its own (cached per path, size and
    modification time). No ``__pycache__`` is written beside it."""
    resolved = path.resolve()
    try:
        st = resolved.stat()
        key = (str(resolved), st.st_mtime_ns, st.st_size)
        cached = _MODULES.get(key)
        if cached is not None:
            return cached
        source = resolved.read_bytes()
    except OSError as exc:
        raise StrategyConfigError(f"strategy file {shown!r}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    try:
        code = compile(source, str(resolved), "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno else ""
        raise StrategyConfigError(f"strategy file {shown!r} has a syntax error{where}: {exc.msg}") from None
    except ValueError as exc:  # e.g. a NUL byte
        raise StrategyConfigError(f"strategy file {shown!r} cannot be compiled: {exc}") from None
    stem = re.sub(r"\W", "_", resolved.stem)
    digest = hashlib.sha1(str(resolved).encode(), usedforsecurity=False).hexdigest()[:8]
    module = types.ModuleType(f"_laptop_agents_strategy_{stem}_{digest}")
    module.__file__ = str(resolved)
    sys.modules[module.__name__] = module  # pydantic and dataclasses look their module up while the file runs
    try:
        exec(code, module.__dict__)  # the user's trusted strategy file (see the module docstring)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module.__name__, None)
        raise StrategyConfigError(
            f"strategy file {shown!r} could not be imported: {_exc_line(exc, resolved)}"
        ) from None
    _MODULES[key] = module
    return module


def _strategy_classes(module: types.ModuleType) -> list[str]:
    """Classes defined in ``module`` that are strategies (or look like one)."""
    out = []
    for attr, obj in vars(module).items():
        if isinstance(obj, type) and obj.__module__ == module.__name__ and not attr.startswith("_"):
            if issubclass(obj, BaseStrategy) or all(callable(getattr(obj, m, None)) for m in PROTOCOL_METHODS):
                out.append(attr)
    return out


def _checked(obj: Any, name: str, where: str, file: Path | None) -> StrategyPlugin:
    if not isinstance(obj, type):
        raise StrategyConfigError(f"{where}: is a {type(obj).__name__}, not a class")
    if issubclass(obj, BaseStrategy):
        if obj.decide is BaseStrategy.decide:
            raise StrategyConfigError(f"{where}: the class does not define decide(self, candle, account)")
    else:
        missing = [m for m in PROTOCOL_METHODS if not callable(getattr(obj, m, None))]
        if missing:
            raise StrategyConfigError(
                f"{where}: not a strategy class: derive it from laptop_agents.strategy.base.BaseStrategy "
                f"(or define {', '.join(missing)})"
            )
    model = getattr(obj, "Params", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise StrategyConfigError(
            f"{where}: the class needs Params = a pydantic model of its parameters "
            "(derive it from laptop_agents.strategy.base.Parameters)"
        )
    lax = _lax_model(model)
    if lax is not None:
        raise StrategyConfigError(
            f"{where}: its parameter model {lax} must refuse unknown keys: derive it from "
            "laptop_agents.strategy.base.Parameters or set model_config = ConfigDict(extra='forbid')"
        )
    for key in RESERVED_PARAMS:
        if key in model.model_fields:
            raise StrategyConfigError(f"{where}: a parameter may not be called {key!r} (parameter files use it)")
    return StrategyPlugin(obj, name, where, model, file)


def _lax_model(model: type[BaseModel], seen: frozenset[type] = frozenset()) -> str | None:
    """The name of a (nested) parameter model that silently accepts unknown
    keys, or None: a typo in a parameter file must stop the run."""
    if model in seen:
        return None
    if model.model_config.get("extra") != "forbid":
        return model.__name__
    for field in model.model_fields.values():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found = _lax_model(ann, seen | {model})
            if found is not None:
                return found
    return None


def _exc_line(exc: BaseException, file: Path | None) -> str:
    """``Type: message (line N)``, N the deepest line of ``file`` in the traceback."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    if file is not None:
        target = str(file.resolve())
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == target]
        if lines and lines[-1] is not None:
            line += f" (line {lines[-1]})"
    return line[:_MAX_LINE]
