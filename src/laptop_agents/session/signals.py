"""The session's stop signals, delivered on the event loop.

SIGINT and SIGTERM stop the session gracefully, as does SIGHUP on POSIX
(closing the terminal is a stop like SIGTERM, not a kill in the middle of a
candle; the terminal's output goes nowhere from then on) and SIGBREAK on
Windows (the watchdog stops its child with CTRL_BREAK_EVENT, whose default
action would end the process without the graceful shutdown). Where the loop
cannot take signal handlers (Windows), a plain handler hands the signal to
the loop thread-safely.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from laptop_agents import interrupts


def install(on_signal: Callable[[str], None]) -> Callable[[], None]:
    """Route the stop signals to ``on_signal(name)`` on the running loop; returns
    a function that puts the previous handlers back."""
    loop = asyncio.get_running_loop()
    sigs = [signal.SIGINT, signal.SIGTERM]
    sigbreak = getattr(signal, "SIGBREAK", None)
    if sigbreak is not None:
        sigs.append(sigbreak)
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is not None:
        sigs.append(sighup)
    tty_fds = interrupts.terminal_fds()

    def deliver(signum: int) -> None:
        if signum == sighup:
            interrupts.detach_from_terminal(tty_fds)
        on_signal(signal.Signals(signum).name)

    def from_any_thread(signum: int, _frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(deliver, signum)

    installed: list[int] = []
    previous: dict[int, Any] = {}
    for s in sigs:
        try:
            loop.add_signal_handler(s, deliver, s)
            installed.append(s)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            previous[s] = signal.signal(s, from_any_thread)

    def restore() -> None:
        for s in installed:
            loop.remove_signal_handler(s)
        for s, h in previous.items():
            signal.signal(s, h)

    return restore
