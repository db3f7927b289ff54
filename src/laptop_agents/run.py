"""``python -m laptop_agents.run``: the seed system's entry point, kept working."""

from __future__ import annotations

import sys

from laptop_agents.cli import seed_main

if __name__ == "__main__":
    sys.exit(seed_main())
