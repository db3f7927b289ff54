"""``python -m laptop_agents``: the same as the ``laptop-agents`` command."""

from __future__ import annotations

import sys

from laptop_agents.cli import main

if __name__ == "__main__":
    sys.exit(main())
