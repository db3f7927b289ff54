"""Paper broker: the simulated account the Engine trades against."""

from laptop_agents.broker.paper import PaperBroker, Position, WorkingOrder

__all__ = ["PaperBroker", "Position", "WorkingOrder"]
