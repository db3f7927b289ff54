"""Process entry points (console script, ``python -m laptop_agents``,
``python -m laptop_agents.run``): the Ctrl-C handler is installed before the
command-line module and its imports load, so an early Ctrl-C is a clean exit.
"""

from __future__ import annotations

import sys

from laptop_agents import interrupts

interrupts.install()

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """``laptop-agents``."""
    try:
        # only now: the Ctrl-C handler is in place first
        from laptop_agents.cli import main as cli_main
    except KeyboardInterrupt:
        return _interrupted()
    return cli_main(argv)


def seed_main(argv: Sequence[str] | None = None) -> int:
    """``python -m laptop_agents.run``."""
    try:
        # only now: the Ctrl-C handler is in place first
        from laptop_agents.cli import seed_main as cli_seed_main
    except KeyboardInterrupt:
        return _interrupted()
    return cli_seed_main(argv)


def _interrupted() -> int:
    print("interrupted", file=sys.stderr)
    return 0
