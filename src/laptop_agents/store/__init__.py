"""Durable state: the SQLite state store and the events.jsonl journal."""

from laptop_agents.store.journal import EventJournal, JournalError, read_events
from laptop_agents.store.state import (
    StateStore,
    StoreAheadError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    StoreWriteError,
    check_store_clock,
    open_engine,
)

__all__ = [
    "EventJournal",
    "JournalError",
    "StateStore",
    "StoreAheadError",
    "StoreCorruptError",
    "StoreError",
    "StoreMismatchError",
    "StoreWriteError",
    "check_store_clock",
    "open_engine",
    "read_events",
]
