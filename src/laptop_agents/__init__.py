"""btc-laptop-agents: an unattended BTC perpetual-futures trading agent."""

__version__ = "0.1.0"
