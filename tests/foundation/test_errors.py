"""Every exception class of ours has the one base, and the base's docstring
(the tree a reader looks at) names every public one."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import laptop_agents
from laptop_agents.domain import errors
from laptop_agents.domain.errors import LaptopAgentsError


def _our_exception_classes() -> dict[str, type[Exception]]:
    found: dict[str, type[Exception]] = {}
    for mod in pkgutil.walk_packages(laptop_agents.__path__, "laptop_agents."):
        if mod.name.endswith("__main__") or mod.name == "laptop_agents.run":
            continue
        module = importlib.import_module(mod.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception)
                    and obj.__module__ == module.__name__):
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_exception_of_ours_derives_from_the_one_base() -> None:
    classes = _our_exception_classes()
    assert len(classes) > 40
    orphans = sorted(q for q, c in classes.items() if not issubclass(c, LaptopAgentsError))
    assert orphans == []


def test_the_tree_in_the_base_docstring_names_every_public_family() -> None:
    doc = errors.__doc__ or ""
    exchange_doc = importlib.import_module("laptop_agents.exchange.errors").__doc__ or ""
    missing = sorted(
        q for q, c in _our_exception_classes().items()
        if not c.__name__.startswith("_") and c.__name__ not in doc and c.__name__ not in exchange_doc
    )
    assert missing == []


def test_each_family_knows_its_exit_code() -> None:
    from laptop_agents.exit_codes import ExitCode
    from laptop_agents.sources.candle_files import CandleFileError
    from laptop_agents.store.state import StoreCorruptError, StoreMismatchError, StoreWriteError
    from laptop_agents.strategy.params import StrategyConfigError

    assert StrategyConfigError.exit_code == ExitCode.CONFIG_ERROR
    assert CandleFileError.exit_code == ExitCode.BAD_INPUT
    assert StoreCorruptError.exit_code == ExitCode.STORE_CORRUPT
    assert StoreWriteError.exit_code == ExitCode.DISK_FULL
    assert StoreMismatchError.exit_code == ExitCode.STORE_MISMATCH
    assert LaptopAgentsError.exit_code == ExitCode.CRASH
