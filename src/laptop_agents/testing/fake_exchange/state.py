"""The fake exchange's state: a simulated clock, the seeded market, armed
faults, live websocket connections and the statistics tests assert on.

Market data comes from :class:`SyntheticMarket` for both REST and websocket,
so the closed candles a client assembles from pushes are the candles REST
history returns. Everything runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from laptop_agents.domain.models import Candle
from laptop_agents.domain.symbols import normalize_symbol
from laptop_agents.domain.timeframes import interval_ms, parse_interval
from laptop_agents.exchange import protocol
from laptop_agents.sources.synthetic import SyntheticMarket
from laptop_agents.testing.fake_exchange.auth import AuthChecker
from laptop_agents.testing.fake_exchange.faults import PRIVATE_ACTION_KINDS, Fault, FaultBook, ScheduledFault
from laptop_agents.testing.fake_exchange.trading import FakeTradingConfig, TradingBook
from laptop_agents.wallclock import now_ms

DAY_MS = 86_400_000
FUNDING_PERIOD_MS = protocol.FUNDING_INTERVAL_H * 3_600_000


@dataclass(frozen=True)
class FakeExchangeConfig:
    """How the fake behaves. Times ending in ``_s`` are wall seconds; ``speed``
    is simulated seconds per wall second (600 = ten 1m candles a second)."""

    seed: int = 7
    symbol: str = "BTCUSDT"
    interval: str = "1m"
    speed: float = 1.0
    start_ms: int | None = None  # simulated start; default: the wall clock at start
    history_bars: int = 20_000  # closed candles available before the start
    push_interval_s: float = 0.5  # kline/ticker/price pushes per connection
    ping_timeout_s: float = protocol.WS_SERVER_PING_TIMEOUT_S
    max_client_msgs: int = protocol.WS_MAX_CLIENT_MSGS
    msg_window_s: float = protocol.WS_MSG_WINDOW_S
    rest_limit_per_s: int = protocol.MARKET_REST_PER_S  # 0 disables
    numbers: str = "str"  # wire numbers: "str", "num" or "mixed"
    funding_as_list: bool = False  # funding_rate data as a one-item list (M)
    max_final_pushes: int = 5  # closed candles re-pushed with final values after a rollover
    faults: tuple[ScheduledFault, ...] = ()
    trading: FakeTradingConfig = field(default_factory=FakeTradingConfig)  # accounts, fees, matching
    # Where prices are counted from: None = the fake's own origin (the same
    # market relative to its start in every run); 0 = the Unix epoch, the
    # mock source's count, so a mock-fed session sees the fake's own prices.
    epoch_ts: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbol", normalize_symbol(self.symbol))
        object.__setattr__(self, "interval", parse_interval(self.interval))
        if self.speed <= 0 or self.push_interval_s <= 0 or self.ping_timeout_s <= 0:
            raise ValueError("speed, push_interval_s and ping_timeout_s must be positive")
        if self.numbers not in ("str", "num", "mixed"):
            raise ValueError("numbers must be 'str', 'num' or 'mixed'")
        if self.history_bars < 1:
            raise ValueError("history_bars must be >= 1")


class SimClock:
    """Simulated UTC ms: ``start_ms`` plus wall time elapsed times ``speed``."""

    def __init__(self, speed: float, start_ms: int | None = None) -> None:
        self.speed = speed
        self.start_ms = now_ms() if start_ms is None else start_ms
        self._t0 = time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._t0) * 1000.0 * self.speed)


@dataclass(eq=False)
class WsConn:
    """One public websocket connection and what the server saw of it."""

    id: int
    opened: float
    last_ping: float
    channels: dict[str, str] = field(default_factory=dict)  # channel -> symbol
    msg_times: deque[float] = field(default_factory=deque)
    messages: int = 0
    pings: int = 0
    max_ping_gap_s: float = 0.0
    max_msgs_in_window: int = 0
    last_index: int | None = None
    frames_sent: int = 0
    close_reason: str | None = None
    close_request: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = 1000

    def request_close(self, code: int, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.close_code = code
        self.close_request.set()

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channels": sorted(self.channels),
            "messages": self.messages,
            "pings": self.pings,
            "max_ping_gap_s": round(self.max_ping_gap_s, 3),
            "max_msgs_in_window": self.max_msgs_in_window,
            "frames_sent": self.frames_sent,
            "close_reason": self.close_reason,
        }


@dataclass(eq=False)
class PrivateSession:
    """One private websocket: its connection record, the account it logged in
    as, and its outbox of (release loop time, frame) -- a delayed fill holds
    the frames behind it too, as a stalled stream would."""

    conn: WsConn
    uid: str | None = None
    outbox: asyncio.Queue[tuple[float, str]] = field(default_factory=asyncio.Queue)


class FakeExchange:
    """Server-side state shared by the REST routes, the websocket and the control API."""

    def __init__(self, config: FakeExchangeConfig) -> None:
        self.config = config
        self.clock = SimClock(config.speed, config.start_ms)
        self.interval_ms = interval_ms(config.interval)
        start_open = protocol.candle_open(self.clock.start_ms, self.interval_ms)
        origin = start_open - config.history_bars * self.interval_ms
        # Counted from its own origin: the fake's market relative to its start is
        # the same in every run, which its tests and drills rely on.
        epoch = origin if config.epoch_ts is None else config.epoch_ts
        self.market = SyntheticMarket(config.seed, origin, self.interval_ms, epoch_ts=epoch)
        self.faults = FaultBook()
        self.conns: dict[int, WsConn] = {}
        self.closed_conns: deque[dict[str, Any]] = deque(maxlen=200)
        self._next_conn = 1
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started_mono = time.monotonic()
        self.stats: dict[str, Any] = {
            "ws_connections": 0,
            "ws_rejected": 0,
            "ws_client_messages": 0,
            "ws_pings": 0,
            "ws_subscribes": 0,
            "ws_rate_violations": 0,
            "ws_ping_timeouts": 0,
            "ws_max_msgs_in_window": 0,
            "ws_max_ping_gap_s": 0.0,
            "ws_frames_sent": 0,
            "ws_disconnects_injected": 0,
            "rest_requests": {},
            "rest_rate_limited": 0,
            "rest_faults": 0,
        }
        self._rest_times: dict[str, deque[float]] = {}
        self._rng = random.Random(config.seed)
        self._day_stats: tuple[int, tuple[float, float, float, float, float]] | None = None
        # The private side: the trading book, its signature checks, private sockets.
        self.trading = TradingBook(config.trading, market=self.market, symbol=config.symbol, now_ms=self.now_ms,
                                   faults=self.faults, seed=config.seed)
        self.auth = AuthChecker(config.trading.accounts, config.trading.recv_window_ms)
        self.private_sessions: dict[int, PrivateSession] = {}
        self._next_private = 1

    # -- time & market -----------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def index_now(self) -> int:
        return self.market.index_at(self.now_ms())

    def candle_at(self, index: int, now: int) -> Candle:
        """Closed candle ``index``, or the forming one as seen at ``now``."""
        open_ts = self.market.open_ts(index)
        if open_ts + self.interval_ms <= now:
            return self.market.candle(index)
        return self.market.partial(index, now - open_ts)

    def fmt(self, value: float, key: str = "") -> Any:
        """A wire number: string, JSON number, or (mixed) either by field name."""
        mode = self.config.numbers
        if mode == "num" or (mode == "mixed" and len(key) % 2 == 0):
            return value
        return str(value)

    def day_stats(self, index: int) -> tuple[float, float, float, float, float]:
        """(open, high, low, base volume, quote volume) over the last 24 h of candles."""
        if self._day_stats is not None and self._day_stats[0] == index:
            return self._day_stats[1]
        n = max(1, min(index + 1, DAY_MS // self.interval_ms))
        candles = self.market.candles(index - n + 1, n)
        vol = sum(c.volume for c in candles)
        stats = (
            candles[0].open,
            max(c.high for c in candles),
            min(c.low for c in candles),
            round(vol, 4),
            round(sum(c.volume * c.close for c in candles), 2),
        )
        self._day_stats = (index, stats)
        return stats

    def funding(self, now: int) -> tuple[float, int, int]:
        """(rate fraction, current period start, next funding time)."""
        period_start = now - now % FUNDING_PERIOD_MS
        return self.market.funding_rate(now), period_start, period_start + FUNDING_PERIOD_MS

    # -- websocket registry --------------------------------------------------------
    def open_conn(self, now: float) -> WsConn:
        conn = WsConn(id=self._next_conn, opened=now, last_ping=now)
        self._next_conn += 1
        self.conns[conn.id] = conn
        self.stats["ws_connections"] += 1
        return conn

    def close_conn(self, conn: WsConn) -> None:
        self.conns.pop(conn.id, None)
        self.closed_conns.append(conn.info())

    def note_client_message(self, conn: WsConn, now: float) -> bool:
        """Count a client message; False when it breaks the per-second limit."""
        conn.messages += 1
        self.stats["ws_client_messages"] += 1
        times = conn.msg_times
        times.append(now)
        while times and times[0] <= now - self.config.msg_window_s:
            times.popleft()
        conn.max_msgs_in_window = max(conn.max_msgs_in_window, len(times))
        self.stats["ws_max_msgs_in_window"] = max(self.stats["ws_max_msgs_in_window"], len(times))
        if len(times) > self.config.max_client_msgs:
            self.stats["ws_rate_violations"] += 1
            return False
        return True

    def note_ping_gap(self, conn: WsConn, now: float) -> None:
        gap = now - conn.last_ping
        conn.max_ping_gap_s = max(conn.max_ping_gap_s, gap)
        self.stats["ws_max_ping_gap_s"] = max(self.stats["ws_max_ping_gap_s"], round(gap, 3))

    def note_ping(self, conn: WsConn, now: float) -> None:
        self.note_ping_gap(conn, now)
        conn.last_ping = now
        conn.pings += 1
        self.stats["ws_pings"] += 1

    # -- REST bookkeeping -----------------------------------------------------------
    def note_rest(self, path: str, client: str, now: float) -> bool:
        """Count a REST request; False when the client exceeds the per-IP limit."""
        reqs = self.stats["rest_requests"]
        reqs[path] = reqs.get(path, 0) + 1
        limit = self.config.rest_limit_per_s
        if limit <= 0:
            return True
        times = self._rest_times.setdefault(client, deque())
        times.append(now)
        while times and times[0] <= now - 1.0:
            times.popleft()
        if len(times) > limit:
            self.stats["rest_rate_limited"] += 1
            return False
        return True

    def open_private(self, now: float) -> PrivateSession:
        session = PrivateSession(WsConn(id=self._next_private, opened=now, last_ping=now))
        self._next_private += 1
        self.private_sessions[session.conn.id] = session
        self.stats["private_ws_connections"] = self.stats.get("private_ws_connections", 0) + 1
        return session

    def close_private(self, session: PrivateSession) -> None:
        self.private_sessions.pop(session.conn.id, None)
        self.closed_conns.append({**session.conn.info(), "private": True, "account": session.uid})

    # -- faults ---------------------------------------------------------------------
    def apply_fault(self, fault: Fault) -> None:
        """Arm (or, for ``disconnect``/``private_disconnect``/``position_by_hand``, perform) a fault now."""
        now = asyncio.get_running_loop().time()
        if fault.kind in ("disconnect", "private_disconnect"):
            self.faults.fired.append(fault.kind)
            conns = list(self.conns.values()) if fault.kind == "disconnect" else []
            conns += [s.conn for s in self.private_sessions.values()]
            for conn in conns:
                self.stats["ws_disconnects_injected"] += 1
                conn.request_close(fault.close_code, "injected disconnect")
            return
        if fault.kind in PRIVATE_ACTION_KINDS:
            self.faults.fired.append(fault.kind)
            self.trading.act(fault)
            return
        self.faults.arm(fault, now)

    def snapshot(self) -> dict[str, Any]:
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.stats.items()}
        out["ws_open"] = len(self.conns)
        out["connections"] = [c.info() for c in self.conns.values()]
        out["closed_connections"] = list(self.closed_conns)
        out["faults_fired"] = list(self.faults.fired)
        out["private"] = {**self.trading.stats, "ws_open": len(self.private_sessions),
                          "auth_rejected": dict(self.auth.rejected)}
        out["now_ms"] = self.now_ms()
        out["uptime_s"] = round(time.monotonic() - self.started_mono, 3)
        return out
