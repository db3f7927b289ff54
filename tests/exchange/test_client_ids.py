"""Client order ids: deterministic, inside the wire rule, collision-free."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from laptop_agents.exchange import client_ids, protocol_private
from laptop_agents.exchange.client_ids import (
    ClientIdError,
    client_order_id,
    is_from_run,
    parse_client_order_id,
    run_tag,
)

TS = 1_767_229_200_000
timestamps = st.integers(min_value=0, max_value=client_ids.MAX_TS)
seqs = st.integers(min_value=0, max_value=client_ids.MAX_SEQ)


def test_same_intent_same_id_and_within_the_wire_rule() -> None:
    a = client_order_id("live-20260101-000000-abc123", TS, 0)
    assert a == client_order_id("live-20260101-000000-abc123", TS, 0)  # a restart derives the same id
    assert protocol_private.CLIENT_ID_PATTERN.fullmatch(a)
    assert len(a) == client_ids.CLIENT_ID_LEN <= protocol_private.CLIENT_ID_MAX_LEN
    assert run_tag("r1") == run_tag("r1") and len(run_tag("r1")) == client_ids.RUN_TAG_LEN


@given(st.text(min_size=1, max_size=80), timestamps, seqs)
def test_every_id_is_in_the_charset_and_parses_back(run_id: str, ts: int, seq: int) -> None:
    cid = client_order_id(run_id, ts, seq)
    assert protocol_private.CLIENT_ID_PATTERN.fullmatch(cid)
    parts = parse_client_order_id(cid)
    assert parts is not None and (parts.run_tag, parts.candle_ts, parts.seq) == (run_tag(run_id), ts, seq)
    assert is_from_run(cid, run_id)


@given(timestamps, seqs, timestamps, seqs)
def test_distinct_intents_of_a_run_never_collide(ts1: int, s1: int, ts2: int, s2: int) -> None:
    a = client_order_id("run", ts1, s1)
    b = client_order_id("run", ts2, s2)
    assert (a == b) == ((ts1, s1) == (ts2, s2))


def test_no_collision_over_a_year_of_minutes_and_many_runs() -> None:
    ids = {client_order_id("live-x", TS + m * 60_000, s) for m in range(0, 525_600, 97) for s in range(3)}
    assert len(ids) == len(range(0, 525_600, 97)) * 3
    tags = {run_tag(f"live-20260101-{i:06d}") for i in range(20_000)}
    assert len(tags) == 20_000


def test_other_ids_are_not_ours_and_bounds_are_refused() -> None:
    cid = client_order_id("run-a", TS, 5)
    assert not is_from_run(cid, "run-b")
    for other in ("abc123", "B" + cid[1:], cid + "0", cid[:-1] + "_", "", None):
        assert not is_from_run(other, "run-a")
    with pytest.raises(ClientIdError):
        client_order_id("run", -1, 0)
    with pytest.raises(ClientIdError):
        client_order_id("run", TS, client_ids.MAX_SEQ + 1)
    with pytest.raises(ClientIdError):
        client_order_id("", TS, 0)
