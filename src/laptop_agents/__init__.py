"""btc-laptop-agents: an unattended BTC perpetual-futures trading agent."""

from laptop_agents._compiled import select_core

__version__ = "0.1.0"

# The optional compiled core (mypyc, ``make compiled``) or the pure-Python one:
# decided once, before any core module is imported (see laptop_agents._compiled).
select_core()
