"""What a drill plays: the fault kinds, the market window and the schedule.

Pure data and arithmetic (no I/O, no clock): the same plan and seed give the
same schedule, so a failing drill can be run again as it was.

Times: the market is simulated at ``speed`` market seconds per wall second,
so one wall second of a reconnect is ``speed`` market seconds of candles the
bot receives late (and warms instead of trading: the product's rule). The
schedule is in market time; the runner injects each fault once its market
time has come *and* the previous fault has played out, so faults do not pile
on top of each other on a loaded machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from laptop_agents.domain.errors import UsageError

MINUTE_MS = 60_000
DAY_MS = 86_400_000

# layer: who breaks -- the exchange (through the fake's fault API), the process
# (signals) or the disk (files of the workspace). footprint: rough wall seconds
# the fault and the recovery take, to space the schedule.


@dataclass(frozen=True, slots=True)
class FaultKind:
    name: str
    title: str
    layer: str  # "exchange" | "process" | "disk"
    footprint_s: float


KINDS: tuple[FaultKind, ...] = (
    FaultKind("socket_drop", "the exchange drops the websocket", "exchange", 3.0),
    FaultKind("silent_socket", "the websocket stays connected but sends nothing (pongs still answered) "
                               "for longer than the bot's idle timeout", "exchange", 26.0),
    FaultKind("garbage_frames", "two garbage frames (not JSON) on the websocket", "exchange", 2.0),
    FaultKind("truncated_frames", "two frames cut short (torn JSON) on the websocket", "exchange", 2.0),
    FaultKind("duplicate_candles", "three kline pushes sent twice", "exchange", 1.5),
    FaultKind("out_of_order_candles", "three pushes of an older candle slipped in", "exchange", 1.5),
    FaultKind("candle_gap", "no kline pushes for 1.5 s while connected: the candles jump and the hole "
                            "must be fetched over REST", "exchange", 4.0),
    FaultKind("http_429", "REST answers 429 Too Many Requests (Retry-After) to the backfill of a gap",
              "exchange", 5.0),
    FaultKind("http_5xx", "REST answers 503 and 502 to the backfill of a gap", "exchange", 5.0),
    FaultKind("slow_rest", "the REST backfill of a gap is answered only after 3 s", "exchange", 6.0),
    FaultKind("clock_jump_forward", "the exchange's clock jumps 45 market minutes ahead", "exchange", 3.0),
    FaultKind("clock_jump_back", "the exchange's clock jumps 20 market minutes back", "exchange", 3.0),
    FaultKind("kill9", "kill -9 of the session at a random moment", "process", 5.0),
    FaultKind("hang", "the session freezes (SIGSTOP): the watchdog must notice the silent heartbeat, "
                      "kill and restart it", "process", 10.0),
    FaultKind("full_disk", "the workspace's file system fills up (a small tmpfs)", "disk", 8.0),
    FaultKind("corrupt_journal", "kill -9, then the run's last journal line is torn and garbage appended",
              "disk", 5.0),
    FaultKind("torn_wal", "kill -9, then garbage is appended to the state store's write-ahead log", "disk", 5.0),
)
# Faults of live execution (--live-fake only): the fake's private side breaks,
# or the session dies with an order between the bot and the exchange.
LIVE_KINDS: tuple[FaultKind, ...] = (
    FaultKind("private_ws_drop", "the exchange drops the private websocket (order and fill pushes)", "exchange", 3.0),
    FaultKind("place_5xx", "the next order placement is answered 502 without being performed: an unknown outcome "
                           "the bot must settle by asking for its client id, never by sending again", "exchange", 6.0),
    FaultKind("place_timeout", "the next order placement is performed but its reply comes only after 11 s (the "
                               "client's timeout is 10 s): an unknown outcome settled by client id", "exchange", 14.0),
    FaultKind("delayed_fills", "the pushes of the next two fills are held back 4 s", "exchange", 6.0),
    FaultKind("kill9_in_flight", "kill -9 of the session right after the exchange accepted an order whose reply "
                                 "and pushes are held back: the restart must find it by client id",
              "process", 8.0),
)
KIND_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)
LIVE_KIND_NAMES: tuple[str, ...] = tuple(k.name for k in LIVE_KINDS)
BY_NAME: dict[str, FaultKind] = {k.name: k for k in KINDS + LIVE_KINDS}
# Played twice in a drill ("at random moments").
TWICE = frozenset({"kill9"})
PROCESS_KINDS = frozenset(k.name for k in KINDS + LIVE_KINDS if k.layer != "exchange")


class DrillPlanError(UsageError):
    """A drill option that cannot be used; the message says what is allowed."""


@dataclass(frozen=True)
class DrillPlan:
    """One drill or soak: its market window, speed, seed and fault kinds."""

    mode: str  # "drill" or "soak"
    days: float
    speed: float
    seed: int = 7
    kinds: tuple[str, ...] = KIND_NAMES
    interval_ms: int = MINUTE_MS
    # The first and last parts of the window are fault-free: the warm-up, and
    # room for the faulted run to catch up before the market ends.
    lead_frac: float = 0.06
    tail_frac: float = 0.18
    extra: dict[str, float] = field(default_factory=dict)
    live: bool = False  # --live-fake: the sessions trade on the fake's private side

    def __post_init__(self) -> None:
        if self.mode not in ("drill", "soak"):
            raise DrillPlanError(f"drill mode must be drill or soak, got {self.mode!r}")
        if not 0.02 <= self.days <= 400:
            raise DrillPlanError(f"--days must be between 0.02 and 400, got {self.days:g}")
        if not 1.0 <= self.speed <= 20_000:
            raise DrillPlanError(f"--speed must be between 1 and 20000 market seconds per second, got {self.speed:g}")
        unknown = [k for k in self.kinds if k not in BY_NAME]
        if unknown:
            raise DrillPlanError(f"unknown fault kind {unknown[0]!r}: allowed are {', '.join(KIND_NAMES)} (or none)")
        live_only = [k for k in self.kinds if k in LIVE_KIND_NAMES]
        if live_only and not self.live:
            raise DrillPlanError(f"fault kind {live_only[0]!r} needs --live-fake (live execution on the fake's "
                                 f"private side)")

    @property
    def span_ms(self) -> int:
        return int(round(self.days * DAY_MS / self.interval_ms)) * self.interval_ms

    @property
    def candles(self) -> int:
        return self.span_ms // self.interval_ms

    @property
    def wall_s(self) -> float:
        """Wall seconds the market takes to play at ``speed``."""
        return self.span_ms / 1000.0 / self.speed


# Defaults: ``drill`` a simulated week in about 10 minutes, ``--quick`` a day in
# about 2, ``--soak`` a month of one-minute candles in well under 30 minutes.
DEFAULTS: dict[str, tuple[float, float]] = {
    "drill": (7.0, 1008.0),
    "quick": (1.0, 720.0),
    "soak": (30.0, 2000.0),
}


def parse_kinds(spec: str | None, *, live: bool = False) -> tuple[str, ...]:
    """``--faults``: ``all`` (default), ``none`` or a comma list of kinds."""
    if spec is None or spec.strip() in ("", "all"):
        return KIND_NAMES + LIVE_KIND_NAMES if live else KIND_NAMES
    if spec.strip() == "none":
        return ()
    kinds = tuple(dict.fromkeys(p.strip() for p in spec.split(",") if p.strip()))
    allowed = KIND_NAMES + LIVE_KIND_NAMES if live else KIND_NAMES
    for k in kinds:
        if k in LIVE_KIND_NAMES and not live:
            raise DrillPlanError(f"fault kind {k!r} in --faults needs --live-fake (live execution on the fake's "
                                 f"private side)")
        if k not in allowed:
            raise DrillPlanError(f"unknown fault kind {k!r} in --faults: allowed are all, none, "
                                 f"{', '.join(allowed)}")
    return kinds


@dataclass(frozen=True, slots=True)
class PlannedFault:
    seq: int
    kind: str
    at_ms: int  # market time (the faulted exchange's clock)
    jitter: float  # a seeded 0..1 draw the action may use (e.g. where in a frame to cut)


def window(plan: DrillPlan, wall_now_ms: int) -> tuple[int, int]:
    """``(start_ms, end_ms)`` of the market: it ends an hour before the wall
    clock, so neither the exchange nor a store it wrote ever lies in the
    future of the machine's clock (a restarted session checks that)."""
    end = wall_now_ms - 3_600_000
    end -= end % plan.interval_ms
    return end - plan.span_ms, end


def schedule(plan: DrillPlan, start_ms: int) -> list[PlannedFault]:
    """The faults in market time. A drill plays every kind once (``kill9``
    twice) in a seeded order, spaced by how long each takes; a soak repeats
    the exchange's kinds every day, a few a day, and plays the process and
    disk kinds once in the first days, so that the last weeks are one long
    process whose resources can be watched."""
    rng = random.Random(plan.seed)
    if plan.mode == "drill":
        order = [k for k in plan.kinds for _ in range(2 if k in TWICE else 1)]
        rng.shuffle(order)
        return _spread(plan, start_ms, order, rng, plan.lead_frac, 1.0 - plan.tail_frac)
    # Soak: the process and disk faults, and the silent socket (at soak speed
    # its 24 wall seconds are half a market day), once each in the first part;
    # then the exchange's other faults, three a day, round and round.
    once = [k for k in plan.kinds if k in PROCESS_KINDS or k == "silent_socket"]
    repeat = [k for k in plan.kinds if k not in once]
    rng.shuffle(once)
    phase = min(0.3, 5 * DAY_MS / plan.span_ms)
    tail = min(plan.tail_frac, max(0.05, DAY_MS / plan.span_ms))
    out = _spread(plan, start_ms, once, rng, plan.lead_frac, plan.lead_frac + phase) if once else []
    cursor = 0
    day = 0
    while repeat and day * DAY_MS < plan.span_ms:
        lo = max(day * DAY_MS / plan.span_ms, plan.lead_frac + phase)
        hi = min((day + 1) * DAY_MS / plan.span_ms, 1.0 - tail)
        day += 1
        if hi - lo < 0.2 * DAY_MS / plan.span_ms:
            continue
        todays = [repeat[(cursor + j) % len(repeat)] for j in range(3)]
        cursor += 3
        out += _spread(plan, start_ms, todays, rng, lo, hi)
    return [PlannedFault(i + 1, f.kind, f.at_ms, f.jitter) for i, f in enumerate(out)]


def _spread(plan: DrillPlan, start_ms: int, order: list[str], rng: random.Random, lo: float,
            hi: float) -> list[PlannedFault]:
    """Place ``order`` in ``[lo, hi]`` of the window, each fault a share of it
    proportional to its footprint, at a seeded moment in the first half of its share."""
    if not order:
        return []
    weights = [BY_NAME[k].footprint_s for k in order]
    total = sum(weights)
    span = plan.span_ms * (hi - lo)
    at = start_ms + plan.span_ms * lo
    out = []
    for i, (kind, w) in enumerate(zip(order, weights, strict=True)):
        share = span * w / total
        t = int(at + share * 0.5 * rng.random())
        t -= t % plan.interval_ms
        out.append(PlannedFault(i + 1, kind, t, rng.random()))
        at += share
    return out
