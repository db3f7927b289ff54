"""Durable state: the SQLite state store and the events.jsonl journal.

``open_engine`` (crash-only startup) lives beside the engine, in
:mod:`laptop_agents.engine.recovery`, and reads a store through its small
``StateSource`` protocol."""

from laptop_agents.store.journal import EventJournal, JournalError, read_events
from laptop_agents.store.state import (
    StateStore,
    StoreAheadError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    StoreWriteError,
    check_store_clock,
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
    "read_events",
]
