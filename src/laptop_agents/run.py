"""``python -m laptop_agents.run``: the seed system's entry point, kept working."""

from __future__ import annotations

from laptop_agents.entry import seed_main  # first: installs the Ctrl-C handler

if __name__ == "__main__":
    import sys

    sys.exit(seed_main())
