"""Cheaper constructors for the frozen slots dataclasses built in bulk.

A frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__`` (the price of immutability): a ``Candle`` costs about
1 us, and the candle loaders build half a million of them for a year of
one-minute bars. The core no longer uses this: its per-candle records are
compiled by mypyc in the optional compiled core (see
:mod:`laptop_agents._compiled`), where a class has no slots to set this way,
and written so that they need no trick in pure Python either. :func:`fast_init`
returns a function with the same signature (same defaults) that creates the
instance and stores each field with its slot descriptor directly, then runs
the class's own ``__post_init__`` validation unless the caller proved the
values valid already (``validate=False``, e.g. candles checked column-wise
with numpy). The result is an ordinary instance: same type, equal, hashable,
still frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T], *, validate: bool = True) -> Callable[..., T]:
    """A constructor for the frozen slots dataclass ``cls`` (see the module
    docstring). A field with a ``default_factory`` gets a fresh default on
    each call, as with the dataclass ``__init__``; a class this cannot
    reproduce (``init=False`` fields, no slots) raises ``TypeError`` here, at
    import time of the caller, not at the first call."""
    if not is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init needs a slots dataclass, got {cls!r}")
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_MISSING": MISSING}
    params: list[str] = []
    body: list[str] = ["    obj = _new(_cls)"]
    for f in fields(cls):
        if not f.init:
            raise TypeError(f"fast_init: field {cls.__name__}.{f.name} needs the dataclass __init__")
        ns[f"_set_{f.name}"] = _slot(cls, f.name).__set__
        if f.default_factory is not MISSING:
            ns[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING:\n        {f.name} = _factory_{f.name}()")
        elif f.default is MISSING:
            params.append(f.name)
        else:
            ns[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(obj, {f.name})")
    post = getattr(cls, "__post_init__", None)
    if validate and post is not None:
        ns["_post_init"] = post
        body.append("    _post_init(obj)")
    body.append("    return obj")
    src = f"def __create_fn__({', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(src, ns)  # generated from the dataclass's own field names, as dataclasses does
    fn: Callable[..., T] = ns["__create_fn__"]
    fn.__name__ = fn.__qualname__ = f"new_{cls.__name__}"
    fn.__doc__ = f"Build a {cls.__name__} without the frozen dataclass __init__ (see laptop_agents.domain.fast)."
    return fn


def _slot(cls: type, name: str) -> Any:
    """The slot descriptor of field ``name``: in ``cls`` or, for a field
    inherited from a slots dataclass base (the events' ``ts``), in that base."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    raise TypeError(f"fast_init: no slot for field {cls.__name__}.{name}")  # pragma: no cover
