"""Deterministic client order ids: the same intent always gets the same id.

An intent is identified by (run id, candle time, intent sequence within that
candle). Its client id is committed before the order is sent, so after a crash
the restarted session derives the very same id and asks the exchange about it
instead of sending the order again.

Layout (24 characters of ``[0-9a-z]``, inside the ``<= 32 [A-Za-z0-9]`` rule
kept in :mod:`protocol_private`)::

    "b" + run tag (10, base36 of sha256(run id)) + candle ms (9, base36) + sequence (4, base36)

Fixed widths make the mapping injective within a run: two different
(candle time, sequence) pairs can never give the same id. Across runs the run
tag is a 52-bit hash: two run ids share a tag with probability ~2^-52 per pair.
The leading version letter lets reconciliation recognise the bot's own orders.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from laptop_agents.domain.models import DomainError
from laptop_agents.exchange import protocol_private

VERSION = "b"
RUN_TAG_LEN = 10
TS_WIDTH = 9  # 36^9 ms ~ year 5100: every valid timestamp fits
SEQ_WIDTH = 4
MAX_SEQ = 36**SEQ_WIDTH - 1  # 1,679,615 intents per candle
MAX_TS = 36**TS_WIDTH - 1
CLIENT_ID_LEN = len(VERSION) + RUN_TAG_LEN + TS_WIDTH + SEQ_WIDTH
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

assert CLIENT_ID_LEN <= protocol_private.CLIENT_ID_MAX_LEN


class ClientIdError(DomainError):
    """A value that cannot be encoded in a client id."""


def _base36(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 36)
        out.append(_DIGITS[digit])
    if value:
        raise ClientIdError(f"value does not fit {width} base36 digits")
    return "".join(reversed(out))


def run_tag(run_id: str) -> str:
    """The 10-character tag of a run id (stable across processes and versions)."""
    if not run_id:
        raise ClientIdError("run id is empty")
    digest = int.from_bytes(hashlib.sha256(run_id.encode("utf-8")).digest()[:8], "big")
    return _base36(digest % 36**RUN_TAG_LEN, RUN_TAG_LEN)


def client_order_id(run_id: str, candle_ts: int, seq: int) -> str:
    """The client id of intent number ``seq`` (0-based) decided on the candle opening at ``candle_ts``."""
    if not 0 <= candle_ts <= MAX_TS:
        raise ClientIdError(f"candle time {candle_ts} is out of range 0..{MAX_TS}")
    if not 0 <= seq <= MAX_SEQ:
        raise ClientIdError(f"intent sequence {seq} is out of range 0..{MAX_SEQ}")
    return VERSION + run_tag(run_id) + _base36(candle_ts, TS_WIDTH) + _base36(seq, SEQ_WIDTH)


@dataclass(frozen=True, slots=True)
class ClientIdParts:
    run_tag: str
    candle_ts: int
    seq: int


def parse_client_order_id(client_id: str) -> ClientIdParts | None:
    """The parts of one of our ids, or None for any other id (manual, another bot)."""
    if len(client_id) != CLIENT_ID_LEN or not client_id.startswith(VERSION):
        return None
    if any(ch not in _DIGITS for ch in client_id):
        return None
    tag_end = len(VERSION) + RUN_TAG_LEN
    ts_end = tag_end + TS_WIDTH
    return ClientIdParts(client_id[len(VERSION):tag_end], int(client_id[tag_end:ts_end], 36), int(client_id[ts_end:], 36))


def is_from_run(client_id: str | None, run_id: str) -> bool:
    """Whether ``client_id`` was made by :func:`client_order_id` for ``run_id``."""
    parts = parse_client_order_id(client_id) if client_id else None
    return parts is not None and parts.run_tag == run_tag(run_id)
