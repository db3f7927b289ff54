"""The Supervisor's agents: small deterministic objects, one job each.

Each agent keeps its indicators and its last result in plain attributes
(``__slots__``; picklable, bounded memory) and exposes one or two methods with
plain inputs. The Supervisor (``supervisor.py``) runs them in the spec's order
on every closed candle:

1. :class:`MarketIntake` — EMA20/EMA50 trend, ATR14, volatility regime.
2. :class:`DerivativesFlows` — funding-rate gate, refreshed every N bars.
3. :class:`CvdDivergence` — synthetic CVD and bullish/bearish divergence.
4. :class:`SetupSignal` — pullback-ribbon (limit) or liquidity-sweep (market) setup.
5. :class:`ExecutionRiskSentinel` — cooldown, funding NO_TRADE/HALF_SIZE, sizing.
6. :class:`PendingTrigger` — cancels a limit entry not filled in time.
7. :class:`RiskGate` — halts, entries_blocked, reward/risk, hard limits.
8. :class:`JournalCoach` — journal lines for plans, fills, exits, cancels.

Directions are ints (+1 long / up / bullish, -1 short / down / bearish, 0
none) and gates/regimes plain strings, because this code runs once per candle
over years of 1-minute data and Enum lookups would dominate its cost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from laptop_agents.domain.events import (
    Event,
    FillEvent,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    TradeClosed,
)
from laptop_agents.domain.models import Instrument
from laptop_agents.strategy.emit import journal_event
from laptop_agents.strategy.indicators import (
    ATR,
    CVD,
    EMA,
    RollingMax,
    RollingMin,
    RollingVWAP,
    VolumeMean,
)
from laptop_agents.strategy.params import (
    CvdParams,
    EngineParams,
    FundingGates,
    MarketParams,
    RiskParams,
    SetupsParams,
)
from laptop_agents.strategy.sizing import leverage, notional_usd, position_size, round_away, round_to_tick

UP, DOWN, CHOP = 1, -1, 0
TREND_NAMES = {UP: "UP", DOWN: "DOWN", CHOP: "CHOP"}
DIVERGENCE_NAMES = {1: "BULLISH", -1: "BEARISH", 0: "NONE"}

CHOP_LOWVOL, NORMAL, TREND_HIGHVOL = "CHOP_LOWVOL", "NORMAL", "TREND_HIGHVOL"

GATE_OK, GATE_HALF, GATE_NO_TRADE, GATE_HALT = "OK", "HALF_SIZE", "NO_TRADE", "HALT"

LIMIT, MARKET = "LIMIT", "MARKET"

# Float noise must not move a rate sitting exactly on a threshold to the other side.
_EDGE = 1e-12


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class MarketIntake:
    """Trend from EMA(fast)/EMA(slow) (SMA-seeded) and the close; ATR; regime.

    Trend UP when ema_fast > ema_slow and close > ema_fast, DOWN mirrored,
    else CHOP. Regime CHOP_LOWVOL when atr/close < lowvol ratio (0.002),
    TREND_HIGHVOL when > highvol ratio (0.006), else NORMAL. ``ready`` is false
    until both EMAs and the ATR have warmed up (trend CHOP meanwhile).
    """

    name: ClassVar[str] = "market_intake"
    __slots__ = ("atr", "close", "ema_fast", "ema_slow", "highvol", "lowvol", "ready", "regime", "trend")

    def __init__(self, p: MarketParams) -> None:
        self.ema_fast = EMA(p.ema_fast)
        self.ema_slow = EMA(p.ema_slow)
        self.atr = ATR(p.atr_period)
        self.lowvol = p.lowvol_atr_ratio
        self.highvol = p.highvol_atr_ratio
        self.trend = CHOP
        self.regime = NORMAL
        self.ready = False
        self.close = 0.0

    def update(self, high: float, low: float, close: float) -> None:
        f = self.ema_fast.update(close)
        s = self.ema_slow.update(close)
        a = self.atr.update(high, low, close)
        self.close = close
        if f is None or s is None or a is None:
            self.ready = False
            self.trend = CHOP
            return
        self.ready = True
        if f > s and close > f:
            self.trend = UP
        elif f < s and close < f:
            self.trend = DOWN
        else:
            self.trend = CHOP
        r = a / close
        if r < self.lowvol:
            self.regime = CHOP_LOWVOL
        elif r > self.highvol:
            self.regime = TREND_HIGHVOL
        else:
            self.regime = NORMAL

    # ``dump``/``load`` (every agent): the state as plain tuples for the
    # Strategy's ``snapshot_state``; configuration is not state (it comes
    # from the freshly built strategy on restore).
    def dump(self) -> tuple[Any, ...]:
        return (self.ema_fast.dump(), self.ema_slow.dump(), self.atr.dump(), self.trend, self.regime,
                self.ready, self.close)  # fmt: skip

    def load(self, state: Sequence[Any]) -> None:
        fast, slow, atr, self.trend, self.regime, self.ready, self.close = state
        self.ema_fast.load(fast)
        self.ema_slow.load(slow)
        self.atr.load(atr)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class DerivativesFlows:
    """Funding-rate gate. The latest observed rate (a fraction per 8 h) is
    snapshotted every ``derivatives_refresh_bars`` bars (and on the first bar):

    |rate| >= halt → HALT; >= no_trade → NO_TRADE; >= half_size → HALF_SIZE
    (size x 0.5); below → OK; no rate observed yet → HALF_SIZE ("missing
    funding → half size"). Thresholds are configured in percent per 8 h.
    """

    name: ClassVar[str] = "derivatives_flows"
    __slots__ = ("_bars", "gate", "half", "halt", "latest", "no_trade", "rate", "refresh_bars", "size_mult")

    def __init__(self, gates: FundingGates, engine: EngineParams) -> None:
        self.halt = gates.halt_funding_8h / 100.0
        self.no_trade = gates.no_trade_funding_8h / 100.0
        self.half = gates.half_size_funding_8h / 100.0
        self.refresh_bars = engine.derivatives_refresh_bars
        self.latest: float | None = None
        self.rate: float | None = None
        self._bars = 0
        self.gate = GATE_HALF
        self.size_mult = 0.5

    def observe(self, rate: float) -> None:
        self.latest = rate

    def update(self) -> None:
        if self._bars % self.refresh_bars == 0:
            self.refresh()
        self._bars += 1

    def refresh(self) -> None:
        r = self.latest
        self.rate = r
        if r is None:
            self.gate, self.size_mult = GATE_HALF, 0.5
            return
        a = abs(r) * (1.0 + _EDGE)
        if a >= self.halt:
            self.gate, self.size_mult = GATE_HALT, 0.0
        elif a >= self.no_trade:
            self.gate, self.size_mult = GATE_NO_TRADE, 0.0
        elif a >= self.half:
            self.gate, self.size_mult = GATE_HALF, 0.5
        else:
            self.gate, self.size_mult = GATE_OK, 1.0

    def dump(self) -> tuple[Any, ...]:
        return (self.latest, self.rate, self._bars, self.gate, self.size_mult)

    def load(self, state: Sequence[Any]) -> None:
        self.latest, self.rate, self._bars, self.gate, self.size_mult = state


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class CvdDivergence:
    """Synthetic CVD (per-candle delta ``((c-l)-(h-c))/(h-l)*v``, cumulated)
    and divergence against the previous ``lookback`` (4) candles:

    BULLISH (+1) when the low is below every one of the previous lows while
    the CVD is not below every one of the previous CVD values; BEARISH (-1)
    mirrored on highs. A bar that qualifies both ways (an outside bar with a
    CVD inside its recent range) is ambiguous and gives NONE (0).

    The windows are a few bars long, so they are plain bounded deques scanned
    with ``min``/``max`` (O(lookback) = O(1)); for 4 values that is cheaper
    than maintaining four monotonic deques, and the CVD window is only scanned
    when price made a new extreme.
    """

    name: ClassVar[str] = "cvd_divergence"
    __slots__ = ("_cvds", "_highs", "_lows", "cvd", "signal")

    def __init__(self, p: CvdParams) -> None:
        n = p.lookback
        self.cvd = CVD()
        self._lows: deque[float] = deque(maxlen=n)
        self._highs: deque[float] = deque(maxlen=n)
        self._cvds: deque[float] = deque(maxlen=n)
        self.signal = 0

    def update(self, high: float, low: float, close: float, volume: float) -> None:
        cvd = self.cvd.update(high, low, close, volume)
        lows, highs, cvds = self._lows, self._highs, self._cvds
        sig = 0
        if len(lows) == lows.maxlen:
            bull = low < min(lows) and cvd >= min(cvds)
            bear = high > max(highs) and cvd <= max(cvds)
            if bull and not bear:
                sig = 1
            elif bear and not bull:
                sig = -1
        self.signal = sig
        lows.append(low)
        highs.append(high)
        cvds.append(cvd)

    def dump(self) -> tuple[Any, ...]:
        return (self._lows.maxlen, self.cvd.dump(), tuple(self._lows), tuple(self._highs), tuple(self._cvds),
                self.signal)  # fmt: skip

    def load(self, state: Sequence[Any]) -> None:
        n, cvd, lows, highs, cvds, self.signal = state
        if n != self._lows.maxlen:
            raise ValueError(
                f"cvd state is for lookback {n}, this agent has {self._lows.maxlen}: "
                "the stored strategy was built from a differently shaped configuration"
            )
        self.cvd.load(cvd)
        for dq, values in ((self._lows, lows), (self._highs, highs), (self._cvds, cvds)):
            dq.clear()
            dq.extend(values)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Setup:
    """A trade idea from :class:`SetupSignal`: direction, order type and bracket."""

    __slots__ = ("entry", "level", "name", "order_type", "side", "stop", "target", "target_kind", "trailing")

    def __init__(
        self,
        name: str,
        side: int,
        order_type: str,
        entry: float,
        stop: float,
        target: float,
        *,
        trailing: bool,
        level: float | None = None,
        target_kind: str = "r_multiple",
    ) -> None:
        self.name = name
        self.side = side
        self.order_type = order_type
        self.entry = entry
        self.stop = stop
        self.target = target
        self.trailing = trailing
        self.level = level
        self.target_kind = target_kind

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "setup": self.name,
            "side": "BUY" if self.side > 0 else "SELL",
            "type": self.order_type,
            "entry": self.entry,
            "stop": self.stop,
            "target": self.target,
            "target_kind": self.target_kind,
        }
        if self.level is not None:
            d["level"] = self.level
        return d

    def dump(self) -> tuple[Any, ...]:
        return (self.name, self.side, self.order_type, self.entry, self.stop, self.target, self.trailing,
                self.level, self.target_kind)  # fmt: skip

    @classmethod
    def from_dump(cls, state: Sequence[Any]) -> Setup:
        name, side, order_type, entry, stop, target, trailing, level, target_kind = state
        return cls(name, side, order_type, entry, stop, target, trailing=trailing, level=level,
                   target_kind=target_kind)  # fmt: skip


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SetupSignal:
    """Finds at most one setup on a closed candle.

    (A) Pullback ribbon: in a trend, when the candle came back to within
    ``entry_band_pct`` of the fast EMA (UP: low <= ema*(1+band); DOWN: high >=
    ema*(1-band)), a LIMIT entry at the fast EMA; stop = entry -/+ ATR *
    ``stop_atr_mult`` (or ``stop_bps`` when set); target = entry +/- R *
    ``tp_r_mult``.

    (B) Liquidity sweep, only when (A) did not fire: the candle pierced the
    high (low) of the previous ``lookback_bars`` candles by more than
    ``eq_tolerance_pct`` (a touch within the tolerance is an equal high, not a
    sweep) and closed back inside. Blocked by an opposing EMA9/EMA20, by volume
    below ``min_vol_ratio`` x the mean of the previous 20 candles, or by a
    missing CVD divergence in its direction when ``require_cvd_confirm``. A
    MARKET entry at the close; stop beyond the swept level by ATR *
    ``stop_atr_mult``; target the VWAP(60) when it lies on the profitable side,
    else R * ``tp_r_mult``.

    When a setup is refused by a filter, ``find`` returns ``None`` and
    ``blocked`` names the filter together with ``blocked_setup``.
    """

    name: ClassVar[str] = "setup_signal"
    __slots__ = (
        "_hi",
        "_lo",
        "_vol",
        "block_regimes",
        "blocked",
        "blocked_setup",
        "ema_filter_fast",
        "ema_filter_slow",
        "prev_hi",
        "prev_lo",
        "prev_vol_mean",
        "r_band",
        "r_enabled",
        "r_stop_bps",
        "r_stop_mult",
        "r_tp",
        "r_trailing",
        "s_cvd",
        "s_enabled",
        "s_min_vol",
        "s_stop_bps",
        "s_stop_mult",
        "s_tol",
        "s_tp",
        "s_trailing",
        "tick",
        "vwap",
    )

    def __init__(self, p: SetupsParams, block_regimes: tuple[str, ...], tick_size: float) -> None:
        r, s = p.pullback_ribbon, p.sweep_invalidation
        self.r_enabled = r.enabled
        self.r_band = r.entry_band_pct
        self.r_stop_mult = r.stop_atr_mult
        self.r_stop_bps = r.stop_bps
        self.r_tp = r.tp_r_mult
        self.r_trailing = r.trailing
        self.s_enabled = s.enabled
        self.s_tol = s.eq_tolerance_pct
        self.s_tp = s.tp_r_mult
        self.s_stop_mult = s.stop_atr_mult
        self.s_stop_bps = s.stop_bps
        self.s_min_vol = s.min_vol_ratio
        self.s_cvd = s.require_cvd_confirm
        self.s_trailing = s.trailing
        self._hi = RollingMax(s.lookback_bars)
        self._lo = RollingMin(s.lookback_bars)
        self._vol = VolumeMean(s.volume_mean_bars)
        self.vwap = RollingVWAP(s.vwap_bars)
        self.ema_filter_fast = EMA(s.ema_filter_fast)
        self.ema_filter_slow = EMA(s.ema_filter_slow)
        self.block_regimes = tuple(block_regimes)
        self.tick = tick_size
        self.prev_hi: float | None = None
        self.prev_lo: float | None = None
        self.prev_vol_mean: float | None = None
        self.blocked = ""
        self.blocked_setup: Setup | None = None

    def update(self, high: float, low: float, close: float, volume: float) -> None:
        """Advance the indicators; the swing levels and volume mean are read
        *before* this candle is added, because the sweep compares the candle
        against the bars before it."""
        self.prev_hi = self._hi.value
        self.prev_lo = self._lo.value
        self.prev_vol_mean = self._vol.value
        self._hi.update(high)
        self._lo.update(low)
        self._vol.update(volume)
        self.vwap.update(high, low, close, volume)
        self.ema_filter_fast.update(close)
        self.ema_filter_slow.update(close)

    def _stop_distance(self, entry: float, atr: float, mult: float, bps: float | None) -> float:
        return entry * bps / 10_000.0 if bps is not None else atr * mult

    def find(
        self, high: float, low: float, close: float, volume: float, intake: MarketIntake, cvd_signal: int
    ) -> Setup | None:
        self.blocked = ""
        self.blocked_setup = None
        if not intake.ready:
            return None
        atr = intake.atr.value
        assert atr is not None
        setup = None
        trend = intake.trend
        if self.r_enabled and trend != CHOP:
            ema = intake.ema_fast.value
            assert ema is not None
            if trend == UP and low <= ema * (1.0 + self.r_band):
                setup = self._ribbon(1, ema, atr)
            elif trend == DOWN and high >= ema * (1.0 - self.r_band):
                setup = self._ribbon(-1, ema, atr)
        if setup is None and self.s_enabled:
            setup = self._sweep(high, low, close, volume, atr, cvd_signal)
            if setup is None:
                return None
        if setup is not None and intake.regime in self.block_regimes:
            # A regime filter is like "no trend": quiet, no decision event.
            self.blocked = "regime_" + intake.regime.lower()
            return None
        return setup

    def _ribbon(self, side: int, ema: float, atr: float) -> Setup | None:
        tick = self.tick
        entry = round_to_tick(ema, tick)
        bps = self.r_stop_bps  # _stop_distance inlined: this runs on most flat candles in a trend
        dist = entry * bps / 10_000.0 if bps is not None else atr * self.r_stop_mult
        stop = round_to_tick(entry - side * dist, tick)
        target = round_away(entry + side * abs(entry - stop) * self.r_tp, tick, side)
        return Setup("pullback_ribbon", side, LIMIT, entry, stop, target, trailing=self.r_trailing)

    def _sweep(
        self, high: float, low: float, close: float, volume: float, atr: float, cvd_signal: int
    ) -> Setup | None:
        lo, hi = self.prev_lo, self.prev_hi
        if lo is None or hi is None:
            return None
        tol = self.s_tol
        if low < lo * (1.0 - tol) and close > lo:
            side, level = 1, lo
        elif high > hi * (1.0 + tol) and close < hi:
            side, level = -1, hi
        else:
            return None
        ef, es = self.ema_filter_fast.value, self.ema_filter_slow.value
        vm = self.prev_vol_mean
        if ef is None or es is None or vm is None:
            return None
        tick = self.tick
        entry = close
        dist = self._stop_distance(entry, atr, self.s_stop_mult, self.s_stop_bps)
        stop = round_to_tick(level - side * dist, tick)
        risk = abs(entry - stop)
        vw = self.vwap.value
        if vw is not None and (vw - entry) * side > 0.0:
            target, kind = round_to_tick(vw, tick), "vwap"
        else:
            target, kind = round_away(entry + side * risk * self.s_tp, tick, side), "r_multiple"
        setup = Setup(
            "sweep", side, MARKET, entry, stop, target, trailing=self.s_trailing, level=level, target_kind=kind
        )
        if (side > 0 and ef < es) or (side < 0 and ef > es):
            self.blocked = "sweep_ema_filter"
        elif volume < self.s_min_vol * vm:
            self.blocked = "sweep_volume_filter"
        elif self.s_cvd and cvd_signal != side:
            self.blocked = "sweep_cvd_unconfirmed"
        else:
            return setup
        self.blocked_setup = setup
        return None

    def dump(self) -> tuple[Any, ...]:
        b = self.blocked_setup
        return (
            self._hi.dump(), self._lo.dump(), self._vol.dump(), self.vwap.dump(), self.ema_filter_fast.dump(),
            self.ema_filter_slow.dump(), self.prev_hi, self.prev_lo, self.prev_vol_mean, self.blocked,
            None if b is None else b.dump(),
        )  # fmt: skip

    def load(self, state: Sequence[Any]) -> None:
        hi, lo, vol, vwap, ef, es, self.prev_hi, self.prev_lo, self.prev_vol_mean, self.blocked, b = state
        self._hi.load(hi)
        self._lo.load(lo)
        self._vol.load(vol)
        self.vwap.load(vwap)
        self.ema_filter_fast.load(ef)
        self.ema_filter_slow.load(es)
        self.blocked_setup = None if b is None else Setup.from_dump(b)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class ExecutionRiskSentinel:
    """GO/NO-GO and size for a setup.

    NO-GO during a cooldown of ``cooldown_bars`` bars that follows a no-go
    (funding NO_TRADE, a sizing reject, a reward/risk reject or a broker
    rejection; not halts or circuit-breaker blocks, which are the account's
    state rather than a judgement on the setup). Funding NO_TRADE is a no-go,
    HALF_SIZE (and missing funding) halves the size. Sizing: see
    :func:`laptop_agents.strategy.sizing.position_size`.
    """

    name: ClassVar[str] = "execution_risk_sentinel"
    __slots__ = ("cooldown_bars", "cooldown_until", "instrument", "max_leverage", "max_notional", "risk_pct")

    def __init__(
        self,
        engine: EngineParams,
        risk_pct: float,
        instrument: Instrument,
        max_notional: float,
        max_leverage: float,
    ) -> None:
        self.cooldown_bars = engine.cooldown_bars
        self.cooldown_until = 0
        self.risk_pct = risk_pct
        self.instrument = instrument
        self.max_notional = max_notional
        self.max_leverage = max_leverage

    def start_cooldown(self, bar: int) -> None:
        """No new setup on bars ``bar+1 .. bar+cooldown_bars``."""
        self.cooldown_until = bar + self.cooldown_bars + 1

    def assess(self, setup: Setup, gate: str, equity: float, bar: int) -> tuple[float, str, float]:
        """``(qty, "", size_mult)`` for a go, ``(0, reason, size_mult)`` for a no-go."""
        if bar < self.cooldown_until:
            return 0.0, "cooldown", 0.0
        if gate == GATE_NO_TRADE:
            return 0.0, "funding_no_trade", 0.0
        mult = 0.5 if gate == GATE_HALF else 1.0
        qty, reason = position_size(
            equity=equity,
            risk_pct=self.risk_pct,
            size_mult=mult,
            entry=setup.entry,
            stop=setup.stop,
            instrument=self.instrument,
            max_notional=self.max_notional,
            max_leverage=self.max_leverage,
        )
        return qty, reason, mult


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class PendingTrigger:
    """Tracks the strategy's one working LIMIT entry and cancels it when it has
    been working for ``pending_trigger_max_bars`` candles without filling.

    The order is placed after candle ``p``; the broker tries it on candles
    ``p+1 .. p+N``; if it is still working when candle ``p+N`` reaches the
    strategy, a cancel is issued. An id that is no longer working (filled,
    expired, rejected, cancelled) is forgotten.
    """

    name: ClassVar[str] = "pending_trigger"
    __slots__ = ("client_id", "max_bars", "placed_bar")

    def __init__(self, engine: EngineParams) -> None:
        self.max_bars = engine.pending_trigger_max_bars
        self.client_id: str | None = None
        self.placed_bar = 0

    def track(self, client_id: str, bar: int) -> None:
        self.client_id = client_id
        self.placed_bar = bar

    def forget(self, client_id: str) -> None:
        if self.client_id == client_id:
            self.client_id = None

    def check(self, bar: int, working_orders: tuple[str, ...], halt: bool) -> tuple[str, str] | None:
        """``(client_id, reason)`` to cancel, or ``None``."""
        cid = self.client_id
        if cid is None:
            return None
        if cid not in working_orders:
            if bar > self.placed_bar:
                self.client_id = None
            return None
        if halt:
            self.client_id = None
            return cid, "funding_halt"
        if bar - self.placed_bar >= self.max_bars:
            self.client_id = None
            return cid, "pending_expired"
        return None

    def dump(self) -> tuple[Any, ...]:
        return (self.client_id, self.placed_bar)

    def load(self, state: Sequence[Any]) -> None:
        self.client_id, self.placed_bar = state


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class RiskGate:
    """The last check before an entry reaches the broker: funding HALT,
    ``entries_blocked`` (circuit breaker / broker limits), a bracket on the
    right sides of the entry, reward/risk >= ``rr_min``, and the hard limits
    (max position notional, max leverage) as a second line of defence behind
    the sizing caps."""

    name: ClassVar[str] = "risk_gate"
    __slots__ = ("instrument", "max_leverage", "max_notional", "rr_min")

    def __init__(self, risk: RiskParams, instrument: Instrument, max_notional: float, max_leverage: float) -> None:
        self.rr_min = risk.rr_min
        self.instrument = instrument
        self.max_notional = max_notional
        self.max_leverage = max_leverage

    def check(self, setup: Setup, qty: float, equity: float, entries_blocked: bool, gate: str) -> tuple[str, float]:
        """``("", rr)`` to pass, ``(reason, rr)`` to block."""
        if gate == GATE_HALT:
            return "funding_halt", 0.0
        if entries_blocked:
            return "entries_blocked", 0.0
        side, entry = setup.side, setup.entry
        risk = (entry - setup.stop) * side
        reward = (setup.target - entry) * side
        if risk <= 0.0 or reward <= 0.0:
            return "bad_bracket", 0.0
        rr = reward / risk
        if rr < self.rr_min * (1.0 - 1e-9):
            return "rr_below_min", rr
        if notional_usd(qty, entry, self.instrument) > self.max_notional * (1.0 + 1e-9):
            return "max_notional", rr
        if leverage(qty, entry, equity, self.instrument) > self.max_leverage * (1.0 + 1e-9):
            return "max_leverage", rr
        return "", rr


_PLAN_KEYS = ("plan_id", "setup", "side", "entry", "stop", "target", "bar", "entry_ts")


def _plan_dump(plan: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """A plan's values in :data:`_PLAN_KEYS` order (without the repeated keys)."""
    if plan is None:
        return None
    if tuple(plan)[: len(_PLAN_KEYS)] != _PLAN_KEYS[: len(plan)] or len(plan) > len(_PLAN_KEYS):
        # A plan field added without updating _PLAN_KEYS would be lost on restore.
        raise ValueError(f"plan keys {tuple(plan)} do not match the snapshot layout {_PLAN_KEYS}")
    return tuple(plan.values())


def _plan_load(values: Sequence[Any] | None) -> dict[str, Any] | None:
    return None if values is None else dict(zip(_PLAN_KEYS, values, strict=False))


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class JournalCoach:
    """Journal lines for a plan's life: created, filled, exited, cancelled,
    expired, rejected; exit lines carry coaching tags.

    Tags on an exit: the exit reason (stop, target, trailing_stop, ...), win or
    loss by net PnL, ``stopped_fast`` when a stop hit within
    ``STOPPED_FAST_BARS`` candles of the fill, ``followed_plan_profit`` when the
    plan's own target or trailing stop closed the trade in profit. ``r`` is the
    exit's price move in units of the plan's entry-to-stop distance.
    """

    name: ClassVar[str] = "journal_coach"
    STOPPED_FAST_BARS = 3
    __slots__ = ("closing", "open", "pending")

    def __init__(self) -> None:
        # Plans are small dicts: plan_id, setup, side (+1/-1), entry, stop,
        # target, bar (of creation or fill), entry_ts once filled. At most one
        # of each at a time.
        self.pending: dict[str, Any] | None = None
        self.open: dict[str, Any] | None = None
        self.closing: dict[str, Any] | None = None

    def dump(self) -> tuple[Any, ...]:
        return (_plan_dump(self.pending), _plan_dump(self.open), _plan_dump(self.closing))

    def load(self, state: Sequence[Any]) -> None:
        self.pending, self.open, self.closing = (_plan_load(p) for p in state)

    def plan_created(
        self,
        ts: int,
        plan_id: str,
        setup: str,
        side: int,
        order_type: str,
        entry: float,
        stop: float | None,
        target: float | None,
        qty: float,
        bar: int,
    ) -> Event:
        """Remember the plan (until filled, cancelled, expired or rejected) and
        return its journal line."""
        self.pending = {
            "plan_id": plan_id,
            "setup": setup,
            "side": side,
            "entry": entry,
            "stop": stop,
            "target": target,
            "bar": bar,
        }
        word = "long" if side > 0 else "short"
        text = f"plan {word} {setup}: {order_type.lower()} {qty} @ {entry}"
        if stop is not None:
            text += f", stop {stop}"
        if target is not None:
            text += f", target {target}"
        return journal_event(ts, text, ["plan_created", setup], plan_id)

    def on_event(self, event: Event, bar: int) -> list[Event]:
        if isinstance(event, FillEvent):
            return self._on_fill(event, bar)
        if isinstance(event, TradeClosed):
            return self._on_closed(event, bar)
        if isinstance(event, OrderEvent):
            if event.status not in ("rejected", "duplicate"):
                return []
            cid, word, reason = event.client_id, event.status, event.reason
        elif isinstance(event, OrderExpired):
            cid, word, reason = event.client_id, "expired", "expired"
        elif isinstance(event, OrderCancelled):
            cid, word, reason = event.client_id, "cancelled", event.reason
        else:
            return []
        plan = self.pending
        if plan is None or cid != plan["plan_id"]:
            return []
        self.pending = None
        text = f"plan {plan['setup']} {word}" + (f" ({reason})" if reason and reason != word else "")
        return [journal_event(event.ts, text, [word, plan["setup"]], plan["plan_id"])]

    def _on_fill(self, event: FillEvent, bar: int) -> list[Event]:
        plan = self.pending
        if plan is None or event.client_id != plan["plan_id"]:
            return []
        # First fill of the plan's entry order: the plan becomes the open
        # position's plan; a still-open previous plan (a reversal) is closing.
        self.closing = self.open
        plan = dict(plan, bar=bar, entry_ts=event.ts)
        self.open = plan
        self.pending = None
        text = f"plan {plan['setup']} filled {event.qty} @ {event.price}"
        return [journal_event(event.ts, text, ["filled", plan["setup"]], plan["plan_id"])]

    def _on_closed(self, event: TradeClosed, bar: int) -> list[Event]:
        side = 1 if event.side == "long" else -1
        plan = None
        if self.closing is not None and self.closing["side"] == side:
            plan, self.closing = self.closing, None
        elif self.open is not None and self.open["side"] == side:
            plan, self.open = self.open, None
        exit_reason = event.exit_reason
        net = event.net_pnl
        tags = [exit_reason] if exit_reason else []
        tags.append("win" if net > 0 else "loss")
        text = f"exit {event.side} @ {event.exit_price} ({exit_reason}), net pnl {round(net, 8)}"
        plan_id = None
        if plan is not None:
            plan_id = plan["plan_id"]
            bars = bar - int(plan["bar"])
            dist = abs(float(plan["entry"]) - float(plan["stop"])) if plan["stop"] is not None else 0.0
            r = side * (event.exit_price - event.entry_price) / dist if dist > 0 else 0.0
            if exit_reason == "stop" and bars <= self.STOPPED_FAST_BARS:
                tags.append("stopped_fast")
            if exit_reason in ("target", "trailing_stop") and net > 0:
                tags.append("followed_plan_profit")
            text += f", {round(r, 2)} R after {bars} bars" if dist > 0 else f" after {bars} bars"
        return [journal_event(event.ts, text, tags, plan_id)]
