"""Ctrl-C before a command's own signal handling: a clean exit, never a traceback.

From the first line of an entry point on, SIGINT raises :class:`Interrupted`
(and records that it did). Three CPython details shape this module:

* a plain ``KeyboardInterrupt`` that passes through an ``exec`` of a string
  (``dataclasses`` and ``namedtuple`` do that while modules are imported)
  makes the interpreter end by SIGINT after ``main`` returned, however it was
  caught: a subclass is not marked that way;
* an interrupt raised inside a weakref callback or ``__del__`` (the import
  machinery runs some) is "ignored" with a traceback and lost, and a
  compiled library may wrap it in its own error: so the handler records the
  interrupt, :func:`check` raises it again at the next start-up checkpoint,
  and the unraisable hook keeps the "ignored" traceback off the terminal;
* ``asyncio.run`` only installs its own handler over the default one. While
  the live session runs, :class:`diverted` turns SIGINT into the session's own
  graceful stop (a callback on the event loop), until the runner's handlers
  take over.

SIGHUP (the terminal closed) stops a session like SIGTERM; the terminal's
file descriptors are then pointed at the null device (:func:`detach_from_terminal`).
"""

from __future__ import annotations

# Only modules the interpreter has loaded anyway: this module is imported in
# the first instants of a process, and the handler should be in place at once
# (``signal`` itself would first import enum, functools and collections, so
# the C module under it is used).
import _signal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, TracebackType
    from typing import Any


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) while a command was starting or running without its own handlers."""


_pending = False  # an interrupt was raised and may have been swallowed since
_divert: Callable[[], None] | None = None


def _running_loop() -> Any:
    asyncio = sys.modules.get("asyncio")
    return asyncio._get_running_loop() if asyncio is not None else None


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    callback = _divert
    if callback is not None:
        loop = _running_loop()
        if loop is not None:
            loop.call_soon_threadsafe(callback)  # what asyncio's own handler does
        else:
            callback()
        return
    _pending = True
    raise Interrupted()


def _unraisable(previous: Any) -> Any:
    def hook(unraisable: Any) -> None:
        global _pending
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _pending = True  # swallowed: check() raises it at the next checkpoint
            return
        previous(unraisable)

    return hook


def install() -> Any:
    """Make SIGINT raise :class:`Interrupted`; returns what :func:`restore`
    needs to undo it (None where handlers cannot be set: not the main thread)."""
    try:
        handler = _signal.signal(_signal.SIGINT, _on_sigint)
    except (ValueError, OSError):  # not the main thread, or no signal support
        return None
    hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(hook)
    return handler, hook


def restore(previous: Any) -> None:
    """Put back what :func:`install` replaced, and forget a handled interrupt."""
    global _pending
    if previous is None:
        return
    handler, hook = previous
    sys.unraisablehook = hook
    _pending = False
    try:
        _signal.signal(_signal.SIGINT, handler)
    except (ValueError, OSError, TypeError):
        pass


def pending() -> bool:
    """True if an interrupt was raised (and the command is somehow still running)."""
    return _pending


def check() -> None:
    """A start-up checkpoint: raise an interrupt that something swallowed."""
    if _pending:
        raise Interrupted()


class diverted:  # used like a function: ``with diverted(stop):``
    """Within the block, SIGINT calls ``callback`` (on the running event loop,
    or at once before it runs) instead of raising: the session stops itself."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._previous: Any = None

    def __enter__(self) -> None:
        global _divert, _pending
        _divert = self._callback
        if _pending:  # an interrupt something swallowed during the start-up: stop at once
            _pending = False
            self._callback()
        try:
            self._previous = _signal.signal(_signal.SIGINT, _on_sigint)
        except (ValueError, OSError):
            self._previous = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _divert
        _divert = None
        if self._previous is not None:  # the runner's own handlers left the default one behind
            try:
                _signal.signal(_signal.SIGINT, self._previous)
            except (ValueError, OSError, TypeError):
                pass


def terminal_fds() -> list[int]:
    """stdout/stderr file descriptors that are a terminal (checked before any hang-up)."""
    fds = []
    for fd in (1, 2):
        try:
            if os.isatty(fd):
                fds.append(fd)
        except OSError:
            pass
    return fds


def detach_from_terminal(fds: list[int]) -> None:
    """After SIGHUP the terminal is gone and every write to it fails (EIO):
    point those descriptors at the null device so the graceful shutdown's
    console output cannot turn it into a crash. Files and pipes are kept."""
    if not fds:
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for fd in fds:
            try:
                os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)
