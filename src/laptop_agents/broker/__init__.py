"""Paper broker: the simulated account the Engine trades against (see
:mod:`laptop_agents.broker.paper` for how its parts fit)."""

from laptop_agents.broker.paper import PaperBroker
from laptop_agents.broker.state import BrokerState, Position, WorkingOrder

__all__ = ["BrokerState", "PaperBroker", "Position", "WorkingOrder"]
