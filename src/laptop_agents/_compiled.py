"""Which core runs: the compiled one (mypyc, optional) or the pure-Python one.

``make compiled`` (``scripts/build_compiled.py``) compiles :data:`COMPILED_MODULES`
in place: each ``.so`` sits beside its ``.py`` and CPython imports the ``.so``
first, so nothing else has to know. Pure Python stays the reference and the
fallback; :func:`select_core` runs once when the package is imported and makes
the ``.py`` files win instead when

- ``LA_PURE=1`` is set (the parity test and benchmarks compare both cores), or
- the build is stale or incomplete: a compiled module's source differs from
  the one recorded in the build's manifest (one line on stderr says so; a
  stale ``.so`` must never shadow an edited ``.py``).

The core is all or nothing: mypyc compiles the modules as one group whose
classes refer to each other directly, so mixing a compiled module with the
pure version of another would give two different classes of one name.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# The deterministic core that runs per candle: domain records, the paper
# broker, the Engine, the strategy base, sma_cross and the Supervisor with its
# agents and indicators. Pydantic models, I/O and the shell stay interpreted.
COMPILED_MODULES: tuple[str, ...] = (
    "laptop_agents.domain.records",
    "laptop_agents.broker.state",
    "laptop_agents.broker.ledger",
    "laptop_agents.broker.fills",
    "laptop_agents.broker.limits",
    "laptop_agents.broker.paper",
    "laptop_agents.engine.engine",
    "laptop_agents.engine.status",
    "laptop_agents.strategy.emit",
    "laptop_agents.strategy.sizing",
    "laptop_agents.strategy.indicators",
    "laptop_agents.strategy.agents",
    "laptop_agents.strategy.base",
    "laptop_agents.strategy.sma_cross",
    "laptop_agents.strategy.supervisor",
)
MANIFEST = "laptop_agents/_compiled_manifest.json"  # relative to src/, written by the build
PURE_ENV = "LA_PURE"

_SRC = Path(__file__).resolve().parent.parent
_COMPILED = frozenset(COMPILED_MODULES)
_pure_names: set[str] = set(COMPILED_MODULES)  # plus any other the build manifest lists


def source_digest(src: Path, module: str) -> str:
    """SHA-256 of a module's source file (what the manifest records)."""
    return hashlib.sha256((src / (module.replace(".", "/") + ".py")).read_bytes()).hexdigest()


def _extension_exists(module: str) -> bool:
    base = _SRC / module.replace(".", "/")
    return any(Path(str(base) + suffix).exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def _why_pure() -> str | None:
    """Why the pure modules must be used although a build is present ("" = asked
    for, no message), or None to let the compiled modules load."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return ""
    manifest = _SRC / MANIFEST
    if not manifest.exists():
        if any(_extension_exists(m) for m in COMPILED_MODULES):
            return "compiled core: incomplete build (no manifest); using pure Python (run make compiled)"
        return None
    try:
        recorded = json.loads(manifest.read_text())["modules"]
        _pure_names.update(recorded)
        if set(recorded) != _COMPILED:
            return "compiled core: built from another module list; using pure Python (run make compiled)"
        changed = [m for m in COMPILED_MODULES if recorded.get(m) != source_digest(_SRC, m)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "compiled core: unreadable build manifest; using pure Python (run make compiled)"
    if changed:
        return (f"compiled core: stale ({changed[0]} changed since the build); "
                "using pure Python (run make compiled)")  # fmt: skip
    return None


class _PureFinder:
    """Finds the ``.py`` of a compiled module, ahead of the path finder."""

    @classmethod
    def find_spec(
        cls, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in _pure_names or not path:
            return None
        leaf = name.rpartition(".")[2] + ".py"
        for entry in path:
            candidate = os.path.join(entry, leaf)
            if os.path.exists(candidate):
                return importlib.util.spec_from_file_location(name, candidate)
        return None


def select_core() -> None:
    """Make the pure modules win when they must (see the module docstring)."""
    why = _why_pure()
    if why is None:
        return
    if why:
        print(why, file=sys.stderr)
    if _PureFinder not in sys.meta_path:
        sys.meta_path.insert(0, _PureFinder)


def core_kind() -> str:
    """``"compiled"`` when the core modules imported are (or will be) the mypyc
    builds, else ``"pure"``."""
    if _PureFinder in sys.meta_path or not all(_extension_exists(m) for m in COMPILED_MODULES):
        return "pure"
    return "compiled"
