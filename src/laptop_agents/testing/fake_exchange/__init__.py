"""A fake Bitunix exchange on 127.0.0.1: the documented REST and websocket
market protocol from a seeded synthetic market, the private side (signed
REST, private websocket, an order book matched against that market), with
faults on command.

``start_fake_exchange(...)`` runs it in a thread for tests; ``laptop-agents
fake-exchange`` runs it in the foreground.
"""

from laptop_agents.testing.fake_exchange.faults import Fault, FaultSpecError, parse_schedule
from laptop_agents.testing.fake_exchange.server import (
    FakeExchangeError,
    FakeExchangeHandle,
    check_loopback,
    start_fake_exchange,
)
from laptop_agents.testing.fake_exchange.state import FakeExchangeConfig
from laptop_agents.testing.fake_exchange.trading import DEFAULT_ACCOUNT, FakeAccount, FakeTradingConfig

__all__ = [
    "DEFAULT_ACCOUNT",
    "FakeAccount",
    "FakeExchangeConfig",
    "FakeExchangeError",
    "FakeExchangeHandle",
    "FakeTradingConfig",
    "Fault",
    "FaultSpecError",
    "check_loopback",
    "parse_schedule",
    "start_fake_exchange",
]
