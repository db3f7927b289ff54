"""``python -m laptop_agents``: the same as the ``laptop-agents`` command."""

from __future__ import annotations

from laptop_agents.entry import main  # first: installs the Ctrl-C handler

if __name__ == "__main__":
    import sys

    sys.exit(main())
