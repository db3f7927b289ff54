"""Durable state: the SQLite state store and the events.jsonl journal.

``open_engine`` (crash-only startup) lives beside the engine, in
:mod:`laptop_agents.engine.recovery`; it is re-exported here for the shell,
which opens a store and its engine together."""

from laptop_agents.engine.recovery import open_engine
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
    "open_engine",
    "read_events",
]
