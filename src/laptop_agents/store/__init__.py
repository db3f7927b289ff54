"""Durable state: the SQLite state store and the events.jsonl journal."""

from laptop_agents.store.journal import EventJournal, JournalError, read_events
from laptop_agents.store.state import (
    StateStore,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    StoreWriteError,
    open_engine,
)

__all__ = [
    "EventJournal",
    "JournalError",
    "StateStore",
    "StoreCorruptError",
    "StoreError",
    "StoreMismatchError",
    "StoreWriteError",
    "open_engine",
    "read_events",
]
