"""events.jsonl: canonical lines, torn-tail tolerance and repair, scrubbing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laptop_agents.domain.events import AgentError, OrderCancelled, SessionEvent
from laptop_agents.logs import SCRUBBER
from laptop_agents.store import EventJournal, JournalError, read_events


def test_lines_are_canonical_json(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r1" / "events.jsonl"
    with EventJournal(path) as j:
        assert j.write([SessionEvent(1, "start", {"b": 1.5, "a": "x"}), OrderCancelled(2, "c1", "working")]) == 2
        assert j.write([{"ts": 3, "kind": "x", "z": None}]) == 1  # an event already in its JSON form
        assert j.write([]) == 0
    assert path.read_text().splitlines() == [
        '{"a":"x","b":1.5,"event":"start","kind":"session","ts":1}',
        '{"client_id":"c1","kind":"order_cancelled","reason":"working","ts":2}',
        '{"kind":"x","ts":3,"z":null}',
    ]
    assert read_events(path) == [
        {"a": "x", "b": 1.5, "event": "start", "kind": "session", "ts": 1},
        {"client_id": "c1", "kind": "order_cancelled", "reason": "working", "ts": 2},
        {"kind": "x", "ts": 3, "z": None},
    ]


def test_torn_last_line_is_ignored_and_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventJournal(path) as j:
        j.write([{"ts": 1, "kind": "a"}, {"ts": 2, "kind": "b"}])
    with path.open("a") as fh:
        fh.write('{"kind":"c","t')  # a crash in the middle of a write
    assert [e["kind"] for e in read_events(path)] == ["a", "b"]
    with EventJournal(path) as j:
        j.write([{"ts": 3, "kind": "d"}])
    assert [e["kind"] for e in read_events(path)] == ["a", "b", "d"]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_torn_only_line_is_cut_entirely(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind":"x"' + "y" * 10_000)
    assert read_events(path) == []
    EventJournal(path).close()
    assert path.read_bytes() == b""


def test_damaged_middle_line_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind":"a"}\nnot json\n{"kind":"b"}\n')
    with pytest.raises(JournalError, match="line 2"):
        read_events(path)


def test_secrets_are_scrubbed(tmp_path: Path) -> None:
    secret = "s3cr3t-value-1234567"
    SCRUBBER.register(secret)
    path = tmp_path / "events.jsonl"
    with EventJournal(path) as j:
        j.write([AgentError(1, "feed", f"auth failed with {secret}")])
    text = path.read_text()
    assert secret not in text and "***" in text


def test_write_after_close_is_refused(tmp_path: Path) -> None:
    j = EventJournal(tmp_path / "e.jsonl")
    j.close()
    with pytest.raises(ValueError, match="closed"):
        j.write([SessionEvent(1, "x")])
