"""Hard limits and the circuit breaker: what may open risk, and when not.

Entries (opening, adding, reversing) pass the hard limits, the breaker and the
operator's pause (``PaperBroker.entries_paused``, set by the shell, not state);
reductions always pass, and a reversal that may not open is clipped to a
close. All in event time:

- ``max_orders_per_minute`` counts accepted orders in the 60 s of event time up to ``ts``;
- ``max_position_notional`` and ``max_leverage`` cap the position an entry would leave;
- ``max_daily_loss_pct`` is of the account's starting equity, measured from the
  UTC day's starting equity;
- the breaker trips on the day's drawdown (``breaker_drawdown_pct``) or a run
  of ``breaker_consecutive_losses`` losing trades, blocks entries until the
  next UTC day and cancels working entry orders (the broker does that part).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from laptop_agents.broker.ledger import QTY_EPS, Ledger
from laptop_agents.domain.events import BreakerReset, BreakerTrip
from laptop_agents.domain.models import Side

if TYPE_CHECKING:
    from laptop_agents.config import RiskConfig

DAY_MS = 86_400_000
MINUTE_MS = 60_000


class RiskLimits:
    """The hard limits of ``risk``: order rate, notional, leverage, daily loss."""

    __slots__ = ("max_daily_loss", "max_leverage", "max_notional", "max_orders_per_minute", "order_times")

    def __init__(self, risk: RiskConfig) -> None:
        self.max_notional = risk.max_position_notional
        self.max_leverage = risk.max_leverage
        self.max_orders_per_minute = risk.max_orders_per_minute
        self.max_daily_loss = risk.max_daily_loss_pct / 100.0
        self.order_times: deque[int] = deque()

    def rate_limited(self, ts: int) -> bool:
        """Whether the orders accepted in the minute up to ``ts`` already reach the limit."""
        times = self.order_times
        while times and times[0] <= ts - MINUTE_MS:
            times.popleft()
        return len(times) >= self.max_orders_per_minute

    def daily_loss_hit(self, start_balance: float | None, day_start_equity: float, equity: float) -> bool:
        """The day's loss reached ``max_daily_loss_pct`` of the starting balance."""
        return start_balance is not None and day_start_equity - equity >= self.max_daily_loss * start_balance

    def admit(
        self,
        side: Side,
        qty: float,
        price: float,
        reduce_only: bool,
        ledger: Ledger,
        blocked: str,
        equity_quote: float,
    ) -> tuple[float, str]:
        """How much of an order may execute now, and why not all of it.

        Reducing the position is always allowed (risk goes down). The part that
        opens, adds or reverses is an entry: refused when entries are
        ``blocked`` (the reason) or when the resulting position breaks max
        notional or max leverage; a reversal is then clipped to a plain close."""
        pos = ledger.position
        pos_qty = pos.qty if pos is not None else 0.0
        s = side.sign
        close = min(qty, abs(pos_qty)) if pos_qty * s < 0 else 0.0
        extra = qty - close
        if reduce_only:
            return (close, "") if close > QTY_EPS else (0.0, "reduce_only_without_position")
        if extra <= QTY_EPS:
            return qty, ""
        why = blocked
        if not why:
            notional = ledger.notional(abs(pos_qty + s * qty), price)
            if notional > self.max_notional * (1 + 1e-12):
                why = "max_notional"
            elif equity_quote <= 0 or notional / equity_quote > self.max_leverage * (1 + 1e-12):
                why = "max_leverage"
        if why:
            return close, why
        return qty, ""


class CircuitBreaker:
    """The breaker and the UTC day it measures: the day's starting equity,
    the run of losing trades, and whether (and until when) entries are blocked."""

    __slots__ = ("active", "consecutive_losses", "day_start_equity", "drawdown", "max_losses", "next_day_ts",
                 "reason", "until")  # fmt: skip

    def __init__(self, risk: RiskConfig) -> None:
        self.drawdown = risk.breaker_drawdown_pct / 100.0
        self.max_losses = risk.breaker_consecutive_losses
        self.active = False
        self.reason = ""
        self.until = 0
        self.consecutive_losses = 0
        self.day_start_equity = 0.0
        self.next_day_ts: int | None = None

    def roll_day(self, ts: int, equity: float) -> BreakerReset | None:
        """A new UTC day at ``ts``: its starting equity; a breaker whose day is over resets."""
        self.next_day_ts = (ts // DAY_MS + 1) * DAY_MS
        self.day_start_equity = equity
        if self.active and ts >= self.until:
            self.active = False
            self.reason = ""
            return BreakerReset(ts, equity)
        return None

    def record_trade(self, net_pnl: float) -> None:
        """A closed trade: a loss extends the losing run, a win ends it (flat: neither)."""
        if net_pnl < 0:
            self.consecutive_losses += 1
        elif net_pnl > 0:
            self.consecutive_losses = 0

    def check(self, ts: int, equity: float) -> BreakerTrip | None:
        """Trip on the day's drawdown at ``equity`` or the run of losing trades."""
        if self.active or self.day_start_equity <= 0:
            return None
        dd = (self.day_start_equity - equity) / self.day_start_equity
        if dd >= self.drawdown - 1e-12:
            return self._trip(ts, "drawdown", dd * 100.0)
        if self.consecutive_losses >= self.max_losses:
            return self._trip(ts, "consecutive_losses", float(self.consecutive_losses))
        return None

    def _trip(self, ts: int, reason: str, value: float) -> BreakerTrip:
        self.active = True
        self.reason = reason
        self.until = (ts // DAY_MS + 1) * DAY_MS
        self.consecutive_losses = 0
        return BreakerTrip(ts, reason, value, self.until)
