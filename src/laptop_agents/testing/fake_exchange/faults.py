"""Faults the fake exchange injects on command or on a schedule.

A fault is plain data (:class:`Fault`); the :class:`FaultBook` holds the armed
ones and hands them out as frames and requests pass by. Everything here runs
on the server's event loop, so it needs no locks.

Schedule syntax (``--faults``), comma-separated ``KIND[=VALUE]@SECONDS[:ARG]``
where SECONDS is the wall time after start:

- ``disconnect@30``          close every websocket (``disconnect=1001@30`` sets the close code)
- ``silence@90:20``          no pushes for 20 s while staying connected (pongs still answered)
- ``silence_all@90:20``      ... and no pongs either
- ``malformed@40:3``         the next 3 pushes are not valid JSON (garbage)
- ``truncated@40:3``         the next 3 pushes are cut short (a torn frame: valid JSON up to the cut)
- ``bad_shape@40:3``         the next 3 pushes are JSON of the wrong shape
- ``duplicate@40:2``         the next 2 kline pushes are sent twice
- ``out_of_order@40:2``      2 kline pushes for an older candle are slipped in
- ``http=429@10:5``          the next 5 REST requests get HTTP 429 (also 500, 502, 503...)
- ``code=10006@10:2``        the next 2 REST replies carry that envelope code (HTTP 200)
- ``slow@12:2.5``            the next REST reply is delayed 2.5 s
- ``rest_duplicate_rows@5:1`` / ``rest_shuffle_rows@5:1``  kline rows repeated / out of order
- ``reject_connect@5:3``     the next 3 websocket handshakes are refused
- ``kline_gap@40:2``         no kline pushes for 2 s (connected, other channels and pongs go on):
                             the client sees the candles jump and must fetch the hole over REST
- ``clock_jump=600@40``      the exchange's clock jumps 600 simulated seconds (negative: back)

Private side (the fake trades; see ``trading.py``):

- ``place_timeout@10:5``         the next placement is accepted, then its reply waits 5 s
                                 (a client timeout); ``accepted: false`` in JSON: never recorded
- ``cancel_5xx=502@10:1``        the next cancel is performed, then answered with HTTP 502
                                 (``accepted: false``: not performed)
- ``reject_order=20003@10:2``    the next 2 placements are refused with that code
- ``private_disconnect@30``      close every private websocket
- ``delay_fills@10:5``           the pushes of the next fill (``count``) are held back 5 s
- ``delay_pushes@10:5``          the pushes of the next order placed (``count``), its acceptance
                                 first, are held back 5 s (the bot hears of it by REST only)
- ``position_by_hand=0.01@60``   someone trades 0.01 (negative: sells) on the account by hand
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from laptop_agents.domain.errors import UsageError

WS_FRAME_KINDS = ("malformed", "truncated", "bad_shape", "duplicate", "out_of_order")
REST_KINDS = ("http_status", "error_code", "slow", "rest_duplicate_rows", "rest_shuffle_rows")
OTHER_KINDS = ("disconnect", "silence", "reject_connect", "kline_gap", "clock_jump")
PRIVATE_QUEUED_KINDS = ("place_timeout", "cancel_5xx", "reject_order", "delay_fills", "delay_pushes")
PRIVATE_ACTION_KINDS = ("private_disconnect", "position_by_hand")
PRIVATE_KINDS = PRIVATE_QUEUED_KINDS + PRIVATE_ACTION_KINDS
FAULT_KINDS: tuple[str, ...] = WS_FRAME_KINDS + REST_KINDS + OTHER_KINDS + PRIVATE_KINDS
_ALIASES = {"http": "http_status", "code": "error_code", "silence_all": "silence"}


class FaultSpecError(UsageError):
    """A fault that cannot be understood; the message names what is allowed."""


@dataclass(slots=True)
class Fault:
    """One armed fault. ``count`` is how many frames/requests it affects;
    ``seconds`` is a duration (silence) or a delay (slow, place_timeout,
    delay_fills, delay_pushes); ``path`` restricts a REST fault to paths starting with it.
    Private faults: ``accepted`` (did the exchange act before failing the
    reply), ``qty`` (position_by_hand, signed), ``account`` (a uid; default:
    every account for queued faults, the first account for position_by_hand).
    ``market_s``: the signed jump of ``clock_jump``, in simulated seconds."""

    kind: str
    count: int = 1
    seconds: float = 0.0
    status: int | None = None
    code: int | None = None
    msg: str = ""
    retry_after: float | None = None
    path: str | None = None
    pong: bool = True
    close_code: int = 1011
    accepted: bool = True
    qty: float = 0.0
    account: str | None = None
    market_s: float = 0.0

    def __post_init__(self) -> None:
        self.kind = _ALIASES.get(self.kind, self.kind)
        if self.kind not in FAULT_KINDS:
            raise FaultSpecError(f"unknown fault kind {self.kind!r}: allowed are {', '.join(FAULT_KINDS)}")
        if self.kind in ("place_timeout", "delay_fills", "delay_pushes") and self.seconds == 0:
            self.seconds = 5.0
        if self.kind == "cancel_5xx" and self.status is None:
            self.status = 502
        if self.kind == "reject_order" and self.code is None:
            self.code = 20003
        if self.kind == "cancel_5xx" and not 500 <= int(self.status or 0) <= 599:
            raise FaultSpecError(f"fault cancel_5xx needs a status 500..599, got {self.status}")
        if self.kind == "position_by_hand" and self.qty == 0:
            raise FaultSpecError("fault position_by_hand needs a non-zero qty (negative sells)")
        if self.count < 1:
            raise FaultSpecError(f"fault {self.kind}: count must be >= 1, got {self.count}")
        if self.seconds < 0:
            raise FaultSpecError(f"fault {self.kind}: seconds must be >= 0, got {self.seconds}")
        if self.kind == "http_status" and (self.status is None or not 400 <= self.status <= 599):
            raise FaultSpecError(f"fault http_status needs a status 400..599, got {self.status}")
        if self.kind == "error_code" and (self.code is None or self.code == 0):
            raise FaultSpecError("fault error_code needs a non-zero code")
        if self.kind in ("silence", "kline_gap") and self.seconds <= 0:
            raise FaultSpecError(f"fault {self.kind} needs seconds > 0")
        if self.kind == "clock_jump" and self.market_s == 0:
            raise FaultSpecError("fault clock_jump needs a non-zero market_s (simulated seconds; negative goes back)")

    @classmethod
    def from_dict(cls, obj: Any) -> Fault:
        if not isinstance(obj, dict) or "kind" not in obj:
            raise FaultSpecError("a fault is a JSON object with at least a 'kind'")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise FaultSpecError(f"unknown fault field(s) {', '.join(unknown)}: allowed are {', '.join(sorted(known))}")
        try:
            return cls(**obj)
        except TypeError as exc:
            raise FaultSpecError(f"bad fault {json.dumps(obj)[:100]}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    at_s: float
    fault: Fault


def parse_schedule(spec: str | None) -> list[ScheduledFault]:
    """``"disconnect@30,silence@90:20"`` -> scheduled faults, sorted by time."""
    out: list[ScheduledFault] = []
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        head, at_sep, tail = part.partition("@")
        if not at_sep:
            raise FaultSpecError(f"fault {part!r}: expected KIND[=VALUE]@SECONDS[:ARG], e.g. disconnect@30")
        when, _, arg = tail.partition(":")
        kind, _, value = head.partition("=")
        kind = kind.strip()
        try:
            at_s = float(when)
            fault = _fault_from_parts(kind, value.strip(), arg.strip())
        except ValueError as exc:
            if isinstance(exc, FaultSpecError):
                raise
            raise FaultSpecError(f"fault {part!r}: {exc}") from None
        if at_s < 0:
            raise FaultSpecError(f"fault {part!r}: time must be >= 0")
        out.append(ScheduledFault(at_s, fault))
    return sorted(out, key=lambda s: s.at_s)


def _fault_from_parts(kind: str, value: str, arg: str) -> Fault:
    canonical = _ALIASES.get(kind, kind)
    if canonical == "http_status":
        return Fault("http_status", status=int(value or 500), count=int(arg or 1))
    if canonical == "error_code":
        return Fault("error_code", code=int(value or 10006), count=int(arg or 1))
    if canonical == "silence":
        return Fault("silence", seconds=float(arg or 10), pong=kind != "silence_all")
    if canonical == "slow":
        return Fault("slow", seconds=float(arg or 2))
    if canonical == "kline_gap":
        return Fault("kline_gap", seconds=float(arg or 2))
    if canonical == "clock_jump":
        return Fault("clock_jump", market_s=float(value or 0))
    if canonical == "disconnect":
        return Fault("disconnect", close_code=int(value or 1011))
    if canonical in ("place_timeout", "delay_fills", "delay_pushes"):
        return Fault(canonical, seconds=float(arg or 5))
    if canonical == "cancel_5xx":
        return Fault("cancel_5xx", status=int(value or 502), count=int(arg or 1))
    if canonical == "reject_order":
        return Fault("reject_order", code=int(value or 20003), count=int(arg or 1))
    if canonical == "private_disconnect":
        return Fault("private_disconnect", close_code=int(value or 1011))
    if canonical == "position_by_hand":
        return Fault("position_by_hand", qty=float(value or 0))
    return Fault(canonical, count=int(arg or 1))


@dataclass
class FaultBook:
    """Armed faults, consumed as frames and requests pass."""

    frame_faults: list[Fault] = field(default_factory=list)
    rest_faults: list[Fault] = field(default_factory=list)
    reject_connects: int = 0
    silent_until: float = 0.0  # loop time
    silence_pongs: bool = False
    kline_gap_until: float = 0.0  # loop time
    private_faults: list[Fault] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.frame_faults.clear()
        self.rest_faults.clear()
        self.private_faults.clear()
        self.reject_connects = 0
        self.silent_until = 0.0
        self.silence_pongs = False
        self.kline_gap_until = 0.0

    def arm(self, fault: Fault, now: float) -> None:
        """Arm a fault (``disconnect`` is acted on by the exchange itself)."""
        self.fired.append(fault.kind)
        if fault.kind in WS_FRAME_KINDS:
            self.frame_faults.append(Fault(**fault.to_dict()))
        elif fault.kind in REST_KINDS:
            self.rest_faults.append(Fault(**fault.to_dict()))
        elif fault.kind == "reject_connect":
            self.reject_connects += fault.count
        elif fault.kind in PRIVATE_QUEUED_KINDS:
            self.private_faults.append(Fault(**fault.to_dict()))
        elif fault.kind == "silence":
            self.silent_until = max(self.silent_until, now + fault.seconds)
            self.silence_pongs = not fault.pong
        elif fault.kind == "kline_gap":
            self.kline_gap_until = max(self.kline_gap_until, now + fault.seconds)

    def silent(self, now: float) -> bool:
        return now < self.silent_until

    def kline_gap(self, now: float) -> bool:
        return now < self.kline_gap_until

    def pongs_silent(self, now: float) -> bool:
        return self.silent(now) and self.silence_pongs

    def take_frame_fault(self) -> str | None:
        """The kind of fault the next kline push suffers, if any."""
        if not self.frame_faults:
            return None
        fault = self.frame_faults[0]
        fault.count -= 1
        if fault.count <= 0:
            self.frame_faults.pop(0)
        return fault.kind

    def take_rest_fault(self, path: str, kinds: tuple[str, ...] = REST_KINDS) -> Fault | None:
        for i, fault in enumerate(self.rest_faults):
            if fault.kind in kinds and (fault.path is None or path.startswith(fault.path)):
                fault.count -= 1
                if fault.count <= 0:
                    self.rest_faults.pop(i)
                return fault
        return None

    def take_private(self, kind: str, account: str) -> Fault | None:
        """The next armed private fault of ``kind`` for ``account``, consumed."""
        for i, fault in enumerate(self.private_faults):
            if fault.kind == kind and (fault.account is None or fault.account == account):
                taken = Fault(**{**fault.to_dict(), "count": 1})
                fault.count -= 1
                if fault.count <= 0:
                    self.private_faults.pop(i)
                return taken
        return None

    def take_reject_connect(self) -> bool:
        if self.reject_connects > 0:
            self.reject_connects -= 1
            return True
        return False
